//! A token bucket: `burst` tokens at most, refilled at `per_second`. Each allowed action
//! takes one; an empty bucket says how long until the next.

use std::time::{Duration, Instant};

/// How fast a bucket refills, and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second: per_second.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
        }
    }

    /// How long an empty bucket takes to fill.
    pub fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(self.burst / self.per_second)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }

    /// Takes a token; if there is none, how long until there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.take_n(rate, now, 1.0)
    }

    /// Takes `n` tokens at once (at most the burst, so that it can always be paid); if there
    /// are not that many, how long until there are.
    pub fn take_n(&mut self, rate: Rate, now: Instant, n: f64) -> Result<(), Duration> {
        let n = n.clamp(1.0, rate.burst);
        self.refill(rate, now);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - self.tokens) / rate.per_second))
        }
    }

    /// Gives a token back (for an action that turned out to cost nothing).
    pub fn give_back(&mut self, rate: Rate) {
        self.tokens = (self.tokens + 1.0).min(rate.burst);
    }

    /// Whether the bucket is full again (nothing of it needs remembering).
    pub fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= rate.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let rate = Rate::new(10.0, 3.0);
        let t0 = Instant::now();
        let mut b = Bucket::full(rate, t0);
        for _ in 0..3 {
            assert!(b.take(rate, t0).is_ok());
        }
        let wait = b.take(rate, t0).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(b.take(rate, t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take(rate, t0 + Duration::from_millis(100)).is_err());
        assert!(!b.is_full(rate, t0 + Duration::from_millis(200)));
        assert!(b.is_full(rate, t0 + Duration::from_millis(400)));
        b.give_back(rate);
        b.give_back(rate);
        b.give_back(rate);
        b.give_back(rate);
        assert!(b.is_full(rate, t0 + Duration::from_millis(100)));
    }

    #[test]
    fn several_tokens_at_once_and_never_more_than_the_burst() {
        let rate = Rate::new(10.0, 6.0);
        let t0 = Instant::now();
        let mut b = Bucket::full(rate, t0);
        assert!(b.take_n(rate, t0, 3.0).is_ok());
        assert!(b.take_n(rate, t0, 3.0).is_ok());
        let wait = b.take_n(rate, t0, 3.0).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.3).abs() < 1e-9, "{wait:?}");
        // A cost above the burst costs the burst: a full bucket always pays it.
        let later = t0 + Duration::from_secs(1);
        assert!(b.take_n(rate, later, 50.0).is_ok());
        assert!(b.take_n(rate, later, 1.0).is_err());
    }
}
