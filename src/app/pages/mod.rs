//! The pages: the sign-in window (server-rendered forms, no WASM) and the main window, which
//! is the one island.

pub mod account;
pub mod admin;
pub mod signin;
