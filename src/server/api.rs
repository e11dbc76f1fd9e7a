//! The HTTP API: sign-up, sign-in, guests, sessions, bearer tokens, and the conversation calls
//! (open a one-to-one conversation, join a room, page through history). Auth endpoints take
//! JSON or an HTML form; a form gets redirects (so the sign-in page works without WASM),
//! JSON gets JSON.

use super::{
    auth::{self, CurrentSession},
    conversations,
    error::{AppError, Result},
    hub::Control,
    state::AppState,
    store::{self, now_ms, CreateUser, SessionRow},
};
use crate::protocol::{
    close, ConversationSummary, HistoryPage, NewPassword, RoomPage, Status, UserSummary, Username,
    GUEST_PREFIX, HISTORY_PAGE_MAX, ROOM_PAGE_MAX,
};
use axum::{
    extract::{FromRequest, Path, Query, Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Json, Router,
};
use rand::Rng;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/signup", post(signup))
        .route("/api/signin", post(signin))
        .route("/api/guest", post(guest))
        .route("/api/signout", post(signout))
        .route("/api/session", get(session_info))
        .route("/api/session/refresh", post(refresh))
        .route("/api/token", post(token))
        .route("/api/dm", post(open_dm))
        .route("/api/rooms", get(room_directory))
        .route("/api/bots", get(bot_list))
        .route("/api/rooms/{id}/join", post(join_room))
        .route("/api/conversations/{id}/messages", get(history))
        .route("/api/conversations", post(start_group))
        .route("/api/conversations/{id}/invite", post(invite))
        .route("/api/conversations/{id}/leave", post(leave))
        .route("/health", get(|| async { "ok" }))
}

/// A request body that is JSON or an HTML form; `form` says which, so the answer can match.
pub struct Input<T> {
    pub value: T,
    pub form: bool,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Input<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ct.starts_with("application/json") {
            let Json(value) = Json::<T>::from_request(req, state)
                .await
                .map_err(|e| AppError::Invalid(e.body_text()))?;
            Ok(Self { value, form: false })
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            let Form(value) = Form::<T>::from_request(req, state)
                .await
                .map_err(|e| AppError::Invalid(e.body_text()))?;
            Ok(Self { value, form: true })
        } else {
            Err(AppError::UnsupportedMediaType)
        }
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// The status to sign in with (the sign-in window's "Sign in as" menu); empty or
    /// absent keeps the one chosen last time.
    #[serde(default)]
    status: String,
}

/// What a successful sign-in returns to JSON clients.
#[derive(Serialize, Deserialize, Debug)]
pub struct SignedIn {
    pub user: UserSummary,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    /// Only from `/api/token`: the bearer token for non-browser clients.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token: Option<String>,
}

fn signed_in(session: &SessionRow, token: Option<String>) -> SignedIn {
    SignedIn {
        user: session.user.clone(),
        idle_expires_at: session.idle_expires_at,
        absolute_expires_at: session.absolute_expires_at,
        token,
    }
}

/// Answers a sign-in: a cookie plus a redirect (form) or JSON.
fn session_response(
    state: &AppState,
    form: bool,
    status: StatusCode,
    token: &str,
    session: &SessionRow,
) -> Response {
    let cookie = auth::session_cookie(state, token, session);
    if form {
        ([(header::SET_COOKIE, cookie)], Redirect::to("/app")).into_response()
    } else {
        (
            status,
            [(header::SET_COOKIE, cookie)],
            Json(signed_in(session, None)),
        )
            .into_response()
    }
}

/// Answers a failed form post with a redirect back to the sign-in window showing the error.
fn form_error(mode: &str, username: &str, err: &AppError) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("mode", mode)
        .append_pair("username", username)
        .append_pair("error", &err.public_message())
        .finish();
    Redirect::to(&format!("/?{query}")).into_response()
}

async fn signup(State(state): State<AppState>, input: Input<Credentials>) -> Response {
    let form = input.form;
    let username = input.value.username.clone();
    match create_account(&state, input.value).await {
        Ok((token, session)) => {
            session_response(&state, form, StatusCode::CREATED, &token, &session)
        }
        Err(e) if form => form_error("signup", &username, &e),
        Err(e) => e.into_response(),
    }
}

async fn create_account(state: &AppState, c: Credentials) -> Result<(String, SessionRow)> {
    let username = Username::parse(&c.username).map_err(|e| AppError::Invalid(e.0))?;
    let password = NewPassword::parse(&c.password).map_err(|e| AppError::Invalid(e.0))?;
    // The AI contacts' names are theirs, even before the bots are first started.
    if super::bots::personas::by_handle(username.as_str()).is_some() {
        return Err(AppError::Conflict(format!(
            "The username {username} is taken."
        )));
    }
    let hash = auth::hash_password(state, password.expose().to_owned()).await?;
    let user = match store::create_user(
        state.store.pool(),
        username.as_str(),
        username.as_str(),
        Some(&hash),
        false,
    )
    .await?
    {
        CreateUser::Created(user) => user,
        CreateUser::Taken => {
            return Err(AppError::Conflict(format!(
                "The username {username} is taken."
            )))
        }
    };
    tracing::info!(user = user.id, "account created");
    auth::start_session(state, user.id).await
}

