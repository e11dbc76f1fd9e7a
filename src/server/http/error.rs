//! How a refused request answers: the status of its code and the `{"error", "message"}` body
//! ([`crate::protocol::ApiError`]). An internal error's detail never leaves the server: the
//! response carries it to [`log_errors`], the layer that logs it.

use crate::server::error::AppError;
use axum::{
    extract::Request,
    http::StatusCode,
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
