//! The storage seam: one trait per aggregate (users, sessions, conversations, messages,
//! contacts, profiles, bots) and [`MessageLog`], the only thing that adds messages and so the
//! only one that gives out sequence numbers. Services hold the traits they use, never a
//! connection; SQLite implements them all today (`sqlite/`), and a second database is a
//! second implementation of the same traits.

pub mod account;
pub mod audit;
pub(crate) mod commits;
pub mod files;
pub mod postgres;
pub mod space;
pub mod sqlite;
pub mod vault;

use super::hub::{encode, AckOut, Frame, Inbox};
use crate::protocol::{
    Body, ClientId, ContactGroup, ContactState, ConversationKind, ConversationSummary, ErrorCode,
    MessageKind, MessageView, RoomSummary, ServerFrame, Status, UserSummary,
};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A store operation failed (the database, not the caller's input).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(#[from] Box<dyn std::error::Error + Send + Sync>);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self(Box::new(e))
    }
}

impl From<vault::VaultError> for StoreError {
    fn from(e: vault::VaultError) -> Self {
        Self(Box::new(e))
    }
}

impl StoreError {
    /// Whether the database failed for lack of disk space (SQLITE_FULL).
    pub fn is_storage_full(&self) -> bool {
        match self.0.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(e)) => e.code().as_deref() == Some("13"),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---- Users and sessions ---------------------------------------------------------------------

/// A user row with what authentication needs.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub summary: UserSummary,
    pub password_hash: Option<String>,
}

/// Whether a username was free.
#[derive(Debug)]
pub enum CreateUser {
    Created(UserSummary),
    Taken,
}

/// A stored token bucket's shape: at most `burst` tokens, `per_ms` regained each millisecond.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRate {
    pub burst: f64,
    pub per_ms: f64,
}

/// Token buckets that outlive the process (the limits with long windows).
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Takes a token from the bucket `(scope, key)` (created full); if it has none, how many
    /// milliseconds until it has one. One statement: exact however many ask at once.
    async fn take_token(
        &self,
        scope: &str,
        key: &str,
        rate: BucketRate,
        now: i64,
    ) -> Result<std::result::Result<(), i64>>;
    /// Gives a token back to `(scope, key)` (never beyond its burst).
    async fn give_token(&self, scope: &str, key: &str, rate: BucketRate) -> Result<()>;
    /// Forgets the buckets that are full again by `now`; how many.
    async fn forget_full_buckets(&self, now: i64) -> Result<u64>;
}

/// Tokens taken from a shared bucket several at a time (the per-user message rate across
/// nodes, `limits/shared.rs`).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes up to `want` whole tokens from the bucket `(scope, key)` (created full); how
    /// many it had. Exact however many nodes take at once.
    async fn lease_tokens(
        &self,
        scope: &str,
        key: &str,
        rate: BucketRate,
        want: u32,
        now: i64,
    ) -> Result<u32>;
}

/// What bot verification keeps: its signing secret, and the challenges already used.
#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// The value of setting `key`, set to `fresh` first if it has none.
    async fn setting_or(&self, key: &str, fresh: &str) -> Result<String>;
    /// Marks a challenge used; false if it already was (a replay).
    async fn spend_challenge(&self, id: &str, expires_at: i64) -> Result<bool>;
    /// Forgets used challenges that have expired (they are refused for that anyway).
    async fn forget_expired_challenges(&self, now: i64) -> Result<u64>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: Option<&str>,
        is_guest: bool,
    ) -> Result<CreateUser>;
    /// Usernames compare without regard to case.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>>;
    /// Guests with no session alive since `cutoff` (created before it), at most `limit`.
    async fn idle_guests(&self, cutoff: i64, limit: i64) -> Result<Vec<i64>>;
}

/// A session joined with its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub user: UserSummary,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub revoked: bool,
}

