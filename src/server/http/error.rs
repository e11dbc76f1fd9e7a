//! How a refused request answers: the status of its code and the `{"error", "message"}` body
//! ([`crate::protocol::ApiError`]). An internal error's detail never leaves the server: the
//! response carries it to [`log_errors`], the layer that logs it.

use crate::protocol::{ApiError, ApiErrorCode};
use crate::server::error::AppError;
use axum::{
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use std::sync::{Arc, Mutex};

/// The detail of an internal error, riding on its response to the logging layer.
#[derive(Clone)]
pub struct Internal(pub Arc<anyhow::Error>);

/// The status that goes with an error code.
pub fn status_of(code: crate::protocol::ApiErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = self.to_api();
        let mut res = (status_of(body.error), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let AppError::Internal(e) = self {
            res.extensions_mut().insert(Internal(Arc::new(e)));
        }
        res
    }
}

/// Where a server function leaves an internal error for the logging layer (it answers
/// through the server-function framework, not through [`IntoResponse`]).
#[derive(Clone, Default)]
pub struct ErrorSlot(pub Arc<Mutex<Option<anyhow::Error>>>);

impl ErrorSlot {
    pub fn put(&self, e: anyhow::Error) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
    pub fn take(&self) -> Option<anyhow::Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Logs the internal errors that responses carry, with the request they answered.
pub async fn log_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    if let Some(Internal(e)) = res.extensions().get::<Internal>() {
        tracing::error!(%method, %path, error = ?e, "internal error");
    }
    res
}

/// The refusal that goes with a status the framework or a layer answered by itself, without
/// the error body (a body over the limit, a method the address does not take).
pub fn refusal_for(status: StatusCode) -> ApiError {
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            ApiErrorCode::TooLarge,
            "The request is larger than this address takes.",
        ),
        StatusCode::NOT_FOUND => (ApiErrorCode::NotFound, "There is nothing at that address."),
        StatusCode::METHOD_NOT_ALLOWED => (
            ApiErrorCode::Invalid,
            "That address does not take this method.",
        ),
        StatusCode::UPGRADE_REQUIRED => (
            ApiErrorCode::Invalid,
            "This address takes WebSocket connections only.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            return AppError::UnsupportedMediaType.to_api();
        }
        StatusCode::UNAUTHORIZED => (ApiErrorCode::Unauthorized, "Please sign in."),
        StatusCode::FORBIDDEN => (ApiErrorCode::Forbidden, "That is not allowed."),
        StatusCode::TOO_MANY_REQUESTS => (
            ApiErrorCode::TooManyRequests,
            "Too many requests; wait a moment.",
        ),
        s if s.is_server_error() => return AppError::Internal(anyhow::anyhow!("{s}")).to_api(),
        _ => (ApiErrorCode::Invalid, "The request could not be read."),
    };
    ApiError::new(code, message)
}

/// Gives the API's refusals that were answered without the error body (in plain text, or
/// empty: a body over the limit, a method the address does not take) the `{"error",
/// "message"}` body of [`refusal_for`], keeping their status: the API's and the WebSocket
/// address's (a request that is no WebSocket upgrade). Pages are left alone.
pub async fn plain_refusals(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path == crate::protocol::http::paths::WS;
    let res = next.run(req).await;
    let refused = res.status().is_client_error() || res.status().is_server_error();
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || !refused || json {
        return res;
    }
    let status = res.status();
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut answer = (status, Json(refusal_for(status))).into_response();
    // Keep what rode on the response (an internal error's detail, for the log).
    *answer.extensions_mut() = parts.extensions;
    answer
}
