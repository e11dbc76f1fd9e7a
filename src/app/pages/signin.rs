//! The sign-in window: sign in, create an account, or try as a guest. Each form is an
//! `ActionForm` of its server function. The page ships no WASM: the browser posts the form
//! itself, and the server answers with a redirect, on to `/app` or back here with the error.
//! In the client-side (Trunk) build the same forms are sent by the action, and the page goes
//! on or shows the error itself.

use crate::app::server_fns::{SignIn, SignUp, TryAsGuest};
use crate::protocol::{
    http::{paths, DoorCheck, SignInNotice, SignedIn, PROOF_FIELD},
    ApiError, Status,
};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The CSS class of a status dot (as `card::status_class`; this page has no island code).
fn status_dot(s: Status) -> &'static str {
    match s {
        Status::Online => "status-dot online",
        Status::Busy | Status::OnThePhone => "status-dot busy",
        Status::Away | Status::BeRightBack | Status::OutToLunch => "status-dot away",
        Status::Offline => "status-dot offline",
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with_untracked(|q| q.get(k)).unwrap_or_default();
    // A code, never text from the address (see `SignInNotice`); an unknown one shows nothing.
    let notice = SignInNotice::parse(&get("error"));
    // Not every notice is a refusal: a deleted account says goodbye.
    let farewell = (notice == Some(SignInNotice::AccountDeleted))
        .then(|| SignInNotice::AccountDeleted.message());
    let query_error = notice
        .filter(|n| *n != SignInNotice::AccountDeleted)
        .map(|n| n.message().to_owned());
    // The sign-in form carries the verification only once it was asked for.
    let sign_in_checked = notice == Some(SignInNotice::VerificationNeeded);
    let door = door_check();
    let sign_in_widget = sign_in_checked
        .then(|| door_widget(&door, "onsubmit"))
        .flatten();
    let guest_widget = door_widget(&door, "onsubmit");
    let sign_up_widget = door_widget(&door, "onsubmit");
    let scripts = door_scripts(&door);
    // ALTCHA's widget is a script of its own, loaded after the page: a form sent before it
    // is defined would go without its proof and come back refused. Its forms' buttons are
    // therefore disabled until the widget's script enables them (`/altcha/setup.js`).
    let waits = matches!(door, DoorCheck::Altcha);
    let sign_in_waits = waits && sign_in_checked;
    let username = get("username");
    let signup_mode = get("mode") == "signup";
    let (signin_name, signup_name) = if signup_mode {
        (String::new(), username)
    } else {
        (username, String::new())
    };
    let sign_in = ServerAction::<SignIn>::new();
    let sign_up = ServerAction::<SignUp>::new();
    let guest = ServerAction::<TryAsGuest>::new();
    // Sent by script (the client-side build only; this page is never hydrated): go on to
    // the main window, or show why not.
    let refused = RwSignal::new(None::<String>);
    for value in [sign_in.value(), sign_up.value(), guest.value()] {
        Effect::new(move |_| after_action(value.get(), refused));
    }
    let error = move || refused.get().or_else(|| query_error.clone());
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
                    {farewell.map(|f| view! { <p class="form-notice" role="status">{f}</p> })}
                    {move || error().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                    <ActionForm action=sign_in attr:class="signin-form">
                        <label for="signin-username">"Username"</label>
                        <input id="signin-username" name="username" autocomplete="username" required value=signin_name/>
                        <label for="signin-password">"Password"</label>
                        <input id="signin-password" name="password" type="password" autocomplete="current-password" required/>
                        // A menu of radio buttons with the status icons: it works without
                        // script (the summary shows the choice through CSS alone).
                        <details class="status-picker">
                            <summary>
                                "Sign in as: "
                                <span class="chosen chosen-same">"Same status as last time"</span>
                                {Status::ALL.into_iter().map(|s| view! {
                                    <span class=format!("chosen chosen-{}", s.as_str())>
                                        <span class=status_dot(s) aria-hidden="true"></span>{s.choice_label()}
                                    </span>
                                }).collect_view()}
                            </summary>
                            <fieldset class="status-options">
                                <legend class="visually-hidden">"Sign in as"</legend>
                                <label class="status-option">
                                    <input type="radio" name="status" value="" checked/>
                                    <span class="status-dot same" aria-hidden="true"></span>
                                    "Same status as last time"
                                </label>
                                {Status::ALL.into_iter().map(|s| view! {
                                    <label class="status-option">
                                        <input type="radio" name="status" value=s.as_str()/>
                                        <span class=status_dot(s) aria-hidden="true"></span>
                                        {s.choice_label()}
                                    </label>
                                }).collect_view()}
                            </fieldset>
                        </details>
                        <label class="check">
                            <input type="checkbox" name="sign_out_others" value="on"/>
                            "Sign me out everywhere else"
                        </label>
                        {sign_in_widget}
                        <button type="submit" class="primary" disabled=sign_in_waits data-door-wait="">"Sign in"</button>
                    </ActionForm>
                    <ActionForm action=guest attr:class="guest-form">
                        {guest_widget}
                        <button type="submit" disabled=waits data-door-wait="">"Try as guest"</button>
                    </ActionForm>
                    <details class="signup" open=signup_mode>
                        <summary>"New to Messenger? Create an account"</summary>
                        <ActionForm action=sign_up attr:class="signin-form">
                            <label for="signup-username">"New username"</label>
                            <input id="signup-username" name="username" autocomplete="username" required
                                minlength="3" maxlength="24" pattern="[A-Za-z][A-Za-z0-9_.]*" value=signup_name
                                aria-describedby="signup-rules"/>
                            <label for="signup-password">"Choose a password"</label>
                            <input id="signup-password" name="password" type="password" autocomplete="new-password"
                                required minlength="8" maxlength="128" aria-describedby="signup-rules"/>
                            <p id="signup-rules" class="hint">"3 to 24 letters, digits, _ or ., starting with a letter; a password of at least 8 characters."</p>
                            {sign_up_widget}
                            <button type="submit" class="primary" disabled=waits data-door-wait="">"Create account"</button>
                        </ActionForm>
                    </details>
                </div>
            </section>
            {scripts}
        </main>
    }
}

