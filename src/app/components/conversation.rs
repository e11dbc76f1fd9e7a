//! A conversation window: the contact header, the history (older messages load on scroll
//! up), pending lines, the typing line, and the compose box with emoticons, nudge and send.

use super::card::{focus_later, status_class, EmoticonText, Picture};
use super::files::{send_files, AttachButton, FileBody, UploadList, Uploads};
use crate::app::{
    actions,
    emoticons::ALL as EMOTICONS,
    model::{group_starts, shown_name, typing_text, Line, Pending},
    state::Ui,
};
use crate::protocol::{ContactState, ConversationKind, MessageKind, Status, MAX_BODY_CHARS};
use leptos::prelude::*;

/// A conversation window's size as the layout makes it (CSS pixels; style/main.css).
const DEFAULT_WIDTH: i32 = 440;
const DEFAULT_HEIGHT: i32 = 540;

/// A conversation's unread count, as a badge (nothing at 0).
#[component]
pub fn UnreadBadge(ui: Ui, conv: i64) -> impl IntoView {
    let n = Memo::new(move |_| ui.model.with(|m| m.conv(conv).map_or(0, |c| c.unread)));
    move || {
        let n = n.get();
        (n > 0).then(|| view! { <span class="unread" aria-label=format!("{n} unread")>{n}</span> })
    }
}

