//! The browser side of the live connection (features `hydrate` and `csr`): one WebSocket per tab that
//! reconnects with backoff and jitter, syncs every conversation from the last sequence number
//! it saw, resends unacknowledged messages with their original ids, refreshes the session
//! while the user is active, and asks for the password when the session ends.

use super::{
    sound::{self, Sound},
    state::{shown_name, Conv, Line, Link, Pending, Toast, Typist, Ui},
};
use crate::protocol::{
    close, Body, ClientFrame, ContactState, ConversationSummary, ErrorCode, MessageKind,
    ServerFrame, Status, TYPING_REPEAT_MS, TYPING_SHOWS_FOR_MS,
};
use leptos::{prelude::*, task::spawn_local};
use std::{cell::RefCell, time::Duration};
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// Messages of a conversation loaded when this page first sees it; older ones load on scroll.
const FIRST_LOAD: i64 = 30;
/// Older messages loaded per scroll to the top of a conversation's history.
const HISTORY_PAGE: u32 = 50;
/// How often the session is refreshed while the user is active.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

struct Client {
    ui: Ui,
    ws: Option<WebSocket>,
    /// Consecutive failed connection attempts, for the backoff.
    attempt: u32,
    /// Whether the user did something since the last session refresh.
    active: bool,
    /// When the user last did something here (milliseconds since the epoch).
    last_activity: f64,
    /// Whether this tab told the server its user is idle.
    idle: bool,
    /// Ids for toasts and typing entries.
    toasts: u64,
    /// When this tab last sent "typing" per conversation (ms since the epoch), and a counter
    /// bumped on every keystroke so that only the last one's timer sends "stopped".
    typing_sent: std::collections::HashMap<i64, f64>,
    keystrokes: u64,
    /// Keeps the current socket's callbacks alive.
    callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

thread_local! {
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

fn with_client<R>(f: impl FnOnce(&mut Client) -> R) -> Option<R> {
    CLIENT.with(|c| c.borrow_mut().as_mut().map(f))
}

/// Starts the connection and the session refresher (once per page).
pub fn start(ui: Ui) {
    let first = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_some() {
            return false;
        }
        *c = Some(Client {
            ui,
            ws: None,
            attempt: 0,
            active: false,
            last_activity: js_sys::Date::now(),
            idle: false,
            toasts: 0,
            typing_sent: Default::default(),
            keystrokes: 0,
            callbacks: Vec::new(),
        });
        true
    });
    if !first {
        return;
    }
    ui.muted.set(stored_muted());
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        for event in ["keydown", "pointerdown", "pointermove", "wheel"] {
            let mark = Closure::<dyn FnMut(JsValue)>::new(move |_| on_activity());
            let _ = doc.add_event_listener_with_callback(event, mark.as_ref().unchecked_ref());
            mark.forget(); // lives as long as the page
        }
    }
    let _ = set_interval_with_handle(check_idle, IDLE_CHECK_EVERY);
    if let Some(window) = web_sys::window() {
        let flush = Closure::<dyn FnMut(JsValue)>::new(move |_| flush_reads());
        let _ = window.add_event_listener_with_callback("pagehide", flush.as_ref().unchecked_ref());
        flush.forget(); // lives as long as the page
    }
    let _ = set_interval_with_handle(
        || {
            let active = with_client(|c| std::mem::take(&mut c.active)).unwrap_or(false);
            if active {
                spawn_local(refresh_session());
            }
        },
        REFRESH_EVERY,
    );
    connect();
}

/// Inactivity after which this tab tells the server its user is idle (contacts then see
/// Away, if every tab of the user is idle and they chose Online).
const IDLE_AFTER: f64 = 5.0 * 60.0 * 1000.0;
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(10);

fn on_activity() {
    let was_idle = with_client(|c| {
        c.active = true;
        c.last_activity = js_sys::Date::now();
        std::mem::take(&mut c.idle)
    });
    if was_idle == Some(true) {
        send_frame(&ClientFrame::Idle { idle: false });
    }
}

fn check_idle() {
    let now = js_sys::Date::now();
    let went_idle = with_client(|c| {
        let idle = now - c.last_activity >= IDLE_AFTER;
        let changed = idle && !c.idle;
        c.idle |= idle;
        changed
    });
    if went_idle == Some(true) {
        send_frame(&ClientFrame::Idle { idle: true });
    }
}

const MUTED_KEY: &str = "messenger.muted";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn stored_muted() -> bool {
    storage()
        .and_then(|s| s.get_item(MUTED_KEY).ok().flatten())
        .is_some_and(|v| v == "1")
}

/// Turns sounds off or on, remembered in this browser.
pub fn set_muted(ui: Ui, muted: bool) {
    ui.muted.set(muted);
    if let Some(s) = storage() {
        let _ = s.set_item(MUTED_KEY, if muted { "1" } else { "0" });
    }
}

