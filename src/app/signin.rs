//! The sign-in window: sign in, create an account, or try as a guest. Plain forms posted to
//! the API, which redirects back here with an error or on to `/app`.

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
                    <form class="signin-form" method="post" action="/api/signin">
                        <label for="signin-username">"Username"</label>
                        <input id="signin-username" name="username" autocomplete="username" required value=signin_name/>
                        <label for="signin-password">"Password"</label>
                        <input id="signin-password" name="password" type="password" autocomplete="current-password" required/>
                        <button type="submit" class="primary">"Sign in"</button>
                    </form>
                    <form class="guest-form" method="post" action="/api/guest">
                        <button type="submit">"Try as guest"</button>
                    </form>
                    <details class="signup" open=signup_mode>
                        <summary>"New to Messenger? Create an account"</summary>
                        <form class="signin-form" method="post" action="/api/signup">
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
