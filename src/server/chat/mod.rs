//! Conversations and their messages. [`Chat::post`] is the one way a message enters a
//! conversation (a socket's send, nudge or deletion, a bot's answer, a join or leave line):
//! it applies the rules (blocks, the nudge limit, what may be deleted), takes the sender's
//! name as it is now, and appends it to the [`MessageLog`], which commits it and gives it its
//! sequence number. Typing indicators take the same fan-out path without the log.

mod conversations;
mod rooms;

use super::{
    hub::{encode, Fanout},
    presence::PresenceHub,
    store::{
        Ack, ContactStore, Content, ConversationStore, MessageLog, MessageStore, NewMessage,
        ProfileStore, Reply, StoreError, UserStore,
    },
};
use crate::protocol::{ClientId, ErrorCode, MessageKind, MessageView, ServerFrame, NUDGE_EVERY};
use async_trait::async_trait;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};
use tokio::sync::oneshot;

/// Told when the members of a conversation change in a way the bots care about (a
/// one-to-one conversation with a bot began, a bot was invited), before anything is said
/// there. The bots implement it; the conversations do not depend on them.
#[async_trait]
pub trait MembersWatch: Send + Sync {
    async fn members_changed(&self, conv: i64) -> Result<(), StoreError>;
}

pub struct Chat {
    pub log: Arc<dyn MessageLog>,
    pub users: Arc<dyn UserStore>,
    pub convs: Arc<dyn ConversationStore>,
    pub messages: Arc<dyn MessageStore>,
    pub contacts: Arc<dyn ContactStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub presence: Arc<PresenceHub>,
    pub fanout: Arc<dyn Fanout>,
    /// The bots, when the server has them.
    pub watch: Option<Arc<dyn MembersWatch>>,
    nudges: NudgeLimit,
    /// Told when a shared file's message is deleted (the media collector waits on it).
    pub file_deleted: tokio::sync::Notify,
}

/// Who posts, as the caller knows them.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub id: i64,
    /// Their display name as the caller knows it; the one presence holds wins (it may have
    /// changed since).
    pub name: &'a str,
    /// The other member, in a one-to-one conversation (their block stops the message).
    pub dm_peer: Option<i64>,
}

/// Why a post was refused; the socket tells its client with the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The other member of the one-to-one conversation does not accept the author's messages.
    Undeliverable,
    /// A nudge within [`NUDGE_EVERY`] of the author's last one there.
    NudgeLimited,
    /// The message to delete is not the author's, does not exist or cannot be deleted.
    CannotDelete(&'static str),
    /// It could not be checked or stored: retry with the same client id.
    Failed,
    /// The log is stopping and did not take it; its acknowledgement, if one was owed, said
    /// so already.
    Stopping,
}

impl Refusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Undeliverable => ErrorCode::Undeliverable,
            Refusal::NudgeLimited => ErrorCode::NudgeLimited,
            Refusal::CannotDelete(_) => ErrorCode::CannotDelete,
            Refusal::Failed | Refusal::Stopping => ErrorCode::Internal,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Undeliverable => "Your message could not be delivered.".to_owned(),
            Refusal::NudgeLimited => format!(
                "You can send a nudge once every {} seconds.",
                NUDGE_EVERY.as_secs()
            ),
            Refusal::CannotDelete(why) => (*why).to_owned(),
            Refusal::Failed | Refusal::Stopping => {
                "The message could not be stored; send it again.".to_owned()
            }
        }
    }
}

