//! Conversations over HTTP: open a one-to-one conversation, the room directory and joining a
//! room, group conversations (start, invite, leave), and the AI contacts one can add.

use super::extract::{self, Path, Query};
use super::session::CurrentSession;
use crate::protocol::{
    http::{paths, Invite, OpenDm, RoomQuery, StartGroup},
    ConversationSummary, RoomPage,
};
use crate::server::{error::Result, state::AppState};
use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::DM, post(open_dm))
        .route(paths::ROOMS, get(room_directory))
        .route(paths::ROOM_JOIN, post(join_room))
        .route(paths::ROOM_MEMBERS, get(room_members))
        .route(paths::CONVERSATIONS, post(start_group))
        .route(paths::INVITE, post(invite))
        .route(paths::LEAVE, post(leave))
        .route(paths::FORGET, post(forget))
        .route(paths::BOTS, get(bot_list))
}

async fn open_dm(
    State(state): State<AppState>,
    current: CurrentSession,
    extract::Json(req): extract::Json<OpenDm>,
) -> Result<Json<ConversationSummary>> {
    Ok(Json(
        state
            .chat
            .open_dm(&current.session.user, &req.username)
            .await?,
    ))
}

async fn join_room(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
) -> Result<Json<ConversationSummary>> {
    Ok(Json(state.chat.join_room(&current.session.user, id).await?))
}

/// `GET /api/rooms/{id}/members`: who is in a room the user joined.
async fn room_members(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
) -> Result<Json<crate::protocol::http::RoomMembers>> {
    Ok(Json(
        state.chat.room_members(&current.session.user, id).await?,
    ))
}

/// `GET /api/rooms?after=<id>&q=<text>&limit=<n>`: the public rooms, a page at a time.
async fn room_directory(
    State(state): State<AppState>,
    current: CurrentSession,
    Query(q): Query<RoomQuery>,
) -> Result<Json<RoomPage>> {
    Ok(Json(
        state
            .chat
            .room_page(current.session.user.id, q.after, &q.q, q.limit)
            .await?,
    ))
}

async fn start_group(
    State(state): State<AppState>,
    current: CurrentSession,
    extract::Json(req): extract::Json<StartGroup>,
) -> Result<(StatusCode, Json<ConversationSummary>)> {
    let summary = state
        .chat
        .start_group(&current.session.user, &req.members)
        .await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

async fn invite(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(conv): Path<i64>,
    extract::Json(req): extract::Json<Invite>,
) -> Result<Json<ConversationSummary>> {
    Ok(Json(
        state
            .chat
            .invite(&current.session.user, conv, req.user)
            .await?,
    ))
}

async fn leave(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(conv): Path<i64>,
) -> Result<StatusCode> {
    state.chat.leave(&current.session.user, conv).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/conversations/{id}/forget`: out of the caller's list (see `Chat::forget`).
async fn forget(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(conv): Path<i64>,
) -> Result<Json<crate::protocol::http::Forgotten>> {
    let visible_after = state.chat.forget(&current.session.user, conv).await?;
    Ok(Json(crate::protocol::http::Forgotten { visible_after }))
}

/// `GET /api/bots`: the AI contacts anyone can add (kept out of `hello`, which every
/// connection holds on to).
async fn bot_list(
    State(state): State<AppState>,
    _: CurrentSession,
) -> Json<Vec<crate::protocol::http::BotCard>> {
    Json(
        state
            .bots
            .as_ref()
            .map(|b| b.summaries())
            .unwrap_or_default(),
    )
}
