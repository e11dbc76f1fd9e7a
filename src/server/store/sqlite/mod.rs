//! The store on SQLite, the embedded default: opening and migrating the database, and one
//! file per aggregate implementing its trait with compile-time checked queries (`query!`,
//! `query_as!`, `query_scalar!`; their descriptions are kept in `.sqlx/` so a clone builds
//! with no database). Messages are written only by the group-commit writer (`writer.rs`),
//! on a connection of its own.

pub mod account;
mod audit;
mod bots;
mod contacts;
mod conversations;
mod files;
mod gather;
pub mod guard;
mod limits;
mod messages;
mod profiles;
mod sessions;
mod users;
pub mod writer;

use crate::protocol::{ConversationKind, UserSummary};
use anyhow::Context;
use guard::{HighWater, Integrity};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    ConnectOptions, Sqlite, SqlitePool, Transaction,
};
use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

/// Longest the quick integrity check at start may run; past it the server starts anyway
/// and says the check was cut short (a large database takes about a second per GB here).
const INTEGRITY_BUDGET: Duration = Duration::from_secs(10);

/// WAL size, in pages, at which a commit checkpoints the WAL into the database file itself
/// (SQLite's default is 1000 pages, 4 MB). The checkpoints that copy pages run beside the
/// message writer, on a connection of their own (`writer::Checkpointer`, 50 ms after
/// commits); this size is the backstop that also makes the WAL start over. A WAL only starts
/// over at a write when every frame in it is in the file, and under steady load the writer
/// commits again before a checkpoint beside it can finish, so without this the WAL would
/// grow without end (it did: to 700 MB in 10 s of the rooms benchmark, and then cutting it
/// back took a commit 200 ms). The writer's own checkpoint copies only what was committed
/// since the last one beside it. Rooms 1000 x 5 at 10,000 msgs/s: the writer's checkpoints
/// held a commit 5-25 ms each, every 4,096 pages, and set the p99 at 12-15 ms; with the
/// copying beside it and this at 16,384 pages, 6.9-8.5 ms (docs/BENCHMARKS.md, fourth
/// sitting). 16,384 pages (64 MiB) is the disk headroom the WAL needs under sustained load
/// (docs/OPERATIONS.md); a quiet server's WAL is checkpointed whole and starts over small.
const WAL_AUTOCHECKPOINT_PAGES: &str = "16384";
/// After the WAL starts over, its file is cut back to this many bytes if it grew past them
/// (it would otherwise keep its largest size on disk). Twice what the WAL reaches at the
/// autocheckpoint, so a steady load never cuts it (freeing a file's blocks holds the fsync
/// that follows; the file system here discards what is freed) and a burst's growth is
/// given back.
const WAL_SIZE_LIMIT: &str = "134217728";
/// How every transaction that writes begins: with SQLite's write lock taken at once. A
/// deferred `BEGIN` that reads first and writes later fails at the write with `SQLITE_BUSY`,
/// not retried by the busy timeout, whenever another connection committed in between (the
/// message writer commits all the time): contact requests and group changes failed that way
/// while messages flowed. `IMMEDIATE` waits (up to the busy timeout) for the lock instead.
pub const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Most page cache the message writer's connection keeps, in KiB. The writer touches the
/// leaf pages of every busy conversation; with SQLite's default 2 MB cache it read them back
/// from the file (pread) at every commit. The cache grows only as pages are used.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// What every connection to the database is opened with, the pool's and the message
/// writer's (each applies them in its own way: the pool through sqlx's options, the writer
/// as statements; a test reads them back from both).
const PRAGMAS: [(&str, &str); 7] = [
    // WAL lets readers run beside the writer; FULL fsyncs the WAL at every commit, so an
    // acknowledged message survives power loss, not only a process crash.
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES),
    ("journal_size_limit", WAL_SIZE_LIMIT),
    // Temporary files in memory. The one that matters is the statement journal: inside a
    // transaction, each statement that could fail half-way (the writer's multi-row INSERT)
    // copies every page it changes there first, so that it alone can be undone. On disk
    // that was a 4-byte and a 4096-byte `pwrite` per page, as many calls as the WAL frames
    // themselves. It is never needed after a crash (the WAL is what makes a commit
    // durable), so keeping it in memory weakens nothing.
    ("temp_store", "MEMORY"),
    // What is deleted or overwritten (an erased account's text, expired messages) is
    // overwritten with zeros in the file, not left in free space for anyone to read.
    // Messages are only ever added on the hot path, so this costs it nothing.
    ("secure_delete", "ON"),
];

