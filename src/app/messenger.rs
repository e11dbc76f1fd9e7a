//! The `MessengerApp` island: the main window (you, your link state, conversations and rooms)
//! and the conversation windows. Its live behaviour is in `client` (browser only).

use super::act;
use super::contacts::{
    focus_later, status_class, ContactList, ContactTools, MeCard, Picture, Toasts,
};
use super::emoticons::{split, Piece, ALL as EMOTICONS};
use super::state::{shown_name, typing_text, Conv, Link, Ui};
use crate::protocol::{
    ContactState, ConversationKind, MessageKind, Status, UserSummary, MAX_BODY_CHARS,
};
use leptos::prelude::*;

#[island]
pub fn MessengerApp(me: UserSummary) -> impl IntoView {
    let ui = Ui::new(me.clone(), act::mark_read);
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            act::start(ui);
        }
    });
    let dm_name = RwSignal::new(String::new());
    // One-to-one and group conversations (rooms have their own list).
    let dms = move || {
        ui.convs
            .get()
            .into_iter()
            .filter(|c| c.kind != ConversationKind::Room)
            .collect::<Vec<_>>()
    };
    // The card shows the link only when it is not simply up (screen readers hear it all).
    let link_text = Signal::derive(move || match ui.link.get() {
        Link::Connecting => "Connecting…".to_owned(),
        Link::Online => "Connected".to_owned(),
        Link::Retrying(s) => format!("Connection lost; reconnecting in {s} s…"),
        Link::Ended => "Signed out".to_owned(),
    });
    let link_up = Signal::derive(move || ui.link.get() == Link::Online);
    // A conversation's dot: the other member's presence, as this user may see it.
    let peer_status = move |c: &Conv| {
        c.peer
            .and_then(|p| ui.presence_of(p))
            .map_or(Status::Offline, |p| p.status)
    };
    let open_windows = move || -> Vec<Conv> {
        ui.open
            .get()
            .into_iter()
            .filter_map(|id| ui.conv(id))
            .collect()
    };
    view! {
        <div class="desktop">
            <section class="window main-window" aria-labelledby="main-title">
                <header class="titlebar"><span class="titlebar-logo" aria-hidden="true"></span><span id="main-title">"Messenger"</span></header>
                <MeCard ui=ui link_text=link_text link_up=link_up/>
                {move || ui.notice.get().map(|n| view! {
                    <p class="notice" role="alert">{n} " "
                        <button class="link-button" on:click=move |_| ui.notice.set(None)>"Dismiss"</button>
                    </p>
                })}
                <ContactTools ui=ui/>
                <form class="start-chat" on:submit=move |ev| {
                    ev.prevent_default();
                    let name = dm_name.get_untracked();
                    if !name.trim().is_empty() {
                        act::open_dm(ui, name);
                        dm_name.set(String::new());
                    }
                }>
                    <label for="start-chat-username">"Start a conversation with"</label>
                    <div class="start-chat-row">
                        <input id="start-chat-username" placeholder="username" autocomplete="off" bind:value=dm_name/>
                        <button type="submit">"Chat"</button>
                    </div>
                </form>
                <nav class="contact-list" aria-label="Contacts, conversations and rooms">
                    <ContactList ui=ui/>
                    <h2 class="group-title">"Conversations (" {move || dms().len()} ")"</h2>
                    <ul>
                        <For each=dms key=|c| c.id children=move |c: Conv| view! {
                            <li>
                                <button class="contact" on:click=move |_| ui.open_window(c.id)>
                                    {if c.kind == ConversationKind::Group {
                                        view! { <span class="group-icon" aria-hidden="true"></span> }.into_any()
                                    } else {
                                        view! { <span class=move || status_class(peer_status(&c)) aria-hidden="true"></span> }.into_any()
                                    }}
                                    <span class="contact-name">{move || c.title.get()}</span>
                                    <UnreadBadge conv=c/>
                                </button>
                            </li>
                        }/>
                    </ul>
                    {move || dms().is_empty().then(|| view! { <p class="hint">"No conversations yet: start one above."</p> })}
                    <h2 class="group-title">"Rooms (" {move || ui.rooms_total.get().max(ui.rooms.with(Vec::len) as i64)} ")"</h2>
                    <ul>
                        <For each=move || ui.rooms.get() key=|r| (r.id, r.joined) children=move |r| {
                            let id = r.id;
                            view! {
                                <li>
                                    <button class="contact room" on:click=move |_| act::open_room(ui, id)>
                                        <span class="room-icon" aria-hidden="true"></span>
                                        <span class="contact-name">{r.title.clone()}</span>
                                        {(!r.joined).then(|| view! { <span class="hint">"join"</span> })}
                                        {move || ui.conv(id).map(|c| view! { <UnreadBadge conv=c/> })}
                                    </button>
                                </li>
                            }
                        }/>
                    </ul>
                    {move || (ui.rooms.with(Vec::len) < ui.rooms_total.get() as usize).then(|| view! {
                        <button class="link-button more-rooms" on:click=move |_| act::more_rooms(ui)>"More rooms…"</button>
                    })}
                </nav>
            </section>
            <div class="windows">
                <For
                    each=open_windows
                    key=|c| c.id
                    children=move |c| view! { <ConversationWindow ui=ui conv=c/> }
                />
            </div>
            <Toasts ui=ui/>
            {move || (ui.link.get() == Link::Ended).then(|| view! { <SessionEnded ui=ui/> })}
        </div>
    }
}

