//! What the server functions (`crate::app::server_fns`) need on the server: the application
//! state and the request's session from Leptos' context, answers for browser forms
//! (redirects) and for API clients (status and cookie), and [`server_fn_errors`], the layer
//! that gives each refused call the status of its error code and hands internal errors to
//! the logging layer.
//!
//! A call from a browser form (its `Accept` names `text/html`: the sign-in window posting
//! without any script) is answered with `303 See Other`: to `/app` once signed in, back to
//! the sign-in window with the error otherwise. Every other caller gets the JSON body.

use super::{
    accounts::signed_in,
    error::{status_of, ErrorSlot, Internal},
    session::{self, clear_cookie, session_cookie},
};
use crate::protocol::{http::SignedIn, ApiError, ApiErrorCode};
use crate::server::{auth::Started, error::AppError, state::AppState, store::SessionRow};
use axum::{
    body::Body,
    extract::Request,
    http::{header, request::Parts, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
};
use leptos::prelude::use_context;
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;
use leptos_axum::ResponseOptions;
use std::sync::Arc;

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

/// Whether the call is a browser's plain form post (it wants a page back, not JSON).
pub fn from_browser_form() -> bool {
    parts().is_some_and(|p| {
        p.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
    })
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
                let mode = match window {
                    Window::SignIn => "signin",
                    Window::SignUp => "signup",
                };
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("mode", mode)
                    .append_pair("username", username)
                    .append_pair("error", &api.message)
                    .finish();
                see_other(res, &format!("/?{query}"));
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

fn see_other(res: &ResponseOptions, to: &str) {
    if let Ok(location) = HeaderValue::from_str(to) {
        res.set_status(StatusCode::SEE_OTHER);
        res.insert_header(header::LOCATION, location);
    }
}

/// Around every request: a place for a server function's internal error, and, for a server
/// function that answered with an error, the status of the error's code (the framework
/// answers every error with 500). A `204` loses the `null` body the framework wrote.
pub async fn server_fn_errors(mut req: Request, next: Next) -> Response {
    let slot = ErrorSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut res = next.run(req).await;
    if let Some(detail) = slot.take() {
        res.extensions_mut().insert(Internal(Arc::new(detail)));
    }
    if res.status() == StatusCode::NO_CONTENT {
        *res.body_mut() = Body::empty();
        res.headers_mut().remove(header::CONTENT_TYPE);
        res.headers_mut().remove(header::CONTENT_LENGTH);
    } else if res.status() == StatusCode::INTERNAL_SERVER_ERROR
        && res.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        let (mut parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, ERROR_BODY_MAX)
            .await
            .unwrap_or_default();
        if let Ok(api) = serde_json::from_slice::<ApiError>(&bytes) {
            parts.status = status_of(api.error);
        }
        res = Response::from_parts(parts, Body::from(bytes));
    }
    res
}