#[component]
pub fn ConversationWindow(ui: Ui, id: i64) -> impl IntoView {
    // What does not change for a conversation, read once.
    let (kind, peer) = ui.model.with_untracked(|m| {
        m.conv(id)
            .map_or((ConversationKind::Room, None), |c| (c.kind, c.peer))
    });
    let title = Memo::new(move |_| {
        ui.model
            .with(|m| m.conv(id).map(|c| c.title.clone()).unwrap_or_default())
    });
    let lines = Memo::new(move |_| {
        ui.model
            .with(|m| m.conv(id).map(|c| c.lines.clone()).unwrap_or_default())
    });
    let pending = Memo::new(move |_| {
        ui.model
            .with(|m| m.conv(id).map(|c| c.pending.clone()).unwrap_or_default())
    });
    let typing = Memo::new(move |_| {
        ui.model
            .with(|m| m.conv(id).and_then(|c| typing_text(&c.typing)))
    });
    let notice = Memo::new(move |_| ui.model.with(|m| m.conv(id).and_then(|c| c.notice.clone())));
    let shaking = Memo::new(move |_| ui.model.with(|m| m.conv(id).is_some_and(|c| c.shaking)));
    let nudges = Memo::new(move |_| ui.model.with(|m| m.conv(id).map_or(0, |c| c.nudges)));
    let loading_older = Memo::new(move |_| {
        ui.model
            .with(|m| m.conv(id).is_some_and(|c| c.loading_older))
    });
    let at_start = Memo::new(move |_| ui.model.with(|m| m.conv(id).is_some_and(|c| c.at_start())));
    // Whether the messages before the first one shown expired (the server's retention).
    let expired = Memo::new(move |_| {
        ui.model.with(|m| {
            m.conv(id)
                .is_some_and(|c| c.expired_before > c.visible_after + 1)
        })
    });
    let members = Memo::new(move |_| ui.model.with(|m| m.conv(id).map_or(0, |c| c.members.len())));
    let my_picture = Memo::new(move |_| ui.model.with(|m| m.picture.clone()));
    let my_status = Memo::new(move |_| ui.model.with(|m| m.status));
    let draft = Memo::new(move |_| ui.draft(id));
    // The other member's presence, in a one-to-one conversation.
    let presence = Memo::new(move |_| peer.and_then(|p| ui.presence_of(p)));
    // Who is in a room (loaded when its window opens, again when someone joins or leaves).
    let room_members = RwSignal::new(None::<crate::protocol::http::RoomMembers>);
    let group_members = Memo::new(move |_| {
        ui.model.with(|m| {
            m.conv(id)
                .map(|c| {
                    c.members
                        .iter()
                        .map(|u| u.display_name.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    });

    // Files on their way (sent by the button, a drop on the window or a pasted image).
    let uploads: Uploads = RwSignal::new_local(Vec::new());
    let history_id = format!("history-{id}");
    let input_id = format!("compose-{id}");
    let last_seq = Memo::new(move |_| lines.with(|l| l.last().map(|x| x.seq)));
    // Each line with whether it starts a group under its own "X says:".
    let shown = Memo::new(move |_| {
        lines.with(|l| {
            let starts = group_starts(l);
            l.iter().cloned().zip(starts).collect::<Vec<_>>()
        })
    });
    // The pending lines, the first under its own "X says:" unless it continues the
    // user's own last group.
    let pending_shown = Memo::new(move |_| {
        let continues = lines.with(|l| {
            l.iter()
                .rev()
                .find(|x| !matches!(x.kind, MessageKind::Delete | MessageKind::Deleted))
                .is_some_and(|x| x.mine && x.kind == MessageKind::Text)
        });
        pending.with(|p| {
            p.iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), i == 0 && !continues))
                .collect::<Vec<_>>()
        })
    });
    let pending_count = Memo::new(move |_| pending.with(|p| p.len()));
    // Whether the reader is at the bottom of the history (they follow the talk), and
    // whether messages arrived below while they were reading further up.
    let following = StoredValue::new(true);
    let unseen = RwSignal::new(false);
    let hid = history_id.clone();
    // New messages: followed to the bottom while the reader is there, and always after
    // one's own send; otherwise the reader keeps their place and a marker says what came.
    // The scroll waits for the next frame, when the new lines are laid out (scrolling at
    // once went to the bottom of the old height, which is why windows stopped following).
    // Older messages put above do not move the view.
    Effect::new(move |prev: Option<(Option<i64>, usize)>| {
        let now = (last_seq.get(), pending_count.get());
        let sent = prev.is_some_and(|(_, p)| now.1 > p);
        if prev.is_none() || following.get_value() || sent {
            let hid = hid.clone();
            request_animation_frame(move || scroll_to_bottom(&hid));
            unseen.set(false);
        } else if prev.is_some_and(|(seq, _)| now.0 > seq) {
            unseen.set(true);
        }
        now
    });
    let jump_id = history_id.clone();
    if kind == ConversationKind::Room {
        let comings = Memo::new(move |_| {
            lines.with(|l| {
                l.iter()
                    .filter(|x| matches!(x.kind, MessageKind::Join | MessageKind::Leave))
                    .count()
            })
        });
        Effect::new(move |_| {
            comings.track();
            leptos::task::spawn_local(async move {
                let path = crate::protocol::http::paths::at(
                    crate::protocol::http::paths::ROOM_MEMBERS,
                    id,
                );
                if let Ok(found) =
                    crate::app::net::http::get::<crate::protocol::http::RoomMembers>(&path).await
                {
                    room_members.set(Some(found));
                }
            });
        });
    }
    let over_limit = move || draft.with(|d| d.chars().count() > MAX_BODY_CHARS);
    // Dragged by the title bar (moved from where the layout puts it), resized from its
    // corner; both kept with the page (`keep`).
    let geometry = Memo::new(move |_| {
        ui.geometry
            .with(|g| g.get(&id).copied().unwrap_or_default())
    });
    let drag = StoredValue::new(None::<(i32, i32, i32, i32)>);
    let on_drag_start = move |ev: leptos::ev::PointerEvent| {
        use wasm_bindgen::JsCast;
        let on_button = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|t| t.closest("button").ok().flatten().is_some());
        if on_button || ev.button() != 0 {
            return;
        }
        let g = geometry.get_untracked();
        drag.set_value(Some((ev.client_x(), ev.client_y(), g.x, g.y)));
        if let Some(bar) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        {
            let _ = bar.set_pointer_capture(ev.pointer_id());
        }
    };
    let on_drag = move |ev: leptos::ev::PointerEvent| {
        if let Some((px, py, x, y)) = drag.get_value() {
            let (nx, ny) = (x + ev.client_x() - px, y + ev.client_y() - py);
            ui.geometry.update(|g| {
                let e = g.entry(id).or_default();
                e.x = nx;
                e.y = ny;
            });
        }
    };
    let on_drag_end = move |_: leptos::ev::PointerEvent| drag.set_value(None);
    // A resize from the corner ends with the pointer released over the window.
    let on_resized = move |ev: leptos::ev::PointerEvent| {
        use wasm_bindgen::JsCast;
        let Some(el) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
        else {
            return;
        };
        let now = (el.offset_width(), el.offset_height());
        let g = geometry.get_untracked();
        let kept = (g.w, g.h);
        let untouched = kept == (0, 0) && now == (DEFAULT_WIDTH, DEFAULT_HEIGHT);
        if now != kept && !untouched {
            let (w, h) = now;
            ui.geometry.update(|all| {
                let e = all.entry(id).or_default();
                e.w = w;
                e.h = h;
            });
        }
    };
    view! {
        <section class="window conv-window" class:shaking=move || shaking.get()
            on:keydown=move |ev| {
                if ev.key() == "Escape" && !ev.default_prevented() {
                    ev.prevent_default();
                    actions::close_window(ui, id);
                }
            }
            style:translate=move || { let g = geometry.get(); (g.x != 0 || g.y != 0).then(|| format!("{}px {}px", g.x, g.y)) }
            style:width=move || { let g = geometry.get(); (g.w > 0).then(|| format!("{}px", g.w)) }
            style:height=move || { let g = geometry.get(); (g.h > 0).then(|| format!("{}px", g.h)) }
            on:pointerup=on_resized
            on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
            on:drop=move |ev: leptos::ev::DragEvent| {
                ev.prevent_default();
                send_files(uploads, id, ev.data_transfer().and_then(|d| d.files()));
            }
            data-nudges=move || nudges.get()
            aria-label=move || if kind == ConversationKind::Group {
                format!("Group conversation with {}", title.get())
            } else {
                format!("Conversation with {}", title.get())
            }>
            <header class="titlebar draggable" on:pointerdown=on_drag_start on:pointermove=on_drag
                on:pointerup=on_drag_end on:pointercancel=on_drag_end>
                <span class="titlebar-logo" aria-hidden="true"></span>
                <span class="conv-title">{move || title.get()}</span>
                {(kind == ConversationKind::Group).then(|| view! {
                    <button class="leave-button" title="Leave this group conversation"
                        on:click=move |_| actions::leave(ui, id)>"Leave"</button>
                })}
                {(kind == ConversationKind::Dm).then(|| view! {
                    <button class="leave-button" title="Delete this conversation from your list (the other person keeps theirs; a new message brings it back)"
                        aria-label=move || format!("Delete the conversation with {} from your list", title.get())
                        on:click=move |_| actions::forget(ui, id)>"Delete"</button>
                })}
                <button class="close-button" aria-label=move || format!("Close the conversation with {}", title.get())
                    on:click=move |_| actions::close_window(ui, id)>"×"</button>
            </header>
            <div class="conv-body">
            <div class="conv-main">
            <div class="conv-to">
                "To: " <strong>{move || view! { <EmoticonText text=title.get()/> }}</strong>
                {(kind == ConversationKind::Group).then(|| view! {
                    <span class="hint member-count">{move || format!(" ({} members)", members.get())}</span>
                })}
                {(kind != ConversationKind::Room).then(|| view! { <InviteForm ui=ui conv=id/> })}
                {move || presence.get().map(|p| view! {
                    " "
                    <span class=status_class(p.status) aria-hidden="true"></span>
                    <span class="conv-peer-status">{format!(" ({})", p.status.label())}</span>
                    {(!p.personal_message.is_empty()).then(|| view! { <span class="personal-message" title=p.personal_message.clone()><EmoticonText text=p.personal_message.clone()/></span> })}
                })}
            </div>
            <div class="history" id=history_id role="log" aria-label="Messages" tabindex="0"
                on:scroll=move |ev| {
                    let el = event_target::<web_sys::Element>(&ev);
                    let at_bottom = el.scroll_height() - el.scroll_top() - el.client_height() < 24;
                    following.set_value(at_bottom);
                    if at_bottom {
                        unseen.set(false);
                    }
                    if el.scroll_top() < 40 {
                        actions::load_older(ui, id);
                    }
                }>
                {move || loading_older.get().then(|| view! { <p class="hint">"Loading older messages…"</p> })}
                {move || at_start.get().then(|| if expired.get() {
                    view! { <p class="hint expired">"Earlier messages have expired: this server keeps messages for a limited time."</p> }.into_any()
                } else {
                    view! { <p class="hint">"This is the start of the conversation."</p> }.into_any()
                })}
                <For each=move || shown.get() key=|(l, starts)| (l.seq, l.kind, *starts) children=move |(l, starts)| view! { <HistoryLine ui=ui conv=id line=l starts=starts/> }/>
                <For each=move || pending_shown.get() key=|(p, starts)| (p.client_id.clone(), p.failed.clone(), *starts)
                    children=move |(p, starts)| view! { <PendingLine ui=ui pending=p starts=starts/> }/>
            </div>
            <UploadList uploads=uploads conv=id/>
            {move || unseen.get().then(|| {
                let jump_id = jump_id.clone();
                view! {
                    <button type="button" class="new-messages"
                        on:click=move |_| {
                            following.set_value(true);
                            unseen.set(false);
                            scroll_to_bottom(&jump_id);
                        }>"New messages ↓"</button>
                }
            })}
            <p class="typing" role="status" aria-live="polite">{move || typing.get()}</p>
            {move || presence.get().filter(|p| p.status == Status::Offline).map(|_| view! {
                <p class="offline-note">{format!("{} is offline: your messages will be delivered when they sign in.", title.get())}</p>
            })}
            {move || notice.get().map(|n| view! { <p class="conv-notice" role="alert">{n}</p> })}
            <form class="compose" on:submit=move |ev| {
                ev.prevent_default();
                actions::send(ui, id);
            }>
                <label class="visually-hidden" for=input_id.clone()>{move || format!("Message to {}", title.get())}</label>
                <textarea id=input_id.clone() rows="3" prop:value=move || draft.get()
                    on:input=move |ev| actions::typed(ui, id, event_target_value(&ev))
                    on:paste=move |ev: leptos::ev::ClipboardEvent| {
                        // A pasted picture (or file) is sent; pasted text goes in the box.
                        let files = ev.clipboard_data().and_then(|d| d.files()).filter(|f| f.length() > 0);
                        if files.is_some() {
                            ev.prevent_default();
                            send_files(uploads, id, files);
                        }
                    }
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            actions::send(ui, id);
                        }
                    }></textarea>
                <div class="compose-bar">
                    <span class="hint" class:form-error=over_limit>{move || format!("{} / {MAX_BODY_CHARS}", draft.with(|d| d.chars().count()))}</span>
                    <span class="compose-actions">
                        <EmoticonPicker ui=ui conv=id input_id=input_id.clone()/>
                        <AttachButton uploads=uploads conv=id/>
                        // Nudges fit one-to-one and group conversations, not rooms.
                        {(kind != ConversationKind::Room).then(|| view! {
                            <button type="button" class="nudge-button" title="Shake the window of the others"
                                on:click=move |_| actions::nudge(ui, id)>"Nudge"</button>
                        })}
                        <button type="submit" class="primary">"Send"</button>
                    </span>
                </div>
            </form>
            </div>
            // The pictures, large, as Messenger showed them: the contact's at the top, the
            // user's own at the bottom.
            <aside class="conv-side">
                {(kind == ConversationKind::Room).then(|| view! {
                    <h3 class="side-title">{move || room_members.with(|r| r.as_ref().map_or("In this room".to_owned(), |r| format!("In this room ({})", r.count)))}</h3>
                    <ul class="side-members" aria-label="Members of this room">
                        {move || room_members.with(|r| r.as_ref().map(|r| r.members.iter().map(|u| view! {
                            <li><EmoticonText text=u.display_name.clone()/></li>
                        }).collect_view()))}
                    </ul>
                })}
                {(kind == ConversationKind::Group).then(|| view! {
                    <h3 class="side-title">{move || format!("Members ({})", group_members.with(Vec::len))}</h3>
                    <ul class="side-members" aria-label="Members of this conversation">
                        {move || group_members.get().into_iter().map(|name| view! { <li><EmoticonText text=name/></li> }).collect_view()}
                    </ul>
                })}
                {peer.map(|peer| {
                    view! {
                        <Picture user=peer
                            version=Signal::derive(move || presence.get().and_then(|p| p.picture))
                            status=Signal::derive(move || presence.get().map_or(Status::Offline, |p| p.status))
                            alt=Signal::derive(move || format!("Display picture of {}", title.get()))
                            size="xl"/>
                    }
                })}
                <span class="conv-side-gap"></span>
                <Picture user=ui.me.with_value(|m| m.id) version=my_picture status=my_status
                    alt="Your display picture".to_owned() size="xl"/>
            </aside>
            </div>
        </section>
    }
}

