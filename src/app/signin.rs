//! The sign-in window: sign in, create an account, or try as a guest. Plain forms posted to
//! the API, which redirects back here with an error or on to `/app`. In the client-side
//! (Trunk) build the forms post JSON with `fetch` instead: Trunk's proxy follows redirects
//! itself, which would lose the session cookie.

use crate::protocol::Status;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with_untracked(|q| q.get(k)).unwrap_or_default();
    let error = get("error");
    let username = get("username");
    let signup_mode = get("mode") == "signup";
    let (signin_name, signup_name) = if signup_mode {
        (String::new(), username)
    } else {
        (username, String::new())
    };
    view! {
        <main class="desktop signin-desktop">
            <section class="window signin-window" aria-labelledby="signin-title">
                <header class="titlebar"><span class="titlebar-logo" aria-hidden="true"></span>"Messenger"</header>
                <div class="signin-body">
                    <div class="buddies" aria-hidden="true">
                        <span class="buddy buddy-green"></span>
                        <span class="buddy buddy-blue"></span>
                    </div>
                    <h1 id="signin-title">"Sign in to Messenger"</h1>
                    {(!error.is_empty()).then(|| view! { <p class="form-error" role="alert">{error}</p> })}
                    <form class="signin-form" method="post" action="/api/signin" on:submit=move |ev| submit(ev, "signin")>
                        <label for="signin-username">"Username"</label>
                        <input id="signin-username" name="username" autocomplete="username" required value=signin_name/>
                        <label for="signin-password">"Password"</label>
                        <input id="signin-password" name="password" type="password" autocomplete="current-password" required/>
                        <label for="signin-status">"Sign in as"</label>
                        <select id="signin-status" name="status">
                            <option value="" selected>"Same status as last time"</option>
                            {Status::ALL.into_iter().map(|s| view! {
                                <option value=s.as_str()>{s.choice_label()}</option>
                            }).collect_view()}
                        </select>
                        <button type="submit" class="primary">"Sign in"</button>
                    </form>
                    <form class="guest-form" method="post" action="/api/guest" on:submit=move |ev| submit(ev, "guest")>
                        <button type="submit">"Try as guest"</button>
                    </form>
                    <details class="signup" open=signup_mode>
                        <summary>"New to Messenger? Create an account"</summary>
                        <form class="signin-form" method="post" action="/api/signup" on:submit=move |ev| submit(ev, "signup")>
                            <label for="signup-username">"New username"</label>
                            <input id="signup-username" name="username" autocomplete="username" required
                                minlength="3" maxlength="24" pattern="[A-Za-z][A-Za-z0-9_.]*" value=signup_name
                                aria-describedby="signup-rules"/>
                            <label for="signup-password">"Choose a password"</label>
                            <input id="signup-password" name="password" type="password" autocomplete="new-password"
                                required minlength="8" maxlength="128" aria-describedby="signup-rules"/>
                            <p id="signup-rules" class="hint">"3 to 24 letters, digits, _ or ., starting with a letter; a password of at least 8 characters."</p>
                            <button type="submit" class="primary">"Create account"</button>
                        </form>
                    </details>
                </div>
            </section>
        </main>
    }
}

/// Server-rendered page: the browser posts the form itself.
#[cfg(not(feature = "csr"))]
fn submit(_: leptos::ev::SubmitEvent, _: &'static str) {}

/// Client-side build: post the form as JSON, then go to the main window or show the error.
#[cfg(feature = "csr")]
fn submit(ev: leptos::ev::SubmitEvent, mode: &'static str) {
    use wasm_bindgen::JsCast;
    ev.prevent_default();
    let Some(form) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
    else {
        return;
    };
    let field = |name: &str| {
        web_sys::FormData::new_with_form(&form)
            .ok()
            .and_then(|d| d.get(name).as_string())
            .unwrap_or_default()
    };
    let (username, password, status) = (field("username"), field("password"), field("status"));
    leptos::task::spawn_local(async move {
        let body = super::client::json(&super::client::Credentials {
            username: &username,
            password: &password,
            status: Some(&status),
        });
        let to = match super::client::post_json_text(&format!("/api/{mode}"), &body).await {
            Ok((200 | 201, _)) => "/app".to_owned(),
            Ok((_, text)) => {
                let message = super::client::api_message(&text).unwrap_or(text);
                let mode = if mode == "signup" { "signup" } else { "signin" };
                let query = js_sys::encode_uri_component(&message);
                let name = js_sys::encode_uri_component(&username);
                format!("/?mode={mode}&username={name}&error={query}")
            }
            Err(_) => "/?error=The%20server%20could%20not%20be%20reached.".to_owned(),
        };
        if let Some(w) = web_sys::window() {
            let _ = w.location().assign(&to);
        }
    });
}
