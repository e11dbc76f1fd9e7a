//! Accounts and sessions: sign-up, sign-in, guests, sign-out, and the sessions behind every
//! cookie and bearer token. Passwords are argon2id, hashed off the async threads; tokens are
//! 256 random bits, stored only as their SHA-256; a session ends after an idle time that
//! activity slides forward, and in any case after an absolute lifetime.

pub mod challenge;
mod password;

use super::{
    account::{DeletedBy, Erasure},
    error::{AppError, Result},
    hub::Fanout,
    limits::{
        address_key,
        stored::{Scope, StoredLimits},
    },
    profile::Profiles,
    store::{
        account::{AccountStore, SessionInfo},
        now_ms, CreateUser, SessionRow, SessionStore, UserStore,
    },
};
use crate::protocol::{close, NewPassword, Status, Username, GUEST_PREFIX};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use password::Hasher;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use std::{net::IpAddr, sync::Arc, time::Duration};

/// Sessions are written back (their idle expiry slid forward) at most this often per session.
const SLIDE_GRANULARITY_MS: i64 = 30_000;

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Without activity.
    pub idle: Duration,
    /// In any case.
    pub absolute: Duration,
    /// How long a guest without a live session is kept.
    pub guest_idle: Duration,
}

pub struct Auth {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    profiles: Arc<Profiles>,
    fanout: Arc<dyn Fanout>,
    hasher: Hasher,
    lifetimes: Lifetimes,
    limits: Arc<StoredLimits>,
    /// Where sign-ins, failed ones and revoked sessions are recorded.
    audit: Arc<crate::server::audit::Audit>,
    /// Password changes and the sessions a user is shown.
    accounts: Arc<dyn AccountStore>,
    /// Deletes accounts (guests when they leave, anyone who asks).
    erasure: Arc<Erasure>,
}

/// Whether a request carried a solved proof-of-work challenge or a Turnstile pass (checked
/// at the edge by [`challenge::Verifier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    None,
    Solved,
}

impl Proof {
    fn required(self) -> Result<()> {
        match self {
            Proof::Solved => Ok(()),
            Proof::None => Err(AppError::ChallengeRequired(
                "Please let the verification finish (it checks you are not a bot), then try again."
                    .into(),
            )),
        }
    }
}

/// A session that was just started, and the token that carries it (given out once).
pub struct Started {
    pub token: String,
    pub session: SessionRow,
}

/// The token is a credential: never in a log line.
impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("token", &"..")
            .field("session", &self.session)
            .finish()
    }
}

