//! A connection's mailbox: everything the fan-out sends it, and the write side of its
//! socket. The hub's publisher and the connection's task both write through it, under one
//! lock, so frames never interleave.
//!
//! A connection that is live and in order in a conversation does not even need waking: the
//! publisher writes the frames straight into its socket, as uWebSockets does; only what needs
//! the connection's task (a gap to fill from the store, a client still syncing, a socket that
//! did not take everything) waits in the mailbox, and the task is woken only when its
//! mailbox was empty.

use crate::protocol::MAX_IN_FLIGHT;
use crate::server::hub::{Control, Delivery, Frame, Inbox, ACK, EPHEMERAL};
use crate::server::prefetch::{prefetch, prefetch_all};
use futures::task::AtomicWaker;
use std::{
    collections::VecDeque,
    io,
    sync::{
        atomic::{AtomicPtr, Ordering},
        Mutex, MutexGuard,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tokio::net::TcpStream;

/// Control messages a connection may have waiting; they are rare. A connection that lets
/// this many pile up is not reading at all: its mailbox is closed and it reconnects.
const CONTROL_CAPACITY: usize = 32;

/// Where a connection stands in one of its conversations. Kept in the mailbox, under the
/// same lock as the socket's pending bytes, because the publisher reads and advances it when
/// it writes a delivery straight into the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The client has not synced this conversation yet: live messages are not sent.
    Unsynced,
    /// The connection is answering the client's `sync` from the store: live messages wait
    /// in the mailbox until it is done (they may have been committed after the store was
    /// read).
    Syncing,
    /// Every message up to `last_sent` was sent, in order.
    Live { last_sent: i64 },
    /// The connection fell behind after `last_sent`; waiting for the client's `sync`.
    Paused { last_sent: i64 },
}

/// A connection's cursors, sorted by conversation: one allocation whose entries hold key and
/// cursor together. The publisher looks one up for every delivery, in a thousand mailboxes
/// in turn, none of them in the cache: a hash map cost two cache misses there (its control
/// bytes, then its bucket), about two-fifths of the time the publisher spent in its own code
/// in a fan-out, the kernel's sends aside (docs/BENCHMARKS.md). A connection follows few
/// conversations (a lookup is a binary search) and sets a cursor rarely (an insert shifts).
#[derive(Debug, Default)]
struct Cursors(Vec<(i64, Cursor)>);

impl Cursors {
    fn find(&self, conv: i64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&conv, |(c, _)| *c)
    }

    fn get(&self, conv: i64) -> Option<Cursor> {
        self.find(conv).ok().map(|i| self.0[i].1)
    }

    fn get_mut(&mut self, conv: i64) -> Option<&mut Cursor> {
        let i = self.find(conv).ok()?;
        Some(&mut self.0[i].1)
    }

    fn insert(&mut self, conv: i64, cursor: Cursor) {
        match self.find(conv) {
            Ok(i) => self.0[i].1 = cursor,
            Err(i) => self.0.insert(i, (conv, cursor)),
        }
    }

    fn remove(&mut self, conv: i64) {
        if let Ok(i) = self.find(conv) {
            self.0.remove(i);
        }
    }
}

/// What a connection takes out of its mailbox.
#[derive(Debug)]
pub enum Mail {
    /// A control message (these go before deliveries).
    Control(Control),
    /// Deliveries in the order they were published, `(conversation, delivery)`; and the
    /// conversations for which at least one delivery was dropped because the mailbox was
    /// full (the connection fell behind there and must tell its client to resync).
    Deliveries {
        items: Vec<(i64, Delivery)>,
        lagged: Vec<i64>,
    },
    /// The hub closed the mailbox (its control queue overflowed): the connection ends, and
    /// its client reconnects to a `hello` that has everything it missed.
    Closed,
    /// Bytes wait for the socket (the publisher wrote and the socket did not take
    /// everything), or a write failed: the connection writes the rest as the socket takes
    /// it, serving control messages, its heartbeat and its session's deadline meanwhile.
    Flush,
    /// The connection had stopped reading its socket with [`MAX_IN_FLIGHT`] sends waiting for
    /// their acknowledgement, and one has gone out: it may read again.
    Resume,
}

/// Deliveries taken from a mailbox, `(conversation, delivery)` in order, and the
/// conversations that lagged (see [`Mail::Deliveries`]).
pub type Batch = (Vec<(i64, Delivery)>, Vec<i64>);

#[derive(Default)]
struct Slots {
    controls: VecDeque<Control>,
    items: VecDeque<(i64, Delivery)>,
    /// Conversations with a dropped delivery since the connection last looked.
    lagged: Vec<i64>,
    closed: bool,
    /// Per conversation, where the connection stands; absent means [`Cursor::Unsynced`]
    /// (so a connection that never syncs allocates nothing here).
    cursors: Cursors,
    /// Encoded frames the socket has not taken yet, in order. Everything written to the
    /// socket goes through here or, when this is empty, straight to the socket.
    out: Vec<u8>,
    /// A write to the socket failed: it is gone.
    broken: Option<io::ErrorKind>,
    /// Since when `out` has waited without the socket taking a byte of it (`None` while
    /// the socket takes what it is given): how a reader that stopped is found.
    blocked_since: Option<Instant>,
    /// Sends of this connection waiting for their acknowledgement ([`Mailbox::count_send`]).
    in_flight: usize,
    /// The connection stopped reading because `in_flight` reached [`MAX_IN_FLIGHT`]; the next
    /// acknowledgement sets `resumed` and wakes it.
    starved: bool,
    resumed: bool,
}

