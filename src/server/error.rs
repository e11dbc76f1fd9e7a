//! The services' error: what went wrong, said for the user, or an internal failure whose
//! detail stays on the server. How each kind answers over HTTP (status, body) is decided once,
//! by its [`ApiErrorCode`]; the HTTP layer turns it into a response and logs internal ones.

use super::store::StoreError;
use crate::protocol::{ApiError, ApiErrorCode};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input was refused; the message says why, for the user.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A limit was reached; the client may try again after `retry_after`.
    #[error("{message}")]
    TooMany {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The request must carry a solved proof-of-work challenge (`GET /api/challenge`).
    #[error("{0}")]
    ChallengeRequired(String),
    /// The request body is larger than the endpoint takes.
    #[error("{0}")]
    TooLarge(String),
    #[error("Send a form (application/x-www-form-urlencoded) or JSON (application/json), as the endpoint takes.")]
    UnsupportedMediaType,
    /// A byte range that is not within the file (its length).
    #[error("That range is not within the file ({0} bytes).")]
    RangeNotSatisfiable(u64),
    /// The disk is full: nothing new can be stored now.
    #[error("The server's storage is full, so nothing new can be saved right now. Please try again later.")]
    StorageFull,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if e.is_storage_full() {
            Self::StorageFull
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<crate::protocol::Invalid> for AppError {
    fn from(e: crate::protocol::Invalid) -> Self {
        Self::Invalid(e.0)
    }
}

impl AppError {
    pub fn code(&self) -> ApiErrorCode {
        match self {
            Self::Invalid(_) => ApiErrorCode::Invalid,
            Self::Unauthorized(_) => ApiErrorCode::Unauthorized,
            Self::Forbidden(_) => ApiErrorCode::Forbidden,
            Self::NotFound(_) => ApiErrorCode::NotFound,
            Self::Conflict(_) => ApiErrorCode::Conflict,
            Self::TooMany { .. } => ApiErrorCode::TooManyRequests,
            Self::ChallengeRequired(_) => ApiErrorCode::ChallengeRequired,
            Self::TooLarge(_) => ApiErrorCode::TooLarge,
            Self::UnsupportedMediaType => ApiErrorCode::UnsupportedMediaType,
            Self::RangeNotSatisfiable(_) => ApiErrorCode::RangeNotSatisfiable,
            Self::StorageFull => ApiErrorCode::StorageFull,
            Self::Internal(_) => ApiErrorCode::Internal,
        }
    }

    /// Seconds the client should wait before trying again, for `Retry-After`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooMany { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            Self::StorageFull => Some(60),
            _ => None,
        }
    }

    /// What the client is told: the message for the user, never an internal detail.
    pub fn to_api(&self) -> ApiError {
        let message = match self {
            Self::Internal(_) => "Something went wrong on the server. Please try again.".to_owned(),
            other => other.to_string(),
        };
        ApiError::new(self.code(), message)
    }
}
