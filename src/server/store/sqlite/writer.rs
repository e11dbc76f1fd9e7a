//! The message log on SQLite: the single writer. It takes sends from every connection, bot
//! and system line, commits them in groups (one SQLite transaction, one fsync for many
//! messages), gives each its sequence number, then publishes each new message to its
//! conversation and only then acknowledges it to its sender. It implements
//! [`MessageLog`](crate::server::store::MessageLog).
//!
//! It runs on a thread of its own that owns its SQLite connection (rusqlite, over the same
//! bundled SQLite as sqlx) and commits synchronously: a commit through sqlx's async
//! connection made one round trip between tasks and sqlx's worker thread per statement
//! (begin, each INSERT, commit), and those hand-offs cost more than the statements at the
//! rates of the rooms benchmark (docs/BENCHMARKS.md, eleventh round).

use super::guard::HighWater;
use crate::server::metrics::Metrics;
use crate::server::store::{
    space::DiskSpace,
    vault::{Sealer, Vault},
};
use crate::server::{
    hub::Fanout,
    store::{
        commits::{engine_failed, settle, view_of, Cmd, Job, Outcome, Publisher},
        now_ms, Ack, Content, MessageLog, NewMessage, Observer, Reply, WriteFailed,
    },
};
use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior};
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, watch};

