//! What floats over the windows: the notifications in the corner, and the dialog that asks
//! for the password again when the session ended.

use super::card::{focus_later, Picture};
use crate::app::{actions, state::Ui};
use leptos::prelude::*;

/// The notifications in the corner ("… has just signed in").
#[component]
pub fn Toasts(ui: Ui) -> impl IntoView {
    let toasts = Memo::new(move |_| ui.model.with(|m| m.toasts.clone()));
    view! {
        <div class="toasts" role="status" aria-label="Notifications">
            <For each=move || toasts.get() key=|t| t.id children=|t| view! {
                <div class="toast">
                    {match t.picture {
                        Some((user, version)) => view! {
                            <Picture user=user version=version status=crate::protocol::Status::Online alt=String::new() size="large"/>
                        }.into_any(),
                        None => view! { <span class="titlebar-logo" aria-hidden="true"></span> }.into_any(),
                    }}
                    <span class="toast-text">{t.text}</span>
                </div>
            }/>
        </div>
    }
}

/// The session ended (expired, signed out elsewhere): sign in again without losing drafts
/// or unsent messages (a guest cannot, and is told so).
#[component]
pub fn SessionEnded(ui: Ui) -> impl IntoView {
    let password = RwSignal::new(String::new());
    let me = ui.me.get_value();
    // Focus goes into the dialog (the password, or the way back for a guest) and stays
    // there: Tab and Shift+Tab cycle through its own controls.
    focus_later(if me.is_guest {
        "#session-ended a".into()
    } else {
        "#resume-password".into()
    });
    let trap = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() != "Tab" {
            return;
        }
        use wasm_bindgen::JsCast;
        let Some(dialog) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id("session-ended"))
        else {
            return;
        };
        let Ok(controls) = dialog.query_selector_all("a[href], button, input") else {
            return;
        };
        let at = |i: u32| {
            controls
                .item(i)
                .and_then(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
        };
        let (Some(first), Some(last)) = (at(0), at(controls.length().saturating_sub(1))) else {
            return;
        };
        let active = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.active_element());
        let on = |el: &web_sys::HtmlElement| {
            active
                .as_ref()
                .is_some_and(|a| a == el.unchecked_ref::<web_sys::Element>())
        };
        if ev.shift_key() && on(&first) {
            ev.prevent_default();
            let _ = last.focus();
        } else if !ev.shift_key() && on(&last) {
            ev.prevent_default();
            let _ = first.focus();
        }
    };
    view! {
        <div class="modal-backdrop">
            <div class="window dialog" id="session-ended" role="alertdialog" aria-modal="true"
                aria-labelledby="session-ended-title" aria-describedby="session-ended-text"
                on:keydown=trap>
                <header class="titlebar"><h2 id="session-ended-title">"Your session has ended"</h2></header>
                <div class="dialog-body">
                    {if me.is_guest {
                        view! {
                            <p id="session-ended-text">"Guest sessions cannot be resumed. Your unsent text is still in its window; copy it if you need it."</p>
                            <a class="button primary" href="/">"Back to the sign-in window"</a>
                        }.into_any()
                    } else {
                        view! {
                            <p id="session-ended-text">"Sign in again to carry on. Nothing you typed is lost."</p>
                            <form on:submit=move |ev| {
                                ev.prevent_default();
                                actions::sign_in_again(ui, password.get_untracked());
                                password.set(String::new());
                            }>
                                <label for="resume-password">{format!("Password for {}", me.username)}</label>
                                <input id="resume-password" type="password" autocomplete="current-password" bind:value=password/>
                                <button type="submit" class="primary">"Sign in again"</button>
                            </form>
                        }.into_any()
                    }}
                    {move || ui.resume_error.get().map(|n| view! { <p class="form-error" role="alert">{n}</p> })}
                </div>
            </div>
        </div>
    }
}
