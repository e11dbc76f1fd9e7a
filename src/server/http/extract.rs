//! Extractors that refuse bad input the way every other refusal is answered (an
//! `ApiError` body with the status of its code) instead of axum's plain-text rejections: a
//! JSON body that does not parse, a path id that is not a number, a query that does not fit.

use crate::server::error::AppError;
use axum::extract::{
    rejection::{JsonRejection, PathRejection, QueryRejection},
    FromRequest, FromRequestParts,
};

/// A JSON request body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

/// A path's parameters (ids).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

/// A query string.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for AppError {
    fn from(e: JsonRejection) -> Self {
        match e {
            JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
            // The body went over the limit while it was read (no length was announced).
            other if other.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::TooLarge("The request is larger than this address takes.".into())
            }
            other => AppError::Invalid(format!(
                "The request's JSON could not be read: {}",
                other.body_text()
            )),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(_: PathRejection) -> Self {
        AppError::NotFound("There is nothing at that address.".into())
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        AppError::Invalid(format!(
            "The request's query could not be read: {}",
            e.body_text()
        ))
    }
}
