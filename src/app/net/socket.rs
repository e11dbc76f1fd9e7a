//! One WebSocket per tab (gloo-net), carrying every conversation. A task owns the socket:
//! it reads server frames and hands them to the reducer, and writes what the page queues
//! through [`send`]. When the socket closes, the page reconnects after 0.5 s, 1 s, 2 s ...
//! up to 30 s, each with ±50 % jitter, unless the session ended (4001), which asks for the
//! password instead ("Retry now" skips the wait). The reducer syncs every conversation from
//! the last sequence number this page saw and resends what was not acknowledged, with the
//! same ids.
//!
//! A connection can also die without closing (a network that goes away sends no FIN): the
//! task pings the server when it has heard nothing for [`PING_AFTER_MS`] and gives the
//! socket up when it has heard nothing for [`SILENT_MS`], opening or open, then reconnects.

use super::{http, session_ended};
use crate::app::{
    reducer,
    state::{Link, SocketHandle, Ui},
};
use crate::protocol::{close, tagged, ClientFrame, ServerFrame};
use futures_channel::mpsc::{unbounded, UnboundedReceiver};
use futures_core::Stream;
use futures_sink::Sink;
use gloo_net::websocket::{futures::WebSocket, Message, State, WebSocketError};
use leptos::prelude::*;
use std::{pin::Pin, task::Poll, time::Duration};

/// Heard nothing for this long (ms): ask the server (`ping`; it answers `pong`).
const PING_AFTER_MS: f64 = 4_000.0;
/// Heard nothing for this long (ms), not even the answer to a ping, or a socket still not
/// open: the connection is dead, whatever the browser thinks.
const SILENT_MS: f64 = 9_000.0;

/// Opens the socket, replacing any other this page has.
pub fn connect(ui: Ui) {
    close(ui);
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return;
    };
    let scheme = match location.protocol().ok().as_deref() {
        Some("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    let ws = match WebSocket::open(&format!(
        "{scheme}://{host}{}",
        crate::protocol::http::paths::WS
    )) {
        Ok(ws) => ws,
        Err(_) => return schedule_reconnect(ui),
    };
    let (out, queued) = unbounded();
    ui.net
        .update_value(|n| n.socket = Some(SocketHandle { out, ready: false }));
    ui.link.set(Link::Connecting);
    leptos::task::spawn_local(own(ui, ws, queued));
}

/// Closes this page's socket, if it has one (its task ends without reconnecting).
pub fn close(ui: Ui) {
    // Dropping the way out ends the task, which closes the socket.
    ui.net.update_value(|n| n.socket = None);
}

/// Queues a frame for the open socket; whether it was queued (false: no socket, or not
/// ready yet). Queued is not delivered: a frame still queued when the socket drops is lost
/// with it. Nothing depends on more: a message stays pending until acknowledged and is sent
/// again after the next `hello`, a read mark is sent again with the next one, and typing
/// is only ever a hint.
pub fn send(ui: Ui, frame: &ClientFrame) -> bool {
    let Ok(text) = serde_json::to_string(frame) else {
        return false;
    };
    ui.net
        .try_with_value(|n| match &n.socket {
            Some(h) if h.ready => h.out.unbounded_send(text).is_ok(),
            _ => false,
        })
        .unwrap_or(false)
}

/// What the task waits for.
enum Next {
    Frame(Option<Result<Message, WebSocketError>>),
    Out(Option<String>),
    /// A second went by (the heartbeat looks at how long the socket has been silent).
    Tick,
}

/// Clears the task's interval timer when the task ends, however it ends.
struct Ticking(Option<IntervalHandle>);

impl Drop for Ticking {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.clear();
        }
    }
}