fn connect() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    let scheme = if location.protocol().ok().as_deref() == Some("https:") {
        "wss"
    } else {
        "ws"
    };
    let host = location.host().unwrap_or_default();
    let ws = match WebSocket::new(&format!("{scheme}://{host}/ws")) {
        Ok(ws) => ws,
        Err(_) => return schedule_reconnect(),
    };
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        with_client(|c| {
            c.attempt = 0;
            c.ui.link.set(Link::Online);
        });
    });
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Some(text) = ev.unchecked_into::<MessageEvent>().data().as_string() else {
            return;
        };
        match crate::tagged::from_str::<ServerFrame>("t", &text) {
            Ok(frame) => on_frame(frame),
            Err(e) => leptos::logging::warn!("unreadable frame: {e}"),
        }
    });
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let code = ev.unchecked_into::<CloseEvent>().code();
        let ui = with_client(|c| {
            c.ws = None;
            c.ui
        });
        if code == close::SESSION_ENDED {
            if let Some(ui) = ui {
                ui.link.set(Link::Ended);
            }
        } else {
            schedule_reconnect();
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    with_client(|c| {
        if let Some(old) = c.ws.take() {
            old.set_onclose(None);
            let _ = old.close();
        }
        c.ws = Some(ws);
        c.callbacks = vec![on_open, on_message, on_close];
        c.ui.link.set(Link::Connecting);
    });
}

/// Reconnects after 0.5 s, 1 s, 2 s ... up to 30 s, each with ±50 % jitter, so that a
/// restarted server is not hit by every client at the same instant.
fn schedule_reconnect() {
    let Some((attempt, ui)) = with_client(|c| {
        c.attempt = c.attempt.saturating_add(1);
        (c.attempt, c.ui)
    }) else {
        return;
    };
    let base = (500.0 * 2f64.powi(attempt.min(6) as i32 - 1)).min(30_000.0);
    let delay = base * (0.5 + js_sys::Math::random());
    ui.link.set(Link::Retrying((delay / 1000.0).ceil() as u32));
    set_timeout(
        move || {
            // A refused upgrade looks like any dropped connection (1006) to the page; if the
            // session ended while we were away, say so instead of retrying for ever.
            spawn_local(async move {
                match session_status().await {
                    Some(401) => ui.link.set(Link::Ended),
                    _ => connect(),
                }
            })
        },
        Duration::from_millis(delay as u64),
    );
}

/// The status of `GET /api/session` (None: the server could not be reached).
async fn session_status() -> Option<u16> {
    let window = web_sys::window()?;
    let response = wasm_bindgen_futures::JsFuture::from(window.fetch_with_str("/api/session"))
        .await
        .ok()?;
    Some(response.unchecked_into::<web_sys::Response>().status())
}

fn send_frame(frame: &ClientFrame) -> bool {
    let ws = with_client(|c| c.ws.clone()).flatten();
    match (ws, serde_json::to_string(frame)) {
        (Some(ws), Ok(text)) if ws.ready_state() == WebSocket::OPEN => {
            ws.send_with_str(&text).is_ok()
        }
        _ => false,
    }
}

fn ui() -> Option<Ui> {
    with_client(|c| c.ui)
}

