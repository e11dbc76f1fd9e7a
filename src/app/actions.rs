//! What the views do when the user acts (send, nudge, open a conversation, answer a
//! request...). Changes of the model go through the reducer, and `net` carries out their
//! effects. Changes the server confirms come back as frames on the socket, to every tab, so
//! most calls only show an error if there is one.

use super::{
    net::{self, http, socket},
    reducer::{self, Effect},
    server_fns, sound,
    state::Ui,
};
use crate::protocol::{
    http::{
        paths, AddContact, GroupName, Invite, MoveToGroup, OpenDm, RoomQuery, SignInNotice,
        UpdateMe,
    },
    ApiError, ApiErrorCode, Body, ClientFrame, ConversationSummary, RoomPage, TYPING_REPEAT_MS,
};
use gloo_net::http::Request;
use leptos::{prelude::*, task::spawn_local};
use std::time::Duration;
use wasm_bindgen::JsCast;

/// Older messages loaded per scroll to the top of a conversation's history.
const HISTORY_PAGE: u32 = 50;
/// After this long without a keystroke, the others are told the user stopped writing.
const TYPING_PAUSE: Duration = Duration::from_secs(4);
/// Largest picture file sent to the server (it refuses bigger ones too; checking here saves
/// the upload).
const MAX_PICTURE_UPLOAD: f64 = 5.0 * 1024.0 * 1024.0;

/// Applies a change to the model and carries out its effects.
fn change(ui: Ui, f: impl FnOnce(&mut super::model::Model) -> Vec<Effect>) {
    let effects = ui.model.try_update(f).unwrap_or_default();
    net::run(ui, effects);
}

/// Shows a refusal in the main window (a 401 means the session ended: the dialog asks for
/// the password instead).
fn refused(ui: Ui, e: ApiError) {
    if e.error == ApiErrorCode::Unauthorized {
        net::session_ended(ui);
    } else {
        ui.model.update(|m| m.notice = Some(e.message));
    }
}

/// Runs a call and shows its error, if any, as the main window's notice.
fn call(ui: Ui, f: impl std::future::Future<Output = Result<(), ApiError>> + 'static) {
    spawn_local(async move {
        match f.await {
            Ok(()) => ui.model.update(|m| m.notice = None),
            Err(e) => refused(ui, e),
        }
    });
}

/// Turns sounds off or on, remembered in this browser.
pub fn set_muted(ui: Ui, muted: bool) {
    ui.muted.set(muted);
    sound::remember_muted(muted);
}

/// The time first (milliseconds in hex: 11 digits until the year 2527, so the ids sort by
/// time), then 64 random bits: the server's idempotency index is ordered by client id, and
/// ids that grow with time are added at its end (migrations/0012).
pub(crate) fn new_client_id() -> String {
    let now = js_sys::Date::now() as u64;
    let a = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let b = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    format!("{now:x}-{a:08x}{b:08x}")
}

/// Sends the draft of a conversation: it shows as "sending…" until the server acknowledges
/// it, and is sent again after any reconnect until then.
pub fn send(ui: Ui, conv: i64) {
    let draft = ui.draft(conv);
    let body = match Body::parse(&draft) {
        Ok(b) => b.into_inner(),
        Err(_) if draft.trim().is_empty() => return,
        Err(e) => return ui.model.update(|m| m.notice = Some(e.0)),
    };
    ui.set_draft(conv, String::new());
    stopped_typing(ui, conv);
    let client_id = new_client_id();
    change(ui, |m| reducer::send(m, conv, client_id, body));
}

/// The draft of a conversation changed: tells the others the user is writing (at most
/// every few seconds), and that they stopped when the draft is cleared or left alone.
pub fn typed(ui: Ui, conv: i64, text: String) {
    let empty = text.trim().is_empty();
    ui.set_draft(conv, text);
    if empty {
        return stopped_typing(ui, conv);
    }
    let now = js_sys::Date::now();
    let Some((due, stroke)) = ui.net.try_update_value(|n| {
        n.keystrokes += 1;
        let due = n
            .typing_sent
            .get(&conv)
            .is_none_or(|at| now - at >= TYPING_REPEAT_MS as f64);
        if due {
            n.typing_sent.insert(conv, now);
        }
        (due, n.keystrokes)
    }) else {
        return;
    };
    if due {
        socket::send(ui, &ClientFrame::Typing { conv, active: true });
    }
    set_timeout(
        move || {
            if ui.net.try_with_value(|n| n.keystrokes) == Some(stroke) {
                stopped_typing(ui, conv);
            }
        },
        TYPING_PAUSE,
    );
}

