//! The server functions, which are the HTTP endpoints for accounts and history: sign up, sign
//! in (also to re-enter a password after a session ended), try as a guest, sign out, a bearer
//! token for non-browser clients, and a page of older messages. Their bodies run on the
//! server; in the browser each is a typed call to the same path. `docs/PROTOCOL.md` lists
//! them with their encodings:
//!
//! - sign-up, sign-in, guest and sign-out take a form (`application/x-www-form-urlencoded`),
//!   which is what the sign-in window posts (an `ActionForm`, working without any script)
//!   and what the island sends; a browser form gets a redirect, anyone else JSON;
//! - the bearer token takes JSON, for bots, scripts and the load tool;
//! - history is a `GET` with its arguments in the query string.
//!
//! Every refusal is an [`ApiError`] with the status of its code.

use crate::protocol::{http::SignedIn, ApiError, HistoryPage, Password};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

/// `POST /api/signup`: creates an account and signs it in (`201`).
#[server(prefix = "/api", endpoint = "signup")]
pub async fn sign_up(
    #[server(default)] username: String,
    #[server(default)] password: Password,
    #[server(default)] proof: String,
) -> Result<SignedIn, ApiError> {
    use crate::server::http::server_fns::{
        client_ip, form_only, proof as check, session_started, state, Window,
    };
    form_only()?;
    let state = state()?;
    let proof = check(&state, &proof).await;
    let started = state
        .auth
        .sign_up(&username, password.expose(), client_ip(&state), proof)
        .await;
    session_started(
        &state,
        started,
        http::StatusCode::CREATED,
        Window::SignUp,
        &username,
    )
}

/// `POST /api/signin`: signs in with a password; `status` is the one to show (empty: the one
/// chosen last time). The island calls it when a session ended and the user types the
/// password again.
#[server(prefix = "/api", endpoint = "signin")]
pub async fn sign_in(
    #[server(default)] username: String,
    #[server(default)] password: Password,
    #[server(default)] status: String,
    #[server(default)] proof: String,
    #[server(default)] sign_out_others: String,
) -> Result<SignedIn, ApiError> {
    use crate::server::http::server_fns::{
        client_ip, form_only, proof as check, session_started, state, Window,
    };
    form_only()?;
    let state = state()?;
    let proof = check(&state, &proof).await;
    let mut started = state
        .auth
        .sign_in(
            &username,
            password.expose(),
            &status,
            client_ip(&state),
            proof,
        )
        .await;
    // "Sign me out everywhere else": a checkbox, so any value but empty means yes.
    if let (Ok(s), false) = (&started, sign_out_others.is_empty()) {
        if let Err(e) = state.auth.sign_out_others(&s.session).await {
            started = Err(e);
        }
    }
    session_started(
        &state,
        started,
        http::StatusCode::OK,
        Window::SignIn,
        &username,
    )
}

/// `POST /api/guest`: a temporary account, signed in (`201`).
#[server(prefix = "/api", endpoint = "guest")]
pub async fn try_as_guest(#[server(default)] proof: String) -> Result<SignedIn, ApiError> {
    use crate::server::http::server_fns::{
        client_ip, form_only, proof as check, session_started, state, Window,
    };
    form_only()?;
    let state = state()?;
    let proof = check(&state, &proof).await;
    let started = state.auth.guest(client_ip(&state), proof).await;
    session_started(
        &state,
        started,
        http::StatusCode::CREATED,
        Window::SignIn,
        "",
    )
}

/// `POST /api/signout`: ends the session (`204`); its sockets close with 4001.
#[server(prefix = "/api", endpoint = "signout")]
pub async fn sign_out() -> Result<(), ApiError> {
    use crate::server::http::server_fns::{current_session, fail, form_only, signed_out, state};
    form_only()?;
    let state = state()?;
    let session = current_session(&state).await?;
    state.auth.sign_out(&session).await.map_err(fail)?;
    signed_out(&state);
    Ok(())
}

/// `POST /api/token` (JSON): a bearer token for a non-browser client, from a username and
/// password (and optionally a status), or for a new guest with `{"guest": true}`. No
/// cookie is set.
/// Ends every other session of the caller's account (other browsers, devices and tokens);
/// how many.
#[server(prefix = "/api", endpoint = "signout-others")]
pub async fn sign_out_others() -> Result<usize, ApiError> {
    use crate::server::http::server_fns::{current_session, fail, form_only, state};
    form_only()?;
    let state = state()?;
    let session = current_session(&state).await?;
    state.auth.sign_out_others(&session).await.map_err(fail)
}

#[server(prefix = "/api", endpoint = "token", input = Json)]
pub async fn bearer_token(
    #[server(default)] username: Option<String>,
    #[server(default)] password: Option<Password>,
    #[server(default)] status: Option<String>,
    #[server(default)] guest: bool,
    #[server(default)] proof: Option<String>,
) -> Result<SignedIn, ApiError> {
    use crate::server::http::{
        accounts::signed_in,
        server_fns::{client_ip, fail, proof as check, state},
    };
    let state = state()?;
    let from = client_ip(&state);
    let proof = check(&state, proof.as_deref().unwrap_or_default()).await;
    let started = if guest {
        state.auth.guest(from, proof).await
    } else {
        state
            .auth
            .sign_in(
                username.as_deref().unwrap_or_default(),
                password.as_ref().map_or("", Password::expose),
                status.as_deref().unwrap_or_default(),
                from,
                proof,
            )
            .await
    }
    .map_err(fail)?;
    Ok(signed_in(&started.session, Some(started.token)))
}

/// `GET /api/history?conv=<id>&before=<seq>&limit=<n>`: up to `limit` (default 50, at most
/// 100) messages of a conversation before `before` (or the newest), oldest first; members
/// only, from where their view starts.
#[server(prefix = "/api", endpoint = "history", input = GetUrl)]
pub async fn load_history(
    conv: i64,
    #[server(default)] before: Option<i64>,
    #[server(default)] limit: Option<u32>,
) -> Result<HistoryPage, ApiError> {
    use crate::server::http::server_fns::{current_session, fail, state};
    let state = state()?;
    let session = current_session(&state).await?;
    state
        .chat
        .history_page(session.user.id, conv, before, limit)
        .await
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_arguments_never_show_a_password_in_debug_output() {
        let call = SignIn {
            username: "ann".into(),
            password: "hunter2 secret".to_owned().into(),
            status: String::new(),
            proof: String::new(),
            sign_out_others: String::new(),
        };
        let up = SignUp {
            username: "ann".into(),
            password: "hunter2 secret".to_owned().into(),
            proof: String::new(),
        };
        let token = BearerToken {
            username: Some("ann".into()),
            password: Some("hunter2 secret".to_owned().into()),
            status: None,
            guest: false,
            proof: None,
        };
        for shown in [format!("{call:?}"), format!("{up:?}"), format!("{token:?}")] {
            assert!(
                !shown.contains("hunter2") && shown.contains("ann"),
                "{shown}"
            );
        }
    }
}
