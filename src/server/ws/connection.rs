//! One connection, from `hello` to close: a single `select!` loop over the socket's reads,
//! its mailbox (deliveries and acknowledgements that need the task, and control messages,
//! shutdown among them) and one timer for both the heartbeat and the session deadline. That
//! task is most of what an idle connection costs; see [`run`] and [`serve`] for how it is
//! kept small. What each client frame does is in `commands/`.

use super::{
    commands,
    conn::{Conn, COALESCE_MAX},
    mailbox::{Mail, Mailbox},
    wire::{self, Incoming, Reader, WireError},
};
use crate::protocol::{close, ClientFrame, ErrorCode, ServerFrame, MAX_FRAME_BYTES};
use crate::server::{
    hub::{encode, Control},
    limits::sockets::Slot,
    state::AppState,
    store::{now_ms, SessionRow},
};
use std::{io, sync::Arc, time::Duration};
use tokio::{net::TcpStream, time::Instant};

/// How long the close frame at the end of a connection may take to leave.
const CLOSE_WRITE_WAIT: Duration = Duration::from_secs(5);
/// After the server's close frame, how long the client has to answer with its own before
/// the socket is closed. Reading (and dropping) what the client sends meanwhile is what
/// lets the close reach it: a socket closed with unread bytes sends a reset, and the
/// client's system may throw away the close frame it had not read yet.
const CLOSE_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Builds the connection's state before its future exists, then returns that future: an
/// `async` block around `run(...)` would hold every argument twice (once captured, once
/// moved into `run`), and every idle connection pays for its task's size.
///
/// The session comes boxed (so that the upgrade's task is small while it waits) and is
/// unboxed here, in a plain function, so that its box is freed now: moved out of inside the
/// task, an emptied box lives as long as the task.
#[expect(
    clippy::boxed_local,
    reason = "the box comes from the upgrade's task and is freed here, not in the connection's"
)]
pub(super) fn connection(
    tcp: TcpStream,
    read_already: Vec<u8>,
    state: AppState,
    session: Box<SessionRow>,
    slot: Slot,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let session = *session;
    let mailbox = Arc::new(Mailbox::new(
        state.cfg.sockets.broadcast_capacity,
        Some(tcp),
    ));
    let id = state
        .hub
        .register(session.user.id, session.id, mailbox.clone());
    // The client's frames are read by `wire` (what hyper read past the request first); the
    // server's own frames go through the mailbox ([`Conn::send`]).
    let reader = Reader::from(read_already);
    let conn = Conn::new(state, session, id, mailbox, slot);
    run(conn, reader)
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
    mut reader: Reader,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    async move {
        conn.state.live_sockets.send_modify(|n| *n += 1);
        conn.state
            .analytics
            .record(crate::server::analytics::Event::new("socket_open"));
        let opened = Instant::now();
        let result = serve(&mut conn, &mut reader).await;
        // Nothing more comes in: what the mailbox holds is dropped now, and the user is
        // offline on this socket before its close frame goes out.
        conn.mailbox.shut();
        conn.state.hub.unregister(conn.me().id, conn.id);
        conn.state.presence.disconnect(conn.me().id, conn.id);
        for c in conn.joined.keys() {
            conn.state.hub.unsubscribe(*c, conn.id);
        }
        let (code, reason) = match result {
            Ok(Some(Closing(code, reason))) => (code, reason),
            Ok(None) => (0, ""),
            Err(e) if is_stall(&e) => (close::HEARTBEAT_TIMEOUT, "not reading"),
            Err(e) => {
                tracing::debug!(user = conn.me().id, error = %e, "connection ended with an error");
                (close::INTERNAL, "internal error")
            }
        };
        // Boxed, as everything the loop does but wait: its 4 KiB drain buffer, held across
        // an await, made every connection's task 5.2 KB instead of 1.5 KB for as long as the
        // socket lived (docs/BENCHMARKS.md, performance round two).
        Box::pin(close_gracefully(&conn, &mut reader, code, reason)).await;
        conn.state.analytics.record(
            crate::server::analytics::Event::new("socket_close")
                .n1(f64::from(code))
                .n2(opened.elapsed().as_secs_f64()),
        );
        // The connection (its slot under the sockets' caps among it) is gone before it stops
        // counting as open: whoever waits for the count may take its place.
        let state = conn.state.clone();
        drop(conn);
        state.live_sockets.send_modify(|n| *n -= 1);
    }
}