/// How this server checks for bots (the server's choice; none in the client-side build).
fn door_check() -> DoorCheck {
    #[cfg(feature = "ssr")]
    if let Some(state) = use_context::<crate::server::state::AppState>() {
        return state.verifier.door();
    }
    DoorCheck::Off
}

/// The verification widget inside a form: it puts its proof in the form's `proof` field.
/// ALTCHA's starts solving when `auto` says: `onsubmit` solves when the form is sent and
/// then sends it (`onfocus` would solve early, but then the first click does not send).
fn door_widget(door: &DoorCheck, auto: &'static str) -> Option<AnyView> {
    match door {
        DoorCheck::Off => None,
        DoorCheck::Altcha => Some(
            view! {
                <altcha-widget challenge=paths::CHALLENGE name=PROOF_FIELD auto=auto></altcha-widget>
            }
            .into_any(),
        ),
        DoorCheck::Turnstile { site_key } => Some(
            view! {
                <div class="cf-turnstile" data-sitekey=site_key.clone() data-response-field-name=PROOF_FIELD></div>
            }
            .into_any(),
        ),
    }
}

/// The widget's script and style: ALTCHA's from this server (`/altcha/`), Turnstile's from
/// Cloudflare (the operator chose it).
fn door_scripts(door: &DoorCheck) -> Option<AnyView> {
    match door {
        DoorCheck::Off => None,
        DoorCheck::Altcha => Some(
            view! {
                <link rel="stylesheet" href="/altcha/altcha.css"/>
                <script type="module" src="/altcha/setup.js"></script>
            }
            .into_any(),
        ),
        DoorCheck::Turnstile { .. } => Some(
            view! { <script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer></script> }
                .into_any(),
        ),
    }
}

/// What a form sent by script answered: on to the main window, or the refusal shown.
fn after_action(value: Option<Result<SignedIn, ApiError>>, refused: RwSignal<Option<String>>) {
    match value {
        Some(Ok(_)) => {
            if let Some(w) = web_sys::window() {
                let _ = w.location().assign("/app");
            }
        }
        Some(Err(e)) => refused.set(Some(e.message)),
        None => {}
    }
}
