//! Pages, components and islands: the sign-in window (server-rendered forms), the main window
//! and conversation windows (one island holding the live connection).

#[cfg(any(feature = "hydrate", feature = "csr"))]
mod client;
/// What the views do: the live client in the browser.
#[cfg(any(feature = "hydrate", feature = "csr"))]
use client as act;
mod contacts;
mod emoticons;
mod messenger;
mod signin;
#[cfg(any(feature = "hydrate", feature = "csr"))]
mod sound;
// Parts of the state are only read by the browser client.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
mod state;

use crate::protocol::UserSummary;

/// On the server the island only renders; these are never called there.
#[cfg(not(any(feature = "hydrate", feature = "csr")))]
mod act {
    use super::state::{ContactAction, MeChange, Ui};
    pub fn start(_: Ui) {}
    pub fn send(_: Ui, _: i64) {}
    pub fn open_dm(_: Ui, _: String) {}
    pub fn open_room(_: Ui, _: i64) {}
    pub fn load_older(_: Ui, _: i64) {}
    pub fn sign_in_again(_: Ui, _: String) {}
    pub fn add_contact(_: Ui, _: String) {}
    pub fn contact_action(_: Ui, _: i64, _: ContactAction) {}
    pub fn move_to_group(_: Ui, _: i64, _: Option<i64>) {}
    pub fn create_group(_: Ui, _: String) {}
    pub fn rename_group(_: Ui, _: i64, _: String) {}
    pub fn delete_group(_: Ui, _: i64) {}
    pub fn update_me(_: Ui, _: MeChange) {}
    pub fn set_muted(_: Ui, _: bool) {}
    pub fn typed(_: Ui, _: i64) {}
    pub fn nudge(_: Ui, _: i64) {}
    pub fn mark_read(_: i64) {}
    pub fn delete_message(_: Ui, _: i64, _: i64) {}
    pub fn upload_picture(_: Ui, _: leptos::ev::Event) {}
    pub fn remove_picture(_: Ui) {}
    pub fn invite(_: Ui, _: i64, _: i64) {}
    pub fn leave(_: Ui, _: i64) {}
    pub fn more_rooms(_: Ui) {}
    pub fn load_bots(_: Ui) {}
}
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                // id="leptos" lets `cargo leptos watch` swap the stylesheet without a reload.
                <link rel="stylesheet" id="leptos" href="/pkg/messenger.css"/>
                <AutoReload options=options.clone()/>
                // Only pages with islands load the WASM bundle: the sign-in window is plain
                // forms, and paints sooner without it.
                {has_islands().then(|| view! { <HydrationScripts options islands=true/> })}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Messenger"/>
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"This page does not exist. " <a href="/">"Go to Messenger"</a></p> }>
                <Route path=StaticSegment("") view=signin::SignInPage/>
                <Route path=StaticSegment("app") view=MainPage/>
            </Routes>
        </Router>
    }
}

/// `/app`: the main window for the signed-in user (the server redirects others to `/`).
#[component]
fn MainPage() -> impl IntoView {
    match current_user() {
        Some(me) => view! { <messenger::MessengerApp me=me/> }.into_any(),
        None => {
            view! { <p class="not-found">"Please " <a href="/">"sign in"</a> "."</p> }.into_any()
        }
    }
}

/// Whether the page being rendered holds an island (only the main window, `/app`, does).
#[cfg(feature = "ssr")]
fn has_islands() -> bool {
    use_context::<http::request::Parts>().is_none_or(|p| p.uri.path().starts_with("/app"))
}

#[cfg(not(feature = "ssr"))]
fn has_islands() -> bool {
    true
}

#[cfg(feature = "ssr")]
fn current_user() -> Option<UserSummary> {
    use_context::<http::request::Parts>()?
        .extensions
        .get::<crate::server::auth::CurrentSession>()
        .map(|c| c.session.user.clone())
}

#[cfg(not(feature = "ssr"))]
fn current_user() -> Option<UserSummary> {
    None
}

/// The whole app rendered in the browser (feature `csr`, built by Trunk): asks the server who
/// is signed in, then shows the main window or the sign-in window.
#[cfg(feature = "csr")]
#[component]
pub fn CsrApp() -> impl IntoView {
    let me = LocalResource::new(client::current_user);
    view! {
        <Router>
            <Suspense fallback=|| view! { <p class="not-found">"Loading…"</p> }>
                {move || me.get().map(|me| match me {
                    Some(me) => view! { <messenger::MessengerApp me=me/> }.into_any(),
                    None => view! { <signin::SignInPage/> }.into_any(),
                })}
            </Suspense>
        </Router>
    }
}
