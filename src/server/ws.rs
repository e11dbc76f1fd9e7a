//! `/ws`: the upgrade handler checks the handshake, Origin and session, answers `101` and
//! takes the connection's TCP socket back from hyper; then one task per connection runs a
//! single `select!` loop over the socket's reads, its mailbox in the hub (deliveries and
//! acknowledgements that need the task, and control messages, shutdown among them) and one
//! timer for both the heartbeat and the session deadline. That task is most of what an
//! idle connection costs; see `run` and `serve` for how it is kept small.
//!
//! Writes do not go through the task alone: the hub's publisher writes live deliveries, and
//! the acknowledgements of this connection's sends, straight into the socket
//! (`hub::Mailbox`), and everything the task writes goes through
//! the same mailbox, under the same lock, so frames stay whole and in order. tungstenite
//! reads and decodes the client's frames (and answers pings and closes, through the same
//! path); the server's text frames are encoded in `hub::put_text_frame`.
//!
//! Per conversation, a connection is `Unsynced` until the client sends `sync` (live messages
//! are not sent before it), `Syncing` while it answers from the store, then `Live`
//! (gap-free, in order; a gap is filled from the store), or `Paused` after it fell behind
//! (its mailbox overflowed; the client is told to resync).

use super::{
    auth::{self, TokenSource},
    contacts,
    error::AppError,
    hub::{Control, Cursor, Delivery, Mail, Mailbox, ACK, EPHEMERAL},
    state::AppState,
    store::{self, now_ms, SessionRow},
    writer::{Content, NewMessage, Owed},
};
use crate::protocol::{
    close, Body, ClientFrame, ClientId, ConversationKind, ConversationSummary, ErrorCode,
    MessageKind, ServerFrame, UserSummary, MAX_FRAME_BYTES, NUDGE_EVERY,
};
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use hyper_util::rt::TokioIo;
use std::{
    collections::{hash_map::Entry, HashMap},
    io,
    sync::Arc,
    time::Duration,
};
use tokio::{net::TcpStream, time::Instant};
use tungstenite::{
    protocol::{frame::coding::CloseCode, CloseFrame, Role, WebSocketConfig},
    Message,
};

/// Messages read from the store per page while replaying a `sync`.
const REPLAY_PAGE: u32 = 256;
/// Most frames gathered into one socket write.
const COALESCE_MAX: usize = 256;
/// A gap in the live stream larger than this is not filled inline; the client resyncs.
const GAP_FILL_MAX: i64 = 1024;
/// Least time between two "typing" frames passed on per connection and conversation.
const TYPING_MIN_GAP: std::time::Duration = std::time::Duration::from_secs(1);
/// What tungstenite buffers at most. Frames between [`MAX_FRAME_BYTES`] and this are read in
/// full and refused with a clean close (1009); beyond it the socket is dropped mid-frame, and
/// the close frame may not reach the client before the connection resets.
const HARD_FRAME_LIMIT: usize = 4 * MAX_FRAME_BYTES;
/// How long the close frame at the end of a connection may take to leave.
const CLOSE_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Whether `origin` is one of the allowed origins.
pub fn origin_allowed(state: &AppState, origin: &str) -> bool {
    state.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
}

/// Checks a WebSocket opening handshake (RFC 6455, section 4.2.1); returns the client's
/// key, or the status and message refusing it.
fn handshake_key(
    method: &Method,
    headers: &HeaderMap,
) -> Result<HeaderValue, (StatusCode, &'static str)> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if method != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "A WebSocket opens with GET.",
        ));
    }
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "This address takes WebSocket connections only.",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13."));
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if !key.is_empty() => Ok(key.clone()),
        _ => Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing.")),
    }
}

