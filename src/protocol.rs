//! The wire protocol of `/ws` and the validated values it carries, shared by server and islands.
//!
//! `docs/PROTOCOL.md` is the prose version of this module; keep the two in step.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest message body, in Unicode scalar values (characters), as in Messenger 2009.
pub const MAX_BODY_CHARS: usize = 2048;
/// Largest WebSocket message (and frame) the server accepts, in bytes. A maximal body of
/// 2048 four-byte characters JSON-escaped fits with room to spare; anything bigger is abuse.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Longest client-chosen message id.
pub const MAX_CLIENT_ID_LEN: usize = 64;
/// Most messages one history page returns.
pub const HISTORY_PAGE_MAX: u32 = 100;
/// Sends a connection may have waiting for their commit before the server stops reading it.
pub const MAX_IN_FLIGHT: usize = 64;

/// WebSocket close codes the server uses (RFC 6455 registered codes and private 4000-4999).
pub mod close {
    /// The server is shutting down or restarting: reconnect with backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame could not be parsed as a client frame.
    pub const PROTOCOL_ERROR: u16 = 1002;
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
    /// Delete one of your own messages (text or nudge) for every member: stored as a message
    /// of kind `delete` (acknowledged like one) whose body is `seq`; the deleted message keeps
    /// its number but loses its body.
    Delete {
        conv: i64,
        client_id: String,
        seq: i64,
    },
    /// Replay every message with a sequence number above `after`, then continue live.
    Sync { conv: i64, after: i64 },
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
/// The browser builds declare it externally tagged and read it with [`crate::tagged`]:
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
    /// The replay asked for by `sync` is complete; live messages follow.
    Synced { conv: i64, last_seq: i64 },
    /// The connection fell behind and messages after `after` were not sent: send
    /// `sync { conv, after }` to get them. Live messages of `conv` pause until then.
    Resync { conv: i64, after: i64 },
    /// The user joined a conversation (or one was started with them, or they were invited).
    ConvAdded { conversation: ConversationSummary },
    /// The user left a group conversation (from this tab or another): forget it.
    ConvRemoved { conv: i64 },
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

/// What a stored message is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text typed by the sender.
    #[default]
    Text,
    /// A nudge: shakes the conversation window; its body is empty.
    Nudge,
    /// The sender deleted the message whose sequence number is this message's body: remove
    /// it. Not shown itself.
    Delete,
    /// A message its sender deleted: its body is empty; not shown.
    Deleted,
    /// The sender joined a group conversation (they were invited): "<name> has joined the
    /// conversation." Its body is the inviter's display name.
    Join,
    /// The sender left a group conversation: "<name> has left the conversation."
    Leave,
}

impl MessageKind {
    pub fn is_text(&self) -> bool {
        *self == MessageKind::Text
    }
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Nudge => "nudge",
            MessageKind::Delete => "delete",
            MessageKind::Deleted => "deleted",
            MessageKind::Join => "join",
            MessageKind::Leave => "leave",
        }
    }
    pub fn parse(s: &str) -> Option<MessageKind> {
        [
            MessageKind::Text,
            MessageKind::Nudge,
            MessageKind::Delete,
            MessageKind::Deleted,
            MessageKind::Join,
            MessageKind::Leave,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    /// Whether its sender may delete it (text and nudges; not joins and leaves).
    pub fn is_deletable(self) -> bool {
        matches!(self, MessageKind::Text | MessageKind::Nudge)
    }
}

/// A committed message as the server sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub conv: i64,
    pub seq: i64,
    pub from: i64,
    pub from_name: String,
    pub client_id: String,
    pub body: String,
    /// Commit time, milliseconds since the Unix epoch.
    pub at: i64,
    /// Left out of the frame for text, the common case.
    #[serde(default, skip_serializing_if = "MessageKind::is_text")]
    pub kind: MessageKind,
}

/// Who a user is, as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub is_guest: bool,
    /// An AI contact (a persona of the bot module): it answers, it never signs in.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_bot: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A presence status. As a chosen status, `Offline` is "Appear Offline"; as a status seen
/// by contacts, it means offline (or appearing so: the two are indistinguishable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Online,
    Busy,
    BeRightBack,
    Away,
    OnThePhone,
    OutToLunch,
    Offline,
}

