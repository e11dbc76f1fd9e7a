//! What operators and their tools read: `/metrics` (Prometheus; `crate::server::metrics`),
//! and the count of every HTTP request by route pattern and status.

use super::client::{ClientIp, Peer};
use crate::server::{metrics::Now, metrics::RouteLabels, metrics::WhatLabels, state::AppState};
use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// The path of the metrics page.
pub const METRICS: &str = "/metrics";

/// `GET /metrics`: from this machine (a loopback peer no proxy forwarded for), or with
/// `Authorization: Bearer <--metrics-token>`; `403` otherwise.
pub async fn metrics(
    State(state): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    client: ClientIp,
    headers: HeaderMap,
) -> Response {
    let forwarded = headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
    let local =
        peer.is_some_and(|p| p.0 .0.ip().is_loopback()) && client.0.is_loopback() && !forwarded;
    let token = state
        .cfg
        .server
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let with_token = match (token, bearer) {
        (Some(t), Some(b)) => constant_time_eq(t.as_bytes(), b.as_bytes()),
        _ => false,
    };
    if !(local || with_token) {
        return (
            StatusCode::FORBIDDEN,
            "The metrics are for this machine, or for a caller with the metrics token.",
        )
            .into_response();
    }
    let page = state.metrics.render(Now {
        sockets: *state.live_sockets.borrow(),
        users_online: state.hub.users_connected(),
        writer_queue: state.chat.log.queued(),
    });
    let mut res = page.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The header a request's id comes in (from a proxy that made one) and goes back out in.
pub const REQUEST_ID: &str = "x-request-id";

/// The id a request is known by in the log: the one a proxy gave it (`X-Request-Id`, if it
/// is short and plain), else a new random one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned)
}

/// A request's id, for what outlives its span (a socket names the request that opened it).
#[derive(Clone)]
pub struct RequestId(pub String);

/// Runs the request inside a span with its id, method and path, so that every log line it
/// leads to carries them (a socket's span names it too), and answers with the id in
/// `X-Request-Id`.
pub async fn request_span(mut req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path()
    );
    let mut res = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

/// Counts each request by its route's pattern (never the path itself: ids would make a
/// series each), method and status; a `429` also counts as rate-limited.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    state
        .metrics
        .http_requests
        .get_or_create(&RouteLabels {
            route,
            method,
            status,
        })
        .inc();
    if status == 429 {
        state
            .metrics
            .rate_limited
            .get_or_create(&WhatLabels { what: "http" })
            .inc();
        state
            .analytics
            .record(crate::server::analytics::Event::new("rate_limited").d1("http"));
    }
    res
}