async fn signin(State(state): State<AppState>, input: Input<Credentials>) -> Response {
    let form = input.form;
    let username = input.value.username.clone();
    match check_credentials(&state, input.value).await {
        Ok((token, session)) => session_response(&state, form, StatusCode::OK, &token, &session),
        Err(e) if form => form_error("signin", &username, &e),
        Err(e) => e.into_response(),
    }
}

async fn check_credentials(state: &AppState, c: Credentials) -> Result<(String, SessionRow)> {
    let wrong = || AppError::Unauthorized("Wrong username or password.".into());
    let status = match c.status.trim() {
        "" => None,
        s => Some(Status::parse(s).ok_or_else(|| {
            AppError::Invalid("Choose a status from the list to sign in with.".into())
        })?),
    };
    let found = store::user_by_username(state.store.pool(), c.username.trim()).await?;
    let (user_id, hash) = match found {
        Some(u) => (Some(u.summary.id), u.password_hash),
        None => (None, None),
    };
    if !auth::verify_password(state, hash, c.password).await? {
        return Err(wrong());
    }
    let user_id = user_id.ok_or_else(wrong)?;
    // Stored before the session exists, so no socket of it can show another status first.
    if let Some(status) = status {
        super::contacts::update_me(state, user_id, Some(status), None, None).await?;
    }
    auth::start_session(state, user_id).await
}

async fn guest(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    match create_guest(&state).await {
        Ok((token, session)) => {
            session_response(&state, form, StatusCode::CREATED, &token, &session)
        }
        Err(e) if form => form_error("signin", "", &e),
        Err(e) => e.into_response(),
    }
}

async fn create_guest(state: &AppState) -> Result<(String, SessionRow)> {
    // 40 random bits: a collision is unlikely, and retried if it happens.
    for _ in 0..5 {
        let tag: u64 = rand::thread_rng().gen_range(0..(1u64 << 40));
        let username = format!("{GUEST_PREFIX}{tag:010x}");
        let display = format!("Guest {:04X}", tag & 0xffff);
        if let CreateUser::Created(user) =
            store::create_user(state.store.pool(), &username, &display, None, true).await?
        {
            tracing::info!(user = user.id, "guest account created");
            return auth::start_session(state, user.id).await;
        }
    }
    Err(AppError::Internal(anyhow::anyhow!(
        "no free guest name after 5 tries"
    )))
}

async fn signout(
    State(state): State<AppState>,
    current: CurrentSession,
    headers: axum::http::HeaderMap,
) -> Response {
    let session = &current.session;
    if let Err(e) = store::revoke_session(state.store.pool(), session.id).await {
        return AppError::from(e).into_response();
    }
    state.hub.end_session(
        session.user.id,
        session.id,
        close::SESSION_ENDED,
        "signed out",
    );
    tracing::info!(user = session.user.id, "signed out");
    let cookie = auth::clear_cookie(&state);
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
    } else {
        (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
    }
}

async fn session_info(current: CurrentSession) -> Json<SignedIn> {
    Json(signed_in(&current.session, None))
}

async fn refresh(State(state): State<AppState>, current: CurrentSession) -> Result<Json<SignedIn>> {
    let mut session = current.session;
    auth::slide(&state, &mut session, now_ms(), true).await?;
    Ok(Json(signed_in(&session, None)))
}

#[derive(Deserialize)]
struct TokenRequest {
    username: Option<String>,
    password: Option<String>,
    /// As on the sign-in window: the status to sign in with.
    status: Option<String>,
    #[serde(default)]
    guest: bool,
}

/// `POST /api/token`: a bearer token for bots, scripts and the load tool. No cookie is set.
async fn token(
    State(state): State<AppState>,
    Json(req): Json<TokenRequest>,
) -> Result<Json<SignedIn>> {
    let (token, session) = if req.guest {
        create_guest(&state).await?
    } else {
        let c = Credentials {
            username: req.username.unwrap_or_default(),
            password: req.password.unwrap_or_default(),
            status: req.status.unwrap_or_default(),
        };
        check_credentials(&state, c).await?
    };
    Ok(Json(signed_in(&session, Some(token))))
}

#[derive(Deserialize)]
pub struct OpenDm {
    pub username: String,
}

async fn open_dm(
    State(state): State<AppState>,
    current: CurrentSession,
    Json(req): Json<OpenDm>,
) -> Result<Json<ConversationSummary>> {
    Ok(Json(
        open_dm_with(&state, &current.session.user, &req.username).await?,
    ))
}

