//! The server functions, which are the HTTP endpoints for accounts and history: sign up, sign
//! in (also to re-enter a password after a session ended), try as a guest, sign out, a bearer
//! token for non-browser clients, a page of older messages; and the account page's: change
//! the password, list and end sessions, sign out everywhere else, delete the account. Their bodies run on the
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

#[cfg(feature = "ssr")]
use crate::protocol::http::AccountNotice;
use crate::protocol::{
    http::{
        AccountView, AuditPage, BotsView, Overview, QueryAnswer, RoomAdminView, SessionView,
        SignedIn,
    },
    ApiError, HistoryPage, Password,
};
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
        client_ip, describe_session, form_only, proof as check, record, session_started, state,
        Window,
    };
    form_only()?;
    let state = state()?;
    let proof = check(&state, &proof).await;
    let started = state
        .auth
        .sign_up(&username, password.expose(), client_ip(&state), proof)
        .await;
    if let Ok(s) = &started {
        describe_session(&state, s.session.id).await;
        record(&state, "signup", "form");
    }
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
        client_ip, describe_session, form_only, proof as check, record, session_started, state,
        Window,
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
    match &started {
        Ok(s) => {
            describe_session(&state, s.session.id).await;
            record(&state, "login_success", "form");
        }
        Err(crate::server::error::AppError::Unauthorized(_)) => {
            state.metrics.signin_failures.inc();
            record(&state, "login_failure", "form");
        }
        Err(_) => {}
    }
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
        client_ip, describe_session, form_only, proof as check, record, session_started, state,
        Window,
    };
    form_only()?;
    let state = state()?;
    let proof = check(&state, &proof).await;
    let started = state.auth.guest(client_ip(&state), proof).await;
    if let Ok(s) = &started {
        describe_session(&state, s.session.id).await;
        record(&state, "guest_created", "form");
    }
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
    use crate::server::http::server_fns::{
        current_session, fail, form_only, record, signed_out, state,
    };
    form_only()?;
    let state = state()?;
    let session = current_session(&state).await?;
    state.auth.sign_out(&session).await.map_err(fail)?;
    record(
        &state,
        "sign_out",
        if session.user.is_guest {
            "guest"
        } else {
            "account"
        },
    );
    signed_out(&state);
    Ok(())
}

/// `POST /api/signout-others`: ends every other session of the caller's account (other
/// browsers, devices and tokens); how many.
#[server(prefix = "/api", endpoint = "signout-others")]
pub async fn sign_out_others() -> Result<usize, ApiError> {
    use crate::server::http::server_fns::{account_answer, current_session, form_only, state};
    form_only()?;
    let state = state()?;
    let session = current_session(&state).await?;
    account_answer(
        state.auth.sign_out_others(&session).await,
        AccountNotice::OthersSignedOut,
    )
}

/// `POST /api/change-password`: changes the caller's password (`current_password` is
/// required) and ends their other sessions; how many ended. A wrong current password
/// counts as a failed sign-in.
#[server(prefix = "/api", endpoint = "change-password")]
pub async fn change_password(
    #[server(default)] current_password: Password,
    #[server(default)] new_password: Password,
) -> Result<usize, ApiError> {
    use crate::server::http::server_fns::{
        account_answer, client_ip, current_session, form_only, state,
    };
    form_only()?;
    let state = state()?;
    let session = current_session(&state).await?;
    let changed = state
        .auth
        .change_password(
            &session,
            current_password.expose(),
            new_password.expose(),
            client_ip(&state),
        )
        .await;
    account_answer(changed, AccountNotice::PasswordChanged)
}

/// `GET /api/sessions`: the caller's live sessions, the latest used first.
#[server(prefix = "/api", endpoint = "sessions", input = GetUrl)]
pub async fn list_sessions() -> Result<Vec<SessionView>, ApiError> {
    use crate::server::http::server_fns::{current_session, fail, state};
    let state = state()?;
    let session = current_session(&state).await?;
    let list = state.auth.sessions_of(&session).await.map_err(fail)?;
    Ok(list
        .into_iter()
        .map(|s| SessionView {
            current: s.id == session.id,
            id: s.id,
            device: s.device,
            address: s.address,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
        })
        .collect())
}

