//! Pure: a server frame (or something the user did) changes the [`Model`], and says what
//! else must happen as [`Effect`]s (frames to send, sounds, timers). No signals, no
//! browser: every rule of the island's behaviour is here and unit-tested; `net` and
//! `actions` carry the effects out.

use super::model::{
    retain, shown_name, ConvModel, Line, Model, Pending, Toast, Typist, FIRST_LOAD,
};
use crate::protocol::{
    ClientFrame, ContactState, ConversationKind, ConversationSummary, ErrorCode, HistoryPage,
    MessageKind, RoomSummary, ServerFrame, Status, ERASE_ALL, TYPING_SHOWS_FOR_MS,
};
use std::sync::Arc;

/// How long a nudged window shakes, in milliseconds.
pub const SHAKE_FOR_MS: u32 = 700;
/// How long a toast stays, in milliseconds.
pub const TOAST_FOR_MS: u32 = 6000;
/// How long a window's notice stays, in milliseconds.
pub const NOTICE_FOR_MS: u32 = 5000;
/// How long a send refused for a passing reason waits before it is sent again.
pub const RESEND_AFTER_MS: u32 = 1000;
/// How long a send refused for a full server disk waits before it is sent again.
pub const STORAGE_RETRY_MS: u32 = 10_000;
/// Client ids of nudges start with this (a refused nudge is not retried).
pub const NUDGE_ID_PREFIX: &str = "nudge-";
/// Toasts on screen at most: a burst (a whole list signing in) keeps only the latest.
const TOASTS_MAX: usize = 4;

/// What must happen besides the change to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this frame on the socket (if it is open).
    Send(ClientFrame),
    /// Play a sound (unless the user muted them).
    Play(Sound),
    /// Tell the server this conversation is read up to the latest message (throttled).
    MarkRead(i64),
    /// After this many milliseconds, apply [`later`].
    Later(u32, Later),
    /// Show a notification of the system (if the user allowed them): a message that came
    /// while the tab was in the background.
    Notify {
        title: String,
        body: String,
        user: i64,
        picture: Option<String>,
    },
}

/// The sounds the messenger makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sound {
    SignIn,
    Message,
    Request,
    Nudge,
}

/// Something that happens a while after a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Later {
    StopShaking(i64),
    /// Ends a typing line unless a repeat replaced it (its token).
    ClearTyping {
        conv: i64,
        token: u64,
    },
    DropToast(u64),
    ClearNotice(i64),
    /// Sends a pending message again, with the same id.
    Resend {
        conv: i64,
        client_id: String,
    },
}