/// Finds or starts the one-to-one conversation of `me` with `username`; when it is new, both
/// users' open connections learn of it.
async fn open_dm_with(
    state: &AppState,
    me: &UserSummary,
    username: &str,
) -> Result<ConversationSummary> {
    let username = username.trim();
    let other = store::user_by_username(state.store.pool(), username)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no user called {username:?}.")))?
        .summary;
    if other.id == me.id {
        return Err(AppError::Invalid(
            "That is you; pick someone else to talk to.".into(),
        ));
    }
    let (conv, created) = store::get_or_create_dm(state.store.pool(), me.id, other.id).await?;
    if created && other.is_bot {
        if let Some(bots) = state.bots.as_ref() {
            bots.refresh(state.store.pool(), conv).await?;
        }
    }
    let mine = summary_for(state, conv, me.id).await?;
    if created {
        state
            .hub
            .notify_user(me.id, Control::Added(Box::new(mine.clone())));
        let theirs = summary_for(state, conv, other.id).await?;
        state
            .hub
            .notify_user(other.id, Control::Added(Box::new(theirs)));
    }
    Ok(mine)
}

/// `conv` as `user` sees it; 404 if they are not in it.
pub async fn summary_for(state: &AppState, conv: i64, user: i64) -> Result<ConversationSummary> {
    store::conversation_for_member(state.store.pool(), conv, user)
        .await?
        .ok_or_else(|| AppError::NotFound("That conversation does not exist.".into()))
}

async fn join_room(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(id): Path<i64>,
) -> Result<Json<ConversationSummary>> {
    Ok(Json(join_room_as(&state, &current.session.user, id).await?))
}

/// Joins a public room; the user's open connections learn of it.
async fn join_room_as(
    state: &AppState,
    me: &UserSummary,
    room: i64,
) -> Result<ConversationSummary> {
    match store::join_room(state.store.pool(), room, me.id).await? {
        None => Err(AppError::NotFound("There is no such room.".into())),
        Some(newly) => {
            let summary = summary_for(state, room, me.id).await?;
            if newly {
                state
                    .hub
                    .notify_user(me.id, Control::Added(Box::new(summary.clone())));
            }
            Ok(summary)
        }
    }
}

/// `GET /api/bots`: the AI contacts anyone can add (kept out of `hello`, which every
/// connection holds on to).
async fn bot_list(State(state): State<AppState>, _: CurrentSession) -> Json<Vec<UserSummary>> {
    Json(
        state
            .bots
            .as_ref()
            .map(|b| b.summaries())
            .unwrap_or_default(),
    )
}

#[derive(Deserialize)]
struct RoomQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    q: String,
    limit: Option<i64>,
}

/// `GET /api/rooms?after=<id>&q=<text>&limit=<n>`: the public rooms, a page at a time.
async fn room_directory(
    State(state): State<AppState>,
    current: CurrentSession,
    Query(q): Query<RoomQuery>,
) -> Result<Json<RoomPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, ROOM_PAGE_MAX);
    let search = q.q.trim();
    if search.chars().count() > 64 {
        return Err(AppError::Invalid(
            "Search for at most 64 characters of a room's title.".into(),
        ));
    }
    let (rooms, has_more) = store::room_page(
        state.store.pool(),
        current.session.user.id,
        q.after,
        search,
        limit,
    )
    .await?;
    Ok(Json(RoomPage { rooms, has_more }))
}

#[derive(Deserialize)]
struct StartGroup {
    /// User ids of the contacts to invite.
    members: Vec<i64>,
}

async fn start_group(
    State(state): State<AppState>,
    current: CurrentSession,
    Json(req): Json<StartGroup>,
) -> Result<(StatusCode, Json<ConversationSummary>)> {
    let summary = conversations::start_group(&state, &current.session.user, &req.members).await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

#[derive(Deserialize)]
struct Invite {
    user: i64,
}

async fn invite(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(conv): Path<i64>,
    Json(req): Json<Invite>,
) -> Result<Json<ConversationSummary>> {
    Ok(Json(
        conversations::invite(&state, &current.session.user, conv, req.user).await?,
    ))
}

async fn leave(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(conv): Path<i64>,
) -> Result<StatusCode> {
    conversations::leave(&state, &current.session.user, conv).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

async fn history(
    State(state): State<AppState>,
    current: CurrentSession,
    Path(conv): Path<i64>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>> {
    Ok(Json(
        history_page(&state, current.session.user.id, conv, q.before, q.limit).await?,
    ))
}

/// One page of a conversation's history before `before` (or the newest), members only.
async fn history_page(
    state: &AppState,
    user: i64,
    conv: i64,
    before: Option<i64>,
    limit: Option<u32>,
) -> Result<HistoryPage> {
    let Some(floor) = store::member_view(state.store.pool(), conv, user).await? else {
        return Err(AppError::Forbidden(
            "You are not in that conversation.".into(),
        ));
    };
    let limit = limit.unwrap_or(50).clamp(1, HISTORY_PAGE_MAX);
    let (messages, has_more) =
        store::messages_before(state.store.pool(), conv, floor, before, limit).await?;
    Ok(HistoryPage { messages, has_more })
}
