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
//! event names them (`docs/ANALYTICS.md`).

use crate::server::metrics::Metrics;
use anyhow::Context;
use rusqlite::Connection;
use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc,
    },
    time::{Duration, Instant},
};

/// Events waiting for the writer; beyond this, new ones are dropped.
pub const QUEUE: usize = 8192;
/// Most events in one transaction.
const BATCH: usize = 2048;
/// How often old events are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: i64,
    pub event: &'static str,
    pub d1: Option<String>,
    pub d2: Option<String>,
    pub d3: Option<String>,
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
    pub fn d1(mut self, v: impl Into<String>) -> Self {
        self.d1 = Some(v.into());
        self
    }
    pub fn d2(mut self, v: impl Into<String>) -> Self {
        self.d2 = Some(v.into());
        self
    }
    pub fn d3(mut self, v: impl Into<String>) -> Self {
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
CREATE INDEX IF NOT EXISTS events_by_time ON events(at);
CREATE VIEW IF NOT EXISTS signups AS
    SELECT at, d1 AS how FROM events WHERE event = 'signup';
CREATE VIEW IF NOT EXISTS logins AS
    SELECT at, event = 'login_success' AS succeeded, d1 AS how FROM events
    WHERE event IN ('login_success', 'login_failure');
CREATE VIEW IF NOT EXISTS messages_sent AS
    SELECT at, d1 AS kind, d2 AS conversation_type, n1 AS size FROM events
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
        .unwrap_or_else(|| default_path(&cfg.database))
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
    /// Starts the writer thread on the database at `path`, keeping events for `retention`.
    pub fn start(path: &Path, retention: Duration, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let conn = open(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("analytics".into())
            .spawn(move || write(conn, rx, retention))
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

/// The writer: waits for an event, takes what else is queued (up to a batch), writes them
/// in one transaction; prunes old events now and then. Ends when every handle is gone.
fn write(mut conn: Connection, rx: Receiver<Event>, retention: Duration) {
    let mut last_prune: Option<Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter().take(BATCH - 1));
        if let Err(e) = insert(&mut conn, &batch) {
            tracing::warn!(error = %e, lost = batch.len(), "writing analytics events");
        }
        batch.clear();
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let cutoff = crate::server::store::now_ms() - retention.as_millis() as i64;
            match conn.execute("DELETE FROM events WHERE at < ?", [cutoff]) {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "old analytics events deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "deleting old analytics events"),
            }
        }
    }
}

fn insert(conn: &mut Connection, events: &[Event]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (at, event, d1, d2, d3, n1, n2) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?;
        for e in events {
            stmt.execute((e.at, e.event, &e.d1, &e.d2, &e.d3, e.n1, e.n2))?;
        }
    }
    tx.commit()
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
                Event::new("message_sent").d1("text").d2("dm").n1(12.0),
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
                "SELECT kind, conversation_type, size FROM messages_sent",
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
