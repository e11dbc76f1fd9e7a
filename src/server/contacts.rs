//! The contact list over HTTP: requests, acceptance, removal, blocking, contact groups, and
//! the user's own status, display name and personal message. Every change is stored first,
//! then told to the open sockets of both sides through the presence publisher.

use super::{
    auth::CurrentSession,
    error::{AppError, Result},
    presence::Event,
    state::AppState,
    store::{self, GroupChange, Profile, Requested},
};
use crate::protocol::{
    Contact, ContactGroup, ServerFrame, Status, MAX_DISPLAY_NAME_CHARS, MAX_GROUPS,
    MAX_GROUP_NAME_CHARS, MAX_PERSONAL_MESSAGE_CHARS,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, patch, post, put},
    Json, Router,
};
use serde::{Deserialize, Serialize};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/contacts", get(list).post(add))
        .route("/api/contacts/{id}", axum::routing::delete(remove))
        .route("/api/contacts/{id}/accept", post(accept))
        .route("/api/contacts/{id}/decline", post(decline))
        .route("/api/contacts/{id}/block", post(block))
        .route("/api/contacts/{id}/unblock", post(unblock))
        .route("/api/contacts/{id}/group", put(move_to_group))
        .route("/api/groups", post(create_group))
        .route("/api/groups/{id}", patch(rename_group).delete(delete_group))
        .route("/api/me", patch(update_me_handler))
}

#[derive(Serialize)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
    pub groups: Vec<ContactGroup>,
}

/// The contact list of `user` with the presence they may see.
pub async fn contact_list(state: &AppState, user: i64) -> Result<ContactList> {
    let rows = store::contacts_of(state.store.pool(), user).await?;
    Ok(ContactList {
        contacts: rows
            .into_iter()
            .map(|r| state.presence.contact_view(r))
            .collect(),
        groups: store::groups_of(state.store.pool(), user).await?,
    })
}

async fn list(State(state): State<AppState>, current: CurrentSession) -> Result<Json<ContactList>> {
    Ok(Json(contact_list(&state, current.session.user.id).await?))
}

/// `owner`'s entry for `other`, or 404 when there is none.
async fn view(state: &AppState, owner: i64, other: i64) -> Result<Json<Contact>> {
    store::contact_of(state.store.pool(), owner, other)
        .await?
        .map(|row| Json(state.presence.contact_view(row)))
        .ok_or_else(|| AppError::NotFound("That user is not in your contact list.".into()))
}

#[derive(Deserialize)]
struct AddContact {
    username: String,
}

/// Asks a user to be a contact (or accepts, if they asked first). A request to someone who
/// has blocked the asker is stored like any other but never shown to them: the asker cannot
/// tell a block from an unanswered request.
async fn add(
    State(state): State<AppState>,
    current: CurrentSession,
    Json(req): Json<AddContact>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    let username = req.username.trim();
    if username.is_empty() {
        return Err(AppError::Invalid(
            "Type the username of the person to add.".into(),
        ));
    }
    let other = store::user_by_username(state.store.pool(), username)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no user called {username:?}.")))?
        .summary;
    if other.id == me {
        return Err(AppError::Invalid("You cannot add yourself.".into()));
    }
    if state.presence.blocked(me, other.id) {
        return Err(AppError::Conflict(format!(
            "You have blocked {}; unblock them first.",
            other.display_name
        )));
    }
    if store::request_contact(state.store.pool(), me, other.id).await? != Requested::Unchanged {
        // An AI contact says yes to everyone, at once.
        if other.is_bot {
            store::accept_contact(state.store.pool(), other.id, me).await?;
        }
        state.presence.emit(Event::Related(me, other.id));
    }
    view(&state, me, other.id).await
}

async fn accept(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    if state.presence.blocked(me, other)
        || !store::accept_contact(state.store.pool(), me, other).await?
    {
        return Err(AppError::NotFound(
            "There is no request from that user.".into(),
        ));
    }
    state.presence.emit(Event::Related(me, other));
    view(&state, me, other).await
}