/// `GET /ws`: refuses what is not a WebSocket handshake (400, 405, 426), foreign origins
/// (403) and requests without a live session (401).
pub async fn upgrade(State(state): State<AppState>, mut req: Request) -> Response {
    let key = match handshake_key(req.method(), req.headers()) {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        if !origin_allowed(&state, origin) {
            return AppError::Forbidden(format!("Origin {origin} is not allowed.")).into_response();
        }
    }
    let current = match auth::authenticate(&state, headers).await {
        Ok(Some(current)) => current,
        Ok(None) => return AppError::Unauthorized("Sign in first.".into()).into_response(),
        Err(e) => return e.into_response(),
    };
    if origin.is_none() && current.source == TokenSource::Cookie {
        // Browsers always send Origin; a cookie without one is not a browser we can trust.
        return AppError::Forbidden("A cookie-authenticated socket needs an Origin header.".into())
            .into_response();
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "This connection cannot be upgraded.",
        )
            .into_response();
    };
    let session = Box::new(current.session);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!(error = %e, "the upgrade did not complete"),
        };
        // The server serves each connection with hyper's HTTP/1 builder on the plain
        // `TcpStream` (`startup.rs`), so this is the type it hands back. What hyper had read
        // past the request is copied out: its `Bytes` would keep hyper's whole read buffer
        // (8 KiB) alive for as long as the connection lives.
        let (tcp, read_already) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (parts.io.into_inner(), parts.read_buf.to_vec()),
            Err(_) => return tracing::error!("an upgraded connection is not a TCP stream"),
        };
        connection(tcp, read_already, state, *session).await
    });
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Builds the connection's state before its future exists, then returns that future: an
/// `async` block around `run(...)` would hold every argument twice (once captured, once
/// moved into `run`), and every idle connection pays for its task's size.
fn connection(
    tcp: TcpStream,
    read_already: Vec<u8>,
    state: AppState,
    session: SessionRow,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (id, mailbox) = state
        .hub
        .register_socket(session.user.id, session.id, Some(tcp));
    let config = WebSocketConfig::default()
        .max_message_size(Some(HARD_FRAME_LIMIT))
        .max_frame_size(Some(HARD_FRAME_LIMIT))
        // tungstenite allocates its read buffer up front for every connection (128 KiB by
        // default) and keeps it. Client frames are small (a send is ~150 bytes, so one read
        // still takes several); the buffer grows for a rare large one.
        .read_buffer_size(512)
        // Its frames (pongs, the close) go to the mailbox's queue at once.
        .write_buffer_size(0);
    let socket = Socket::from_partially_read(
        SocketIo(Arc::clone(&mailbox)),
        read_already,
        Role::Server,
        Some(config),
    );
    let conn = Conn {
        id,
        joined: HashMap::new(),
        mailbox,
        tokens: state.cfg.send_rate_per_second as f64,
        refilled: Instant::now(),
        last_slide: now_ms(),
        session,
        state,
    };
    run(conn, socket)
}

/// The socket as tungstenite sees it: reads come from the TCP socket without waiting (the
/// task waits for readiness itself), writes go to the mailbox's queue (and from there to
/// the socket, in order with the publisher's writes).
struct SocketIo(Arc<Mailbox>);

