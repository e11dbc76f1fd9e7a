//! What floats over the windows: the notifications in the corner, and the dialog that asks
//! for the password again when the session ended.

use crate::app::{actions, state::Ui};
use leptos::prelude::*;

/// The notifications in the corner ("… has just signed in").
#[component]
pub fn Toasts(ui: Ui) -> impl IntoView {
    let toasts = Memo::new(move |_| ui.model.with(|m| m.toasts.clone()));
    view! {
        <div class="toasts" role="status" aria-label="Notifications">
            <For each=move || toasts.get() key=|t| t.id children=|t| view! {
                <div class="toast"><span class="titlebar-logo" aria-hidden="true"></span>{t.text}</div>
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
