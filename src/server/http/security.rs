//! Request-level protections: the CSRF rule for state-changing requests, security headers,
//! and the session lookup that the server-rendered pages use.

use super::session::{self, TokenSource};
use crate::server::{error::AppError, state::AppState};
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

/// Whether `origin` is one of the allowed origins (the WebSocket upgrade asks too).
pub fn origin_allowed(state: &AppState, origin: &str) -> bool {
    state.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
}

/// Refuses state-changing requests from other origins. A request with an `Origin` header must
/// come from an allowed origin; one without it must not rely on the session cookie (browsers
/// always send `Origin` on POST; scripts use bearer tokens).
pub async fn csrf(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        Some(origin) if !origin_allowed(&state, origin) => {
            AppError::Forbidden(format!("Requests from {origin} are not allowed.")).into_response()
        }
        Some(_) => next.run(req).await,
        None if matches!(
            session::request_token(req.headers()),
            Some((_, TokenSource::Cookie))
        ) =>
        {
            AppError::Forbidden("This request needs an Origin header.".into()).into_response()
        }
        None => next.run(req).await,
    }
}

/// Headers every response carries.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    res
}

/// For the pages: resolves the session into the request's extensions (the page components
/// read it from there), sends signed-in users from `/` to `/app` and others the other way.
pub async fn pages(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() != Method::GET || !(path == "/" || path == "/app") {
        return next.run(req).await;
    }
    let current = match session::authenticate(&state, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match (path, current) {
        ("/", Some(_)) => Redirect::to("/app").into_response(),
        ("/app", None) => Redirect::to("/").into_response(),
        (_, current) => {
            if let Some(c) = current {
                req.extensions_mut().insert(c);
            }
            next.run(req).await
        }
    }
}