impl Status {
    /// Every status, in the order of the status menu.
    pub const ALL: [Status; 7] = [
        Status::Online,
        Status::Busy,
        Status::BeRightBack,
        Status::Away,
        Status::OnThePhone,
        Status::OutToLunch,
        Status::Offline,
    ];

    /// The name stored in the database and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Busy => "busy",
            Status::BeRightBack => "be_right_back",
            Status::Away => "away",
            Status::OnThePhone => "on_the_phone",
            Status::OutToLunch => "out_to_lunch",
            Status::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// What the menu shows: as a choice, Offline reads "Appear Offline".
    pub fn choice_label(self) -> &'static str {
        match self {
            Status::Offline => "Appear Offline",
            other => other.label(),
        }
    }

    /// What contacts see.
    pub fn label(self) -> &'static str {
        match self {
            Status::Online => "Online",
            Status::Busy => "Busy",
            Status::BeRightBack => "Be Right Back",
            Status::Away => "Away",
            Status::OnThePhone => "On the Phone",
            Status::OutToLunch => "Out to Lunch",
            Status::Offline => "Offline",
        }
    }
}

/// Longest personal message, in characters.
pub const MAX_PERSONAL_MESSAGE_CHARS: usize = 128;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest contact group name, in characters.
pub const MAX_GROUP_NAME_CHARS: usize = 32;
/// Most contact groups one user may have.
pub const MAX_GROUPS: usize = 50;

/// What a contact may see of a user: nothing but Offline unless both have accepted each
/// other and the user has not blocked them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub status: Status,
    pub display_name: String,
    pub personal_message: String,
    /// The version of the user's display picture, fetched from [`picture_url`]; None: the
    /// default picture (no picture, or offline: like the personal message, a picture is
    /// shown only while its owner is visibly online).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

/// Width and height of every stored display picture, in pixels.
pub const PICTURE_SIZE: u32 = 96;

/// Where the picture of `user` with `version` is fetched; the default picture without one.
pub fn picture_url(user: i64, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/api/users/{user}/picture?v={v}"),
        None => DEFAULT_PICTURE_URL.to_owned(),
    }
}

/// The picture of everyone who has none (or whose picture the viewer may not see).
pub const DEFAULT_PICTURE_URL: &str = "/default-picture.svg";

/// Where a contact relationship stands, from the viewer's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactState {
    /// Both accepted: each sees the other's presence.
    Accepted,
    /// The viewer asked; the other has not answered.
    Requested,
    /// The other asked the viewer, who can accept, decline or block.
    Incoming,
    /// No relationship, but the viewer has blocked this user.
    None,
}

/// One entry of the viewer's contact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub user: UserSummary,
    pub state: ContactState,
    /// The viewer has blocked this user.
    pub blocked: bool,
    /// The viewer's contact group for this user (None: not in a group).
    pub group: Option<i64>,
    pub presence: Presence,
}

/// A contact group (category) of the viewer's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactGroup {
    pub id: i64,
    pub name: String,
}

/// Kinds of conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two members; unique per pair of users.
    Dm,
    /// A public room anyone signed in can join.
    Room,
    /// A group conversation: members invite their contacts (up to [`MAX_GROUP_MEMBERS`]
    /// members) and may leave.
    Group,
}

/// Most members of a group conversation.
pub const MAX_GROUP_MEMBERS: usize = 20;

/// The title of a one-to-one or group conversation for `me`: the other members' names
/// ("Bob", "Bob and Carl", "Bob, Carl and 3 others").
pub fn conversation_title(members: &[UserSummary], me: i64) -> String {
    let others: Vec<&str> = members
        .iter()
        .filter(|m| m.id != me)
        .map(|m| m.display_name.as_str())
        .collect();
    match others.as_slice() {
        [] => "Just you".to_owned(),
        [one] => (*one).to_owned(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c] => format!("{a}, {b} and {c}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} others", rest.len()),
    }
}

/// A conversation the user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: i64,
    pub kind: ConversationKind,
    /// The room's name, or the other member's display name for a DM.
    pub title: String,
    /// Highest sequence number committed so far (0: no messages yet).
    pub last_seq: i64,
    /// Highest sequence number this user has read (messages after it are unread).
    #[serde(default)]
    pub last_read: i64,
    /// Members of a one-to-one or group conversation (empty for rooms).
    pub members: Vec<UserSummary>,
    /// In a group conversation, what this user may see starts after this sequence number:
    /// someone invited in sees the conversation from their arrival on, not what was said
    /// before it (0: everything).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub visible_after: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A public room, joined or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub id: i64,
    pub title: String,
    pub joined: bool,
}

