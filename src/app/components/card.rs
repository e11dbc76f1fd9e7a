//! The main window's own card: picture, display name, status menu, personal message, the
//! connection line, sounds and sign-out; and the pieces other views share (pictures,
//! status dots).

use crate::app::{
    actions,
    emoticons::{split, Piece},
    server_fns::SignOut,
    state::Ui,
};
use crate::protocol::{
    http::UpdateMe, picture_url, Status, MAX_DISPLAY_NAME_CHARS, MAX_PERSONAL_MESSAGE_CHARS,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

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
    /// "xl" (conversation windows), "large" (the card) or "small" (lists).
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
    let display_name = Memo::new(move |_| ui.model.with(|m| m.display_name.clone()));
    let personal_message = Memo::new(move |_| ui.model.with(|m| m.personal_message.clone()));
    let picture = Memo::new(move |_| ui.model.with(|m| m.picture.clone()));
    let status = Memo::new(move |_| ui.model.with(|m| m.status));
    Effect::new(move |_| {
        let stored = personal_message.get();
        if !pm_focused.get_untracked() {
            pm_draft.set(stored);
        }
    });
    let save_name = move || {
        editing_name.set(false);
        let name = name_draft.get_untracked().trim().to_owned();
        if !name.is_empty() && name != display_name.get_untracked() {
            let change = UpdateMe {
                display_name: Some(name),
                ..UpdateMe::default()
            };
            actions::update_me(ui, change);
        }
    };
    let save_pm = move || {
        let pm = pm_draft.get_untracked().trim().to_owned();
        if pm != personal_message.get_untracked() {
            let change = UpdateMe {
                personal_message: Some(pm),
                ..UpdateMe::default()
            };
            actions::update_me(ui, change);
        }
    };
    view! {
        <div class="me-card">
            <div class="me-picture">
                <label class="picture-button" title="Change your display picture">
                    <Picture user=me.id version=picture status=status alt=String::new() size="large"/>
                    <span class="visually-hidden">"Change your display picture"</span>
                    <input type="file" class="visually-hidden" accept="image/png,image/jpeg,image/gif,image/webp"
                        on:change=move |ev| actions::upload_picture(ui, ev)/>
                </label>
                {move || picture.get().is_some().then(|| view! {
                    <button class="link-button remove-picture" title="Go back to the default picture"
                        on:click=move |_| actions::remove_picture(ui)>"Remove picture"</button>
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
                                aria-label=move || format!("Your display name: {} (change)", display_name.get())
                                on:click=move |_| {
                                    name_draft.set(display_name.get_untracked());
                                    editing_name.set(true);
                                    focus_later(".inline-edit".into());
                                }>
                                {move || display_name.get()}
                            </button>
                        }.into_any()
                    }}
                    {me.is_guest.then(|| view! { <span class="guest-badge">"guest"</span> })}
                </div>
                {(me.username != me.display_name || me.is_guest).then(|| {
                    let handle = me.username.clone();
                    let copied = RwSignal::new(false);
                    view! {
                        <div class="my-username">
                            <span class="hint">"Others reach you as "</span>
                            <code class="handle">{me.username.clone()}</code>
                            <button type="button" class="copy-button"
                                aria-label=move || if copied.get() { "Username copied".to_owned() } else { "Copy your username".to_owned() }
                                on:click=move |_| {
                                    if let Some(w) = web_sys::window() {
                                        let _ = w.navigator().clipboard().write_text(&handle);
                                        copied.set(true);
                                        set_timeout(move || copied.set(false), std::time::Duration::from_secs(2));
                                    }
                                }>{move || if copied.get() { "Copied" } else { "Copy" }}</button>
                        </div>
                    }
                })}
                <div class="my-status-row">
                    <StatusMenu ui=ui status=status/>
                </div>
                // A box that grows with its text: the whole message shows, and its tooltip
                // has it too.
                <textarea class="personal-message-input" aria-label="Your personal message" rows="1"
                    placeholder="Share a quick message" maxlength=MAX_PERSONAL_MESSAGE_CHARS
                    title=move || personal_message.get()
                    prop:value=move || pm_draft.get()
                    on:input=move |ev| pm_draft.set(event_target_value(&ev))
                    on:keydown=move |ev| match ev.key().as_str() {
                        "Enter" => { ev.prevent_default(); save_pm(); }
                        "Escape" => pm_draft.set(personal_message.get_untracked()),
                        _ => {}
                    }
                    on:focus=move |_| pm_focused.set(true)
                    on:blur=move |_| {
                        pm_focused.set(false);
                        save_pm();
                    }></textarea>
                <div class="my-status" class:visually-hidden=move || link_up.get() role="status" aria-label="Connection">
                    {move || link_text.get()}
                </div>
            </div>
        </div>
    }
}

