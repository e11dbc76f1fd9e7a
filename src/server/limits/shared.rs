//! A user's message rate across nodes (`--nats`, docs/SCALING.md). On one node, a user's
//! sockets share one bucket in memory (`users.rs`); with several nodes a user's sockets may
//! be on several, so each node also takes the user's messages from one bucket in the shared
//! database, exact however many nodes take from it at once.
//!
//! Not one database write per message: a node leases a few tokens at a time (a fifth of the
//! burst) and spends them locally. A lease is spent within [`LEASE_LIFE`] or dropped, so
//! tokens taken from the shared bucket can only be used fewer times, never more: a user
//! never sends more than the bucket gives out, on however many nodes.

use crate::server::store::{now_ms, BucketRate, LeaseStore};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long leased tokens may wait on a node before they are dropped.
pub const LEASE_LIFE: Duration = Duration::from_secs(1);

/// The scope of the shared buckets in the store.
const SCOPE: &str = "user_messages";

/// The shared message buckets, and this node's leases from them.
pub struct SharedRates {
    store: Arc<dyn LeaseStore>,
    rate: BucketRate,
    /// Tokens leased at once.
    chunk: u32,
    /// Per user: tokens leased and not yet spent, and when they were leased.
    leases: Mutex<HashMap<i64, (u32, Instant)>>,
}

impl SharedRates {
    /// `per_second` messages a second, up to `burst` at once, per user over every node.
    pub fn new(store: Arc<dyn LeaseStore>, per_second: f64, burst: f64) -> Self {
        Self {
            store,
            rate: BucketRate {
                burst,
                per_ms: per_second / 1000.0,
            },
            chunk: ((burst / 5.0).floor() as u32).max(1),
            leases: Mutex::default(),
        }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (u32, Instant)>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one message of `user`'s; false when the user has sent their share everywhere.
    /// If the database cannot be asked, the message is let through: each node's own bucket
    /// still holds, and the send itself needs the database anyway.
    pub async fn take(&self, user: i64) -> bool {
        if self.spend(user) {
            return true;
        }
        match self
            .store
            .lease_tokens(SCOPE, &user.to_string(), self.rate, self.chunk, now_ms())
            .await
        {
            Ok(0) => false,
            Ok(got) => {
                let mut leases = self.leases();
                // A fresh lease's tokens keep their own age; a stale one is replaced.
                let lease = leases.entry(user).or_insert((0, Instant::now()));
                *lease = if lease.1.elapsed() < LEASE_LIFE {
                    (lease.0 + got - 1, lease.1)
                } else {
                    (got - 1, Instant::now())
                };
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, user, "leasing from the shared message rate; let through");
                true
            }
        }
    }

    /// Spends a leased token, if a fresh one is there.
    fn spend(&self, user: i64) -> bool {
        let mut leases = self.leases();
        match leases.get_mut(&user) {
            Some((left, at)) if *left > 0 && at.elapsed() < LEASE_LIFE => {
                *left -= 1;
                true
            }
            Some(_) => {
                leases.remove(&user);
                false
            }
            None => false,
        }
    }

    /// Gives back a message that cost nothing (refused before it was stored): spendable
    /// again on this node while its lease lasts.
    pub fn give_back(&self, user: i64) {
        if let Some((left, at)) = self.leases().get_mut(&user) {
            if at.elapsed() < LEASE_LIFE {
                *left += 1;
            }
        }
    }

    /// Forgets leases too old to spend.
    pub fn sweep(&self) {
        self.leases().retain(|_, (_, at)| at.elapsed() < LEASE_LIFE);
    }
}