/// Applies a server frame.
pub fn reduce(m: &mut Model, frame: ServerFrame) -> Vec<Effect> {
    let me = m.me.id;
    let mut fx = Vec::new();
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
            epoch,
            ..
        } => {
            // Another epoch: the server's history was restored or lost messages, and the
            // numbers held here may now name other messages.
            if m.epoch.as_ref().is_some_and(|e| *e != epoch) {
                for c in &mut m.convs {
                    c.forget();
                }
            }
            m.epoch = Some(epoch);
            m.display_name = who.display_name;
            m.picture = picture;
            m.status = status;
            m.personal_message = personal_message;
            m.contacts = Arc::new(contacts);
            m.groups = Arc::new(groups);
            m.ready = true;
            m.rooms = Arc::new(rooms);
            m.rooms_total = rooms_total;
            for s in &conversations {
                ensure_conv(m, s);
                fx.extend(sync(m, s.id, s.last_seq));
            }
            fx.extend(resend_pending(m));
        }
        ServerFrame::ConvAdded { conversation } => {
            if !ensure_conv(m, &conversation) {
                fx.extend(sync(m, conversation.id, conversation.last_seq));
            }
            if let Some(at) = m.rooms.iter().position(|r| r.id == conversation.id) {
                Arc::make_mut(&mut m.rooms)[at].joined = true;
            } else if conversation.kind == ConversationKind::Room {
                // A restored room comes back to the list.
                Arc::make_mut(&mut m.rooms).push(RoomSummary {
                    id: conversation.id,
                    title: conversation.title.clone(),
                    joined: true,
                });
                m.rooms_total += 1;
            }
        }
        ServerFrame::ConvRemoved { conv } => {
            m.open.retain(|o| *o != conv);
            m.convs.retain(|c| c.id != conv);
            // An archived room leaves the list of rooms too.
            if let Some(at) = m.rooms.iter().position(|r| r.id == conv) {
                Arc::make_mut(&mut m.rooms).remove(at);
                m.rooms_total = (m.rooms_total - 1).max(0);
            }
        }
        ServerFrame::Retitled { conv, title } => {
            if let Some(c) = m.conv_mut(conv) {
                c.title = title.clone();
            }
            if let Some(at) = m.rooms.iter().position(|r| r.id == conv) {
                Arc::make_mut(&mut m.rooms)[at].title = title;
            }
        }
        ServerFrame::Msg(msg) => {
            let open = m.is_open(msg.conv);
            let Some(c) = m.conv_mut(msg.conv) else {
                return fx;
            };
            // Before the first `synced` of this page the messages are history being loaded,
            // not news: they neither open windows nor count as unread.
            let news = c.synced_upto.is_some();
            if news {
                c.synced_upto = c.synced_upto.map(|s| s.max(msg.seq));
            }
            let mine = msg.from == me;
            if mine {
                retain(&mut c.pending, |p| p.client_id != msg.client_id);
            }
            c.latest = c.latest.max(msg.seq);
            if news && open {
                fx.push(Effect::MarkRead(c.id));
            }
            // A message ends its sender's "writing" line.
            c.typing.retain(|t| t.user != msg.from);
            if msg.kind == MessageKind::Delete {
                if msg.body == ERASE_ALL {
                    // The sender's account was deleted: every line of theirs goes.
                    let erased = |l: &Line| l.from == msg.from && l.kind.is_deletable();
                    if c.lines.iter().any(erased) {
                        for l in Arc::make_mut(&mut c.lines).iter_mut() {
                            if erased(l) {
                                l.kind = MessageKind::Deleted;
                                l.body.clear();
                            }
                        }
                    }
                } else if let Ok(target) = msg.body.parse::<i64>() {
                    if let Some(at) = c.lines.iter().position(|l| l.seq == target) {
                        let l = &mut Arc::make_mut(&mut c.lines)[at];
                        l.kind = MessageKind::Deleted;
                        l.body.clear();
                    }
                }
            }
            c.membership(&msg, me);
            c.insert([Line::from_view(&msg, me)]);
            let (id, kind) = (c.id, c.kind);
            if news && msg.kind == MessageKind::Nudge {
                // Both sides shake and buzz, as in Messenger; the window opens for it.
                c.shaking = true;
                c.nudges += 1;
                fx.extend(open_window(m, id));
                fx.push(Effect::Later(SHAKE_FOR_MS, Later::StopShaking(id)));
                fx.push(Effect::Play(Sound::Nudge));
            } else if news && !mine && matches!(msg.kind, MessageKind::Text | MessageKind::File) {
                // In the background: a toast with the sender's picture (and its sound), the
                // title's count, and the system's notification (if allowed), as Messenger's
                // "X says:".
                let stays_closed = open || kind == ConversationKind::Room;
                if !open && kind == ConversationKind::Room {
                    c.unread += 1;
                }
                if m.hidden {
                    m.unseen_while_hidden += 1;
                    let picture = picture_of(m, msg.from);
                    let title = format!("{} says:", msg.from_name);
                    let said = said(&msg);
                    let text = format!("{title} {said}");
                    let who = Some((msg.from, picture.clone()));
                    fx.extend(notify_with(m, text, Sound::Message, who));
                    fx.push(Effect::Notify {
                        title,
                        body: said,
                        user: msg.from,
                        picture,
                    });
                } else {
                    fx.push(Effect::Play(Sound::Message));
                }
                if !stays_closed {
                    // A new message opens its window, as in Messenger.
                    fx.extend(open_window(m, id));
                }
            }
        }
        ServerFrame::Synced { conv, last_seq } => {
            if let Some(c) = m.conv_mut(conv) {
                c.synced_upto = Some(last_seq);
                c.latest = c.latest.max(last_seq);
            }
        }
        ServerFrame::Reset { conv, after } => {
            if let Some(c) = m.conv_mut(conv) {
                c.forget();
                c.has_more = after > c.visible_after;
            }
        }
        ServerFrame::Resync { conv, .. } => {
            let epoch = m.epoch.clone();
            if let Some(c) = m.conv(conv) {
                let after = c.synced_upto.unwrap_or(0);
                fx.push(Effect::Send(ClientFrame::Sync { conv, after, epoch }));
            }
        }
        ServerFrame::Ack {
            conv, client_id, ..
        } => {
            if let Some(c) = m.conv_mut(conv) {
                retain(&mut c.pending, |p| p.client_id != client_id);
            }
        }
        ServerFrame::Error {
            code,
            message,
            conv,
            client_id,
        } => {
            let target = conv.filter(|id| m.conv(*id).is_some()).zip(client_id);
            match (code, target) {
                (ErrorCode::NudgeLimited | ErrorCode::CannotDelete, Some((conv, _))) => {
                    if let Some(c) = m.conv_mut(conv) {
                        c.notice = Some(message);
                    }
                    fx.push(Effect::Later(NOTICE_FOR_MS, Later::ClearNotice(conv)));
                }
                (ErrorCode::StorageFull, Some((conv, client_id))) => {
                    // The server reads but stores nothing for now: say so in the window,
                    // and try again later with the same id (the line stays pending).
                    if let Some(c) = m.conv_mut(conv) {
                        c.notice = Some(message);
                    }
                    fx.push(Effect::Later(NOTICE_FOR_MS, Later::ClearNotice(conv)));
                    let resend = Later::Resend { conv, client_id };
                    fx.push(Effect::Later(STORAGE_RETRY_MS, resend));
                }
                (ErrorCode::RateLimited | ErrorCode::Internal, Some((conv, client_id)))
                    if !client_id.starts_with(NUDGE_ID_PREFIX) =>
                {
                    // Passing: send it again shortly, with the same id.
                    let resend = Later::Resend { conv, client_id };
                    fx.push(Effect::Later(RESEND_AFTER_MS, resend));
                }
                (_, Some((conv, client_id))) => {
                    if let Some(c) = m.conv_mut(conv) {
                        if let Some(at) = c.pending.iter().position(|p| p.client_id == client_id) {
                            Arc::make_mut(&mut c.pending)[at].failed = Some(message);
                        }
                    }
                }
                (_, None) => m.notice = Some(message),
            }
        }
        ServerFrame::Contact { contact } => {
            let name = shown_name(&contact).to_owned();
            let (user, state, status, blocked) = (
                contact.user.id,
                contact.state,
                contact.presence.status,
                contact.blocked,
            );
            let picture = Some((user, contact.presence.picture.clone()));
            m.renamed(user, &contact.presence.display_name);
            match m.upsert_contact(contact) {
                None if state == ContactState::Incoming && !blocked => {
                    let text = format!("{name} wants to add you as a contact.");
                    fx.extend(notify_with(m, text, Sound::Request, picture));
                }
                // Someone accepted this user's request.
                Some(b)
                    if b.state == ContactState::Requested && state == ContactState::Accepted =>
                {
                    let text = format!("{name} accepted your request and is now in your list.");
                    fx.extend(notify_with(m, text, Sound::SignIn, picture));
                }
                // Only a contact who was already accepted "signs in" (not one just accepted).
                Some(b) if b.state == ContactState::Accepted && state == b.state => {
                    fx.extend(signed_in_news(
                        m,
                        user,
                        &name,
                        Some(b.presence.status),
                        status,
                    ));
                }
                _ => {}
            }
        }
        ServerFrame::ContactRemoved { user } => retain(&mut m.contacts, |c| c.user.id != user),
        ServerFrame::Presence { user, presence } => {
            let name = presence.display_name.clone();
            let status = presence.status;
            m.renamed(user, &name);
            let before = m.set_presence(user, presence);
            fx.extend(signed_in_news(m, user, &name, before, status));
        }
        ServerFrame::MyStatus {
            status,
            personal_message,
            display_name,
            picture,
        } => {
            m.status = status;
            m.personal_message = personal_message;
            m.display_name = display_name;
            m.picture = picture;
        }
        ServerFrame::Groups { groups } => m.groups = Arc::new(groups),
        // The socket's own business (`net::socket`): it shows the connection is alive.
        ServerFrame::Pong {} => {}
        ServerFrame::Read { conv, seq } => {
            // Read in another tab (or this one): nothing before `seq` is unread any more.
            if let Some(c) = m.conv_mut(conv) {
                if seq >= c.latest {
                    c.unread = 0;
                }
            }
        }
        ServerFrame::Typing {
            conv,
            user,
            name,
            active,
        } => {
            if user == me {
                return fx;
            }
            let token = m.next_id();
            let Some(c) = m.conv_mut(conv) else {
                return fx;
            };
            c.typing.retain(|t| t.user != user);
            if active {
                c.typing.push(Typist { user, name, token });
                let clear = Later::ClearTyping { conv, token };
                fx.push(Effect::Later(TYPING_SHOWS_FOR_MS as u32, clear));
            }
        }
    }
    fx
}

