//! The contact list over HTTP: requests, acceptance, removal, blocking and contact groups.

use super::extract::{self, Path};
use super::session::CurrentSession;
use crate::protocol::{
    http::{paths, AddContact, ContactList, GroupName, MoveToGroup},
    Contact, ContactGroup,
};
use crate::server::{error::Result, state::AppState};
use axum::{
    extract::State,
    http::StatusCode,
    routing::{delete, get, patch, post, put},
    Json, Router,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::CONTACTS, get(list).post(add))
        .route(paths::CONTACT, delete(remove))
        .route(paths::ACCEPT, post(accept))
        .route(paths::DECLINE, post(decline))
        .route(paths::BLOCK, post(block))
        .route(paths::UNBLOCK, post(unblock))
        .route(paths::CONTACT_GROUP, put(move_to_group))
        .route(paths::GROUPS, post(create_group))
        .route(paths::GROUP, patch(rename_group).delete(delete_group))
}

async fn list(State(state): State<AppState>, current: CurrentSession) -> Result<Json<ContactList>> {
    Ok(Json(state.contacts.list(current.session.user.id).await?))
}

async fn add(
    State(state): State<AppState>,
    current: CurrentSession,
    extract::Json(req): extract::Json<AddContact>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    let contact = state.contacts.add(me, &req.username).await?;
    state
        .analytics
        .record(crate::server::analytics::Event::new("contact_request"));
    Ok(Json(contact))
}

async fn accept(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    Ok(Json(state.contacts.accept(me, other).await?))
}

async fn decline(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<StatusCode> {
    let me = current.session.user.id;
    state.contacts.decline(me, other).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<StatusCode> {
    state
        .contacts
        .remove(current.session.user.id, other)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn block(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    Ok(Json(state.contacts.set_block(me, other, true).await?))
}

async fn unblock(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    Ok(Json(state.contacts.set_block(me, other, false).await?))
}

async fn move_to_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
    extract::Json(req): extract::Json<MoveToGroup>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    Ok(Json(
        state.contacts.move_to_group(me, other, req.group).await?,
    ))
}

async fn create_group(
    State(state): State<AppState>,
    current: CurrentSession,
    extract::Json(req): extract::Json<GroupName>,
) -> Result<(StatusCode, Json<ContactGroup>)> {
    let me = current.session.user.id;
    let group = state.contacts.create_group(me, &req.name).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

async fn rename_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
    extract::Json(req): extract::Json<GroupName>,
) -> Result<Json<ContactGroup>> {
    let me = current.session.user.id;
    Ok(Json(state.contacts.rename_group(me, id, &req.name).await?))
}

async fn delete_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    state
        .contacts
        .delete_group(current.session.user.id, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