/// Tells the others the user stopped writing, if they were told they started.
fn stopped_typing(ui: Ui, conv: i64) {
    if ui
        .net
        .try_update_value(|n| n.typing_sent.remove(&conv).is_some())
        == Some(true)
    {
        socket::send(
            ui,
            &ClientFrame::Typing {
                conv,
                active: false,
            },
        );
    }
}

/// Shows a note in a conversation's window for a few seconds.
fn window_notice(ui: Ui, conv: i64, text: &str) {
    ui.model.update(|m| {
        if let Some(c) = m.conv_mut(conv) {
            c.notice = Some(text.to_owned());
        }
    });
    net::run(
        ui,
        vec![Effect::Later(
            reducer::NOTICE_FOR_MS,
            reducer::Later::ClearNotice(conv),
        )],
    );
}

/// Nudges the other members of a conversation.
pub fn nudge(ui: Ui, conv: i64) {
    let frame = ClientFrame::Nudge {
        conv,
        client_id: format!("{}{}", reducer::NUDGE_ID_PREFIX, new_client_id()),
    };
    if !socket::send(ui, &frame) {
        window_notice(ui, conv, "Not connected: the nudge was not sent.");
    }
}

/// Deletes one of the user's own messages for every member.
pub fn delete_message(ui: Ui, conv: i64, seq: i64) {
    let frame = ClientFrame::Delete {
        conv,
        client_id: format!("delete-{}", new_client_id()),
        seq,
    };
    if !socket::send(ui, &frame) {
        window_notice(ui, conv, "Not connected: the message was not deleted.");
    }
}

/// Opens (or brings forward) a conversation's window.
pub fn open_window(ui: Ui, conv: i64) {
    change(ui, |m| reducer::open_window(m, conv));
}

/// Opens a conversation's window because the user asked to, and puts the cursor in its
/// message box.
pub fn open_and_focus(ui: Ui, conv: i64) {
    open_window(ui, conv);
    focus_compose(conv);
}

/// Puts the cursor in a conversation window's message box (once it is drawn).
pub fn focus_compose(conv: i64) {
    focus_later(format!("#compose-{conv}"));
}

/// Focuses the first element matching `selector` once the view has rendered it.
pub fn focus_later(selector: String) {
    request_animation_frame(move || {
        use wasm_bindgen::JsCast;
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector(&selector).ok().flatten())
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    });
}

/// Arrow keys in a row of buttons (a menu's choices, the emoticons): when the key's target
/// is one of them (`item`), the focus moves to the next (`forward`) or the previous one,
/// and the page does not scroll.
pub fn focus_sibling(
    ev: &leptos::ev::KeyboardEvent,
    forward: bool,
    item: impl Fn(&web_sys::Element) -> bool,
) {
    let Some(current) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .filter(|t| item(t))
    else {
        return;
    };
    ev.prevent_default();
    let next = if forward {
        current.next_element_sibling()
    } else {
        current.previous_element_sibling()
    };
    if let Some(el) = next.and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
        let _ = el.focus();
    }
}

pub fn close_window(ui: Ui, conv: i64) {
    ui.model.update(|m| m.open.retain(|o| *o != conv));
}

fn open_summary(ui: Ui, s: ConversationSummary) {
    let conv = s.id;
    change(ui, |m| reducer::open_summary(m, &s));
    focus_compose(conv);
}

/// Opens the one-to-one conversation with `username`, starting it if new.
pub fn open_dm(ui: Ui, username: String) {
    spawn_local(async move {
        let body = OpenDm { username };
        match http::json(Request::post(paths::DM), &body).await {
            Ok(summary) => open_summary(ui, summary),
            Err(e) => refused(ui, e),
        }
    });
}

