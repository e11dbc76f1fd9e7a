//! Analytics events, for operators' SQL: what happened, when, with a few dimensions and
//! numbers, never a message's text nor who wrote it. They go to a database file of their
//! own (`--analytics-database`, by default `analytics.db` beside the messages), never the
//! message database, and are written off the hot path: [`Analytics::record`] puts an event
//! on a bounded queue and returns at once; a thread writes what the queue holds in one
//! transaction at a time. When the queue is full the event is dropped and counted
//! (`messenger_analytics_dropped_total`): delivery never waits for analytics. Events older
//! than `--analytics-retention` (90 days) are deleted every hour.
//!
//! Every event is one row of `events`: `at` (milliseconds), `event`, three text dimensions
//! `d1`..`d3` and two numbers `n1`, `n2`, whose meaning depends on the event; a view per
//! event names them (`docs/ANALYTICS.md`). The one event as frequent as messages,
//! `message_sent`, is rolled up by the writer into a row per second, kind and conversation
//! type, with how many and their total size: a row per message cost a quarter of the
//! durable commit rate on the 2-core benchmark machine (docs/BENCHMARKS.md).

use crate::server::metrics::Metrics;
use anyhow::Context;
use rusqlite::Connection;
use std::{
    borrow::Cow,
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc,
    },
    time::{Duration, Instant},
};

/// Events waiting for the writer: several ticks' worth at the fastest this server commits
/// messages (about 4.5 MB when full); beyond this, new ones are dropped.
pub const QUEUE: usize = crate::server::config::ANALYTICS_QUEUE;
/// Most events in one transaction.
const BATCH: usize = 2048;
/// How often old events are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: i64,
    pub event: &'static str,
    // Mostly fixed names: borrowed, so that recording one allocates nothing.
    pub d1: Option<Cow<'static, str>>,
    pub d2: Option<Cow<'static, str>>,
    pub d3: Option<Cow<'static, str>>,
    pub n1: Option<f64>,
    pub n2: Option<f64>,
}

impl Event {
    pub fn new(event: &'static str) -> Self {
        Self {
            at: crate::server::store::now_ms(),
            event,
            d1: None,
            d2: None,
            d3: None,
            n1: None,
            n2: None,
        }
    }
    pub fn d1(mut self, v: impl Into<Cow<'static, str>>) -> Self {
        self.d1 = Some(v.into());
        self
    }
    pub fn d2(mut self, v: impl Into<Cow<'static, str>>) -> Self {
        self.d2 = Some(v.into());
        self
    }
    pub fn d3(mut self, v: impl Into<Cow<'static, str>>) -> Self {
        self.d3 = Some(v.into());
        self
    }
    pub fn n1(mut self, v: f64) -> Self {
        self.n1 = Some(v);
        self
    }
    pub fn n2(mut self, v: f64) -> Self {
        self.n2 = Some(v);
        self
    }
}

/// The schema, with a view per event that names its columns.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id    INTEGER PRIMARY KEY,
    at    INTEGER NOT NULL,
    event TEXT    NOT NULL,
    d1    TEXT,
    d2    TEXT,
    d3    TEXT,
    n1    REAL,
    n2    REAL
);
CREATE INDEX IF NOT EXISTS events_by_event ON events(event, at);
CREATE VIEW IF NOT EXISTS signups AS
    SELECT at, d1 AS how FROM events WHERE event = 'signup';
CREATE VIEW IF NOT EXISTS logins AS
    SELECT at, event = 'login_success' AS succeeded, d1 AS how FROM events
    WHERE event IN ('login_success', 'login_failure');
DROP VIEW IF EXISTS messages_sent;
CREATE VIEW messages_sent AS
    SELECT at, d1 AS kind, d2 AS conversation_type, n2 AS messages, n1 AS size FROM events
    WHERE event = 'message_sent';
CREATE VIEW IF NOT EXISTS ai_invocations AS
    SELECT at, d1 AS persona, d2 AS provider, d3 AS outcome, n1 AS latency_ms, n2 AS characters
    FROM events WHERE event = 'ai_invocation';
