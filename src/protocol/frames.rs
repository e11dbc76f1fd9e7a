//! The WebSocket frames of `/ws`: what a client sends, what the server answers, the error
//! codes and the close codes.

use super::{
    Contact, ContactGroup, ConversationSummary, MessageView, Presence, RoomSummary, Status,
    UserSummary,
};
use serde::{Deserialize, Serialize};

/// WebSocket close codes the server uses (RFC 6455 registered codes and private 4000-4999).
pub mod close {
    /// The server is shutting down or restarting: reconnect with backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame could not be parsed as a client frame.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that was not UTF-8.
    pub const NOT_UTF8: u16 = 1007;
    /// A frame was larger than [`super::MAX_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// An internal error; reconnect with backoff.
    pub const INTERNAL: u16 = 1011;
    /// The session ended (expired, signed out, revoked): sign in again, do not just reconnect.
    pub const SESSION_ENDED: u16 = 4001;
    /// The client stopped answering heartbeats.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The connection fell so far behind on contact and conversation updates that the
    /// server stopped queueing them: reconnect (the new `hello` has everything).
    pub const FELL_BEHIND: u16 = 4003;
    /// This user, or this address, has as many sockets open as it may: close a tab, or
    /// reconnect later (with backoff).
    pub const TOO_MANY_SOCKETS: u16 = 4004;
    /// The server has no room for another socket now: reconnect later, with backoff.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// A frame sent by a client. JSON text, tagged by `"t"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Post a message. `client_id` makes the send idempotent within the conversation.
    Send {
        conv: i64,
        client_id: String,
        body: String,
    },
    /// Nudge the other members: stored like a message (acknowledged the same way), shown as
    /// "<name> sent a nudge" and shaking the window. At most one per [`NUDGE_EVERY`] per
    /// user and conversation.
    Nudge { conv: i64, client_id: String },
    /// Delete one of your own messages (text, nudge or shared file) for every member: stored as a message
    /// of kind `delete` (acknowledged like one) whose body is `seq`; the deleted message keeps
    /// its number but loses its body.
    Delete {
        conv: i64,
        client_id: String,
        seq: i64,
    },
    /// Replay every message with a sequence number above `after`, then continue live.
    /// `epoch` is the `hello` epoch the client's cursor (`after`) was taken under: a cursor
    /// from another epoch, or beyond the conversation's last message, gets `reset` and the
    /// conversation again from the start instead of a replay after `after`.
    Sync {
        conv: i64,
        after: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// Are you there? The server answers `pong` at once. Browsers cannot see the
    /// WebSocket's own pings, so the page sends this when it has heard nothing for a few
    /// seconds, and gives the connection up when even this goes unanswered.
    Ping {},
    /// Choose a status for every tab of this user (and the next sign-in). `offline` is
    /// "Appear Offline": contacts see the user as offline.
    SetStatus { status: Status },
    /// This tab's user has been inactive (`true`) or is back (`false`). When every open tab
    /// of a user who chose Online is idle, contacts see them as Away.
    Idle { idle: bool },
    /// The user has read a conversation up to `seq` (its window is open): unread counts in
    /// every tab, and at the next sign-in, start after it.
    Read { conv: i64, seq: i64 },
    /// The user is writing in a conversation (`active: true`, repeated every few seconds
    /// while they type) or stopped (`active: false`). Passed on to the other members, never
    /// stored.
    Typing { conv: i64, active: bool },
}

/// How long a `typing` indicator lasts on the receiving side without a repeat.
pub const TYPING_SHOWS_FOR_MS: u64 = 6000;
/// How often a client repeats `typing { active: true }` while the user keeps typing (the
/// server passes on at most one per second per connection and conversation).
pub const TYPING_REPEAT_MS: u64 = 3000;

/// A frame sent by the server. JSON text, tagged by `"t"`, which comes first.
///
/// The browser builds declare it externally tagged and read it with [`tagged`](super::tagged):
/// serde's derive for an internally tagged enum buffers every frame into a generic tree
/// first, which cost the islands' bundle ~70 KB of code. They never serialize it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(any(feature = "hydrate", feature = "csr")), serde(tag = "t"))]
#[serde(rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every connection.
    Hello {
        me: UserSummary,
        conversations: Vec<ConversationSummary>,
        rooms: Vec<RoomSummary>,
        /// Milliseconds since the Unix epoch at which the session ends unless it is used.
        session_idle_expires_at: i64,
        /// The user's own status and personal message, as chosen.
        status: Status,
        personal_message: String,
        /// Contacts, requests in both directions, and blocked users, with their presence as
        /// this user may see it.
        contacts: Vec<Contact>,
        /// The user's contact groups.
        groups: Vec<ContactGroup>,
        /// The version of the user's display picture (None: the default picture).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        picture: Option<String>,
        /// How many public rooms there are; `rooms` holds the ones the user joined and at
        /// most [`HELLO_ROOMS_MAX`] others (browse the rest with `GET /api/rooms`).
        #[serde(default)]
        rooms_total: i64,
        /// The store's epoch. Sequence numbers are only comparable within one epoch: when
        /// it differs from the one a client's cursors were taken under (the server's
        /// database was restored, or lost messages), the client drops what it holds and
        /// syncs afresh.
        #[serde(default)]
        epoch: String,
    },
    /// A contact was added or changed (request, acceptance, block, group, presence).
    Contact { contact: Contact },
    /// A user is no longer in the contact list (removed by either side, or a request was
    /// declined).
    ContactRemoved { user: i64 },
    /// A contact's presence changed: status, name or personal message.
    Presence { user: i64, presence: Presence },
    /// The user's own status, personal message, name or picture changed (from another tab,
    /// say).
    MyStatus {
        status: Status,
        personal_message: String,
        display_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        picture: Option<String>,
    },
    /// The user's contact groups changed; the whole list follows.
    Groups { groups: Vec<ContactGroup> },
    /// This user read a conversation up to `seq` (in this or another tab).
    Read { conv: i64, seq: i64 },
    /// A member is writing in a conversation (`active`) or stopped. Shown as "<name> is
    /// writing a message…" until `active: false`, a message from them, or
    /// [`TYPING_SHOWS_FOR_MS`] without a repeat. A user's own typing also reaches their
    /// other tabs; clients ignore it.
    Typing {
        conv: i64,
        user: i64,
        name: String,
        active: bool,
    },
    /// A send was committed durably (or had been before: a resend gets the same ack).
    Ack {
        conv: i64,
        client_id: String,
        seq: i64,
        at: i64,
    },
    /// A message of a conversation the connection belongs to.
    Msg(MessageView),
    /// The answer to `ping`.
    Pong {},
    /// The replay asked for by `sync` is complete; live messages follow.
    Synced { conv: i64, last_seq: i64 },
    /// The `sync` cursor does not fit this conversation's history (another epoch, or beyond
    /// its last message): forget the messages held for it; the replay that follows starts
    /// after `after`, then `synced`.
    Reset { conv: i64, after: i64 },
    /// The connection fell behind and messages after `after` were not sent: send
    /// `sync { conv, after }` to get them. Live messages of `conv` pause until then.
    Resync { conv: i64, after: i64 },
    /// The user joined a conversation (or one was started with them, or they were invited).
    ConvAdded { conversation: ConversationSummary },
    /// The user left a group conversation (from this tab or another), or an administrator
    /// archived a room they were in: forget it.
    ConvRemoved { conv: i64 },
    /// A room was retitled (by an administrator): its members' windows and lists follow.
    Retitled { conv: i64, title: String },
    /// A request failed; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        conv: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        client_id: Option<String>,
    },
}

