//! What the store checks before it serves, and the record that lets it notice lost
//! messages: SQLite's quick integrity check (within a time budget), the database's epoch, and
//! the high-water record of message commits kept beside the database, outside its WAL.
//!
//! Every commit of the message writer adds one to `store_epoch.message_commits` in the same
//! transaction, and writes the new count to the high-water file before any of its messages
//! is acknowledged. A database that later holds fewer commits than the file says has lost
//! acknowledged messages (a damaged or deleted WAL, a restored backup): the store logs it
//! loudly, counts it and takes a new epoch, and every client that syncs with the old epoch
//! gets its conversations again from the start instead of a gap.

use anyhow::Context;
use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    time::Duration,
};

/// The high-water record of `database`: the file beside it.
pub fn high_water_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".highwater");
    PathBuf::from(name)
}

/// The count of message commits acknowledged, kept in a small file outside the database.
/// Written in place at every commit (one `pwrite` of a fixed-width line, no fsync: it must
/// survive the process, not the machine; after a power loss it can only be behind, which
/// misses a loss but never invents one).
#[derive(Debug)]
pub struct HighWater {
    file: File,
}

/// Width of the record: digits and a newline.
const RECORD: usize = 21;

impl HighWater {
    /// Opens (creating) the record of `database`; returns it and the count it holds, if it
    /// holds one (a missing, empty or unreadable record holds none).
    pub fn open(database: &Path) -> anyhow::Result<(Self, Option<i64>)> {
        let path = high_water_path(database);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the high-water record {}", path.display()))?;
        let mut buf = [0u8; RECORD];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        let held = std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        if n > 0 && held.is_none() {
            tracing::warn!(file = %path.display(), "the high-water record is unreadable; starting it afresh");
        }
        Ok((Self { file }, held))
    }

    /// Records that `commits` message commits are durable (before they are acknowledged).
    pub fn record(&self, commits: i64) {
        let line = format!("{commits:0width$}\n", width = RECORD - 1);
        if let Err(e) = self.file.write_all_at(line.as_bytes(), 0) {
            // Without it a later loss goes unnoticed, nothing more: the commit stands.
            tracing::warn!(error = %e, "writing the high-water record");
        }
    }
}

/// What the integrity check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Integrity {
    Ok,
    /// It ran out of time before the end (large databases); nothing wrong was found so far.
    CutShort,
    /// SQLite's own words for what is wrong (the first few problems).
    Damaged(Vec<String>),
}

/// SQLite's quick check (`PRAGMA quick_check`: every page and index entry reachable and well
/// formed, without cross-checking index contents), stopped after `budget`.
pub fn quick_check(database: &Path, budget: Duration) -> anyhow::Result<Integrity> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} to check it", database.display()))?;
    // Past the budget, a watchdog interrupts the check (it ends early when the check does).
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(budget) {
            interrupt.interrupt();
        }
    });
    let found: rusqlite::Result<Vec<String>> =
        conn.prepare("PRAGMA quick_check(10)").and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    drop(done);
    let _ = watchdog.join();
    match found {
        Ok(rows) if rows == ["ok"] => Ok(Integrity::Ok),
        Ok(rows) => Ok(Integrity::Damaged(rows)),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            Ok(Integrity::CutShort)
        }
        // A file too damaged to read its schema fails here rather than in the check.
        Err(rusqlite::Error::SqliteFailure(e, msg))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            Ok(Integrity::Damaged(vec![
                msg.unwrap_or_else(|| e.to_string())
            ]))
        }
        Err(e) => Err(e).with_context(|| format!("checking {}", database.display())),
    }
}

/// A new random epoch: 32 hex digits.
pub fn new_epoch() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_record_reads_back_what_was_written_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("m.db");
        let (hw, held) = HighWater::open(&db).expect("open");
        assert_eq!(held, None, "a new record holds nothing");
        hw.record(1234);
        hw.record(7);
        drop(hw);
        let (_, held) = HighWater::open(&db).expect("reopen");
        assert_eq!(held, Some(7), "the last count, not a mix of two");
        std::fs::write(high_water_path(&db), "garbage").expect("damage it");
        let (_, held) = HighWater::open(&db).expect("reopen");
        assert_eq!(held, None, "an unreadable record holds nothing");
    }

    #[test]
    fn a_damaged_file_fails_the_quick_check_and_a_whole_one_passes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("m.db");
        {
            let conn = rusqlite::Connection::open(&db).expect("create");
            conn.execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
                 CREATE INDEX t_body ON t(body);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
                 INSERT INTO t (body) SELECT printf('row %d %s', i, hex(randomblob(40))) FROM n;",
            )
            .expect("fill");
        }
        assert_eq!(
            quick_check(&db, Duration::from_secs(10)).expect("check"),
            Integrity::Ok
        );
        // Scribble over a page in the middle of the file.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open");
        let len = file.metadata().expect("size").len();
        file.write_all_at(&[0xA5; 4096], (len / 4096 / 2) * 4096)
            .expect("scribble");
        drop(file);
        assert!(matches!(
            quick_check(&db, Duration::from_secs(10)).expect("check"),
            Integrity::Damaged(_)
        ));
    }
}