CREATE VIEW IF NOT EXISTS sockets AS
    SELECT at, event = 'socket_open' AS opened, n1 AS close_code, n2 AS seconds FROM events
    WHERE event IN ('socket_open', 'socket_close');
CREATE VIEW IF NOT EXISTS rate_limits AS
    SELECT at, d1 AS what FROM events WHERE event = 'rate_limited';
CREATE VIEW IF NOT EXISTS web_vitals AS
    SELECT at, d1 AS page, d2 AS device, d3 AS metric, n1 AS value FROM events
    WHERE event = 'web_vital';
";

/// The analytics database beside the message database `database`.
pub fn default_path(database: &Path) -> PathBuf {
    database
        .parent()
        .map_or_else(|| PathBuf::from("analytics.db"), |d| d.join("analytics.db"))
}

/// Where a server with this configuration keeps its analytics.
pub fn path_of(cfg: &crate::server::config::StoreConfig) -> PathBuf {
    cfg.analytics_database
        .clone()
        .unwrap_or_else(|| default_path(&cfg.files_base()))
}

/// Opens (and creates) the analytics database with its schema.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the analytics folder {}", dir.display()))?;
    }
    let conn = Connection::open(path)
        .with_context(|| format!("opening the analytics database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Losing the last events to a power cut is acceptable here; slowing the disk the
    // messages need is not.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
    )?;
    conn.execute_batch(SCHEMA)
        .with_context(|| format!("creating the analytics schema in {}", path.display()))?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// The handle events are recorded through.
#[derive(Clone)]
pub struct Analytics {
    tx: Option<SyncSender<Event>>,
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl Analytics {
    /// Starts the writer thread on the database at `path`, keeping events for `retention`,
    /// with room for `queue` events waiting (normally [`QUEUE`]).
    pub fn start(
        path: &Path,
        retention: Duration,
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let conn = open(path)?;
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name("analytics".into())
            .spawn(move || {
                // The lowest priority: when the machine is busy, delivery gets the CPU and
                // events wait (and, past the queue, are dropped and counted).
                let me = rustix::thread::gettid();
                if let Err(e) = rustix::process::setpriority_process(Some(me), 19) {
                    tracing::warn!(error = %e, "lowering the analytics writer's priority");
                }
                write(conn, rx, retention)
            })
            .context("starting the analytics writer")?;
        Ok(Self {
            tx: Some(tx),
            dropped: Arc::default(),
            metrics,
        })
    }

    /// A handle that records nothing (`--analytics off`).
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self {
            tx: None,
            dropped: Arc::default(),
            metrics,
        }
    }

    /// Queues an event; never waits. A full queue drops it (counted).
    pub fn record(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.analytics_dropped.inc();
            }
        }
    }

    /// Events dropped since start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A second (its start, in milliseconds), a kind and a conversation type.
type Rollup = (i64, Option<Cow<'static, str>>, Option<Cow<'static, str>>);

/// How often the writer takes what the queue holds. It never waits on the queue itself: a
/// waiting reader would have to be woken by every event (a system call on the sender's
/// thread, per message sent), so it sleeps instead and takes everything at each tick.
const TICK: Duration = Duration::from_millis(25);

