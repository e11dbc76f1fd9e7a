//! Operators' SQL over the analytics database (the admin console's SQL page): one reading
//! statement at a time, on a read-only connection that can attach nothing else (so the
//! message database is out of reach), stopped after a time limit, at most a number of rows.
//! Anything else gets a clear refusal.

use anyhow::Context;
use rusqlite::{limits::Limit, types::ValueRef, Connection, OpenFlags};
use serde::Serialize;
use std::{
    path::Path,
    sync::mpsc,
    time::{Duration, Instant},
};

/// Longest a query may run.
pub const TIME_LIMIT: Duration = Duration::from_secs(3);
/// Most rows a query returns.
pub const ROW_CAP: usize = 1000;
/// Longest query text.
pub const MAX_SQL: usize = 8 * 1024;

/// A query's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// More rows existed beyond [`ROW_CAP`].
    pub truncated: bool,
    pub millis: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// Why a query was not run, or stopped; said to the operator as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("Write a query first.")]
    Empty,
    #[error("A query is at most {MAX_SQL} characters.")]
    TooLong,
    #[error("One statement at a time.")]
    Several,
    #[error("Only reading statements (SELECT, WITH ..., EXPLAIN) run here.")]
    NotReading,
    #[error("The query ran for more than {} seconds and was stopped.", TIME_LIMIT.as_secs())]
    TooSlow,
    #[error("SQLite says: {0}")]
    Sql(String),
}

/// The ready-made queries the page offers: (title, SQL).
pub const READY_MADE: [(&str, &str); 5] = [
    (
        "Logins per hour",
        "SELECT strftime('%Y-%m-%d %H:00', at / 1000, 'unixepoch') AS hour,\n       SUM(succeeded) AS succeeded, SUM(NOT succeeded) AS failed\nFROM logins GROUP BY hour ORDER BY hour",
    ),
    (
        "Messages per minute by conversation type",
        "SELECT strftime('%Y-%m-%d %H:%M', at / 1000, 'unixepoch') AS minute,\n       SUM(messages * (conversation_type = 'dm')) AS dm,\n       SUM(messages * (conversation_type = 'group')) AS grp,\n       SUM(messages * (conversation_type = 'room')) AS room\nFROM messages_sent GROUP BY minute ORDER BY minute",
    ),
    (
        "AI invocations by persona and outcome",
        "SELECT persona, outcome, COUNT(*) AS calls, ROUND(AVG(latency_ms)) AS avg_ms\nFROM ai_invocations GROUP BY persona, outcome ORDER BY calls DESC",
    ),
    (
        "Bot latency p50 and p95",
        "SELECT persona,\n  (SELECT latency_ms FROM ai_invocations b WHERE b.persona = a.persona ORDER BY latency_ms\n     LIMIT 1 OFFSET (COUNT(*) * 50 / 100)) AS p50_ms,\n  (SELECT latency_ms FROM ai_invocations b WHERE b.persona = a.persona ORDER BY latency_ms\n     LIMIT 1 OFFSET (COUNT(*) * 95 / 100)) AS p95_ms,\n  COUNT(*) AS calls\nFROM ai_invocations a WHERE latency_ms IS NOT NULL GROUP BY persona ORDER BY persona",
    ),
    (
        "Web vitals p75 by page",
        "SELECT page, metric, value AS p75 FROM (\n  SELECT page, metric, value,\n         ROW_NUMBER() OVER (PARTITION BY page, metric ORDER BY value) AS n,\n         COUNT(*) OVER (PARTITION BY page, metric) AS total\n  FROM web_vitals)\nWHERE n = (total * 3 + 3) / 4 ORDER BY page, metric",
    ),
];

