//! Server functions the island calls: history paging, starting a one-to-one conversation,
//! joining a room, inviting into and leaving a group conversation. Each is a thin wrapper
//! over the API function of the same job.

use crate::protocol::{ConversationSummary, HistoryPage};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// A page of messages before `before` (or the newest), oldest first.
#[server(input = Json, endpoint = "history")]
pub async fn load_history(conv: i64, before: Option<i64>) -> Result<HistoryPage, ServerFnError> {
    let (state, me) = ssr::caller().await?;
    crate::server::api::history_page(&state, me.id, conv, before, Some(50))
        .await
        .map_err(ssr::public)
}

/// Finds or starts the one-to-one conversation with `username`.
#[server(input = Json, endpoint = "open_dm")]
pub async fn open_dm(username: String) -> Result<ConversationSummary, ServerFnError> {
    let (state, me) = ssr::caller().await?;
    crate::server::api::open_dm_with(&state, &me, &username)
        .await
        .map_err(ssr::public)
}

/// Joins a public room (joining twice is fine).
#[server(input = Json, endpoint = "join_room")]
pub async fn join_room(room: i64) -> Result<ConversationSummary, ServerFnError> {
    let (state, me) = ssr::caller().await?;
    crate::server::api::join_room_as(&state, &me, room)
        .await
        .map_err(ssr::public)
}

/// Invites a contact into a conversation; returns the group they are now in (a new one
/// when invited from a one-to-one conversation).
#[server(input = Json, endpoint = "invite")]
pub async fn invite(conv: i64, user: i64) -> Result<ConversationSummary, ServerFnError> {
    let (state, me) = ssr::caller().await?;
    crate::server::conversations::invite(&state, &me, conv, user)
        .await
        .map_err(ssr::public)
}

/// Leaves a group conversation.
#[server(input = Json, endpoint = "leave")]
pub async fn leave(conv: i64) -> Result<(), ServerFnError> {
    let (state, me) = ssr::caller().await?;
    crate::server::conversations::leave(&state, &me, conv)
        .await
        .map_err(ssr::public)
}

#[cfg(feature = "ssr")]
mod ssr {
    use crate::{
        protocol::UserSummary,
        server::{auth::CurrentSession, error::AppError, state::AppState},
    };
    use leptos::prelude::*;

    /// The app state and the signed-in user of the current call.
    pub async fn caller() -> Result<(AppState, UserSummary), ServerFnError> {
        let state =
            use_context::<AppState>().ok_or_else(|| ServerFnError::new("server state missing"))?;
        let current: CurrentSession = leptos_axum::extract_with_state(&state)
            .await
            .map_err(|_| ServerFnError::new("Please sign in (your session has ended)."))?;
        Ok((state, current.session.user))
    }

    pub fn public(e: AppError) -> ServerFnError {
        ServerFnError::new(e.public_message())
    }
}
