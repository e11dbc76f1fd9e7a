//! The HTTP side of the protocol: the paths of the JSON API, the bodies it takes and
//! returns, and its one error body. The server routes by these patterns and the island builds
//! its URLs from them, so a path or a field exists once.
//!
//! Sign-up, sign-in, guests, sign-out, bearer tokens and history are Leptos server functions
//! (`crate::app::server_fns`): their paths are the functions' own (`SignIn::PATH`, ...) and
//! their arguments are the functions' arguments.

use super::{Contact, ContactGroup, Status, UserSummary};
use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Route patterns of the JSON API. `{id}` stands for a numeric id; [`at`] fills it in.
pub mod paths {
    pub const WS: &str = "/ws";
    pub const HEALTH: &str = "/health";
    /// The same, by the name orchestrators expect.
    pub const HEALTHZ: &str = "/healthz";
    /// Whether the server can take writes (`503` while the disk is below its floor).
    pub const READY: &str = "/readyz";
    /// A proof-of-work challenge (ALTCHA), for sign-up, guests and sign-in after failures.
    pub const CHALLENGE: &str = "/api/challenge";
    pub const SESSION: &str = "/api/session";
    pub const SESSION_REFRESH: &str = "/api/session/refresh";
    pub const DM: &str = "/api/dm";
    pub const ROOMS: &str = "/api/rooms";
    pub const ROOM_JOIN: &str = "/api/rooms/{id}/join";
    pub const ROOM_MEMBERS: &str = "/api/rooms/{id}/members";
    pub const CONVERSATIONS: &str = "/api/conversations";
    pub const INVITE: &str = "/api/conversations/{id}/invite";
    pub const LEAVE: &str = "/api/conversations/{id}/leave";
    /// Removes a conversation from the caller's list (a group: leaves it; one-to-one:
    /// clears it on their side); answers `{"visible_after": n}`.
    pub const FORGET: &str = "/api/conversations/{id}/forget";
    pub const BOTS: &str = "/api/bots";
    pub const CONTACTS: &str = "/api/contacts";
    pub const CONTACT: &str = "/api/contacts/{id}";
    pub const ACCEPT: &str = "/api/contacts/{id}/accept";
    pub const DECLINE: &str = "/api/contacts/{id}/decline";
    pub const BLOCK: &str = "/api/contacts/{id}/block";
    pub const UNBLOCK: &str = "/api/contacts/{id}/unblock";
    pub const CONTACT_GROUP: &str = "/api/contacts/{id}/group";
    pub const GROUPS: &str = "/api/groups";
    pub const GROUP: &str = "/api/groups/{id}";
    pub const ME: &str = "/api/me";
    pub const MY_PICTURE: &str = "/api/me/picture";
    pub const USER_PICTURE: &str = "/api/users/{id}/picture";
    /// Everything the server holds about the caller, as one JSON document (`docs/DATA.md`).
    pub const EXPORT: &str = "/api/me/export";
    /// Share a file into a conversation (`POST`; the body is the file).
    pub const FILES_UPLOAD: &str = "/api/conversations/{id}/files";
    /// A shared file (as an attachment), and a picture's view copy and thumbnail.
    pub const FILE: &str = "/api/files/{id}";
    pub const FILE_VIEW: &str = "/api/files/{id}/view";
    pub const FILE_THUMB: &str = "/api/files/{id}/thumb";
    /// The route of both copies (`view`, `thumb`).
    pub const FILE_COPY: &str = "/api/files/{id}/{which}";
    /// An admin deletes an account (`DELETE`), by username.
    pub const ADMIN_USER: &str = "/api/admin/users/{name}";
    /// The account page: password, sessions, export, deletion.
    pub const ACCOUNT: &str = "/account";
    /// The admin console (administrators only).
    pub const ADMIN: &str = "/admin";
    /// Its users page.
    pub const ADMIN_USERS: &str = "/admin/users";
    /// Its rooms page.
    pub const ADMIN_ROOMS: &str = "/admin/rooms";

    /// `pattern` with its `{id}` replaced by `id`.
    pub fn at(pattern: &str, id: i64) -> String {
        pattern.replacen("{id}", &id.to_string(), 1)
    }
}

/// A session that was started (sign-up, sign-in, guest) or looked at (`GET /api/session`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: UserSummary,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    /// Only from `POST /api/token`: the bearer token for non-browser clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The bearer token is a credential: its `Debug` says whether there is one, not what it is.
impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn")
            .field("user", &self.user)
            .field("idle_expires_at", &self.idle_expires_at)
            .field("absolute_expires_at", &self.absolute_expires_at)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .finish()
    }
}

