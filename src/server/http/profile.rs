//! The user's own card over HTTP: status, display name and personal message, and display
//! pictures (upload, removal, and serving them to those who may see them).

use super::extract::{self, Path, Query};
use super::session::CurrentSession;
use crate::protocol::http::{paths, Me, UpdateMe};
use crate::server::{
    error::{AppError, Result},
    profile::pictures::MAX_UPLOAD_BYTES,
    state::AppState,
};
use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, DefaultBodyLimit, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, patch, put},
    Json, Router,
};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route(paths::ME, patch(update_me))
}

/// Routes with their own body limit (the rest of the API takes small JSON bodies).
pub fn picture_router() -> Router<AppState> {
    Router::new()
        .route(paths::MY_PICTURE, put(upload).delete(remove))
        .route(paths::USER_PICTURE, get(serve))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

async fn update_me(
    State(state): State<AppState>,
    current: CurrentSession,
    extract::Json(req): extract::Json<UpdateMe>,
) -> Result<Json<Me>> {
    Ok(Json(
        state.profiles.update(current.session.user.id, req).await?,
    ))
}

/// `PUT /api/me/picture`: the body is the picture file itself.
async fn upload(
    State(state): State<AppState>,
    current: CurrentSession,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Me>> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge(format!(
            "The picture file is larger than {} MB; choose a smaller one.",
            MAX_UPLOAD_BYTES / (1024 * 1024)
        )),
        _ => AppError::Invalid(e.body_text()),
    })?;
    let user = current.session.user.id;
    let size = body.len();
    let me = state.profiles.set_picture(user, body).await?;
    state
        .analytics
        .record(crate::server::analytics::Event::new("picture_upload").n1(size as f64));
    Ok(Json(me))
}

/// `DELETE /api/me/picture`: back to the default picture.
async fn remove(State(state): State<AppState>, current: CurrentSession) -> Result<Json<Me>> {
    Ok(Json(
        state
            .profiles
            .remove_picture(current.session.user.id)
            .await?,
    ))
}

#[derive(Deserialize)]
struct Version {
    v: Option<String>,
}

/// `GET /api/users/{id}/picture?v=VERSION`: the PNG, for the owner and for contacts who may
/// see the owner's presence; 404 for everyone else and for users without a picture. With the
/// current version in the query it may be cached for good (a new picture has a new version).
async fn serve(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(owner): Path<i64>,
    Query(q): Query<Version>,
) -> Result<Response> {
    let (version, png) = state
        .profiles
        .picture_for(current.session.user.id, owner)
        .await?
        .ok_or_else(|| AppError::NotFound("No picture to show.".into()))?;
    let cache = if q.v.as_deref() == Some(version.as_str()) {
        "private, max-age=31536000, immutable"
    } else {
        "private, no-cache"
    };
    let etag = format!("\"{version}\"");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::ETAG,
                HeaderValue::from_str(&etag).map_err(|e| AppError::Internal(e.into()))?,
            ),
        ],
        png,
    )
        .into_response())
}
