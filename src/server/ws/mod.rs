//! `/ws`: the upgrade handler checks the handshake, Origin and session, answers `101` and
//! takes the connection's TCP socket back from hyper; then one task per connection runs a
//! single `select!` loop over the socket's reads, its mailbox in the hub (deliveries and
//! acknowledgements that need the task, and control messages, shutdown among them) and one
//! timer for both the heartbeat and the session deadline. That task is most of what an
//! idle connection costs; see `run` and `serve` for how it is kept small.
//!
//! Writes do not go through the task alone: the hub's publisher writes live deliveries, and
//! the acknowledgements of this connection's sends, straight into the socket
//! (`mailbox::Mailbox`), and everything the task writes goes through
//! the same mailbox, under the same lock, so frames stay whole and in order. `wire` reads
//! and decodes the client's frames without a buffer per connection (the loop answers pings
//! and closes through the same path); the server's text frames are encoded in
//! `mailbox::put_text_frame`.
//!
//! Per conversation, a connection is `Unsynced` until the client sends `sync` (live messages
//! are not sent before it), `Syncing` while it answers from the store, then `Live`
//! (gap-free, in order; a gap is filled from the store), or `Paused` after it fell behind
//! (its mailbox overflowed; the client is told to resync).

mod commands;
mod conn;
mod connection;
pub mod mailbox;
mod wire;

use super::{
    error::AppError,
    http::{
        client,
        security::origin_allowed,
        session::{self, TokenSource},
    },
    limits::sockets::SlotRefusal,
    state::AppState,
};
use crate::protocol::close;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Checks a WebSocket opening handshake (RFC 6455, section 4.2.1); returns the client's
/// key, or the status and message refusing it.
fn handshake_key(
    method: &Method,
    headers: &HeaderMap,
) -> Result<HeaderValue, (StatusCode, &'static str)> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if method != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "A WebSocket opens with GET.",
        ));
    }
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "This address takes WebSocket connections only.",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13."));
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if !key.is_empty() => Ok(key.clone()),
        _ => Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing.")),
    }
}

/// `GET /ws`: refuses what is not a WebSocket handshake (400, 405, 426), foreign origins
/// (403) and requests without a live session (401).
pub async fn upgrade(State(state): State<AppState>, mut req: Request) -> Response {
    let key = match handshake_key(req.method(), req.headers()) {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        if !origin_allowed(&state, origin) {
            return AppError::Forbidden(format!("Origin {origin} is not allowed.")).into_response();
        }
    }
    let current = match session::authenticate(&state, headers).await {
        Ok(Some(current)) => current,
        Ok(None) => return AppError::Unauthorized("Sign in first.".into()).into_response(),
        Err(e) => return e.into_response(),
    };
    if origin.is_none() && current.source == TokenSource::Cookie {
        // Browsers always send Origin; a cookie without one is not a browser we can trust.
        return AppError::Forbidden("A cookie-authenticated socket needs an Origin header.".into())
            .into_response();
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "This connection cannot be upgraded.",
        )
            .into_response();
    };
    // The caps: a refused socket is still upgraded, so that the client reads why in the
    // close frame (a browser sees nothing of a refused handshake but "1006").
    let ip = client::of(&state, req.extensions(), req.headers());
    let slot = state.sockets.take(current.session.user.id, ip);
    if let (Ok(_), Some(bots)) = (&slot, &state.bots) {
        // The bots' quotas count by where people write from.
        bots.seen(current.session.user.id, ip, current.session.user.is_guest);
    }
    let session = Box::new(current.session);
    // The socket's log lines carry who it is and the request that opened it. A span of its
    // own, not one inside the request's: that would keep the request's span (and its memory
    // in the log's registry: 0.86 KiB per idle socket for the two, logging at `info`) for as
    // long as the socket lives.
    let request = req
        .extensions()
        .get::<crate::server::http::ops::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let span = tracing::info_span!(
        parent: None,
        "socket",
        request = %request,
        user = session.user.id,
        session = session.id
    );
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => return tracing::debug!(error = %e, "the upgrade did not complete"),
            };
            let slot = match slot {
                Ok(slot) => slot,
                Err(refusal) => return refuse(upgraded, refusal, session.user.id, ip).await,
            };
            // The server serves each connection with hyper's HTTP/1 builder on the plain
            // `TcpStream` (`startup.rs`), so this is the type it hands back. What hyper had read
            // past the request is copied out: its `Bytes` would keep hyper's whole read buffer
            // (8 KiB) alive for as long as the connection lives.
            let (tcp, read_already) = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => (parts.io.into_inner(), parts.read_buf.to_vec()),
                Err(_) => return tracing::error!("an upgraded connection is not a TCP stream"),
            };
            connection::connection(tcp, read_already, state, session, slot).await
        },
        span,
    ));
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Closes a socket that got no slot, saying why, and lets it go.
async fn refuse(
    mut upgraded: hyper::upgrade::Upgraded,
    refusal: SlotRefusal,
    user: i64,
    ip: std::net::IpAddr,
) {
    use tokio::io::AsyncWriteExt;
    let (code, reason) = match refusal {
        SlotRefusal::User => (
            close::TOO_MANY_SOCKETS,
            "too many connections for this user",
        ),
        SlotRefusal::Address => (
            close::TOO_MANY_SOCKETS,
            "too many connections from this address",
        ),
        SlotRefusal::Full => (close::TRY_AGAIN_LATER, "server full; try again later"),
    };
    tracing::info!(user, %ip, reason, "a socket was refused");
    let bytes = wire::close_frame(code, reason);
    let mut io = TokioIo::new(&mut upgraded);
    let write = async {
        io.write_all(&bytes).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), write).await;
}
