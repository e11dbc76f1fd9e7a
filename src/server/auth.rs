//! Passwords (argon2id, hashed off the async threads), session tokens, the session cookie,
//! and the extractor that turns a cookie or bearer token into the signed-in session.

use super::{
    error::{AppError, Result},
    state::AppState,
    store::{self, now_ms, SessionRow},
};
use anyhow::Context;
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Name of the session cookie.
pub const COOKIE: &str = "messenger_session";

/// Sessions are written back (their idle expiry slid forward) at most this often per session.
const SLIDE_GRANULARITY_MS: i64 = 30_000;

/// Hashes a new password with argon2id on the blocking pool.
pub async fn hash_password(state: &AppState, password: String) -> Result<String> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .context("hashing limiter closed")?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await
    .context("hashing task")?
    .map_err(AppError::Internal)
}

/// Checks a password against a stored hash on the blocking pool. With no hash (unknown user
/// or guest) it still does the work, so timing does not reveal which usernames exist.
pub async fn verify_password(
    state: &AppState,
    hash: Option<String>,
    password: String,
) -> Result<bool> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .context("hashing limiter closed")?;
    let dummy = state.dummy_hash.clone();
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let stored = hash.unwrap_or(dummy);
        let parsed = PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && ok)
    })
    .await
    .context("verifying task")?
    .map_err(AppError::Internal)
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

/// Starts a session for `user_id`; returns the token and the session.
pub async fn start_session(state: &AppState, user_id: i64) -> Result<(String, SessionRow)> {
    let (token, hash) = new_token();
    let now = now_ms();
    let idle = now + state.cfg.session_idle().as_millis() as i64;
    let absolute = now + state.cfg.session_absolute().as_millis() as i64;
    let id = store::create_session(
        state.store.pool(),
        user_id,
        &hash,
        idle.min(absolute),
        absolute,
    )
    .await?;
    let session = store::session_by_id(state.store.pool(), id)
        .await?
        .context("the session just created is missing")?;
    Ok((token, session))
}

/// The `Set-Cookie` value that stores `token` in the browser.
pub fn session_cookie(state: &AppState, token: &str, session: &SessionRow) -> String {
    let max_age = ((session.absolute_expires_at - now_ms()) / 1000).max(0);
    cookie(state, token, max_age)
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> String {
    cookie(state, "", 0)
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Where the token of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Cookie,
    Bearer,
}

/// The token a request carries: a bearer token wins over the cookie.
pub fn request_token(headers: &HeaderMap) -> Option<(String, TokenSource)> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = auth.strip_prefix("Bearer ") {
            return Some((token.trim().to_owned(), TokenSource::Bearer));
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| (value.to_owned(), TokenSource::Cookie))
}

/// The signed-in session of a request.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session: SessionRow,
    pub source: TokenSource,
}

/// Looks up the request's session; a live one has its idle expiry slid forward.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<CurrentSession>> {
    let Some((token, source)) = request_token(headers) else {
        return Ok(None);
    };
    let Some(mut session) =
        store::session_by_token_hash(state.store.pool(), &token_hash(&token)).await?
    else {
        return Ok(None);
    };
    let now = now_ms();
    if !session.is_live(now) {
        return Ok(None);
    }
    slide(state, &mut session, now, false).await?;
    Ok(Some(CurrentSession { session, source }))
}

/// Moves the idle expiry of a live session to `now + idle` (bounded by the absolute
/// lifetime). Unless `force`, skips the write when it would move it by little.
pub async fn slide(
    state: &AppState,
    session: &mut SessionRow,
    now: i64,
    force: bool,
) -> Result<()> {
    let target =
        (now + state.cfg.session_idle().as_millis() as i64).min(session.absolute_expires_at);
    if force || target - session.idle_expires_at > SLIDE_GRANULARITY_MS {
        store::touch_session(state.store.pool(), session.id, target).await?;
        session.idle_expires_at = session.idle_expires_at.max(target);
    }
    Ok(())
}

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(found) = parts.extensions.get::<CurrentSession>() {
            return Ok(found.clone());
        }
        let found = authenticate(state, &parts.headers).await?.ok_or_else(|| {
            AppError::Unauthorized("Please sign in (your session has ended).".into())
        })?;
        parts.extensions.insert(found.clone());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_are_long_random_and_stored_only_as_hashes() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in unpadded base64");
        assert_eq!(ha, token_hash(&a));
        assert_ne!(ha, a.as_bytes());
    }

    #[test]
    fn the_bearer_token_wins_over_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; messenger_session=fromcookie"),
        );
        assert_eq!(
            request_token(&h),
            Some(("fromcookie".into(), TokenSource::Cookie))
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer frombearer"),
        );
        assert_eq!(
            request_token(&h),
            Some(("frombearer".into(), TokenSource::Bearer))
        );
    }
}
