//! HTTP, axum only: each handler extracts what it needs, calls a service and maps its error;
//! the status of every error is decided by its code, and internal errors are logged by a
//! layer (`error.rs`). The server functions of `crate::app::server_fns` are routes here too.

pub mod accounts;
pub mod contacts;
pub mod conversations;
pub mod error;
pub mod profile;
pub mod security;
pub mod server_fns;
pub mod session;

use super::{app::AppState, ws};
use crate::app::{shell, App};
use crate::protocol::http::paths;
use axum::{middleware, routing::get, Router};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::{compression::CompressionLayer, limit::RequestBodyLimitLayer, services::ServeDir};

/// Largest HTTP request body accepted (picture uploads have their own limit).
const MAX_BODY: usize = 64 * 1024;

/// Every route: pages, server functions, the JSON API, the WebSocket and the bundle.
pub fn router(state: &AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    // The bundle as the build left it, compressed once at build time when it can be
    // (scripts/precompress.mjs); the compression layer skips what is already compressed.
    let pkg = ServeDir::new(state.cfg.server.site_root.join("pkg"))
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .route(paths::WS, get(ws::upgrade))
        .nest_service("/pkg", pkg)
        .merge(accounts::router())
        .merge(conversations::router())
        .merge(contacts::router())
        .merge(profile::router())
        // Pages, and the server functions (which get the state as Leptos context).
        .leptos_routes(state, routes, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        // Picture uploads are the one large body; that router sets its own limit.
        .merge(profile::picture_router())
        .layer(middleware::from_fn(server_fns::server_fn_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::pages,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::csrf,
        ))
        .layer(middleware::from_fn(security::headers))
        .layer(middleware::from_fn(error::log_errors))
        .layer(CompressionLayer::new())
        .with_state(state.clone())
}