async fn decline(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<StatusCode> {
    let me = current.session.user.id;
    if !store::remove_contact(state.store.pool(), me, other, true).await? {
        return Err(AppError::NotFound(
            "There is no request from that user.".into(),
        ));
    }
    state.presence.emit(Event::Related(me, other));
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a contact (or withdraws a request) on both sides.
async fn remove(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<StatusCode> {
    let me = current.session.user.id;
    if !store::remove_contact(state.store.pool(), me, other, false).await? {
        return Err(AppError::NotFound(
            "That user is not in your contact list.".into(),
        ));
    }
    state.presence.emit(Event::Related(me, other));
    Ok(StatusCode::NO_CONTENT)
}

async fn block(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<Json<Contact>> {
    set_block(&state, current.session.user.id, other, true).await
}

async fn unblock(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
) -> Result<Json<Contact>> {
    set_block(&state, current.session.user.id, other, false).await
}

async fn set_block(state: &AppState, me: i64, other: i64, on: bool) -> Result<Json<Contact>> {
    if other == me {
        return Err(AppError::Invalid("You cannot block yourself.".into()));
    }
    if store::profile(state.store.pool(), other).await?.is_none() {
        return Err(AppError::NotFound("There is no such user.".into()));
    }
    if store::set_block(state.store.pool(), me, other, on).await? {
        state.presence.set_blocked(me, other, on);
        state.presence.emit(Event::Related(me, other));
    }
    match store::contact_of(state.store.pool(), me, other).await? {
        Some(row) => Ok(Json(state.presence.contact_view(row))),
        // Unblocked someone who was not a contact: nothing left to show.
        None => Err(AppError::NotFound(
            "That user is no longer in your contact list.".into(),
        )),
    }
}

#[derive(Deserialize)]
struct MoveToGroup {
    group: Option<i64>,
}

async fn move_to_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(other): Path<i64>,
    Json(req): Json<MoveToGroup>,
) -> Result<Json<Contact>> {
    let me = current.session.user.id;
    if !store::set_contact_group(state.store.pool(), me, other, req.group).await? {
        return Err(AppError::NotFound(
            "No such contact or group in your list.".into(),
        ));
    }
    state.presence.emit(Event::Related(me, other));
    view(&state, me, other).await
}

/// A trimmed single-line text of 1 to `max` characters.
fn one_line(raw: &str, what: &str, max: usize, allow_empty: bool) -> Result<String> {
    let text = raw.trim();
    if text.is_empty() && !allow_empty {
        return Err(AppError::Invalid(format!("The {what} cannot be empty.")));
    }
    if text.chars().count() > max {
        return Err(AppError::Invalid(format!(
            "The {what} can be at most {max} characters."
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(AppError::Invalid(format!(
            "The {what} must be a single line of text."
        )));
    }
    Ok(text.to_owned())
}

#[derive(Deserialize)]
struct GroupName {
    name: String,
}

fn group_result(change: GroupChange, name: &str) -> Result<i64> {
    match change {
        GroupChange::Done(id) => Ok(id),
        GroupChange::NameTaken => Err(AppError::Conflict(format!(
            "You already have a group called {name:?}."
        ))),
        GroupChange::NotFound => Err(AppError::NotFound("There is no such group.".into())),
        GroupChange::TooMany => Err(AppError::Conflict(format!(
            "You can have at most {MAX_GROUPS} groups."
        ))),
    }
}

async fn create_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Json(req): Json<GroupName>,
) -> Result<(StatusCode, Json<ContactGroup>)> {
    let me = current.session.user.id;
    let name = one_line(&req.name, "group name", MAX_GROUP_NAME_CHARS, false)?;
    let id = group_result(
        store::create_group(state.store.pool(), me, &name, MAX_GROUPS).await?,
        &name,
    )?;
    state.presence.emit(Event::Groups(me));
    Ok((StatusCode::CREATED, Json(ContactGroup { id, name })))
}

async fn rename_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
    Json(req): Json<GroupName>,
) -> Result<Json<ContactGroup>> {
    let me = current.session.user.id;
    let name = one_line(&req.name, "group name", MAX_GROUP_NAME_CHARS, false)?;
    group_result(
        store::rename_group(state.store.pool(), me, id, &name).await?,
        &name,
    )?;
    state.presence.emit(Event::Groups(me));
    Ok(Json(ContactGroup { id, name }))
}

/// Deletes a group; its contacts stay in the list, in no group.
async fn delete_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    let me = current.session.user.id;
    if !store::delete_group(state.store.pool(), me, id).await? {
        return Err(AppError::NotFound("There is no such group.".into()));
    }
    state.presence.emit(Event::Groups(me));
    // The contacts that were in it are now in no group.
    for row in store::contacts_of(state.store.pool(), me).await? {
        if row.group.is_none() && row.state.is_some() {
            state.presence.emit(Event::Related(me, row.user.id));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct UpdateMe {
    status: Option<Status>,
    display_name: Option<String>,
    personal_message: Option<String>,
}

/// The user's own settings as the API returns them.
#[derive(Serialize)]
pub struct Me {
    pub status: Status,
    pub display_name: String,
    pub personal_message: String,
    /// The display picture's version (None: the default picture).
    pub picture: Option<String>,
}

impl From<Profile> for Me {
    fn from(p: Profile) -> Self {
        Self {
            status: p.status,
            display_name: p.display_name,
            personal_message: p.personal_message,
            picture: p.picture,
        }
    }
}

async fn update_me_handler(
    State(state): State<AppState>,
    current: CurrentSession,
    Json(req): Json<UpdateMe>,
) -> Result<Json<Me>> {
    let display_name = req
        .display_name
        .map(|n| one_line(&n, "display name", MAX_DISPLAY_NAME_CHARS, false))
        .transpose()?;
    let personal_message = req
        .personal_message
        .map(|m| one_line(&m, "personal message", MAX_PERSONAL_MESSAGE_CHARS, true))
        .transpose()?;
    let p = update_me(
        &state,
        current.session.user.id,
        req.status,
        display_name.as_deref(),
        personal_message.as_deref(),
    )
    .await?;
    Ok(Json(Me::from(p)))
}

/// Stores a change to the user's status, name or personal message (already validated), and
/// tells their contacts and their own open tabs.
pub async fn update_me(
    state: &AppState,
    user: i64,
    status: Option<Status>,
    display_name: Option<&str>,
    personal_message: Option<&str>,
) -> Result<Profile> {
    let _in_order = state.profile_changes.lock().await;
    let profile = store::update_profile(
        state.store.pool(),
        user,
        status,
        display_name,
        personal_message,
    )
    .await?
    .ok_or_else(|| AppError::NotFound("Your account no longer exists.".into()))?;
    apply_profile(state, user, &profile)?;
    Ok(profile)
}

/// Tells presence (and so the contacts) and the user's own tabs about a profile change
/// that is stored. Call it holding `profile_changes`, so changes reach everyone in order.
pub fn apply_profile(state: &AppState, user: i64, profile: &Profile) -> Result<()> {
    state.presence.set_profile(user, profile.clone());
    let frame = ServerFrame::MyStatus {
        status: profile.status,
        personal_message: profile.personal_message.clone(),
        display_name: profile.display_name.clone(),
        picture: profile.picture.clone(),
    };
    let text = serde_json::to_string(&frame).map_err(anyhow::Error::from)?;
    state.hub.notify_user(
        user,
        super::hub::Control::Frame(Box::new(super::hub::Utf8Bytes::from(text))),
    );
    Ok(())
}
