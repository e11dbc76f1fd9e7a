//! The in-process fan-out. The hub keeps, per active conversation, the inboxes of the
//! connections subscribed to it, and a registry of each user's connections for control
//! messages (new conversation, session ended).
//!
//! Publishing a commit hands each conversation's serialised frames (shared, not copied) to
//! each subscriber in one call: the connection's inbox writes them straight into its socket
//! when it can, or queues them and wakes the connection once.
//!
//! The maps sit behind a std `Mutex` that is never held across an `.await`; publishing takes
//! it only to copy out the conversations' subscriber lists (`Arc`s, copied on write).

use super::{AckOut, Control, Delivery, Fanout, Frame, Inbox};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
};

/// Told when a conversation gets its first subscriber on this node (`true`) or loses its
/// last (`false`): what a fan-out between nodes listens to. Called with the hub's lock held,
/// so it only records.
pub type Watch = Arc<dyn Fn(i64, bool) + Send + Sync>;

/// Acknowledgements sorted for [`LocalHub::publish`]: those that ride with their
/// connection's copy of a conversation's messages, keyed by `(connection, conversation)`,
/// and the others, in order.
type Riding = HashMap<(u64, i64), Owing>;
/// A connection's inbox and acknowledgements to write there, in order.
type Owing = (Arc<dyn Inbox>, Vec<Frame>);

fn split_acks(acks: Vec<AckOut>) -> (Riding, Vec<Owing>) {
    let mut riding = Riding::new();
    let mut after = Vec::new();
    if acks.is_empty() {
        return (riding, after);
    }
    // Per connection, the one conversation all its acknowledgements follow, if there is one.
    let mut follows: HashMap<u64, Option<i64>> = HashMap::new();
    for ack in &acks {
        follows
            .entry(ack.conn)
            .and_modify(|f| {
                if *f != ack.follows {
                    *f = None;
                }
            })
            .or_insert(ack.follows);
    }
    for ack in acks {
        match follows[&ack.conn] {
            Some(conv) => riding
                .entry((ack.conn, conv))
                .or_insert_with(|| (ack.inbox, Vec::new()))
                .1
                .push(ack.frame),
            None => after.push((ack.inbox, vec![ack.frame])),
        }
    }
    (riding, after)
}

/// Hands `group` to every inbox of `inboxes`. From `SPLIT_AT` of them, the second half goes
/// on a thread of its own and the first on this one, and this returns when both are done,
/// so that the next publish cannot overtake any of them (each connection's frames stay in
/// order); if no thread can be started, this one does both halves.
fn deliver_to(group: &[(i64, Delivery)], inboxes: &[&Arc<dyn Inbox>], scratch: &mut Vec<u8>) {
    let deliver = |inboxes: &[&Arc<dyn Inbox>], scratch: &mut Vec<u8>| {
        // The next mailboxes load while this one's socket write runs in the kernel: each
        // inbox two ahead, then what it points to one ahead (docs/BENCHMARKS.md).
        for inbox in inboxes.iter().take(2) {
            inbox.prefetch();
        }
        if let Some(first) = inboxes.first() {
            first.prefetch_linked();
        }
        for (k, inbox) in inboxes.iter().enumerate() {
            if let Some(next) = inboxes.get(k + 2) {
                next.prefetch();
            }
            if let Some(next) = inboxes.get(k + 1) {
                next.prefetch_linked();
            }
            inbox.deliver(group, &[], scratch);
        }
    };
    if inboxes.len() < SPLIT_AT {
        return deliver(inboxes, scratch);
    }
    let (here, there) = inboxes.split_at(inboxes.len() / 2);
    std::thread::scope(|scope| {
        let beside = std::thread::Builder::new()
            .name("publisher-2".to_owned())
            .spawn_scoped(scope, || deliver(there, &mut Vec::new()));
        deliver(here, scratch);
        if beside.is_err() {
            deliver(there, scratch);
        }
    });
}

struct Conn {
    id: u64,
    session_id: i64,
    inbox: Arc<dyn Inbox>,
}

/// A conversation's subscribers. Copied on write: publishing clones the `Arc` under the lock
/// and fills the inboxes after releasing it.
type Subscribers = Arc<Vec<(u64, Arc<dyn Inbox>)>>;

/// Subscribers from which a conversation's deliveries are written by two threads, each into
/// half of the connections. Writing into a socket is a system call of a few microseconds,
/// so a thousand members take one thread several milliseconds, and the last member waits
/// for all the others. Fan-out 1000 at 50 msgs/s: p50 5.5 -> 3.2 ms, p99 9.4 -> 7.7 ms (Bun's
/// 8.3-10.0), for about 7% more CPU per delivery at that low rate (none under load); the
/// ramp's ceiling is unchanged (docs/BENCHMARKS.md, fifth sitting). Rooms and groups are far
/// smaller and stay on one.
const SPLIT_AT: usize = 256;

