//! A connection's state (who it is, the conversations it belongs to, its mailbox and send
//! rate) and what its loop and its commands do with it: send frames, refuse, replay from the
//! store, deliver what the mailbox holds, keep the session alive.

use super::mailbox::{Cursor, Mailbox};
use crate::protocol::{ConversationKind, ConversationSummary, ErrorCode, ServerFrame, UserSummary};
use crate::server::{
    hub::{encode, Delivery, ACK, EPHEMERAL},
    limits::{sockets::Slot, users::UserRates},
    state::AppState,
    store::{now_ms, SessionRow},
};
use std::{
    collections::{hash_map::Entry, HashMap},
    io,
    sync::Arc,
};
use tokio::time::Instant;

/// Messages read from the store per page while replaying a `sync`.
const REPLAY_PAGE: u32 = 256;
/// Most frames gathered into one socket write.
pub(super) const COALESCE_MAX: usize = 256;
/// A gap in the live stream larger than this is not filled inline; the client resyncs.
const GAP_FILL_MAX: i64 = 1024;
/// Bytes a connection lets wait for its socket while it goes on with its loop; above this
/// a command waits for the socket to take them (within the stall limit) before it goes on.
/// Deliveries never add to it (they wait in the mailbox while bytes wait), so this and the
/// mailbox's capacity bound what a connection whose reader stopped can hold.
const OUT_SOFT_CAP: usize = 64 * 1024;

/// One WebSocket connection.
pub(super) struct Conn {
    pub(super) state: AppState,
    /// The session and its user (`session.user` is who this connection is).
    pub(super) session: SessionRow,
    /// This connection's id in the hub and in presence.
    pub(super) id: u64,
    /// The conversations this user belongs to: one map for everything kept per
    /// conversation (each map is 48 bytes of every connection, and an allocation once used).
    /// Where the connection stands in each (its cursor) is in the mailbox.
    pub(super) joined: HashMap<i64, Joined>,
    /// Where the hub puts this connection's deliveries and control messages, and the way
    /// out to its socket.
    pub(super) mailbox: Arc<Mailbox>,
    /// The user's rates, shared with their other sockets.
    rates: Arc<UserRates>,
    /// When this connection last slid the session's idle expiry.
    last_slide: i64,
    /// Its place under the sockets' caps, given back when the connection ends.
    _slot: Slot,
}

/// What a connection keeps for each conversation its user belongs to.
pub(super) struct Joined {
    /// The other member of a one-to-one conversation (a block stops sends to them).
    pub(super) dm_peer: Option<i64>,
    /// In a group the user was invited to late, what they may see starts after this
    /// sequence number (0 otherwise).
    pub(super) floor: i64,
    /// When this connection last passed on "typing" here (cleared on "stopped").
    pub(super) typing_sent: Option<Instant>,
    /// One-to-one, group or room (for the analytics of what is sent where).
    pub(super) kind: ConversationKind,
}

impl Conn {
    pub(super) fn new(
        state: AppState,
        session: SessionRow,
        id: u64,
        mailbox: Arc<Mailbox>,
        slot: Slot,
    ) -> Self {
        Self {
            _slot: slot,
            rates: state.rates.of(session.user.id),
            last_slide: now_ms(),
            id,
            joined: HashMap::new(),
            mailbox,
            session,
            state,
        }
    }

    pub(super) fn me(&self) -> &UserSummary {
        &self.session.user
    }

    /// The conversations this connection is subscribed to.
    pub(super) fn joined_ids(&self) -> Vec<i64> {
        self.joined.keys().copied().collect()
    }

    pub(super) fn is_member(&self, conv: i64) -> bool {
        self.joined.contains_key(&conv)
    }

    fn cursor(&self, conv: i64) -> Cursor {
        self.mailbox.cursor(conv)
    }

    /// Sets the cursor of a conversation this user is in (and queues `frame` with it).
    pub(super) fn set_cursor(&self, conv: i64, cursor: Cursor, frame: Option<&str>) {
        if self.is_member(conv) {
            self.mailbox
                .set_cursor(conv, cursor, frame.map(str::as_bytes));
        } else if let Some(text) = frame {
            self.mailbox.queue_text(text.as_bytes());
        }
    }

    /// Queues a frame and writes what the socket takes now; the loop writes the rest as the
    /// socket takes it. Waits (within the stall limit) only when more than
    /// [`OUT_SOFT_CAP`] bytes wait.
    pub(super) async fn send(&mut self, text: &str) -> io::Result<()> {
        self.mailbox.queue_text(text.as_bytes());
        self.settle().await
    }