/// Empties the messages the batch's new `delete` messages name, in the batch's transaction,
/// so the deletion and its announcement commit together. Only the new ones: a `delete`
/// whose client id was already stored is a resend and changes nothing (without its own
/// message, nobody would hear of the deletion).
fn apply_deletes<'a>(
    conn: &Connection,
    new: impl Iterator<Item = &'a Job>,
) -> rusqlite::Result<()> {
    for job in new {
        match job.msg.content {
            Content::Delete(seq) => {
                conn.prepare_cached(
                    "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
                     WHERE conversation_id = ? AND seq = ? AND sender_id = ? AND kind IN ('text', 'nudge', 'file')",
                )?
                .execute((job.msg.conv, seq, job.msg.sender))?;
            }
            // What an account erasure's batches left (what was committed meanwhile): few.
            Content::EraseAll => {
                conn.prepare_cached(
                    "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
                     WHERE conversation_id = ? AND sender_id = ? AND kind IN ('text', 'nudge', 'file')",
                )?
                .execute((job.msg.conv, job.msg.sender))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A group commit this slow is logged as a warning, with how long its COMMIT took.
const SLOW_COMMIT: Duration = Duration::from_millis(50);
/// At most one such warning per this long (a slow disk would make every commit slow).
const SLOW_COMMIT_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Group commits slower than [`SLOW_COMMIT`]: every message in one, and every message
/// queued behind it, waited that long.
#[derive(Default)]
struct SlowCommits {
    last_report: Option<Instant>,
    unreported: u64,
}

impl SlowCommits {
    fn record(&mut self, took: Duration, committing: Duration, size: usize) {
        if took < SLOW_COMMIT {
            return;
        }
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|at| now.duration_since(at) < SLOW_COMMIT_REPORT_EVERY)
        {
            return;
        }
        tracing::warn!(
            ms = took.as_millis() as u64,
            commit_ms = committing.as_millis() as u64,
            size,
            slow_commits = self.unreported,
            "slow group commit (commit_ms: the COMMIT with its fsync and any WAL checkpoint; \
             slow_commits: how many since the last warning)"
        );
        self.last_report = Some(now);
        self.unreported = 0;
    }
}

/// The handle the log is appended through.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Cmd>,
}

/// How long after a commit the WAL is checkpointed beside the writer. Under load that is a
/// checkpoint every 50 ms or so (the commits meanwhile ask for the next one), each copying
/// that much of the WAL; on a quiet server, one checkpoint after its last commit leaves the
/// database file whole. Every 20 ms was measured too: no better p99, more CPU (pages
/// written several times in a second are copied each time).
const CHECKPOINT_AFTER: Duration = Duration::from_millis(50);

/// Longest the WAL goes without a checkpoint beside the writer while anything may be in
/// it. Only message commits ask for one; what is written through the pool (sign-ins,
/// contacts, profiles, settings) on a server where nobody chats would otherwise stay in the
/// WAL until the 16,384-page backstop (`WAL_AUTOCHECKPOINT_PAGES`). A checkpoint that finds
/// nothing to copy only reads the WAL's index.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(30);

/// The thread that checkpoints the WAL into the database file beside the writer, on a
/// connection of its own, so that copying pages and syncing the file stay off the commit
/// path. Its checkpoints are PASSIVE: they copy what no reader still needs and never wait
/// for a lock, so they never hold the writer or a reader. The writer only asks for one
/// (`nudge`), never waits for it; the thread ends when the writer drops it.
struct Checkpointer {
    nudge: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread: a checkpoint `CHECKPOINT_AFTER` a nudge, and one after
    /// `CHECKPOINT_IDLE` without any.
    fn start(conn: Connection, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        // One pending request is enough: however many commits ask meanwhile, the next
        // checkpoint takes all they wrote.
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".to_owned())
            .spawn(move || {
                let mut failures = 0u64;
                while let Some(pause) = pause_before_checkpoint(&nudged, CHECKPOINT_IDLE) {
                    // Production pacing, not a wait in a test: one checkpoint per burst.
                    std::thread::sleep(pause);
                    checkpoint_beside(&conn, &metrics, &mut failures);
                }
            })?;
        Ok(Self { nudge, thread })
    }

    /// Asks for a checkpoint soon, without waiting.
    fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Ends the thread once its last checkpoint is done.
    fn stop(self) {
        drop(self.nudge);
        if self.thread.join().is_err() {
            tracing::error!("the WAL checkpoint thread panicked");
        }
    }
}

/// Waits for the checkpoint thread's next turn: after a nudge, the checkpoint comes
/// `CHECKPOINT_AFTER` later (so one takes a burst of commits); after `idle` without one, at
/// once. `None` once the writer has let go; a nudge still pending then is served first.
fn pause_before_checkpoint(
    nudged: &std::sync::mpsc::Receiver<()>,
    idle: Duration,
) -> Option<Duration> {
    use std::sync::mpsc::RecvTimeoutError;
    match nudged.recv_timeout(idle) {
        Ok(()) => Some(CHECKPOINT_AFTER),
        Err(RecvTimeoutError::Timeout) => Some(Duration::ZERO),
        Err(RecvTimeoutError::Disconnected) => None,
    }
}

/// One PASSIVE checkpoint on the checkpoint thread's connection, timed into the metrics.
fn checkpoint_beside(conn: &Connection, metrics: &Metrics, failures: &mut u64) {
    let started = Instant::now();
    match conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        Ok(()) => metrics
            .wal_checkpoint_seconds
            .observe(started.elapsed().as_secs_f64()),
        // The writer's own checkpoints (WAL_AUTOCHECKPOINT_PAGES) still keep the WAL
        // bounded; say so once per hundred failures, not each time.
        Err(e) => {
            if failures.is_multiple_of(100) {
                tracing::warn!(error = %e, failures = *failures, "checkpointing the WAL beside the writer");
            }
            *failures += 1;
        }
    }
}

/// Jobs waiting for the writer. Senders wait when it is full, which slows readers of sockets
/// instead of growing memory.
const QUEUE: usize = 4096;

impl Writer {
    /// Starts the writer on a thread of its own with its own connection. It ends, after
    /// committing everything already queued, when `stop` turns true or every `Writer` handle
    /// is dropped.
    pub fn spawn(
        conn: Connection,
        around: Surroundings,
        fanout: Arc<dyn Fanout>,
        max_batch: usize,
        mut stop: watch::Receiver<bool>,
        observer: Option<Observer>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        // The thread cannot wait for `stop` and its queue at once, so `stop` arrives through
        // the queue. A weak handle: this task alone must not keep the writer alive.
        let weak = tx.downgrade();
        tokio::spawn(async move {
            if stop.wait_for(|s| *s).await.is_ok() {
                if let Some(tx) = weak.upgrade() {
                    let _ = tx.send(Cmd::Stop).await;
                }
            }
        });
        let handle = tokio::task::spawn_blocking(move || {
            let checkpointer = match Checkpointer::start(around.checkpoints, around.metrics.clone())
            {
                Ok(checkpointer) => Some(checkpointer),
                Err(e) => {
                    tracing::error!(error = %e, "starting the WAL checkpoint thread; the writer checkpoints alone");
                    None
                }
            };
            let guards = Guards {
                high_water: &around.high_water,
                space: &around.space,
                vault: &around.vault,
                metrics: around.metrics.clone(),
            };
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(
                    conn,
                    guards,
                    rx,
                    fanout,
                    max_batch.max(1),
                    observer,
                    checkpointer.as_ref(),
                )
            }));
            if let Some(checkpointer) = checkpointer {
                checkpointer.stop();
            }
            if ran.is_err() {
                engine_failed("writer");
            }
        });
        (Self { tx }, handle)
    }
}

