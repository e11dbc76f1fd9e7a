//! In-process fan-out: one bounded broadcast channel per active conversation, and a registry
//! of each user's live connections for control messages (new conversation, session ended).
//!
//! The maps sit behind a std `Mutex` that is never held across an `.await`.

use crate::protocol::ConversationSummary;
use axum::extract::ws::Utf8Bytes;
use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};
use tokio::sync::{broadcast, mpsc};

/// A committed message, serialised once for every recipient; or, with `seq` 0
/// ([`EPHEMERAL`]), a frame that is passed on to live members only and never stored
/// (typing indicators).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: i64,
    /// The whole `msg` frame as JSON text; cloning shares the bytes.
    pub frame: Utf8Bytes,
}

/// The `seq` of a [`Delivery`] that is not a stored message.
pub const EPHEMERAL: i64 = 0;

/// What the hub asks of a connection.
#[derive(Debug, Clone)]
pub enum Control {
    /// The user is now a member of this conversation: subscribe and tell the client.
    /// Boxed: the control queue preallocates a block of 32 slots per connection, so its
    /// element stays small (24 bytes instead of ~80).
    Added(Box<ConversationSummary>),
    /// The user left this conversation: unsubscribe and tell the client.
    Removed(i64),
    /// Send this frame (already serialised; boxed for the same reason).
    Frame(Box<Utf8Bytes>),
    /// Close the socket with this code and reason.
    Close { code: u16, reason: &'static str },
}

/// Capacity of each connection's control queue; control messages are rare.
const CONTROL_CAPACITY: usize = 32;

struct Conn {
    id: u64,
    session_id: i64,
    tx: mpsc::Sender<Control>,
}

#[derive(Default)]
struct Inner {
    /// Conversation id to its channel; removed when its last receiver goes.
    convs: HashMap<i64, broadcast::Sender<Delivery>>,
    /// User id to that user's open connections (one per tab or client).
    users: HashMap<i64, Vec<Conn>>,
    next_conn: u64,
}

/// The fan-out hub. Cheap to share behind an `Arc`.
pub struct Hub {
    inner: Mutex<Inner>,
    /// Messages a conversation's channel buffers for its slowest receiver.
    capacity: usize,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind, still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Receives every message of `conv` published from now on.
    pub fn subscribe(&self, conv: i64) -> broadcast::Receiver<Delivery> {
        let capacity = self.capacity;
        self.lock()
            .convs
            .entry(conv)
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe()
    }

    /// Sends to every subscriber of `conv`; with none, forgets the channel.
    pub fn publish(&self, conv: i64, delivery: Delivery) {
        let mut inner = self.lock();
        if let Some(tx) = inner.convs.get(&conv) {
            if tx.send(delivery).is_err() {
                inner.convs.remove(&conv);
            }
        }
    }

    /// Forgets `conv`'s channel if nobody listens any more (called as connections close).
    pub fn release(&self, conv: i64) {
        let mut inner = self.lock();
        if inner
            .convs
            .get(&conv)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            inner.convs.remove(&conv);
        }
    }

    /// Number of conversations with a live channel (for tests and metrics).
    pub fn active_channels(&self) -> usize {
        self.lock().convs.len()
    }

    /// Registers a connection of `user` under `session_id`; returns its id and control queue.
    pub fn register(&self, user: i64, session_id: i64) -> (u64, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(CONTROL_CAPACITY);
        let mut inner = self.lock();
        inner.next_conn += 1;
        let id = inner.next_conn;
        inner
            .users
            .entry(user)
            .or_default()
            .push(Conn { id, session_id, tx });
        (id, rx)
    }

    pub fn unregister(&self, user: i64, conn: u64) {
        let mut inner = self.lock();
        if let Some(conns) = inner.users.get_mut(&user) {
            conns.retain(|c| c.id != conn);
            if conns.is_empty() {
                inner.users.remove(&user);
            }
        }
    }

    /// Number of open connections of `user`.
    pub fn connections_of(&self, user: i64) -> usize {
        self.lock().users.get(&user).map_or(0, Vec::len)
    }

    /// Sends a control message to every connection of `user`. A connection whose control
    /// queue is full is not keeping up at all; it is told to close instead.
    pub fn notify_user(&self, user: i64, control: Control) {
        self.send_where(user, |_| true, control);
    }

    /// Closes every connection opened with `session_id`.
    pub fn end_session(&self, user: i64, session_id: i64, code: u16, reason: &'static str) {
        self.send_where(
            user,
            |c| c.session_id == session_id,
            Control::Close { code, reason },
        );
    }

    fn send_where(&self, user: i64, pick: impl Fn(&Conn) -> bool, control: Control) {
        let inner = self.lock();
        for conn in inner
            .users
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|c| pick(c))
        {
            if let Err(mpsc::error::TrySendError::Full(_)) = conn.tx.try_send(control.clone()) {
                tracing::warn!(
                    user,
                    conn = conn.id,
                    "control queue full; connection will resync on reconnect"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(seq: i64) -> Delivery {
        Delivery {
            seq,
            frame: Utf8Bytes::from(format!("{{\"seq\":{seq}}}")),
        }
    }

    #[tokio::test]
    async fn a_channel_is_forgotten_once_its_last_receiver_is_gone() {
        let hub = Hub::new(4);
        let rx = hub.subscribe(7);
        assert_eq!(hub.active_channels(), 1);
        drop(rx);
        hub.release(7);
        assert_eq!(hub.active_channels(), 0);
        // Publishing to a conversation nobody listens to keeps nothing around.
        hub.publish(8, delivery(1));
        assert_eq!(hub.active_channels(), 0);
    }

    #[tokio::test]
    async fn a_receiver_further_behind_than_the_capacity_learns_it_lagged() {
        let hub = Hub::new(2);
        let mut rx = hub.subscribe(1);
        for seq in 1..=5 {
            hub.publish(1, delivery(seq));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
        assert_eq!(rx.recv().await.unwrap().seq, 4);
    }

    #[tokio::test]
    async fn ending_a_session_closes_only_that_sessions_connections() {
        let hub = Hub::new(2);
        let (_a, mut rx_a) = hub.register(1, 100);
        let (_b, mut rx_b) = hub.register(1, 200);
        hub.end_session(1, 100, 4001, "signed out");
        assert!(matches!(
            rx_a.try_recv(),
            Ok(Control::Close { code: 4001, .. })
        ));
        assert!(rx_b.try_recv().is_err());
    }
}
