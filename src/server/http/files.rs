//! Shared files over HTTP (`server::media`): the upload into a conversation, and the
//! downloads, each checked against the caller's membership.

use super::extract::{Path, Query};
use super::session::CurrentSession;
use crate::protocol::{http::paths, ClientId};
use crate::server::{
    error::{AppError, Result},
    limits::stored::Scope,
    media::{drain, Download, Uploaded, Variant},
    state::AppState,
};
use axum::{
    body::Body,
    extract::{DefaultBodyLimit, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;

/// Routes without the API's body limit: the media service counts the bytes itself.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::FILES_UPLOAD, post(upload))
        .route(paths::FILE, get(original))
        .route(paths::FILE_COPY, get(copy))
        .layer(DefaultBodyLimit::disable())
}

/// The upload's query; a missing part is refused by the checks (after the body is read
/// and dropped, so that the client sees why rather than a cut connection).
#[derive(Debug, Deserialize)]
struct UploadQuery {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    name: String,
}

/// `POST /api/conversations/{id}/files?client_id=...&name=...`: the body is the file.
async fn upload(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(conv): Path<i64>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Uploaded>> {
    let mut stream = body.into_data_stream();
    let client_id = match ClientId::parse(&q.client_id) {
        Ok(c) => c,
        Err(e) => {
            drain(&mut stream).await;
            return Err(e.into());
        }
    };
    // Per user, across sockets, nodes' restarts and tabs: the limit is in the store.
    let key = current.session.user.id.to_string();
    if let Err(wait) = state.stored_limits.take(Scope::UploadUser, &key).await? {
        drain(&mut stream).await;
        return Err(AppError::TooMany {
            message: "You have shared many files in a short time; wait a little, then send again."
                .into(),
            retry_after: wait,
        });
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let uploaded = match state
        .media
        .upload(
            &current.session.user,
            conv,
            client_id,
            &q.name,
            declared,
            stream,
        )
        .await
    {
        Ok(u) => u,
        Err(e) => {
            // A refused upload does not count against the rate.
            state
                .stored_limits
                .give_back(Scope::UploadUser, &key)
                .await?;
            return Err(e);
        }
    };
    state.analytics.record(
        crate::server::analytics::Event::new("file_shared")
            .d1(if uploaded.file.picture.is_some() {
                "picture"
            } else {
                "file"
            })
            .n1(uploaded.file.size as f64),
    );
    Ok(Json(uploaded))
}

/// `GET /api/files/{id}`: the file as it was sent.
async fn original(
    state: State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response> {
    serve(state, current, id, headers, Variant::Original).await
}

/// `GET /api/files/{id}/view` and `/thumb`: a picture's copies.
async fn copy(
    state: State<AppState>,
    current: CurrentSession,
    Path((id, which)): Path<(i64, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let variant = match which.as_str() {
        "view" => Variant::View,
        "thumb" => Variant::Thumb,
        _ => return Err(AppError::NotFound("There is no such file.".into())),
    };
    serve(state, current, id, headers, variant).await
}

/// `GET /api/files/{id}` (the file, as an attachment), `/view` and `/thumb` (a picture's
/// copies, inline): 404 unless the caller is a member who can see the message sharing it
/// and it was not deleted. One byte range (`Range: bytes=...`) gets `206`.
async fn serve(
    State(state): State<AppState>,
    current: CurrentSession,
    id: i64,
    headers: HeaderMap,
    variant: Variant,
) -> Result<Response> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let download = match state
        .media
        .download(current.session.user.id, id, variant, range)
        .await
    {
        Ok(d) => d,
        Err(AppError::RangeNotSatisfiable(len)) => {
            let mut res = AppError::RangeNotSatisfiable(len).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
        Err(e) => return Err(e),
    };
    Ok(respond(download))
}

fn respond(d: Download) -> Response {
    let Download {
        file,
        variant,
        len,
        range,
        partial,
        body,
        mime,
        etag,
    } = d;
    let mut res = Response::new(Body::from_stream(body));
    *res.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    // Anything but the server's own pictures is an attachment, whatever it is.
    let (content_type, disposition) = match variant {
        Variant::Original => (mime, disposition("attachment", &file.name)),
        Variant::View | Variant::Thumb => (mime, disposition("inline", &file.name)),
    };
    set(h, header::CONTENT_TYPE, content_type);
    set(h, header::CONTENT_DISPOSITION, disposition);
    set(
        h,
        header::CONTENT_LENGTH,
        (range.end - range.start).to_string(),
    );
    if partial {
        set(
            h,
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{len}", range.start, range.end - 1),
        );
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set(h, header::ETAG, format!("\"{etag}\""));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Opened as a document, it runs nothing and reaches nothing, in an origin of its own.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
    );
    // Only the viewer's own browser keeps it (an object never changes under its name).
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    res
}

/// A `Content-Disposition` value: an ASCII name for old clients and the real one in UTF-8.
fn disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-()[]+,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn a_name_is_given_safely_in_both_forms() {
        assert_eq!(
            disposition("attachment", "naïve \"plan\".txt"),
            "attachment; filename=\"na_ve _plan_.txt\"; filename*=UTF-8''na%C3%AFve%20%22plan%22.txt"
        );
    }
}