impl io::Read for SocketIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.socket() {
            Some(tcp) => tcp.try_read(buf),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl io::Write for SocketIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.queue_raw(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The client's side of the socket: tungstenite decodes its frames; the server's own
/// frames go through the mailbox ([`Conn::send`]).
type Socket = tungstenite::WebSocket<SocketIo>;

struct Conn {
    state: AppState,
    /// The session and its user (`session.user` is who this connection is).
    session: SessionRow,
    /// This connection's id in the hub and in presence.
    id: u64,
    /// The conversations this user belongs to: one map for everything kept per
    /// conversation (each map is 48 bytes of every connection, and an allocation once used).
    /// Where the connection stands in each (its cursor) is in the mailbox.
    joined: HashMap<i64, Joined>,
    /// Where the hub puts this connection's deliveries and control messages, and the way
    /// out to its socket.
    mailbox: Arc<Mailbox>,
    /// Token bucket for sends: tokens left and when it was last refilled.
    tokens: f64,
    refilled: Instant,
    /// When this connection last slid the session's idle expiry.
    last_slide: i64,
}

/// What a connection keeps for each conversation its user belongs to.
struct Joined {
    /// The other member of a one-to-one conversation (a block stops sends to them).
    dm_peer: Option<i64>,
    /// In a group the user was invited to late, what they may see starts after this
    /// sequence number (0 otherwise).
    floor: i64,
    /// When this connection last passed on "typing" here (cleared on "stopped").
    typing_sent: Option<Instant>,
}

/// Why the loop ended, if the server chose to end it.
struct Closing(u16, &'static str);

/// One connection, from `hello` to close. The task lives as long as the socket, so its size
/// is what an idle connection costs (measured with `-Zprint-type-sizes`). Not an `async fn`:
/// those store their arguments twice, as arguments and as locals.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice in every connection's task"
)]
fn run(
    mut conn: Conn,
    mut socket: Socket,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    async move {
        conn.state.live_sockets.send_modify(|n| *n += 1);
        let result = serve(&mut conn, &mut socket).await;
        conn.mailbox.shut();

        conn.state.hub.unregister(conn.me().id, conn.id);
        conn.state.presence.disconnect(conn.me().id, conn.id);
        for c in conn.joined.keys() {
            conn.state.hub.unsubscribe(*c, conn.id);
        }
        let (code, reason) = match result {
            Ok(Some(Closing(code, reason))) => (code, reason),
            Ok(None) => (0, ""),
            Err(e) => {
                tracing::debug!(user = conn.me().id, error = %e, "connection ended with an error");
                (close::INTERNAL, "internal error")
            }
        };
        if code != 0 {
            let _ = socket.close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: tungstenite::Utf8Bytes::from_static(reason),
            }));
        }
        // The close frame, or the answer to the client's (tungstenite holds it until its
        // next write), then out through the mailbox.
        let _ = socket.flush();
        let _ = tokio::time::timeout(CLOSE_WRITE_WAIT, Box::pin(conn.mailbox.flush())).await;
        conn.state.live_sockets.send_modify(|n| *n -= 1);
    }
}