fn on_frame(frame: ServerFrame) {
    let Some(ui) = ui() else { return };
    let me = ui.me.with_value(|m| m.id);
    match frame {
        ServerFrame::Hello {
            me: who,
            conversations,
            rooms,
            status,
            personal_message,
            contacts,
            groups,
            picture,
            rooms_total,
            ..
        } => {
            ui.display_name.set(who.display_name);
            set_if_changed(ui.picture, picture);
            ui.status.set(status);
            ui.personal_message.set(personal_message);
            ui.contacts.set(contacts);
            ui.groups.set(groups);
            ui.ready.set_value(true);
            // A reconnect after the tab went idle: tell the new socket too.
            if with_client(|c| c.idle).unwrap_or(false) {
                send_frame(&ClientFrame::Idle { idle: true });
            }
            ui.rooms.set(rooms);
            ui.rooms_total.set(rooms_total);
            for s in &conversations {
                let conv = ensure_conv(ui, s);
                sync(conv, s.last_seq);
            }
            resend_pending(ui);
        }
        ServerFrame::ConvAdded { conversation } => {
            let known = ui.conv(conversation.id).is_some();
            let conv = ensure_conv(ui, &conversation);
            if !known {
                sync(conv, conversation.last_seq);
            }
            ui.rooms.update(|rooms| {
                if let Some(r) = rooms.iter_mut().find(|r| r.id == conversation.id) {
                    r.joined = true;
                }
            });
        }
        ServerFrame::ConvRemoved { conv } => {
            ui.close_window(conv);
            ui.convs.update(|cs| cs.retain(|c| c.id != conv));
        }
        ServerFrame::Msg(m) => {
            let Some(conv) = ui.conv(m.conv) else { return };
            // Before the first `synced` of this page the messages are history being loaded,
            // not news: they neither open windows nor count as unread.
            let news = conv.synced_upto.get_value().is_some();
            if news {
                conv.synced_upto
                    .update_value(|s| *s = s.map(|s| s.max(m.seq)));
            }
            if m.from == me {
                conv.pending
                    .update(|p| p.retain(|x| x.client_id != m.client_id));
            }
            let mine = m.from == me;
            conv.latest.update_value(|l| *l = (*l).max(m.seq));
            if news && ui.open.with_untracked(|o| o.contains(&conv.id)) {
                mark_read(conv.id);
            }
            // A message ends its sender's "writing" line.
            conv.typing.update(|t| t.retain(|x| x.user != m.from));
            if m.kind == MessageKind::Delete {
                if let Ok(target) = m.body.parse::<i64>() {
                    conv.lines.update(|lines| {
                        if let Some(l) = lines.iter_mut().find(|l| l.seq == target) {
                            l.kind = MessageKind::Deleted;
                            l.body.clear();
                        }
                    });
                }
            }
            conv.membership(&m, me);
            conv.insert([Line::from_view(&m, me)]);
            if news && m.kind == MessageKind::Nudge {
                // Both sides shake and buzz, as in Messenger; the window opens for it.
                ui.open_window(conv.id);
                conv.shaking.set(true);
                conv.nudges.update(|n| *n += 1);
                set_timeout(move || conv.shaking.set(false), SHAKE_FOR);
                play(ui, Sound::Nudge);
            } else if news && !mine && m.kind == MessageKind::Text {
                play(ui, Sound::Message);
                let open = ui.open.with_untracked(|o| o.contains(&conv.id));
                if !open && conv.kind != crate::protocol::ConversationKind::Room {
                    ui.open_window(conv.id); // a new message opens its window, as in Messenger
                } else if !open {
                    conv.unread.update(|n| *n += 1);
                }
            }
        }
        ServerFrame::Synced { conv, last_seq } => {
            if let Some(c) = ui.conv(conv) {
                c.synced_upto.set_value(Some(last_seq));
            }
        }
        ServerFrame::Resync { conv, .. } => {
            if let Some(c) = ui.conv(conv) {
                let after = c.synced_upto.get_value().unwrap_or(0);
                send_frame(&ClientFrame::Sync { conv, after });
            }
        }
        ServerFrame::Ack {
            conv, client_id, ..
        } => {
            if let Some(c) = ui.conv(conv) {
                c.pending.update(|p| p.retain(|x| x.client_id != client_id));
            }
        }
        ServerFrame::Error {
            code,
            message,
            conv,
            client_id,
        } => {
            let target = conv.and_then(|id| ui.conv(id)).zip(client_id);
            match (code, target) {
                (ErrorCode::NudgeLimited | ErrorCode::CannotDelete, Some((c, _))) => {
                    c.notice.set(Some(message));
                    set_timeout(move || c.notice.set(None), Duration::from_secs(5));
                }
                (ErrorCode::RateLimited | ErrorCode::Internal, Some((c, id)))
                    if !id.starts_with(NUDGE_ID_PREFIX) =>
                {
                    // Transient: send it again shortly, with the same id.
                    set_timeout(move || resend_one(c, &id), Duration::from_secs(1));
                }
                (_, Some((c, id))) => c.pending.update(|p| {
                    if let Some(x) = p.iter_mut().find(|x| x.client_id == id) {
                        x.failed = Some(message.clone());
                    }
                }),
                (_, None) => ui.notice.set(Some(message)),
            }
        }
        ServerFrame::Contact { contact } => {
            let name = shown_name(&contact).to_owned();
            let (state, status) = (contact.state, contact.presence.status);
            let blocked = contact.blocked;
            let before = ui.upsert_contact(contact);
            match before {
                None if state == ContactState::Incoming && !blocked => {
                    notify(
                        ui,
                        format!("{name} wants to add you as a contact."),
                        Sound::Request,
                    );
                }
                // Only a contact who was already accepted "signs in" (not one just accepted).
                Some(b) if b.state == ContactState::Accepted && state == b.state => {
                    signed_in_news(ui, &name, Some(b.presence.status), status);
                }
                _ => {}
            }
        }
        ServerFrame::ContactRemoved { user } => ui.remove_contact(user),
        ServerFrame::Presence { user, presence } => {
            let name = presence.display_name.clone();
            let status = presence.status;
            let before = ui.set_presence(user, presence);
            signed_in_news(ui, &name, before, status);
        }
        ServerFrame::MyStatus {
            status,
            personal_message,
            display_name,
            picture,
        } => {
            set_if_changed(ui.picture, picture);
            set_if_changed(ui.status, status);
            set_if_changed(ui.personal_message, personal_message);
            set_if_changed(ui.display_name, display_name);
        }
        ServerFrame::Groups { groups } => ui.groups.set(groups),
        ServerFrame::Read { conv, seq } => {
            // Read in another tab (or this one): nothing before `seq` is unread any more.
            if let Some(c) = ui.conv(conv) {
                if seq >= c.latest.get_value() {
                    c.unread.set(0);
                }
            }
        }
        ServerFrame::Typing {
            conv,
            user,
            name,
            active,
        } => {
            let Some(c) = ui.conv(conv) else { return };
            if user == me {
                return;
            }
            c.typing.update(|t| t.retain(|x| x.user != user));
            if active {
                let token = with_client(|c| {
                    c.toasts += 1;
                    c.toasts
                })
                .unwrap_or_default();
                c.typing.update(|t| t.push(Typist { user, name, token }));
                set_timeout(
                    move || c.typing.update(|t| t.retain(|x| x.token != token)),
                    Duration::from_millis(TYPING_SHOWS_FOR_MS),
                );
            }
        }
    }
}

