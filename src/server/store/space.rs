//! Room left on the database's disk. Below a floor the store refuses new messages (a clear,
//! retryable `storage_full`) before SQLite meets a full disk mid-commit; reads, sign-ins and
//! open sockets go on. Checked every [`CHECK_EVERY`] by the server, and refusals are logged
//! once per [`REPORT_EVERY`] with their count, not once each.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

/// How often the free space is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Free bytes a full disk needs again before writes resume (when the floor is lower).
const RECOVER_ABOVE: u64 = 1024 * 1024;
/// Refused writes are reported at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The disk the database lives on, as the writer sees it.
#[derive(Debug)]
pub struct DiskSpace {
    /// The database's folder (statvfs looks at the filesystem holding it).
    folder: PathBuf,
    /// Free bytes below which new writes are refused.
    floor: u64,
    /// Below the floor, or a write failed for lack of space since the last look.
    full: AtomicBool,
    /// Writes refused since the last report, and when that was.
    refused: AtomicU64,
    reported: Mutex<Option<Instant>>,
}

impl DiskSpace {
    pub fn new(database: &Path, floor: u64) -> Self {
        let folder = database
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Self {
            folder,
            floor,
            full: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            reported: Mutex::new(None),
        }
    }

    /// Whether new writes are refused now.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// A write failed for lack of space: refuse the next ones until the space comes back.
    pub fn ran_out(&self) {
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::error!(folder = %self.folder.display(), "the disk is full: new messages are refused (storage_full) until space is freed");
        }
    }

    /// Looks at the free space now; returns it (None if it cannot be read). Once full, the
    /// store takes writes again only with [`RECOVER_ABOVE`] free (or the floor, if higher):
    /// a disk that filled up with no floor set does not flap on a few freed bytes.
    pub fn check(&self) -> Option<u64> {
        let free = free_bytes(&self.folder)?;
        let was_full = self.is_full();
        let needed = if was_full {
            self.floor.max(RECOVER_ABOVE)
        } else {
            self.floor
        };
        let low = free < needed;
        let was = self.full.swap(low, Ordering::Relaxed);
        if low && !was {
            tracing::error!(
                folder = %self.folder.display(),
                free_bytes = free,
                floor_bytes = self.floor,
                "free disk space is below the floor: new messages are refused (storage_full); reads and sign-ins go on"
            );
        } else if !low && was {
            tracing::warn!(
                free_bytes = free,
                "disk space is back above the floor: writes resume"
            );
        }
        Some(free)
    }

    /// Counts `n` writes refused for lack of space and logs them, at most once per
    /// [`REPORT_EVERY`].
    pub fn refused(&self, n: u64) {
        let total = self.refused.fetch_add(n, Ordering::Relaxed) + n;
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            *reported = Some(Instant::now());
            self.refused.fetch_sub(total, Ordering::Relaxed);
            tracing::warn!(
                refused = total,
                "storage full: messages refused since the last report"
            );
        }
    }
}

/// Free bytes for an unprivileged user on the filesystem holding `folder`.
pub fn free_bytes(folder: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(folder).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_above_the_free_space_refuses_and_one_below_does_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("m.db");
        let roomy = DiskSpace::new(&db, 0);
        let free = roomy.check().expect("free space");
        assert!(free > 0 && !roomy.is_full());
        let cramped = DiskSpace::new(&db, u64::MAX);
        cramped.check();
        assert!(cramped.is_full());
        // A write that met a full disk refuses the next ones until the next look.
        roomy.ran_out();
        assert!(roomy.is_full());
        roomy.check();
        assert!(!roomy.is_full());
    }
}