/// Applies what was scheduled with [`Effect::Later`].
pub fn later(m: &mut Model, what: Later) -> Vec<Effect> {
    match what {
        Later::StopShaking(conv) => {
            if let Some(c) = m.conv_mut(conv) {
                c.shaking = false;
            }
        }
        Later::ClearTyping { conv, token } => {
            if let Some(c) = m.conv_mut(conv) {
                c.typing.retain(|t| t.token != token);
            }
        }
        Later::DropToast(id) => m.toasts.retain(|t| t.id != id),
        Later::ClearNotice(conv) => {
            if let Some(c) = m.conv_mut(conv) {
                c.notice = None;
            }
        }
        Later::Resend { conv, client_id } => {
            let body = m.conv(conv).and_then(|c| {
                c.pending
                    .iter()
                    .find(|p| p.client_id == client_id && p.failed.is_none())
                    .map(|p| p.body.clone())
            });
            if let Some(body) = body {
                return vec![Effect::Send(ClientFrame::Send {
                    conv,
                    client_id,
                    body,
                })];
            }
        }
    }
    Vec::new()
}

/// Opens (or brings forward) a conversation's window and clears its unread count.
pub fn open_window(m: &mut Model, id: i64) -> Vec<Effect> {
    if !m.open.contains(&id) {
        m.open.push(id);
    }
    if let Some(c) = m.conv_mut(id) {
        c.unread = 0;
    }
    vec![Effect::MarkRead(id)]
}

/// A conversation the server just answered with (opened, joined, invited into): known from
/// now on, synced, and its window open.
pub fn open_summary(m: &mut Model, s: &ConversationSummary) -> Vec<Effect> {
    let mut fx = Vec::new();
    if !ensure_conv(m, s) {
        fx.extend(sync(m, s.id, s.last_seq));
    }
    fx.extend(open_window(m, s.id));
    fx
}

