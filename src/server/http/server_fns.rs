//! What the server functions (`crate::app::server_fns`) need on the server: the application
//! state and the request's session from Leptos' context, answers for browser forms
//! (redirects) and for API clients (status and cookie), and [`server_fn_calls`], the layer
//! around every call that decides which of the two the caller is, gives each refusal the
//! status of its error code and hands internal errors to the logging layer.
//!
//! A browser's own form submission (the sign-in window posting without any script) is
//! answered with `303 See Other`: to `/app` once signed in, back to the sign-in window with
//! the error otherwise, whatever refused it (the function, an unreadable or too large body).
//! Every other caller gets the JSON body. [`is_browser_form`] says how the two are told apart.

use super::{
    accounts::signed_in,
    error::{refusal_for, status_of, ErrorSlot, Internal},
    session::{self, clear_cookie, session_cookie},
};
use crate::protocol::{
    http::{paths, AccountNotice, SignInNotice, SignedIn},
    ApiError, ApiErrorCode, Username,
};
use crate::server::{
    auth::{Proof, Started},
    error::AppError,
    state::AppState,
    store::SessionRow,
};
use axum::{
    body::Body,
    extract::Request,
    http::{header, request::Parts, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::Response,
};
use leptos::prelude::use_context;
use leptos::server_fn::{axum::server_fn_paths, error::SERVER_FN_ERROR_HEADER};
use leptos_axum::ResponseOptions;
use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
};

/// The server functions the account page's forms post to (a refusal sends a browser back
/// there, not to the sign-in window).
const ACCOUNT_FORMS: [&str; 7] = [
    "/admin/reauth",
    "/admin/room",
    "/admin/user",
    "/change-password",
    "/delete-account",
    "/end-session",
    "/signout-others",
];

/// Largest error body the layer reads back to find its code.
const ERROR_BODY_MAX: usize = 16 * 1024;

/// The application state, which the router gives every server function.
pub fn state() -> Result<AppState, ApiError> {
    use_context::<AppState>().ok_or_else(|| {
        ApiError::new(
            ApiErrorCode::Internal,
            "Something went wrong on the server. Please try again.",
        )
    })
}

fn parts() -> Option<Parts> {
    use_context::<Parts>()
}

/// The caller's address (see `client`), for the limits counted per address.
pub fn client_ip(state: &AppState) -> std::net::IpAddr {
    match parts() {
        Some(p) => super::client::of(state, &p.extensions, &p.headers),
        None => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    }
}

/// What the call's `proof` shows (a solved challenge, a Turnstile pass, or nothing).
pub async fn proof(state: &AppState, field: &str) -> Proof {
    state.verifier.check(field, client_ip(state)).await
}

/// Whether a server-function call is a browser's own form submission, decided once by
/// [`server_fn_calls`] and read by the functions from the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserForm(pub bool);

/// Whether the call is a browser's plain form post (it wants a page back, not JSON).
pub fn from_browser_form() -> bool {
    parts().is_some_and(|p| p.extensions.get::<BrowserForm>() == Some(&BrowserForm(true)))
}

/// A browser submitting a form itself says so: `Sec-Fetch-Mode: navigate` (a script's
/// request, the island's included, says `cors` or `same-origin`). A client that sends no
/// `Sec-Fetch-Mode` (an older browser, an API client) is taken at its `Accept`: a page
/// (`text/html`) and not JSON. Only a `POST` is a form; anything else gets JSON.
pub fn is_browser_form(method: &Method, headers: &axum::http::HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    method == Method::POST
        && match value(header::HeaderName::from_static("sec-fetch-mode")) {
            Some(mode) => mode.eq_ignore_ascii_case("navigate"),
            None => value(header::ACCEPT)
                .is_some_and(|a| a.contains("text/html") && !a.contains("application/json")),
        }
}

/// Whether `path` is a server function's.
fn is_server_fn(path: &str) -> bool {
    static PATHS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    PATHS
        .get_or_init(|| server_fn_paths().map(|(path, _)| path).collect())
        .contains(path)
}