#[component]
fn UnreadBadge(conv: Conv) -> impl IntoView {
    move || {
        let n = conv.unread.get();
        (n > 0).then(|| view! { <span class="unread" aria-label=format!("{n} unread")>{n}</span> })
    }
}

#[component]
fn ConversationWindow(ui: Ui, conv: Conv) -> impl IntoView {
    let id = conv.id;
    let history_id = format!("history-{id}");
    let input_id = format!("compose-{id}");
    let title = conv.title;
    let last_seq = Memo::new(move |_| conv.lines.with(|l| l.last().map(|x| x.seq)));
    let pending_count = Memo::new(move |_| conv.pending.with(Vec::len));
    let hid = history_id.clone();
    // Follow new messages to the bottom (prepending older ones does not move the view).
    Effect::new(move |_| {
        last_seq.track();
        pending_count.track();
        scroll_to_bottom(&hid);
    });
    let at_start = move || {
        conv.lines
            .with(|l| l.first().is_some_and(|f| f.seq == conv.visible_after + 1))
            || (!conv.has_more.get() && conv.lines.with(Vec::is_empty))
    };
    let over_limit = move || conv.draft.with(|d| d.chars().count() > MAX_BODY_CHARS);
    view! {
        <section class="window conv-window" class:shaking=move || conv.shaking.get()
            data-nudges=move || conv.nudges.get()
            aria-label=move || if conv.kind == ConversationKind::Group {
                format!("Group conversation with {}", title.get())
            } else {
                format!("Conversation with {}", title.get())
            }>
            <header class="titlebar">
                <span class="titlebar-logo" aria-hidden="true"></span>
                <span class="conv-title">{move || title.get()}</span>
                {(conv.kind == ConversationKind::Group).then(|| view! {
                    <button class="leave-button" title="Leave this group conversation"
                        on:click=move |_| act::leave(ui, id)>"Leave"</button>
                })}
                <button class="close-button" aria-label=move || format!("Close the conversation with {}", title.get())
                    on:click=move |_| ui.close_window(id)>"×"</button>
            </header>
            <div class="conv-to">
                {conv.peer.map(|peer| {
                    let presence = Memo::new(move |_| ui.presence_of(peer));
                    view! {
                        <Picture user=peer
                            version=Signal::derive(move || presence.get().and_then(|p| p.picture))
                            status=Signal::derive(move || presence.get().map_or(Status::Offline, |p| p.status))
                            alt=Signal::derive(move || format!("Display picture of {}", title.get()))
                            size="large"/>
                    }
                })}
                "To: " <strong>{move || title.get()}</strong>
                {(conv.kind == ConversationKind::Group).then(|| view! {
                    <span class="hint member-count">{move || format!(" ({} members)", conv.members.with(Vec::len))}</span>
                })}
                {(conv.kind != ConversationKind::Room).then(|| view! { <InviteForm ui=ui conv=conv/> })}
                {move || conv.peer.and_then(|p| ui.presence_of(p)).map(|p| view! {
                    " "
                    <span class=status_class(p.status) aria-hidden="true"></span>
                    <span class="conv-peer-status">{format!(" ({})", p.status.label())}</span>
                    {(!p.personal_message.is_empty()).then(|| view! { <span class="personal-message">{p.personal_message}</span> })}
                })}
            </div>
            <div class="history" id=history_id role="log" aria-label="Messages" tabindex="0"
                on:scroll=move |ev| {
                    if event_target::<web_sys::Element>(&ev).scroll_top() < 40 {
                        act::load_older(ui, id);
                    }
                }>
                {move || conv.loading_older.get().then(|| view! { <p class="hint">"Loading older messages…"</p> })}
                {move || at_start().then(|| view! { <p class="hint">"This is the start of the conversation."</p> })}
                <For each=move || conv.lines.get() key=|l| (l.seq, l.kind) children=move |l| match l.kind {
                    MessageKind::Nudge => view! {
                        <div class="line nudge" data-seq=l.seq>
                            {if l.mine { "You sent a nudge.".to_owned() } else { format!("{} sent a nudge.", l.from_name) }}
                        </div>
                    }.into_any(),
                    MessageKind::Text => {
                        let seq = l.seq;
                        view! {
                            <div class="line" class:mine=l.mine data-seq=l.seq>
                                <span class="who">{l.from_name} " says:"</span>
                                {l.mine.then(|| view! {
                                    <button class="delete-button" title="Delete this message for everyone"
                                        aria-label="Delete this message"
                                        on:click=move |_| act::delete_message(ui, id, seq)>"Delete"</button>
                                })}
                                <p class="body"><MessageText text=l.body/></p>
                            </div>
                        }.into_any()
                    }
                    MessageKind::Join | MessageKind::Leave => {
                        let verb = if l.kind == MessageKind::Join { "joined" } else { "left" };
                        let text = if l.mine {
                            format!("You have {verb} the conversation.")
                        } else {
                            format!("{} has {verb} the conversation.", l.from_name)
                        };
                        view! { <div class="line event" data-seq=l.seq>{text}</div> }.into_any()
                    }
                    // Deleted messages and the deletions themselves are not shown.
                    MessageKind::Delete | MessageKind::Deleted => ().into_any(),
                }/>
                <For each=move || conv.pending.get() key=|p| (p.client_id.clone(), p.failed.clone()) children=move |p| view! {
                    <div class="line mine pending">
                        <span class="who">{ui.me.with_value(|m| m.display_name.clone())} " says:"</span>
                        <p class="body"><MessageText text=p.body/></p>
                        <span class="hint">{p.failed.map(|f| format!("Not sent: {f}")).unwrap_or_else(|| "sending…".to_owned())}</span>
                    </div>
                }/>
            </div>
            <p class="typing" role="status" aria-live="polite">{move || conv.typing.with(|t| typing_text(t))}</p>
            {move || conv.notice.get().map(|n| view! { <p class="conv-notice" role="alert">{n}</p> })}
            <form class="compose" on:submit=move |ev| {
                ev.prevent_default();
                act::send(ui, id);
            }>
                <label class="visually-hidden" for=input_id.clone()>{move || format!("Message to {}", title.get())}</label>
                <textarea id=input_id.clone() rows="3" prop:value=move || conv.draft.get()
                    on:input=move |ev| {
                        conv.draft.set(event_target_value(&ev));
                        act::typed(ui, id);
                    }
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            act::send(ui, id);
                        }
                    }></textarea>
                <div class="compose-bar">
                    <Picture user=ui.me.with_value(|m| m.id) version=ui.picture status=ui.status
                        alt="Your display picture".to_owned() size="small"/>
                    <span class="hint" class:form-error=over_limit>{move || format!("{} / {MAX_BODY_CHARS}", conv.draft.with(|d| d.chars().count()))}</span>
                    <span class="compose-actions">
                        <EmoticonPicker conv=conv input_id=input_id.clone()/>
                        <button type="button" class="nudge-button" title="Shake the window of the others"
                            on:click=move |_| act::nudge(ui, id)>"Nudge"</button>
                        <button type="submit" class="primary">"Send"</button>
                    </span>
                </div>
            </form>
        </section>
    }
}

