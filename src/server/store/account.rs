//! What the store keeps for account security and data protection (the services are
//! `server::account` and `server::retention`): passwords and the sessions a user sees,
//! deleting an account, erasing what it wrote, and expiring old messages.

use super::Result;
use async_trait::async_trait;
use serde::Serialize;

/// One live session as its owner is shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub id: i64,
    /// The browser and system it signed in from ("Chrome on Linux"), if known.
    pub device: Option<String>,
    /// The address it signed in from, if known.
    pub address: Option<String>,
    pub created_at: i64,
    /// When it was last used (to within half a minute).
    pub last_seen_at: i64,
}

/// An account as the admin console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub is_guest: bool,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    /// Live sessions now.
    pub sessions: i64,
}

/// What deleting an account found to tell others about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The users who had the account in their contact list.
    pub told: Vec<i64>,
    /// The conversations that outlive it and hold messages it wrote: each gets an erasure
    /// line (`delete` with body `all`) through the message log.
    pub wrote_in: Vec<i64>,
    /// The sessions it had (now gone): their sockets are closed.
    pub sessions: Vec<i64>,
}

/// A conversation's retention, as the expiry job reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    pub conv: i64,
    /// Its own period, in milliseconds, if it has one.
    pub retention_ms: Option<i64>,
    /// Messages below this sequence number have expired already.
    pub expired_before: i64,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// The stored password hash of a live account (None: a guest, a bot, or no such user).
    async fn password_hash(&self, user: i64) -> Result<Option<String>>;
    /// Replaces the password hash of a live account.
    async fn set_password_hash(&self, user: i64, hash: &str) -> Result<()>;

    /// Whether `user` is a live account holding the admin role.
    async fn is_admin(&self, user: i64) -> Result<bool>;
    /// Grants or revokes the admin role by username; None if there is no such live
    /// account, Some(false) if it is a guest or a bot (they never hold it).
    async fn set_admin(&self, username: &str, admin: bool) -> Result<Option<bool>>;
    /// The usernames holding the admin role.
    async fn admins(&self) -> Result<Vec<String>>;

    /// Bot replies counted today (UTC day) against the quotas, all users together.
    async fn bot_replies_today(&self, day: i64) -> Result<i64>;
    /// Whether `user` is disabled by an administrator.
    async fn is_disabled(&self, user: i64) -> Result<bool>;
    /// Disables (ending every session; their ids) or enables a live account that is not a
    /// bot; None if there is no such account.
    async fn set_disabled(&self, user: i64, disabled: bool, now: i64) -> Result<Option<Vec<i64>>>;
    /// Accounts whose username or display name contains `search` (any case), at most
    /// `limit`, by username.
    async fn find_accounts(&self, search: &str, limit: i64) -> Result<Vec<AccountRow>>;
    /// Notes that the session's user entered their password again now.
    async fn note_reauth(&self, session: i64, now: i64) -> Result<()>;
    /// When the session's user last entered their password again.
    async fn reauth_at(&self, session: i64) -> Result<Option<i64>>;

    /// Notes what a session was started from.
    async fn describe_session(&self, session: i64, device: &str, address: &str) -> Result<()>;
    /// The live sessions of `user` at `now`, the latest used first.
    async fn live_sessions(&self, user: i64, now: i64) -> Result<Vec<SessionInfo>>;
    /// Revokes the session `session` if it is `user`'s and live; whether it was.
    async fn revoke_own_session(&self, user: i64, session: i64) -> Result<bool>;

    /// Deletes the live account `user` in one transaction: ends its sessions and erases
    /// its profile (display name, personal message, password), picture, contacts both
    /// ways, requests, blocks, contact groups, bot usage and memberships; conversations no
    /// other person is in go with their messages. The account row stays, marked deleted and
    /// named "Deleted user", so that its username is never taken again and the messages
    /// others keep still name a sender (a guest's row goes when no message names it). None if there is no such live account (or it is a
    /// bot). The messages it wrote elsewhere are erased next ([`AccountStore::erase_some`]).
    async fn delete_account(&self, user: i64, now: i64) -> Result<Option<Deleted>>;
    /// Empties up to `limit` of the text and nudge messages `user` wrote in `conv` (they
    /// become `deleted`, with no body or ciphertext); how many. Small transactions, so
    /// that the message writer never waits long.
    async fn erase_some(&self, conv: i64, user: i64, limit: i64) -> Result<u64>;
    /// Accounts deleted whose messages may still hold text (an erasure interrupted by a
    /// stop is finished at the next start), with the conversations where they do.
    async fn unfinished_erasures(&self) -> Result<Vec<(i64, Vec<i64>)>>;
    /// The erasure of `user`'s messages is complete.
    async fn finish_erasure(&self, user: i64) -> Result<()>;

    /// The audit log's entries about `user` with ids above `after`, at most `limit`.
    async fn audit_of(&self, user: i64, after: i64, limit: i64)
        -> Result<Vec<super::audit::Entry>>;

    /// Every conversation with messages, with its retention and watermark.
    async fn retained(&self) -> Result<Vec<Retained>>;
    /// Sets (or with None clears) a conversation's own retention; false if there is no
    /// such conversation.
    async fn set_retention(&self, conv: i64, retention_ms: Option<i64>) -> Result<bool>;
    /// Deletes up to `limit` of the oldest messages of `conv` created before `cutoff` and
    /// raises its watermark past them, in one transaction; how many. The conversation's
    /// newest message, whose sequence number the next one follows, is emptied instead
    /// (`deleted`, no body) when it has expired, and stays as that tombstone.
    async fn expire_some(&self, conv: i64, cutoff: i64, limit: i64) -> Result<u64>;
}