/// The writer: every [`TICK`], writes what the queue holds (a transaction per batch);
/// prunes old events now and then. Ends when every handle is gone.
fn write(mut conn: Connection, rx: Receiver<Event>, retention: Duration) {
    let mut last_prune: Option<Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    // The seconds being counted: a second's row is written once the second is over (one
    // row per second, kind and conversation type, and no transaction per tick while
    // messages flow: 40 a second cost the fan-out 5 % of its CPU, docs/BENCHMARKS.md).
    let mut sent: HashMap<Rollup, (f64, f64)> = HashMap::new();
    loop {
        std::thread::sleep(TICK);
        let mut gone = false;
        loop {
            match rx.try_recv() {
                // One row per second, kind and conversation type: the count and the sizes.
                Ok(e) if e.event == "message_sent" => {
                    let key = (e.at.div_euclid(1000) * 1000, e.d1, e.d2);
                    let sums = sent.entry(key).or_default();
                    sums.0 += e.n1.unwrap_or(0.0);
                    sums.1 += 1.0;
                }
                Ok(e) => {
                    batch.push(e);
                    if batch.len() == BATCH {
                        flush(&mut conn, &mut batch);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        // Seconds that are over (all of them when the server stops).
        let this_second = crate::server::store::now_ms().div_euclid(1000) * 1000;
        let done: Vec<Rollup> = sent
            .keys()
            .filter(|(at, _, _)| gone || *at < this_second)
            .cloned()
            .collect();
        for key in done {
            if let Some((size, count)) = sent.remove(&key) {
                let (at, kind, conv) = key;
                batch.push(Event {
                    at,
                    event: "message_sent",
                    d1: kind,
                    d2: conv,
                    d3: None,
                    n1: Some(size),
                    n2: Some(count),
                });
            }
        }
        flush(&mut conn, &mut batch);
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let cutoff = crate::server::store::now_ms() - retention.as_millis() as i64;
            match conn.execute("DELETE FROM events WHERE at < ?", [cutoff]) {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "old analytics events deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "deleting old analytics events"),
            }
        }
        if gone {
            return;
        }
    }
}

fn flush(conn: &mut Connection, batch: &mut Vec<Event>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = insert(conn, batch) {
        tracing::warn!(error = %e, lost = batch.len(), "writing analytics events");
    }
    batch.clear();
}

/// Rows per INSERT statement: one statement for many rows costs less than a statement each.
const ROWS: usize = 64;

fn insert(conn: &mut Connection, events: &[Event]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for chunk in events.chunks(ROWS) {
        let sql = insert_sql(chunk.len());
        let mut stmt = tx.prepare_cached(&sql)?;
        for (row, e) in chunk.iter().enumerate() {
            let at = row * 7;
            stmt.raw_bind_parameter(at + 1, e.at)?;
            stmt.raw_bind_parameter(at + 2, e.event)?;
            stmt.raw_bind_parameter(at + 3, e.d1.as_deref())?;
            stmt.raw_bind_parameter(at + 4, e.d2.as_deref())?;
            stmt.raw_bind_parameter(at + 5, e.d3.as_deref())?;
            stmt.raw_bind_parameter(at + 6, e.n1)?;
            stmt.raw_bind_parameter(at + 7, e.n2)?;
        }
        stmt.raw_execute()?;
    }
    tx.commit()
}

/// The INSERT of `rows` events (the full chunk's statement stays prepared).
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO events (at, event, d1, d2, d3, n1, n2) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?)");
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, _rx) = mpsc::sync_channel(2);
        let a = Analytics {
            tx: Some(tx),
            dropped: Arc::default(),
            metrics: Arc::new(Metrics::new()),
        };
        for _ in 0..5 {
            a.record(Event::new("signup"));
        }
        assert_eq!(a.dropped(), 3);
    }

    #[test]
    fn events_land_in_their_views() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("analytics.db");
        let mut conn = open(&path).expect("open");
        insert(
            &mut conn,
            &[
                Event::new("message_sent")
                    .d1("text")
                    .d2("dm")
                    .n1(12.0)
                    .n2(1.0),
                Event::new("ai_invocation")
                    .d1("zen_router")
                    .d2("offline")
                    .d3("answered")
                    .n1(5.0)
                    .n2(40.0),
            ],
        )
        .expect("insert");
        let (kind, conv, size): (String, String, f64) = conn
            .query_row(
                "SELECT kind, conversation_type, size FROM messages_sent WHERE messages = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("row");
        assert_eq!((kind.as_str(), conv.as_str(), size), ("text", "dm", 12.0));
        let outcome: String = conn
            .query_row("SELECT outcome FROM ai_invocations", [], |r| r.get(0))
            .expect("row");
        assert_eq!(outcome, "answered");
        // Opening again keeps what is there.
        drop(conn);
        let conn = open(&path).expect("again");
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2);
    }
}
