//! The limits with long windows, kept in the store so that they hold across restarts:
//! failed sign-ins (per address, per account from one address, per account), accounts and
//! guests created per address, bot replies per address. Each is a token bucket given as an [`Allowance`].

use crate::server::store::{now_ms, BucketRate, LimitStore, Result};
use std::{fmt, str::FromStr, sync::Arc, time::Duration};

/// `burst` at once, and `burst` more each `period` (written `20/10m`: twenty, then two a
/// minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub burst: u32,
    pub period: Duration,
}

impl Allowance {
    pub const fn new(burst: u32, period: Duration) -> Self {
        Self { burst, period }
    }

    /// So much that nothing is ever refused (tests, the load tool).
    pub const UNLIMITED: Allowance = Allowance::new(1_000_000_000, Duration::from_secs(1));

    fn rate(self) -> BucketRate {
        let burst = f64::from(self.burst.max(1));
        BucketRate {
            burst,
            per_ms: burst / (self.period.as_millis().max(1) as f64),
        }
    }
}

/// A period like `90s`, `10m`, `12h` or `30d` (a number and a unit; `h` alone is one hour).
pub fn period(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a period like 30d, 12h, 10m or 90s");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = if n.is_empty() {
        1
    } else {
        n.parse().map_err(|_| bad())?
    };
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

impl FromStr for Allowance {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!("{s:?} is not an allowance like 20/10m (20, and 20 more every 10 minutes; units s, m, h, d)")
        };
        let (burst, every) = s.trim().split_once('/').ok_or_else(bad)?;
        let burst: u32 = burst.trim().parse().map_err(|_| bad())?;
        let seconds = period(every).map_err(|_| bad())?.as_secs();
        if burst == 0 || seconds == 0 {
            return Err(bad());
        }
        Ok(Self::new(burst, Duration::from_secs(seconds)))
    }
}

impl fmt::Display for Allowance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.period.as_secs();
        match s {
            s if s % 86_400 == 0 => write!(f, "{}/{}d", self.burst, s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}/{}h", self.burst, s / 3600),
            s if s % 60 == 0 => write!(f, "{}/{}m", self.burst, s / 60),
            s => write!(f, "{}/{s}s", self.burst),
        }
    }
}

/// What a stored limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Failed sign-ins from one address, whatever the account.
    SignInAddress,
    /// Failed sign-ins to one account from one address.
    SignInAccountAddress,
    /// Failed sign-ins to one account from anywhere (beyond it a solved challenge is
    /// asked for, not a wait: a wait would let anyone lock the owner out).
    SignInAccount,
    /// Accounts created from one address.
    SignUpAddress,
    /// Guests created from one address.
    GuestAddress,
    /// Bot replies to the users of one address.
    BotAddress,
    /// Files one user shares.
    UploadUser,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Self::SignInAddress => "signin_address",
            Self::SignInAccountAddress => "signin_account_address",
            Self::SignInAccount => "signin_account",
            Self::SignUpAddress => "signup_address",
            Self::GuestAddress => "guest_address",
            Self::BotAddress => "bot_address",
            Self::UploadUser => "upload_user",
        }
    }
}

/// The allowances of each scope.
#[derive(Debug, Clone, Copy)]
pub struct Allowances {
    pub signin_address: Allowance,
    pub signin_account_address: Allowance,
    pub signin_account: Allowance,
    pub signup_address: Allowance,
    pub guest_address: Allowance,
    pub bot_address: Allowance,
    pub upload_user: Allowance,
}

impl Allowances {
    fn of(&self, scope: Scope) -> Allowance {
        match scope {
            Scope::SignInAddress => self.signin_address,
            Scope::SignInAccountAddress => self.signin_account_address,
            Scope::SignInAccount => self.signin_account,
            Scope::SignUpAddress => self.signup_address,
            Scope::GuestAddress => self.guest_address,
            Scope::BotAddress => self.bot_address,
            Scope::UploadUser => self.upload_user,
        }
    }
}

/// The stored limits.
pub struct StoredLimits {
    store: Arc<dyn LimitStore>,
    allowances: Allowances,
}

impl StoredLimits {
    pub fn new(store: Arc<dyn LimitStore>, allowances: Allowances) -> Self {
        Self { store, allowances }
    }

    /// Takes one from `scope`'s bucket for `key`; if there is none, how long until there is.
    pub async fn take(&self, scope: Scope, key: &str) -> Result<std::result::Result<(), Duration>> {
        let rate = self.allowances.of(scope).rate();
        Ok(self
            .store
            .take_token(scope.name(), key, rate, now_ms())
            .await?
            .map_err(|ms| Duration::from_millis(ms.max(1) as u64)))
    }

    /// Gives back what [`take`](Self::take) took (the attempt turned out to count for
    /// nothing).
    pub async fn give_back(&self, scope: Scope, key: &str) -> Result<()> {
        let rate = self.allowances.of(scope).rate();
        self.store.give_token(scope.name(), key, rate).await
    }

    /// Forgets buckets that are full again (they hold nothing worth keeping).
    pub async fn forget_full(&self) -> Result<u64> {
        self.store.forget_full_buckets(now_ms()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowances_read_and_print_as_burst_over_period() {
        let a: Allowance = "20/10m".parse().expect("valid");
        assert_eq!(a, Allowance::new(20, Duration::from_secs(600)));
        assert_eq!(a.to_string(), "20/10m");
        assert_eq!(
            "5/h".parse::<Allowance>(),
            Ok(Allowance::new(5, Duration::from_secs(3600)))
        );
        assert_eq!(
            "3/45s".parse::<Allowance>().map(|a| a.to_string()),
            Ok("3/45s".into())
        );
        for bad in ["", "20", "0/1m", "5/0m", "5/10x", "x/1m", "5/m1"] {
            assert!(bad.parse::<Allowance>().is_err(), "{bad:?}");
        }
        let rate = Allowance::new(20, Duration::from_secs(600)).rate();
        assert!((rate.per_ms * 600_000.0 - 20.0).abs() < 1e-9);
    }
}
