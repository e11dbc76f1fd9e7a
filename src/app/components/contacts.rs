//! The contact list: adding contacts and AI contacts, contact groups, and the list itself
//! with its sections (requests, groups with counts, Online and Offline, sent requests,
//! blocked users), each folding away, and each entry's menu.

use super::card::{focus_later, status_class, EmoticonText, Picture};
use crate::app::{
    actions::{self, ContactAction},
    model::{sections, shown_name, Section, SectionKind},
    state::{Panel, Ui},
};
use crate::protocol::{Contact, Status, MAX_GROUP_NAME_CHARS};
use leptos::prelude::*;

/// The icon bar under the user's card: adding a contact, an AI contact, a contact group.
/// Each opens a small panel (Escape or the button again closes it).
#[component]
pub fn Toolbar(ui: Ui) -> impl IntoView {
    let button = move |panel: Panel, label: &'static str, icon: &'static str| {
        let open = move || ui.panel.get() == Some(panel);
        view! {
            <button type="button" class=format!("tool-button {icon}") title=label
                aria-expanded=move || open().to_string() aria-controls="tool-panel"
                on:click=move |_| {
                    let now = (!open()).then_some(panel);
                    ui.panel.set(now);
                    if panel == Panel::AddBot && now.is_some() {
                        actions::load_bots(ui);
                    }
                    if now.is_some() {
                        focus_later("#tool-panel input, #tool-panel button".into());
                    }
                }>
                <span class="tool-icon" aria-hidden="true"></span>
                <span class="tool-label">{label}</span>
            </button>
        }
    };
    view! {
        <div class="toolbar" role="toolbar" aria-label="Add contacts and groups">
            {button(Panel::AddContact, "Add a contact", "add-contact")}
            {button(Panel::AddBot, "Add an AI contact", "add-bot")}
            {button(Panel::NewGroup, "Create a group", "new-group")}
        </div>
        {move || ui.panel.get().map(|panel| match panel {
            Panel::AddContact => view! { <AddContactPanel ui=ui/> }.into_any(),
            Panel::AddBot => view! { <AddBotPanel ui=ui/> }.into_any(),
            Panel::NewGroup => view! { <NewGroupPanel ui=ui/> }.into_any(),
        })}
    }
}

/// "Add a contact": a username, then a request they accept or decline.
#[component]
fn AddContactPanel(ui: Ui) -> impl IntoView {
    let username = RwSignal::new(String::new());
    view! {
        <div class="tool-panel" id="tool-panel" role="dialog" aria-label="Add a contact">
            <form on:submit=move |ev| {
                ev.prevent_default();
                let name = username.get_untracked();
                if !name.trim().is_empty() {
                    actions::add_contact(ui, name);
                    ui.panel.set(None);
                }
            }>
                <label for="add-contact-username">"Username of the person to add"</label>
                <div class="tool-row">
                    <input id="add-contact-username" placeholder="username" autocomplete="off" bind:value=username/>
                    <button type="submit" class="primary">"Send request"</button>
                </div>
                <p class="hint">"They can accept or decline; you see their status once they accept."</p>
            </form>
        </div>
    }
}

/// "Create a group" of contacts in the list.
#[component]
fn NewGroupPanel(ui: Ui) -> impl IntoView {
    let group = RwSignal::new(String::new());
    view! {
        <div class="tool-panel" id="tool-panel" role="dialog" aria-label="Create a group">
            <form on:submit=move |ev| {
                ev.prevent_default();
                let name = group.get_untracked();
                if !name.trim().is_empty() {
                    actions::create_group(ui, name.trim().to_owned());
                    ui.panel.set(None);
                }
            }>
                <label for="new-group-name">"New group name"</label>
                <div class="tool-row">
                    <input id="new-group-name" placeholder="group name" maxlength=MAX_GROUP_NAME_CHARS bind:value=group/>
                    <button type="submit" class="primary">"Create"</button>
                </div>
            </form>
        </div>
    }
}