/// The user's status as a menu with the status icons, as Messenger had it: the button shows
/// the current one; in the menu, arrows move, Enter or Space chooses, Escape closes.
#[component]
fn StatusMenu(ui: Ui, status: Memo<Status>) -> impl IntoView {
    let open = RwSignal::new(false);
    // While the connection is down, nobody sees the chosen status: the card says so.
    let cut_off = Signal::derive(move || {
        let link = ui.link.get();
        matches!(link, crate::app::state::Link::Retrying(_))
            || (link == crate::app::state::Link::Connecting && ui.model.with(|m| m.ready))
    });
    let shown = move || {
        let chosen = status.get().choice_label();
        if cut_off.get() {
            format!("{chosen} (not connected)")
        } else {
            chosen.to_owned()
        }
    };
    let choose = move |s: Status| {
        open.set(false);
        focus_later("#status-button".into());
        if s != status.get_untracked() {
            let change = UpdateMe {
                status: Some(s),
                ..UpdateMe::default()
            };
            actions::update_me(ui, change);
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let key = ev.key();
        if key == "Escape" && open.get_untracked() {
            ev.prevent_default();
            open.set(false);
            focus_later("#status-button".into());
            return;
        }
        let forward = key == "ArrowDown";
        if !forward && key != "ArrowUp" {
            return;
        }
        actions::focus_sibling(&ev, forward, |t| {
            t.get_attribute("role").as_deref() == Some("menuitemradio")
        });
    };
    view! {
        // Keys are heard on the whole menu, the button included: an Escape pressed before
        // the focus has moved into the opened menu still closes it.
        <span class="status-menu" on:keydown=on_key>
            <button type="button" id="status-button" class="status-button" aria-haspopup="menu"
                aria-expanded=move || open.get().to_string() aria-controls="status-choices"
                aria-label=move || format!("Your status: {}", shown())
                on:click=move |_| {
                    open.update(|o| *o = !*o);
                    if open.get_untracked() {
                        focus_later("#status-choices [aria-checked=\"true\"]".into());
                    }
                }>
                <span class=move || status_class(if cut_off.get() { Status::Offline } else { status.get() }) aria-hidden="true"></span>
                <span>{shown}</span>
                <span class="caret" aria-hidden="true">"▾"</span>
            </button>
            <div role="menu" id="status-choices" class="status-choices" aria-label="Your status"
                hidden=move || !open.get()>
                {Status::ALL.into_iter().map(|s| view! {
                    <button type="button" role="menuitemradio" class="status-choice"
                        aria-checked=move || (status.get() == s).to_string()
                        on:click=move |_| choose(s)>
                        <span class=status_class(s) aria-hidden="true"></span>
                        {s.choice_label()}
                    </button>
                }).collect_view()}
            </div>
        </span>
    }
}

/// The main window's own controls, in its title bar: sounds on or off, the account page,
/// and signing out.
#[component]
pub fn WindowControls(ui: Ui) -> impl IntoView {
    // Notifications of the system for messages that come while the tab is in the
    // background: offered until the user answers the browser's question.
    let asked = RwSignal::new(false);
    // Looked at once the page runs (an effect: the server's render has no notifications,
    // and the first render in the browser must match it).
    let can = RwSignal::new(false);
    Effect::new(move |_| {
        asked.track();
        can.set(web_sys::Notification::permission() == web_sys::NotificationPermission::Default);
    });
    let can_ask = move || can.get();
    view! {
        <div class="window-controls">
            {move || can_ask().then(|| view! {
                <button type="button" class="control-button" title="Show new messages as notifications when this tab is in the background"
                    on:click=move |_| {
                        let _ = web_sys::Notification::request_permission();
                        asked.set(true);
                    }>"Alerts"</button>
            })}
            <button type="button" class="control-button sound-toggle" aria-pressed=move || (!ui.muted.get()).to_string()
                title=move || if ui.muted.get() { "Sounds are off: turn them on" } else { "Sounds are on: turn them off" }
                on:click=move |_| actions::set_muted(ui, !ui.muted.get_untracked())>
                <span class="control-icon" aria-hidden="true"></span>
                "Sounds"
            </button>
            <a class="control-button" href="/account" title="Password, sessions, your data, deleting your account">"Account"</a>
            // A plain form: the browser posts it to the sign-out server function, which
            // answers with the sign-in window.
            <form method="post" action=SignOut::PATH class="signout-form">
                <button type="submit" class="control-button">"Sign out"</button>
            </form>
        </div>
    }
}

/// Text with its emoticon shortcuts drawn as pictures (the text itself is kept: copying it
/// copies what was typed): messages, display names, personal messages.
#[component]
pub fn EmoticonText(#[prop(into)] text: String) -> impl IntoView {
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

// Where views put the cursor once they are drawn: `actions` has it, as clicks do too.
pub use crate::app::actions::focus_later;
