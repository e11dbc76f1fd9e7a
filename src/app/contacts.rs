//! The main window's own card (name, status, personal message, sounds), the contact list
//! with its sections, requests and menus, and the toasts.

use super::act;
use super::state::{sections, shown_name, ContactAction, MeChange, Section, SectionKind, Ui};
use crate::protocol::{
    picture_url, Contact, Status, MAX_DISPLAY_NAME_CHARS, MAX_GROUP_NAME_CHARS,
    MAX_PERSONAL_MESSAGE_CHARS,
};
use leptos::prelude::*;

/// The CSS class of a status dot: green, red, amber or grey.
pub fn status_class(s: Status) -> &'static str {
    match s {
        Status::Online => "status-dot online",
        Status::Busy | Status::OnThePhone => "status-dot busy",
        Status::Away | Status::BeRightBack | Status::OutToLunch => "status-dot away",
        Status::Offline => "status-dot offline",
    }
}

/// A display picture: `user`'s picture of that version, or the default one. The ring's colour
/// is the status. `alt` is empty where a name next to it says whose it is.
#[component]
pub fn Picture(
    user: i64,
    #[prop(into)] version: Signal<Option<String>>,
    #[prop(into)] status: Signal<Status>,
    #[prop(into)] alt: Signal<String>,
    /// "large" (the card and conversation windows) or "small" (the contact list).
    size: &'static str,
) -> impl IntoView {
    view! {
        <img class=move || format!("picture picture-{size} ring-{}", status.get().as_str())
            src=move || picture_url(user, version.get().as_deref())
            alt=move || alt.get() draggable="false"/>
    }
}

