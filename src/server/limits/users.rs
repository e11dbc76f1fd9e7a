//! Per-user rates, shared by all of a user's sockets: one user with twenty tabs gets what
//! one user gets. Each connection holds its user's [`UserRates`]; the registry keeps them
//! after the last socket closes until the buckets are full again, so reconnecting does not
//! refill them.
//!
//! In memory: these buckets fill in seconds, sooner than the server restarts, so a
//! restart gives nobody more than they would have had by waiting. (Limits with long windows,
//! such as sign-in guesses, are stored.)

use super::rate::{Bucket, Rate};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// What the rates are.
#[derive(Debug, Clone, Copy)]
pub struct UserRateConfig {
    /// Every frame a client sends (the socket is not read while the bucket is empty).
    pub frames: Rate,
    /// Messages, nudges and deletions (refused with `rate_limited` beyond).
    pub messages: Rate,
}

/// One user's buckets.
pub struct UserRates {
    config: UserRateConfig,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    frames: Bucket,
    messages: Bucket,
}

impl UserRates {
    fn new(config: UserRateConfig) -> Self {
        let now = Instant::now();
        Self {
            config,
            buckets: Mutex::new(Buckets {
                frames: Bucket::full(config.frames, now),
                messages: Bucket::full(config.messages, now),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one client frame; if the user has used up their frames, how long to wait.
    pub fn frame(&self) -> Result<(), Duration> {
        self.lock().frames.take(self.config.frames, Instant::now())
    }

    /// Counts one client frame of a user connected to `nodes` nodes (this one included):
    /// each node lets through its share of the rate, so that over every node the user gets
    /// one rate (docs/SCALING.md).
    pub fn frame_on(&self, nodes: usize) -> Result<(), Duration> {
        if nodes <= 1 {
            return self.frame();
        }
        self.lock()
            .frames
            .take_n(self.config.frames, Instant::now(), nodes as f64)
    }

    /// Counts one message; false when the user sends too fast.
    pub fn message(&self) -> bool {
        self.lock()
            .messages
            .take(self.config.messages, Instant::now())
            .is_ok()
    }

    /// Gives back a message that cost nothing (refused before it was stored).
    pub fn message_back(&self) {
        self.lock().messages.give_back(self.config.messages);
    }

    fn is_full(&self, now: Instant) -> bool {
        let b = self.lock();
        b.frames.is_full(self.config.frames, now) && b.messages.is_full(self.config.messages, now)
    }
}

/// Every user's rates.
pub struct UserRateRegistry {
    config: UserRateConfig,
    users: Mutex<HashMap<i64, Arc<UserRates>>>,
}

impl UserRateRegistry {
    pub fn new(config: UserRateConfig) -> Self {
        Self {
            config,
            users: Mutex::default(),
        }
    }

    /// The user's rates (the same for all their sockets).
    pub fn of(&self, user: i64) -> Arc<UserRates> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            users
                .entry(user)
                .or_insert_with(|| Arc::new(UserRates::new(self.config))),
        )
    }

    /// Forgets the users with no socket open whose buckets are full again; returns how many
    /// are kept. Run every so often.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.retain(|_, rates| Arc::strong_count(rates) > 1 || !rates.is_full(now));
        users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> UserRateConfig {
        UserRateConfig {
            frames: Rate::new(1000.0, 5.0),
            messages: Rate::new(0.001, 2.0),
        }
    }

    #[test]
    fn every_socket_of_a_user_draws_on_the_same_buckets() {
        let registry = UserRateRegistry::new(config());
        let (a, b) = (registry.of(1), registry.of(1));
        assert!(a.message());
        assert!(b.message());
        assert!(
            !a.message(),
            "the third message over two sockets is refused"
        );
        assert!(registry.of(2).message(), "another user has their own");
    }

    #[test]
    fn closing_every_socket_does_not_refill_the_buckets() {
        let registry = UserRateRegistry::new(config());
        let a = registry.of(1);
        assert!(a.message() && a.message());
        drop(a);
        assert_eq!(registry.sweep(), 1, "kept while not full");
        assert!(!registry.of(1).message());
        let idle = registry.of(3);
        drop(idle);
        assert_eq!(
            registry.sweep(),
            1,
            "a full bucket with no socket is forgotten"
        );
    }

    #[test]
    fn on_several_nodes_each_lets_through_its_share_of_the_frames() {
        let slow = UserRateConfig {
            frames: Rate::new(0.001, 6.0),
            messages: Rate::new(0.001, 2.0),
        };
        let registry = UserRateRegistry::new(slow);
        let user = registry.of(1);
        let allowed = (0..10).filter(|_| user.frame_on(3).is_ok()).count();
        assert_eq!(allowed, 2, "a third of the burst on each of three nodes");
        let alone = registry.of(2);
        let allowed = (0..10).filter(|_| alone.frame_on(1).is_ok()).count();
        assert_eq!(allowed, 6, "the whole burst on one node");
    }
}
