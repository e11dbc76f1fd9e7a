//! In-process fan-out: one bounded broadcast channel per active conversation, and a registry
//! of each user's live connections for control messages (new conversation, session ended).
//!
//! The maps sit behind a std `Mutex` that is never held across an `.await`.

use crate::protocol::ConversationSummary;
use axum::extract::ws::Utf8Bytes;
use futures::channel::mpsc;
use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};
use tokio::sync::broadcast;

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

/// Capacity of each connection's control queue; control messages are rare. The queue is
/// futures' channel, which allocates per message: tokio's preallocates a block of 32 slots
/// and pads its state to cache lines, ~1.3 KiB kept by every idle connection.
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
    /// Set by [`Hub::close_all`]: the server is shutting down, and a connection that
    /// registers from now on is told to close at once.
    closing: Option<(u16, &'static str)>,
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
        // The channel holds `buffer` plus one message per sender; the hub is the one sender.
        let (mut tx, rx) = mpsc::channel(CONTROL_CAPACITY - 1);
        let mut inner = self.lock();
        if let Some((code, reason)) = inner.closing {
            let _ = tx.try_send(Control::Close { code, reason });
        }
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
    /// queue is full is not keeping up at all: its queue is closed, which ends the
    /// connection with [`crate::protocol::close::FELL_BEHIND`], and the client reconnects
    /// to a `hello` that has everything it missed. Nothing is dropped silently.
    pub fn notify_user(&self, user: i64, control: Control) {
        self.send_where(user, |_| true, control);
    }

    /// Closes every connection opened with `session_id` (one with a full queue too, the
    /// same way as in [`Hub::notify_user`]; it cannot reconnect without a session).
    pub fn end_session(&self, user: i64, session_id: i64, code: u16, reason: &'static str) {
        self.send_where(
            user,
            |c| c.session_id == session_id,
            Control::Close { code, reason },
        );
    }

    /// Tells every connection, present and future, to close (shutdown). A connection whose
    /// queue is full has its queue closed instead: it ends with
    /// [`crate::protocol::close::FELL_BEHIND`], and its client reconnects as it would after
    /// `GOING_AWAY`.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        let mut inner = self.lock();
        inner.closing = Some((code, reason));
        for conn in inner.users.values_mut().flatten() {
            if conn.tx.try_send(Control::Close { code, reason }).is_err() {
                conn.tx.close_channel();
            }
        }
    }

    fn send_where(&self, user: i64, pick: impl Fn(&Conn) -> bool, control: Control) {
        let mut inner = self.lock();
        for conn in inner
            .users
            .get_mut(&user)
            .into_iter()
            .flatten()
            .filter(|c| pick(c))
        {
            if conn
                .tx
                .try_send(control.clone())
                .is_err_and(|e| e.is_full())
            {
                tracing::warn!(
                    user,
                    conn = conn.id,
                    "control queue full; closing the connection so that it reconnects"
                );
                conn.tx.close_channel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc::TryRecvError;

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
        assert!(
            matches!(rx_b.try_recv(), Err(TryRecvError::Empty)),
            "nothing queued for the other session, and its queue still open"
        );
    }

    #[tokio::test]
    async fn closing_all_reaches_open_connections_full_queues_and_later_ones() {
        let hub = Hub::new(2);
        let (_a, mut open) = hub.register(1, 100);
        let (_b, mut full) = hub.register(2, 200);
        for n in 0..CONTROL_CAPACITY {
            hub.notify_user(2, Control::Removed(n as i64));
        }
        hub.close_all(1001, "server restarting");
        assert!(matches!(
            open.try_recv(),
            Ok(Control::Close { code: 1001, .. })
        ));
        // The full queue still hands over what it held, then ends.
        for _ in 0..CONTROL_CAPACITY {
            assert!(matches!(full.try_recv(), Ok(Control::Removed(_))));
        }
        assert!(
            matches!(full.try_recv(), Err(TryRecvError::Closed)),
            "the queue was closed"
        );
        let (_c, mut late) = hub.register(3, 300);
        assert!(matches!(
            late.try_recv(),
            Ok(Control::Close { code: 1001, .. })
        ));
    }

    #[tokio::test]
    async fn a_full_control_queue_hands_over_what_it_holds_then_ends_the_connection() {
        let hub = Hub::new(2);
        let (_a, mut rx) = hub.register(1, 100);
        for n in 0..CONTROL_CAPACITY + 5 {
            hub.notify_user(1, Control::Removed(n as i64));
        }
        for n in 0..CONTROL_CAPACITY {
            assert!(matches!(rx.try_recv(), Ok(Control::Removed(c)) if c == n as i64));
        }
        assert!(
            matches!(rx.try_recv(), Err(TryRecvError::Closed)),
            "the queue was closed: the connection ends and its client reconnects"
        );
    }
}
