//! The things the protocol talks about: users, presence, contacts, conversations and
//! messages, as both sides see them.

use serde::{Deserialize, Serialize};

/// What a stored message is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text typed by the sender.
    #[default]
    Text,
    /// A nudge: shakes the conversation window; its body is empty.
    Nudge,
    /// The sender deleted the message whose sequence number is this message's body, or,
    /// when the body is [`ERASE_ALL`](crate::protocol::ERASE_ALL), every text and nudge
    /// of theirs before it (their account was deleted): those become `deleted`. Not shown
    /// itself.
    Delete,
    /// A message that was deleted (by its sender, with its sender's account, or the last
    /// one left when older messages expired): its body is empty; shown as "message
    /// deleted".
    Deleted,
    /// The sender joined a group conversation (they were invited): "<name> has joined the
    /// conversation." Its body is the inviter's display name.
    Join,
    /// The sender left a group conversation: "<name> has left the conversation."
    Leave,
    /// A file or photo the sender shared: its body is a [`SharedFile`] as JSON.
    File,
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
            MessageKind::File => "file",
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
            MessageKind::File,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    /// Whether its sender may delete it (text, nudges and files; not joins and leaves).
    pub fn is_deletable(self) -> bool {
        matches!(
            self,
            MessageKind::Text | MessageKind::Nudge | MessageKind::File
        )
    }
}

/// A shared file, as the body of a `file` message names it (`docs/PROTOCOL.md`): download
/// it from `/api/files/{id}` (and, for a picture, `/api/files/{id}/thumb` and `/view`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    pub id: i64,
    /// The name it was sent with (a file name, never a path).
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its type, read from its bytes (`application/octet-stream` when not known).
    #[serde(rename = "type")]
    pub mime: String,
    /// For a picture: its width and height in pixels (it has a thumbnail and a view copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<(u32, u32)>,
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
        Some(v) => format!(
            "{}?v={v}",
            super::http::paths::at(super::http::paths::USER_PICTURE, user)
        ),
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

/// Longest room title, in characters.
pub const MAX_ROOM_TITLE: usize = 64;

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
    /// Messages below this sequence number have expired (the conversation's retention):
    /// when no more are left, the reader is told that earlier ones expired. 0: none has.
    #[serde(default)]
    pub expired_before: i64,
}
