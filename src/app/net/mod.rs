//! The page's link to the server: the WebSocket (`socket.rs`: reconnects with backoff, syncs
//! from the last sequence number seen, resends what was not acknowledged), typed HTTP calls
//! (`http.rs`, through gloo-net), and what keeps the session alive while the user is active
//! (refresh, idle detection). Compiled for the server too, where nothing of it ever runs:
//! the island only renders there.

pub mod http;
pub mod socket;

use super::{actions, state::Ui};
use crate::protocol::ClientFrame;
use leptos::prelude::*;
use std::{collections::HashMap, time::Duration};
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};

/// How often the session is refreshed while the user is active.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Inactivity after which this tab tells the server its user is idle (contacts then see
/// Away, if every tab of the user is idle and they chose Online).
const IDLE_AFTER_MS: f64 = 5.0 * 60.0 * 1000.0;
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(10);

/// The network's bookkeeping for this page.
#[derive(Default)]
pub struct Net {
    /// The open connection's way out, if there is one (see `socket.rs`).
    pub socket: Option<socket::Handle>,
    /// Consecutive failed connection attempts, for the backoff.
    pub attempt: u32,
    /// Whether the user did something since the last session refresh.
    pub active: bool,
    /// When the user last did something here (milliseconds since the epoch).
    pub last_activity: f64,
    /// Whether this tab told the server its user is idle.
    pub idle: bool,
    /// When this tab last sent "typing" per conversation (ms since the epoch), and a counter
    /// bumped on every keystroke so that only the last one's timer sends "stopped".
    pub typing_sent: HashMap<i64, f64>,
    pub keystrokes: u64,
    /// Set once [`start`] ran.
    pub started: bool,
}

/// Starts the connection, the session refresher and the idle detection (once per page).
pub fn start(ui: Ui) {
    let first = ui
        .net
        .try_update_value(|n| !std::mem::replace(&mut n.started, true));
    if first != Some(true) {
        return;
    }
    ui.net
        .update_value(|n| n.last_activity = js_sys::Date::now());
    ui.muted.set(actions::stored_muted());
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        for event in ["keydown", "pointerdown", "pointermove", "wheel"] {
            let mark = Closure::<dyn FnMut(JsValue)>::new(move |_| on_activity(ui));
            let _ = doc.add_event_listener_with_callback(event, mark.as_ref().unchecked_ref());
            mark.forget(); // lives as long as the page
        }
    }
    let _ = set_interval_with_handle(move || check_idle(ui), IDLE_CHECK_EVERY);
    if let Some(window) = web_sys::window() {
        let flush = Closure::<dyn FnMut(JsValue)>::new(move |_| actions::flush_reads(ui));
        let _ = window.add_event_listener_with_callback("pagehide", flush.as_ref().unchecked_ref());
        flush.forget(); // lives as long as the page
    }
    let _ = set_interval_with_handle(
        move || {
            let active = ui
                .net
                .try_update_value(|n| std::mem::take(&mut n.active))
                .unwrap_or(false);
            if active {
                leptos::task::spawn_local(refresh_session(ui));
            }
        },
        REFRESH_EVERY,
    );
    socket::connect(ui);
}

fn on_activity(ui: Ui) {
    let was_idle = ui.net.try_update_value(|n| {
        n.active = true;
        n.last_activity = js_sys::Date::now();
        std::mem::take(&mut n.idle)
    });
    if was_idle == Some(true) {
        socket::send(ui, &ClientFrame::Idle { idle: false });
    }
}

fn check_idle(ui: Ui) {
    let now = js_sys::Date::now();
    let went_idle = ui.net.try_update_value(|n| {
        let idle = now - n.last_activity >= IDLE_AFTER_MS;
        let changed = idle && !n.idle;
        n.idle |= idle;
        changed
    });
    if went_idle == Some(true) {
        socket::send(ui, &ClientFrame::Idle { idle: true });
    }
}

/// Slides the session's idle expiry; a refusal means it already ended.
async fn refresh_session(ui: Ui) {
    if http::refresh_session().await == Err(http::Ended) {
        session_ended(ui);
    }
}

/// The session ended: the socket is closed and the page asks for the password; drafts and
/// unsent messages stay where they are.
pub fn session_ended(ui: Ui) {
    ui.link.set(super::state::Link::Ended);
    socket::close(ui);
}