/// `POST /api/end-session`: ends one of the caller's other sessions (`id`, from
/// `sessions`); its sockets close.
#[server(prefix = "/api", endpoint = "end-session")]
pub async fn end_session(#[server(default)] id: i64) -> Result<(), ApiError> {
    use crate::server::http::server_fns::{account_answer, current_session, form_only, state};
    form_only()?;
    let state = state()?;
    let session = current_session(&state).await?;
    account_answer(
        state.auth.end_own_session(&session, id).await,
        AccountNotice::SessionEnded,
    )
}

/// `POST /api/delete-account`: deletes the caller's account (`password` required, except
/// for a guest; `confirm` must be set), signs it out everywhere and erases what it wrote
/// (`204`; a browser form goes to the sign-in window).
#[server(prefix = "/api", endpoint = "delete-account")]
pub async fn delete_account(
    #[server(default)] password: Password,
    #[server(default)] confirm: String,
) -> Result<(), ApiError> {
    use crate::server::{
        error::AppError,
        http::server_fns::{
            account_deleted, account_refusal, client_ip, current_session, form_only, state,
        },
    };
    form_only()?;
    let state = state()?;
    let session = current_session(&state).await?;
    if confirm.is_empty() {
        return Err(account_refusal(
            AppError::Invalid("Confirm that you want your account deleted.".into()),
            Some(AccountNotice::NotConfirmed),
        ));
    }
    state
        .auth
        .delete_account(&session, password.expose(), client_ip(&state))
        .await
        .map_err(|e| account_refusal(e, None))?;
    account_deleted(&state);
    Ok(())
}

/// `POST /api/token` (JSON): a bearer token for a non-browser client, from a username and
/// password (and optionally a status), or for a new guest with `{"guest": true}`. No
/// cookie is set.
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
        server_fns::{client_ip, describe_session, fail, proof as check, record, state},
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
    .map_err(|e| {
        if matches!(e, crate::server::error::AppError::Unauthorized(_)) {
            state.metrics.signin_failures.inc();
            record(&state, "login_failure", "token");
        }
        fail(e)
    })?;
    describe_session(&state, started.session.id).await;
    record(
        &state,
        if guest {
            "guest_created"
        } else {
            "login_success"
        },
        "token",
    );
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