impl SessionRow {
    /// Whether the session can still be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        !self.revoked && now < self.idle_expires_at && now < self.absolute_expires_at
    }
    /// When the session ends unless it is used again.
    pub fn deadline(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a session by the hash of its token; returns it.
    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &[u8],
        idle_expires_at: i64,
        absolute_expires_at: i64,
    ) -> Result<SessionRow>;
    async fn session_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<SessionRow>>;
    async fn session_by_id(&self, id: i64) -> Result<Option<SessionRow>>;
    /// Slides the idle expiry forward (never past the absolute lifetime, never backwards).
    async fn touch_session(&self, id: i64, idle_expires_at: i64) -> Result<()>;
    async fn revoke_session(&self, id: i64) -> Result<()>;
    /// Revokes every live session of `user` but `keep`; their ids.
    async fn revoke_other_sessions(&self, user: i64, keep: i64) -> Result<Vec<i64>>;
    /// Removes sessions that ended more than a day before `now`; how many.
    async fn delete_dead_sessions(&self, now: i64) -> Result<u64>;
}

// ---- Conversations and messages ---------------------------------------------------------------

/// A public room as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomListing {
    pub id: i64,
    pub title: String,
    pub members: i64,
    /// Its last sequence number: how many messages it has had.
    pub last_seq: i64,
    pub archived: bool,
}

/// What adding someone to a group conversation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMember {
    Added,
    AlreadyMember,
    Full,
    NotAGroup,
}

#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Where the view that every human member of `conv` shares starts: the latest of
    /// their `visible_after` (a bot must not tell anyone what they could not read).
    async fn shared_view(&self, conv: i64) -> Result<i64>;
    /// Every conversation `user` belongs to, titled for them.
    async fn conversations_for_user(&self, user: i64) -> Result<Vec<ConversationSummary>>;
    /// One conversation as `viewer` sees it, if they are a member.
    async fn conversation_for_member(
        &self,
        conv: i64,
        viewer: i64,
    ) -> Result<Option<ConversationSummary>>;
    /// The rooms `user` joined and the first public rooms (a bounded list).
    async fn rooms_for_user(&self, user: i64) -> Result<Vec<RoomSummary>>;
    /// How many public rooms exist.
    async fn count_rooms(&self) -> Result<i64>;
    /// Up to `limit` public rooms with ids above `after` whose title contains `search` (any
    /// case), by id, as `user` sees them; and whether more follow.
    async fn room_page(
        &self,
        user: i64,
        after: i64,
        search: &str,
        limit: i64,
    ) -> Result<(Vec<RoomSummary>, bool)>;
    /// How far back `user` may read `conv`: None if not a member, else the sequence number
    /// their view starts after (0: the whole history).
    async fn member_view(&self, conv: i64, user: i64) -> Result<Option<i64>>;
    /// The kind and member count of a conversation, if it exists.
    async fn conversation_kind(&self, conv: i64) -> Result<Option<(ConversationKind, i64)>>;
    /// Starts a group conversation with these members (the caller checked who may be in it).
    async fn create_group_conversation(&self, members: &[i64]) -> Result<i64>;
    /// Adds `user` to the group `conv` if it has fewer than `max` members; they see it from
    /// now on.
    async fn add_group_member(&self, conv: i64, user: i64, max: usize) -> Result<AddMember>;
    /// Takes `user` out of a conversation; false if they were not in it.
    async fn remove_member(&self, conv: i64, user: i64) -> Result<bool>;
    /// Joins a public room. `None`: no such room. `Some(true)`: newly joined.
    async fn join_room(&self, room: i64, user: i64) -> Result<Option<bool>>;
    /// How many members a conversation has, and up to `limit` of them, the latest to join
    /// first.
    async fn members_page(&self, conv: i64, limit: i64) -> Result<(i64, Vec<UserSummary>)>;
    /// The one-to-one conversation of two users, created with both as members if it is new;
    /// its id and whether it was created now.
    async fn get_or_create_dm(&self, a: i64, b: i64) -> Result<(i64, bool)>;
    /// Creates public rooms with these titles in one transaction; their ids.
    async fn add_rooms(&self, titles: &[String]) -> Result<Vec<i64>>;
    /// Public rooms whose title contains `search` (any case), archived ones too, by id; at
    /// most `limit`.
    async fn list_rooms(&self, search: &str, limit: i64) -> Result<Vec<RoomListing>>;
    /// Retitles a public room. Its members, for telling them; None if there is no such room.
    async fn rename_room(&self, room: i64, title: &str) -> Result<Option<Vec<i64>>>;
    /// Archives a public room (out of every list, closed to joins and sends; its history
    /// kept) or restores it. Its members, for telling them; None if there is no such room.
    async fn set_room_archived(&self, room: i64, archived: bool) -> Result<Option<Vec<i64>>>;
    /// Clears a one-to-one conversation from `user`'s side: their view starts after its
    /// last message from now on. The new start, or None if it is not a one-to-one
    /// conversation of theirs.
    async fn forget_dm(&self, conv: i64, user: i64) -> Result<Option<i64>>;
    /// The retention watermark of `conv`: messages below it have expired (0: none has).
    async fn expired_before(&self, conv: i64) -> Result<i64>;
    /// Moves `user`'s read mark in `conv` forward to `seq`, at most the last message: where
    /// the mark stands now, or None if it did not move (already there, or not a member).
    async fn mark_read(&self, user: i64, conv: i64, seq: i64) -> Result<Option<i64>>;
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Messages with `after < seq`, oldest first, at most `limit`.
    async fn messages_after(&self, conv: i64, after: i64, limit: u32) -> Result<Vec<MessageView>>;
    /// The `limit` messages just before `before` (or the newest) and after `floor`, oldest
    /// first, and whether older ones (after `floor`) exist.
    async fn messages_before(
        &self,
        conv: i64,
        floor: i64,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<MessageView>, bool)>;
    /// The sender and kind of one message, if it exists.
    async fn message_meta(&self, conv: i64, seq: i64) -> Result<Option<(i64, MessageKind)>>;
    /// The highest sequence number stored in `conv` (0: none).
    async fn last_seq(&self, conv: i64) -> Result<i64>;
}