/// `POST /api/dm`: the one-to-one conversation with this user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenDm {
    pub username: String,
}

/// `POST /api/conversations`: a new group of the caller and these contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartGroup {
    pub members: Vec<i64>,
}

/// `POST /api/conversations/{id}/invite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub user: i64,
}

/// `GET /api/rooms` query: rooms with ids above `after` whose title contains `q`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomQuery {
    #[serde(default)]
    pub after: i64,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub limit: Option<i64>,
}

impl RoomQuery {
    /// The path with this query, as the island asks for it.
    pub fn path(&self) -> String {
        let mut url = format!("{}?after={}", paths::ROOMS, self.after);
        if let Some(limit) = self.limit {
            url.push_str(&format!("&limit={limit}"));
        }
        // The island never searches; a client that does encodes `q` itself.
        url
    }
}

/// `POST /api/contacts`: ask this user to be a contact.
/// Who is in a room: how many, and the latest to join (at most [`ROOM_MEMBERS_SHOWN`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMembers {
    pub count: i64,
    pub members: Vec<super::UserSummary>,
}

/// Most members `GET /api/rooms/{id}/members` lists.
pub const ROOM_MEMBERS_SHOWN: i64 = 100;

/// An AI contact anyone can add, as `GET /api/bots` lists them: who it is, one line about
/// it, and the version of its picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotCard {
    pub user: super::UserSummary,
    pub about: String,
    #[serde(default)]
    pub picture: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddContact {
    pub username: String,
}

/// `PUT /api/contacts/{id}/group`: the contact group to move a contact into (None: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveToGroup {
    pub group: Option<i64>,
}

/// `POST /api/groups` and `PATCH /api/groups/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupName {
    pub name: String,
}

/// `PATCH /api/me`: any of the three; what is absent stays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateMe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_message: Option<String>,
}

/// The caller's own settings (`PATCH /api/me`, picture changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub status: Status,
    pub display_name: String,
    pub personal_message: String,
    /// The display picture's version (None: the default picture).
    pub picture: Option<String>,
}

/// `GET /api/contacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
    pub groups: Vec<ContactGroup>,
}

/// Every refused HTTP request answers with this body, server functions included:
/// `{"error": "<code>", "message": "<for the user>"}`, with the status of its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorCode,
    /// Shown to users as it is.
    pub message: String,
}

impl ApiError {
    pub fn new(error: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// Why an HTTP request was refused; each code has one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// 422: the input breaks a rule; the message says which.
    Invalid,
    /// 401: no live session (or a wrong password).
    Unauthorized,
    /// 403: not yours, or a request from another origin.
    Forbidden,
    /// 404
    NotFound,
    /// 409: taken, full, or blocked.
    Conflict,
    /// 413: the body is larger than the endpoint takes.
    TooLarge,
    /// 415: a body in an encoding the endpoint does not take.
    UnsupportedMediaType,
    /// 416: a byte range outside the file (`Content-Range: bytes */<length>` says its
    /// length).
    RangeNotSatisfiable,
    /// 429, with `Retry-After` (seconds) when the server knows when to try again.
    TooManyRequests,
    /// 403: the request must carry a solved proof-of-work challenge (`GET /api/challenge`).
    ChallengeRequired,
    /// 500: nothing more is said; try again.
    Internal,
    /// 503, with `Retry-After`: the server's disk is full; it reads but stores nothing new.
    StorageFull,
    /// Never sent by the server: the client could not reach it.
    Unreachable,
}

impl ApiErrorCode {
    /// The HTTP status that goes with the code (0 for [`ApiErrorCode::Unreachable`]).
    pub fn status(self) -> u16 {
        match self {
            Self::Invalid => 422,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RangeNotSatisfiable => 416,
            Self::TooManyRequests => 429,
            Self::ChallengeRequired => 403,
            Self::Internal => 500,
            Self::StorageFull => 503,
            Self::Unreachable => 0,
        }
    }
}

/// What the sign-in window shows to check that people are not bots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorCheck {
    Off,
    /// ALTCHA's widget, fetching its challenge from [`paths::CHALLENGE`].
    Altcha,
    /// Cloudflare Turnstile's widget, with the site key.
    Turnstile {
        site_key: String,
    },
}

/// The form field (and JSON member) that carries the solved challenge or the Turnstile
/// token.
pub const PROOF_FIELD: &str = "proof";