/// The socket's task: reads and writes until the socket closes, goes silent, or the page
/// drops it.
async fn own(ui: Ui, mut ws: WebSocket, mut queued: UnboundedReceiver<String>) {
    let (tick, mut ticks) = unbounded::<()>();
    let _ticking = Ticking(
        set_interval_with_handle(
            move || {
                let _ = tick.unbounded_send(());
            },
            Duration::from_secs(1),
        )
        .ok(),
    );
    let mut heard = js_sys::Date::now();
    let mut pinged = false;
    loop {
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = Pin::new(&mut queued).poll_next(cx) {
                return Poll::Ready(Next::Out(out));
            }
            if let Poll::Ready(Some(())) = Pin::new(&mut ticks).poll_next(cx) {
                return Poll::Ready(Next::Tick);
            }
            Pin::new(&mut ws).poll_next(cx).map(Next::Frame)
        })
        .await;
        if let Next::Frame(Some(Ok(_))) = next {
            heard = js_sys::Date::now();
            pinged = false;
        }
        match next {
            Next::Tick => {
                let quiet = js_sys::Date::now() - heard;
                if quiet > SILENT_MS {
                    leptos::logging::warn!("the connection went silent; reconnecting");
                    let _ = ws.close(None, None);
                    return closed(ui, 1006);
                }
                if quiet > PING_AFTER_MS && !pinged && matches!(ws.state(), State::Open) {
                    pinged = true;
                    let ping = r#"{"t":"ping"}"#.to_owned();
                    let _ = Pin::new(&mut ws).start_send(Message::Text(ping));
                }
            }
            Next::Out(Some(text)) => {
                if matches!(ws.state(), State::Open) {
                    let _ = Pin::new(&mut ws).start_send(Message::Text(text));
                }
            }
            // The page closed it (or opened another).
            Next::Out(None) => {
                let _ = ws.close(None, None);
                return;
            }
            Next::Frame(Some(Ok(Message::Text(text)))) => {
                match tagged::from_str::<ServerFrame>("t", &text) {
                    Ok(frame) => on_frame(ui, frame),
                    Err(e) => leptos::logging::warn!("unreadable frame: {e}"),
                }
            }
            Next::Frame(Some(Ok(Message::Bytes(_)))) => {}
            Next::Frame(Some(Err(WebSocketError::ConnectionClose(ev)))) => {
                return closed(ui, ev.code);
            }
            Next::Frame(Some(Err(_))) => {} // an error event; the close follows
            Next::Frame(None) => return closed(ui, 1006),
        }
    }
}

fn on_frame(ui: Ui, frame: ServerFrame) {
    if matches!(frame, ServerFrame::Hello { .. }) {
        let idle = ui
            .net
            .try_update_value(|n| {
                n.attempt = 0;
                if let Some(h) = &mut n.socket {
                    h.ready = true;
                }
                n.idle
            })
            .unwrap_or(false);
        ui.link.set(Link::Online);
        // A reconnect after the tab went idle: tell the new socket too.
        if idle {
            send(ui, &ClientFrame::Idle { idle: true });
        }
    }
    let effects = ui
        .model
        .try_update(|m| reducer::reduce(m, frame))
        .unwrap_or_default();
    super::run(ui, effects);
}

fn closed(ui: Ui, code: u16) {
    ui.net.update_value(|n| n.socket = None);
    if code == close::SESSION_ENDED {
        session_ended(ui);
    } else {
        schedule_reconnect(ui);
    }
}

/// Reconnects after 0.5 s, 1 s, 2 s ... up to 30 s, each with ±50 % jitter, so that a
/// restarted server is not hit by every client at the same instant.
fn schedule_reconnect(ui: Ui) {
    let (attempt, token) = ui
        .net
        .try_update_value(|n| {
            n.attempt = n.attempt.saturating_add(1);
            n.retry_token = n.retry_token.wrapping_add(1);
            (n.attempt, n.retry_token)
        })
        .unwrap_or((1, 0));
    let base = (500.0 * 2f64.powi(attempt.min(6) as i32 - 1)).min(30_000.0);
    let delay = base * (0.5 + js_sys::Math::random());
    ui.link.set(Link::Retrying((delay / 1000.0).ceil() as u32));
    set_timeout(
        move || {
            // "Retry now" (or a later schedule) took over.
            if ui.net.try_with_value(|n| n.retry_token) != Some(token) {
                return;
            }
            reconnect(ui);
        },
        Duration::from_millis(delay as u64),
    );
}

/// "Retry now": reconnects at once instead of waiting for the scheduled attempt.
pub fn retry_now(ui: Ui) {
    ui.net
        .update_value(|n| n.retry_token = n.retry_token.wrapping_add(1));
    ui.link.set(Link::Connecting);
    reconnect(ui);
}

fn reconnect(ui: Ui) {
    // A refused upgrade looks like any dropped connection (1006) to the page; if the
    // session ended while we were away, say so instead of retrying for ever.
    leptos::task::spawn_local(async move {
        match http::session_alive().await {
            Err(http::Ended) => session_ended(ui),
            Ok(()) => connect(ui),
        }
    })
}