/// "Invite someone": the user's online and offline contacts who are not in the
/// conversation yet. From a one-to-one conversation it starts a new group.
#[component]
fn InviteForm(ui: Ui, conv: Conv) -> impl IntoView {
    let open = RwSignal::new(false);
    let chosen = RwSignal::new(String::new());
    let candidates = move || {
        let inside: Vec<i64> = conv.members.with(|m| m.iter().map(|u| u.id).collect());
        ui.contacts.with(|list| {
            list.iter()
                .filter(|c| c.state == ContactState::Accepted && !c.blocked)
                .filter(|c| !inside.contains(&c.user.id))
                .map(|c| (c.user.id, shown_name(c).to_owned()))
                .collect::<Vec<_>>()
        })
    };
    let select_id = format!("invite-{}", conv.id);
    view! {
        <span class="invite">
            <button type="button" class="link-button" aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)>"Invite someone"</button>
            {move || open.get().then(|| {
                let options = candidates();
                let select_id = select_id.clone();
                if options.is_empty() {
                    return view! { <p class="hint">"All your contacts are here already."</p> }.into_any();
                }
                view! {
                    <form class="invite-form" on:submit=move |ev| {
                        ev.prevent_default();
                        if let Ok(user) = chosen.get_untracked().parse::<i64>() {
                            act::invite(ui, conv.id, user);
                            open.set(false);
                        }
                    }>
                        <label for=select_id.clone()>"Contact to invite"</label>
                        <select id=select_id on:change=move |ev| chosen.set(event_target_value(&ev))>
                            <option value="">"Choose…"</option>
                            {options.into_iter().map(|(id, name)| view! {
                                <option value=id.to_string()>{name}</option>
                            }).collect_view()}
                        </select>
                        <button type="submit" class="primary">"Invite"</button>
                    </form>
                }.into_any()
            })}
        </span>
    }
}

