//! Messenger: a self-hostable, real-time messenger. The library holds everything; `main.rs`
//! only parses the configuration and runs the server.
//!
//! - [`protocol`]: the contract between server and clients (frames, HTTP bodies and paths,
//!   validated values), compiled on both sides.
//! - [`app`]: the pages, the island and its parts, and the server functions.
//! - `server` (feature `ssr`): everything that runs only on the server.

// The island's view type nests deeper than the default limit allows.
#![recursion_limit = "256"]

pub mod app;
pub mod protocol;
#[cfg(feature = "ssr")]
pub mod server;

/// Entry point the island loader calls in the browser after the WASM module is instantiated.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