/// Opens a room's window, joining it first if needed.
pub fn open_room(ui: Ui, room: i64) {
    if ui.model.with_untracked(|m| m.conv(room).is_some()) {
        return open_window(ui, room);
    }
    spawn_local(async move {
        let path = paths::at(paths::ROOM_JOIN, room);
        match http::post(&path).await {
            Ok(summary) => open_summary(ui, summary),
            Err(e) => refused(ui, e),
        }
    });
}

/// Invites a contact into a conversation: into the group itself, or, from a one-to-one
/// conversation, into a new group whose window opens.
pub fn invite(ui: Ui, conv: i64, user: i64) {
    spawn_local(async move {
        let path = paths::at(paths::INVITE, conv);
        match http::json(Request::post(&path), &Invite { user }).await {
            Ok(summary) => {
                ui.model.update(|m| {
                    if let Some(c) = m.conv_mut(conv) {
                        c.notice = None;
                    }
                });
                open_summary(ui, summary);
            }
            // A session that ended is the sign-in window's business, not a notice's.
            Err(e)
                if e.error != ApiErrorCode::Unauthorized
                    && ui.model.with_untracked(|m| m.conv(conv).is_some()) =>
            {
                ui.model.update(|m| {
                    if let Some(c) = m.conv_mut(conv) {
                        c.notice = Some(e.message);
                    }
                });
            }
            Err(e) => refused(ui, e),
        }
    });
}

/// Leaves a group conversation (every tab closes it when the server confirms).
pub fn leave(ui: Ui, conv: i64) {
    let path = paths::at(paths::LEAVE, conv);
    call(ui, http::call(Request::post(&path)));
}

/// Removes a conversation from the list: a group is left; a one-to-one conversation is
/// cleared on this side (its window closes; a new message brings it back).
pub fn forget(ui: Ui, conv: i64) {
    spawn_local(async move {
        let path = paths::at(paths::FORGET, conv);
        match http::post::<crate::protocol::http::Forgotten>(&path).await {
            Ok(f) => ui
                .model
                .update(|m| reducer::forgotten(m, conv, f.visible_after)),
            Err(e) => refused(ui, e),
        }
    });
}

/// Loads the page of history before the first message shown, keeping the view in place.
pub fn load_older(ui: Ui, conv: i64) {
    let first = ui.model.try_update(|m| {
        let c = m.conv_mut(conv)?;
        let first = c.lines.first().map(|f| f.seq);
        if c.loading_older || !c.has_more || first == Some(1) {
            return None;
        }
        c.loading_older = true;
        Some(first)
    });
    let Some(Some(first)) = first else { return };
    spawn_local(async move {
        match server_fns::load_history(conv, first, Some(HISTORY_PAGE)).await {
            Ok(page) => {
                let el = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.get_element_by_id(&format!("history-{conv}")));
                let before = el.as_ref().map(|e| (e.scroll_height(), e.scroll_top()));
                ui.model.update(|m| reducer::history(m, conv, page));
                if let (Some(el), Some((height, top))) = (el, before) {
                    request_animation_frame(move || {
                        el.set_scroll_top(el.scroll_height() - height + top)
                    });
                }
            }
            Err(e) => {
                ui.model.update(|m| {
                    if let Some(c) = m.conv_mut(conv) {
                        c.loading_older = false;
                    }
                });
                refused(ui, e);
            }
        }
    });
}

/// Signs in again after the session ended, then reconnects; drafts and unsent messages stay.
pub fn sign_in_again(ui: Ui, password: String) {
    let username = ui.me.with_value(|m| m.username.clone());
    spawn_local(async move {
        let again = server_fns::sign_in(
            username.clone(),
            password.into(),
            String::new(),
            String::new(),
            String::new(),
        );
        match again.await {
            Ok(_) => {
                ui.resume_error.set(None);
                ui.net.update_value(|n| n.attempt = 0);
                socket::connect(ui);
            }
            Err(e) if e.error == ApiErrorCode::Unauthorized => ui
                .resume_error
                .set(Some("Wrong password; try again.".into())),
            // This account has had many wrong passwords lately: the sign-in window, which
            // carries the verification widget, takes it from here (drafts are lost).
            Err(e) if e.error == ApiErrorCode::ChallengeRequired => {
                let to = format!(
                    "/?mode=signin&username={}&error={}",
                    js_sys::encode_uri_component(&username),
                    SignInNotice::VerificationNeeded.code()
                );
                if let Some(w) = web_sys::window() {
                    let _ = w.location().assign(&to);
                }
            }
            Err(e) => ui.resume_error.set(Some(e.message)),
        }
    });
}