impl Slots {
    /// Whether the connection's task has nothing to do here.
    fn is_empty(&self) -> bool {
        self.controls.is_empty()
            && self.items.is_empty()
            && self.lagged.is_empty()
            && self.out.is_empty()
            && self.broken.is_none()
    }

    /// Writes `bytes` to the socket now if nothing is waiting before them, else (and for
    /// what the socket does not take) keeps them in `out`.
    fn write(&mut self, socket: &TcpStream, bytes: &[u8]) {
        if !self.out.is_empty() || self.broken.is_some() {
            self.out.extend_from_slice(bytes);
            return;
        }
        match socket.try_write(bytes) {
            Ok(n) => {
                if n < bytes.len() {
                    self.out.extend_from_slice(&bytes[n..]);
                    self.blocked_since = Some(Instant::now());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.out.extend_from_slice(bytes);
                self.blocked_since.get_or_insert_with(Instant::now);
            }
            Err(e) => self.broken = Some(e.kind()),
        }
    }

    /// `n` acknowledgements went out (or were queued); whether that lets a starved
    /// connection read again.
    fn answered(&mut self, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        self.in_flight = self.in_flight.saturating_sub(n);
        if self.starved && self.in_flight < MAX_IN_FLIGHT {
            self.starved = false;
            self.resumed = true;
            return true;
        }
        false
    }
}

/// A WebSocket text frame from the server: header (unmasked, final) and payload.
pub fn put_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len();
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// One connection's queue of everything the hub sends it, and the write side of its socket.
/// Kept small: every idle connection has one, and its queues allocate only once something
/// arrives.
///
/// Every byte written to the socket goes through [`Slots::write`] under the lock, from the
/// connection's task or from the publisher, so frames never interleave. The publisher
/// writes a delivery itself when nothing is waiting for the connection and the conversation
/// is live and in order there; everything else waits in the mailbox for the task.
pub struct Mailbox {
    slots: Mutex<Slots>,
    waker: AtomicWaker,
    /// Deliveries held at most; beyond it they are dropped and the conversation is marked
    /// as lagged (the client resyncs from the store, so nothing is lost).
    capacity: usize,
    /// The connection's socket (the task reads it; writes go through `slots`). `None` in
    /// tests of the hub alone: then everything waits in the mailbox.
    socket: Option<TcpStream>,
    /// Where the cursors' entries are (stored under the lock whenever they move), for
    /// [`Inbox::prefetch`] only: never read through.
    cursors_at: AtomicPtr<(i64, Cursor)>,
}

/// `out` keeps its allocation between writes up to this size: an acknowledgement fits, and
/// an idle connection does not keep the buffer its `hello` needed.
const OUT_KEEP: usize = 128;

impl Mailbox {
    pub fn new(capacity: usize, socket: Option<TcpStream>) -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
            waker: AtomicWaker::new(),
            capacity: capacity.max(1),
            socket,
            cursors_at: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves plain queues behind, still consistent.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Delivers one conversation's deliveries, in order, then `acks` (acknowledgements owed
    /// to this connection): straight into the socket, in one write, while the conversation is
    /// live and in order there and nothing waits for the connection; else into the mailbox
    /// (the acknowledgements behind the deliveries they follow). Wakes the connection (once)
    /// if it had nothing to do before and has now, or if the acknowledgements let it read
    /// again.
    fn deliver_now(&self, deliveries: &[(i64, Delivery)], acks: &[Frame], scratch: &mut Vec<u8>) {
        let wake = {
            let mut slots = self.lock();
            if slots.closed {
                return;
            }
            let was_empty = slots.is_empty();
            let mut rest = deliveries;
            scratch.clear();
            let direct = self.socket.as_ref().filter(|_| was_empty);
            if direct.is_some() {
                rest = Self::frame_live(&mut slots, deliveries, scratch);
            }
            // An acknowledgement never overtakes a delivery left for the connection.
            let acks_now = direct.is_some() && rest.is_empty();
            if acks_now {
                for ack in acks {
                    put_text_frame(scratch, ack.as_bytes());
                }
            }
            if let Some(socket) = direct {
                if !scratch.is_empty() {
                    slots.write(socket, scratch);
                }
            }
            for (conv, d) in rest {
                if slots.items.len() >= self.capacity {
                    if !slots.lagged.contains(conv) {
                        slots.lagged.push(*conv);
                    }
                } else {
                    slots.items.push_back((*conv, d.clone()));
                }
            }
            if !acks_now {
                // Never dropped: at most MAX_IN_FLIGHT of them are owed at once.
                for ack in acks {
                    let frame = ack.clone();
                    slots.items.push_back((0, Delivery { seq: ACK, frame }));
                }
            }
            let resume = slots.answered(acks.len());
            (was_empty && !slots.is_empty()) || resume
        };
        if wake {
            self.waker.wake();
        }
    }

