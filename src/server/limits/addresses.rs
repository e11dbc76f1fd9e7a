//! A token bucket per address, in memory (for what is too cheap to count in the store:
//! web-vitals beacons). The map is bounded: past its size, the buckets that are full again
//! are forgotten first.

use super::rate::{Bucket, Rate};
use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Instant};

/// Addresses remembered at most.
const MAX_ADDRESSES: usize = 100_000;

#[derive(Default)]
pub struct AddressBuckets {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AddressBuckets {
    /// Takes one from `from`'s bucket at `rate`; false if it is empty.
    pub fn take(&self, from: IpAddr, rate: Rate) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_ADDRESSES {
            buckets.retain(|_, b| !b.is_full(rate, now));
        }
        buckets
            .entry(from)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
            .is_ok()
    }
}