/// A fresh session token (256 random bits, URL-safe base64) and the hash that is stored.
pub fn new_token() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Auth {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        users: Arc<dyn UserStore>,
        accounts: Arc<dyn AccountStore>,
        erasure: Arc<Erasure>,
        sessions: Arc<dyn SessionStore>,
        profiles: Arc<Profiles>,
        fanout: Arc<dyn Fanout>,
        lifetimes: Lifetimes,
        limits: Arc<StoredLimits>,
        audit: Arc<crate::server::audit::Audit>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            users,
            sessions,
            profiles,
            fanout,
            hasher: Hasher::new().await?,
            lifetimes,
            limits,
            audit,
            accounts,
            erasure,
        })
    }

    /// Takes one from a stored limit, or says how long to wait.
    async fn within(&self, scope: Scope, key: &str, what: &str) -> Result<()> {
        match self.limits.take(scope, key).await? {
            Ok(()) => Ok(()),
            Err(retry_after) => Err(AppError::TooMany {
                message: format!(
                    "Too many {what} from here. Try again in {}.",
                    in_words(retry_after)
                ),
                retry_after,
            }),
        }
    }

    /// Creates an account and signs it in; `from` counts against the accounts one address
    /// may create (a name that turns out taken costs nothing).
    pub async fn sign_up(
        &self,
        username: &str,
        password: &str,
        from: IpAddr,
        proof: Proof,
    ) -> Result<Started> {
        let username = Username::parse(username)?;
        let password = NewPassword::parse(password)?;
        proof.required()?;
        // The AI contacts' names are theirs, even before the bots are first started.
        if super::bots::personas::by_handle(username.as_str()).is_some() {
            return Err(AppError::Conflict(format!(
                "The username {username} is taken."
            )));
        }
        let address = address_key(from).to_string();
        self.within(Scope::SignUpAddress, &address, "new accounts")
            .await?;
        let created = self.create_account(&username, &password).await;
        if created.is_err() {
            self.limits
                .give_back(Scope::SignUpAddress, &address)
                .await?;
        }
        let user = created?;
        tracing::info!(user = user.id, "account created");
        self.start(user.id).await
    }

    async fn create_account(
        &self,
        username: &Username,
        password: &NewPassword,
    ) -> Result<crate::protocol::UserSummary> {
        let hash = self.hasher.hash(password.expose().to_owned()).await?;
        let user = match self
            .users
            .create_user(username.as_str(), username.as_str(), Some(&hash), false)
            .await?
        {
            CreateUser::Created(user) => user,
            CreateUser::Taken => {
                return Err(AppError::Conflict(format!(
                    "The username {username} is taken."
                )))
            }
        };
        Ok(user)
    }

    /// Signs in with a password, optionally with the status to show (empty: the one chosen
    /// last time). The status is stored before the session exists, so no socket of it can
    /// show another status first.
    ///
    /// Failed attempts are limited before any password is checked (so a refused guess costs
    /// no hashing): per address and per account from that address, with a wait; per
    /// account from anywhere, with a solved challenge asked for beyond it. One failure is
    /// taken from each bucket up front and given back when the password is right, so that
    /// attempts at the same moment cannot overdraw them.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        status: &str,
        from: IpAddr,
        proof: Proof,
    ) -> Result<Started> {
        let wrong = || AppError::Unauthorized("Wrong username or password.".into());
        let status = match status.trim() {
            "" => None,
            s => Some(Status::parse(s).ok_or_else(|| {
                AppError::Invalid("Choose a status from the list to sign in with.".into())
            })?),
        };
        let account = username.trim().to_lowercase();
        let address = address_key(from).to_string();
        let pair = format!("{account} {address}");
        self.within(Scope::SignInAddress, &address, "failed sign-ins")
            .await?;
        if let Err(e) = self
            .within(
                Scope::SignInAccountAddress,
                &pair,
                "failed sign-ins to this account",
            )
            .await
        {
            self.limits
                .give_back(Scope::SignInAddress, &address)
                .await?;
            return Err(e);
        }
        let account_taken = self
            .limits
            .take(Scope::SignInAccount, &account)
            .await?
            .is_ok();
        let give_back = |account_taken: bool| {
            let (address, pair, account) = (&address, &pair, &account);
            async move {
                self.limits.give_back(Scope::SignInAddress, address).await?;
                self.limits
                    .give_back(Scope::SignInAccountAddress, pair)
                    .await?;
                if account_taken {
                    self.limits.give_back(Scope::SignInAccount, account).await?;
                }
                Ok::<(), AppError>(())
            }
        };
        if !account_taken && proof != Proof::Solved {
            give_back(false).await?;
            return Err(AppError::ChallengeRequired(
                "This account has had many wrong passwords lately: let the verification finish (it checks you are not a bot), then try again.".into(),
            ));
        }
        let found = self.users.user_by_username(username.trim()).await?;
        let (user_id, hash) = match found {
            Some(u) => (Some(u.summary.id), u.password_hash),
            None => (None, None),
        };
        if !self.hasher.verify(hash, password.to_owned()).await? {
            tracing::info!(%address, "a sign-in failed");
            self.audit
                .record(crate::server::audit::NewEntry {
                    event: "sign_in_failed",
                    user: user_id,
                    actor: "anonymous".into(),
                    address: Some(from.to_string()),
                    detail: serde_json::json!({ "username": account }),
                })
                .await;
            return Err(wrong());
        }
        let user_id = user_id.ok_or_else(wrong)?;
        give_back(account_taken).await?;
        // Said only to whoever knows the password.
        if self.accounts.is_disabled(user_id).await? {
            return Err(AppError::Forbidden(
                "This account has been disabled by an administrator.".into(),
            ));
        }
        if let Some(status) = status {
            self.profiles.set_status(user_id, status).await?;
        }
        let started = self.start(user_id).await?;
        self.audit
            .record(crate::server::audit::by_user(
                "sign_in",
                user_id,
                Some(from.to_string()),
                serde_json::json!({ "session": started.session.id }),
            ))
            .await;
        Ok(started)
    }

    /// A temporary account, clearly marked, whose username can never collide with a real
    /// one; `from` counts against the guests one address may create.
    pub async fn guest(&self, from: IpAddr, proof: Proof) -> Result<Started> {
        proof.required()?;
        let address = address_key(from).to_string();
        self.within(Scope::GuestAddress, &address, "guests").await?;
        // 40 random bits: a collision is unlikely, and retried if it happens.
        for _ in 0..5 {
            let tag: u64 = rand::thread_rng().gen_range(0..(1u64 << 40));
            let username = format!("{GUEST_PREFIX}{tag:010x}");
            let display = format!("Guest {:04X}", tag & 0xffff);
            if let CreateUser::Created(user) = self
                .users
                .create_user(&username, &display, None, true)
                .await?
            {
                tracing::info!(user = user.id, "guest account created");
                return self.start(user.id).await;
            }
        }
        Err(AppError::Internal(anyhow::anyhow!(
            "no free guest name after 5 tries"
        )))
    }

    /// Ends a session; its open sockets close with "session ended".
    pub async fn sign_out(&self, session: &SessionRow) -> Result<()> {
        self.sessions.revoke_session(session.id).await?;
        self.fanout.end_session(
            session.user.id,
            session.id,
            close::SESSION_ENDED,
            "signed out",
        );
        tracing::info!(user = session.user.id, "signed out");
        self.audit
            .record(crate::server::audit::by_user(
                "sign_out",
                session.user.id,
                None,
                serde_json::json!({ "session": session.id }),
            ))
            .await;
        if session.user.is_guest {
            // A guest cannot sign in again: nothing of theirs is worth keeping.
            self.erasure
                .delete(session.user.id, DeletedBy::Server("guest signed out"))
                .await?;
        }
        Ok(())
    }

    /// Ends every other session of this session's user (other browsers, other devices,
    /// tokens); their sockets close with "session ended". How many.
    pub async fn sign_out_others(&self, session: &SessionRow) -> Result<usize> {
        let ended = self
            .sessions
            .revoke_other_sessions(session.user.id, session.id)
            .await?;
        for id in &ended {
            self.fanout.end_session(
                session.user.id,
                *id,
                close::SESSION_ENDED,
                "signed out elsewhere",
            );
        }
        tracing::info!(
            user = session.user.id,
            ended = ended.len(),
            "other sessions signed out"
        );
        self.audit
            .record(crate::server::audit::by_user(
                "sessions_revoked",
                session.user.id,
                None,
                serde_json::json!({ "kept": session.id, "ended": ended }),
            ))
            .await;
        Ok(ended.len())
    }

    /// Checks the password of the session's user (to change it, or to delete the
    /// account). Wrong guesses count against the same limit as failed sign-ins to this
    /// account from this address, so a stolen session cannot try passwords without end.
    async fn check_password(
        &self,
        session: &SessionRow,
        password: &str,
        from: IpAddr,
    ) -> Result<()> {
        let Some(hash) = self.accounts.password_hash(session.user.id).await? else {
            return Err(AppError::Invalid(
                "Guest accounts have no password: they end when you sign out.".into(),
            ));
        };
        let pair = format!(
            "{} {}",
            session.user.username.to_lowercase(),
            address_key(from)
        );
        self.within(Scope::SignInAccountAddress, &pair, "wrong passwords")
            .await?;
        if !self.hasher.verify(Some(hash), password.to_owned()).await? {
            self.audit
                .record(crate::server::audit::by_user(
                    "password_check_failed",
                    session.user.id,
                    Some(from.to_string()),
                    serde_json::json!({ "session": session.id }),
                ))
                .await;
            return Err(AppError::Unauthorized("That is not your password.".into()));
        }
        self.limits
            .give_back(Scope::SignInAccountAddress, &pair)
            .await?;
        Ok(())
    }

    /// Changes the password of the session's user (the current one required), and ends
    /// every other session of theirs: whoever knew the old password is signed out.
    pub async fn change_password(
        &self,
        session: &SessionRow,
        current: &str,
        new: &str,
        from: IpAddr,
    ) -> Result<usize> {
        let new = NewPassword::parse(new)?;
        self.check_password(session, current, from).await?;
        if new.expose() == current {
            return Err(AppError::Invalid(
                "The new password is the one you have now; choose another.".into(),
            ));
        }
        let hash = self.hasher.hash(new.expose().to_owned()).await?;
        self.accounts
            .set_password_hash(session.user.id, &hash)
            .await?;
        self.audit
            .record(crate::server::audit::by_user(
                "password_changed",
                session.user.id,
                Some(from.to_string()),
                serde_json::json!({ "session": session.id }),
            ))
            .await;
        tracing::info!(user = session.user.id, "password changed");
        self.sign_out_others(session).await
    }

    /// Deletes the session's account, its password required (see `account`).
    pub async fn delete_account(
        &self,
        session: &SessionRow,
        password: &str,
        from: IpAddr,
    ) -> Result<()> {
        if !session.user.is_guest {
            self.check_password(session, password, from).await?;
        }
        self.erasure
            .delete(session.user.id, DeletedBy::Owner(Some(from.to_string())))
            .await?;
        Ok(())
    }

    /// The session's user enters their password again (the admin console asks for it before
    /// destructive actions); wrong guesses count as failed sign-ins.
    pub async fn reauthenticate(
        &self,
        session: &SessionRow,
        password: &str,
        from: IpAddr,
    ) -> Result<()> {
        self.check_password(session, password, from).await?;
        self.accounts.note_reauth(session.id, now_ms()).await?;
        Ok(())
    }

    /// Whether the session's user entered their password again within `within`.
    pub async fn is_fresh(&self, session: &SessionRow, within: Duration) -> Result<bool> {
        let at = self.accounts.reauth_at(session.id).await?;
        Ok(at.is_some_and(|at| now_ms() - at <= within.as_millis() as i64))
    }

    /// An administrator disables (or enables) an account: disabled, it cannot sign in and
    /// its sessions end now. False if there is no such account.
    pub async fn set_disabled(&self, by: &SessionRow, user: i64, disabled: bool) -> Result<bool> {
        let Some(ended) = self.accounts.set_disabled(user, disabled, now_ms()).await? else {
            return Ok(false);
        };
        for id in &ended {
            self.fanout
                .end_session(user, *id, close::SESSION_ENDED, "account disabled");
        }
        self.audit
            .record(crate::server::audit::NewEntry {
                event: if disabled {
                    "account_disabled"
                } else {
                    "account_enabled"
                },
                user: Some(user),
                actor: format!("user:{}", by.user.id),
                address: None,
                detail: serde_json::json!({ "sessions_ended": ended.len() }),
            })
            .await;
        Ok(true)
    }

    /// An administrator signs a user out everywhere; how many sessions ended.
    pub async fn sign_out_everywhere(&self, by: &SessionRow, user: i64) -> Result<usize> {
        // Every session: none is kept (-1 is no session's id).
        let ended = self.sessions.revoke_other_sessions(user, -1).await?;
        for id in &ended {
            self.fanout.end_session(
                user,
                *id,
                close::SESSION_ENDED,
                "signed out by an administrator",
            );
        }
        self.audit
            .record(crate::server::audit::NewEntry {
                event: "sessions_revoked",
                user: Some(user),
                actor: format!("user:{}", by.user.id),
                address: None,
                detail: serde_json::json!({ "ended": ended, "by": "admin" }),
            })
            .await;
        Ok(ended.len())
    }

    /// Notes the device and address a new session came from.
    pub async fn describe(&self, session: i64, user_agent: &str, from: IpAddr) -> Result<()> {
        let device = device_of(user_agent);
        self.accounts
            .describe_session(session, &device, &from.to_string())
            .await?;
        Ok(())
    }

    /// The live sessions of the session's user.
    pub async fn sessions_of(&self, session: &SessionRow) -> Result<Vec<SessionInfo>> {
        Ok(self
            .accounts
            .live_sessions(session.user.id, now_ms())
            .await?)
    }

    /// Ends one of the user's own sessions (another device); its sockets close. Not found
    /// (or not theirs): an error saying so.
    pub async fn end_own_session(&self, session: &SessionRow, id: i64) -> Result<()> {
        if !self
            .accounts
            .revoke_own_session(session.user.id, id)
            .await?
        {
            return Err(AppError::NotFound("That session has ended already.".into()));
        }
        self.fanout.end_session(
            session.user.id,
            id,
            close::SESSION_ENDED,
            "signed out from another device",
        );
        self.audit
            .record(crate::server::audit::by_user(
                "session_revoked",
                session.user.id,
                None,
                serde_json::json!({ "by": session.id, "ended": id }),
            ))
            .await;
        Ok(())
    }

    /// Deletes the guests who have had no live session for the configured time; how many.
    pub async fn forget_idle_guests(&self) -> Result<u64> {
        let cutoff = now_ms() - self.lifetimes.guest_idle.as_millis() as i64;
        let mut deleted = 0;
        loop {
            let idle = self.users.idle_guests(cutoff, 100).await?;
            if idle.is_empty() {
                return Ok(deleted);
            }
            for user in idle {
                if self
                    .erasure
                    .delete(user, DeletedBy::Server("guest idle"))
                    .await?
                {
                    deleted += 1;
                }
            }
        }
    }

    /// The live session a token carries, its idle expiry slid forward; None for an unknown
    /// or ended one.
    pub async fn authenticate(&self, token: &str) -> Result<Option<SessionRow>> {
        let Some(mut session) = self
            .sessions
            .session_by_token_hash(&token_hash(token))
            .await?
        else {
            return Ok(None);
        };
        let now = now_ms();
        if !session.is_live(now) {
            return Ok(None);
        }
        // A session that cannot be slid (a full disk, say) is still live until its expiry:
        // reading and reconnecting keep working while writes fail.
        if let Err(e) = self.slide(&mut session, now, false).await {
            tracing::debug!(session = session.id, error = %e, "sliding a session failed; it stays as it was");
        }
        Ok(Some(session))
    }

    /// Slides the idle expiry now, however recently it was slid.
    pub async fn refresh(&self, mut session: SessionRow) -> Result<SessionRow> {
        self.slide(&mut session, now_ms(), true).await?;
        Ok(session)
    }

    /// Moves the idle expiry of a live session to `now + idle` (bounded by the absolute
    /// lifetime). Unless `force`, skips the write when it would move it by little.
    pub async fn slide(&self, session: &mut SessionRow, now: i64, force: bool) -> Result<()> {
        let target =
            (now + self.lifetimes.idle.as_millis() as i64).min(session.absolute_expires_at);
        if force || target - session.idle_expires_at > SLIDE_GRANULARITY_MS {
            self.sessions.touch_session(session.id, target).await?;
            session.idle_expires_at = session.idle_expires_at.max(target);
        }
        Ok(())
    }

    /// A session as it is stored now (a socket checks it when its deadline passes).
    pub async fn session(&self, id: i64) -> Result<Option<SessionRow>> {
        Ok(self.sessions.session_by_id(id).await?)
    }

    /// Forgets sessions that ended more than a day ago; how many.
    pub async fn forget_dead_sessions(&self) -> Result<u64> {
        Ok(self.sessions.delete_dead_sessions(now_ms()).await?)
    }

    /// Starts a session for `user`.
    async fn start(&self, user: i64) -> Result<Started> {
        let (token, hash) = new_token();
        let now = now_ms();
        let idle = now + self.lifetimes.idle.as_millis() as i64;
        let absolute = now + self.lifetimes.absolute.as_millis() as i64;
        let session = self
            .sessions
            .create_session(user, &hash, idle.min(absolute), absolute)
            .await?;
        Ok(Started { token, session })
    }
}

