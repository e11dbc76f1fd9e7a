//! Integration tests: the real server on port 0 with a temp database, driven over HTTP and
//! real WebSocket connections.

mod admin;
mod analytics;
mod auth;
mod bots;
mod data;
mod deletion;
mod delivery;
mod door;
mod encryption;
mod errors;
mod faults;
mod files;
mod groups;
mod guests;
mod helpers;
mod limits;
mod migrations;
mod nudge;
mod ops;
mod pictures;
mod presence;
mod security;
mod text;
mod typing;
