//! A circuit breaker for the language-model provider. Closed: calls go through. After
//! `failures_to_open` failures (errors or timeouts) in a row it opens: no calls, the offline
//! engine answers. After `cooldown` it lets one probe through (half-open): a success closes
//! it, a failure opens it again. Time comes from a [`Clock`], so tests move it by hand.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Where the breaker reads the time.
pub trait Clock: Send + Sync {
    /// Time elapsed since some fixed start.
    fn now(&self) -> Duration;
}

/// The real clock.
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { since: Duration },
    HalfOpen { probing: bool },
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Call the provider.
    Call,
    /// Call the provider as the one probe of a half-open breaker.
    Probe,
    /// Do not call it: answer offline.
    Fallback,
}

pub struct Breaker {
    state: Mutex<State>,
    failures_to_open: u32,
    cooldown: Duration,
    clock: Arc<dyn Clock>,
}

impl Breaker {
    pub fn new(failures_to_open: u32, cooldown: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            failures_to_open: failures_to_open.max(1),
            cooldown,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn permit(&self) -> Permit {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Permit::Call,
            State::Open { since } if self.clock.now().saturating_sub(since) >= self.cooldown => {
                *state = State::HalfOpen { probing: true };
                Permit::Probe
            }
            State::Open { .. } | State::HalfOpen { probing: true } => Permit::Fallback,
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Permit::Probe
            }
        }
    }

    /// A granted probe was not made after all: the next caller may probe instead.
    pub fn abandon_probe(&self) {
        let mut state = self.lock();
        if *state == (State::HalfOpen { probing: true }) {
            *state = State::HalfOpen { probing: false };
        }
    }

    /// The call (or probe) succeeded.
    pub fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// The call (or probe) failed or timed out.
    pub fn failure(&self) {
        let now = self.clock.now();
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.failures_to_open => State::Closed {
                failures: failures + 1,
            },
            State::Closed { .. } | State::HalfOpen { .. } => State::Open { since: now },
            open @ State::Open { .. } => open,
        };
    }

    /// "closed", "open" or "half-open", for logs and tests.
    pub fn state(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that only moves when told to.
    #[derive(Default)]
    pub struct ManualClock(AtomicU64);

    impl ManualClock {
        pub fn advance(&self, by: Duration) {
            self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Duration {
            Duration::from_millis(self.0.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn opens_after_failures_in_a_row_probes_after_the_cooldown_and_closes_on_success() {
        let clock = Arc::new(ManualClock::default());
        let b = Breaker::new(3, Duration::from_secs(30), clock.clone());
        assert_eq!(b.permit(), Permit::Call);
        b.failure();
        b.failure();
        // A success in between starts the count again.
        b.success();
        b.failure();
        b.failure();
        assert_eq!(b.state(), "closed");
        b.failure();
        assert_eq!(b.state(), "open");
        assert_eq!(b.permit(), Permit::Fallback);
        clock.advance(Duration::from_secs(29));
        assert_eq!(b.permit(), Permit::Fallback);
        clock.advance(Duration::from_secs(1));
        // One probe at a time.
        assert_eq!(b.permit(), Permit::Probe);
        assert_eq!(b.state(), "half-open");
        assert_eq!(b.permit(), Permit::Fallback);
        b.success();
        assert_eq!(b.state(), "closed");
        assert_eq!(b.permit(), Permit::Call);
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_whole_cooldown() {
        let clock = Arc::new(ManualClock::default());
        let b = Breaker::new(1, Duration::from_secs(10), clock.clone());
        b.failure();
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.permit(), Permit::Probe);
        clock.advance(Duration::from_secs(5));
        b.failure();
        assert_eq!(b.state(), "open");
        clock.advance(Duration::from_secs(9));
        assert_eq!(b.permit(), Permit::Fallback);
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.permit(), Permit::Probe);
    }
}
