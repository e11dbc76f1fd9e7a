//! HTTP, axum only: each handler extracts what it needs, calls a service and maps its error;
//! the status of every error is decided by its code, and internal errors are logged by a
//! layer (`error.rs`). The server functions of `crate::app::server_fns` reach the services
//! through `server_fns.rs`. The whole router (with pages and the WebSocket) is put together
//! in `crate::server::app`.

pub mod accounts;
pub mod client;
pub mod contacts;
pub mod conversations;
pub mod data;
pub mod error;
pub mod extract;
pub mod files;
pub mod ops;
pub mod profile;
pub mod rum;
pub mod security;
pub mod server_fns;
pub mod session;

use super::state::AppState;
use axum::Router;

/// The JSON API's routes (picture uploads, with their own body limit, are
/// [`profile::picture_router`]).
pub fn api() -> Router<AppState> {
    Router::new()
        .merge(accounts::router())
        .merge(conversations::router())
        .merge(contacts::router())
        .merge(profile::router())
        .merge(data::router())
}
