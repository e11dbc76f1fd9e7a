//! Everything the browser shows. The pages (`pages/`: the sign-in window, server-rendered
//! forms) and the one island (`islands/`: the main window and conversation windows) are
//! made of `components/`, which read [`state`]'s signals. Server frames change the
//! [`model`] through the pure [`reducer`]; `net/` is the link to the server (socket and
//! typed HTTP calls) and `actions` what the user's clicks do. `server_fns` are the HTTP
//! endpoints for accounts and history, next to the pages that use them.
//!
//! All of it compiles for the server too, where the island only renders: browser calls
//! sit in event handlers and effects, which never run there.

mod actions;
mod components;
mod emoticons;
pub mod islands;
mod keep;
pub mod model;
mod net;
pub mod pages;
pub mod reducer;
pub mod server_fns;
mod sound;
pub mod state;

use crate::protocol::UserSummary;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    provide_page_nonce();
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
                // Web vitals, sent once when the page is hidden (no cookie, no user).
                <script src="/rum.js" defer></script>
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
                <Route path=StaticSegment("") view=pages::signin::SignInPage/>
                <Route path=StaticSegment("app") view=MainPage/>
                <Route path=StaticSegment("account") view=AccountRoute/>
                <Route path=StaticSegment("admin") view=pages::admin::AdminPage/>
                <Route path=(StaticSegment("admin"), StaticSegment("users")) view=pages::admin::AdminUsersPage/>
                <Route path=(StaticSegment("admin"), StaticSegment("bots")) view=pages::admin::AdminBotsPage/>
                <Route path=(StaticSegment("admin"), StaticSegment("rooms")) view=pages::admin::AdminRoomsPage/>
                <Route path=(StaticSegment("admin"), StaticSegment("audit")) view=pages::admin::AdminAuditPage/>
            </Routes>
        </Router>
    }
}

/// `/app`: the main window for the signed-in user (the server redirects others to `/`).
#[component]
fn MainPage() -> impl IntoView {
    match current_user() {
        Some(me) => view! { <islands::messenger::MessengerApp me=me/> }.into_any(),
        None => {
            view! { <p class="not-found">"Please " <a href="/">"sign in"</a> "."</p> }.into_any()
        }
    }
}

/// `/account`: the signed-in user's account page (the server redirects others to `/`).
#[component]
fn AccountRoute() -> impl IntoView {
    match current_user() {
        Some(me) => view! { <pages::account::AccountPage me=me/> }.into_any(),
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

/// The nonce the security layer chose for this page (its Content-Security-Policy allows
/// inline scripts carrying it), for Leptos to put on the scripts it writes.
#[cfg(feature = "ssr")]
fn provide_page_nonce() {
    let nonce = use_context::<http::request::Parts>().and_then(|p| {
        p.extensions
            .get::<crate::server::http::security::CspNonce>()
            .map(|n| n.0.clone())
    });
    if let Some(n) = nonce {
        provide_context(leptos::nonce::Nonce::from_value(n));
    }
}

#[cfg(not(feature = "ssr"))]
fn provide_page_nonce() {}

#[cfg(not(feature = "ssr"))]
fn has_islands() -> bool {
    true
}

#[cfg(feature = "ssr")]
fn current_user() -> Option<UserSummary> {
    use_context::<http::request::Parts>()?
        .extensions
        .get::<crate::server::http::session::CurrentSession>()
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
    let me = LocalResource::new(net::http::current_user);
    view! {
        <Router>
            <Suspense fallback=|| view! { <p class="not-found">"Loading…"</p> }>
                {move || me.get().map(|me| match me {
                    Some(me) => view! { <islands::messenger::MessengerApp me=me/> }.into_any(),
                    None => view! { <pages::signin::SignInPage/> }.into_any(),
                })}
            </Suspense>
        </Router>
    }
}