/// Sets a signal only to a new value, so that views depending on it do not re-run for nothing.
fn set_if_changed<T: PartialEq + Send + Sync + 'static>(signal: RwSignal<T>, value: T) {
    if signal.with_untracked(|v| *v != value) {
        signal.set(value);
    }
}

/// "<name> has just signed in", with its sound, when a contact goes from offline to online
/// after this page loaded its list.
fn signed_in_news(ui: Ui, name: &str, before: Option<Status>, now: Status) {
    if ui.ready.get_value() && before == Some(Status::Offline) && now != Status::Offline {
        notify(ui, format!("{name} has just signed in."), Sound::SignIn);
    }
}

/// How long a toast stays.
const TOAST_FOR: Duration = Duration::from_secs(6);

/// Shows a toast for a few seconds and plays its sound (unless muted).
fn notify(ui: Ui, text: String, sound: Sound) {
    let id = with_client(|c| {
        c.toasts += 1;
        c.toasts
    })
    .unwrap_or_default();
    ui.toasts.update(|t| {
        t.push(Toast { id, text });
        // A burst (a whole list signing in) keeps only the latest few on screen.
        let extra = t.len().saturating_sub(4);
        t.drain(..extra);
    });
    set_timeout(
        move || ui.toasts.update(|t| t.retain(|x| x.id != id)),
        TOAST_FOR,
    );
    play(ui, sound);
}

/// Plays a sound unless the user muted them.
pub fn play(ui: Ui, sound: Sound) {
    if !ui.muted.get_untracked() {
        sound::play(sound);
    }
}

/// The conversation of a summary, created (in the island's reactive owner) if new.
fn ensure_conv(ui: Ui, s: &ConversationSummary) -> Conv {
    if let Some(c) = ui.conv(s.id) {
        c.title.set(s.title.clone());
        c.members.set(s.members.clone());
        c.latest.update_value(|l| *l = (*l).max(s.last_seq));
        return c;
    }
    let conv = Conv::new(s, ui.me.with_value(|m| m.id));
    ui.convs.update(|cs| cs.push(conv));
    conv
}

/// Asks for everything after what this page has (or the last few messages of a new one).
fn sync(conv: Conv, last_seq: i64) {
    let after = conv
        .synced_upto
        .get_value()
        .unwrap_or_else(|| (last_seq - FIRST_LOAD).max(conv.visible_after));
    if conv.synced_upto.get_value().is_none() {
        conv.has_more.set(after > conv.visible_after);
    }
    send_frame(&ClientFrame::Sync {
        conv: conv.id,
        after,
    });
}

fn resend_pending(ui: Ui) {
    for conv in ui.convs.get_untracked() {
        for p in conv.pending.get_untracked() {
            if p.failed.is_none() {
                send_frame(&ClientFrame::Send {
                    conv: conv.id,
                    client_id: p.client_id,
                    body: p.body,
                });
            }
        }
    }
}

fn resend_one(conv: Conv, client_id: &str) {
    let body = conv.pending.with_untracked(|p| {
        p.iter()
            .find(|x| x.client_id == client_id)
            .map(|x| x.body.clone())
    });
    if let Some(body) = body {
        send_frame(&ClientFrame::Send {
            conv: conv.id,
            client_id: client_id.to_owned(),
            body,
        });
    }
}

/// The time first (milliseconds in hex: 11 digits until the year 2527, so the ids sort by
/// time), then 64 random bits: the server's idempotency index is ordered by client id, and
/// ids that grow with time are added at its end (migrations/0012).
fn new_client_id() -> String {
    let now = js_sys::Date::now() as u64;
    let a = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let b = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    format!("{now:x}-{a:08x}{b:08x}")
}