/// Why the sign-in window sent a browser back to itself (its form was posted without
/// script): the `error` in the window's address is one of these codes, and the window shows
/// the fixed text that goes with it. Never free text, so that a link cannot make the window
/// say what its author wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInNotice {
    /// Not a refusal: the account was deleted, as its owner asked.
    AccountDeleted,
    /// An administrator disabled the account.
    AccountDisabled,
    WrongPassword,
    UsernameTaken,
    BadUsername,
    BadPassword,
    BadStatus,
    TooManyAttempts,
    VerificationNeeded,
    TooLarge,
    Failed,
}

impl SignInNotice {
    pub const ALL: [SignInNotice; 11] = [
        Self::AccountDeleted,
        Self::AccountDisabled,
        Self::WrongPassword,
        Self::UsernameTaken,
        Self::BadUsername,
        Self::BadPassword,
        Self::BadStatus,
        Self::TooManyAttempts,
        Self::VerificationNeeded,
        Self::TooLarge,
        Self::Failed,
    ];

    /// The code in the window's address.
    pub fn code(self) -> &'static str {
        match self {
            Self::AccountDeleted => "account_deleted",
            Self::AccountDisabled => "account_disabled",
            Self::WrongPassword => "wrong_password",
            Self::UsernameTaken => "username_taken",
            Self::BadUsername => "bad_username",
            Self::BadPassword => "bad_password",
            Self::BadStatus => "bad_status",
            Self::TooManyAttempts => "too_many_attempts",
            Self::VerificationNeeded => "verification_needed",
            Self::TooLarge => "too_large",
            Self::Failed => "failed",
        }
    }

    /// The notice of a code; None for anything else (which the window ignores).
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.code() == code)
    }

    /// What the window says.
    pub fn message(self) -> &'static str {
        match self {
            Self::AccountDeleted => {
                "Your account has been deleted, with everything you wrote. Goodbye!"
            }
            Self::AccountDisabled => "This account has been disabled by an administrator.",
            Self::WrongPassword => "Wrong username or password.",
            Self::UsernameTaken => "That username is taken; choose another.",
            Self::BadUsername => {
                "A username is 3 to 24 characters: letters, digits, '_' and '.', starting with a letter."
            }
            Self::BadPassword => "A password is 8 to 128 characters, and not only spaces.",
            Self::BadStatus => "Choose a status from the list to sign in with.",
            Self::TooManyAttempts => "Too many attempts. Wait a little, then try again.",
            Self::VerificationNeeded => {
                "Please let the verification finish (it checks you are not a bot), then try again."
            }
            Self::TooLarge => "That was more than the form takes.",
            Self::Failed => "Something went wrong on our side. Please try again.",
        }
    }
}

/// What the account page says after one of its forms was posted without script: a code
/// in its address (`done` or `error`), shown as the fixed text that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountNotice {
    PasswordChanged,
    SessionEnded,
    OthersSignedOut,
    WrongPassword,
    BadNewPassword,
    NotConfirmed,
    TooManyAttempts,
    Failed,
}

impl AccountNotice {
    pub const ALL: [AccountNotice; 8] = [
        Self::PasswordChanged,
        Self::SessionEnded,
        Self::OthersSignedOut,
        Self::WrongPassword,
        Self::BadNewPassword,
        Self::NotConfirmed,
        Self::TooManyAttempts,
        Self::Failed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::PasswordChanged => "password_changed",
            Self::SessionEnded => "session_ended",
            Self::OthersSignedOut => "others_signed_out",
            Self::WrongPassword => "wrong_password",
            Self::BadNewPassword => "bad_new_password",
            Self::NotConfirmed => "not_confirmed",
            Self::TooManyAttempts => "too_many_attempts",
            Self::Failed => "failed",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.code() == code)
    }

    /// Whether it reports something done (not a refusal).
    pub fn is_done(self) -> bool {
        matches!(
            self,
            Self::PasswordChanged | Self::SessionEnded | Self::OthersSignedOut
        )
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::PasswordChanged => {
                "Your password was changed, and you were signed out everywhere else."
            }
            Self::SessionEnded => "That session was ended.",
            Self::OthersSignedOut => "You were signed out everywhere else.",
            Self::WrongPassword => "That is not your password.",
            Self::BadNewPassword => {
                "A new password is 8 to 128 characters, not only spaces, and not the one you have now."
            }
            Self::NotConfirmed => "Tick the box to confirm that you want your account deleted.",
            Self::TooManyAttempts => "Too many wrong passwords. Wait a little, then try again.",
            Self::Failed => "Something went wrong on our side. Please try again.",
        }
    }
}