/// How long a connection waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite store: a pool for everything but messages, and the options to open the
/// writer's own connection.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    options: SqliteConnectOptions,
    /// The database's epoch (see `guard.rs`).
    epoch: Arc<str>,
    /// The high-water record the message writer updates at every commit.
    high_water: Arc<HighWater>,
    /// Sequence regressions seen since start: one if opening found acknowledged messages
    /// lost, and one for each client cursor found beyond its conversation's last message.
    regressions: Arc<std::sync::atomic::AtomicU64>,
    /// Seals and opens message bodies (plain until [`SqliteStore::with_vault`]).
    vault: Arc<super::vault::Vault>,
}

impl SqliteStore {
    /// Opens (creating folder and file if needed), checks and migrates the database, and
    /// compares it with its high-water record (see `guard.rs`). A damaged file, or one this
    /// user may not write, is refused with what to do.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            match guard::quick_check(path, INTEGRITY_BUDGET)? {
                Integrity::Ok => {}
                Integrity::CutShort => tracing::warn!(
                    database = %path.display(),
                    budget_seconds = INTEGRITY_BUDGET.as_secs(),
                    "the integrity check ran out of time; starting without its verdict"
                ),
                Integrity::Damaged(problems) => anyhow::bail!(
                    "the database {} is damaged ({}); stop here, keep the file for inspection, \
                     and restore the latest backup or recover it (docs/OPERATIONS.md)",
                    path.display(),
                    problems.join("; ")
                ),
            }
        }
        let options = PRAGMAS.iter().fold(
            SqliteConnectOptions::from_str("sqlite:")
                .context("sqlite options")?
                .filename(path)
                .create_if_missing(true),
            |options, (name, value)| options.pragma(*name, *value),
        );
        let options = options
            .busy_timeout(BUSY_TIMEOUT)
            .disable_statement_logging();
        let read_only = |e: &dyn std::fmt::Display| {
            let text = e.to_string();
            if text.contains("readonly") || text.contains("read-only") {
                anyhow::anyhow!(
                    "the database {} (or its folder, or its -wal and -shm files) is read-only \
                     for this user: give the server's user write access to them ({text})",
                    path.display()
                )
            } else {
                anyhow::anyhow!("opening the database {}: {text}", path.display())
            }
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| read_only(&e))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| read_only(&format!("applying database migrations: {e}")))?;
        let (high_water, held) = HighWater::open(path)?;
        let (epoch, regressed) = Self::check_epoch(&pool, path, &high_water, held)
            .await
            .map_err(|e| read_only(&format!("{e:#}")))?;
        Ok(Self {
            pool,
            options,
            epoch: epoch.into(),
            high_water: Arc::new(high_water),
            regressions: Arc::new(u64::from(regressed).into()),
            vault: Arc::new(super::vault::Vault::plain()),
        })
    }

    /// Reads the epoch and the count of message commits, and compares the count with the
    /// high-water record: fewer commits than recorded means acknowledged messages are gone,
    /// and the store takes a new epoch. Writes either way, so a store it may not write is
    /// found here, at start, not at the first message.
    async fn check_epoch(
        pool: &SqlitePool,
        path: &Path,
        high_water: &HighWater,
        held: Option<i64>,
    ) -> anyhow::Result<(String, bool)> {
        let mut tx = pool.begin_with(BEGIN_WRITE).await?;
        let row = sqlx::query!(
            r#"SELECT epoch, message_commits AS "commits!: i64" FROM store_epoch WHERE id = 1"#
        )
        .fetch_one(&mut *tx)
        .await?;
        let (mut epoch, commits) = (row.epoch, row.commits);
        let regressed = held.is_some_and(|h| h > commits);
        if regressed {
            let lost = held.unwrap_or(0) - commits;
            let fresh = guard::new_epoch();
            tracing::error!(
                database = %path.display(),
                commits,
                recorded = held,
                lost_commits = lost,
                old_epoch = %epoch,
                new_epoch = %fresh,
                "THE DATABASE LOST ACKNOWLEDGED MESSAGES: it holds fewer message commits than \
                 the high-water record beside it (a damaged or deleted WAL, or a restored \
                 backup). Serving it under a new epoch: every client resyncs its \
                 conversations from the start. See docs/OPERATIONS.md."
            );
            epoch = fresh;
        }
        sqlx::query!("UPDATE store_epoch SET epoch = ? WHERE id = 1", epoch)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        high_water.record(commits);
        Ok((epoch, regressed))
    }

    /// The store with `vault` sealing and opening message bodies. Refused if the database
    /// holds messages under a key the vault lacks (naming it): it never serves garbage.
    pub async fn with_vault(mut self, vault: Arc<super::vault::Vault>) -> anyhow::Result<Self> {
        let used =
            sqlx::query_scalar!(r#"SELECT key_id AS "key_id!" FROM keys_used ORDER BY key_id"#)
                .fetch_all(&self.pool)
                .await?;
        let have = vault.key_ids();
        if let Some(missing) = used.iter().find(|id| !have.contains(id)) {
            anyhow::bail!(
                "the database {} holds messages sealed with key {missing}, which is not in the \
                 key ring: start it with the key ring it was written with (nothing was changed)",
                self.options.get_filename().display()
            );
        }
        self.vault = vault;
        Ok(self)
    }

    /// Seals and opens message bodies.
    pub fn vault(&self) -> Arc<super::vault::Vault> {
        Arc::clone(&self.vault)
    }

    /// The database's epoch: clients keep it with their cursors.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Sequence regressions seen since start (see the field).
    pub fn regressions(&self) -> u64 {
        self.regressions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a sequence regression seen from a client's cursor.
    pub fn count_regression(&self) {
        self.regressions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The high-water record, for the message writer.
    pub fn high_water(&self) -> Arc<HighWater> {
        Arc::clone(&self.high_water)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A dedicated connection for the single message writer, which commits synchronously
    /// on a thread of its own (`writer.rs`); opened with the same settings as the pool's.
    pub fn writer_connection(&self) -> anyhow::Result<rusqlite::Connection> {
        let path = self.options.get_filename();
        // Through the VFS that writes each commit's WAL frames in one system call.
        gather::register().map_err(anyhow::Error::msg)?;
        let conn = rusqlite::Connection::open_with_flags_and_vfs(
            path,
            rusqlite::OpenFlags::default(),
            gather::NAME,
        )
        .with_context(|| format!("opening the writer connection to {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let cache_size = format!("-{WRITER_CACHE_KIB}");
        for (name, value) in PRAGMAS.iter().chain([&("cache_size", cache_size.as_str())]) {
            // As a batch: it ignores the row some pragmas answer with (journal_mode does).
            conn.execute_batch(&format!("PRAGMA {name} = {value}"))
                .with_context(|| format!("setting {name} on the writer connection"))?;
        }
        // The multi-row INSERTs (one per power-of-two size), the single-row one, the lookups
        // and the delete: all stay prepared.
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// A connection for the thread that checkpoints the WAL beside the message writer
    /// (`writer::Checkpointer`): the platform's own VFS, and FULL synchronous, with which a
    /// checkpoint syncs the WAL before copying from it and the database file after.
    pub fn checkpointer_connection(&self) -> anyhow::Result<rusqlite::Connection> {
        let path = self.options.get_filename();
        let conn = rusqlite::Connection::open(path)
            .with_context(|| format!("opening the checkpoint connection to {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA synchronous = FULL")
            .context("setting synchronous on the checkpoint connection")?;
        Ok(conn)
    }

    /// Writes a consistent copy of the database to `file` (SQLite's `VACUUM INTO`: one read
    /// transaction, so the copy is the database as of one instant; the writer goes on
    /// meanwhile, as WAL lets it). Everything committed before the copy began is in it.
    pub async fn backup_to(&self, file: &Path) -> anyhow::Result<()> {
        let target = file.to_str().context("the backup's path is not UTF-8")?;
        // A runtime query: sqlx's macros cannot describe VACUUM.
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.pool)
            .await
            .with_context(|| format!("writing the backup {}", file.display()))?;
        Ok(())
    }

    /// Checkpoints the WAL into the main file (at shutdown, so a copy of the file is whole).
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        // A runtime query: sqlx's macros cannot describe a PRAGMA.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Begins a transaction that will write (see [`BEGIN_WRITE`]).
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with(BEGIN_WRITE).await
    }
}

/// A user as the queries read one (`id, username, display_name, is_guest, is_bot`).
#[derive(Debug, sqlx::FromRow)]
struct UserRecord {
    id: i64,
    username: String,
    display_name: String,
    is_guest: bool,
    is_bot: bool,
}

impl From<UserRecord> for UserSummary {
    fn from(r: UserRecord) -> Self {
        Self {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            is_guest: r.is_guest,
            is_bot: r.is_bot,
        }
    }
}

/// A conversation kind as stored.
fn kind_of(s: &str) -> ConversationKind {
    match s {
        "dm" => ConversationKind::Dm,
        "group" => ConversationKind::Group,
        _ => ConversationKind::Room,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings the writer's speed and durability rest on, read back from SQLite on the
    /// connections as opened (a pragma misspelt in the options would be silently ignored).
    #[tokio::test]
    async fn connections_are_durable_and_keep_temporary_files_in_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open");
        // journal_mode; synchronous (2 = FULL: the WAL is synced at every commit);
        // temp_store (2 = MEMORY: statement journals never touch the disk); foreign_keys.
        let expected = ("wal".to_owned(), 2, 2, 1);
        let mut pooled = store.pool().acquire().await.expect("pooled");
        // Runtime queries: sqlx's macros cannot describe a PRAGMA.
        let mut read = Vec::new();
        for name in ["synchronous", "temp_store", "foreign_keys"] {
            let value: i64 = sqlx::query_scalar(&format!("PRAGMA {name}"))
                .fetch_one(&mut *pooled)
                .await
                .unwrap();
            read.push(value);
        }
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *pooled)
            .await
            .unwrap();
        assert_eq!((mode, read[0], read[1], read[2]), expected, "pool");
        let checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *pooled)
            .await
            .unwrap();
        assert_eq!(checkpoint.to_string(), WAL_AUTOCHECKPOINT_PAGES, "pool");

        // The message writer's own connection, opened apart from the pool.
        let writer = store.writer_connection().expect("writer");
        let int = |name: &str| -> i64 {
            writer
                .pragma_query_value(None, name, |row| row.get(0))
                .unwrap()
        };
        let mode: String = writer
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(
            (
                mode,
                int("synchronous"),
                int("temp_store"),
                int("foreign_keys")
            ),
            expected,
            "writer"
        );
        assert_eq!(int("busy_timeout"), 10_000);
        assert_eq!(int("secure_delete"), 1);
        assert_eq!(
            int("wal_autocheckpoint").to_string(),
            WAL_AUTOCHECKPOINT_PAGES
        );
        assert_eq!(int("journal_size_limit").to_string(), WAL_SIZE_LIMIT);
        assert_eq!(int("cache_size"), -i64::from(WRITER_CACHE_KIB));
        assert_eq!(gather::vfs_of(&writer).as_deref(), Some(gather::NAME));
    }
}
