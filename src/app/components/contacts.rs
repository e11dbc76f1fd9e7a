//! The contact list: adding contacts and AI contacts, contact groups, and the list itself
//! with its sections (requests, groups with counts, Online and Offline, sent requests,
//! blocked users), each folding away, and each entry's menu.

use super::card::{status_class, Picture};
use crate::app::{
    actions::{self, ContactAction},
    model::{sections, shown_name, Section, SectionKind},
    state::Ui,
};
use crate::protocol::{Contact, Status, MAX_GROUP_NAME_CHARS};
use leptos::prelude::*;

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
                    actions::add_contact(ui, name);
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
                        actions::create_group(ui, name.trim().to_owned());
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
            ui.contacts.with(|contacts| {
                bots.iter()
                    .filter(|b| !contacts.iter().any(|c| c.user.id == b.id))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        })
    };
    view! {
        <details class="add-bot" on:toggle=move |_| actions::load_bots(ui)>
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
                                    <button on:click=move |_| actions::add_contact(ui, handle.clone())>
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
            {move || ui.contacts.with(|c| c.is_empty()).then(|| view! {
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
        ui.groups.with(|groups| {
            groups
                .iter()
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
                    actions::rename_group(ui, group, n.trim().to_owned());
                }
            }>
                <input aria-label="Group name" maxlength=MAX_GROUP_NAME_CHARS bind:value=name/>
                <button type="submit">"Rename"</button>
                <button type="button" on:click=move |_| actions::delete_group(ui, group)>"Delete group"</button>
            </form>
        })}
    }
}

/// One entry of the contact list; what it offers depends on its section.
#[component]
fn ContactRow(ui: Ui, user: i64, kind: SectionKind) -> impl IntoView {
    let contact = Memo::new(move |_| {
        ui.contacts
            .with(|contacts| contacts.iter().find(|c| c.user.id == user).cloned())
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
                            <button class="primary" on:click=move |_| actions::contact_action(ui, user, ContactAction::Accept)>"Accept"</button>
                            <button on:click=move |_| actions::contact_action(ui, user, ContactAction::Decline)>"Decline"</button>
                            <button on:click=move |_| actions::contact_action(ui, user, ContactAction::Block)>"Block"</button>
                        </div>
                    </li>
                }
                .into_any()
            }
            SectionKind::Requested => view! {
                <li class="contact-row" data-user=c.user.username.clone()>
                    <span class="status-dot offline" aria-hidden="true"></span>
                    <span class="contact-name">{c.user.display_name.clone()} <span class="hint">" (" {c.user.username.clone()} ")"</span></span>
                    <button class="link-button" on:click=move |_| actions::contact_action(ui, user, ContactAction::Remove)>
                        "Cancel request" <span class="visually-hidden">{format!(" to {}", c.user.display_name)}</span>
                    </button>
                </li>
            }
            .into_any(),
            SectionKind::Blocked => view! {
                <li class="contact-row" data-user=c.user.username.clone()>
                    <span class="blocked-icon" aria-hidden="true"></span>
                    <span class="contact-name">{c.user.display_name.clone()} <span class="hint">" (" {c.user.username.clone()} ")"</span></span>
                    <button class="link-button" on:click=move |_| actions::contact_action(ui, user, ContactAction::Unblock)>
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
                move |_| actions::open_dm(ui, username.clone())
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
                                actions::move_to_group(ui, user, v.parse().ok());
                            }>
                            <option value="">"No group"</option>
                            {move || ui.groups.get().iter().map(|g| view! {
                                <option value=g.id.to_string() selected=in_group == Some(g.id)>{g.name.clone()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    {if blocked {
                        view! { <button on:click=move |_| actions::contact_action(ui, user, ContactAction::Unblock)>"Unblock"</button> }.into_any()
                    } else {
                        view! { <button on:click=move |_| actions::contact_action(ui, user, ContactAction::Block)>"Block"</button> }.into_any()
                    }}
                    <button on:click=move |_| actions::contact_action(ui, user, ContactAction::Remove)>"Remove contact"</button>
                </div>
            })}
        </li>
    }
}
