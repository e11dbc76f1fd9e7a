//! The contract between the server and every client (the browser island, the load tool,
//! third-party clients and bots): WebSocket frames, HTTP bodies, paths and errors, and the
//! validated values they carry. Compiled into the server and into the WASM bundle alike, so
//! a renamed field fails to compile on both sides instead of failing in the browser.
//!
//! `docs/PROTOCOL.md` is the prose version of this module; keep the two in step.

mod frames;
pub mod http;
mod model;
pub mod tagged;
mod values;

pub use frames::*;
pub use http::{ApiError, ApiErrorCode};
pub use model::*;
pub use values::*;

/// Longest message body, in Unicode scalar values (characters), as in Messenger 2009.
pub const MAX_BODY_CHARS: usize = 2048;
/// Largest WebSocket message (and frame) the server accepts, in bytes. A maximal body of
/// 2048 four-byte characters JSON-escaped fits with room to spare; anything bigger is abuse.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Longest client-chosen message id.
pub const MAX_CLIENT_ID_LEN: usize = 64;
/// The body of a `delete` message that erases every earlier text and nudge of its sender
/// in the conversation (their account was deleted).
pub const ERASE_ALL: &str = "all";
/// Most messages one history page returns.
pub const HISTORY_PAGE_MAX: u32 = 100;
/// Sends a connection may have waiting for their commit before the server stops reading it.
pub const MAX_IN_FLIGHT: usize = 64;