/// Sends the draft of a conversation: it shows as "sending…" until the server acknowledges
/// it, and is sent again after any reconnect until then.
pub fn send(ui: Ui, conv_id: i64) {
    let Some(conv) = ui.conv(conv_id) else { return };
    let draft = conv.draft.get_untracked();
    let body = match Body::parse(&draft) {
        Ok(b) => b.into_inner(),
        Err(e) if draft.trim().is_empty() => return drop(e),
        Err(e) => return ui.notice.set(Some(e.0)),
    };
    let client_id = new_client_id();
    conv.pending.update(|p| {
        p.push(Pending {
            client_id: client_id.clone(),
            body: body.clone(),
            failed: None,
        })
    });
    conv.draft.set(String::new());
    stopped_typing(conv_id);
    send_frame(&ClientFrame::Send {
        conv: conv_id,
        client_id,
        body,
    });
}

pub fn open_dm(ui: Ui, username: String) {
    spawn_local(async move {
        let body = json(&One("username", username));
        match api_json::<ConversationSummary>("POST", "/api/dm", Some(body)).await {
            Ok(summary) => open_summary(ui, &summary),
            Err(e) => ui.notice.set(Some(e)),
        }
    });
}

/// Invites a contact into a conversation: into the group itself, or, from a one-to-one
/// conversation, into a new group whose window opens.
pub fn invite(ui: Ui, conv_id: i64, user: i64) {
    spawn_local(async move {
        let url = format!("/api/conversations/{conv_id}/invite");
        let body = json(&One("user", user));
        match api_json::<ConversationSummary>("POST", &url, Some(body)).await {
            Ok(summary) => {
                if let Some(c) = ui.conv(conv_id) {
                    c.notice.set(None);
                }
                open_summary(ui, &summary)
            }
            Err(e) => match ui.conv(conv_id) {
                Some(c) => c.notice.set(Some(e)),
                None => ui.notice.set(Some(e)),
            },
        }
    });
}

/// Leaves a group conversation (every tab closes it when the server confirms).
pub fn leave(ui: Ui, conv_id: i64) {
    spawn_local(async move {
        let url = format!("/api/conversations/{conv_id}/leave");
        if let Err(e) = api("POST", &url, Some("{}".into())).await {
            ui.notice.set(Some(e));
        }
    });
}

/// Loads the AI contacts one can add (once per page).
pub fn load_bots(ui: Ui) {
    if !ui.bots.with_untracked(Vec::is_empty) {
        return;
    }
    spawn_local(async move {
        let bots = fetch("GET", "/api/bots", None).await.and_then(|text| {
            serde_json::from_str::<Vec<crate::protocol::UserSummary>>(&text)
                .map_err(|_| "The AI contacts could not be read.".to_owned())
        });
        match bots {
            Ok(bots) => ui.bots.set(bots),
            Err(e) => ui.notice.set(Some(e)),
        }
    });
}

/// Adds the next page of the room directory to the list (after the highest id shown).
pub fn more_rooms(ui: Ui) {
    let after = ui
        .rooms
        .with_untracked(|r| r.iter().map(|x| x.id).max().unwrap_or(0));
    spawn_local(async move {
        let url = format!("/api/rooms?after={after}&limit=100");
        let page = fetch("GET", &url, None).await.and_then(|text| {
            serde_json::from_str::<crate::protocol::RoomPage>(&text)
                .map_err(|_| "The room list could not be read.".to_owned())
        });
        match page {
            Ok(page) => ui.rooms.update(|rooms| {
                for r in page.rooms {
                    if !rooms.iter().any(|x| x.id == r.id) {
                        rooms.push(r);
                    }
                }
                rooms.sort_by_key(|r| r.id);
            }),
            Err(e) => ui.notice.set(Some(e)),
        }
    });
}

pub fn open_room(ui: Ui, room: i64) {
    if ui.conv(room).is_some() {
        return ui.open_window(room);
    }
    spawn_local(async move {
        let url = format!("/api/rooms/{room}/join");
        match api_json::<ConversationSummary>("POST", &url, Some("{}".into())).await {
            Ok(summary) => open_summary(ui, &summary),
            Err(e) => ui.notice.set(Some(e)),
        }
    });
}

fn open_summary(ui: Ui, s: &ConversationSummary) {
    let known = ui.conv(s.id).is_some();
    let conv = ensure_conv(ui, s);
    if !known {
        sync(conv, s.last_seq);
    }
    ui.open_window(s.id);
}

