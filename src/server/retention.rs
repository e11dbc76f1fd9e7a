//! Retention: messages older than the server's period (`--retention`) or a conversation's
//! own (`messenger retention set`; the shorter wins) are deleted by a job that runs every
//! `--retention-every`, a few hundred per transaction so the message writer never waits
//! long. Each conversation keeps a watermark, "messages below N expired": history pages
//! carry it, so a reader is told that earlier messages expired instead of seeing a gap.
//! The newest message of a conversation gives the next one its number, so when it expires
//! it is emptied (a tombstone) rather than removed.

use super::{
    audit::{Audit, NewEntry},
    error::Result,
    store::{account::AccountStore, now_ms},
};
use std::{sync::Arc, time::Duration};

/// Messages deleted per transaction.
const BATCH: i64 = 500;

/// The period that applies to a conversation whose own is `own` (milliseconds) on a
/// server whose own is `global`: the shorter of the two.
fn period_ms(global: Option<Duration>, own: Option<i64>) -> Option<i64> {
    let global = global.map(|d| d.as_millis() as i64);
    match (global, own) {
        (Some(g), Some(o)) => Some(g.min(o)),
        (g, o) => g.or(o),
    }
}

pub struct Retention {
    store: Arc<dyn AccountStore>,
    /// The server's period; None: messages are kept unless a conversation says otherwise.
    global: Option<Duration>,
    audit: Arc<Audit>,
}

impl Retention {
    pub fn new(store: Arc<dyn AccountStore>, global: Option<Duration>, audit: Arc<Audit>) -> Self {
        Self {
            store,
            global,
            audit,
        }
    }

    /// Deletes every message that has expired at `now`; how many. Recorded in the audit
    /// log when anything was.
    pub async fn run(&self, now: i64) -> Result<u64> {
        let mut total = 0u64;
        let mut conversations = 0u64;
        for r in self.store.retained().await? {
            let Some(period) = period_ms(self.global, r.retention_ms) else {
                continue;
            };
            let cutoff = now - period;
            let mut here = 0;
            loop {
                let n = self.store.expire_some(r.conv, cutoff, BATCH).await?;
                here += n;
                if n < BATCH as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if here > 0 {
                conversations += 1;
                total += here;
            }
        }
        if total > 0 {
            tracing::info!(messages = total, conversations, "expired messages deleted");
            self.audit
                .record(NewEntry {
                    event: "retention_run",
                    user: None,
                    actor: "server".into(),
                    address: None,
                    detail: serde_json::json!({
                        "messages": total,
                        "conversations": conversations,
                    }),
                })
                .await;
        }
        Ok(total)
    }

    /// Runs the job every `every`, for ever, the first time `every` after start (a run at
    /// once would race what a fresh server does; the tests run it themselves).
    pub async fn run_every(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            if let Err(e) = self.run(now_ms()).await {
                tracing::warn!(error = %e, "the retention job failed; it runs again later");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_period_wins() {
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(period_ms(day, None), Some(86_400_000));
        assert_eq!(period_ms(day, Some(1000)), Some(1000));
        assert_eq!(period_ms(day, Some(2 * 86_400_000)), Some(86_400_000));
        assert_eq!(period_ms(None, None), None);
        assert_eq!(period_ms(None, Some(5)), Some(5));
    }
}
