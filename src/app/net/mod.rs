//! The page's link to the server: the WebSocket (`socket.rs`: reconnects with backoff, syncs
//! from the last sequence number seen, resends what was not acknowledged), typed HTTP calls
//! (`http.rs`, through gloo-net), and what keeps the session alive while the user is active
//! (refresh, idle detection). Compiled for the server too, where nothing of it ever runs:
//! the island only renders there.

pub mod http;
pub mod socket;

use super::{
    reducer::{self, Effect, Sound},
    sound,
    state::Ui,
};
use crate::protocol::ClientFrame;
use leptos::prelude::*;
use std::time::Duration;
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};

/// Least time between two `read` frames for one conversation.
const READ_EVERY: Duration = Duration::from_secs(1);
/// How often the session is refreshed while the user is active.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Inactivity after which this tab tells the server its user is idle (contacts then see
/// Away, if every tab of the user is idle and they chose Online).
const IDLE_AFTER_MS: f64 = 5.0 * 60.0 * 1000.0;
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(10);

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
    ui.muted.set(sound::stored_muted());
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        for event in ["keydown", "pointerdown", "pointermove", "wheel"] {
            let mark = Closure::<dyn FnMut(JsValue)>::new(move |_| on_activity(ui));
            let _ = doc.add_event_listener_with_callback(event, mark.as_ref().unchecked_ref());
            mark.forget(); // lives as long as the page
        }
    }
    let _ = set_interval_with_handle(move || check_idle(ui), IDLE_CHECK_EVERY);
    // Whether the tab is in the background: messages then also toast, count in the title
    // and (if allowed) show a notification of the system.
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        let seen = move || {
            let hidden = web_sys::window()
                .and_then(|w| w.document())
                .is_some_and(|d| d.hidden());
            ui.model.update(|m| {
                m.hidden = hidden;
                if !hidden {
                    m.unseen_while_hidden = 0;
                }
            });
        };
        seen();
        let on_change = Closure::<dyn FnMut(JsValue)>::new(move |_| seen());
        let _ = doc.add_event_listener_with_callback(
            "visibilitychange",
            on_change.as_ref().unchecked_ref(),
        );
        on_change.forget(); // lives as long as the page
    }
    if let Some(window) = web_sys::window() {
        let flush = Closure::<dyn FnMut(JsValue)>::new(move |_| flush_reads(ui));
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
    // The dialog starts clean: no earlier notice or failed attempt shows in it.
    ui.resume_error.set(None);
    ui.model.update(|m| m.notice = None);
    ui.link.set(super::state::Link::Ended);
    socket::close(ui);
}

/// Carries out what the reducer asked for.
pub fn run(ui: Ui, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::Send(frame) => {
                socket::send(ui, &frame);
            }
            Effect::Play(s) => play(ui, s),
            Effect::MarkRead(conv) => mark_read(ui, conv),
            Effect::Notify {
                title,
                body,
                user,
                picture,
            } => notify_system(&title, &body, user, picture.as_deref()),
            Effect::Later(ms, what) => set_timeout(
                move || {
                    let more = ui
                        .model
                        .try_update(|m| reducer::later(m, what))
                        .unwrap_or_default();
                    run(ui, more);
                },
                Duration::from_millis(u64::from(ms)),
            ),
        }
    }
}

/// A notification of the system, if the user allowed them (see `WindowControls`).
fn notify_system(title: &str, body: &str, user: i64, picture: Option<&str>) {
    if web_sys::Notification::permission() != web_sys::NotificationPermission::Granted {
        return;
    }
    let options = web_sys::NotificationOptions::new();
    options.set_body(body);
    options.set_icon(&crate::protocol::picture_url(user, picture));
    // One per conversation partner: a new message replaces their previous one.
    options.set_tag(&format!("messenger-{user}"));
    let _ = web_sys::Notification::new_with_options(title, &options);
}

/// Plays a sound unless the user muted them.
fn play(ui: Ui, s: Sound) {
    if !ui.muted.get_untracked() {
        sound::play(s);
    }
}

/// Tells the server this user has read a conversation up to the latest message this page
/// knows of: at once, then at most one more frame per conversation per second. The marks
/// are the network's bookkeeping (`Net::reads`): sending one changes nothing on the page.
pub fn mark_read(ui: Ui, conv: i64) {
    let Some((latest, server_had)) = ui
        .model
        .with_untracked(|m| m.conv(conv).map(|c| (c.latest, c.last_read)))
    else {
        return;
    };
    let send = ui.net.try_update_value(|n| {
        let mark = n.read_mark(conv, server_had);
        if mark.scheduled {
            return None;
        }
        mark.scheduled = true;
        Some(latest > mark.sent)
    });
    let Some(Some(send)) = send else {
        return;
    };
    // Counted as sent only once the socket took it (offline, the next mark carries it).
    if send && socket::send(ui, &ClientFrame::Read { conv, seq: latest }) {
        ui.net.update_value(|n| {
            if let Some(mark) = n.reads.get_mut(&conv) {
                mark.sent = mark.sent.max(latest);
            }
        });
    }
    set_timeout(
        move || {
            ui.net.update_value(|n| {
                if let Some(mark) = n.reads.get_mut(&conv) {
                    mark.scheduled = false;
                }
            });
            let again = ui.model.with_untracked(|m| {
                m.is_open(conv) && m.conv(conv).is_some_and(|c| c.latest > latest)
            });
            if again {
                mark_read(ui, conv);
            }
        },
        READ_EVERY,
    );
}

/// Sends the read marks still waiting for their turn (the page is going away).
pub fn flush_reads(ui: Ui) {
    let latest: Vec<(i64, i64, i64)> = ui.model.with_untracked(|m| {
        m.convs
            .iter()
            .filter(|c| m.is_open(c.id))
            .map(|c| (c.id, c.latest, c.last_read))
            .collect()
    });
    let due: Vec<(i64, i64)> = ui
        .net
        .try_update_value(|n| {
            latest
                .into_iter()
                .filter_map(|(conv, latest, server_had)| {
                    let mark = n.read_mark(conv, server_had);
                    (latest > mark.sent).then(|| {
                        mark.sent = latest;
                        (conv, latest)
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    for (conv, seq) in due {
        socket::send(ui, &ClientFrame::Read { conv, seq });
    }
}