/// The user sends `body` as `client_id`: it shows as pending until acknowledged.
pub fn send(m: &mut Model, conv: i64, client_id: String, body: String) -> Vec<Effect> {
    let Some(c) = m.conv_mut(conv) else {
        return Vec::new();
    };
    Arc::make_mut(&mut c.pending).push(Pending {
        client_id: client_id.clone(),
        body: body.clone(),
        failed: None,
    });
    vec![Effect::Send(ClientFrame::Send {
        conv,
        client_id,
        body,
    })]
}

/// A one-to-one conversation was cleared on this side: its view starts after
/// `visible_after`, its window closes, and the list leaves it out until a newer message.
pub fn forgotten(m: &mut Model, conv: i64, visible_after: i64) {
    m.open.retain(|o| *o != conv);
    if let Some(c) = m.conv_mut(conv) {
        c.visible_after = c.visible_after.max(visible_after);
        c.lines = Arc::default();
        c.unread = 0;
        c.has_more = false;
        c.latest = c.latest.max(visible_after);
    }
}

/// A page of older messages arrived.
pub fn history(m: &mut Model, conv: i64, page: HistoryPage) {
    let me = m.me.id;
    if let Some(c) = m.conv_mut(conv) {
        c.has_more = page.has_more;
        c.expired_before = c.expired_before.max(page.expired_before);
        c.loading_older = false;
        c.insert(page.messages.iter().map(|msg| Line::from_view(msg, me)));
    }
}

/// Shows a notification for a few seconds, with its sound.
pub fn notify(m: &mut Model, text: String, sound: Sound) -> Vec<Effect> {
    notify_with(m, text, sound, None)
}

/// A toast with someone's picture beside it.
pub fn notify_with(
    m: &mut Model,
    text: String,
    sound: Sound,
    picture: Option<(i64, Option<String>)>,
) -> Vec<Effect> {
    let id = m.next_id();
    m.toasts.push(Toast { id, text, picture });
    let extra = m.toasts.len().saturating_sub(TOASTS_MAX);
    m.toasts.drain(..extra);
    vec![
        Effect::Later(TOAST_FOR_MS, Later::DropToast(id)),
        Effect::Play(sound),
    ]
}

/// Every message sent but not acknowledged (and not refused), again with its id.
pub fn resend_pending(m: &Model) -> Vec<Effect> {
    m.convs
        .iter()
        .flat_map(|c| {
            c.pending.iter().filter(|p| p.failed.is_none()).map(|p| {
                Effect::Send(ClientFrame::Send {
                    conv: c.id,
                    client_id: p.client_id.clone(),
                    body: p.body.clone(),
                })
            })
        })
        .collect()
}

/// The conversation of a summary, added if new (true if it was known).
fn ensure_conv(m: &mut Model, s: &ConversationSummary) -> bool {
    let me = m.me.id;
    match m.conv_mut(s.id) {
        Some(c) => {
            c.title = s.title.clone();
            c.members = s.members.clone();
            c.latest = c.latest.max(s.last_seq);
            true
        }
        None => {
            m.convs.push(ConvModel::new(s, me));
            false
        }
    }
}

/// What a message says in a toast or notification: its text, or what was shared.
fn said(msg: &crate::protocol::MessageView) -> String {
    if msg.kind != MessageKind::File {
        return msg.body.clone();
    }
    match serde_json::from_str::<crate::protocol::SharedFile>(&msg.body) {
        Ok(f) if f.picture.is_some() => format!("(sent a photo: {})", f.name),
        Ok(f) => format!("(sent a file: {})", f.name),
        Err(_) => "(sent a file)".to_owned(),
    }
}

/// Asks for everything after what this page has (or the last few messages of a new one).
fn sync(m: &mut Model, conv: i64, last_seq: i64) -> Option<Effect> {
    let c = m.conv_mut(conv)?;
    let after = c
        .synced_upto
        .unwrap_or_else(|| (last_seq - FIRST_LOAD).max(c.visible_after));
    if c.synced_upto.is_none() {
        c.has_more = after > c.visible_after;
    }
    let epoch = m.epoch.clone();
    Some(Effect::Send(ClientFrame::Sync { conv, after, epoch }))
}

/// "<name> has just signed in", with its sound, when a contact goes from offline to online
/// after this page loaded its list.
fn signed_in_news(
    m: &mut Model,
    user: i64,
    name: &str,
    before: Option<Status>,
    now: Status,
) -> Vec<Effect> {
    if m.ready && before == Some(Status::Offline) && now != Status::Offline {
        let picture = Some((user, picture_of(m, user)));
        return notify_with(
            m,
            format!("{name} has just signed in."),
            Sound::SignIn,
            picture,
        );
    }
    Vec::new()
}