/// Loads the page of history before the first message shown, keeping the view in place.
pub fn load_older(ui: Ui, conv_id: i64) {
    let Some(conv) = ui.conv(conv_id) else { return };
    let first = conv.lines.with_untracked(|l| l.first().map(|f| f.seq));
    if conv.loading_older.get_untracked() || !conv.has_more.get_untracked() || first == Some(1) {
        return;
    }
    conv.loading_older.set(true);
    let me = ui.me.with_value(|m| m.id);
    spawn_local(async move {
        let url = match first {
            Some(before) => format!(
                "/api/conversations/{conv_id}/messages?before={before}&limit={HISTORY_PAGE}"
            ),
            None => format!("/api/conversations/{conv_id}/messages?limit={HISTORY_PAGE}"),
        };
        match api_json::<crate::protocol::HistoryPage>("GET", &url, None).await {
            Ok(page) => {
                let el = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.get_element_by_id(&format!("history-{conv_id}")));
                let before = el.as_ref().map(|e| (e.scroll_height(), e.scroll_top()));
                conv.has_more.set(page.has_more);
                conv.insert(page.messages.iter().map(|m| Line::from_view(m, me)));
                if let (Some(el), Some((height, top))) = (el, before) {
                    request_animation_frame(move || {
                        el.set_scroll_top(el.scroll_height() - height + top)
                    });
                }
            }
            Err(e) => ui.notice.set(Some(e)),
        }
        conv.loading_older.set(false);
    });
}

async fn post_json(url: &str, body: &str) -> Result<u16, JsValue> {
    Ok(post_json_text(url, body).await?.0)
}

/// POSTs JSON on our own origin with the session cookie; the status and the response text.
pub async fn post_json_text(url: &str, body: &str) -> Result<(u16, String), JsValue> {
    send_request(
        "POST",
        url,
        Some(("application/json", JsValue::from_str(body))),
    )
    .await
}

/// One request on our own origin with the session cookie and an optional body of the given
/// content type; the status and the response text.
async fn send_request(
    method: &str,
    url: &str,
    body: Option<(&str, JsValue)>,
) -> Result<(u16, String), JsValue> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    if let Some((content_type, body)) = &body {
        let headers = web_sys::Headers::new()?;
        headers.set("Content-Type", content_type)?;
        init.set_headers(&headers);
        init.set_body(body);
    }
    let request = web_sys::Request::new_with_str_and_init(url, &init)?;
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let response = wasm_bindgen_futures::JsFuture::from(window.fetch_with_request(&request))
        .await?
        .unchecked_into::<web_sys::Response>();
    let text = wasm_bindgen_futures::JsFuture::from(response.text()?).await?;
    Ok((response.status(), text.as_string().unwrap_or_default()))
}

/// Slides the session's idle expiry; a refusal means it already ended.
async fn refresh_session() {
    if let Ok(401) = post_json("/api/session/refresh", "{}").await {
        if let Some(ui) = ui() {
            ui.link.set(Link::Ended);
            with_client(|c| {
                if let Some(ws) = c.ws.take() {
                    ws.set_onclose(None);
                    let _ = ws.close();
                }
            });
        }
    }
}

/// Signs in again after the session ended, then reconnects; drafts and unsent messages stay.
pub fn sign_in_again(ui: Ui, password: String) {
    let username = ui.me.with_value(|m| m.username.clone());
    spawn_local(async move {
        let body = json(&Credentials {
            username: &username,
            password: &password,
            status: None,
        });
        match post_json("/api/signin", &body).await {
            Ok(200) => {
                ui.notice.set(None);
                with_client(|c| c.attempt = 0);
                connect();
            }
            Ok(401) => ui.notice.set(Some("Wrong password; try again.".into())),
            _ => ui
                .notice
                .set(Some("The server could not be reached; try again.".into())),
        }
    });
}

/// Who is signed in, asked over HTTP (the client-side-rendered build has no server render).
#[cfg(feature = "csr")]
pub async fn current_user() -> Option<crate::protocol::UserSummary> {
    let window = web_sys::window()?;
    let response = wasm_bindgen_futures::JsFuture::from(window.fetch_with_str("/api/session"))
        .await
        .ok()?;
    let response = response.unchecked_into::<web_sys::Response>();
    if response.status() != 200 {
        return None;
    }
    let text = wasm_bindgen_futures::JsFuture::from(response.text().ok()?)
        .await
        .ok()?
        .as_string()?;
    #[derive(serde::Deserialize)]
    struct SignedIn {
        user: crate::protocol::UserSummary,
    }
    serde_json::from_str::<SignedIn>(&text).ok().map(|s| s.user)
}

/// A JSON request body. Bodies are typed, never `serde_json::Value`: `Value`, its map and
/// its number formatting would add their code to the islands' bundle for nothing.
pub(super) fn json(body: &impl serde::Serialize) -> String {
    serde_json::to_string(body).unwrap_or_default()
}

/// A body of one field: `{"<name>": value}`.
struct One<'a, T>(&'a str, T);

impl<T: serde::Serialize> serde::Serialize for One<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

/// What signing up or in sends.
#[derive(serde::Serialize)]
pub(super) struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// The status to sign in with (the sign-in page's picker); the server's default if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
}

