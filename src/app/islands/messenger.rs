//! The `MessengerApp` island, the one that holds the live connection: the main window (the
//! user's card, the contact list, conversations and rooms) and the conversation windows.

use crate::app::{
    actions,
    components::{
        card::{status_class, MeCard, WindowControls},
        contacts::{finds, lower, ContactList, Search, Toolbar},
        conversation::{ConversationWindow, UnreadBadge},
        dialogs::{SessionEnded, Toasts},
    },
    keep, net,
    state::{Link, Ui},
};
use crate::protocol::{ConversationKind, Status, UserSummary};
use leptos::prelude::*;

#[island]
pub fn MessengerApp(me: UserSummary) -> impl IntoView {
    let ui = Ui::new(me);
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            net::start(ui);
        }
    });
    // Windows, their places and drafts survive a reload (`keep`): restored once the first
    // `hello` says which conversations exist, kept from then on.
    let user = ui.me.with_value(|m| m.id);
    let restored = StoredValue::new(false);
    Effect::new(move |_| {
        if !ui.model.with(|m| m.ready) || restored.get_value() {
            return;
        }
        restored.set_value(true);
        let kept = keep::load(user);
        untrack(|| {
            for id in kept.open {
                if ui.model.with(|m| m.conv(id).is_some()) {
                    actions::open_window(ui, id);
                }
            }
            ui.drafts.update(|d| d.extend(kept.drafts));
            ui.geometry.set(kept.geometry);
        });
    });
    Effect::new(move |_| {
        let open = ui.model.with(|m| m.open.clone());
        let drafts = ui.drafts.get();
        let geometry = ui.geometry.get();
        if restored.get_value() {
            keep::save(
                user,
                &keep::Kept {
                    open,
                    drafts,
                    geometry,
                },
            );
        }
    });
    // One-to-one and group conversations (rooms have their own list): id, kind, peer.
    // The tab's title counts what is unread: messages in closed windows, and everything
    // from others while the tab was in the background.
    let unread_total = Memo::new(move |_| {
        ui.model
            .with(|m| m.unseen_while_hidden + m.convs.iter().map(|c| c.unread).sum::<u32>())
    });
    Effect::new(move |_| {
        let n = unread_total.get();
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            doc.set_title(&if n > 0 {
                format!("({n}) Messenger")
            } else {
                "Messenger".to_owned()
            });
        }
    });
    let dms = Memo::new(move |_| {
        let query = ui.query.with(|q| lower(q.trim()));
        ui.model.with(|m| {
            m.convs
                .iter()
                .filter(|c| {
                    c.kind != ConversationKind::Room && c.listed() && finds(&query, &c.title)
                })
                .map(|c| (c.id, c.kind, c.peer))
                .collect::<Vec<_>>()
        })
    });
    // The card shows the link only when it is not simply up (screen readers hear it all).
    let link_text = Signal::derive(move || match ui.link.get() {
        Link::Connecting => "Connecting…".to_owned(),
        Link::Online => "Connected".to_owned(),
        Link::Retrying(s) => format!("Connection lost; reconnecting in {s} s…"),
        Link::Ended => "Signed out".to_owned(),
    });
    let link_up = Signal::derive(move || ui.link.get() == Link::Online);
    // Lost after having been up (not the first connection of the page, nor a sign-out).
    let link_lost = Signal::derive(move || {
        let link = ui.link.get();
        matches!(link, Link::Retrying(_))
            || (link == Link::Connecting && ui.model.with(|m| m.ready))
    });
    let notice = Memo::new(move |_| ui.model.with(|m| m.notice.clone()));
    let rooms = Memo::new(move |_| {
        let query = ui.query.with(|q| lower(q.trim()));
        ui.model.with(|m| {
            std::sync::Arc::new(
                m.rooms
                    .iter()
                    .filter(|r| finds(&query, &r.title))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        })
    });
    // Escape closes what is open: the icon bar's panel, a contact's menu, or (from inside
    // it) a conversation window (`ConversationWindow` handles that one).
    let on_escape = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() != "Escape" || ev.default_prevented() {
            return;
        }
        if ui.panel.get_untracked().is_some() {
            ui.panel.set(None);
        } else if ui.menu.get_untracked().is_some() {
            ui.menu.set(None);
        }
    };
    let rooms_total =
        Memo::new(move |_| ui.model.with(|m| m.rooms_total.max(m.rooms.len() as i64)));
    let all_rooms = Memo::new(move |_| ui.model.with(|m| m.rooms.len()));
    let open = Memo::new(move |_| ui.model.with(|m| m.open.clone()));
    view! {
        <main class="desktop" class:link-down=move || link_lost.get() on:keydown=on_escape>
            <section class="window main-window" aria-labelledby="main-title">
                <header class="titlebar"><span class="titlebar-logo" aria-hidden="true"></span><h1 id="main-title">"Messenger"</h1><WindowControls ui=ui/></header>
                <MeCard ui=ui link_text=link_text link_up=link_up/>
                {move || link_lost.get().then(|| view! {
                    <div class="link-banner" role="alert">
                        <span class="link-banner-icon" aria-hidden="true"></span>
                        <span class="link-banner-text">
                            <strong>"You are offline."</strong>" "
                            {move || match ui.link.get() {
                                Link::Retrying(s) => format!("The connection to the server was lost; reconnecting in {s} s…"),
                                _ => "Reconnecting…".to_owned(),
                            }}
                            " Contacts' status is unknown until then; what you send waits and goes out when it is back."
                        </span>
                        <button type="button" on:click=move |_| net::socket::retry_now(ui)>"Retry now"</button>
                    </div>
                })}
                {move || notice.get().map(|n| view! {
                    <p class="notice" role="alert">{n} " "
                        <button class="link-button" on:click=move |_| ui.model.update(|m| m.notice = None)>"Dismiss"</button>
                    </p>
                })}
                <Toolbar ui=ui/>
                <Search ui=ui/>
                <nav class="contact-list" aria-label="Contacts, conversations and rooms">
                    <ContactList ui=ui/>
                    <h2 class="group-title">"Conversations (" {move || dms.with(Vec::len)} ")"</h2>
                    <ul>
                        <For each=move || dms.get() key=|c| c.0 children=move |(id, kind, peer)| {
                            let title = Memo::new(move |_| ui.model.with(|m| m.conv(id).map(|c| c.title.clone()).unwrap_or_default()));
                            // A conversation's dot: the other member's presence, as this user may see it.
                            let peer_status = Memo::new(move |_| peer
                                .and_then(|p| ui.presence_of(p).map(|p| p.status))
                                .unwrap_or(Status::Offline));
                            view! {
                                <li>
                                    <button class="contact" on:click=move |_| actions::open_and_focus(ui, id)>
                                        {if kind == ConversationKind::Group {
                                            view! { <span class="group-icon" aria-hidden="true"></span> }.into_any()
                                        } else {
                                            view! { <span class=move || status_class(peer_status.get()) aria-hidden="true"></span> }.into_any()
                                        }}
                                        <span class="contact-name">{move || title.get()}</span>
                                        <UnreadBadge ui=ui conv=id/>
                                    </button>
                                </li>
                            }
                        }/>
                    </ul>
                    {move || dms.with(Vec::is_empty).then(|| view! { <p class="hint">{move || if ui.query.with(|q| q.trim().is_empty()) { "No conversations yet: type a username in the search box to start one." } else { "No conversation matches." }}</p> })}
                    <h2 class="group-title">"Rooms (" {move || rooms_total.get()} ")"</h2>
                    <ul>
                        <For each=move || rooms.get().as_ref().clone() key=|r| (r.id, r.joined) children=move |r| {
                            let id = r.id;
                            let joined = Memo::new(move |_| ui.model.with(|m| m.conv(id).is_some()));
                            view! {
                                <li>
                                    <button class="contact room" on:click=move |_| actions::open_room(ui, id)>
                                        <span class="room-icon" aria-hidden="true"></span>
                                        <span class="contact-name">{r.title.clone()}</span>
                                        {(!r.joined).then(|| view! { <span class="hint">"join"</span> })}
                                        {move || joined.get().then(|| view! { <UnreadBadge ui=ui conv=id/> })}
                                    </button>
                                </li>
                            }
                        }/>
                    </ul>
                    {move || (all_rooms.get() < rooms_total.get() as usize).then(|| view! {
                        <button class="link-button more-rooms" on:click=move |_| actions::more_rooms(ui)>"More rooms…"</button>
                    })}
                </nav>
            </section>
            <div class="windows">
                <For
                    each=move || open.get()
                    key=|id| *id
                    children=move |id| view! { <ConversationWindow ui=ui id=id/> }
                />
            </div>
            <Toasts ui=ui/>
            {move || (ui.link.get() == Link::Ended).then(|| view! { <SessionEnded ui=ui/> })}
        </main>
    }
}