/// Most public rooms the user has not joined that `hello` lists (the first ones by id).
pub const HELLO_ROOMS_MAX: i64 = 50;
/// Most rooms in one page of the room directory.
pub const ROOM_PAGE_MAX: i64 = 200;

/// One page of the room directory, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    pub rooms: Vec<RoomSummary>,
    /// Whether rooms with higher ids (matching the search) follow.
    pub has_more: bool,
}

/// One page of history, newest last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub messages: Vec<MessageView>,
    /// Whether older messages exist before the first one of this page.
    pub has_more: bool,
}

/// Why a value from the wire was refused. The message is shown to users as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// A message body: not blank, at most [`MAX_BODY_CHARS`] characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.trim().is_empty() {
            return Err(invalid("A message cannot be empty."));
        }
        let chars = raw.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(invalid(format!(
                "A message can be at most {MAX_BODY_CHARS} characters; this one has {chars}."
            )));
        }
        if raw.contains('\0') {
            return Err(invalid("A message cannot contain NUL characters."));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A client-chosen message id: 1 to [`MAX_CLIENT_ID_LEN`] characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok_len = !raw.is_empty() && raw.len() <= MAX_CLIENT_ID_LEN;
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok_len && ok_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(format!(
                "A client id is 1 to {MAX_CLIENT_ID_LEN} characters of letters, digits, '_' and '-'."
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Guest usernames start with this; real usernames cannot contain `~`, so the two never collide.
pub const GUEST_PREFIX: &str = "guest~";

/// A registered username: 3 to 24 characters, letters, digits, `_` and `.`, starting with a
/// letter. Compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 24;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        let len = name.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(invalid(format!(
                "A username is {} to {} characters long.",
                Self::MIN,
                Self::MAX
            )));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(invalid("A username starts with a letter."));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
        {
            return Err(invalid(format!(
                "A username may use letters, digits, '_' and '.', not {bad:?}."
            )));
        }
        Ok(Self(name.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: 8 to 128 characters, not only spaces.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < Self::MIN {
            return Err(invalid(format!(
                "A password needs at least {} characters.",
                Self::MIN
            )));
        }
        if len > Self::MAX {
            return Err(invalid(format!(
                "A password can be at most {} characters.",
                Self::MAX
            )));
        }
        if raw.trim().is_empty() {
            return Err(invalid("A password cannot be only spaces."));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_of_exactly_the_limit_is_accepted_and_one_more_is_refused() {
        let max = "é".repeat(MAX_BODY_CHARS);
        assert!(Body::parse(&max).is_ok());
        let over = format!("{max}x");
        let err = Body::parse(&over).unwrap_err();
        assert!(err.0.contains("2049"), "{err}");
    }

    #[test]
    fn blank_bodies_are_refused() {
        for raw in ["", "   ", "\n\t"] {
            assert!(Body::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn client_ids_allow_only_the_documented_alphabet() {
        assert!(ClientId::parse("a-Z_09").is_ok());
        assert!(ClientId::parse(&"x".repeat(MAX_CLIENT_ID_LEN)).is_ok());
        for bad in ["", "a b", "ü", "a/b", &"x".repeat(MAX_CLIENT_ID_LEN + 1)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames_follow_the_rules_and_say_why_not() {
        assert_eq!(
            Username::parse("  alice.b_2 ").unwrap().as_str(),
            "alice.b_2"
        );
        assert!(Username::parse("al").unwrap_err().0.contains("3 to 24"));
        assert!(Username::parse("2pac")
            .unwrap_err()
            .0
            .contains("starts with a letter"));
        assert!(Username::parse("bob smith").unwrap_err().0.contains("' '"));
        // Guest names can never be taken by a real account.
        assert!(Username::parse(&format!("{GUEST_PREFIX}abcd")).is_err());
    }

    #[test]
    fn passwords_have_bounds_and_never_print() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("        ").is_err());
        let p = NewPassword::parse("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "NewPassword(..)");
    }

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