    /// Writes what the socket takes now; waits for it only above [`OUT_SOFT_CAP`].
    pub(super) async fn settle(&self) -> io::Result<()> {
        if self.mailbox.try_flush()? || self.mailbox.backlog() <= OUT_SOFT_CAP {
            return Ok(());
        }
        self.mailbox.flush(self.stall_limit()).await
    }

    /// How long the socket may take none of the bytes waiting for it before the connection
    /// ends: the heartbeat's three intervals, the same time a silent client is given.
    pub(super) fn stall_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.state.cfg.sockets.heartbeat_seconds.max(1) * 3)
    }

    /// Answers a frame with an `error` (the socket stays open).
    pub(super) async fn refuse(
        &mut self,
        code: ErrorCode,
        message: &str,
        conv: Option<i64>,
        client_id: Option<String>,
    ) -> io::Result<()> {
        let frame = encode(&ServerFrame::Error {
            code,
            message: message.to_owned(),
            conv,
            client_id,
        });
        self.send(&frame).await
    }

    /// Answers a frame about a conversation this user is not in.
    pub(super) async fn not_member(
        &mut self,
        conv: i64,
        client_id: Option<String>,
    ) -> io::Result<()> {
        let message = "You are not in that conversation.";
        self.refuse(ErrorCode::NotMember, message, Some(conv), client_id)
            .await
    }

    /// The other member, if `conv` is a one-to-one conversation.
    pub(super) fn dm_peer(&self, conv: i64) -> Option<i64> {
        self.joined.get(&conv).and_then(|j| j.dm_peer)
    }

    /// Joins a conversation (from `hello`, or `conv_added`): its messages come here.
    pub(super) fn subscribe(&mut self, c: &ConversationSummary) {
        let me = self.me().id;
        let dm_peer = (c.kind == ConversationKind::Dm)
            .then(|| c.members.iter().find(|m| m.id != me).map(|m| m.id))
            .flatten();
        match self.joined.entry(c.id) {
            Entry::Occupied(e) => {
                let j = e.into_mut();
                j.dm_peer = dm_peer.or(j.dm_peer);
                if c.visible_after > 0 {
                    j.floor = c.visible_after;
                }
            }
            Entry::Vacant(e) => {
                e.insert(Joined {
                    dm_peer,
                    floor: c.visible_after.max(0),
                    typing_sent: None,
                    kind: c.kind,
                });
                self.state
                    .hub
                    .subscribe(c.id, self.id, self.mailbox.clone());
            }
        }
    }

    /// The kind of a conversation this connection is in.
    pub(super) fn kind_of(&self, conv: i64) -> Option<ConversationKind> {
        self.joined.get(&conv).map(|j| j.kind)
    }

    /// Leaves a conversation (`conv_removed`).
    pub(super) fn unsubscribe(&mut self, conv: i64) {
        if self.joined.remove(&conv).is_some() {
            self.state.hub.unsubscribe(conv, self.id);
            self.mailbox.set_cursor(conv, Cursor::Unsynced, None);
        }
    }

    /// Sends the stored messages with `after < seq <= upto`, page by page; returns the last
    /// sequence number sent (or `after` if none).
    pub(super) async fn replay(&mut self, conv: i64, after: i64, upto: i64) -> anyhow::Result<i64> {
        let mut last = after;
        loop {
            let page = self.state.chat.replay_page(conv, last, REPLAY_PAGE).await?;
            let full = page.len() == REPLAY_PAGE as usize;
            for m in page {
                if m.seq > upto {
                    return Ok(last);
                }
                last = m.seq;
                self.mailbox
                    .queue_text(encode(&ServerFrame::Msg(m)).as_bytes());
            }
            // Page by page, each written before the next is read: memory stays bounded.
            self.mailbox.flush(self.stall_limit()).await?;
            if !full {
                return Ok(last);
            }
        }
    }

    /// Queues a batch from the mailbox for the socket (not flushed), then pauses each
    /// conversation that lagged.
    pub(super) async fn deliver_all(
        &mut self,
        items: Vec<(i64, Delivery)>,
        lagged: Vec<i64>,
    ) -> anyhow::Result<()> {
        for (conv, d) in items {
            self.deliver(conv, d).await?;
        }
        for conv in lagged {
            if let Cursor::Live { last_sent } = self.cursor(conv) {
                tracing::debug!(
                    user = self.me().id,
                    conv,
                    "connection lagged; asking for resync"
                );
                self.pause(conv, last_sent);
            }
        }
        Ok(())
    }

    async fn deliver(&mut self, conv: i64, d: Delivery) -> anyhow::Result<()> {
        if d.seq == ACK {
            // Owed to this connection whatever the conversation's state.
            self.mailbox.queue_text(d.frame.as_bytes());
            return Ok(());
        }
        match self.cursor(conv) {
            Cursor::Live { .. } if d.seq == EPHEMERAL => {
                self.mailbox.queue_text(d.frame.as_bytes());
            }
            Cursor::Live { last_sent } => {
                if d.seq <= last_sent {
                    return Ok(()); // already sent by a replay
                }
                if d.seq > last_sent + 1 {
                    if d.seq - last_sent > GAP_FILL_MAX {
                        self.pause(conv, last_sent);
                        return Ok(());
                    }
                    // While the gap is filled from the store, what the publisher brings for
                    // this conversation waits in the queue (this task takes it up after,
                    // skipping what the replay sent) instead of going straight to the socket,
                    // where it would repeat what the replay then sends. Gaps are rare on one
                    // node and common with several, whose messages arrive in any order.
                    self.set_cursor(conv, Cursor::Syncing, None);
                    Box::pin(self.replay(conv, last_sent, d.seq - 1)).await?;
                    self.set_cursor(
                        conv,
                        Cursor::Live { last_sent: d.seq },
                        Some(d.frame.as_str()),
                    );
                } else if !self.mailbox.send_next(conv, d.seq, d.frame.as_bytes()) {
                    // The cursor moved since it was read (paused meanwhile): as above, the
                    // client syncs and gets it from the store.
                    return Ok(());
                }
            }
            // Not synced yet, or paused: the client will sync and get these from the store.
            // (Syncing is only seen inside the `sync` handler, which leaves it live.)
            Cursor::Unsynced | Cursor::Syncing | Cursor::Paused { .. } => {}
        }
        Ok(())
    }

    fn pause(&self, conv: i64, last_sent: i64) {
        self.state.metrics.resyncs.inc();
        let resync = encode(&ServerFrame::Resync {
            conv,
            after: last_sent,
        });
        self.set_cursor(conv, Cursor::Paused { last_sent }, Some(&resync));
    }

    /// Adds every delivery and acknowledgement that is already waiting (up to a bound, for
    /// fairness) to the frames queued for the socket, then writes them all at once: under
    /// load a connection gets many frames per system call instead of one. What the socket
    /// does not take now, the loop writes as it can.
    pub(super) async fn write_ready(&mut self) -> anyhow::Result<()> {
        let mut budget = COALESCE_MAX;
        while budget > 0 {
            let Some((items, lagged)) = self.mailbox.try_deliveries(budget) else {
                break;
            };
            budget = budget.saturating_sub(items.len().max(1));
            self.deliver_all(items, lagged).await?;
        }
        self.mailbox.try_flush()?;
        Ok(())
    }

    /// Counts one message (send, nudge, deletion) against the user's rate, over all their
    /// sockets; false when they send too fast.
    pub(super) async fn take_token(&mut self) -> bool {
        if !self.rates.message() {
            return false;
        }
        // With several nodes, the user's sockets elsewhere draw on the same rate.
        match &self.state.shared_rates {
            Some(shared) => shared.take(self.me().id).await,
            None => true,
        }
    }

    /// Gives back the send [`take_token`](Self::take_token) took, for a refusal that
    /// stored nothing and that the client could not have avoided by waiting.
    pub(super) fn refund_token(&mut self) {
        self.rates.message_back();
        if let Some(shared) = &self.state.shared_rates {
            shared.give_back(self.me().id);
        }
    }

    /// Counts one client frame against the user's rate, over all their sockets; while the
    /// user has none left, waits (this socket is not read meanwhile, so a flood slows to the
    /// rate and queues nothing here). Within the rate it takes a lock and no allocation: the
    /// loop boxes only the wait.
    ///
    /// With several nodes (`shared_rates` is set only then), each lets through its share of
    /// the rate: the user's nodes are those their presence is heard from.
    pub(super) fn count_frame(&self) -> Result<(), std::time::Duration> {
        match self.state.shared_rates {
            None => self.rates.frame(),
            Some(_) => self
                .rates
                .frame_on(self.state.presence.nodes_of(self.me().id)),
        }
    }

    /// Waits `wait`, then until the user's rate allows this frame.
    pub(super) async fn pace(&self, mut wait: std::time::Duration) {
        loop {
            tokio::time::sleep(wait).await;
            match self.count_frame() {
                Ok(()) => return,
                Err(more) => wait = more,
            }
        }
    }

    /// Sending is activity: keep the session alive (at most one write per 30 s).
    pub(super) async fn slide_session(&mut self) -> anyhow::Result<()> {
        let now = now_ms();
        if now - self.last_slide > 30_000 {
            self.last_slide = now;
            // Not fatal: a socket stays open while its session cannot be written (a full
            // disk), until the session's stored expiry.
            if let Err(e) = self.state.auth.slide(&mut self.session, now, true).await {
                tracing::debug!(user = self.me().id, error = %e, "sliding the session failed");
            }
        }
        Ok(())
    }
}