/// The connection's loop. Everything but the loop's own state is boxed while it runs
/// (`hello`, each delivery, each client frame), and no value is kept across an `.await`
/// that the loop does not need: the largest suspended state sets every connection's size.
async fn serve(conn: &mut Conn, socket: &mut Socket) -> anyhow::Result<Option<Closing>> {
    let hello = Box::pin(greet(conn)).await?;
    Box::pin(conn.send(&hello)).await?;

    // One timer per connection for both the heartbeat and the session's deadline: each
    // tokio timer is ~100 bytes that every idle connection keeps.
    let heartbeat_every = Duration::from_secs(conn.state.cfg.heartbeat_seconds.max(1));
    let mut next_beat = Instant::now() + heartbeat_every;
    let mut session_deadline = deadline_instant(conn.session.deadline());
    let mut last_heard = Instant::now();
    let timer = tokio::time::sleep_until(next_beat.min(session_deadline));
    tokio::pin!(timer);

    loop {
        // Not while MAX_IN_FLIGHT sends wait for their commit (the writer acknowledges them
        // into the socket; the next one wakes this loop with `Mail::Resume`).
        let reading = conn.mailbox.may_read();
        tokio::select! {
            biased;
            // Control messages come first out of the mailbox; shutdown comes this way too
            // (`Hub::close_all`). The hub closes the mailbox of a connection that let its
            // control queue fill up: it ends, and its client reconnects. The timer is polled
            // after it, only when the mailbox is empty (a tokio timer's poll is not free, and
            // this loop turns once per batch of deliveries): a mailbox never empty for a
            // heartbeat's time is a connection that has fallen behind, and once paused it
            // empties its mailbox quickly.
            mail = std::future::poll_fn(|cx| conn.mailbox.poll_recv(cx, COALESCE_MAX)) => match mail {
                Mail::Closed => return Ok(Some(Closing(close::FELL_BEHIND, "fell behind; reconnect"))),
                Mail::Flush => Box::pin(conn.mailbox.flush()).await?,
                Mail::Resume => {}
                Mail::Control(Control::Added(summary)) => {
                    conn.subscribe(&summary);
                    let added = frame(&ServerFrame::ConvAdded { conversation: *summary });
                    Box::pin(conn.send(&added)).await?;
                }
                Mail::Control(Control::Removed(conv)) => {
                    conn.unsubscribe(conv);
                    let removed = frame(&ServerFrame::ConvRemoved { conv });
                    Box::pin(conn.send(&removed)).await?;
                }
                Mail::Control(Control::Frame(text)) => Box::pin(conn.send(text.as_str())).await?,
                Mail::Control(Control::Close { code, reason }) => return Ok(Some(Closing(code, reason))),
                // The per-delivery path is boxed: a task is as large as its largest
                // suspended state, and this would otherwise set it for every idle
                // connection. One allocation per batch costs little next to its write.
                Mail::Deliveries { items, lagged } => {
                    Box::pin(async {
                        conn.deliver_all(items, lagged).await?;
                        conn.write_ready().await
                    }).await?;
                }
            },
            _ = &mut timer => {
                let now = Instant::now();
                if now >= session_deadline {
                    match Box::pin(store::session_by_id(conn.state.store.pool(), conn.session.id)).await? {
                        Some(s) if s.is_live(now_ms()) => {
                            session_deadline = deadline_instant(s.deadline());
                            conn.session = s;
                        }
                        _ => return Ok(Some(Closing(close::SESSION_ENDED, "session ended"))),
                    }
                }
                if now >= next_beat {
                    if last_heard.elapsed() > heartbeat_every * 3 {
                        return Ok(Some(Closing(close::HEARTBEAT_TIMEOUT, "no heartbeat")));
                    }
                    next_beat = now + heartbeat_every;
                    socket.send(Message::Ping(Default::default()))?;
                    Box::pin(conn.mailbox.flush()).await?;
                }
                timer.as_mut().reset(next_beat.min(session_deadline));
            }
            ready = std::future::poll_fn(|cx| poll_read_ready(&conn.mailbox, cx)), if reading => {
                ready?;
                let incoming = match socket.read() {
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    incoming => incoming,
                };
                last_heard = Instant::now();
                match incoming {
                    Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Ok(None),
                    Err(tungstenite::Error::Capacity(_)) => {
                        return Ok(Some(Closing(close::TOO_BIG, "frame too large")));
                    }
                    Err(e) => {
                        tracing::debug!(user = conn.me().id, error = %e, "reading the socket");
                        return Ok(None);
                    }
                    Ok(Message::Text(text)) => {
                        if text.len() > MAX_FRAME_BYTES {
                            return Ok(Some(Closing(close::TOO_BIG, "frame too large")));
                        }
                        match serde_json::from_str::<ClientFrame>(text.as_str()) {
                            Ok(f) => Box::pin(conn.handle(f)).await?,
                            Err(e) => {
                                let msg = format!("Not a client frame: {e}");
                                let refusal = frame(&error_frame(ErrorCode::BadFrame, &msg, None, None));
                                Box::pin(conn.send(&refusal)).await?;
                            }
                        }
                    }
                    Ok(Message::Binary(b)) if b.len() > MAX_FRAME_BYTES => {
                        return Ok(Some(Closing(close::TOO_BIG, "frame too large")));
                    }
                    Ok(Message::Binary(_)) => {
                        return Ok(Some(Closing(close::PROTOCOL_ERROR, "frames are JSON text")));
                    }
                    // tungstenite holds the pong for a ping until its next write.
                    Ok(Message::Ping(_)) => {
                        socket.flush()?;
                        Box::pin(conn.mailbox.flush()).await?;
                    }
                    Ok(Message::Pong(_) | Message::Frame(_)) => {}
                }
            }
        }
    }
}