/// Refuses a body in another encoding than a form (JSON sent to a form endpoint would
/// otherwise read as a form with every field empty). A call without a body passes.
pub fn form_only() -> Result<(), ApiError> {
    let content_type = parts().and_then(|p| {
        p.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    });
    match content_type {
        Some(ct) if !ct.starts_with("application/x-www-form-urlencoded") => {
            Err(fail(AppError::UnsupportedMediaType))
        }
        _ => Ok(()),
    }
}

/// The session of the call (cookie or bearer token), or 401.
pub async fn current_session(state: &AppState) -> Result<SessionRow, ApiError> {
    let headers = parts().map(|p| p.headers).unwrap_or_default();
    match session::authenticate(state, &headers).await {
        Ok(Some(current)) => Ok(current.session),
        Ok(None) => Err(fail(AppError::Unauthorized(
            "Please sign in (your session has ended).".into(),
        ))),
        Err(e) => Err(fail(e)),
    }
}

/// The answer to a refused call: what the client is told; an internal error's detail goes to
/// the logging layer.
pub fn fail(e: AppError) -> ApiError {
    let api = e.to_api();
    if let (Some(secs), Some(res)) = (e.retry_after_secs(), use_context::<ResponseOptions>()) {
        res.insert_header(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let AppError::Internal(detail) = e {
        match parts().and_then(|p| p.extensions.get::<ErrorSlot>().cloned()) {
            Some(slot) => slot.put(detail),
            None => tracing::error!(error = ?detail, "internal error"),
        }
    }
    api
}

/// Which window a browser form came from, to send it back there on a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    SignIn,
    SignUp,
}

/// Answers a sign-up, sign-in or guest call: the session cookie, and `status` with the
/// session as JSON, or for a browser form a redirect to `/app` (or back to `window` with the
/// error).
pub fn session_started(
    state: &AppState,
    started: Result<Started, AppError>,
    status: StatusCode,
    window: Window,
    username: &str,
) -> Result<SignedIn, ApiError> {
    let res = use_context::<ResponseOptions>();
    let form = from_browser_form();
    match started {
        Ok(Started { token, session }) => {
            if let Some(res) = &res {
                if let Ok(cookie) = HeaderValue::from_str(&session_cookie(state, &token, &session))
                {
                    res.insert_header(header::SET_COOKIE, cookie);
                }
                if form {
                    see_other(res, "/app");
                } else {
                    res.set_status(status);
                }
            }
            Ok(signed_in(&session, None))
        }
        Err(e) => {
            let api = fail(e);
            if let (true, Some(res)) = (form, &res) {
                see_other(
                    res,
                    &back_to(window, username, notice(window, username, &api)),
                );
            }
            Err(api)
        }
    }
}

/// Answers a sign-out: the cookie removed, and `204`, or for a browser form a redirect to the
/// sign-in window.
pub fn signed_out(state: &AppState) {
    if let Some(res) = use_context::<ResponseOptions>() {
        if let Ok(cookie) = HeaderValue::from_str(&clear_cookie(state)) {
            res.insert_header(header::SET_COOKIE, cookie);
        }
        if from_browser_form() {
            see_other(&res, "/");
        } else {
            res.set_status(StatusCode::NO_CONTENT);
        }
    }
}

/// What the sign-in window says about a refusal (a code: see [`SignInNotice`]).
fn notice(window: Window, username: &str, api: &ApiError) -> SignInNotice {
    match api.error {
        ApiErrorCode::Unauthorized => SignInNotice::WrongPassword,
        ApiErrorCode::Conflict => SignInNotice::UsernameTaken,
        // Sign-up checks the name, then the password; sign-in only the status chosen.
        ApiErrorCode::Invalid if window == Window::SignUp => {
            if Username::parse(username).is_err() {
                SignInNotice::BadUsername
            } else {
                SignInNotice::BadPassword
            }
        }
        ApiErrorCode::Invalid => SignInNotice::BadStatus,
        ApiErrorCode::TooManyRequests => SignInNotice::TooManyAttempts,
        ApiErrorCode::Forbidden if window == Window::SignIn => SignInNotice::AccountDisabled,
        ApiErrorCode::ChallengeRequired => SignInNotice::VerificationNeeded,
        ApiErrorCode::TooLarge => SignInNotice::TooLarge,
        _ => SignInNotice::Failed,
    }
}

/// The sign-in window's address, showing `notice` (and the name typed, kept).
fn back_to(window: Window, username: &str, notice: SignInNotice) -> String {
    let mode = match window {
        Window::SignIn => "signin",
        Window::SignUp => "signup",
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("mode", mode);
    if !username.is_empty() {
        query.append_pair("username", username);
    }
    format!("/?{}", query.append_pair("error", notice.code()).finish())
}

/// What the account page says about a refusal.
fn account_notice(api: &ApiError) -> AccountNotice {
    match api.error {
        ApiErrorCode::Unauthorized => AccountNotice::WrongPassword,
        ApiErrorCode::Invalid => AccountNotice::BadNewPassword,
        ApiErrorCode::TooManyRequests => AccountNotice::TooManyAttempts,
        _ => AccountNotice::Failed,
    }
}

fn account_page(key: &str, notice: AccountNotice) -> String {
    format!("{}?{key}={}", paths::ACCOUNT, notice.code())
}

/// Answers a call of one of the account page's forms: the result, or for a browser form a
/// redirect back to the page saying `done` or what refused it.
pub fn account_answer<T>(result: Result<T, AppError>, done: AccountNotice) -> Result<T, ApiError> {
    match result {
        Ok(v) => {
            if let Some(res) = use_context::<ResponseOptions>().filter(|_| from_browser_form()) {
                see_other(&res, &account_page("done", done));
            }
            Ok(v)
        }
        Err(e) => Err(account_refusal(e, None)),
    }
}

/// A refusal of one of the account page's forms; a browser form goes back to the page
/// saying `notice` (or what the error's code says).
pub fn account_refusal(e: AppError, notice: Option<AccountNotice>) -> ApiError {
    let api = fail(e);
    if let Some(res) = use_context::<ResponseOptions>().filter(|_| from_browser_form()) {
        let notice = notice.unwrap_or_else(|| account_notice(&api));
        see_other(&res, &account_page("error", notice));
    }
    api
}

/// Answers an account deletion: the cookie removed, and `204`, or for a browser form a
/// redirect to the sign-in window saying the account was deleted.
pub fn account_deleted(state: &AppState) {
    if let Some(res) = use_context::<ResponseOptions>() {
        if let Ok(cookie) = HeaderValue::from_str(&clear_cookie(state)) {
            res.insert_header(header::SET_COOKIE, cookie);
        }
        if from_browser_form() {
            see_other(
                &res,
                &format!("/?error={}", SignInNotice::AccountDeleted.code()),
            );
        } else {
            res.set_status(StatusCode::NO_CONTENT);
        }
    }
}

/// The session of the call if its user holds the admin role; `401` without a session,
/// `403` for anyone else.
pub async fn require_admin(state: &AppState) -> Result<SessionRow, ApiError> {
    use crate::server::store::account::AccountStore;
    let session = current_session(state).await?;
    match AccountStore::is_admin(&*state.store, session.user.id).await {
        Ok(true) => Ok(session),
        Ok(false) => Err(fail(AppError::Forbidden(
            "Only administrators may use the admin console.".into(),
        ))),
        Err(e) => Err(fail(e.into())),
    }
}

/// How long a password entered again keeps the admin console's destructive actions open.
pub const REAUTH_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// Answers a form of one of the admin console's pages: the result, or for a browser form a
/// redirect back to `page` (showing `search`) saying `done` or the refusal's code.
pub fn admin_answer<T>(
    result: Result<T, AppError>,
    page: &str,
    done: &str,
    search: &str,
) -> Result<T, ApiError> {
    let back = |key: &str, code: &str| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("q", search).append_pair(key, code);
        format!("{page}?{}", q.finish())
    };
    let res = use_context::<ResponseOptions>().filter(|_| from_browser_form());
    match result {
        Ok(v) => {
            if let Some(res) = res {
                see_other(&res, &back("done", done));
            }
            Ok(v)
        }
        Err(e) => {
            let code = match &e {
                AppError::Unauthorized(_) => "wrong_password",
                AppError::NotFound(_) => "not_found",
                AppError::Forbidden(_) => "reauth_needed",
                AppError::TooMany { .. } => "too_many_attempts",
                AppError::Invalid(_) => "invalid",
                _ => "failed",
            };
            let api = fail(e);
            if let Some(res) = res {
                see_other(&res, &back("error", code));
            }
            Err(api)
        }
    }
}

/// Records an analytics event about the door (`how`: `form`, `token`, ...).
pub fn record(state: &AppState, event: &'static str, how: &'static str) {
    state
        .analytics
        .record(crate::server::analytics::Event::new(event).d1(how));
}

/// Notes the device and address of a session just started (best effort: the session
/// works without them).
pub async fn describe_session(state: &AppState, session: i64) {
    let agent = parts()
        .and_then(|p| {
            p.headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if let Err(e) = state.auth.describe(session, &agent, client_ip(state)).await {
        tracing::warn!(error = %e, "noting where a session came from");
    }
}

fn see_other(res: &ResponseOptions, to: &str) {
    if let Ok(location) = HeaderValue::from_str(to) {
        res.set_status(StatusCode::SEE_OTHER);
        res.insert_header(header::LOCATION, location);
    }
}

/// Around every request: a place for a server function's internal error. Around a server
/// function's call: whether it is a browser form (see [`is_browser_form`]); the status of its
/// error's code (the framework answers every error with 500); a `204` without the `null` body
/// the framework wrote; and, for a browser form that was refused before the function could
/// answer it (a body too large or unreadable), the redirect back to the sign-in window.
pub async fn server_fn_calls(mut req: Request, next: Next) -> Response {
    let slot = ErrorSlot::default();
    req.extensions_mut().insert(slot.clone());
    let path = req.uri().path().to_owned();
    let server_fn = is_server_fn(&path);
    let form = server_fn && is_browser_form(req.method(), req.headers());
    if server_fn {
        req.extensions_mut().insert(BrowserForm(form));
        // The framework would answer any call whose `Accept` names HTML with a redirect to
        // its referrer, by a rule of its own; here the answer is decided above, so the
        // framework is asked for JSON.
        req.headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    }
    let mut res = next.run(req).await;
    if let Some(detail) = slot.take() {
        res.extensions_mut().insert(Internal(Arc::new(detail)));
    }
    if !server_fn {
        return res;
    }
    if res.status() == StatusCode::NO_CONTENT {
        *res.body_mut() = Body::empty();
        res.headers_mut().remove(header::CONTENT_TYPE);
        res.headers_mut().remove(header::CONTENT_LENGTH);
        return res;
    }
    if !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    let from_framework = res.headers().contains_key(SERVER_FN_ERROR_HEADER);
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_MAX)
        .await
        .unwrap_or_default();
    let api = serde_json::from_slice::<ApiError>(&bytes).ok();
    if let (true, Some(api)) = (from_framework, &api) {
        parts.status = status_of(api.error);
    }
    if form {
        // Refused before the function could send the browser back itself.
        let api = api.unwrap_or_else(|| refusal_for(parts.status));
        let mut back = Response::new(Body::empty());
        *back.status_mut() = StatusCode::SEE_OTHER;
        if ACCOUNT_FORMS.iter().any(|p| path.ends_with(p)) {
            // Signed out meanwhile: to the sign-in window.
            let to = if api.error == ApiErrorCode::Unauthorized {
                "/".to_owned()
            } else if path.ends_with("/admin/room") {
                format!("{}?error=failed", paths::ADMIN_ROOMS)
            } else if path.contains("/admin/") {
                format!("{}?error=failed", paths::ADMIN_USERS)
            } else {
                account_page("error", account_notice(&api))
            };
            if let Ok(location) = HeaderValue::from_str(&to) {
                back.headers_mut().insert(header::LOCATION, location);
            }
            *back.extensions_mut() = parts.extensions;
            return back;
        }
        let window = if path.ends_with("/signup") {
            Window::SignUp
        } else {
            Window::SignIn
        };
        if let Ok(location) = HeaderValue::from_str(&back_to(window, "", notice(window, "", &api)))
        {
            back.headers_mut().insert(header::LOCATION, location);
        }
        *back.extensions_mut() = parts.extensions;
        return back;
    }
    Response::from_parts(parts, Body::from(bytes))
}