/// Why a request on the socket failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is JSON but not a valid client frame.
    BadFrame,
    /// The body is empty or too long.
    InvalidBody,
    /// The client id is empty, too long or has characters outside `[A-Za-z0-9_-]`.
    InvalidClientId,
    /// The user is not a member of that conversation (or it does not exist).
    NotMember,
    /// Too many sends awaiting commit, or too many sends per second.
    RateLimited,
    /// The server could not store the message; retry with the same client id.
    Internal,
    /// The server's storage is full: the message was not stored. Retry later with the same
    /// client id (the socket stays open; reading works meanwhile).
    StorageFull,
    /// The message cannot be delivered to that conversation (the other member does not
    /// accept messages from this user).
    Undeliverable,
    /// A nudge came too soon after this user's last one in that conversation
    /// (see [`NUDGE_EVERY`]); it was not sent and should not be retried by itself.
    NudgeLimited,
    /// The message to delete is not one of yours, does not exist, or is already deleted.
    CannotDelete,
}

/// Least time between two nudges of one user in one conversation.
pub const NUDGE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageKind;

    #[test]
    fn frames_round_trip_with_their_tags() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"t":"send","conv":3,"client_id":"a1","body":"hi"}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Send {
                conv: 3,
                client_id: "a1".into(),
                body: "hi".into()
            }
        );
        let s = serde_json::to_string(&ServerFrame::Resync { conv: 1, after: 9 }).unwrap();
        assert_eq!(s, r#"{"t":"resync","conv":1,"after":9}"#);
        let m = serde_json::to_value(ServerFrame::Msg(MessageView {
            conv: 1,
            seq: 2,
            from: 3,
            from_name: "A".into(),
            client_id: "c".into(),
            body: "b".into(),
            at: 4,
            kind: MessageKind::Text,
        }))
        .unwrap();
        assert_eq!(m["t"], "msg");
        assert_eq!(m["seq"], 2);
        // Text, the common case, leaves `kind` out of the frame; a nudge says so.
        assert!(m.get("kind").is_none(), "{m}");
        let nudge: ServerFrame = serde_json::from_str(
            r#"{"t":"msg","conv":1,"seq":3,"from":3,"from_name":"A","client_id":"n","body":"","at":5,"kind":"nudge"}"#,
        )
        .unwrap();
        assert!(matches!(
            nudge,
            ServerFrame::Msg(MessageView {
                kind: MessageKind::Nudge,
                ..
            })
        ));
    }
}