/// The user's own card: picture, display name (click to edit), status menu, personal
/// message (edited in place), the sound toggle and sign-out.
#[component]
pub fn MeCard(ui: Ui, link_text: Signal<String>, link_up: Signal<bool>) -> impl IntoView {
    let me = ui.me.get_value();
    let editing_name = RwSignal::new(false);
    let name_draft = RwSignal::new(String::new());
    let pm_draft = RwSignal::new(String::new());
    let pm_focused = RwSignal::new(false);
    // The field follows the stored message, except while the user is in it: a change
    // arriving from elsewhere (another tab, a status change) must not wipe what they type.
    Effect::new(move |_| {
        let stored = ui.personal_message.get();
        if !pm_focused.get_untracked() {
            pm_draft.set(stored);
        }
    });
    let save_name = move || {
        editing_name.set(false);
        let name = name_draft.get_untracked().trim().to_owned();
        if !name.is_empty() && name != ui.display_name.get_untracked() {
            act::update_me(ui, MeChange::DisplayName(name));
        }
    };
    let save_pm = move || {
        let pm = pm_draft.get_untracked().trim().to_owned();
        if pm != ui.personal_message.get_untracked() {
            act::update_me(ui, MeChange::PersonalMessage(pm));
        }
    };
    view! {
        <div class="me-card">
            <div class="me-picture">
                <label class="picture-button" title="Change your display picture">
                    <Picture user=me.id version=ui.picture status=ui.status alt=String::new() size="large"/>
                    <span class="visually-hidden">"Change your display picture"</span>
                    <input type="file" class="visually-hidden" accept="image/png,image/jpeg,image/gif,image/webp"
                        on:change=move |ev| act::upload_picture(ui, ev)/>
                </label>
                {move || ui.picture.get().is_some().then(|| view! {
                    <button class="link-button remove-picture" title="Go back to the default picture"
                        on:click=move |_| act::remove_picture(ui)>"Remove picture"</button>
                })}
            </div>
            <div class="me-text">
                <div class="my-name">
                    {move || if editing_name.get() {
                        view! {
                            <input class="inline-edit" aria-label="Your display name" maxlength=MAX_DISPLAY_NAME_CHARS
                                prop:value=move || name_draft.get()
                                on:input=move |ev| name_draft.set(event_target_value(&ev))
                                on:keydown=move |ev| match ev.key().as_str() {
                                    "Enter" => { ev.prevent_default(); save_name(); }
                                    "Escape" => editing_name.set(false),
                                    _ => {}
                                }
                                on:blur=move |_| if editing_name.get_untracked() { save_name() }/>
                        }.into_any()
                    } else {
                        view! {
                            <button class="name-button" title="Change your display name"
                                aria-label=move || format!("Your display name: {} (change)", ui.display_name.get())
                                on:click=move |_| {
                                    name_draft.set(ui.display_name.get_untracked());
                                    editing_name.set(true);
                                    focus_later(".inline-edit".into());
                                }>
                                {move || ui.display_name.get()}
                            </button>
                        }.into_any()
                    }}
                    {me.is_guest.then(|| view! { <span class="guest-badge">"guest"</span> })}
                </div>
                {(me.username != me.display_name || me.is_guest).then(|| view! {
                    <div class="hint my-username">"Others reach you as " <strong>{me.username.clone()}</strong></div>
                })}
                <div class="my-status-row">
                    <span class=move || status_class(ui.status.get()) aria-hidden="true"></span>
                    <select class="status-select" aria-label="Your status"
                        prop:value=move || ui.status.get().as_str()
                        on:change=move |ev| {
                            if let Some(s) = Status::parse(&event_target_value(&ev)) {
                                act::update_me(ui, MeChange::Status(s));
                            }
                        }>
                        {Status::ALL.into_iter().map(|s| view! {
                            <option value=s.as_str()>{s.choice_label()}</option>
                        }).collect_view()}
                    </select>
                </div>
                <input class="personal-message-input" aria-label="Your personal message"
                    placeholder="Share a quick message" maxlength=MAX_PERSONAL_MESSAGE_CHARS
                    prop:value=move || pm_draft.get()
                    on:input=move |ev| pm_draft.set(event_target_value(&ev))
                    on:keydown=move |ev| match ev.key().as_str() {
                        "Enter" => { ev.prevent_default(); save_pm(); }
                        "Escape" => pm_draft.set(ui.personal_message.get_untracked()),
                        _ => {}
                    }
                    on:focus=move |_| pm_focused.set(true)
                    on:blur=move |_| {
                        pm_focused.set(false);
                        save_pm();
                    }/>
                <div class="my-status" class:visually-hidden=move || link_up.get() role="status" aria-label="Connection">
                    {move || link_text.get()}
                </div>
            </div>
            <div class="me-actions">
                <button class="link-button" aria-pressed=move || ui.muted.get().to_string()
                    on:click=move |_| act::set_muted(ui, !ui.muted.get_untracked())>
                    {move || if ui.muted.get() { "Sounds off" } else { "Sounds on" }}
                </button>

                <form method="post" action="/api/signout" class="signout-form">
                    <button type="submit" class="link-button">"Sign out"</button>
                </form>
            </div>
        </div>
    }
}

/// Focuses the first element matching `selector` once the view has rendered it.
pub fn focus_later(selector: String) {
    #[cfg(any(feature = "hydrate", feature = "csr"))]
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
    #[cfg(not(any(feature = "hydrate", feature = "csr")))]
    let _ = selector;
}