/// A message joined with its sender's current name, as every store's queries read it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MessageRecord {
    conversation_id: i64,
    seq: i64,
    sender_id: i64,
    display_name: String,
    client_id: String,
    body: String,
    created_at: i64,
    kind: String,
    key_id: Option<String>,
    sealed: Option<Vec<u8>>,
}

impl MessageRecord {
    /// The message as clients see it: its body opened if it is sealed (a body that does not
    /// open is an error, never shown).
    pub(crate) fn view(self, vault: &crate::server::store::vault::Vault) -> Result<MessageView> {
        let body = match (&self.key_id, &self.sealed) {
            (Some(key_id), Some(sealed)) => {
                vault.open(self.conversation_id, self.seq, key_id, sealed)?
            }
            _ => self.body,
        };
        Ok(MessageView {
            conv: self.conversation_id,
            seq: self.seq,
            from: self.sender_id,
            from_name: self.display_name,
            client_id: self.client_id,
            body,
            at: self.created_at,
            kind: MessageKind::parse(&self.kind).unwrap_or_default(),
        })
    }
}

/// A message to add to a conversation's log.
#[derive(Debug)]
pub struct NewMessage {
    pub conv: i64,
    pub sender: i64,
    pub sender_name: String,
    pub client_id: ClientId,
    pub content: Content,
}

/// What a message holds.
#[derive(Debug)]
pub enum Content {
    Text(Body),
    Nudge,
    /// Deletes the message with this sequence number (checked to be the sender's).
    Delete(i64),
    /// Erases every text and nudge the sender wrote in the conversation before it (their
    /// account was deleted): stored as `delete` with the body `all`.
    EraseAll,
    /// The sender joined a group conversation, invited by the one named here.
    Join(String),
    /// The sender left a group conversation.
    Leave,
    /// A shared file: the JSON of its [`crate::protocol::SharedFile`].
    File(String),
}

impl Content {
    /// The body as stored.
    pub fn body(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Content::Text(b) => b.as_str().into(),
            Content::Nudge | Content::Leave => "".into(),
            Content::Delete(seq) => seq.to_string().into(),
            Content::EraseAll => crate::protocol::ERASE_ALL.into(),
            Content::Join(inviter) => inviter.as_str().into(),
            Content::File(json) => json.as_str().into(),
        }
    }
    pub fn kind(&self) -> MessageKind {
        match self {
            Content::Text(_) => MessageKind::Text,
            Content::Nudge => MessageKind::Nudge,
            Content::Delete(_) | Content::EraseAll => MessageKind::Delete,
            Content::Join(_) => MessageKind::Join,
            Content::Leave => MessageKind::Leave,
            Content::File(_) => MessageKind::File,
        }
    }
}

/// The acknowledgement of a committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub conv: i64,
    pub client_id: String,
    pub seq: i64,
    pub at: i64,
}