/// The AI contacts not yet in the list, each with its picture, a line about it and "Add";
/// the panel closes once one is added.
#[component]
fn AddBotPanel(ui: Ui) -> impl IntoView {
    let available = move || {
        ui.bots.with(|bots| {
            ui.contacts.with(|contacts| {
                bots.iter()
                    .filter(|b| !contacts.iter().any(|c| c.user.id == b.user.id))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        })
    };
    view! {
        <div class="tool-panel" id="tool-panel" role="dialog" aria-label="Add an AI contact">
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
                            let handle = b.user.username.clone();
                            let name = b.user.display_name.clone();
                            view! {
                                <li>
                                    <Picture user=b.user.id version=b.picture.clone() status=Status::Online alt=String::new() size="small"/>
                                    <span class="bot-text">
                                        <span class="bot-name">{name.clone()} <span class="hint">" (" {handle.clone()} ")"</span></span>
                                        <span class="bot-about">{b.about.clone()}</span>
                                    </span>
                                    <button on:click=move |_| {
                                        actions::add_contact(ui, handle.clone());
                                        ui.panel.set(None);
                                    }>
                                        "Add" <span class="visually-hidden">{format!(" {name}")}</span>
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </div>
    }
}

/// Whether `query` (already lower case) finds `text`.
pub fn finds(query: &str, text: &str) -> bool {
    query.is_empty() || lower(text).contains(query)
}

/// Lower case, as the browser does it (see `model::sections`).
pub fn lower(text: &str) -> String {
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    return String::from(js_sys::JsString::from(text).to_lower_case());
    #[cfg(not(any(feature = "hydrate", feature = "csr")))]
    return text.to_lowercase();
}

/// The search box over the list: it filters contacts, conversations and rooms as one types,
/// and for a username offers to chat with them or, if they are not in the list yet, to add
/// them.
#[component]
pub fn Search(ui: Ui) -> impl IntoView {
    let me = ui.me.with_value(|m| m.username.clone());
    let typed = move || ui.query.with(|q| q.trim().to_owned());
    let is_contact = move |name: &str| {
        let name = lower(name);
        ui.contacts
            .with(|cs| cs.iter().any(|c| lower(&c.user.username) == name))
    };
    view! {
        <div class="search" role="search">
            <label class="visually-hidden" for="search-box">"Search contacts, or type a username to chat with or add"</label>
            <input id="search-box" type="search" placeholder="Search contacts or type a username…"
                autocomplete="off" bind:value=ui.query
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        ui.query.set(String::new());
                    }
                }/>
            {move || {
                let name = typed();
                let valid = !name.is_empty() && name.len() <= 32
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                (valid && lower(&name) != lower(&me)).then(|| {
                    let chat = name.clone();
                    let add = name.clone();
                    let known = is_contact(&name);
                    view! {
                        <div class="search-offers">
                            <button type="button" class="offer" on:click=move |_| {
                                actions::open_dm(ui, chat.clone());
                                ui.query.set(String::new());
                            }>{format!("Chat with {name}")}</button>
                            {(!known).then(|| view! {
                                <button type="button" class="offer" on:click=move |_| {
                                    actions::add_contact(ui, add.clone());
                                    ui.query.set(String::new());
                                }>{format!("Add {name} as a contact")}</button>
                            })}
                        </div>
                    }
                })
            }}
        </div>
    }
}

/// The contact list: requests, groups with counts, Online and Offline, sent requests and
/// blocked users, each section folding away.
#[component]
pub fn ContactList(ui: Ui) -> impl IntoView {
    let all = Memo::new(move |_| {
        let query = ui.query.with(|q| lower(q.trim()));
        ui.contacts.with(|c| {
            let found: Vec<_> = c
                .iter()
                .filter(|c| finds(&query, shown_name(c)) || finds(&query, &c.user.username))
                .cloned()
                .collect();
            ui.groups.with(|g| sections(&found, g))
        })
    });
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
                <p class="hint">"No contacts yet: type a username in the search box above, or use “Add a contact”."</p>
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
                        <EmoticonText text=name.clone()/>
                        " "
                        {status_text.map(|t| view! { <span class="contact-status">{t}</span> })}
                        {(status == Status::Online).then(|| view! { <span class="visually-hidden">"(Online)"</span> })}
                        {(status == Status::Offline).then(|| view! { <span class="visually-hidden">"(Offline)"</span> })}
                        {blocked.then(|| view! { <span class="contact-status">"(blocked)"</span> })}
                    </span>
                    {(!c.presence.personal_message.is_empty()).then(|| view! {
                        <span class="personal-message" title=c.presence.personal_message.clone()><EmoticonText text=c.presence.personal_message.clone()/></span>
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