impl Chat {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        log: Arc<dyn MessageLog>,
        users: Arc<dyn UserStore>,
        convs: Arc<dyn ConversationStore>,
        messages: Arc<dyn MessageStore>,
        contacts: Arc<dyn ContactStore>,
        profiles: Arc<dyn ProfileStore>,
        presence: Arc<PresenceHub>,
        fanout: Arc<dyn Fanout>,
        watch: Option<Arc<dyn MembersWatch>>,
    ) -> Self {
        Self {
            log,
            users,
            convs,
            messages,
            contacts,
            profiles,
            presence,
            fanout,
            watch,
            nudges: NudgeLimit::default(),
            file_deleted: tokio::sync::Notify::new(),
        }
    }

    /// Posts a message to `conv`, which the caller has checked `author` belongs to: applies
    /// the rules, then appends it to the log. Its acknowledgement goes where `reply` says
    /// once it is committed; `reply` is made only when the log takes the message, so a
    /// refused post owes none.
    pub async fn post(
        &self,
        author: Author<'_>,
        conv: i64,
        client_id: ClientId,
        content: Content,
        reply: impl FnOnce() -> Reply + Send,
    ) -> Result<(), Refusal> {
        if author
            .dm_peer
            .is_some_and(|peer| self.presence.blocked(peer, author.id))
        {
            return Err(Refusal::Undeliverable);
        }
        let mut deletes_file = false;
        match content {
            Content::Nudge if !self.nudges.allow(conv, author.id) => {
                return Err(Refusal::NudgeLimited)
            }
            // Checked here, and again inside the commit (a second deletion of the same
            // message in flight changes nothing there).
            Content::Delete(seq) => {
                deletes_file = self.may_delete(author.id, conv, seq).await? == MessageKind::File;
            }
            _ => {}
        }
        // The name as it is now (it may have changed since the socket opened); an erased
        // account's line names it as it is now, deleted, whatever presence still holds.
        let sender_name = match content {
            Content::EraseAll => author.name.to_owned(),
            _ => self
                .presence
                .own_view(author.id)
                .map_or_else(|| author.name.to_owned(), |(name, _)| name),
        };
        let msg = NewMessage {
            conv,
            sender: author.id,
            sender_name,
            client_id,
            content,
        };
        self.log
            .append(msg, reply())
            .await
            .map_err(|_| Refusal::Stopping)?;
        if deletes_file {
            self.file_deleted.notify_one();
        }
        Ok(())
    }

    /// [`Chat::post`], then waits for the commit (bots, join and leave lines).
    pub async fn post_and_wait(
        &self,
        author: Author<'_>,
        conv: i64,
        client_id: ClientId,
        content: Content,
    ) -> Result<Ack, Refusal> {
        let (reply, committed) = oneshot::channel();
        self.post(author, conv, client_id, content, move || Reply::Wait(reply))
            .await
            .map_err(|r| match r {
                Refusal::Stopping => Refusal::Failed,
                other => other,
            })?;
        committed
            .await
            .map_err(|_| Refusal::Failed)?
            .map_err(|_| Refusal::Failed)
    }

    /// The kind of the message `user` may delete, or why not.
    async fn may_delete(&self, user: i64, conv: i64, seq: i64) -> Result<MessageKind, Refusal> {
        let meta = self.messages.message_meta(conv, seq).await.map_err(|e| {
            tracing::error!(error = %e, conv, seq, "reading a message to delete");
            Refusal::Failed
        })?;
        match meta {
            None => Err(Refusal::CannotDelete("That message does not exist.")),
            Some((sender, _)) if sender != user => Err(Refusal::CannotDelete(
                "You can only delete your own messages.",
            )),
            Some((_, MessageKind::Deleted | MessageKind::Delete)) => {
                Err(Refusal::CannotDelete("That message is already deleted."))
            }
            Some((_, kind)) if !kind.is_deletable() => {
                Err(Refusal::CannotDelete("That message cannot be deleted."))
            }
            Some((_, kind)) => Ok(kind),
        }
    }

    /// Passes "`name` is writing" (or stopped) on to the live members of `conv`; never
    /// stored.
    pub fn typing(&self, conv: i64, user: i64, name: String, active: bool) {
        let frame = encode(&ServerFrame::Typing {
            conv,
            user,
            name,
            active,
        });
        self.fanout.publish_ephemeral(conv, frame);
    }

    /// The highest sequence number stored in `conv` (0: none).
    pub async fn last_seq(&self, conv: i64) -> Result<i64, StoreError> {
        self.messages.last_seq(conv).await
    }

    /// A page of stored messages for a socket's `sync`: those after `after`, oldest first.
    pub async fn replay_page(
        &self,
        conv: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.messages.messages_after(conv, after, limit).await
    }

    /// Moves `user`'s read mark in `conv` to `seq` and tells all their tabs; false if it was
    /// there already.
    pub async fn read(&self, user: i64, conv: i64, seq: i64) -> Result<bool, StoreError> {
        // The tabs hear where the mark stands, not what was asked: a mark past the last
        // message is kept at the last message.
        let moved = self.convs.mark_read(user, conv, seq.max(0)).await?;
        if let Some(seq) = moved {
            self.fanout.notify_user(
                user,
                super::hub::Control::frame(&ServerFrame::Read { conv, seq }),
            );
        }
        Ok(moved.is_some())
    }
}

/// One nudge per user per conversation per [`NUDGE_EVERY`], across all their connections.
/// In memory: after a restart a nudge may come sooner, which harms nobody.
#[derive(Default)]
struct NudgeLimit {
    last: Mutex<HashMap<(i64, i64), Instant>>,
}

impl NudgeLimit {
    /// Whether `user` may nudge `conv` now; if so, counts this nudge.
    fn allow(&self, conv: i64, user: i64) -> bool {
        let now = Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last
            .get(&(conv, user))
            .is_some_and(|at| now.duration_since(*at) < NUDGE_EVERY)
        {
            return false;
        }
        // Entries older than the window decide nothing: drop them now and then.
        if last.len() >= 1024 {
            last.retain(|_, at| now.duration_since(*at) < NUDGE_EVERY);
        }
        last.insert((conv, user), now);
        true
    }
}