/// Adding a contact and creating a group.
#[component]
pub fn ContactTools(ui: Ui) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let group = RwSignal::new(String::new());
    view! {
        <div class="contact-tools">
            <form class="add-contact" on:submit=move |ev| {
                ev.prevent_default();
                let name = username.get_untracked();
                if !name.trim().is_empty() {
                    act::add_contact(ui, name);
                    username.set(String::new());
                }
            }>
                <label for="add-contact-username">"Add a contact"</label>
                <div class="start-chat-row">
                    <input id="add-contact-username" placeholder="username" autocomplete="off" bind:value=username/>
                    <button type="submit">"Add"</button>
                </div>
            </form>
            <AddBot ui=ui/>
            <details class="new-group">
                <summary>"Create a group"</summary>
                <form on:submit=move |ev| {
                    ev.prevent_default();
                    let name = group.get_untracked();
                    if !name.trim().is_empty() {
                        act::create_group(ui, name.trim().to_owned());
                        group.set(String::new());
                    }
                }>
                    <div class="start-chat-row">
                        <input aria-label="New group name" placeholder="group name" maxlength=MAX_GROUP_NAME_CHARS bind:value=group/>
                        <button type="submit">"Create"</button>
                    </div>
                </form>
            </details>
        </div>
    }
}