/// What removing a conversation from one's list did: where one's view of it starts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    pub visible_after: i64,
}

/// An account as the admin console's users page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub username: String,
    pub display_name: String,
    pub is_guest: bool,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub sessions: i64,
}

/// A public room as the admin console's rooms page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAdminView {
    pub id: i64,
    pub title: String,
    pub members: i64,
    /// How many messages it has had (its last sequence number).
    pub messages: i64,
    pub archived: bool,
}

/// The AI contacts as the admin console shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotsView {
    /// Whether they answer at all (`messenger bots on|off`).
    pub enabled: bool,
    /// Whether a language model is configured (else the offline engine answers).
    pub model: bool,
    /// The circuit breaker in front of the model: `closed`, `open`, `half-open`.
    pub breaker: String,
    pub replies_today: i64,
    pub daily_limit: i64,
    /// Per persona over the last 24 hours, from the analytics: calls, by outcome, latency.
    pub last_day: QueryAnswer,
}

/// One audit log entry as the admin console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub actor: String,
    pub user: Option<i64>,
    pub address: Option<String>,
    pub detail: String,
}

/// A page of the audit log, newest first, with what checking the whole chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditView>,
    /// "holds: N entries", or the first broken entry.
    pub chain: String,
    pub chain_holds: bool,
}

/// What the admin console's overview shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub sockets: u64,
    pub users_online: u64,
    pub writer_queue: u64,
    pub analytics_dropped: u64,
    /// Messages sent in the last hour, per minute (oldest first), from the analytics.
    pub messages_per_minute: Vec<(String, i64)>,
}

/// A query's answer on the SQL page: columns, rows of cells (JSON values), and whether rows
/// were left out beyond the cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryAnswer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub truncated: bool,
    pub millis: u64,
}

/// One of the user's live sessions, as the account page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: i64,
    /// "Chrome on Linux", or what the client called itself.
    pub device: Option<String>,
    pub address: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The session this request came with.
    pub current: bool,
}

/// How server functions carry [`ApiError`]: as its JSON, with the status of its code (set by
/// the server's server-function route). What the framework itself refuses (arguments that
/// do not parse) becomes `invalid`; a network failure on the client side, `unreachable`.
impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => Self::new(
                ApiErrorCode::Invalid,
                format!("The request could not be read: {m}"),
            ),
            ServerFnErrorErr::Request(_) => Self::new(
                ApiErrorCode::Unreachable,
                "The server could not be reached; try again.",
            ),
            ServerFnErrorErr::Deserialization(_) => Self::new(
                ApiErrorCode::Internal,
                "The server's answer could not be read.",
            ),
            ServerFnErrorErr::UnsupportedRequestMethod(_) | ServerFnErrorErr::Registration(_) => {
                Self::new(ApiErrorCode::NotFound, "There is nothing at that address.")
            }
            ServerFnErrorErr::ServerError(_)
            | ServerFnErrorErr::MiddlewareError(_)
            | ServerFnErrorErr::Serialization(_)
            | ServerFnErrorErr::Response(_) => Self::new(
                ApiErrorCode::Internal,
                "Something went wrong on the server. Please try again.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_never_shows_in_debug_output() {
        let signed_in = SignedIn {
            user: UserSummary {
                id: 1,
                username: "ann".into(),
                display_name: "Ann".into(),
                is_guest: false,
                is_bot: false,
            },
            idle_expires_at: 1,
            absolute_expires_at: 2,
            token: Some("tok-secret-value".into()),
        };
        let shown = format!("{signed_in:?}");
        assert!(
            !shown.contains("tok-secret-value") && shown.contains("ann"),
            "{shown}"
        );
    }

    #[test]
    fn a_path_with_an_id_is_its_pattern_filled_in() {
        assert_eq!(paths::at(paths::ACCEPT, 7), "/api/contacts/7/accept");
        assert_eq!(paths::at(paths::USER_PICTURE, 12), "/api/users/12/picture");
    }

    #[test]
    fn errors_are_a_code_and_a_message_and_each_code_has_its_status() {
        let e = ApiError::new(ApiErrorCode::NotFound, "No such user.");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":"not_found","message":"No such user."}"#
        );
        assert_eq!(ApiErrorCode::Invalid.status(), 422);
        assert_eq!(ApiErrorCode::TooManyRequests.status(), 429);
        let back: ApiError =
            serde_json::from_str(r#"{"error":"too_many_requests","message":"Slow down."}"#)
                .unwrap();
        assert_eq!(back.error, ApiErrorCode::TooManyRequests);
    }
}