/// The log could not store a message; the sender may retry with the same client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteFailed {
    /// The database failed, or the log is stopping.
    #[error("the message could not be stored")]
    Internal,
    /// The disk is full, or below the free-space floor (`space.rs`): retry later.
    #[error("the server's storage is full")]
    StorageFull,
}

/// Where a message's acknowledgement goes.
pub enum Reply {
    /// Back to the caller, who waits for it (bots, system lines).
    Wait(oneshot::Sender<Result<Ack, WriteFailed>>),
    /// Into the sending connection's socket, written by the fan-out with the sender's own
    /// copy of the message when it can, so that the connection's task is not woken for it.
    Socket(Owed),
}

/// The log of every conversation's messages: the only writer of messages and the only giver
/// of sequence numbers (gap-free per conversation, given out in commit order). A message is
/// acknowledged only once it is durable; a resend with the same client id in the same
/// conversation gets the first acknowledgement and takes no number.
#[async_trait]
pub trait MessageLog: Send + Sync {
    /// Queues a message; its acknowledgement goes where `reply` says once it is committed.
    /// Waits while the log is full (back-pressure); an error means the log is stopping.
    async fn append(&self, msg: NewMessage, reply: Reply) -> Result<(), WriteFailed>;
    /// Messages waiting to be committed.
    fn queued(&self) -> usize {
        0
    }
    /// Whether it takes messages (it stops with the server, or when its thread failed).
    fn running(&self) -> bool {
        true
    }
}

/// Who else hears of committed messages (the bots' dispatcher): a queue, and which
/// conversations' text messages it wants. Joins and leaves always go.
pub type Observer = (
    mpsc::Sender<MessageView>,
    Arc<dyn Fn(i64) -> bool + Send + Sync>,
);

/// A send of a WebSocket connection waiting for its commit: the acknowledgement it is owed.
/// The connection counts it in flight until answered; one dropped unanswered (the log is
/// gone) answers with an error, so the client resends.
pub struct Owed {
    /// `None` once answered.
    inbox: Option<Arc<dyn Inbox>>,
    conn: u64,
    conv: i64,
    client_id: String,
}

impl Owed {
    /// A send of connection `conn` (its id in the hub) to `conv`; the connection counted it.
    pub fn new(inbox: Arc<dyn Inbox>, conn: u64, conv: i64, client_id: String) -> Self {
        Self {
            inbox: Some(inbox),
            conn,
            conv,
            client_id,
        }
    }

    /// The acknowledgement, for the fan-out to write; `follows` is the conversation of the new
    /// message it acknowledges (None for a resend or a failure).
    pub fn answer(mut self, result: Result<Ack, WriteFailed>, follows: Option<i64>) -> AckOut {
        let inbox = self.inbox.take().expect("answered once");
        AckOut {
            conn: self.conn,
            inbox,
            frame: ack_frame(self.conv, &self.client_id, result),
            follows,
        }
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        if let Some(inbox) = self.inbox.take() {
            inbox.answer(&[ack_frame(
                self.conv,
                &self.client_id,
                Err(WriteFailed::Internal),
            )]);
        }
    }
}

/// The frame that answers a send: its `ack`, or the `error` that asks for a resend.
fn ack_frame(conv: i64, client_id: &str, result: Result<Ack, WriteFailed>) -> Frame {
    encode(&match result {
        Ok(ack) => ServerFrame::Ack {
            conv: ack.conv,
            client_id: ack.client_id,
            seq: ack.seq,
            at: ack.at,
        },
        Err(WriteFailed::Internal) => ServerFrame::Error {
            code: ErrorCode::Internal,
            message: "The message could not be stored; send it again.".to_owned(),
            conv: Some(conv),
            client_id: Some(client_id.to_owned()),
        },
        Err(WriteFailed::StorageFull) => ServerFrame::Error {
            code: ErrorCode::StorageFull,
            message: "The server's storage is full, so the message was not stored; it will be \
                      sent again when there is room."
                .to_owned(),
            conv: Some(conv),
            client_id: Some(client_id.to_owned()),
        },
    })
}

// ---- Contacts, profiles and bots --------------------------------------------------------------

/// One entry of a user's contact list as stored, before presence is added.
#[derive(Debug, Clone)]
pub struct ContactRow {
    pub user: UserSummary,
    /// None: no relationship, only a block.
    pub state: Option<ContactState>,
    pub group: Option<i64>,
    /// The owner has blocked this user.
    pub blocked: bool,
    /// This user has blocked the owner.
    pub blocked_me: bool,
}

