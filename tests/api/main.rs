//! Integration tests: the real server on port 0 with a temp database, driven over HTTP and
//! real WebSocket connections.

mod admin;
mod auth;
mod deletion;
mod delivery;
mod helpers;
mod nudge;
mod presence;
mod security;
mod typing;