/// Runs `sql` on the analytics database at `path` (blocking: call it off the async threads).
pub fn run(path: &Path, sql: &str) -> Result<Table, Refused> {
    let sql = sql.trim().trim_end_matches(';').trim();
    if sql.is_empty() {
        return Err(Refused::Empty);
    }
    if sql.chars().count() > MAX_SQL {
        return Err(Refused::TooLong);
    }
    if has_second_statement(sql) {
        return Err(Refused::Several);
    }
    let conn = open(path).map_err(|e| Refused::Sql(format!("{e:#}")))?;
    let started = Instant::now();
    let mut stmt = conn.prepare(sql).map_err(|e| match e {
        rusqlite::Error::MultipleStatement => Refused::Several,
        other => Refused::Sql(other.to_string()),
    })?;
    if !stmt.readonly() {
        return Err(Refused::NotReading);
    }
    // A watchdog interrupts the query at the time limit.
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(TIME_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            interrupt.interrupt();
            true
        } else {
            false
        }
    });
    let columns: Vec<String> = stmt
        .column_names()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let width = columns.len();
    let result = (|| {
        let mut rows = Vec::new();
        let mut truncated = false;
        let mut cursor = stmt.raw_query();
        while let Some(row) = cursor.next()? {
            if rows.len() == ROW_CAP {
                truncated = true;
                break;
            }
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Real(v) => Cell::Real(v),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Cell::Text(format!("<{} bytes>", b.len())),
                });
            }
            rows.push(cells);
        }
        Ok::<_, rusqlite::Error>((rows, truncated))
    })();
    let _ = done.send(());
    let interrupted = watchdog.join().unwrap_or(false);
    match result {
        Ok((rows, truncated)) => Ok(Table {
            columns,
            rows,
            truncated,
            millis: started.elapsed().as_millis() as u64,
        }),
        Err(_) if interrupted => Err(Refused::TooSlow),
        Err(e) => Err(Refused::Sql(e.to_string())),
    }
}

/// Whether a `;` outside quotes and comments is followed by more than blanks (SQLite would
/// quietly prepare only the first statement).
fn has_second_statement(sql: &str) -> bool {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                return sql[i + 1..]
                    .split(|c: char| c == ';' || c.is_whitespace())
                    .any(|w| !w.is_empty());
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// A read-only connection that can attach no other database.
fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} to read", path.display()))?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    conn.busy_timeout(Duration::from_secs(1))?;
    conn.execute_batch("PRAGMA query_only = 1")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("analytics.db");
        let conn = crate::server::analytics::open(&path).expect("open");
        conn.execute_batch(
            "INSERT INTO events (at, event, d1) VALUES (0, 'login_success', 'form'), (3600000, 'login_failure', 'form');",
        )
        .expect("rows");
        (dir, path)
    }

    #[test]
    fn reading_queries_run_and_everything_else_is_refused() {
        let (dir, path) = database();
        let t = run(&path, READY_MADE[0].1).expect("runs");
        assert_eq!(t.columns, ["hour", "succeeded", "failed"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(run(&path, "  ;"), Err(Refused::Empty));
        assert_eq!(run(&path, "DELETE FROM events"), Err(Refused::NotReading));
        assert_eq!(
            run(&path, "SELECT 1; DELETE FROM events"),
            Err(Refused::Several)
        );
        // A `;` in a string or a comment is not a second statement; a trailing one is fine.
        assert!(run(&path, "SELECT ';' AS a -- b; c\n;").is_ok());
        assert!(run(&path, "SELECT 1 /* ; */").is_ok());
        let other = dir.path().join("messenger.db");
        std::fs::write(&other, b"").expect("file");
        let attach = run(&path, &format!("ATTACH '{}' AS m", other.display()));
        assert!(attach.is_err(), "{attach:?}");
        assert!(matches!(
            run(&path, "SELECT nope FROM nothing"),
            Err(Refused::Sql(_))
        ));
        // Nothing was changed.
        let n = run(&path, "SELECT COUNT(*) FROM events").expect("count");
        assert_eq!(n.rows, [[Cell::Int(2)]]);
    }

    #[test]
    fn rows_are_capped_and_slow_queries_stopped() {
        let (_dir, path) = database();
        let many = run(
            &path,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 5000) SELECT i FROM n",
        )
        .expect("runs");
        assert_eq!(many.rows.len(), ROW_CAP);
        assert!(many.truncated);
        let slow = run(
            &path,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n",
        );
        assert_eq!(slow, Err(Refused::TooSlow));
    }
}