/// The message of an API error response (`{"error": ..., "message": ...}`).
pub(super) fn api_message(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Refusal {
        message: String,
    }
    serde_json::from_str::<Refusal>(text)
        .ok()
        .map(|r| r.message)
}

/// Calls the JSON API on our own origin with the session cookie: the response text, or the
/// message to show the user when the server refused or could not be reached.
async fn api(method: &str, url: &str, body: Option<String>) -> Result<String, String> {
    let body = body.map(|b| ("application/json", JsValue::from_str(&b)));
    fetch(method, url, body).await
}

/// Calls the JSON API and reads the JSON answer as `T`.
async fn api_json<T: serde::de::DeserializeOwned>(
    method: &str,
    url: &str,
    body: Option<String>,
) -> Result<T, String> {
    let text = api(method, url, body).await?;
    serde_json::from_str(&text).map_err(|_| "The server's answer could not be read.".to_owned())
}

/// One request to the API with a body of the given content type (JSON text, a file);
/// returns the response text, or the server's message for the user.
async fn fetch(method: &str, url: &str, body: Option<(&str, JsValue)>) -> Result<String, String> {
    let unreachable = || "The server could not be reached; try again.".to_owned();
    let (status, text) = send_request(method, url, body)
        .await
        .map_err(|_| unreachable())?;
    if (200..300).contains(&status) {
        return Ok(text);
    }
    if status == 401 {
        ui().inspect(|ui| ui.link.set(Link::Ended));
    }
    Err(api_message(&text).unwrap_or_else(unreachable))
}

/// Runs an API call and shows its error, if any, as the main window's notice. Successful
/// changes come back as frames on the socket (to every tab), so nothing else is done here.
fn call(ui: Ui, method: &'static str, url: String, body: Option<String>) {
    spawn_local(async move {
        match api(method, &url, body).await {
            Ok(_) => ui.notice.set(None),
            Err(e) => ui.notice.set(Some(e)),
        }
    });
}

/// Asks a user to be a contact.
pub fn add_contact(ui: Ui, username: String) {
    let body = json(&One("username", username.trim()));
    call(ui, "POST", "/api/contacts".into(), Some(body));
}

use super::state::ContactAction;

pub fn contact_action(ui: Ui, user: i64, action: ContactAction) {
    ui.menu.set(None);
    let (method, url) = match action {
        ContactAction::Accept => ("POST", format!("/api/contacts/{user}/accept")),
        ContactAction::Decline => ("POST", format!("/api/contacts/{user}/decline")),
        ContactAction::Block => ("POST", format!("/api/contacts/{user}/block")),
        ContactAction::Unblock => ("POST", format!("/api/contacts/{user}/unblock")),
        ContactAction::Remove => ("DELETE", format!("/api/contacts/{user}")),
    };
    call(ui, method, url, None);
}

/// Moves a contact into a group (None: out of any group).
pub fn move_to_group(ui: Ui, user: i64, group: Option<i64>) {
    ui.menu.set(None);
    let body = json(&One("group", group));
    call(ui, "PUT", format!("/api/contacts/{user}/group"), Some(body));
}

pub fn create_group(ui: Ui, name: String) {
    call(
        ui,
        "POST",
        "/api/groups".into(),
        Some(json(&One("name", name))),
    );
}

pub fn rename_group(ui: Ui, group: i64, name: String) {
    ui.menu.set(None);
    let body = json(&One("name", name));
    call(ui, "PATCH", format!("/api/groups/{group}"), Some(body));
}

pub fn delete_group(ui: Ui, group: i64) {
    ui.menu.set(None);
    call(ui, "DELETE", format!("/api/groups/{group}"), None);
}

/// Changes the user's status, display name or personal message (each tab hears of it
/// through `my_status`).
pub fn update_me(ui: Ui, change: super::state::MeChange) {
    use super::state::MeChange;
    let body = match change {
        MeChange::Status(s) => json(&One("status", s)),
        MeChange::DisplayName(n) => json(&One("display_name", n)),
        MeChange::PersonalMessage(m) => json(&One("personal_message", m)),
    };
    call(ui, "PATCH", "/api/me".into(), Some(body));
}

/// Largest picture file sent to the server (it refuses bigger ones too; checking here
/// saves the upload).
const MAX_PICTURE_UPLOAD: f64 = 5.0 * 1024.0 * 1024.0;

/// Uploads the picture file chosen in the card's file input; every tab (and every contact
/// who may see it) hears of the new picture through the socket.
pub fn upload_picture(ui: Ui, ev: leptos::ev::Event) {
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    let Some(file) = input.files().and_then(|f| f.get(0)) else {
        return;
    };
    // Choosing the same file again must fire `change` again.
    input.set_value("");
    if file.size() > MAX_PICTURE_UPLOAD {
        ui.notice.set(Some(
            "That picture is larger than 5 MB; choose a smaller one.".into(),
        ));
        return;
    }
    spawn_local(async move {
        // The server reads the type from the bytes; this header only says "a file".
        let body = ("application/octet-stream", JsValue::from(file));
        match fetch("PUT", "/api/me/picture", Some(body)).await {
            Ok(_) => ui.notice.set(None),
            Err(e) => ui.notice.set(Some(e)),
        }
    });
}