/// Asks a user to be a contact.
pub fn add_contact(ui: Ui, username: String) {
    let body = AddContact {
        username: username.trim().to_owned(),
    };
    call(ui, http::call_with(Request::post(paths::CONTACTS), &body));
}

/// What the user can do to an entry of the contact list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactAction {
    Accept,
    Decline,
    Block,
    Unblock,
    Remove,
}

pub fn contact_action(ui: Ui, user: i64, action: ContactAction) {
    ui.menu.set(None);
    let request = match action {
        ContactAction::Accept => Request::post(&paths::at(paths::ACCEPT, user)),
        ContactAction::Decline => Request::post(&paths::at(paths::DECLINE, user)),
        ContactAction::Block => Request::post(&paths::at(paths::BLOCK, user)),
        ContactAction::Unblock => Request::post(&paths::at(paths::UNBLOCK, user)),
        ContactAction::Remove => Request::delete(&paths::at(paths::CONTACT, user)),
    };
    call(ui, http::call(request));
}

/// Moves a contact into a group (None: out of any group).
pub fn move_to_group(ui: Ui, user: i64, group: Option<i64>) {
    ui.menu.set(None);
    let path = paths::at(paths::CONTACT_GROUP, user);
    call(
        ui,
        http::call_with(Request::put(&path), &MoveToGroup { group }),
    );
}

pub fn create_group(ui: Ui, name: String) {
    call(
        ui,
        http::call_with(Request::post(paths::GROUPS), &GroupName { name }),
    );
}

pub fn rename_group(ui: Ui, group: i64, name: String) {
    ui.menu.set(None);
    let path = paths::at(paths::GROUP, group);
    call(
        ui,
        http::call_with(Request::patch(&path), &GroupName { name }),
    );
}

pub fn delete_group(ui: Ui, group: i64) {
    ui.menu.set(None);
    let path = paths::at(paths::GROUP, group);
    call(ui, http::call(Request::delete(&path)));
}

/// Changes the user's status, display name or personal message (each tab hears of it
/// through `my_status`).
pub fn update_me(ui: Ui, change: UpdateMe) {
    call(ui, http::call_with(Request::patch(paths::ME), &change));
}

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
        ui.model.update(|m| {
            m.notice = Some("That picture is larger than 5 MB; choose a smaller one.".into())
        });
        return;
    }
    call(ui, http::upload(paths::MY_PICTURE, file));
}

/// Goes back to the default picture.
pub fn remove_picture(ui: Ui) {
    call(ui, http::call(Request::delete(paths::MY_PICTURE)));
}

/// Loads the AI contacts one can add (once per page).
pub fn load_bots(ui: Ui) {
    if !ui.bots.with_untracked(Vec::is_empty) {
        return;
    }
    spawn_local(async move {
        match http::get::<Vec<crate::protocol::http::BotCard>>(paths::BOTS).await {
            Ok(bots) => ui.bots.set(bots),
            Err(e) => refused(ui, e),
        }
    });
}

/// Adds the next page of the room directory to the list (after the highest id shown).
pub fn more_rooms(ui: Ui) {
    let after = ui
        .model
        .with_untracked(|m| m.rooms.iter().map(|x| x.id).max().unwrap_or(0));
    let query = RoomQuery {
        after,
        limit: Some(100),
        ..RoomQuery::default()
    };
    spawn_local(async move {
        match http::get::<RoomPage>(&query.path()).await {
            Ok(page) => ui.model.update(|m| {
                let rooms = std::sync::Arc::make_mut(&mut m.rooms);
                for r in page.rooms {
                    if !rooms.iter().any(|x| x.id == r.id) {
                        rooms.push(r);
                    }
                }
                rooms.sort_by_key(|r| r.id);
            }),
            Err(e) => refused(ui, e),
        }
    });
}