/// The version of a contact's picture, as this page knows it.
fn picture_of(m: &Model, user: i64) -> Option<String> {
    m.contacts
        .iter()
        .find(|c| c.user.id == user)
        .and_then(|c| c.presence.picture.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Contact, MessageView, Presence, UserSummary};

    fn user(id: i64, name: &str) -> UserSummary {
        UserSummary {
            id,
            username: name.to_lowercase(),
            display_name: name.to_owned(),
            is_guest: false,
            is_bot: false,
        }
    }

    fn dm(id: i64, last_seq: i64, last_read: i64) -> ConversationSummary {
        ConversationSummary {
            id,
            kind: ConversationKind::Dm,
            title: "Bob".into(),
            last_seq,
            last_read,
            members: vec![user(1, "Ann"), user(2, "Bob")],
            visible_after: 0,
        }
    }

    fn room(id: i64) -> ConversationSummary {
        ConversationSummary {
            kind: ConversationKind::Room,
            title: "Lobby".into(),
            members: Vec::new(),
            ..dm(id, 0, 0)
        }
    }

    fn hello(conversations: Vec<ConversationSummary>, contacts: Vec<Contact>) -> ServerFrame {
        ServerFrame::Hello {
            me: user(1, "Ann"),
            conversations,
            rooms: Vec::new(),
            session_idle_expires_at: 0,
            status: Status::Online,
            personal_message: String::new(),
            contacts,
            groups: Vec::new(),
            picture: None,
            rooms_total: 0,
            epoch: "e1".into(),
        }
    }

    /// The `sync` a page sends, under the test's epoch.
    fn sync_frame(conv: i64, after: i64) -> Effect {
        Effect::Send(ClientFrame::Sync {
            conv,
            after,
            epoch: Some("e1".into()),
        })
    }

    fn msg(conv: i64, seq: i64, from: i64, kind: MessageKind) -> ServerFrame {
        ServerFrame::Msg(MessageView {
            conv,
            seq,
            from,
            from_name: if from == 1 { "Ann" } else { "Bob" }.into(),
            client_id: format!("c{seq}"),
            body: "hi".into(),
            at: 0,
            kind,
        })
    }

    fn bob(status: Status) -> Contact {
        Contact {
            user: user(2, "Bob"),
            state: ContactState::Accepted,
            blocked: false,
            group: None,
            presence: Presence {
                status,
                display_name: "Bob".into(),
                personal_message: String::new(),
                picture: None,
            },
        }
    }

    /// A model after `hello` with a one-to-one conversation 7, synced up to `synced`.
    fn synced_dm(synced: i64) -> Model {
        let mut m = Model::new(user(1, "Ann"));
        reduce(
            &mut m,
            hello(vec![dm(7, synced, synced)], vec![bob(Status::Online)]),
        );
        reduce(
            &mut m,
            ServerFrame::Synced {
                conv: 7,
                last_seq: synced,
            },
        );
        m
    }

    #[test]
    fn hello_syncs_each_conversation_from_the_last_few_messages_and_counts_unread() {
        let mut m = Model::new(user(1, "Ann"));
        let fx = reduce(&mut m, hello(vec![dm(7, 100, 90), room(3)], Vec::new()));
        assert_eq!(fx, [sync_frame(7, 70), sync_frame(3, 0),]);
        let c = m.conv(7).unwrap();
        assert_eq!((c.unread, c.has_more, c.peer), (10, true, Some(2)));
        assert!(m.ready);
        // A reconnect's hello syncs from what this page has, not from the last few.
        reduce(
            &mut m,
            ServerFrame::Synced {
                conv: 7,
                last_seq: 100,
            },
        );
        let fx = reduce(&mut m, hello(vec![dm(7, 120, 100)], Vec::new()));
        assert_eq!(fx, [sync_frame(7, 100)]);
    }

    #[test]
    fn a_contact_renamed_renames_the_conversations_they_are_in() {
        let mut m = synced_dm(3);
        assert_eq!(m.conv(7).unwrap().title, "Bob");
        let mut renamed = bob(Status::Online).presence;
        renamed.display_name = "Robert".into();
        reduce(
            &mut m,
            ServerFrame::Presence {
                user: 2,
                presence: renamed,
            },
        );
        assert_eq!(m.conv(7).unwrap().title, "Robert");
    }

    #[test]
    fn another_epoch_or_a_reset_forgets_the_messages_held_and_syncs_afresh() {
        let mut m = synced_dm(40);
        reduce(&mut m, msg(7, 41, 2, MessageKind::Text));
        assert_eq!(m.conv(7).unwrap().lines.len(), 1);
        // The server's database was restored: seq 41 may now be another message.
        let mut restored = hello(vec![dm(7, 30, 30)], Vec::new());
        if let ServerFrame::Hello { epoch, .. } = &mut restored {
            *epoch = "e2".into();
        }
        let fx = reduce(&mut m, restored);
        let c = m.conv(7).unwrap();
        assert!(c.lines.is_empty() && c.synced_upto.is_none());
        assert_eq!(
            fx,
            [Effect::Send(ClientFrame::Sync {
                conv: 7,
                after: 0,
                epoch: Some("e2".into())
            })]
        );
        // A reset from the server does the same for one conversation.
        reduce(
            &mut m,
            ServerFrame::Synced {
                conv: 7,
                last_seq: 30,
            },
        );
        reduce(&mut m, msg(7, 31, 2, MessageKind::Text));
        reduce(&mut m, ServerFrame::Reset { conv: 7, after: 10 });
        let c = m.conv(7).unwrap();
        assert!(c.lines.is_empty() && c.synced_upto.is_none() && c.has_more);
    }

    #[test]
    fn a_message_after_the_sync_opens_its_window_and_plays_but_history_does_neither() {
        let mut m = Model::new(user(1, "Ann"));
        reduce(&mut m, hello(vec![dm(7, 5, 5)], Vec::new()));
        // History being loaded: no news.
        let fx = reduce(&mut m, msg(7, 5, 2, MessageKind::Text));
        assert!(fx.is_empty(), "{fx:?}");
        assert!(m.open.is_empty());
        reduce(
            &mut m,
            ServerFrame::Synced {
                conv: 7,
                last_seq: 5,
            },
        );
        let fx = reduce(&mut m, msg(7, 6, 2, MessageKind::Text));
        assert_eq!(fx, [Effect::Play(Sound::Message), Effect::MarkRead(7)]);
        assert_eq!(m.open, [7]);
        let c = m.conv(7).unwrap();
        assert_eq!(c.lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [5, 6]);
        assert_eq!((c.synced_upto, c.latest, c.unread), (Some(6), 6, 0));
    }

    #[test]
    fn a_frame_leaves_the_lists_it_does_not_change_the_same_lists() {
        // Views keep a pointer to each list and skip their work while it is the same one.
        let mut m = synced_dm(4);
        send(&mut m, 7, "c5".into(), "hello".into());
        let contacts = Arc::clone(&m.contacts);
        let lines = Arc::clone(&m.conv(7).unwrap().lines);
        let pending = Arc::clone(&m.conv(7).unwrap().pending);
        // Someone else's message: new lines, the same contacts and pending messages.
        reduce(&mut m, msg(7, 5, 2, MessageKind::Text));
        let c = m.conv(7).unwrap();
        assert!(Arc::ptr_eq(&contacts, &m.contacts));
        assert!(Arc::ptr_eq(&pending, &c.pending));
        assert!(!Arc::ptr_eq(&lines, &c.lines) && c.lines.len() == 1);
        // An acknowledgement of something not pending changes nothing either.
        reduce(
            &mut m,
            ServerFrame::Ack {
                conv: 7,
                client_id: "elsewhere".into(),
                seq: 9,
                at: 0,
            },
        );
        assert!(Arc::ptr_eq(&pending, &m.conv(7).unwrap().pending));
        // A presence change is a new contact list; the lines stay.
        let lines = Arc::clone(&m.conv(7).unwrap().lines);
        reduce(
            &mut m,
            ServerFrame::Presence {
                user: 2,
                presence: bob(Status::Away).presence,
            },
        );
        assert!(!Arc::ptr_eq(&contacts, &m.contacts));
        assert_eq!(m.contacts[0].presence.status, Status::Away);
        assert!(Arc::ptr_eq(&lines, &m.conv(7).unwrap().lines));
    }

    #[test]
    fn a_room_counts_unread_instead_of_opening() {
        let mut m = Model::new(user(1, "Ann"));
        reduce(&mut m, hello(vec![room(3)], Vec::new()));
        reduce(
            &mut m,
            ServerFrame::Synced {
                conv: 3,
                last_seq: 0,
            },
        );
        reduce(&mut m, msg(3, 1, 2, MessageKind::Text));
        reduce(&mut m, msg(3, 2, 2, MessageKind::Text));
        assert!(m.open.is_empty());
        assert_eq!(m.conv(3).unwrap().unread, 2);
        // Read in another tab up to the latest: nothing unread here either.
        reduce(&mut m, ServerFrame::Read { conv: 3, seq: 2 });
        assert_eq!(m.conv(3).unwrap().unread, 0);
    }

    #[test]
    fn a_sent_message_is_pending_until_its_copy_or_ack_arrives_and_is_resent_after_hello() {
        let mut m = synced_dm(4);
        let fx = send(&mut m, 7, "c5".into(), "hello".into());
        assert!(
            matches!(&fx[..], [Effect::Send(ClientFrame::Send { client_id, .. })] if client_id == "c5")
        );
        assert_eq!(m.conv(7).unwrap().pending.len(), 1);
        // A reconnect resends it with its id.
        let fx = reduce(&mut m, hello(vec![dm(7, 4, 4)], Vec::new()));
        assert!(fx.contains(&Effect::Send(ClientFrame::Send {
            conv: 7,
            client_id: "c5".into(),
            body: "hello".into()
        })));
        // The user's own copy ends the pending line without a sound or a window.
        let fx = reduce(&mut m, msg(7, 5, 1, MessageKind::Text));
        assert!(!fx.iter().any(|f| matches!(f, Effect::Play(_))), "{fx:?}");
        assert!(m.conv(7).unwrap().pending.is_empty());
    }

    #[test]
    fn refusals_are_retried_marked_or_shown_by_their_code() {
        let mut m = synced_dm(4);
        send(&mut m, 7, "c5".into(), "x".into());
        let error = |code, client_id: &str| ServerFrame::Error {
            code,
            message: "no".into(),
            conv: Some(7),
            client_id: Some(client_id.into()),
        };
        // Passing: sent again a second later, with its id, while still pending.
        let fx = reduce(&mut m, error(ErrorCode::RateLimited, "c5"));
        let [Effect::Later(RESEND_AFTER_MS, resend)] = &fx[..] else {
            panic!("{fx:?}")
        };
        let again = later(&mut m, resend.clone());
        assert!(
            matches!(&again[..], [Effect::Send(ClientFrame::Send { client_id, .. })] if client_id == "c5")
        );
        // For good: marked, and no longer resent.
        reduce(&mut m, error(ErrorCode::Undeliverable, "c5"));
        assert_eq!(m.conv(7).unwrap().pending[0].failed.as_deref(), Some("no"));
        assert!(later(&mut m, resend.clone()).is_empty());
        // A nudge too soon: a note in the window that goes away.
        let fx = reduce(&mut m, error(ErrorCode::NudgeLimited, "nudge-1"));
        assert_eq!(m.conv(7).unwrap().notice.as_deref(), Some("no"));
        assert_eq!(fx, [Effect::Later(NOTICE_FOR_MS, Later::ClearNotice(7))]);
        later(&mut m, Later::ClearNotice(7));
        assert_eq!(m.conv(7).unwrap().notice, None);
        // About nothing in particular: the main window's notice.
        reduce(
            &mut m,
            ServerFrame::Error {
                code: ErrorCode::BadFrame,
                message: "bad".into(),
                conv: None,
                client_id: None,
            },
        );
        assert_eq!(m.notice.as_deref(), Some("bad"));
    }

    #[test]
    fn a_nudge_shakes_the_window_for_a_while_and_buzzes() {
        let mut m = synced_dm(4);
        let fx = reduce(&mut m, msg(7, 5, 2, MessageKind::Nudge));
        assert!(fx.contains(&Effect::Play(Sound::Nudge)));
        assert!(fx.contains(&Effect::Later(SHAKE_FOR_MS, Later::StopShaking(7))));
        let c = m.conv(7).unwrap();
        assert!(c.shaking && c.nudges == 1 && m.open == [7]);
        later(&mut m, Later::StopShaking(7));
        assert!(!m.conv(7).unwrap().shaking);
    }

    #[test]
    fn a_deletion_empties_the_line_it_names() {
        let mut m = synced_dm(4);
        reduce(&mut m, msg(7, 5, 2, MessageKind::Text));
        let ServerFrame::Msg(mut del) = msg(7, 6, 2, MessageKind::Delete) else {
            unreachable!()
        };
        del.body = "5".into();
        reduce(&mut m, ServerFrame::Msg(del));
        let line = m
            .conv(7)
            .unwrap()
            .lines
            .iter()
            .find(|l| l.seq == 5)
            .cloned();
        assert_eq!(
            line.map(|l| (l.kind, l.body)),
            Some((MessageKind::Deleted, String::new()))
        );
    }

    #[test]
    fn an_erasure_empties_every_line_of_its_sender_and_no_other() {
        let mut m = synced_dm(4);
        reduce(&mut m, msg(7, 5, 2, MessageKind::Text));
        reduce(&mut m, msg(7, 6, 1, MessageKind::Text));
        reduce(&mut m, msg(7, 7, 2, MessageKind::Nudge));
        let ServerFrame::Msg(mut erase) = msg(7, 8, 2, MessageKind::Delete) else {
            unreachable!()
        };
        erase.body = ERASE_ALL.into();
        reduce(&mut m, ServerFrame::Msg(erase));
        let kinds: Vec<_> = m
            .conv(7)
            .unwrap()
            .lines
            .iter()
            .map(|l| (l.seq, l.kind, l.body.is_empty()))
            .collect();
        assert_eq!(
            kinds,
            [
                (5, MessageKind::Deleted, true),
                (6, MessageKind::Text, false),
                (7, MessageKind::Deleted, true),
                (8, MessageKind::Delete, false),
            ]
        );
    }

    #[test]
    fn a_forgotten_conversation_leaves_the_list_until_a_newer_message() {
        let mut m = synced_dm(4);
        reduce(&mut m, msg(7, 5, 2, MessageKind::Text));
        m.open = vec![7];
        forgotten(&mut m, 7, 5);
        let c = m.conv(7).unwrap();
        assert!(c.lines.is_empty() && m.open.is_empty() && !c.listed());
        reduce(&mut m, msg(7, 6, 2, MessageKind::Text));
        assert!(m.conv(7).unwrap().listed());
    }

    #[test]
    fn typing_shows_until_a_message_or_its_timeout_and_never_for_oneself() {
        let mut m = synced_dm(4);
        let typing = |user, active| ServerFrame::Typing {
            conv: 7,
            user,
            name: "Bob".into(),
            active,
        };
        assert!(reduce(&mut m, typing(1, true)).is_empty());
        let fx = reduce(&mut m, typing(2, true));
        let [Effect::Later(_, clear)] = &fx[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(m.conv(7).unwrap().typing.len(), 1);
        // A repeat replaces the entry: the first timeout no longer clears it.
        reduce(&mut m, typing(2, true));
        later(&mut m, clear.clone());
        assert_eq!(m.conv(7).unwrap().typing.len(), 1);
        reduce(&mut m, msg(7, 5, 2, MessageKind::Text));
        assert!(m.conv(7).unwrap().typing.is_empty());
    }

    #[test]
    fn a_contact_coming_online_is_news_once_the_list_is_loaded() {
        let mut m = Model::new(user(1, "Ann"));
        // Before hello: loading, not news.
        let online = Presence {
            status: Status::Online,
            display_name: "Bob".into(),
            personal_message: String::new(),
            picture: None,
        };
        reduce(&mut m, hello(Vec::new(), vec![bob(Status::Offline)]));
        let fx = reduce(
            &mut m,
            ServerFrame::Presence {
                user: 2,
                presence: online.clone(),
            },
        );
        assert!(fx.contains(&Effect::Play(Sound::SignIn)), "{fx:?}");
        assert_eq!(m.toasts.len(), 1);
        assert!(m.toasts[0].text.contains("Bob has just signed in"));
        // Online to busy is not a sign-in.
        let busy = Presence {
            status: Status::Busy,
            ..online
        };
        let fx = reduce(
            &mut m,
            ServerFrame::Presence {
                user: 2,
                presence: busy,
            },
        );
        assert!(fx.is_empty());
    }

    #[test]
    fn a_new_request_is_a_toast_and_at_most_four_toasts_stay() {
        let mut m = Model::new(user(1, "Ann"));
        reduce(&mut m, hello(Vec::new(), Vec::new()));
        for id in 10..16 {
            let mut c = bob(Status::Offline);
            c.user.id = id;
            c.state = ContactState::Incoming;
            let fx = reduce(&mut m, ServerFrame::Contact { contact: c });
            assert!(fx.contains(&Effect::Play(Sound::Request)));
        }
        assert_eq!(m.toasts.len(), 4);
        let first = m.toasts[0].id;
        later(&mut m, Later::DropToast(first));
        assert_eq!(m.toasts.len(), 3);
    }

    #[test]
    fn a_group_follows_its_joins_and_leaves_and_can_be_removed() {
        let mut m = Model::new(user(1, "Ann"));
        let group = ConversationSummary {
            id: 9,
            kind: ConversationKind::Group,
            title: "Bob".into(),
            last_seq: 0,
            last_read: 0,
            members: vec![user(1, "Ann"), user(2, "Bob")],
            visible_after: 0,
        };
        let fx = reduce(
            &mut m,
            ServerFrame::ConvAdded {
                conversation: group,
            },
        );
        assert_eq!(
            fx,
            [Effect::Send(ClientFrame::Sync {
                conv: 9,
                after: 0,
                epoch: None
            })]
        );
        reduce(
            &mut m,
            ServerFrame::Synced {
                conv: 9,
                last_seq: 0,
            },
        );
        let ServerFrame::Msg(mut join) = msg(9, 1, 3, MessageKind::Join) else {
            unreachable!()
        };
        join.from_name = "Cy".into();
        reduce(&mut m, ServerFrame::Msg(join));
        assert_eq!(m.conv(9).unwrap().title, "Bob and Cy");
        reduce(&mut m, ServerFrame::ConvRemoved { conv: 9 });
        assert!(m.conv(9).is_none());
    }

    #[test]
    fn a_room_follows_its_new_title_leaves_when_archived_and_comes_back_restored() {
        let mut m = Model::new(user(1, "Ann"));
        let room = ConversationSummary {
            id: 4,
            kind: ConversationKind::Room,
            title: "Lobby".into(),
            last_seq: 0,
            last_read: 0,
            members: Vec::new(),
            visible_after: 0,
        };
        m.rooms = Arc::new(vec![RoomSummary {
            id: 4,
            title: "Lobby".into(),
            joined: false,
        }]);
        m.rooms_total = 1;
        reduce(
            &mut m,
            ServerFrame::ConvAdded {
                conversation: room.clone(),
            },
        );
        m.open.push(4);
        reduce(
            &mut m,
            ServerFrame::Retitled {
                conv: 4,
                title: "Front hall".into(),
            },
        );
        assert_eq!(m.conv(4).unwrap().title, "Front hall");
        assert_eq!(m.rooms[0].title, "Front hall");
        assert!(m.rooms[0].joined);
        reduce(&mut m, ServerFrame::ConvRemoved { conv: 4 });
        assert!(m.conv(4).is_none() && m.open.is_empty() && m.rooms.is_empty());
        assert_eq!(m.rooms_total, 0);
        reduce(&mut m, ServerFrame::ConvAdded { conversation: room });
        assert!(m.conv(4).is_some());
        assert_eq!(
            (m.rooms.len(), m.rooms[0].joined, m.rooms_total),
            (1, true, 1)
        );
    }

    #[test]
    fn a_history_page_goes_before_what_is_shown_without_duplicates() {
        let mut m = synced_dm(40);
        reduce(&mut m, msg(7, 41, 2, MessageKind::Text));
        let page = HistoryPage {
            messages: (39..=41)
                .map(|seq| match msg(7, seq, 2, MessageKind::Text) {
                    ServerFrame::Msg(v) => v,
                    _ => unreachable!(),
                })
                .collect(),
            has_more: false,
            expired_before: 0,
        };
        history(&mut m, 7, page);
        let c = m.conv(7).unwrap();
        assert_eq!(
            c.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [39, 40, 41]
        );
        assert!(!c.has_more);
    }
}
