//! The session of a request: the token it carries (a bearer token wins over the cookie),
//! the session cookie itself, and the extractor handlers use to require a signed-in user.

use crate::server::{error::AppError, state::AppState, store::SessionRow};
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap},
};

/// Name of the session cookie.
pub const COOKIE: &str = "messenger_session";

/// Where the token of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Cookie,
    Bearer,
}

/// The token a request carries: a bearer token wins over the cookie. The scheme's name is
/// matched without regard to case (RFC 9110, section 11.1), so `bearer` works too.
pub fn request_token(headers: &HeaderMap) -> Option<(String, TokenSource)> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, token)) = auth.trim_start().split_once([' ', '\t']) {
            let token = token.trim();
            if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
                return Some((token.to_owned(), TokenSource::Bearer));
            }
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
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<CurrentSession>, AppError> {
    let Some((token, source)) = request_token(headers) else {
        return Ok(None);
    };
    Ok(state
        .auth
        .authenticate(&token)
        .await?
        .map(|session| CurrentSession { session, source }))
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

/// The `Set-Cookie` value that stores `token` in the browser until the session's absolute
/// end.
pub fn session_cookie(state: &AppState, token: &str, session: &SessionRow) -> String {
    let max_age = ((session.absolute_expires_at - crate::server::store::now_ms()) / 1000).max(0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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

    #[test]
    fn the_scheme_is_read_without_regard_to_case() {
        for value in ["bearer tok", "BEARER tok", "Bearer   tok ", "bEaReR\ttok"] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(
                request_token(&h),
                Some(("tok".into(), TokenSource::Bearer)),
                "{value:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcg=="),
        );
        assert_eq!(request_token(&h), None);
    }
}