#[async_trait]
impl MessageLog for Writer {
    async fn append(&self, msg: NewMessage, reply: Reply) -> Result<(), WriteFailed> {
        self.tx
            .send(Cmd::Send(Job { msg, reply }))
            .await
            .map_err(|_| WriteFailed::Internal)
    }

    fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    fn running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// What the writer works with besides its connection: the high-water record it keeps
/// (`guard.rs`), the disk's free space (`space.rs`), the vault that seals bodies and the
/// metrics it counts commits in.
pub struct Surroundings {
    pub high_water: Arc<HighWater>,
    pub space: Arc<DiskSpace>,
    pub vault: Arc<Vault>,
    pub metrics: Arc<Metrics>,
    /// The connection the WAL is checkpointed through, beside the writer
    /// (`SqliteStore::checkpointer_connection`).
    pub checkpoints: Connection,
}

/// What the writer answers to besides its queue: the high-water record it keeps, and the
/// disk's free space.
struct Guards<'a> {
    high_water: &'a HighWater,
    space: &'a DiskSpace,
    /// Seals each body as it is inserted (`vault.rs`).
    vault: &'a Vault,
    metrics: Arc<Metrics>,
}

/// Why a commit failed, as the sender hears it.
fn failure(e: &rusqlite::Error) -> WriteFailed {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => WriteFailed::StorageFull,
        _ => WriteFailed::Internal,
    }
}

