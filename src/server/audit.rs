//! The audit log: security-relevant events (sign-ins and failed ones with the address,
//! sign-outs and revoked sessions, key rotation and retirement, backups), append-only in the
//! database, each entry carrying the SHA-256 of the previous entry and of its own fields, so
//! an edited, inserted or removed entry breaks the chain. `messenger audit verify` checks it
//! and names the first broken entry; `messenger audit export` writes JSON lines; with
//! `--audit-sink FILE` every entry is also appended to FILE as it happens.

pub use crate::server::store::audit::{verify, AuditStore, Entry, NewEntry, Verdict, GENESIS};
use crate::server::store::now_ms;
use std::{io::Write, path::Path, sync::Mutex};

/// Records entries: in the store, and in the sink file if there is one.
pub struct Audit {
    store: std::sync::Arc<dyn AuditStore>,
    sink: Option<Mutex<std::fs::File>>,
}

impl Audit {
    pub fn new(store: std::sync::Arc<dyn AuditStore>, sink: Option<&Path>) -> anyhow::Result<Self> {
        let sink = match sink {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        anyhow::anyhow!("opening the audit sink {}: {e}", path.display())
                    })?,
            )),
            None => None,
        };
        Ok(Self { store, sink })
    }

    /// Records an event. A failure to record is logged, loudly, and does not undo what
    /// happened (the event did happen).
    pub async fn record(&self, entry: NewEntry) {
        match self.store.append(&entry, now_ms()).await {
            Ok(stored) => {
                if let Some(sink) = &self.sink {
                    let mut file = sink.lock().unwrap_or_else(|p| p.into_inner());
                    if let Ok(line) = serde_json::to_string(&stored) {
                        if let Err(e) = writeln!(file, "{line}") {
                            tracing::error!(error = %e, "writing to the audit sink");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, event = entry.event, "recording an audit entry failed")
            }
        }
    }
}

/// An entry about `user` done by themselves from `address`.
pub fn by_user(
    event: &'static str,
    user: i64,
    address: Option<String>,
    detail: serde_json::Value,
) -> NewEntry {
    NewEntry {
        event,
        user: Some(user),
        actor: format!("user:{user}"),
        address,
        detail,
    }
}