    /// The connection is ending: the publisher writes nothing more (acknowledgements of
    /// sends still in flight included; the client resends those after reconnecting), so
    /// nothing follows the close frame. The connection's own writes still go out.
    pub fn shut(&self) {
        let mut slots = self.lock();
        slots.closed = true;
        // What waited for the connection is freed now, not when the last handle goes.
        slots.items = VecDeque::new();
        slots.controls = VecDeque::new();
        slots.lagged = Vec::new();
        slots.cursors = Cursors::default();
        self.cursors_at
            .store(slots.cursors.0.as_mut_ptr(), Ordering::Relaxed);
    }

    /// Counts a send of this connection as waiting for its acknowledgement.
    pub fn count_send(&self) {
        self.lock().in_flight += 1;
    }

    /// Whether the connection may read another frame from its socket: not while
    /// [`MAX_IN_FLIGHT`] of its sends wait for their acknowledgement (the next one to go out
    /// wakes it with [`Mail::Resume`]).
    pub fn may_read(&self) -> bool {
        let mut slots = self.lock();
        slots.resumed = false;
        if slots.in_flight < MAX_IN_FLIGHT {
            true
        } else {
            slots.starved = true;
            false
        }
    }

    /// The publisher's direct write: frames into `scratch` the leading deliveries the
    /// connection would send as they are (live, in order) and advances the cursor; returns
    /// the rest, which must wait in the mailbox. What the connection would not send at all
    /// (not synced, or paused: the client gets it from the store) is dropped here as the
    /// connection would drop it.
    fn frame_live<'a>(
        slots: &mut Slots,
        deliveries: &'a [(i64, Delivery)],
        scratch: &mut Vec<u8>,
    ) -> &'a [(i64, Delivery)] {
        let Some((conv, _)) = deliveries.first() else {
            return deliveries;
        };
        let cursor = match slots.cursors.get_mut(*conv) {
            Some(Cursor::Live { last_sent }) => last_sent,
            Some(Cursor::Syncing) => return deliveries,
            None | Some(Cursor::Unsynced | Cursor::Paused { .. }) => return &[],
        };
        let mut last = *cursor;
        let mut taken = 0;
        for (c, d) in deliveries {
            debug_assert_eq!(c, conv, "one conversation at a time");
            if d.seq == EPHEMERAL {
                put_text_frame(scratch, d.frame.as_bytes());
            } else if d.seq <= last {
                // Already sent (a replay got there first).
            } else if d.seq == last + 1 {
                put_text_frame(scratch, d.frame.as_bytes());
                last = d.seq;
            } else {
                break; // a gap: the connection fills it from the store
            }
            taken += 1;
        }
        *cursor = last;
        &deliveries[taken..]
    }

    /// The connection's socket (`None` only in the hub's own tests).
    pub fn socket(&self) -> Option<&TcpStream> {
        self.socket.as_ref()
    }

    /// Where the connection stands in `conv`.
    pub fn cursor(&self, conv: i64) -> Cursor {
        self.lock().cursors.get(conv).unwrap_or(Cursor::Unsynced)
    }

    /// Sets where the connection stands in `conv`, and queues `frame` (a text frame's
    /// payload) under the same lock, so that no delivery the new cursor lets through can
    /// be written before it.
    pub fn set_cursor(&self, conv: i64, cursor: Cursor, frame: Option<&[u8]>) {
        let mut slots = self.lock();
        if cursor == Cursor::Unsynced {
            slots.cursors.remove(conv);
        } else {
            slots.cursors.insert(conv, cursor);
        }
        self.cursors_at
            .store(slots.cursors.0.as_mut_ptr(), Ordering::Relaxed);
        if let Some(payload) = frame {
            put_text_frame(&mut slots.out, payload);
        }
    }

    /// Queues `frame`, message `seq` of `conv`, if it is the next one the connection owes
    /// there, and moves the cursor past it; does nothing if it was sent already. One step
    /// under the lock: the publisher, which may write the same message straight to the
    /// socket (with several nodes one message can arrive twice, by NATS and by the database
    /// check), sees the cursor either before or after it, never between. False if the
    /// conversation is not live (or a gap opened): the caller decides.
    pub fn send_next(&self, conv: i64, seq: i64, frame: &[u8]) -> bool {
        let mut slots = self.lock();
        match slots.cursors.get_mut(conv) {
            Some(Cursor::Live { last_sent }) if seq <= *last_sent => true,
            Some(Cursor::Live { last_sent }) if seq == *last_sent + 1 => {
                *last_sent = seq;
                put_text_frame(&mut slots.out, frame);
                true
            }
            _ => false,
        }
    }

    /// Queues a text frame (its payload) for the socket; [`Mailbox::flush`] writes it.
    pub fn queue_text(&self, payload: &[u8]) {
        put_text_frame(&mut self.lock().out, payload);
    }

    /// Queues bytes already framed (the server's control frames: ping, pong, close).
    pub fn queue_raw(&self, bytes: &[u8]) {
        self.lock().out.extend_from_slice(bytes);
    }

    /// Writes what is queued for the socket, as far as it takes it now; `Ok(true)` once
    /// nothing is left.
    pub fn try_flush(&self) -> io::Result<bool> {
        let mut slots = self.lock();
        if let Some(kind) = slots.broken {
            return Err(kind.into());
        }
        let Some(socket) = &self.socket else {
            return Ok(slots.out.is_empty());
        };
        while !slots.out.is_empty() {
            match socket.try_write(&slots.out) {
                Ok(n) => {
                    slots.out.drain(..n);
                    slots.blocked_since = Some(Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slots.blocked_since.get_or_insert_with(Instant::now);
                    return Ok(false);
                }
                Err(e) => {
                    slots.broken = Some(e.kind());
                    return Err(e);
                }
            }
        }
        slots.blocked_since = None;
        if slots.out.capacity() > OUT_KEEP {
            slots.out = Vec::new();
        }
        Ok(true)
    }

    /// Writes everything queued for the socket, waiting for it to take it, but never longer
    /// than `stall` without it taking a byte: then `TimedOut` (its reader has stopped, and
    /// the connection ends rather than wait, or buffer, for it).
    pub async fn flush(&self, stall: Duration) -> io::Result<()> {
        loop {
            if self.try_flush()? {
                return Ok(());
            }
            let Some(socket) = &self.socket else {
                return Ok(());
            };
            let left = stall.saturating_sub(self.stalled_for());
            match tokio::time::timeout(left, socket.writable()).await {
                Ok(ready) => ready?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
    }

    /// How long the socket has taken none of the bytes waiting for it (zero when nothing
    /// waits, or it takes them).
    pub fn stalled_for(&self) -> Duration {
        self.lock()
            .blocked_since
            .map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Bytes waiting for the socket to take them.
    pub fn backlog(&self) -> usize {
        self.lock().out.len()
    }

    /// Waits until the socket can take more bytes.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.socket {
            Some(socket) => socket.poll_write_ready(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Queues a control message. If the connection already has [`CONTROL_CAPACITY`] of
    /// them waiting, closes the mailbox instead (what is queued is still handed over, then
    /// [`Mail::Closed`]) and returns false; a closed mailbox ignores the message.
    fn push_control(&self, control: Control) -> bool {
        let accepted = {
            let mut slots = self.lock();
            if slots.closed {
                return true;
            }
            if slots.controls.len() >= CONTROL_CAPACITY {
                slots.closed = true;
                false
            } else {
                slots.controls.push_back(control);
                true
            }
        };
        self.waker.wake();
        accepted
    }

    /// Takes what is waiting, without waiting: a control message first, else up to `max`
    /// deliveries (and the conversations that lagged). While bytes wait for the socket,
    /// deliveries wait too (they pile up to the mailbox's capacity, then lag): the mailbox
    /// says [`Mail::Flush`] once, and nothing but control messages while `writing` (the
    /// connection waits for the socket meanwhile).
    pub fn try_recv(&self, max: usize, writing: bool) -> Option<Mail> {
        let mut slots = self.lock();
        if let Some(c) = slots.controls.pop_front() {
            return Some(Mail::Control(c));
        }
        if slots.closed {
            return Some(Mail::Closed);
        }
        if !slots.out.is_empty() || slots.broken.is_some() {
            return (!writing || slots.broken.is_some()).then_some(Mail::Flush);
        }
        if let Some((items, lagged)) = Self::take_deliveries(&mut slots, max) {
            return Some(Mail::Deliveries { items, lagged });
        }
        if std::mem::take(&mut slots.resumed) {
            return Some(Mail::Resume);
        }
        None
    }

    /// Like [`Mailbox::try_recv`], but only deliveries (and the conversations that lagged):
    /// `None` while a control message waits (the connection's loop takes those first).
    pub fn try_deliveries(&self, max: usize) -> Option<Batch> {
        let mut slots = self.lock();
        if !slots.controls.is_empty() || slots.closed {
            return None;
        }
        Self::take_deliveries(&mut slots, max)
    }

    fn take_deliveries(slots: &mut Slots, max: usize) -> Option<Batch> {
        if slots.items.is_empty() && slots.lagged.is_empty() {
            // A burst's queue would otherwise stay allocated on an idle connection.
            if slots.items.capacity() > 64 {
                slots.items = VecDeque::new();
            }
            return None;
        }
        let n = slots.items.len().min(max.max(1));
        let items: Vec<_> = slots.items.drain(..n).collect();
        let lagged = std::mem::take(&mut slots.lagged);
        Some((items, lagged))
    }

    /// Waits for mail: [`Mailbox::try_recv`], or registers the task to be woken.
    pub fn poll_recv(&self, cx: &mut Context<'_>, max: usize, writing: bool) -> Poll<Mail> {
        if let Some(mail) = self.try_recv(max, writing) {
            return Poll::Ready(mail);
        }
        self.waker.register(cx.waker());
        // Anything queued between the look above and the registration is seen here.
        match self.try_recv(max, writing) {
            Some(mail) => Poll::Ready(mail),
            None => Poll::Pending,
        }
    }
}

impl Inbox for Mailbox {
    fn deliver(&self, deliveries: &[(i64, Delivery)], acks: &[Frame], scratch: &mut Vec<u8>) {
        self.deliver_now(deliveries, acks, scratch);
    }

    fn control(&self, control: Control) -> bool {
        self.push_control(control)
    }

    /// The lock, the queues' heads and the socket's handle: the mailbox itself, a few cache
    /// lines, which [`Mailbox::deliver_now`] reads first.
    fn prefetch(&self) {
        prefetch_all(self);
    }

    /// The cursors' entries, found without the lock through the copy of their address.
    fn prefetch_linked(&self) {
        prefetch(self.cursors_at.load(Ordering::Relaxed).cast_const());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hub::{local::LocalHub, AckOut, Fanout};
    use std::sync::Arc;

    /// The copy of the cursors' address that the publisher's prefetch reads follows their
    /// entries wherever they move (adding cursors reallocates them) and when they go.
    #[test]
    fn the_prefetch_hint_follows_the_cursors_entries() {
        let mailbox = Mailbox::new(8, None);
        let hint_is_right = |m: &Mailbox| {
            m.cursors_at.load(Ordering::Relaxed).cast_const() == m.lock().cursors.0.as_ptr()
        };
        for conv in 0..40 {
            mailbox.set_cursor(conv, Cursor::Live { last_sent: 0 }, None);
            assert!(hint_is_right(&mailbox), "after setting cursor {conv}");
        }
        for conv in (0..40).step_by(3) {
            mailbox.set_cursor(conv, Cursor::Unsynced, None);
            assert!(hint_is_right(&mailbox), "after removing cursor {conv}");
        }
        mailbox.shut();
        assert!(hint_is_right(&mailbox), "after the mailbox was shut");
    }

    /// The cursors stay sorted whatever the order they are set in: each is found, changed
    /// and removed by its own conversation, and the others are left as they were.
    #[test]
    fn cursors_are_found_by_conversation_in_any_order_of_setting() {
        let mut c = Cursors::default();
        let order = [40_i64, 7, 1_000_000, -3, 12, 8, 39];
        for (n, conv) in order.iter().enumerate() {
            c.insert(
                *conv,
                Cursor::Live {
                    last_sent: n as i64,
                },
            );
        }
        assert!(c.0.windows(2).all(|w| w[0].0 < w[1].0), "{c:?}");
        for (n, conv) in order.iter().enumerate() {
            assert_eq!(
                c.get(*conv),
                Some(Cursor::Live {
                    last_sent: n as i64
                })
            );
        }
        assert_eq!(c.get(9), None);
        c.insert(12, Cursor::Paused { last_sent: 4 });
        if let Some(Cursor::Live { last_sent }) = c.get_mut(8) {
            *last_sent = 99;
        }
        c.remove(40);
        c.remove(41); // absent: nothing happens
        assert_eq!(c.get(40), None);
        assert_eq!(c.get(12), Some(Cursor::Paused { last_sent: 4 }));
        assert_eq!(c.get(8), Some(Cursor::Live { last_sent: 99 }));
        assert_eq!(c.get(39), Some(Cursor::Live { last_sent: 6 }));
        assert_eq!(c.0.len(), order.len() - 1);
    }

    /// A connection of `user` without a socket (everything waits in its mailbox).
    fn register(hub: &LocalHub, capacity: usize, user: i64, session: i64) -> (u64, Arc<Mailbox>) {
        register_socket(hub, capacity, user, session, None)
    }

    fn register_socket(
        hub: &LocalHub,
        capacity: usize,
        user: i64,
        session: i64,
        socket: Option<TcpStream>,
    ) -> (u64, Arc<Mailbox>) {
        let mailbox = Arc::new(Mailbox::new(capacity, socket));
        let id = hub.register(user, session, mailbox.clone());
        (id, mailbox)
    }

    fn publish1(hub: &LocalHub, conv: i64, d: Delivery) {
        hub.publish(vec![(conv, d)], Vec::new());
    }

    fn delivery(seq: i64) -> Delivery {
        Delivery {
            seq,
            frame: Frame::from(format!("{{\"seq\":{seq}}}")),
        }
    }

    fn deliveries(mail: Option<Mail>) -> (Vec<(i64, i64)>, Vec<i64>) {
        match mail {
            Some(Mail::Deliveries { items, lagged }) => {
                (items.into_iter().map(|(c, d)| (c, d.seq)).collect(), lagged)
            }
            other => panic!("expected deliveries, got {other:?}"),
        }
    }

    #[test]
    fn a_conversation_is_forgotten_once_its_last_subscriber_is_gone() {
        let hub = LocalHub::new();
        let cap = 4;
        let (id, mailbox) = register(&hub, cap, 1, 100);
        hub.subscribe(7, id, mailbox.clone());
        assert_eq!(hub.active_channels(), 1);
        publish1(&hub, 7, delivery(1));
        assert_eq!(deliveries(mailbox.try_recv(16, false)).0, vec![(7, 1)]);
        hub.unsubscribe(7, id);
        assert_eq!(hub.active_channels(), 0);
        // Publishing to a conversation nobody listens to keeps nothing around.
        publish1(&hub, 8, delivery(1));
        assert_eq!(hub.active_channels(), 0);
        assert!(mailbox.try_recv(16, false).is_none());
    }

    #[test]
    fn deliveries_come_out_in_order_in_batches_of_at_most_max() {
        let hub = LocalHub::new();
        let cap = 100;
        let (id, mailbox) = register(&hub, cap, 1, 100);
        hub.subscribe(1, id, mailbox.clone());
        hub.subscribe(2, id, mailbox.clone());
        for seq in 1..=5 {
            publish1(&hub, 1 + seq % 2, delivery(seq));
        }
        assert_eq!(
            deliveries(mailbox.try_recv(3, false)).0,
            vec![(2, 1), (1, 2), (2, 3)]
        );
        assert_eq!(
            deliveries(mailbox.try_recv(3, false)).0,
            vec![(1, 4), (2, 5)]
        );
        assert!(mailbox.try_recv(3, false).is_none());
    }

    #[test]
    fn a_batch_reaches_each_subscriber_in_order_per_conversation() {
        let hub = LocalHub::new();
        let cap = 100;
        let (a, a_box) = register(&hub, cap, 1, 100);
        let (b, b_box) = register(&hub, cap, 2, 200);
        hub.subscribe(1, a, a_box.clone());
        hub.subscribe(2, a, a_box.clone());
        hub.subscribe(2, b, b_box.clone());
        hub.publish(
            vec![
                (2, delivery(1)),
                (1, delivery(1)),
                (2, delivery(2)),
                (9, delivery(1)),
                (1, delivery(2)),
            ],
            Vec::new(),
        );
        assert_eq!(
            deliveries(a_box.try_recv(16, false)).0,
            vec![(1, 1), (1, 2), (2, 1), (2, 2)]
        );
        assert_eq!(
            deliveries(b_box.try_recv(16, false)).0,
            vec![(2, 1), (2, 2)]
        );
        assert!(a_box.try_recv(16, false).is_none() && b_box.try_recv(16, false).is_none());
    }

    #[test]
    fn a_full_mailbox_drops_deliveries_and_says_which_conversations_lagged() {
        let hub = LocalHub::new();
        let cap = 2;
        let (id, mailbox) = register(&hub, cap, 1, 100);
        hub.subscribe(1, id, mailbox.clone());
        hub.subscribe(2, id, mailbox.clone());
        for seq in 1..=5 {
            publish1(&hub, 1, delivery(seq));
        }
        publish1(&hub, 2, delivery(1));
        let (items, lagged) = deliveries(mailbox.try_recv(16, false));
        assert_eq!(items, vec![(1, 1), (1, 2)], "the first ones are kept");
        assert_eq!(lagged, vec![1, 2], "each lagged conversation once");
        publish1(&hub, 1, delivery(6));
        assert_eq!(
            deliveries(mailbox.try_recv(16, false)),
            (vec![(1, 6)], vec![]),
            "room again once read"
        );
    }

    #[tokio::test]
    async fn a_waiting_connection_is_woken_by_a_publish() {
        let hub = Arc::new(LocalHub::new());
        let cap = 8;
        let (id, mailbox) = register(&hub, cap, 1, 100);
        hub.subscribe(3, id, mailbox.clone());
        let waiting = tokio::spawn({
            let mailbox = Arc::clone(&mailbox);
            async move { std::future::poll_fn(|cx| mailbox.poll_recv(cx, 16, false)).await }
        });
        tokio::task::yield_now().await;
        publish1(&hub, 3, delivery(9));
        let mail = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(deliveries(Some(mail)).0, vec![(3, 9)]);
    }

    /// A connected pair of real sockets: the server's end for a mailbox, the client's end.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, client)
    }

    /// Reads the text frames the client end has received so far.
    async fn frames_read(client: &mut TcpStream) -> Vec<String> {
        use tokio::io::AsyncReadExt;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(100), client.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        let mut frames = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            assert_eq!(rest[0], 0x81, "a final text frame");
            let len = usize::from(rest[1]);
            assert!(len < 126, "short frames in this test");
            frames.push(String::from_utf8(rest[2..2 + len].to_vec()).expect("text"));
            rest = &rest[2 + len..];
        }
        frames
    }

    #[tokio::test]
    async fn the_publisher_writes_only_live_in_order_deliveries_and_queues_or_drops_the_rest() {
        let hub = LocalHub::new();
        let cap = 16;
        let (server, mut client) = socket_pair().await;
        let (id, mailbox) = register_socket(&hub, cap, 1, 100, Some(server));
        hub.subscribe(7, id, mailbox.clone());

        // Not synced: nothing is written or kept (the client's sync gets it from the store).
        publish1(&hub, 7, delivery(1));
        assert!(mailbox.try_recv(16, false).is_none());
        assert!(frames_read(&mut client).await.is_empty());

        // Syncing: kept for the connection, which sends it after its replay.
        mailbox.set_cursor(7, Cursor::Syncing, None);
        publish1(&hub, 7, delivery(2));
        assert_eq!(deliveries(mailbox.try_recv(16, false)).0, vec![(7, 2)]);
        assert!(frames_read(&mut client).await.is_empty());

        // Live: the next in order goes straight to the socket and moves the cursor; what
        // was already sent is skipped; a gap waits for the connection to fill it.
        mailbox.set_cursor(7, Cursor::Live { last_sent: 2 }, Some(b"{\"synced\":2}"));
        assert!(mailbox.try_flush().expect("flushed"));
        hub.publish(
            vec![(7, delivery(2)), (7, delivery(3)), (7, delivery(4))],
            Vec::new(),
        );
        assert!(
            mailbox.try_recv(16, false).is_none(),
            "nothing left for the connection"
        );
        assert_eq!(mailbox.cursor(7), Cursor::Live { last_sent: 4 });
        assert_eq!(
            frames_read(&mut client).await,
            vec![r#"{"synced":2}"#, r#"{"seq":3}"#, r#"{"seq":4}"#]
        );
        hub.publish(vec![(7, delivery(6)), (7, delivery(7))], Vec::new());
        assert_eq!(mailbox.cursor(7), Cursor::Live { last_sent: 4 });
        // While anything waits for the connection, later deliveries wait behind it.
        publish1(&hub, 7, delivery(8));
        assert_eq!(
            deliveries(mailbox.try_recv(16, false)).0,
            vec![(7, 6), (7, 7), (7, 8)]
        );
        // Bytes the socket has not taken yet come first too, even before an in-order one.
        mailbox.queue_text(b"{\"ack\":1}");
        publish1(&hub, 7, delivery(5));
        assert!(matches!(mailbox.try_recv(16, false), Some(Mail::Flush)));
        assert!(mailbox.try_flush().expect("flushed"));
        assert_eq!(deliveries(mailbox.try_recv(16, false)).0, vec![(7, 5)]);
        assert_eq!(frames_read(&mut client).await, vec![r#"{"ack":1}"#]);

        // Paused: dropped (the client was told to resync).
        mailbox.set_cursor(7, Cursor::Paused { last_sent: 4 }, None);
        publish1(&hub, 7, delivery(5));
        assert!(mailbox.try_recv(16, false).is_none());
        assert!(frames_read(&mut client).await.is_empty());
    }

    /// An acknowledgement owed to `conn` (counted in flight, as `store::Owed` does).
    fn ack_out(conn: u64, mailbox: &Arc<Mailbox>, text: &str, follows: Option<i64>) -> AckOut {
        mailbox.count_send();
        AckOut {
            conn,
            inbox: Arc::clone(mailbox) as Arc<dyn Inbox>,
            frame: Frame::from(text.to_owned()),
            follows,
        }
    }

    #[tokio::test]
    async fn acks_follow_the_senders_copies_and_come_in_the_order_of_the_sends() {
        let hub = LocalHub::new();
        let cap = 16;
        let (server_a, mut client_a) = socket_pair().await;
        let (server_b, mut client_b) = socket_pair().await;
        let (a, a_box) = register_socket(&hub, cap, 1, 100, Some(server_a));
        let (b, b_box) = register_socket(&hub, cap, 2, 200, Some(server_b));
        for (conn, mailbox) in [(a, &a_box), (b, &b_box)] {
            for conv in [3, 9] {
                hub.subscribe(conv, conn, mailbox.clone());
                mailbox.set_cursor(conv, Cursor::Live { last_sent: 0 }, None);
            }
        }

        // One conversation: the acks ride behind the sender's copies.
        hub.publish(
            vec![(9, delivery(1)), (9, delivery(2))],
            vec![
                ack_out(a, &a_box, r#"{"ack":1}"#, Some(9)),
                ack_out(a, &a_box, r#"{"ack":2}"#, Some(9)),
            ],
        );
        assert!(
            a_box.try_recv(16, false).is_none(),
            "nothing for the sender's task"
        );
        assert_eq!(
            frames_read(&mut client_a).await,
            [
                r#"{"seq":1}"#,
                r#"{"seq":2}"#,
                r#"{"ack":1}"#,
                r#"{"ack":2}"#
            ]
        );
        assert_eq!(
            frames_read(&mut client_b).await,
            [r#"{"seq":1}"#, r#"{"seq":2}"#]
        );

        // Sends to two conversations (published in the order of their ids) and a resend:
        // every message first, then the acks in the order of the sends.
        hub.publish(
            vec![(9, delivery(3)), (3, delivery(1))],
            vec![
                ack_out(a, &a_box, r#"{"ack":9}"#, Some(9)),
                ack_out(a, &a_box, r#"{"ack":3}"#, Some(3)),
                ack_out(a, &a_box, r#"{"again":3}"#, None),
            ],
        );
        assert_eq!(
            frames_read(&mut client_a).await,
            [
                r#"{"seq":1}"#,
                r#"{"seq":3}"#,
                r#"{"ack":9}"#,
                r#"{"ack":3}"#,
                r#"{"again":3}"#
            ]
        );

        // Not synced there: the message is not sent, its ack is.
        a_box.set_cursor(9, Cursor::Unsynced, None);
        hub.publish(
            vec![(9, delivery(4))],
            vec![ack_out(a, &a_box, r#"{"ack":4}"#, Some(9))],
        );
        assert_eq!(frames_read(&mut client_a).await, [r#"{"ack":4}"#]);
    }

    #[test]
    fn an_ack_waits_behind_the_deliveries_left_for_the_connection_and_is_never_dropped() {
        // A capacity of one: the second delivery is dropped (lagged), the acks are not.
        let hub = LocalHub::new();
        let cap = 1;
        let (id, mailbox) = register(&hub, cap, 1, 100);
        hub.subscribe(7, id, mailbox.clone());
        hub.publish(
            vec![(7, delivery(1)), (7, delivery(2))],
            vec![
                ack_out(id, &mailbox, "a1", Some(7)),
                ack_out(id, &mailbox, "a2", Some(7)),
            ],
        );
        let (items, lagged) = deliveries(mailbox.try_recv(16, false));
        assert_eq!(items, vec![(7, 1), (0, ACK), (0, ACK)]);
        assert_eq!(lagged, vec![7]);
    }

    #[tokio::test]
    async fn a_connection_with_every_send_in_flight_stops_reading_until_an_ack_goes_out() {
        let hub = LocalHub::new();
        let cap = 16;
        let (server, mut client) = socket_pair().await;
        let (_id, mailbox) = register_socket(&hub, cap, 1, 100, Some(server));
        for _ in 0..MAX_IN_FLIGHT - 1 {
            mailbox.count_send();
        }
        assert!(mailbox.may_read());
        mailbox.count_send();
        assert!(!mailbox.may_read());

        // A waker that records being woken: the connection's task, waiting for mail.
        struct Woken(std::sync::atomic::AtomicBool);
        impl futures::task::ArcWake for Woken {
            fn wake_by_ref(this: &Arc<Self>) {
                this.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let woken = Arc::new(Woken(Default::default()));
        let waker = futures::task::waker(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        assert!(
            mailbox.poll_recv(&mut cx, 16, false).is_pending(),
            "nothing to do yet"
        );
        mailbox.answer(&[Frame::from_static(r#"{"ack":1}"#)]);
        assert!(woken.0.load(std::sync::atomic::Ordering::SeqCst), "woken");
        let mail = mailbox.poll_recv(&mut cx, 16, false);
        assert!(matches!(mail, Poll::Ready(Mail::Resume)), "got {mail:?}");
        assert!(mailbox.may_read());
        assert!(mailbox.try_recv(16, false).is_none(), "resumed once");
        assert_eq!(frames_read(&mut client).await, [r#"{"ack":1}"#]);
    }

    #[test]
    fn control_messages_go_before_deliveries() {
        let hub = LocalHub::new();
        let cap = 8;
        let (id, mailbox) = register(&hub, cap, 1, 100);
        hub.subscribe(3, id, mailbox.clone());
        publish1(&hub, 3, delivery(1));
        hub.notify_user(1, Control::Removed(3));
        assert!(matches!(
            mailbox.try_recv(16, false),
            Some(Mail::Control(Control::Removed(3)))
        ));
        assert_eq!(deliveries(mailbox.try_recv(16, false)).0, vec![(3, 1)]);
    }

    #[test]
    fn ending_a_session_closes_only_that_sessions_connections() {
        let hub = LocalHub::new();
        let cap = 2;
        let (_a, a) = register(&hub, cap, 1, 100);
        let (_b, b) = register(&hub, cap, 1, 200);
        hub.end_session(1, 100, 4001, "signed out");
        assert!(matches!(
            a.try_recv(16, false),
            Some(Mail::Control(Control::Close { code: 4001, .. }))
        ));
        assert!(
            b.try_recv(16, false).is_none(),
            "nothing for the other session"
        );
    }

    #[test]
    fn closing_all_reaches_open_connections_full_queues_and_later_ones() {
        let hub = LocalHub::new();
        let cap = 2;
        let (_a, open) = register(&hub, cap, 1, 100);
        let (_b, full) = register(&hub, cap, 2, 200);
        for n in 0..CONTROL_CAPACITY {
            hub.notify_user(2, Control::Removed(n as i64));
        }
        hub.close_all(1001, "server restarting");
        assert!(matches!(
            open.try_recv(16, false),
            Some(Mail::Control(Control::Close { code: 1001, .. }))
        ));
        // The full queue still hands over what it held, then ends.
        for _ in 0..CONTROL_CAPACITY {
            assert!(matches!(
                full.try_recv(16, false),
                Some(Mail::Control(Control::Removed(_)))
            ));
        }
        assert!(matches!(full.try_recv(16, false), Some(Mail::Closed)));
        let (_c, late) = register(&hub, cap, 3, 300);
        assert!(matches!(
            late.try_recv(16, false),
            Some(Mail::Control(Control::Close { code: 1001, .. }))
        ));
    }

    #[test]
    fn a_full_control_queue_hands_over_what_it_holds_then_ends_the_connection() {
        let hub = LocalHub::new();
        let cap = 2;
        let (id, mailbox) = register(&hub, cap, 1, 100);
        hub.subscribe(5, id, mailbox.clone());
        for n in 0..CONTROL_CAPACITY + 5 {
            hub.notify_user(1, Control::Removed(n as i64));
        }
        publish1(&hub, 5, delivery(1));
        for n in 0..CONTROL_CAPACITY {
            assert!(
                matches!(mailbox.try_recv(16, false), Some(Mail::Control(Control::Removed(c))) if c == n as i64)
            );
        }
        assert!(
            matches!(mailbox.try_recv(16, false), Some(Mail::Closed)),
            "the mailbox was closed: the connection ends and its client reconnects"
        );
    }

    /// The connection's own step past the next message and the publisher's direct write of
    /// the same message (several nodes can bring one message twice) see the cursor on one
    /// side or the other: the message is queued once.
    #[test]
    fn the_next_message_is_queued_once_however_often_it_comes() {
        let mailbox = Mailbox::new(8, None);
        mailbox.set_cursor(3, Cursor::Live { last_sent: 6 }, None);
        assert!(mailbox.send_next(3, 7, b"seven"));
        let once = mailbox.backlog();
        assert!(once > 0, "queued for the socket");
        assert!(
            mailbox.send_next(3, 7, b"seven"),
            "already sent: nothing to do"
        );
        assert_eq!(mailbox.backlog(), once, "not queued twice");
        assert_eq!(mailbox.cursor(3), Cursor::Live { last_sent: 7 });
        assert!(
            !mailbox.send_next(3, 9, b"nine"),
            "a gap is the caller's to fill"
        );
        mailbox.set_cursor(4, Cursor::Paused { last_sent: 1 }, None);
        assert!(!mailbox.send_next(4, 2, b"two"), "not live");
        assert_eq!(mailbox.backlog(), once);
    }
}
