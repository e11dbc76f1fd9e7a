//! Messenger: a self-hostable, real-time messenger. The library holds everything; `main.rs`
//! only parses the configuration and runs the server.

// The island's view type nests deeper than the default limit allows.
#![recursion_limit = "256"]

pub mod app;
pub mod protocol;
#[cfg(feature = "ssr")]
pub mod server;
pub mod tagged;

/// Entry point the island loader calls in the browser after the WASM module is instantiated.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