/// What a contact request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// A new request; the other side now has it as incoming.
    Sent,
    /// They had asked first: both are contacts now.
    Accepted,
    /// Nothing changed (already requested or already contacts).
    Unchanged,
}

/// What a change to a contact group did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChange {
    Done(i64),
    /// Another group of this owner has that name.
    NameTaken,
    /// No such group of this owner.
    NotFound,
    /// The owner has the most groups allowed.
    TooMany,
}

#[async_trait]
pub trait ContactStore: Send + Sync {
    /// The contact list of `owner`: relationships in every state, and blocked users.
    async fn contacts_of(&self, owner: i64) -> Result<Vec<ContactRow>>;
    /// `other` as an entry of `owner`'s list; None when there is nothing to show.
    async fn contact_of(&self, owner: i64, other: i64) -> Result<Option<ContactRow>>;
    /// `from` asks `to` to be contacts.
    async fn request_contact(&self, from: i64, to: i64) -> Result<Requested>;
    /// `me` accepts the request of `other`; false when there was no such request.
    async fn accept_contact(&self, me: i64, other: i64) -> Result<bool>;
    /// Ends the relationship on both sides (with `only_incoming`, only a request `other`
    /// sent); whether anything was removed.
    async fn remove_contact(&self, me: i64, other: i64, only_incoming: bool) -> Result<bool>;
    /// Blocks or unblocks (a pending request from the blocked user is declined); whether
    /// anything changed.
    async fn set_block(&self, me: i64, other: i64, blocked: bool) -> Result<bool>;
    /// Every block, as (blocker, blocked); loaded once at start.
    async fn all_blocks(&self) -> Result<Vec<(i64, i64)>>;
    /// Users who may see `user`'s presence: accepted contacts that `user` has not blocked.
    async fn presence_viewers(&self, user: i64) -> Result<Vec<i64>>;
    /// Whether `viewer` may see `owner`'s presence, personal message and picture.
    async fn may_see_presence(&self, viewer: i64, owner: i64) -> Result<bool>;
    async fn groups_of(&self, owner: i64) -> Result<Vec<ContactGroup>>;
    async fn create_group(&self, owner: i64, name: &str, max: usize) -> Result<GroupChange>;
    async fn rename_group(&self, owner: i64, id: i64, name: &str) -> Result<GroupChange>;
    /// Deletes a group (its contacts stay, in no group); false if it was not the owner's.
    async fn delete_group(&self, owner: i64, id: i64) -> Result<bool>;
    /// Moves a contact into `group` (None: out of any); false when the contact or the group
    /// is not the owner's.
    async fn set_contact_group(&self, owner: i64, contact: i64, group: Option<i64>)
        -> Result<bool>;
}

/// A user's chosen status, personal message, display name and picture version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub status: Status,
    pub personal_message: String,
    pub display_name: String,
    pub picture: Option<String>,
}

#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// None: no such user.
    async fn profile(&self, user: i64) -> Result<Option<Profile>>;
    /// Changes what is given; the profile as it is now.
    async fn update_profile(
        &self,
        user: i64,
        status: Option<Status>,
        display_name: Option<&str>,
        personal_message: Option<&str>,
    ) -> Result<Option<Profile>>;
    /// Stores (`Some((version, png))`) or removes the display picture; the profile as it is
    /// now.
    async fn set_picture(
        &self,
        user: i64,
        picture: Option<(&str, &[u8])>,
    ) -> Result<Option<Profile>>;
    /// The stored picture: its version and PNG bytes.
    async fn picture(&self, user: i64) -> Result<Option<(String, Vec<u8>)>>;
}

/// Whether a bot reply may be made today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Granted,
    /// This user had their replies for the day.
    UserSpent,
    /// Everyone together had the day's replies.
    AllSpent,
}