/// Subscribes the connection to its conversations, marks the user online and returns the
/// `hello` frame.
async fn greet(conn: &mut Conn) -> anyhow::Result<String> {
    let conversations =
        store::conversations_for_user(conn.state.store.pool(), conn.me().id).await?;
    // Subscribe before reading anything a client could sync from, so nothing committed
    // afterwards can be missed.
    for c in &conversations {
        conn.subscribe(c);
    }
    let rooms = store::rooms_for_user(conn.state.store.pool(), conn.me().id).await?;
    let rooms_total = store::count_rooms(conn.state.store.pool()).await?;
    // Online from here: contacts learn of it through the presence publisher, and this
    // socket is registered, so any change after the list below is read reaches it.
    let profile = store::profile(conn.state.store.pool(), conn.me().id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the user no longer exists"))?;
    conn.state
        .presence
        .connect(conn.me().id, conn.id, profile.clone());
    let list = contacts::contact_list(&conn.state, conn.me().id).await?;
    Ok(frame(&ServerFrame::Hello {
        me: conn.me().clone(),
        conversations,
        rooms,
        rooms_total,
        session_idle_expires_at: conn.session.idle_expires_at,
        status: profile.status,
        personal_message: profile.personal_message,
        contacts: list.contacts,
        groups: list.groups,
        picture: profile.picture,
    }))
}

impl Conn {
    fn me(&self) -> &UserSummary {
        &self.session.user
    }

    fn is_member(&self, conv: i64) -> bool {
        self.joined.contains_key(&conv)
    }

    fn cursor(&self, conv: i64) -> Cursor {
        self.mailbox.cursor(conv)
    }

    /// Sets the cursor of a conversation this user is in (and queues `frame` with it).
    fn set_cursor(&self, conv: i64, cursor: Cursor, frame: Option<&str>) {
        if self.is_member(conv) {
            self.mailbox
                .set_cursor(conv, cursor, frame.map(str::as_bytes));
        } else if let Some(text) = frame {
            self.mailbox.queue_text(text.as_bytes());
        }
    }

    /// Queues a frame and writes everything queued.
    async fn send(&mut self, text: &str) -> io::Result<()> {
        self.mailbox.queue_text(text.as_bytes());
        self.mailbox.flush().await
    }

    /// Whether the other member of this one-to-one conversation blocks this user.
    fn blocked_by_peer(&self, conv: i64) -> bool {
        self.joined
            .get(&conv)
            .and_then(|j| j.dm_peer)
            .is_some_and(|peer| self.state.presence.blocked(peer, self.me().id))
    }

    fn subscribe(&mut self, c: &ConversationSummary) {
        let me = self.me().id;
        let dm_peer = (c.kind == ConversationKind::Dm)
            .then(|| c.members.iter().find(|m| m.id != me).map(|m| m.id))
            .flatten();
        match self.joined.entry(c.id) {
            Entry::Occupied(e) => {
                let j = e.into_mut();
                j.dm_peer = dm_peer.or(j.dm_peer);
                if c.visible_after > 0 {
                    j.floor = c.visible_after;
                }
            }
            Entry::Vacant(e) => {
                e.insert(Joined {
                    dm_peer,
                    floor: c.visible_after.max(0),
                    typing_sent: None,
                });
                self.state.hub.subscribe(c.id, self.id, &self.mailbox);
            }
        }
    }

    fn unsubscribe(&mut self, conv: i64) {
        if self.joined.remove(&conv).is_some() {
            self.state.hub.unsubscribe(conv, self.id);
            self.mailbox.set_cursor(conv, Cursor::Unsynced, None);
        }
    }

    async fn handle(&mut self, f: ClientFrame) -> anyhow::Result<()> {
        match f {
            ClientFrame::Send {
                conv,
                client_id,
                body,
            } => {
                let body = match Body::parse(&body) {
                    Ok(b) => b,
                    Err(e) => {
                        let refuse =
                            error_frame(ErrorCode::InvalidBody, &e.0, Some(conv), Some(client_id));
                        return Ok(self.send(&frame(&refuse)).await?);
                    }
                };
                self.submit(conv, client_id, Content::Text(body)).await?;
            }
            ClientFrame::Nudge { conv, client_id } => {
                self.submit(conv, client_id, Content::Nudge).await?;
            }
            ClientFrame::Delete {
                conv,
                client_id,
                seq,
            } => {
                // Checked here, then again inside the commit (a second delete of the same
                // message in flight changes nothing there).
                let meta = if self.is_member(conv) {
                    Box::pin(store::message_meta(self.state.store.pool(), conv, seq)).await?
                } else {
                    None
                };
                let refusal = match meta {
                    _ if !self.is_member(conv) => None, // submit says "not a member"
                    None => Some("That message does not exist."),
                    Some((sender, _)) if sender != self.me().id => {
                        Some("You can only delete your own messages.")
                    }
                    Some((_, MessageKind::Deleted | MessageKind::Delete)) => {
                        Some("That message is already deleted.")
                    }
                    Some((_, kind)) if !kind.is_deletable() => {
                        Some("That message cannot be deleted.")
                    }
                    Some(_) => None,
                };
                if let Some(msg) = refusal {
                    let refuse =
                        error_frame(ErrorCode::CannotDelete, msg, Some(conv), Some(client_id));
                    return Ok(self.send(&frame(&refuse)).await?);
                }
                self.submit(conv, client_id, Content::Delete(seq)).await?;
            }
            ClientFrame::Sync { conv, after } => {
                if !self.is_member(conv) {
                    return Ok(self.send(&not_member(conv, None)).await?);
                }
                // Nothing from before the user was invited in.
                let floor = self.joined.get(&conv).map_or(0, |j| j.floor);
                // Live messages wait in the mailbox from here: one committed after the
                // store is read below is sent after the replay.
                self.set_cursor(conv, Cursor::Syncing, None);
                let last = self.replay(conv, after.max(floor), i64::MAX).await?;
                let synced = frame(&ServerFrame::Synced {
                    conv,
                    last_seq: last,
                });
                self.set_cursor(conv, Cursor::Live { last_sent: last }, Some(&synced));
                self.mailbox.flush().await?;
            }
            ClientFrame::SetStatus { status } => {
                self.slide_session().await?;
                Box::pin(contacts::update_me(
                    &self.state,
                    self.me().id,
                    Some(status),
                    None,
                    None,
                ))
                .await
                .map_err(|e| anyhow::anyhow!("setting the status: {e}"))?;
            }
            ClientFrame::Idle { idle } => {
                self.state.presence.set_idle(self.me().id, self.id, idle);
            }
            ClientFrame::Read { conv, seq } => {
                if !self.is_member(conv) {
                    return Ok(self.send(&not_member(conv, None)).await?);
                }
                if Box::pin(store::mark_read(
                    self.state.store.pool(),
                    self.me().id,
                    conv,
                    seq.max(0),
                ))
                .await?
                {
                    let text = serde_json::to_string(&ServerFrame::Read { conv, seq })?;
                    self.state
                        .hub
                        .notify_user(self.me().id, Control::Frame(Box::new(text.into())));
                }
            }
            ClientFrame::Typing { conv, active } => {
                if !self.is_member(conv) {
                    return Ok(self.send(&not_member(conv, None)).await?);
                }
                self.typing(conv, active)?;
            }
        }
        Ok(())
    }

    /// Checks a send (membership, id, block, rate, the nudge limit) and hands it to the
    /// writer, which writes its acknowledgement into the socket (see [`Owed`]).
    async fn submit(
        &mut self,
        conv: i64,
        client_id: String,
        content: Content,
    ) -> anyhow::Result<()> {
        let refuse =
            |code, msg: &str| frame(&error_frame(code, msg, Some(conv), Some(client_id.clone())));
        if !self.is_member(conv) {
            return Ok(self
                .send(&not_member(conv, Some(client_id.clone())))
                .await?);
        }
        let cid = match ClientId::parse(&client_id) {
            Ok(c) => c,
            Err(e) => return Ok(self.send(&refuse(ErrorCode::InvalidClientId, &e.0)).await?),
        };
        if self.blocked_by_peer(conv) {
            return Ok(self
                .send(&refuse(
                    ErrorCode::Undeliverable,
                    "Your message could not be delivered.",
                ))
                .await?);
        }
        if !self.take_token() {
            return Ok(self
                .send(&refuse(
                    ErrorCode::RateLimited,
                    "You are sending too fast; wait a moment.",
                ))
                .await?);
        }
        if matches!(content, Content::Nudge) && !self.state.nudges.allow(conv, self.me().id) {
            let msg = format!(
                "You can send a nudge once every {} seconds.",
                NUDGE_EVERY.as_secs()
            );
            return Ok(self.send(&refuse(ErrorCode::NudgeLimited, &msg)).await?);
        }
        self.slide_session().await?;
        // The name as it is now (it may have changed since this socket opened).
        let sender_name = self
            .state
            .presence
            .own_view(self.me().id)
            .map_or_else(|| self.me().display_name.clone(), |(name, _)| name);
        let msg = NewMessage {
            conv,
            sender: self.me().id,
            sender_name,
            client_id: cid,
            content,
        };
        let owed = Owed::new(Arc::clone(&self.mailbox), self.id, conv, client_id);
        self.state.writer.submit_from(msg, owed).await?;
        Ok(())
    }

    /// Passes a typing indicator on to the conversation's live members: at most one
    /// "typing" per second per conversation from this connection, and a "stopped" only
    /// after a "typing". A block stops it like a message.
    fn typing(&mut self, conv: i64, active: bool) -> anyhow::Result<()> {
        let now = Instant::now();
        let last = self.joined.get(&conv).and_then(|j| j.typing_sent);
        let pass = match (active, last) {
            (true, Some(at)) => now.duration_since(at) >= TYPING_MIN_GAP,
            (true, None) => true,
            (false, last) => last.is_some(),
        };
        let blocked = self.blocked_by_peer(conv);
        // Someone appearing offline shows no sign of life until they send something.
        let Some((name, hidden)) = self.state.presence.own_view(self.me().id) else {
            return Ok(());
        };
        if !pass || blocked || hidden {
            return Ok(());
        }
        if let Some(j) = self.joined.get_mut(&conv) {
            j.typing_sent = active.then_some(now);
        }
        let text = serde_json::to_string(&ServerFrame::Typing {
            conv,
            user: self.me().id,
            name,
            active,
        })?;
        self.state.hub.publish(
            conv,
            Delivery {
                seq: EPHEMERAL,
                frame: text.into(),
            },
        );
        Ok(())
    }

    /// Sends the stored messages with `after < seq <= upto`, page by page; returns the last
    /// sequence number sent (or `after` if none).
    async fn replay(&mut self, conv: i64, after: i64, upto: i64) -> anyhow::Result<i64> {
        let mut last = after;
        loop {
            let page =
                store::messages_after(self.state.store.pool(), conv, last, REPLAY_PAGE).await?;
            let full = page.len() == REPLAY_PAGE as usize;
            for m in page {
                if m.seq > upto {
                    return Ok(last);
                }
                last = m.seq;
                self.mailbox
                    .queue_text(frame(&ServerFrame::Msg(m)).as_bytes());
            }
            self.mailbox.flush().await?;
            if !full {
                return Ok(last);
            }
        }
    }

    /// Queues a batch from the mailbox for the socket (not flushed), then pauses each
    /// conversation that lagged.
    async fn deliver_all(
        &mut self,
        items: Vec<(i64, Delivery)>,
        lagged: Vec<i64>,
    ) -> anyhow::Result<()> {
        for (conv, d) in items {
            self.deliver(conv, d).await?;
        }
        for conv in lagged {
            if let Cursor::Live { last_sent } = self.cursor(conv) {
                tracing::debug!(
                    user = self.me().id,
                    conv,
                    "connection lagged; asking for resync"
                );
                self.pause(conv, last_sent);
            }
        }
        Ok(())
    }

    async fn deliver(&mut self, conv: i64, d: Delivery) -> anyhow::Result<()> {
        if d.seq == ACK {
            // Owed to this connection whatever the conversation's state.
            self.mailbox.queue_text(d.frame.as_bytes());
            return Ok(());
        }
        match self.cursor(conv) {
            Cursor::Live { .. } if d.seq == EPHEMERAL => {
                self.mailbox.queue_text(d.frame.as_bytes());
            }
            Cursor::Live { last_sent } => {
                if d.seq <= last_sent {
                    return Ok(()); // already sent by a replay
                }
                if d.seq > last_sent + 1 {
                    if d.seq - last_sent > GAP_FILL_MAX {
                        self.pause(conv, last_sent);
                        return Ok(());
                    }
                    Box::pin(self.replay(conv, last_sent, d.seq - 1)).await?;
                }
                self.set_cursor(
                    conv,
                    Cursor::Live { last_sent: d.seq },
                    Some(d.frame.as_str()),
                );
            }
            // Not synced yet, or paused: the client will sync and get these from the store.
            // (Syncing is only seen inside the `sync` handler, which leaves it live.)
            Cursor::Unsynced | Cursor::Syncing | Cursor::Paused { .. } => {}
        }
        Ok(())
    }

    fn pause(&self, conv: i64, last_sent: i64) {
        let resync = frame(&ServerFrame::Resync {
            conv,
            after: last_sent,
        });
        self.set_cursor(conv, Cursor::Paused { last_sent }, Some(&resync));
    }

    /// Adds every delivery and acknowledgement that is already waiting (up to a bound, for
    /// fairness) to the frames queued for the socket, then writes them all with one flush:
    /// under load a connection gets many frames per system call instead of one.
    async fn write_ready(&mut self) -> anyhow::Result<()> {
        let mut budget = COALESCE_MAX;
        while budget > 0 {
            let Some((items, lagged)) = self.mailbox.try_deliveries(budget) else {
                break;
            };
            budget = budget.saturating_sub(items.len().max(1));
            self.deliver_all(items, lagged).await?;
        }
        self.mailbox.flush().await?;
        Ok(())
    }

    fn take_token(&mut self) -> bool {
        let rate = self.state.cfg.send_rate_per_second.max(1) as f64;
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sending is activity: keep the session alive (at most one write per 30 s).
    async fn slide_session(&mut self) -> anyhow::Result<()> {
        let now = now_ms();
        if now - self.last_slide > 30_000 {
            self.last_slide = now;
            auth::slide(&self.state, &mut self.session, now, true)
                .await
                .map_err(|e| anyhow::anyhow!("sliding the session: {e}"))?;
        }
        Ok(())
    }
}

fn frame(f: &ServerFrame) -> String {
    serde_json::to_string(f).unwrap_or_default()
}

/// The error for a frame about a conversation this user is not in.
fn not_member(conv: i64, client_id: Option<String>) -> String {
    frame(&error_frame(
        ErrorCode::NotMember,
        "You are not in that conversation.",
        Some(conv),
        client_id,
    ))
}

fn error_frame(
    code: ErrorCode,
    message: &str,
    conv: Option<i64>,
    client_id: Option<String>,
) -> ServerFrame {
    ServerFrame::Error {
        code,
        message: message.to_owned(),
        conv,
        client_id,
    }
}

/// Waits until the socket has something to read (or has closed).
fn poll_read_ready(
    mailbox: &Mailbox,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<io::Result<()>> {
    match mailbox.socket() {
        Some(tcp) => tcp.poll_read_ready(cx),
        None => std::task::Poll::Pending,
    }
}

fn deadline_instant(deadline_ms: i64) -> Instant {
    let wait = (deadline_ms - now_ms()).max(0) as u64;
    // A little after the deadline, so the store agrees the session has ended.
    Instant::now() + Duration::from_millis(wait + 50)
}
