//! Server-only code (feature `ssr`): configuration, startup, the store and its single
//! writer, the fan-out hub, the WebSocket connection task, HTTP API and security layers, and
//! the administration commands.

pub mod admin;
pub mod api;
pub mod auth;
pub mod bots;
pub mod config;
pub mod contacts;
pub mod conversations;
pub mod error;
pub mod hub;
pub mod pictures;
pub mod presence;
pub mod security;
pub mod startup;
pub mod state;
pub mod store;
pub mod writer;
pub mod ws;