/// A time of day as the user's clock shows it ("14:05"); empty where there is no browser.
fn clock(at: i64) -> String {
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
        format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
    }
    #[cfg(not(any(feature = "hydrate", feature = "csr")))]
    {
        let _ = at;
        String::new()
    }
}

/// The date and time of a message, for its tooltip.
fn stamp(at: i64) -> String {
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
        String::from(d.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED))
    }
    #[cfg(not(any(feature = "hydrate", feature = "csr")))]
    {
        let _ = at;
        String::new()
    }
}

/// One committed message of the history; `starts` puts "X says:" and the time over it.
#[component]
fn HistoryLine(ui: Ui, conv: i64, line: Line, starts: bool) -> impl IntoView {
    let l = line;
    match l.kind {
        MessageKind::Nudge => view! {
            <div class="line nudge" data-seq=l.seq>
                {if l.mine { "You sent a nudge.".to_owned() } else { format!("{} sent a nudge.", l.from_name) }}
            </div>
        }
        .into_any(),
        MessageKind::Text => {
            let seq = l.seq;
            view! {
                <div class="line" class:mine=l.mine class:continued=!starts data-seq=l.seq title=stamp(l.at)>
                    {starts.then(|| view! {
                        <span class="who"><EmoticonText text=l.from_name.clone()/> " says:" <time class="said-at">{clock(l.at)}</time></span>
                    })}
                    {l.mine.then(|| view! {
                        <button class="delete-button" title="Delete this message for everyone"
                            aria-label="Delete this message"
                            on:click=move |_| actions::delete_message(ui, conv, seq)>"Delete"</button>
                    })}
                    <p class="body"><EmoticonText text=l.body/></p>
                </div>
            }
            .into_any()
        }
        MessageKind::File => {
            let (seq, mine, at, from_name) = (l.seq, l.mine, l.at, l.from_name.clone());
            view! {
                <div class="line" class:mine=mine class:continued=!starts data-seq=seq title=stamp(at)>
                    {starts.then(|| view! {
                        <span class="who"><EmoticonText text=from_name/> " says:" <time class="said-at">{clock(at)}</time></span>
                    })}
                    {mine.then(|| view! {
                        <button class="delete-button" title="Delete this file for everyone"
                            aria-label="Delete this file"
                            on:click=move |_| actions::delete_message(ui, conv, seq)>"Delete"</button>
                    })}
                    <FileBody line=l/>
                </div>
            }
            .into_any()
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
        // A deleted message leaves its mark; the deletion itself is not shown.
        MessageKind::Deleted => view! {
            <div class="line tombstone" data-seq=l.seq>
                <p class="body">"message deleted"</p>
            </div>
        }
        .into_any(),
        MessageKind::Delete => ().into_any(),
    }
}

/// A message sent but not acknowledged yet ("sending…"), or refused for good.
#[component]
fn PendingLine(ui: Ui, pending: Pending, starts: bool) -> impl IntoView {
    let failed = pending.failed.map(|f| format!("Not sent: {f}"));
    let status = move || match &failed {
        Some(f) => f.clone(),
        None if ui.link.get() == crate::app::state::Link::Online => "sending…".to_owned(),
        None => "waiting for the connection…".to_owned(),
    };
    view! {
        <div class="line mine pending" class:continued=!starts>
            {starts.then(|| view! { <span class="who">{ui.me.with_value(|m| m.display_name.clone())} " says:"</span> })}
            <p class="body"><EmoticonText text=pending.body/></p>
            <span class="hint pending-state">{status}</span>
        </div>
    }
}

/// "Invite someone": the user's online and offline contacts who are not in the
/// conversation yet. From a one-to-one conversation it starts a new group.
#[component]
fn InviteForm(ui: Ui, conv: i64) -> impl IntoView {
    let open = RwSignal::new(false);
    let chosen = RwSignal::new(String::new());
    let inside = Memo::new(move |_| {
        ui.model.with(|m| {
            m.conv(conv)
                .map(|c| c.members.iter().map(|u| u.id).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let candidates = move || {
        inside.with(|inside| {
            ui.contacts.with(|contacts| {
                contacts
                    .iter()
                    .filter(|c| c.state == ContactState::Accepted && !c.blocked)
                    .filter(|c| !inside.contains(&c.user.id))
                    .map(|c| (c.user.id, shown_name(c).to_owned()))
                    .collect::<Vec<_>>()
            })
        })
    };
    let select_id = format!("invite-{conv}");
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
                            actions::invite(ui, conv, user);
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

/// The emoticon picker of a conversation window: inserts a shortcut into the draft.
#[component]
fn EmoticonPicker(ui: Ui, conv: i64, input_id: String) -> impl IntoView {
    let open = RwSignal::new(false);
    let panel_id = format!("emoticons-{conv}");
    let toggle_id = format!("emoticons-button-{conv}");
    let toggle = toggle_id.clone();
    let first = format!("#{panel_id} button");
    // Keys are heard on the whole picker, its button included: an Escape pressed before the
    // focus has moved into the opened panel closes the panel, not the window around it.
    // Arrow keys move between the emoticons; Escape goes back to the button.
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let key = ev.key();
        if key == "Escape" {
            if open.get_untracked() {
                ev.prevent_default();
                open.set(false);
                focus_later(format!("#{toggle}"));
            }
            return;
        }
        let forward = matches!(key.as_str(), "ArrowRight" | "ArrowDown");
        let back = matches!(key.as_str(), "ArrowLeft" | "ArrowUp");
        if !forward && !back {
            return;
        }
        actions::focus_sibling(&ev, forward, |t| {
            t.class_name()
                .split_whitespace()
                .any(|c| c == "emoticon-choice")
        });
    };
    view! {
        <span class="emoticon-picker" on:keydown=on_key>
            <button type="button" class="emoticon-button" id=toggle_id.clone() aria-label="Emoticons" aria-haspopup="true"
                aria-expanded=move || open.get().to_string() aria-controls=panel_id.clone()
                on:click={
                    let first = first.clone();
                    move |_| {
                        open.update(|o| *o = !*o);
                        if open.get_untracked() {
                            focus_later(first.clone());
                        }
                    }
                }>
                <span aria-hidden="true" inner_html=EMOTICONS[0].svg></span>
            </button>
            <div class="emoticon-panel" id=panel_id role="group" aria-label="Choose an emoticon" hidden=move || !open.get()>
                {EMOTICONS.iter().map(|e| {
                    let input_id = input_id.clone();
                    view! {
                        <button type="button" class="emoticon-choice" aria-label=e.name title=format!("{} {}", e.name, e.codes[0])
                            on:click=move |_| {
                                let mut d = ui.draft(conv);
                                if !d.is_empty() && !d.ends_with(' ') {
                                    d.push(' ');
                                }
                                d.push_str(e.codes[0]);
                                d.push(' ');
                                ui.set_draft(conv, d);
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

fn scroll_to_bottom(id: &str) {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
    {
        el.set_scroll_top(el.scroll_height());
    }
}