#[derive(Default)]
struct Inner {
    /// Conversation id to its subscribers; removed when the last one goes.
    convs: HashMap<i64, Subscribers>,
    /// User id to that user's open connections (one per tab or client).
    users: HashMap<i64, Vec<Conn>>,
    next_conn: u64,
    /// Set by [`LocalHub::close_all`]: the server is shutting down, and a connection that
    /// registers from now on is told to close at once.
    closing: Option<(u16, &'static str)>,
}

/// The fan-out of one process. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct LocalHub {
    inner: Mutex<Inner>,
    watch: OnceLock<Watch>,
}

impl LocalHub {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind, still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many users have a connection open.
    pub fn users_connected(&self) -> usize {
        self.lock().users.len()
    }

    /// Registers a connection of `user` under `session_id`; returns its id.
    pub fn register(&self, user: i64, session_id: i64, inbox: Arc<dyn Inbox>) -> u64 {
        let mut inner = self.lock();
        if let Some((code, reason)) = inner.closing {
            inbox.control(Control::Close { code, reason });
        }
        inner.next_conn += 1;
        let id = inner.next_conn;
        inner.users.entry(user).or_default().push(Conn {
            id,
            session_id,
            inbox,
        });
        id
    }

    /// Every session with a connection here, with its user (once each).
    pub fn sessions(&self) -> Vec<(i64, i64)> {
        let inner = self.lock();
        let mut sessions: Vec<(i64, i64)> = inner
            .users
            .iter()
            .flat_map(|(user, conns)| conns.iter().map(move |c| (*user, c.session_id)))
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        sessions
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

    /// Delivers every message of `conv` published from now on to connection `conn`. A
    /// connection subscribes once per conversation (the connection keeps which ones it has):
    /// looking for it here would scan every member of a large room at each join.
    pub fn subscribe(&self, conv: i64, conn: u64, inbox: Arc<dyn Inbox>) {
        let mut inner = self.lock();
        let subs = inner.convs.entry(conv).or_default();
        if subs.is_empty() {
            if let Some(watch) = self.watch.get() {
                watch(conv, true);
            }
        }
        Arc::make_mut(subs).push((conn, inbox));
    }

    /// Stops delivering `conv` to connection `conn`; forgets the conversation when nobody
    /// is left.
    pub fn unsubscribe(&self, conv: i64, conn: u64) {
        let mut inner = self.lock();
        if let Some(subs) = inner.convs.get_mut(&conv) {
            Arc::make_mut(subs).retain(|(id, _)| *id != conn);
            if subs.is_empty() {
                inner.convs.remove(&conv);
                if let Some(watch) = self.watch.get() {
                    watch(conv, false);
                }
            }
        }
    }

    /// Sets who is told of conversations gaining their first subscriber here or losing their
    /// last (once; later calls are ignored). It is told at once of every conversation that
    /// has subscribers already.
    pub fn watch(&self, watch: Watch) {
        let inner = self.lock();
        if self.watch.set(watch.clone()).is_ok() {
            for conv in inner.convs.keys() {
                watch(*conv, true);
            }
        }
    }

    /// Number of conversations with subscribers (for tests and metrics).
    pub fn active_channels(&self) -> usize {
        self.lock().convs.len()
    }

    /// Tells every connection, present and future, to close (shutdown). A connection whose
    /// queue is full is closed instead, and its client reconnects as it would after the
    /// close.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        let mut inner = self.lock();
        inner.closing = Some((code, reason));
        for conn in inner.users.values().flatten() {
            conn.inbox.control(Control::Close { code, reason });
        }
    }

    fn send_where(&self, user: i64, pick: impl Fn(&Conn) -> bool, control: Control) {
        let inner = self.lock();
        for conn in inner.users.get(&user).into_iter().flatten() {
            if pick(conn) && !conn.inbox.control(control.clone()) {
                tracing::warn!(
                    user,
                    conn = conn.id,
                    "control queue full; closing the connection so that it reconnects"
                );
            }
        }
    }
}

