//! A user's data over HTTP: the export of everything the server holds about them, and an
//! admin's deletion of an account. (Changing the password, the sessions and deleting one's
//! own account are server functions: `crate::app::server_fns`.)

use super::extract::Path;
use super::session::CurrentSession;
use crate::protocol::http::paths;
use crate::server::{
    account::{
        export::{self, Sources, Subject},
        DeletedBy,
    },
    audit,
    error::{AppError, Result},
    state::AppState,
    store::{account::AccountStore, UserStore},
};
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get},
    Router,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::EXPORT, get(export_mine))
        .route(paths::ADMIN_USER, delete(admin_delete))
}

/// `GET /api/me/export`: the caller's data as one JSON document, streamed, as a download.
async fn export_mine(State(state): State<AppState>, current: CurrentSession) -> Result<Response> {
    let me = &current.session.user;
    let db = state.store.clone();
    let sources = Sources {
        accounts: db.clone(),
        profiles: db.clone(),
        contacts: db.clone(),
        convs: db.clone(),
        messages: db,
    };
    state
        .audit
        .record(audit::by_user(
            "data_exported",
            me.id,
            None,
            serde_json::json!({ "session": current.session.id }),
        ))
        .await;
    let chunks = export::start(
        sources,
        Subject {
            id: me.id,
            username: me.username.clone(),
            is_guest: me.is_guest,
        },
    );
    let stream = futures::stream::unfold(chunks, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut res = Body::from_stream(stream).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let name = format!(
        "attachment; filename=\"messenger-{}.json\"",
        me.username
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// `DELETE /api/admin/users/{name}`: an admin (`messenger admin grant`) deletes an account, with the
/// same effect as its owner deleting it (`204`; `404` if there is no such account).
async fn admin_delete(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(name): Path<String>,
) -> Result<Response> {
    let me = &current.session.user;
    if !AccountStore::is_admin(&*state.store, me.id).await? {
        return Err(AppError::Forbidden(
            "Only an administrator may delete someone else's account.".into(),
        ));
    }
    let Some(user) = UserStore::user_by_username(&*state.store, name.trim()).await? else {
        return Err(AppError::NotFound(format!("There is no account {name}.")));
    };
    if user.summary.is_bot {
        return Err(AppError::Invalid(
            "An AI contact is not an account; turn the bots off instead.".into(),
        ));
    }
    if !state
        .erasure
        .delete(user.summary.id, DeletedBy::Admin(Some(me.id)))
        .await?
    {
        return Err(AppError::NotFound(format!("There is no account {name}.")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