fn run(
    mut conn: Connection,
    guards: Guards<'_>,
    mut rx: mpsc::Receiver<Cmd>,
    fanout: Arc<dyn Fanout>,
    max_batch: usize,
    observer: Option<Observer>,
    checkpointer: Option<&Checkpointer>,
) {
    let mut cmds: Vec<Cmd> = Vec::with_capacity(max_batch);
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut seqs = Seqs::new();
    let mut slow = SlowCommits::default();
    let mut key_recorded: Option<String> = None;
    // Publishing runs on a thread of its own, fed in commit order, so that the next commit
    // (and its fsync) overlaps the sends of the previous one: on one thread the two were
    // sequential, and that thread saturated first (docs/BENCHMARKS.md, twelfth round).
    let publisher = match Publisher::start(fanout, guards.metrics.clone()) {
        Ok(publisher) => publisher,
        Err(e) => {
            tracing::error!(error = %e, "starting the publisher thread; the writer does not run");
            return;
        }
    };
    let (to_publisher, publisher) = (publisher.queue, publisher.thread);
    // Every commit below adds one to the count in the database (`count_commit`); this is
    // the same count, kept here to write the high-water record (`guard.rs`).
    let mut commits: i64 = match conn.query_row(
        "SELECT message_commits FROM store_epoch WHERE id = 1",
        [],
        |row| row.get(0),
    ) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "reading the count of message commits; the writer does not run");
            return;
        }
    };
    loop {
        // Whatever queued up while the previous commit ran is the next commit: no waiting
        // for more (a window of 0.3-1 ms was measured: little less CPU, much more latency).
        if rx.blocking_recv_many(&mut cmds, max_batch) == 0 {
            break;
        }
        for cmd in cmds.drain(..) {
            match cmd {
                Cmd::Send(job) => batch.push(job),
                // Refuse new sends; what is queued is still committed.
                Cmd::Stop => rx.close(),
            }
        }
        if batch.is_empty() {
            continue;
        }
        // A key is recorded as used (durably) before the first row sealed with it.
        let active = guards.vault.active_key();
        if active.is_some() && active != key_recorded {
            let recorded = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO keys_used (key_id, first_used_at) VALUES (?, ?)",
                )
                .and_then(|mut s| s.execute((active.as_deref(), now_ms())));
            match recorded {
                Ok(_) => key_recorded = active.clone(),
                Err(e) => tracing::error!(error = %e, "recording the key in use"),
            }
        }
        let mut sealer = (active.is_some() && key_recorded == active)
            .then(|| guards.vault.sealer())
            .flatten();
        let started = Instant::now();
        let mut committing = Duration::ZERO;
        let outcomes: Vec<Result<Outcome, WriteFailed>> = if guards.space.is_full() {
            // Below the free-space floor: refused before SQLite meets a full disk.
            guards.space.refused(batch.len() as u64);
            batch
                .iter()
                .map(|_| Err(WriteFailed::StorageFull))
                .collect()
        } else {
            match commit_batch(
                &mut conn,
                &batch,
                &mut seqs,
                &mut committing,
                sealer.as_mut(),
            ) {
                Ok(outcomes) => {
                    commits += 1;
                    outcomes.into_iter().map(Ok).collect()
                }
                Err(e) if failure(&e) == WriteFailed::StorageFull => {
                    seqs.clear();
                    guards.space.ran_out();
                    guards.space.refused(batch.len() as u64);
                    batch
                        .iter()
                        .map(|_| Err(WriteFailed::StorageFull))
                        .collect()
                }
                Err(e) => {
                    // One bad job must not fail its neighbours: retry each on its own, with
                    // sequence numbers read afresh from the database.
                    tracing::warn!(error = %e, size = batch.len(), "group commit failed; retrying one by one");
                    seqs.clear();
                    let mut each = Vec::with_capacity(batch.len());
                    for job in &batch {
                        let one = commit_batch(
                            &mut conn,
                            std::slice::from_ref(job),
                            &mut seqs,
                            &mut committing,
                            sealer.as_mut(),
                        );
                        each.push(match one {
                            Ok(mut o) => {
                                commits += 1;
                                Ok(o.pop().expect("one outcome per job"))
                            }
                            Err(e) => {
                                tracing::error!(error = %e, conv = job.msg.conv, "storing a message failed");
                                Err(failure(&e))
                            }
                        });
                    }
                    each
                }
            }
        };
        // Durable now: recorded before anything of it is acknowledged.
        guards.high_water.record(commits);
        if let Some(checkpointer) = checkpointer {
            checkpointer.nudge();
        }
        slow.record(started.elapsed(), committing, batch.len());
        let committed = settle(
            batch.drain(..),
            outcomes,
            observer.as_ref(),
            &guards.metrics,
            committing,
        );
        if to_publisher.send(committed).is_err() {
            tracing::error!("the publisher thread ended; the writer stops");
            break;
        }
    }
    // Everything committed is published before the writer counts as stopped.
    drop(to_publisher);
    if publisher.join().is_err() {
        tracing::error!("the publisher thread panicked");
    }
    tracing::info!("message writer stopped");
}

/// The last sequence number of each conversation the writer has touched. Only the writer
/// changes them, so after a commit this is the truth without asking the database.
type Seqs = HashMap<i64, i64>;

/// Most rows in one INSERT statement. Batches are cut into power-of-two chunks up to this
/// size, so a handful of distinct statements cover every batch size and stay prepared.
const ROWS_PER_INSERT: usize = 128;

/// The highest sequence number stored in `conv` (0: none). The primary key makes this one
/// index lookup; only the writer adds messages, so afterwards it keeps the number in memory.
fn stored_last_seq(conn: &Connection, conv: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?")?
        .query_row([conv], |row| row.get(0))
}

/// Columns of one message row, in the order of [`insert_sql`].
const COLUMNS: usize = 9;

