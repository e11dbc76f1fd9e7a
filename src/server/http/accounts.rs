//! The session over plain HTTP: who is signed in, and sliding the session while the user is
//! active. Signing up, in and out, guests and bearer tokens are server functions
//! (`crate::app::server_fns`, mounted by `server_fns.rs` here).

use super::session::CurrentSession;
use crate::protocol::http::{paths, SignedIn};
use crate::server::{
    error::{AppError, Result},
    state::AppState,
    store::SessionRow,
};
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::SESSION, get(session_info))
        .route(paths::SESSION_REFRESH, post(refresh))
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::HEALTHZ, get(|| async { "ok" }))
        .route(paths::READY, get(ready))
        .route(paths::CHALLENGE, get(challenge))
}

/// `GET /readyz`: `200 ready`, or `503` with what is wrong: the message writer is not
/// running (the server is stopping), or the disk is below its floor (the server reads, but
/// refuses new messages).
async fn ready(State(state): State<AppState>) -> Response {
    if !state.chat.log.running() {
        let body = serde_json::json!({
            "ready": false,
            "writer": "stopped",
            "message": "The message writer is not running: the server is stopping.",
        });
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    } else if state.space.is_full() {
        let body = serde_json::json!({
            "ready": false,
            "storage": "full",
            "message": "Free disk space is below the floor: new messages are refused.",
        });
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    } else {
        "ready".into_response()
    }
}

/// `GET /api/challenge`: a new signed proof-of-work challenge (ALTCHA's format), for the
/// widget and for API clients; `404` when the server verifies otherwise (or not at all).
async fn challenge(State(state): State<AppState>) -> Result<Response> {
    match state.verifier.challenge() {
        Some(challenge) => {
            let mut res = Json(challenge?).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
        None => Err(AppError::NotFound(
            "This server does not hand out proof-of-work challenges.".into(),
        )),
    }
}

/// What a client is told of a session.
pub fn signed_in(session: &SessionRow, token: Option<String>) -> SignedIn {
    SignedIn {
        user: session.user.clone(),
        idle_expires_at: session.idle_expires_at,
        absolute_expires_at: session.absolute_expires_at,
        token,
    }
}

async fn session_info(current: CurrentSession) -> Json<SignedIn> {
    Json(signed_in(&current.session, None))
}

async fn refresh(State(state): State<AppState>, current: CurrentSession) -> Result<Json<SignedIn>> {
    let session = state.auth.refresh(current.session).await?;
    Ok(Json(signed_in(&session, None)))
}