/// Whether the loop ended because its socket took nothing for the stall limit.
fn is_stall(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
}

/// Ends the connection so that its client sees why: the server's close frame (`code`, when
/// the server ends it) or the answer to the client's, written within [`CLOSE_WRITE_WAIT`];
/// then, for a close the server began, what the client sends is read and dropped until its
/// answer comes or [`CLOSE_ANSWER_WAIT`] passes. A socket that has taken nothing for the
/// stall limit gets one try: its close frame goes out only if it fits.
async fn close_gracefully(conn: &Conn, reader: &mut Reader, code: u16, reason: &'static str) {
    let stalled = conn.mailbox.stalled_for() >= conn.stall_limit();
    if code != 0 {
        conn.mailbox.queue_raw(&wire::close_frame(code, reason));
    }
    // The close frame, or the answer to the client's (queued when it came), goes out
    // through the mailbox.
    let sent = if stalled {
        matches!(conn.mailbox.try_flush(), Ok(true))
    } else {
        conn.mailbox.flush(CLOSE_WRITE_WAIT).await.is_ok()
    };
    if !sent || code == 0 {
        return;
    }
    let Some(tcp) = conn.mailbox.socket() else {
        return;
    };
    let until = Instant::now() + CLOSE_ANSWER_WAIT;
    if code == close::TOO_BIG {
        // The rest of the refused frame is still coming, and cannot be parsed: drop bytes
        // until the client closes its side (after its answer) or the wait ends.
        let mut sink = [0u8; 4096];
        while tokio::time::timeout_at(until, tcp.readable()).await.is_ok() {
            match tcp.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        return;
    }
    while tokio::time::timeout_at(until, tcp.readable()).await.is_ok() {
        match reader.next(tcp, MAX_FRAME_BYTES) {
            Ok(Some(Incoming::Close(_))) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The connection's loop. Everything but the loop's own state is boxed while it runs
/// (`hello`, each delivery, each client frame), and no value is kept across an `.await`
/// that the loop does not need: the largest suspended state sets every connection's size.
async fn serve(conn: &mut Conn, reader: &mut Reader) -> anyhow::Result<Option<Closing>> {
    // The hello goes out and is dropped here, not at the end of the function: a local lives
    // to the end of its scope, and this one (~500 bytes for a guest, kilobytes for a user
    // with contacts) was kept by every connection for its whole life until the second
    // performance round.
    let hello = Box::pin(greet(conn)).await?;
    Box::pin(conn.send(&hello)).await?;
    drop(hello);
    let stall = conn.stall_limit();

    // One timer per connection for both the heartbeat and the session's deadline: each
    // tokio timer is ~100 bytes that every idle connection keeps.
    let heartbeat_every = Duration::from_secs(conn.state.cfg.sockets.heartbeat_seconds.max(1));
    let mut next_beat = Instant::now() + heartbeat_every;
    let mut session_deadline = deadline_instant(conn.session.deadline());
    let mut last_heard = Instant::now();
    let timer = tokio::time::sleep_until(next_beat.min(session_deadline));
    tokio::pin!(timer);

    loop {
        // Not while MAX_IN_FLIGHT sends wait for their commit (the writer acknowledges them
        // into the socket; the next one wakes this loop with `Mail::Resume`).
        let reading = conn.mailbox.may_read();
        // Bytes wait for the socket: the loop waits for it to take them, and serves control
        // messages, the heartbeat and the session's deadline meanwhile. Deliveries wait in
        // the mailbox (up to its capacity; beyond it the client resyncs).
        let writing = conn.mailbox.backlog() > 0;
        tokio::select! {
            biased;
            // Control messages come first out of the mailbox; shutdown comes this way too
            // (`Hub::close_all`). The hub closes the mailbox of a connection that let its
            // control queue fill up: it ends, and its client reconnects. The timer is polled
            // after it, only when the mailbox is empty (a tokio timer's poll is not free, and
            // this loop turns once per batch of deliveries): a mailbox never empty for a
            // heartbeat's time is a connection that has fallen behind, and once paused it
            // empties its mailbox quickly.
            mail = std::future::poll_fn(|cx| conn.mailbox.poll_recv(cx, COALESCE_MAX, writing)) => match mail {
                Mail::Closed => return Ok(Some(Closing(close::FELL_BEHIND, "fell behind; reconnect"))),
                Mail::Flush => {
                    conn.mailbox.try_flush()?;
                }
                Mail::Resume => {}
                Mail::Control(Control::Added(summary)) => {
                    conn.subscribe(&summary);
                    let added = encode(&ServerFrame::ConvAdded { conversation: *summary });
                    Box::pin(conn.send(&added)).await?;
                }
                Mail::Control(Control::Removed(conv)) => {
                    conn.unsubscribe(conv);
                    let removed = encode(&ServerFrame::ConvRemoved { conv });
                    Box::pin(conn.send(&removed)).await?;
                }
                Mail::Control(Control::Frame(text)) => Box::pin(conn.send(text.as_str())).await?,
                Mail::Control(Control::Close { code, reason }) => return Ok(Some(Closing(code, reason))),
                Mail::Control(Control::Refresh) => {
                    let hello = Box::pin(greet_again(conn)).await?;
                    Box::pin(conn.send(&hello)).await?;
                }
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
            ready = std::future::poll_fn(|cx| conn.mailbox.poll_writable(cx)), if writing => {
                ready?;
                conn.mailbox.try_flush()?;
            }
            _ = &mut timer => {
                let now = Instant::now();
                if now >= session_deadline {
                    match Box::pin(conn.state.auth.session(conn.session.id)).await? {
                        Some(s) if s.is_live(now_ms()) => {
                            session_deadline = deadline_instant(s.deadline());
                            conn.session = s;
                        }
                        _ => {
                            conn.state
                                .analytics
                                .record(crate::server::analytics::Event::new("session_expired"));
                            return Ok(Some(Closing(close::SESSION_ENDED, "session ended")));
                        }
                    }
                }
                if now >= next_beat {
                    if last_heard.elapsed() > heartbeat_every * 3 {
                        return Ok(Some(Closing(close::HEARTBEAT_TIMEOUT, "no heartbeat")));
                    }
                    if conn.mailbox.stalled_for() >= stall {
                        return Ok(Some(Closing(close::HEARTBEAT_TIMEOUT, "not reading")));
                    }
                    next_beat = now + heartbeat_every;
                    conn.mailbox.queue_raw(&wire::control_frame(wire::OP_PING, b""));
                    conn.mailbox.try_flush()?;
                }
                timer.as_mut().reset(next_beat.min(session_deadline));
            }
            ready = std::future::poll_fn(|cx| poll_read_ready(&conn.mailbox, cx)), if reading => {
                ready?;
                let Some(tcp) = conn.mailbox.socket() else { continue };
                let Some(incoming) = reader.next(tcp, MAX_FRAME_BYTES).transpose() else {
                    continue;
                };
                last_heard = Instant::now();
                if incoming.is_ok() {
                    if let Err(wait) = conn.count_frame() {
                        Box::pin(conn.pace(wait)).await;
                    }
                }
                match incoming {
                    Ok(Incoming::Text(text)) => match serde_json::from_str::<ClientFrame>(&text) {
                        Ok(f) => Box::pin(commands::apply(conn, f)).await?,
                        Err(e) => {
                            let msg = format!("Not a client frame: {e}");
                            Box::pin(conn.refuse(ErrorCode::BadFrame, &msg, None, None)).await?;
                        }
                    },
                    Ok(Incoming::Ping(payload)) => {
                        conn.mailbox.queue_raw(&wire::control_frame(wire::OP_PONG, &payload));
                        conn.mailbox.try_flush()?;
                    }
                    Ok(Incoming::Pong) => {}
                    // The client's close: answered with its own code, then the socket ends.
                    Ok(Incoming::Close(code)) => {
                        conn.mailbox.queue_raw(&wire::close_answer(code));
                        return Ok(None);
                    }
                    Err(WireError::Ended) => return Ok(None),
                    Err(WireError::Io(e)) => {
                        tracing::debug!(user = conn.me().id, error = %e, "reading the socket");
                        return Ok(None);
                    }
                    // Refused from the frame's header, before its body was read.
                    Err(WireError::TooBig) => return Ok(Some(Closing(close::TOO_BIG, "frame too large"))),
                    Err(WireError::Binary) => {
                        return Ok(Some(Closing(close::PROTOCOL_ERROR, "frames are JSON text")));
                    }
                    Err(WireError::NotUtf8) => return Ok(Some(Closing(close::NOT_UTF8, "text that is not UTF-8"))),
                    Err(WireError::Protocol(what)) => return Ok(Some(Closing(close::PROTOCOL_ERROR, what))),
                }
            }
        }
    }
}

/// Subscribes the connection to its conversations, marks the user online and returns the
/// `hello` frame.
async fn greet(conn: &mut Conn) -> anyhow::Result<crate::server::hub::Frame> {
    let me = conn.me().id;
    let conversations = conn.state.chat.conversations_of(me).await?;
    // Subscribe before reading anything a client could sync from, so nothing committed
    // afterwards can be missed.
    for c in &conversations {
        conn.subscribe(c);
    }
    let (rooms, rooms_total) = conn.state.chat.rooms_for(me).await?;
    // Online from here: contacts learn of it through the presence publisher, and this
    // socket is registered, so any change after the list below is read reaches it.
    let profile = conn.state.profiles.profile(me).await?;
    conn.state.presence.connect(me, conn.id, profile.clone());
    hello(conn, conversations, rooms, rooms_total, profile).await
}

/// The `hello` again, read afresh, for a connection whose node may have missed notices
/// ([`Control::Refresh`]): conversations it was added to are subscribed, those it left are
/// unsubscribed and said gone (`conv_removed`); the client takes the hello as after a
/// reconnect (lists replaced, each conversation synced from its cursor).
async fn greet_again(conn: &mut Conn) -> anyhow::Result<crate::server::hub::Frame> {
    let me = conn.me().id;
    let conversations = conn.state.chat.conversations_of(me).await?;
    for c in &conversations {
        conn.subscribe(c);
    }
    let now: std::collections::HashSet<i64> = conversations.iter().map(|c| c.id).collect();
    for gone in conn.joined_ids() {
        if !now.contains(&gone) {
            conn.unsubscribe(gone);
            let removed = encode(&ServerFrame::ConvRemoved { conv: gone });
            Box::pin(conn.send(&removed)).await?;
        }
    }
    let (rooms, rooms_total) = conn.state.chat.rooms_for(me).await?;
    let profile = conn.state.profiles.profile(me).await?;
    hello(conn, conversations, rooms, rooms_total, profile).await
}

/// The `hello` frame, from what [`greet`] or [`greet_again`] read.
async fn hello(
    conn: &Conn,
    conversations: Vec<crate::protocol::ConversationSummary>,
    rooms: Vec<crate::protocol::RoomSummary>,
    rooms_total: i64,
    profile: crate::server::store::Profile,
) -> anyhow::Result<crate::server::hub::Frame> {
    let list = conn.state.contacts.list(conn.me().id).await?;
    Ok(encode(&ServerFrame::Hello {
        me: conn.me().clone(),
        conversations,
        rooms,
        rooms_total,
        epoch: conn.state.store.epoch().to_owned(),
        session_idle_expires_at: conn.session.idle_expires_at,
        status: profile.status,
        personal_message: profile.personal_message,
        contacts: list.contacts,
        groups: list.groups,
        picture: profile.picture,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protocol::UserSummary,
        server::{app::Application, config::Config},
    };

    /// Every open socket keeps its connection's future for as long as it lives, so that
    /// future's size is most of what an idle connection costs. A buffer held across an
    /// `.await` anywhere in it (the close's 4 KiB drain buffer did, until it was boxed: 4992
    /// bytes then, 1120 after; 872 once the frames were read without tungstenite) is paid by
    /// every socket, busy or not.
    #[tokio::test]
    async fn a_connection_future_stays_small() {
        let dir = tempfile::tempdir().expect("temp dir");
        let app = Application::build(Config::for_tests(dir.path().join("m.db")))
            .await
            .expect("server");
        let state = app.state();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let client = TcpStream::connect(listener.local_addr().expect("address"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_client, (tcp, peer)) = (client.expect("connect"), accepted.expect("accept"));
        let session = SessionRow {
            id: 1,
            user: UserSummary {
                id: 1,
                username: "someone".into(),
                display_name: "Someone".into(),
                is_guest: false,
                is_bot: false,
            },
            idle_expires_at: i64::MAX,
            absolute_expires_at: i64::MAX,
            revoked: false,
        };
        let slot = state.sockets.take(1, peer.ip()).expect("a slot");
        let future = connection(tcp, Vec::new(), state, Box::new(session), slot);
        let size = std::mem::size_of_val(&future);
        assert!(
            size <= 1024,
            "a connection's future is {size} bytes: something large is held across an await"
        );
    }
}