/// The AI contacts not yet in the list, each with an "Add" button.
#[component]
fn AddBot(ui: Ui) -> impl IntoView {
    let available = move || {
        ui.bots.with(|bots| {
            ui.contacts.with(|list| {
                bots.iter()
                    .filter(|b| !list.iter().any(|c| c.user.id == b.id))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        })
    };
    view! {
        <details class="add-bot" on:toggle=move |_| act::load_bots(ui)>
            <summary>"Add an AI contact"</summary>
            {move || {
                let bots = available();
                if bots.is_empty() {
                    let text = if ui.bots.with(Vec::is_empty) {
                        "Loading…"
                    } else {
                        "All the AI contacts are in your list."
                    };
                    return view! { <p class="hint">{text}</p> }.into_any();
                }
                view! {
                    <ul class="bot-list">
                        {bots.into_iter().map(|b| {
                            let handle = b.username.clone();
                            view! {
                                <li>
                                    <span class="bot-name">{b.display_name.clone()} <span class="hint">" (" {b.username.clone()} ")"</span></span>
                                    <button on:click=move |_| act::add_contact(ui, handle.clone())>
                                        "Add" <span class="visually-hidden">{format!(" {}", b.display_name)}</span>
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </details>
    }
}

/// The contact list: requests, groups with counts, Online and Offline, sent requests and
/// blocked users, each section folding away.
#[component]
pub fn ContactList(ui: Ui) -> impl IntoView {
    let all = Memo::new(move |_| ui.contacts.with(|c| ui.groups.with(|g| sections(c, g))));
    let keys =
        Memo::new(move |_| all.with(|s| s.iter().map(|x| x.key.clone()).collect::<Vec<_>>()));
    view! {
        <div class="contact-sections">
            <For each=move || keys.get() key=|k| k.clone() children=move |key| {
                let k = key.clone();
                let section = Memo::new(move |_| all.with(|s| s.iter().find(|x| x.key == k).cloned()));
                view! { <ContactSection ui=ui key=key section=section/> }
            }/>
            {move || ui.contacts.with(Vec::is_empty).then(|| view! {
                <p class="hint">"No contacts yet: add someone by their username above."</p>
            })}
        </div>
    }
}

#[component]
fn ContactSection(ui: Ui, key: String, section: Memo<Option<Section>>) -> impl IntoView {
    let k = key.clone();
    let open = Memo::new(move |_| ui.collapsed.with(|c| !c.contains(&k)));
    let toggle = {
        let key = key.clone();
        move |_| {
            ui.collapsed.update(|c| {
                if !c.remove(&key) {
                    c.insert(key.clone());
                }
            })
        }
    };
    let title = move || section.with(|s| s.as_ref().map(Section::title).unwrap_or_default());
    let group = move || section.with(|s| s.as_ref().and_then(|s| s.group));
    let kind = move || section.with(|s| s.as_ref().map(|s| s.kind));
    let ids = move || {
        section.with(|s| {
            s.as_ref()
                .map(|s| s.entries.iter().map(|c| c.user.id).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    let list_id = format!("section-{key}");
    view! {
        <section class="contact-section" data-section=key.clone()>
            <h2 class="group-title">
                <button class="section-toggle" aria-expanded=move || open.get().to_string() aria-controls=list_id.clone()
                    on:click=toggle>
                    <span class="chevron" class:folded=move || !open.get() aria-hidden="true"></span>
                    {title}
                </button>
                {move || group().map(|g| view! { <GroupMenu ui=ui group=g/> })}
            </h2>
            <ul id=list_id hidden=move || !open.get()>
                <For each=ids key=|id| *id children=move |id| {
                    let kind = kind().unwrap_or(SectionKind::Contacts);
                    view! { <ContactRow ui=ui user=id kind=kind/> }
                }/>
            </ul>
            {move || (group().is_some() && ids().is_empty() && open.get()).then(|| view! {
                <p class="hint">"Move contacts here from their ⋯ menu."</p>
            })}
        </section>
    }
}

/// Renaming and deleting a contact group.
#[component]
fn GroupMenu(ui: Ui, group: i64) -> impl IntoView {
    let menu_id = -group;
    let name = RwSignal::new(String::new());
    let current = move || {
        ui.groups.with(|gs| {
            gs.iter()
                .find(|g| g.id == group)
                .map(|g| g.name.clone())
                .unwrap_or_default()
        })
    };
    let is_open = move || ui.menu.get() == Some(menu_id);
    view! {
        <button class="menu-button" aria-label=move || format!("Group actions for {}", current())
            aria-expanded=move || is_open().to_string()
            on:click=move |_| {
                name.set(current());
                ui.menu.set((!is_open()).then_some(menu_id));
            }>"⋯"</button>
        {move || is_open().then(|| view! {
            <form class="group-menu" on:submit=move |ev| {
                ev.prevent_default();
                let n = name.get_untracked();
                if !n.trim().is_empty() {
                    act::rename_group(ui, group, n.trim().to_owned());
                }
            }>
                <input aria-label="Group name" maxlength=MAX_GROUP_NAME_CHARS bind:value=name/>
                <button type="submit">"Rename"</button>
                <button type="button" on:click=move |_| act::delete_group(ui, group)>"Delete group"</button>
            </form>
        })}
    }
}

/// One entry of the contact list; what it offers depends on its section.
#[component]
fn ContactRow(ui: Ui, user: i64, kind: SectionKind) -> impl IntoView {
    let contact = Memo::new(move |_| {
        ui.contacts
            .with(|l| l.iter().find(|c| c.user.id == user).cloned())
    });
    move || {
        contact.get().map(|c| match kind {
            SectionKind::Contacts => view! { <ContactEntry ui=ui c=c/> }.into_any(),
            SectionKind::Incoming => {
                let name = shown_name(&c).to_owned();
                view! {
                    <li class="contact-row request" data-user=c.user.username.clone()>
                        <div class="request-text">
                            <strong>{name.clone()}</strong> " (" {c.user.username.clone()} ") wants to add you as a contact."
                        </div>
                        <div class="request-actions">
                            <button class="primary" on:click=move |_| act::contact_action(ui, user, ContactAction::Accept)>"Accept"</button>
                            <button on:click=move |_| act::contact_action(ui, user, ContactAction::Decline)>"Decline"</button>
                            <button on:click=move |_| act::contact_action(ui, user, ContactAction::Block)>"Block"</button>
                        </div>
                    </li>
                }
                .into_any()
            }
            SectionKind::Requested => view! {
                <li class="contact-row" data-user=c.user.username.clone()>
                    <span class="status-dot offline" aria-hidden="true"></span>
                    <span class="contact-name">{c.user.display_name.clone()} <span class="hint">" (" {c.user.username.clone()} ")"</span></span>
                    <button class="link-button" on:click=move |_| act::contact_action(ui, user, ContactAction::Remove)>
                        "Cancel request" <span class="visually-hidden">{format!(" to {}", c.user.display_name)}</span>
                    </button>
                </li>
            }
            .into_any(),
            SectionKind::Blocked => view! {
                <li class="contact-row" data-user=c.user.username.clone()>
                    <span class="blocked-icon" aria-hidden="true"></span>
                    <span class="contact-name">{c.user.display_name.clone()} <span class="hint">" (" {c.user.username.clone()} ")"</span></span>
                    <button class="link-button" on:click=move |_| act::contact_action(ui, user, ContactAction::Unblock)>
                        "Unblock" <span class="visually-hidden">{format!(" {}", c.user.display_name)}</span>
                    </button>
                </li>
            }
            .into_any(),
        })
    }
}

/// An accepted contact: opens a conversation on click; its menu moves it between groups,
/// blocks or removes it.
#[component]
fn ContactEntry(ui: Ui, c: Contact) -> impl IntoView {
    let user = c.user.id;
    let name = shown_name(&c).to_owned();
    let status = c.presence.status;
    let username = c.user.username.clone();
    let is_open = move || ui.menu.get() == Some(user);
    let menu_label = format!("More actions for {name}");
    let blocked = c.blocked;
    let in_group = c.group;
    let status_text = match status {
        Status::Online | Status::Offline => None,
        other => Some(format!("({})", other.label())),
    };
    view! {
        <li class="contact-row" class:offline=status == Status::Offline data-user=username.clone() data-status=status.as_str()>
            <button class="contact" on:click={
                let username = username.clone();
                move |_| act::open_dm(ui, username.clone())
            }>
                <Picture user=user version=c.presence.picture.clone() status=status alt=String::new() size="small"/>
                <span class=status_class(status) aria-hidden="true"></span>
                <span class="contact-text">
                    <span class="contact-name">
                        {name.clone()}
                        " "
                        {status_text.map(|t| view! { <span class="contact-status">{t}</span> })}
                        {(status == Status::Online).then(|| view! { <span class="visually-hidden">"(Online)"</span> })}
                        {(status == Status::Offline).then(|| view! { <span class="visually-hidden">"(Offline)"</span> })}
                        {blocked.then(|| view! { <span class="contact-status">"(blocked)"</span> })}
                    </span>
                    {(!c.presence.personal_message.is_empty()).then(|| view! {
                        <span class="personal-message">{c.presence.personal_message.clone()}</span>
                    })}
                </span>
            </button>
            <button class="menu-button" aria-label=menu_label aria-expanded=move || is_open().to_string()
                on:click=move |_| ui.menu.set((!is_open()).then_some(user))>"⋯"</button>
            {move || is_open().then(|| view! {
                <div class="contact-menu" role="group" aria-label=format!("Actions for {name}")>
                    <label>
                        "Group "
                        <select prop:value=in_group.map(|g| g.to_string()).unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                act::move_to_group(ui, user, v.parse().ok());
                            }>
                            <option value="">"No group"</option>
                            {move || ui.groups.get().into_iter().map(|g| view! {
                                <option value=g.id.to_string() selected=in_group == Some(g.id)>{g.name}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    {if blocked {
                        view! { <button on:click=move |_| act::contact_action(ui, user, ContactAction::Unblock)>"Unblock"</button> }.into_any()
                    } else {
                        view! { <button on:click=move |_| act::contact_action(ui, user, ContactAction::Block)>"Block"</button> }.into_any()
                    }}
                    <button on:click=move |_| act::contact_action(ui, user, ContactAction::Remove)>"Remove contact"</button>
                </div>
            })}
        </li>
    }
}

/// The notifications in the corner ("… has just signed in").
#[component]
pub fn Toasts(ui: Ui) -> impl IntoView {
    view! {
        <div class="toasts" role="status" aria-label="Notifications">
            <For each=move || ui.toasts.get() key=|t| t.id children=|t| view! {
                <div class="toast"><span class="titlebar-logo" aria-hidden="true"></span>{t.text}</div>
            }/>
        </div>
    }
}