/// `GET /api/admin/overview`: the live numbers of the admin console (admins only).
#[server(prefix = "/api", endpoint = "admin/overview", input = GetUrl)]
pub async fn admin_overview() -> Result<Overview, ApiError> {
    use crate::server::http::server_fns::{require_admin, state};
    let state = state()?;
    require_admin(&state).await?;
    let path = crate::server::analytics::path_of(&state.cfg.store);
    let minutes = tokio::task::spawn_blocking(move || {
        crate::server::reports::run(
            &path,
            "SELECT strftime('%H:%M', at / 1000, 'unixepoch') AS minute, CAST(SUM(n2) AS INTEGER)
             FROM events
             WHERE event = 'message_sent' AND at > (strftime('%s', 'now') - 3600) * 1000
             GROUP BY minute ORDER BY minute",
        )
    })
    .await
    .ok()
    .and_then(Result::ok);
    let messages_per_minute = minutes
        .map(|t| {
            t.rows
                .into_iter()
                .filter_map(|r| match (r.first(), r.get(1)) {
                    (
                        Some(crate::server::reports::Cell::Text(m)),
                        Some(crate::server::reports::Cell::Int(n)),
                    ) => Some((m.clone(), *n)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let sockets = *state.live_sockets.borrow() as u64;
    Ok(Overview {
        sockets,
        users_online: state.hub.users_connected() as u64,
        writer_queue: state.chat.log.queued() as u64,
        analytics_dropped: state.analytics.dropped(),
        messages_per_minute,
    })
}

/// `GET /api/admin/query?sql=...`: one reading SQL statement over the analytics database
/// (admins only; `crate::server::reports` says what is refused). `422` with SQLite's or
/// the console's reason for anything that does not run.
#[server(prefix = "/api", endpoint = "admin/query", input = GetUrl)]
pub async fn admin_query(sql: String) -> Result<QueryAnswer, ApiError> {
    use crate::server::{
        error::AppError,
        http::server_fns::{fail, require_admin, state},
        reports::{self, Cell},
    };
    let state = state()?;
    require_admin(&state).await?;
    let path = crate::server::analytics::path_of(&state.cfg.store);
    let table = tokio::task::spawn_blocking(move || reports::run(&path, &sql))
        .await
        .map_err(|e| fail(AppError::Internal(e.into())))?
        .map_err(|refused| fail(AppError::Invalid(refused.to_string())))?;
    let cell = |c: Cell| match c {
        Cell::Null => serde_json::Value::Null,
        Cell::Int(v) => v.into(),
        Cell::Real(v) => v.into(),
        Cell::Text(v) => v.into(),
    };
    Ok(QueryAnswer {
        columns: table.columns,
        rows: table
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(cell).collect())
            .collect(),
        truncated: table.truncated,
        millis: table.millis,
    })
}

/// `GET /api/admin/users?search=...`: accounts whose username or display name contains
/// `search` (at most 50; admins only).
#[server(prefix = "/api", endpoint = "admin/users", input = GetUrl)]
pub async fn admin_users(#[server(default)] search: String) -> Result<Vec<AccountView>, ApiError> {
    use crate::server::{
        http::server_fns::{fail, require_admin, state},
        store::account::AccountStore,
    };
    let state = state()?;
    require_admin(&state).await?;
    let rows = AccountStore::find_accounts(&*state.store, search.trim(), 50)
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(rows
        .into_iter()
        .map(|r| AccountView {
            username: r.username,
            display_name: r.display_name,
            is_guest: r.is_guest,
            is_admin: r.is_admin,
            disabled: r.disabled,
            created_at: r.created_at,
            sessions: r.sessions,
        })
        .collect())
}

/// `POST /api/admin/reauth`: the administrator enters their password again, which opens
/// the console's destructive actions for ten minutes (a browser goes back to the users
/// page, or to the rooms page when `back` is `rooms`, with `search`).
#[server(prefix = "/api", endpoint = "admin/reauth")]
pub async fn admin_reauth(
    #[server(default)] password: Password,
    #[server(default)] search: String,
    #[server(default)] back: String,
) -> Result<(), ApiError> {
    use crate::server::http::server_fns::{
        admin_answer, client_ip, form_only, require_admin, state,
    };
    form_only()?;
    let state = state()?;
    let session = require_admin(&state).await?;
    let done = state
        .auth
        .reauthenticate(&session, password.expose(), client_ip(&state))
        .await;
    let page = if back == "rooms" {
        crate::protocol::http::paths::ADMIN_ROOMS
    } else {
        crate::protocol::http::paths::ADMIN_USERS
    };
    admin_answer(done, page, "reauthenticated", &search)
}

/// `POST /api/admin/user`: an administrator acts on the account `username`: `action` is
/// `disable`, `enable`, `sign_out` (everywhere) or `delete`. Each needs the administrator's
/// password entered again within ten minutes (`admin/reauth`; `403` otherwise), and is
/// recorded in the audit log and the analytics.
#[server(prefix = "/api", endpoint = "admin/user")]
pub async fn admin_user(
    #[server(default)] username: String,
    #[server(default)] action: String,
    #[server(default)] search: String,
) -> Result<(), ApiError> {
    use crate::server::{
        account::DeletedBy,
        error::AppError,
        http::server_fns::{admin_answer, form_only, require_admin, state, REAUTH_FOR},
        store::UserStore,
    };
    form_only()?;
    let state = state()?;
    let session = require_admin(&state).await?;
    let result = async {
        if !state.auth.is_fresh(&session, REAUTH_FOR).await? {
            return Err(AppError::Forbidden(
                "Enter your password again first: changes like this ask for it every ten minutes."
                    .into(),
            ));
        }
        let not_found = || AppError::NotFound(format!("There is no account {username}."));
        let user = UserStore::user_by_username(&*state.store, username.trim())
            .await?
            .filter(|u| !u.summary.is_bot)
            .ok_or_else(not_found)?;
        let id = user.summary.id;
        let found = match action.as_str() {
            "disable" => state.auth.set_disabled(&session, id, true).await?,
            "enable" => state.auth.set_disabled(&session, id, false).await?,
            "sign_out" => {
                state.auth.sign_out_everywhere(&session, id).await?;
                true
            }
            "delete" => {
                state
                    .erasure
                    .delete(id, DeletedBy::Admin(Some(session.user.id)))
                    .await?
            }
            _ => {
                return Err(AppError::Invalid(
                    "The action is disable, enable, sign_out or delete.".into(),
                ))
            }
        };
        if !found {
            return Err(not_found());
        }
        state
            .analytics
            .record(crate::server::analytics::Event::new("admin_action").d1(
                match action.as_str() {
                    "disable" => "disable",
                    "enable" => "enable",
                    "sign_out" => "sign_out",
                    _ => "delete",
                },
            ));
        Ok(())
    }
    .await;
    let done = match action.as_str() {
        "disable" => "disabled",
        "enable" => "enabled",
        "sign_out" => "signed_out",
        _ => "deleted",
    };
    admin_answer(
        result,
        crate::protocol::http::paths::ADMIN_USERS,
        done,
        &search,
    )
}

/// `GET /api/admin/rooms?search=...`: public rooms whose title contains `search`, archived
/// ones too, by id (at most 200; admins only).
#[server(prefix = "/api", endpoint = "admin/rooms", input = GetUrl)]
pub async fn admin_rooms(
    #[server(default)] search: String,
) -> Result<Vec<RoomAdminView>, ApiError> {
    use crate::server::http::server_fns::{fail, require_admin, state};
    let state = state()?;
    require_admin(&state).await?;
    let rows = state.chat.rooms_for_admin(&search).await.map_err(fail)?;
    Ok(rows
        .into_iter()
        .map(|r| RoomAdminView {
            id: r.id,
            title: r.title,
            members: r.members,
            messages: r.last_seq,
            archived: r.archived,
        })
        .collect())
}

/// `POST /api/admin/room`: an administrator keeps the public rooms: `action` is `add` (a
/// room titled `title`), `rename` (room `room` to `title`), `archive` or `restore` (room
/// `room`). Archiving needs the administrator's password entered again within ten minutes
/// (`admin/reauth`; `403` otherwise). Each is recorded in the audit log and the analytics.
#[server(prefix = "/api", endpoint = "admin/room")]
pub async fn admin_room(
    #[server(default)] action: String,
    #[server(default)] room: Option<i64>,
    #[server(default)] title: String,
    #[server(default)] search: String,
) -> Result<(), ApiError> {
    use crate::server::{
        audit::NewEntry,
        error::AppError,
        http::server_fns::{admin_answer, form_only, require_admin, state, REAUTH_FOR},
    };
    form_only()?;
    let state = state()?;
    let session = require_admin(&state).await?;
    let result = async {
        let room = || {
            room.filter(|id| *id > 0)
                .ok_or_else(|| AppError::Invalid("Say which room (its number).".into()))
        };
        let (event, detail) = match action.as_str() {
            "add" => {
                let (id, title) = state.chat.add_room(&title).await?;
                ("room_added", serde_json::json!({ "room": id, "title": title }))
            }
            "rename" => {
                let id = room()?;
                let title = state.chat.rename_room(id, &title).await?;
                ("room_renamed", serde_json::json!({ "room": id, "title": title }))
            }
            "archive" | "restore" => {
                let id = room()?;
                let archive = action == "archive";
                if archive && !state.auth.is_fresh(&session, REAUTH_FOR).await? {
                    return Err(AppError::Forbidden(
                        "Enter your password again first: changes like this ask for it every ten minutes."
                            .into(),
                    ));
                }
                state.chat.archive_room(id, archive).await?;
                let event = if archive { "room_archived" } else { "room_restored" };
                (event, serde_json::json!({ "room": id }))
            }
            _ => {
                return Err(AppError::Invalid(
                    "The action is add, rename, archive or restore.".into(),
                ))
            }
        };
        state
            .audit
            .record(NewEntry {
                event,
                user: None,
                actor: format!("user:{}", session.user.id),
                address: None,
                detail,
            })
            .await;
        state
            .analytics
            .record(crate::server::analytics::Event::new("admin_action").d1(event));
        Ok(event)
    }
    .await;
    let done = match &result {
        Ok(event) => *event,
        Err(_) => "",
    };
    admin_answer(
        result.map(|_| ()),
        crate::protocol::http::paths::ADMIN_ROOMS,
        done,
        &search,
    )
}

/// `GET /api/admin/bots`: the AI contacts: on or off, the model and its breaker, today's
/// replies against the daily limit, and per persona over the last day (admins only).
#[server(prefix = "/api", endpoint = "admin/bots", input = GetUrl)]
pub async fn admin_bots() -> Result<BotsView, ApiError> {
    use crate::server::{
        http::server_fns::{fail, require_admin, state},
        store::{account::AccountStore, BotStore},
    };
    let state = state()?;
    require_admin(&state).await?;
    let enabled = BotStore::bots_enabled(&*state.store)
        .await
        .map_err(|e| fail(e.into()))?;
    let day = crate::server::store::now_ms().div_euclid(86_400_000);
    let replies_today = AccountStore::bot_replies_today(&*state.store, day)
        .await
        .map_err(|e| fail(e.into()))?;
    let (model, breaker) = match &state.bots {
        Some(b) => (b.brain.has_model(), b.brain.breaker.state().to_owned()),
        None => (false, "off".to_owned()),
    };
    let last_day = admin_query(
        "SELECT persona, COUNT(*) AS calls, SUM(outcome = 'model') AS model,
                SUM(outcome = 'offline') AS offline, SUM(outcome = 'fallback') AS fallback,
                SUM(outcome = 'busy') AS busy, SUM(outcome = 'quota') AS quota,
                ROUND(AVG(latency_ms)) AS avg_ms
         FROM ai_invocations
         WHERE at > (strftime('%s', 'now') - 86400) * 1000
         GROUP BY persona ORDER BY calls DESC"
            .to_owned(),
    )
    .await?;
    Ok(BotsView {
        enabled,
        model,
        breaker,
        replies_today,
        daily_limit: i64::from(state.cfg.bots.global_daily),
        last_day,
    })
}

/// `POST /api/admin/bots/switch`: `on` (`yes` or anything else) lets the AI contacts answer
/// or stops them, at once (admins only; in the audit log).
#[server(prefix = "/api", endpoint = "admin/bots/switch")]
pub async fn admin_switch_bots(#[server(default)] on: String) -> Result<(), ApiError> {
    use crate::server::{
        audit::NewEntry,
        http::server_fns::{admin_answer, form_only, require_admin, state},
        store::BotStore,
    };
    form_only()?;
    let state = state()?;
    let session = require_admin(&state).await?;
    let on = on == "yes";
    let done = BotStore::set_bots_enabled(&*state.store, on)
        .await
        .map_err(Into::into);
    if done.is_ok() {
        state
            .audit
            .record(NewEntry {
                event: if on { "bots_on" } else { "bots_off" },
                user: None,
                actor: format!("user:{}", session.user.id),
                address: None,
                detail: serde_json::json!({}),
            })
            .await;
        state.analytics.record(
            crate::server::analytics::Event::new("admin_action").d1(if on {
                "bots_on"
            } else {
                "bots_off"
            }),
        );
    }
    admin_answer(
        done,
        "/admin/bots",
        if on { "bots_on" } else { "bots_off" },
        "",
    )
}

/// `GET /api/admin/audit?before=<id>`: a page of 100 audit log entries below `before` (or
/// the newest), newest first, and what checking the whole chain found (admins only).
#[server(prefix = "/api", endpoint = "admin/audit", input = GetUrl)]
pub async fn admin_audit(#[server(default)] before: Option<i64>) -> Result<AuditPage, ApiError> {
    use crate::server::{
        audit::{verify, AuditStore, Verdict},
        http::server_fns::{fail, require_admin, state},
    };
    let state = state()?;
    require_admin(&state).await?;
    let entries = AuditStore::entries_before(&*state.store, before.unwrap_or(i64::MAX), 100)
        .await
        .map_err(|e| fail(e.into()))?;
    let (chain, chain_holds) = match verify(&*state.store).await.map_err(|e| fail(e.into()))? {
        Verdict::Holds(n) => (
            format!("The chain holds: {n} entries, each following the one before."),
            true,
        ),
        Verdict::BrokenAt(id) => (
            format!("The chain is broken at entry {id}: it was edited, inserted or removed."),
            false,
        ),
    };
    Ok(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| crate::protocol::http::AuditView {
                id: e.id,
                at: e.at,
                event: e.event,
                actor: e.actor,
                user: e.user,
                address: e.address,
                detail: e.detail,
            })
            .collect(),
        chain,
        chain_holds,
    })
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