impl Fanout for LocalHub {
    /// Each conversation's deliveries, in order, go to each subscriber in one call (so a
    /// connection gets them in one batch and one write). Order is kept within a
    /// conversation, not across conversations.
    ///
    /// A connection whose acknowledgements in this commit are all for new messages of one
    /// conversation (the usual case) gets them with its own copies of those messages, after
    /// every other subscriber of the conversation was served. Other acknowledgements (a
    /// resend's, a failure's, a connection's that sent to several conversations) go out
    /// after all the deliveries, in the order of the sends, as does one whose connection was
    /// not subscribed.
    fn publish(&self, mut deliveries: Vec<(i64, Delivery)>, acks: Vec<AckOut>) {
        // A stable sort: each conversation's deliveries keep their order.
        deliveries.sort_by_key(|(conv, _)| *conv);
        let groups: Vec<&[(i64, Delivery)]> = deliveries.chunk_by(|a, b| a.0 == b.0).collect();
        let subs: Vec<Option<Subscribers>> = {
            let inner = self.lock();
            groups
                .iter()
                .map(|group| inner.convs.get(&group[0].0).cloned())
                .collect()
        };
        let (mut riding, after) = split_acks(acks);
        let mut scratch = Vec::new();
        let mut senders = Vec::new();
        // The subscribers owed nothing, reused from one conversation to the next.
        let mut plain: Vec<&Arc<dyn Inbox>> = Vec::new();
        for (group, subs) in groups.into_iter().zip(&subs) {
            let conv = group[0].0;
            plain.clear();
            for (id, inbox) in subs.iter().flat_map(|s| s.iter()) {
                let sender = if riding.is_empty() {
                    None // no hashing per subscriber when nobody here is owed anything
                } else {
                    riding.remove(&(*id, conv))
                };
                match sender {
                    Some(sender) => senders.push(sender),
                    None => plain.push(inbox),
                }
            }
            deliver_to(group, &plain, &mut scratch);
            for (inbox, acks) in senders.drain(..) {
                inbox.deliver(group, &acks, &mut scratch);
            }
        }
        for (inbox, acks) in riding.into_values().chain(after) {
            inbox.deliver(&[], &acks, &mut scratch);
        }
    }

    /// A connection with a full control queue is not keeping up at all: it is closed with
    /// [`crate::protocol::close::FELL_BEHIND`], and the client reconnects to a `hello` that
    /// has everything it missed. Nothing is dropped silently.
    fn notify_user(&self, user: i64, control: Control) {
        self.send_where(user, |_| true, control);
    }

    fn end_session(&self, user: i64, session_id: i64, code: u16, reason: &'static str) {
        self.send_where(
            user,
            |c| c.session_id == session_id,
            Control::Close { code, reason },
        );
    }

    fn connections_of(&self, user: i64) -> usize {
        self.lock().users.get(&user).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;

    /// Records which thread handed it what.
    #[derive(Default)]
    struct Seen(Mutex<Vec<(ThreadId, Vec<i64>, usize)>>);

    impl Inbox for Seen {
        fn deliver(&self, deliveries: &[(i64, Delivery)], acks: &[Frame], _: &mut Vec<u8>) {
            self.0.lock().expect("seen").push((
                std::thread::current().id(),
                deliveries.iter().map(|(_, d)| d.seq).collect(),
                acks.len(),
            ));
        }

        fn control(&self, _: Control) -> bool {
            true
        }
    }

    fn delivery(seq: i64) -> Delivery {
        Delivery {
            seq,
            frame: format!("m{seq}").into(),
        }
    }

    /// A conversation of `SPLIT_AT` or more members is written by two threads, and still
    /// every member gets every message once and in order, and the sender its ack after its
    /// own copy.
    #[test]
    fn a_large_conversation_is_delivered_by_two_threads_each_member_once_in_order() {
        let hub = LocalHub::new();
        let members: Vec<(u64, Arc<Seen>)> = (0..SPLIT_AT + 44)
            .map(|user| {
                let inbox = Arc::new(Seen::default());
                let conn = hub.register(user as i64, 1, inbox.clone());
                hub.subscribe(9, conn, inbox.clone());
                (conn, inbox)
            })
            .collect();
        let (sender_conn, sender) = members[7].clone();
        for seq in 1..=3 {
            let ack = AckOut {
                conn: sender_conn,
                inbox: sender.clone(),
                frame: format!("ack{seq}").into(),
                follows: Some(9),
            };
            hub.publish(vec![(9, delivery(seq))], vec![ack]);
        }
        let mut threads = std::collections::HashSet::new();
        for (conn, inbox) in &members {
            let seen = inbox.0.lock().expect("seen");
            let seqs: Vec<i64> = seen.iter().flat_map(|(_, s, _)| s.clone()).collect();
            assert_eq!(
                seqs,
                [1, 2, 3],
                "connection {conn}: each message once, in order"
            );
            let acks: usize = seen.iter().map(|(_, _, a)| a).sum();
            if *conn == sender_conn {
                assert!(
                    seen.iter().all(|(_, s, a)| s.len() == 1 && *a == 1),
                    "{seen:?}"
                );
            } else {
                assert_eq!(acks, 0);
                threads.extend(seen.iter().map(|(t, _, _)| *t));
            }
        }
        assert!(
            threads.len() >= 2,
            "two threads wrote the deliveries: {threads:?}"
        );
    }

    /// A small conversation stays on the publishing thread.
    #[test]
    fn a_small_conversation_is_delivered_by_the_publishing_thread() {
        let hub = LocalHub::new();
        let members: Vec<Arc<Seen>> = (0..5)
            .map(|user| {
                let inbox = Arc::new(Seen::default());
                let conn = hub.register(user, 1, inbox.clone());
                hub.subscribe(3, conn, inbox.clone());
                inbox
            })
            .collect();
        hub.publish(vec![(3, delivery(1))], Vec::new());
        for inbox in members {
            let seen = inbox.0.lock().expect("seen");
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].0, std::thread::current().id());
        }
    }
}