#[async_trait]
pub trait BotStore: Send + Sync {
    /// Creates the bot account `handle` or brings it up to date; its id, or None when a
    /// person already has that username.
    async fn upsert_bot(
        &self,
        handle: &str,
        display_name: &str,
        personal_message: &str,
        status: Status,
    ) -> Result<Option<i64>>;
    /// The kind of `conv` and the bots among its members; None if there is no such
    /// conversation.
    async fn bots_in(&self, conv: i64) -> Result<Option<(ConversationKind, Vec<i64>)>>;
    /// Every (conversation, kind, bot) where a bot is a member, in order of arrival.
    async fn bot_conversations(&self) -> Result<Vec<(i64, ConversationKind, i64)>>;
    /// Whether the administrator lets the bots answer (`messenger bots on|off`).
    async fn bots_enabled(&self) -> Result<bool>;
    async fn set_bots_enabled(&self, on: bool) -> Result<()>;
    /// Counts one reply for `user` on `day` if both the user's and the global count are under
    /// their limits; otherwise counts nothing. The user's first `first_replies` of the day
    /// are granted even when the global count is spent (and counted in it), so that others
    /// can never starve a newcomer. A limit is never exceeded, also under concurrent takers
    /// and across restarts.
    async fn take_bot_quota(
        &self,
        day: i64,
        user: i64,
        user_limit: u32,
        global_limit: u32,
        first_replies: u32,
    ) -> Result<Quota>;
}

// ---- The whole database -----------------------------------------------------------------------

/// Everything the server asks of its database, whichever it is (SQLite, or PostgreSQL shared
/// by several nodes): every aggregate's trait, and what the server's own jobs need. Services
/// are given `Arc<dyn Database>` as the one trait each of them uses.
#[async_trait]
pub trait Database:
    UserStore
    + SessionStore
    + ConversationStore
    + MessageStore
    + ContactStore
    + ProfileStore
    + BotStore
    + LimitStore
    + ChallengeStore
    + audit::AuditStore
    + files::FileStore
    + account::AccountStore
{
    /// Seals and opens message bodies.
    fn vault(&self) -> Arc<vault::Vault>;
    /// The database's epoch: clients keep it with their cursors.
    fn epoch(&self) -> &str;
    /// Counts a client cursor found beyond its conversation's last message.
    fn count_regression(&self);
    /// Re-encrypts under the active key the next rows after `after` (in key order), at most
    /// `limit` read; the last row looked at (None: the end) and how many were sealed anew.
    async fn rekey_batch(&self, after: (i64, i64), limit: i64)
        -> Result<(Option<(i64, i64)>, u64)>;
    /// How many messages each key seals (`None`: plain bodies that are not empty).
    async fn rows_per_key(&self) -> Result<Vec<(Option<String>, i64)>>;
    /// Forgets that the database used `key` (it seals no row any more).
    async fn forget_key(&self, key: &str) -> Result<()>;
    /// Makes what was committed part of the database's main file (SQLite's WAL
    /// checkpoint, at shutdown and for tests that read the file); nothing on PostgreSQL.
    async fn checkpoint(&self) -> anyhow::Result<()>;
}

#[async_trait]
impl Database for sqlite::SqliteStore {
    fn vault(&self) -> Arc<vault::Vault> {
        sqlite::SqliteStore::vault(self)
    }
    fn epoch(&self) -> &str {
        sqlite::SqliteStore::epoch(self)
    }
    fn count_regression(&self) {
        sqlite::SqliteStore::count_regression(self)
    }
    async fn rekey_batch(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> Result<(Option<(i64, i64)>, u64)> {
        sqlite::SqliteStore::rekey_batch(self, after, limit).await
    }
    async fn rows_per_key(&self) -> Result<Vec<(Option<String>, i64)>> {
        sqlite::SqliteStore::rows_per_key(self).await
    }
    async fn forget_key(&self, key: &str) -> Result<()> {
        sqlite::SqliteStore::forget_key(self, key).await
    }
    async fn checkpoint(&self) -> anyhow::Result<()> {
        sqlite::SqliteStore::checkpoint(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hub::testing::{Got, Recorder};

    #[test]
    fn a_send_dropped_unanswered_is_answered_with_an_error_to_resend() {
        let inbox = Arc::new(Recorder::default());
        drop(Owed::new(inbox.clone(), 1, 7, "c-1".to_owned()));
        let got = inbox.got();
        let [Got::Ack(text)] = got.as_slice() else {
            panic!("one answer: {got:?}");
        };
        let frame: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(frame["t"], "error");
        assert_eq!(frame["code"], "internal");
        assert_eq!(frame["conv"], 7);
        assert_eq!(frame["client_id"], "c-1");
    }
}