/// A message's text with its emoticon shortcuts drawn as pictures (the text itself is kept:
/// copying a message copies what was typed).
#[component]
fn MessageText(text: String) -> impl IntoView {
    split(&text)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(t) => t.to_owned().into_any(),
            Piece::Emoticon(e) => view! {
                <span class="emoticon" role="img" aria-label=e.name title=e.codes[0] inner_html=e.svg></span>
            }
            .into_any(),
        })
        .collect_view()
}

/// The emoticon picker of a conversation window: inserts a shortcut into the draft.
#[component]
fn EmoticonPicker(conv: Conv, input_id: String) -> impl IntoView {
    let open = RwSignal::new(false);
    let panel_id = format!("emoticons-{}", conv.id);
    view! {
        <span class="emoticon-picker">
            <button type="button" class="emoticon-button" aria-label="Emoticons" aria-haspopup="true"
                aria-expanded=move || open.get().to_string() aria-controls=panel_id.clone()
                on:click=move |_| open.update(|o| *o = !*o)>
                <span aria-hidden="true" inner_html=EMOTICONS[0].svg></span>
            </button>
            <div class="emoticon-panel" id=panel_id role="group" aria-label="Choose an emoticon" hidden=move || !open.get()>
                {EMOTICONS.iter().map(|e| {
                    let input_id = input_id.clone();
                    view! {
                        <button type="button" class="emoticon-choice" aria-label=e.name title=format!("{} {}", e.name, e.codes[0])
                            on:click=move |_| {
                                conv.draft.update(|d| {
                                    if !d.is_empty() && !d.ends_with(' ') {
                                        d.push(' ');
                                    }
                                    d.push_str(e.codes[0]);
                                    d.push(' ');
                                });
                                open.set(false);
                                focus_later(format!("#{input_id}"));
                            }>
                            <span aria-hidden="true" inner_html=e.svg></span>
                        </button>
                    }
                }).collect_view()}
            </div>
        </span>
    }
}

#[component]
fn SessionEnded(ui: Ui) -> impl IntoView {
    let password = RwSignal::new(String::new());
    let me = ui.me.get_value();
    view! {
        <div class="modal-backdrop">
            <div class="window dialog" role="dialog" aria-modal="true" aria-labelledby="session-ended-title">
                <header class="titlebar"><span id="session-ended-title">"Your session has ended"</span></header>
                <div class="dialog-body">
                    {if me.is_guest {
                        view! {
                            <p>"Guest sessions cannot be resumed. Your unsent text is still in its window; copy it if you need it."</p>
                            <a class="button primary" href="/">"Back to the sign-in window"</a>
                        }.into_any()
                    } else {
                        view! {
                            <p>"Sign in again to carry on. Nothing you typed is lost."</p>
                            <form on:submit=move |ev| {
                                ev.prevent_default();
                                act::sign_in_again(ui, password.get_untracked());
                                password.set(String::new());
                            }>
                                <label for="resume-password">{format!("Password for {}", me.username)}</label>
                                <input id="resume-password" type="password" autocomplete="current-password" bind:value=password/>
                                <button type="submit" class="primary">"Sign in again"</button>
                            </form>
                        }.into_any()
                    }}
                    {move || ui.notice.get().map(|n| view! { <p class="form-error" role="alert">{n}</p> })}
                </div>
            </div>
        </div>
    }
}

fn scroll_to_bottom(id: &str) {
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
    {
        el.set_scroll_top(el.scroll_height());
    }
    #[cfg(not(any(feature = "hydrate", feature = "csr")))]
    let _ = id;
}