/// Goes back to the default picture.
pub fn remove_picture(ui: Ui) {
    call(ui, "DELETE", "/api/me/picture".into(), None);
}

/// After this long without a keystroke, the others are told the user stopped writing.
const TYPING_PAUSE: Duration = Duration::from_secs(4);

/// The draft of a conversation changed: tells the others the user is writing (at most
/// every few seconds), and that they stopped when the draft is cleared or left alone.
pub fn typed(ui: Ui, conv_id: i64) {
    let Some(conv) = ui.conv(conv_id) else { return };
    if conv.draft.with_untracked(|d| d.trim().is_empty()) {
        return stopped_typing(conv_id);
    }
    let now = js_sys::Date::now();
    let Some((due, stroke)) = with_client(|c| {
        c.keystrokes += 1;
        let due = c
            .typing_sent
            .get(&conv_id)
            .is_none_or(|at| now - at >= TYPING_REPEAT_MS as f64);
        if due {
            c.typing_sent.insert(conv_id, now);
        }
        (due, c.keystrokes)
    }) else {
        return;
    };
    if due {
        send_frame(&ClientFrame::Typing {
            conv: conv_id,
            active: true,
        });
    }
    set_timeout(
        move || {
            if with_client(|c| c.keystrokes) == Some(stroke) {
                stopped_typing(conv_id);
            }
        },
        TYPING_PAUSE,
    );
}

/// Tells the others the user stopped writing, if they were told they started.
fn stopped_typing(conv_id: i64) {
    if with_client(|c| c.typing_sent.remove(&conv_id).is_some()) == Some(true) {
        send_frame(&ClientFrame::Typing {
            conv: conv_id,
            active: false,
        });
    }
}

/// How long a nudged window shakes.
const SHAKE_FOR: Duration = Duration::from_millis(700);
/// Client ids of nudges start with this (a refused nudge is not retried).
const NUDGE_ID_PREFIX: &str = "nudge-";

/// Nudges the other members of a conversation.
pub fn nudge(ui: Ui, conv_id: i64) {
    let Some(conv) = ui.conv(conv_id) else { return };
    let sent = send_frame(&ClientFrame::Nudge {
        conv: conv_id,
        client_id: format!("{NUDGE_ID_PREFIX}{}", new_client_id()),
    });
    if !sent {
        conv.notice
            .set(Some("Not connected: the nudge was not sent.".into()));
    }
}

/// Least time between two `read` frames for one conversation.
const READ_EVERY: Duration = Duration::from_secs(1);

/// Tells the server this user has read a conversation up to the latest message this page
/// knows of: at once, then at most one more frame per conversation per second.
pub fn mark_read(conv_id: i64) {
    let Some(conv) = ui().and_then(|ui| ui.conv(conv_id)) else {
        return;
    };
    if conv.read_scheduled.get_value() {
        return;
    }
    let sent = conv.latest.get_value();
    if sent > conv.read_sent.get_value() {
        send_frame(&ClientFrame::Read {
            conv: conv_id,
            seq: sent,
        });
        conv.read_sent.set_value(sent);
    }
    conv.read_scheduled.set_value(true);
    set_timeout(
        move || {
            conv.read_scheduled.set_value(false);
            let seq = conv.latest.get_value();
            let still_open =
                ui().is_some_and(|ui| ui.open.with_untracked(|o| o.contains(&conv_id)));
            if seq > sent && still_open {
                mark_read(conv_id);
            }
        },
        READ_EVERY,
    );
}

/// Sends the read marks still waiting for their turn (the page is going away).
fn flush_reads() {
    let Some(ui) = ui() else { return };
    let open = ui.open.get_untracked();
    for conv in open.into_iter().filter_map(|id| ui.conv(id)) {
        let seq = conv.latest.get_value();
        if seq > conv.read_sent.get_value() {
            send_frame(&ClientFrame::Read { conv: conv.id, seq });
            conv.read_sent.set_value(seq);
        }
    }
}

/// Deletes one of the user's own messages for every member.
pub fn delete_message(ui: Ui, conv_id: i64, seq: i64) {
    let Some(conv) = ui.conv(conv_id) else { return };
    let sent = send_frame(&ClientFrame::Delete {
        conv: conv_id,
        client_id: format!("delete-{}", new_client_id()),
        seq,
    });
    if !sent {
        conv.notice
            .set(Some("Not connected: the message was not deleted.".into()));
    }
}
