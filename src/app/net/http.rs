//! Typed HTTP calls to the JSON API (gloo-net), with the bodies and paths of
//! [`crate::protocol::http`]: a renamed field or path fails to compile here and on the
//! server alike. A refusal comes back as its [`ApiError`]; a 401 means the session ended.
//! Sign-in and history are server functions (`crate::app::server_fns`), called directly.

use crate::protocol::{http::paths, ApiError, ApiErrorCode};
use gloo_net::http::{Request, RequestBuilder};
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;

/// The session has ended (the server answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended;

fn unreachable() -> ApiError {
    ApiError::new(
        ApiErrorCode::Unreachable,
        "The server could not be reached; try again.",
    )
}

/// Sends a request on our own origin (with the session cookie); the response text, or the
/// server's refusal.
async fn send(request: Result<Request, gloo_net::Error>) -> Result<String, ApiError> {
    let response = request
        .map_err(|_| unreachable())?
        .send()
        .await
        .map_err(|_| unreachable())?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(text);
    }
    Err(serde_json::from_slice::<ApiError>(text.as_bytes()).unwrap_or_else(|_| unreachable()))
}

/// Reads an answer. From the bytes, as the server functions' client reads its answers: one
/// reader type means one deserializer per type in the bundle.
fn read<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_slice(text.as_bytes()).map_err(|_| {
        ApiError::new(
            ApiErrorCode::Internal,
            "The server's answer could not be read.",
        )
    })
}

/// A request with a JSON body; the answer read as `T`. (The body is serialised at once, so
/// the future borrows nothing.)
pub fn json<B: Serialize, T: DeserializeOwned>(
    builder: RequestBuilder,
    body: &B,
) -> impl Future<Output = Result<T, ApiError>> + 'static {
    let request = builder.json(body);
    async move { read(&send(request).await?) }
}

/// A request without a body whose answer is read as `T`.
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    read(&send(Request::get(path).build()).await?)
}

/// A `POST` without a body whose answer is read as `T`.
pub async fn post<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    read(&send(Request::post(path).build()).await?)
}

/// A request whose answer does not matter beyond its success (the change comes back on the
/// socket, to every tab).
pub async fn call(builder: RequestBuilder) -> Result<(), ApiError> {
    send(builder.build()).await.map(drop)
}

/// A JSON body whose answer does not matter beyond its success.
pub fn call_with<B: Serialize>(
    builder: RequestBuilder,
    body: &B,
) -> impl Future<Output = Result<(), ApiError>> + 'static {
    let request = builder.json(body);
    async move { send(request).await.map(drop) }
}

/// A file as the whole body (a picture upload).
pub async fn upload(path: &str, file: web_sys::File) -> Result<(), ApiError> {
    // The server reads the type from the bytes; this header only says "a file".
    let request = Request::put(path)
        .header("Content-Type", "application/octet-stream")
        .body(file);
    send(request).await.map(drop)
}

/// Slides the session's idle expiry.
pub async fn refresh_session() -> Result<(), Ended> {
    match send(Request::post(paths::SESSION_REFRESH).build()).await {
        Err(e) if e.error == ApiErrorCode::Unauthorized => Err(Ended),
        _ => Ok(()),
    }
}

/// Whether the session still lives (an unreachable server counts as alive: try again).
/// Given up after 5 s: on a network that went away without a word, a request can wait for
/// minutes, and the reconnect waiting on it with it.
pub async fn session_alive() -> Result<(), Ended> {
    let abort = web_sys::AbortController::new().ok();
    let request = Request::get(paths::SESSION)
        .abort_signal(abort.as_ref().map(|a| a.signal()).as_ref())
        .build();
    if let Some(abort) = abort {
        leptos::prelude::set_timeout(move || abort.abort(), std::time::Duration::from_secs(5));
    }
    match send(request).await {
        Err(e) if e.error == ApiErrorCode::Unauthorized => Err(Ended),
        _ => Ok(()),
    }
}

/// Who is signed in, asked over HTTP (the client-side-rendered build has no server render).
#[cfg(feature = "csr")]
pub async fn current_user() -> Option<crate::protocol::UserSummary> {
    get::<crate::protocol::http::SignedIn>(paths::SESSION)
        .await
        .ok()
        .map(|s| s.user)
}