/// What a session's owner is shown of the device it came from: the browser and the system
/// named in its `User-Agent` ("Firefox on Windows"), or the start of it for anything else
/// (a script, the load tool).
pub fn device_of(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(mark, _)| ua.contains(mark))
    .map(|(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(mark, _)| ua.contains(mark))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        _ => {
            let short: String = ua.chars().filter(|c| !c.is_control()).take(40).collect();
            if short.trim().is_empty() {
                "Unknown device".to_owned()
            } else {
                short
            }
        }
    }
}

/// A wait in words: "40 seconds", "3 minutes", "2 hours".
fn in_words(d: Duration) -> String {
    // Rounded up, as `Retry-After` is.
    let s = (d.as_secs_f64().ceil() as u64).max(1);
    let (n, unit) = match s {
        s if s < 90 => (s, "second"),
        s if s < 90 * 60 => (s.div_ceil(60), "minute"),
        s => (s.div_ceil(3600), "hour"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_by_browser_and_system() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(device_of(chrome), "Chrome on Linux");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(device_of(edge), "Edge on Windows");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device_of(safari), "Safari on iOS");
        assert_eq!(device_of("loadgen/0.1"), "loadgen/0.1");
        assert_eq!(device_of(""), "Unknown device");
        assert_eq!(device_of("\u{7}\u{7}"), "Unknown device");
    }

    #[test]
    fn waits_are_said_in_words() {
        assert_eq!(in_words(Duration::from_millis(300)), "1 second");
        assert_eq!(in_words(Duration::from_secs(45)), "45 seconds");
        assert_eq!(in_words(Duration::from_secs(150)), "3 minutes");
        assert_eq!(in_words(Duration::from_secs(7200)), "2 hours");
    }

    #[test]
    fn tokens_are_long_random_and_stored_only_as_hashes() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in unpadded base64");
        assert_eq!(ha, token_hash(&a));
        assert_ne!(ha, a.as_bytes());
    }
}