/// The multi-row INSERT for `rows` messages; a resend (same sender and client id in the
/// conversation) inserts nothing.
///
/// OR FAIL: a row breaking another constraint stops the statement where it is, without
/// undoing the rows before it, and the caller rolls back the whole transaction (every error
/// here does). That, and foreign keys checked at COMMIT (migration 0011), spare SQLite the
/// statement journal it would otherwise fill with a copy of every page the INSERT changes,
/// only to undo this one statement: 13% of the writer thread's time in the rooms pattern.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR FAIL INTO messages (conversation_id, seq, sender_id, client_id, body, created_at, kind, key_id, sealed) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?)");
    }
    sql.push_str(" ON CONFLICT (client_id, conversation_id, sender_id) DO NOTHING");
    sql
}

/// Binds one message's row at `row` (0-based) of a multi-row INSERT; with a `sealer`, the
/// body is sealed for its place (the plain column stays empty).
fn bind_row(
    stmt: &mut rusqlite::Statement<'_>,
    row: usize,
    msg: &NewMessage,
    seq: i64,
    now: i64,
    sealer: Option<&mut Sealer>,
) -> rusqlite::Result<()> {
    let at = row * COLUMNS;
    let body = msg.content.body();
    stmt.raw_bind_parameter(at + 1, msg.conv)?;
    stmt.raw_bind_parameter(at + 2, seq)?;
    stmt.raw_bind_parameter(at + 3, msg.sender)?;
    stmt.raw_bind_parameter(at + 4, msg.client_id.as_str())?;
    stmt.raw_bind_parameter(at + 6, now)?;
    stmt.raw_bind_parameter(at + 7, msg.content.kind().as_str())?;
    // The bytes are copied as they are bound, so the sealer's buffer serves the next row.
    let sealed = sealer
        .filter(|_| !body.is_empty())
        .and_then(|s| s.seal(msg.conv, seq, body.as_bytes()));
    match sealed {
        Some((key_id, bytes)) => {
            stmt.raw_bind_parameter(at + 5, "")?;
            stmt.raw_bind_parameter(at + 8, key_id)?;
            stmt.raw_bind_parameter(at + 9, bytes)
        }
        None => {
            stmt.raw_bind_parameter(at + 5, &*body)?;
            stmt.raw_bind_parameter(at + 8, rusqlite::types::Null)?;
            stmt.raw_bind_parameter(at + 9, rusqlite::types::Null)
        }
    }
}

/// Commits a batch in one transaction. The common case, every message new, takes one
/// multi-row INSERT per chunk; if any row turns out to be a resend (the idempotency index
/// skipped it), the transaction is rolled back and the batch is written message by message,
/// so that a resend never leaves a gap in the sequence numbers.
fn commit_batch(
    conn: &mut Connection,
    jobs: &[Job],
    seqs: &mut Seqs,
    committing: &mut Duration,
    mut sealer: Option<&mut Sealer>,
) -> rusqlite::Result<Vec<Outcome>> {
    let now = now_ms();
    // IMMEDIATE, as every writing transaction of the store (`store::BEGIN_WRITE`).
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut next: Seqs = HashMap::new();
    let mut assigned = Vec::with_capacity(jobs.len());
    for job in jobs {
        let conv = job.msg.conv;
        let last = match next.get(&conv).or_else(|| seqs.get(&conv)) {
            Some(last) => *last,
            None => stored_last_seq(&tx, conv)?,
        };
        next.insert(conv, last + 1);
        assigned.push(last + 1);
    }
    let mut inserted = 0;
    let mut start = 0;
    while start < jobs.len() {
        let left = jobs.len() - start;
        let size = if left >= ROWS_PER_INSERT {
            ROWS_PER_INSERT
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        let mut insert = tx.prepare_cached(&insert_sql(size))?;
        for row in 0..size {
            bind_row(
                &mut insert,
                row,
                &jobs[start + row].msg,
                assigned[start + row],
                now,
                sealer.as_deref_mut(),
            )?;
        }
        inserted += insert.raw_execute()?;
        start += size;
    }
    if inserted != jobs.len() {
        tx.rollback()?;
        return commit_each(conn, jobs, seqs, now, committing, sealer);
    }
    // Every job was inserted: each is new.
    apply_deletes(&tx, jobs.iter())?;
    count_commit(&tx)?;
    let commit = Instant::now();
    tx.commit()?;
    *committing += commit.elapsed();
    seqs.extend(next);
    Ok(jobs
        .iter()
        .zip(assigned)
        .map(|(job, seq)| Outcome::New(view_of(&job.msg, seq, now)))
        .collect())
}

/// Adds this commit to the database's count of message commits (see `guard.rs`).
fn count_commit(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE store_epoch SET message_commits = message_commits + 1 WHERE id = 1")?
        .execute([])?;
    Ok(())
}

/// Commits a batch in one transaction, one statement per message: a resend gets the
/// acknowledgement of the stored message and takes no sequence number.
fn commit_each(
    conn: &mut Connection,
    jobs: &[Job],
    seqs: &mut Seqs,
    now: i64,
    committing: &mut Duration,
    mut sealer: Option<&mut Sealer>,
) -> rusqlite::Result<Vec<Outcome>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut batch: Seqs = HashMap::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let conv = job.msg.conv;
        let last = match batch.get(&conv).or_else(|| seqs.get(&conv)) {
            Some(last) => *last,
            None => stored_last_seq(&tx, conv)?,
        };
        let outcome = write_one(&tx, &job.msg, last + 1, now, sealer.as_deref_mut())?;
        batch.insert(
            conv,
            if matches!(outcome, Outcome::New(_)) {
                last + 1
            } else {
                last
            },
        );
        outcomes.push(outcome);
    }
    let new = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| matches!(outcome, Outcome::New(_)))
        .map(|(job, _)| job);
    apply_deletes(&tx, new)?;
    count_commit(&tx)?;
    let commit = Instant::now();
    tx.commit()?;
    *committing += commit.elapsed();
    seqs.extend(batch);
    Ok(outcomes)
}

