//! Slots for WebSocket connections: at most so many per user, per address and in all. A
//! connection holds its [`Slot`] for as long as it lives; dropping it gives the slot back.

use super::address_key;
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Why a connection was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    /// The user has as many sockets open as one user may.
    User,
    /// The address has as many sockets open as one address may.
    Address,
    /// The server has as many sockets open as its descriptors allow.
    Full,
}

/// The caps, and what is open now.
pub struct SocketSlots {
    per_user: u32,
    per_address: u32,
    total: u64,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: u64,
    users: HashMap<i64, u32>,
    addresses: HashMap<IpAddr, u32>,
}

impl SocketSlots {
    pub fn new(per_user: u32, per_address: u32, total: u64) -> Arc<Self> {
        Arc::new(Self {
            per_user,
            per_address,
            total,
            open: Mutex::default(),
        })
    }

    /// The most sockets open at once.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Takes a slot for a connection of `user` from `addr`, if every cap allows it.
    pub fn take(self: &Arc<Self>, user: i64, addr: IpAddr) -> Result<Slot, SlotRefusal> {
        let addr = address_key(addr);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.total {
            return Err(SlotRefusal::Full);
        }
        if open.users.get(&user).copied().unwrap_or(0) >= self.per_user {
            return Err(SlotRefusal::User);
        }
        if open.addresses.get(&addr).copied().unwrap_or(0) >= self.per_address {
            return Err(SlotRefusal::Address);
        }
        open.total += 1;
        *open.users.entry(user).or_insert(0) += 1;
        *open.addresses.entry(addr).or_insert(0) += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            user,
            addr,
        })
    }

    /// Sockets open now, in all.
    pub fn open(&self) -> u64 {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    fn give_back(&self, user: i64, addr: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.users.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                open.users.remove(&user);
            }
        }
        if let Some(n) = open.addresses.get_mut(&addr) {
            *n -= 1;
            if *n == 0 {
                open.addresses.remove(&addr);
            }
        }
    }
}

/// One connection's place; given back when dropped.
pub struct Slot {
    slots: Arc<SocketSlots>,
    user: i64,
    addr: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.give_back(self.user, self.addr);
    }
}

/// The descriptor limit after raising the soft limit to the hard one (logged), and the
/// sockets it leaves room for once `reserve` descriptors are kept for everything else (at
/// most a quarter of the limit is reserved).
pub fn raise_descriptor_limit(reserve: u64) -> (u64, u64) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(limit, "file descriptor limit");
            limit
        }
        Err(e) => {
            let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024);
            tracing::warn!(error = %e, limit, "the file descriptor limit could not be raised");
            limit
        }
    };
    let reserve = reserve.min(limit / 4);
    (limit, limit.saturating_sub(reserve))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal address")
    }

    #[test]
    fn each_cap_refuses_once_reached_and_a_dropped_slot_frees_its_place() {
        let slots = SocketSlots::new(2, 3, 5);
        let a = slots.take(1, ip("10.0.0.1")).expect("first");
        let _b = slots.take(1, ip("10.0.0.1")).expect("second");
        assert_eq!(slots.take(1, ip("10.0.0.2")).err(), Some(SlotRefusal::User));
        let _c = slots.take(2, ip("10.0.0.1")).expect("another user");
        assert_eq!(
            slots.take(3, ip("10.0.0.1")).err(),
            Some(SlotRefusal::Address)
        );
        let _d = slots.take(3, ip("10.0.0.2")).expect("another address");
        let _e = slots.take(4, ip("10.0.0.3")).expect("fifth");
        assert_eq!(slots.take(5, ip("10.0.0.4")).err(), Some(SlotRefusal::Full));
        drop(a);
        assert_eq!(slots.open(), 4);
        slots.take(1, ip("10.0.0.4")).expect("the freed place");
    }
}