/// Inserts one message as `seq`, unless its client id was already stored (then returns the
/// stored acknowledgement; `seq` stays free for the next message).
fn write_one(
    conn: &Connection,
    msg: &NewMessage,
    seq: i64,
    now: i64,
    sealer: Option<&mut Sealer>,
) -> rusqlite::Result<Outcome> {
    let mut insert = conn.prepare_cached(&insert_sql(1))?;
    bind_row(&mut insert, 0, msg, seq, now, sealer)?;
    if insert.raw_execute()? == 0 {
        let (seq, at): (i64, i64) = conn
            .prepare_cached(
                "SELECT seq, created_at FROM messages
                 WHERE client_id = ? AND conversation_id = ? AND sender_id = ?",
            )?
            .query_row((msg.client_id.as_str(), msg.conv, msg.sender), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        return Ok(Outcome::Duplicate(Ack {
            conv: msg.conv,
            client_id: msg.client_id.as_str().to_owned(),
            seq,
            at,
        }));
    }
    Ok(Outcome::New(view_of(msg, seq, now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Body, ClientId};
    use tokio::sync::oneshot;

    fn text(conv: i64, sender: i64, client_id: &str) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            msg: NewMessage {
                conv,
                sender,
                sender_name: "Ann".to_owned(),
                client_id: ClientId::parse(client_id).expect("client id"),
                content: Content::Text(Body::parse("hello").expect("body")),
            },
            reply: Reply::Wait(reply),
        }
    }

    fn stored(conn: &Connection) -> Vec<(i64, i64, String)> {
        let mut stmt = conn
            .prepare("SELECT conversation_id, seq, client_id FROM messages ORDER BY 1, 2")
            .expect("select");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// A new store in a temporary folder (`m.db`), the writer's connection to it, a user
    /// (id 1) added through that connection, and a seeded room's id.
    async fn a_store_with_a_user() -> (
        tempfile::TempDir,
        crate::server::store::sqlite::SqliteStore,
        Connection,
        i64,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::server::store::sqlite::SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open");
        let conn = store.writer_connection().expect("writer connection");
        conn.execute(
            "INSERT INTO users (id, username, display_name, created_at) VALUES (1, 'ann', 'Ann', 0)",
            [],
        )
        .expect("a user");
        let room: i64 = conn
            .query_row("SELECT MIN(id) FROM conversations", [], |r| r.get(0))
            .expect("a seeded room");
        (dir, store, conn, room)
    }

    /// Rows of `table` in the database file itself, read from a copy of that file alone
    /// (without its WAL): what a checkpoint has copied there.
    fn in_the_file(dir: &std::path::Path, table: &str) -> i64 {
        let copy = dir.join("file-only.db");
        std::fs::copy(dir.join("m.db"), &copy).expect("copy the database file");
        let conn = Connection::open(&copy).expect("open the copy");
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    /// A `delete` that reuses the client id of a stored message is a resend of that
    /// message: it gets the stored acknowledgement and deletes nothing. (It had emptied
    /// the message it named, with no `delete` message stored to tell anyone.)
    #[tokio::test]
    async fn a_delete_with_a_stored_client_id_deletes_nothing() {
        let (_dir, _store, mut conn, room) = a_store_with_a_user().await;
        let mut committing = Duration::ZERO;
        let mut seqs = Seqs::new();
        for id in ["c1", "c2"] {
            commit_batch(
                &mut conn,
                &[text(room, 1, id)],
                &mut seqs,
                &mut committing,
                None,
            )
            .expect("a text");
        }
        let mut delete = text(room, 1, "c1");
        delete.msg.content = Content::Delete(2);
        let outcomes =
            commit_batch(&mut conn, &[delete], &mut seqs, &mut committing, None).expect("commit");
        assert!(
            matches!(&outcomes[..], [Outcome::Duplicate(Ack { seq: 1, .. })]),
            "the stored message's acknowledgement"
        );
        let kinds: Vec<(i64, String)> = conn
            .prepare("SELECT seq, kind FROM messages WHERE conversation_id = ? ORDER BY seq")
            .expect("select")
            .query_map([room], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            kinds,
            [(1, "text".to_owned()), (2, "text".to_owned())],
            "message 2 is untouched and no delete message was stored"
        );

        // A delete with a new client id still deletes, with its own message.
        let mut delete = text(room, 1, "c3");
        delete.msg.content = Content::Delete(2);
        commit_batch(&mut conn, &[delete], &mut seqs, &mut committing, None).expect("commit");
        let kind: String = conn
            .query_row(
                "SELECT kind FROM messages WHERE conversation_id = ? AND seq = 2",
                [room],
                |r| r.get(0),
            )
            .expect("message 2");
        assert_eq!(kind, "deleted");
    }

    /// Commits reach the database file through the checkpoints beside the writer: the
    /// writer's own commit leaves its message in the WAL only (its own checkpoint is far
    /// off), and one nudge copies it into the file.
    #[tokio::test]
    async fn the_checkpointer_copies_commits_into_the_database_file() {
        let (dir, store, mut conn, room) = a_store_with_a_user().await;
        // The schema and the rows so far in the file, so only the commit below is not.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        let mut committing = Duration::ZERO;
        commit_batch(
            &mut conn,
            &[text(room, 1, "a"), text(room, 1, "b")],
            &mut Seqs::new(),
            &mut committing,
            None,
        )
        .expect("commit");
        assert_eq!(
            in_the_file(dir.path(), "messages"),
            0,
            "the commit is in the WAL only"
        );

        let metrics = Arc::new(Metrics::new());
        let checkpointer = Checkpointer::start(
            store.checkpointer_connection().expect("connection"),
            metrics,
        )
        .expect("thread");
        checkpointer.nudge();
        // The pending nudge is served before the thread ends.
        checkpointer.stop();
        assert_eq!(
            in_the_file(dir.path(), "messages"),
            2,
            "both messages are in the file"
        );
    }

    /// Writes that are not messages (made through the pool: sign-ins, contacts, profiles)
    /// never nudge the checkpointer; they reach the database file all the same, by the
    /// checkpoint it makes after a while without nudges (the thread's loop, step by step).
    #[tokio::test]
    async fn other_writes_reach_the_database_file_without_a_nudge() {
        let (dir, store, conn, _room) = a_store_with_a_user().await;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        conn.execute(
            "INSERT INTO users (id, username, display_name, created_at) VALUES (2, 'bob', 'Bob', 0)",
            [],
        )
        .expect("a second user");
        assert_eq!(in_the_file(dir.path(), "users"), 1, "in the WAL only");

        let (writer, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let idle = Duration::from_millis(1);
        assert_eq!(
            pause_before_checkpoint(&nudged, idle),
            Some(Duration::ZERO),
            "with no nudge, a checkpoint is due once the idle time is over"
        );
        checkpoint_beside(
            &store.checkpointer_connection().expect("connection"),
            &Metrics::new(),
            &mut 0,
        );
        assert_eq!(
            in_the_file(dir.path(), "users"),
            2,
            "the checkpoint without a nudge copied the second user"
        );

        writer.try_send(()).expect("a nudge");
        assert_eq!(
            pause_before_checkpoint(&nudged, idle),
            Some(CHECKPOINT_AFTER)
        );
        writer.try_send(()).expect("a nudge");
        drop(writer);
        assert_eq!(
            pause_before_checkpoint(&nudged, idle),
            Some(CHECKPOINT_AFTER),
            "a nudge pending when the writer lets go is served"
        );
        assert_eq!(
            pause_before_checkpoint(&nudged, idle),
            None,
            "then the thread ends"
        );
    }

    /// The INSERT runs without a statement journal (OR FAIL, foreign keys checked at
    /// COMMIT), so what the journal guaranteed is checked here: a batch with a message to a
    /// conversation that does not exist stores nothing, leaves the sequence numbers as they
    /// were, and each message alone then fails or commits on its own.
    #[tokio::test]
    async fn a_batch_with_a_broken_reference_fails_whole_and_its_messages_then_alone() {
        // The folder and the store live to the end of the test.
        let (_dir, _store, mut conn, room) = a_store_with_a_user().await;
        let missing = room + 1_000_000;
        let mut seqs = Seqs::new();
        let mut committing = Duration::ZERO;
        let batch = [
            text(room, 1, "a"),
            text(missing, 1, "b"),
            text(room, 1, "c"),
        ];
        let failed = commit_batch(&mut conn, &batch, &mut seqs, &mut committing, None);
        assert!(failed.is_err(), "the missing conversation fails the batch");
        assert!(stored(&conn).is_empty(), "nothing of the batch is stored");
        assert!(seqs.is_empty(), "no sequence number was taken");
        assert!(conn.is_autocommit(), "the transaction was rolled back");

        let alone: Vec<bool> = batch
            .iter()
            .map(|job| {
                commit_batch(
                    &mut conn,
                    std::slice::from_ref(job),
                    &mut seqs,
                    &mut committing,
                    None,
                )
                .is_ok()
            })
            .collect();
        assert_eq!(alone, [true, false, true]);
        assert_eq!(
            stored(&conn),
            [(room, 1, "a".to_owned()), (room, 2, "c".to_owned())],
            "the good messages, numbered without a gap"
        );
        // A user that does not exist fails at COMMIT as well, and a bad kind at once.
        let stranger = text(room, 99, "d");
        assert!(commit_batch(&mut conn, &[stranger], &mut seqs, &mut committing, None).is_err());
        let bad_kind = conn.execute(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_id, body, created_at, kind)
             VALUES (?, 9, 1, 'e', '', 0, 'shout')",
            [room],
        );
        assert!(bad_kind.is_err(), "the kind is still checked");
        assert_eq!(stored(&conn).len(), 2);
    }

    #[test]
    fn slow_commits_are_reported_at_most_once_per_period_and_counted_between() {
        let mut slow = SlowCommits::default();
        let quick = SLOW_COMMIT / 2;
        slow.record(quick, quick, 3);
        assert_eq!(
            (slow.last_report, slow.unreported),
            (None, 0),
            "a quick commit"
        );
        slow.record(SLOW_COMMIT, SLOW_COMMIT, 3);
        let first = slow.last_report.expect("the first slow commit is reported");
        assert_eq!(slow.unreported, 0);
        slow.record(SLOW_COMMIT * 2, quick, 40);
        slow.record(SLOW_COMMIT * 3, quick, 40);
        assert_eq!(slow.last_report, Some(first), "not reported again so soon");
        assert_eq!(slow.unreported, 2, "but counted for the next report");
        // Once the period is over, the next slow commit is reported with the count.
        slow.last_report = Some(first - SLOW_COMMIT_REPORT_EVERY);
        slow.record(SLOW_COMMIT, quick, 1);
        assert!(slow.last_report.expect("reported") > first);
        assert_eq!(slow.unreported, 0);
    }
}
