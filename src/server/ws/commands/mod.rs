//! What each client frame does: one file per frame type, each with an `apply`. The
//! connection loop reads a frame and hands it here; the rules themselves live in the
//! services (`chat`, `presence`, `profile`), which these call.

mod delete;
mod idle;
mod nudge;
mod read;
mod send;
mod set_status;
mod sync;
mod typing;

use super::conn::Conn;
use crate::protocol::{ClientFrame, ClientId, ErrorCode};
use crate::server::{
    chat::{Author, Refusal},
    store::{Content, Owed, Reply},
};
use std::sync::Arc;

/// Applies one client frame.
pub(super) async fn apply(conn: &mut Conn, frame: ClientFrame) -> anyhow::Result<()> {
    match frame {
        ClientFrame::Send {
            conv,
            client_id,
            body,
        } => send::apply(conn, conv, client_id, body).await,
        ClientFrame::Nudge { conv, client_id } => nudge::apply(conn, conv, client_id).await,
        ClientFrame::Delete {
            conv,
            client_id,
            seq,
        } => delete::apply(conn, conv, client_id, seq).await,
        ClientFrame::Sync { conv, after, epoch } => sync::apply(conn, conv, after, epoch).await,
        ClientFrame::SetStatus { status } => set_status::apply(conn, status).await,
        ClientFrame::Idle { idle } => {
            idle::apply(conn, idle);
            Ok(())
        }
        ClientFrame::Read { conv, seq } => read::apply(conn, conv, seq).await,
        ClientFrame::Typing { conv, active } => typing::apply(conn, conv, active).await,
        ClientFrame::Ping {} => {
            let pong = crate::server::hub::encode(&crate::protocol::ServerFrame::Pong {});
            Ok(conn.send(&pong).await?)
        }
    }
}

/// A message from this connection (text, nudge, deletion): checks what only the connection
/// knows (membership, the id, its send rate), then posts it through chat, whose
/// acknowledgement the fan-out writes into this socket (see [`Owed`]).
async fn post(
    conn: &mut Conn,
    conv: i64,
    client_id: String,
    content: Content,
) -> anyhow::Result<()> {
    if !conn.is_member(conv) {
        return Ok(conn.not_member(conv, Some(client_id)).await?);
    }
    let id = match ClientId::parse(&client_id) {
        Ok(id) => id,
        Err(e) => {
            let code = ErrorCode::InvalidClientId;
            return Ok(conn.refuse(code, &e.0, Some(conv), Some(client_id)).await?);
        }
    };
    if !conn.take_token().await {
        conn.state
            .metrics
            .rate_limited
            .get_or_create(&crate::server::metrics::WhatLabels { what: "send" })
            .inc();
        conn.state
            .analytics
            .record(crate::server::analytics::Event::new("rate_limited").d1("send"));
        let message = "You are sending too fast; wait a moment.";
        let code = ErrorCode::RateLimited;
        return Ok(conn
            .refuse(code, message, Some(conv), Some(client_id))
            .await?);
    }
    // Sending is activity, whether or not the rules below let this one through.
    conn.slide_session().await?;
    let author = Author {
        id: conn.me().id,
        name: &conn.session.user.display_name,
        dm_peer: conn.dm_peer(conv),
    };
    // Counted in flight only once the log takes it: a refusal owes no acknowledgement.
    let (mailbox, me) = (Arc::clone(&conn.mailbox), conn.id);
    let owed_id = client_id.clone();
    let reply = move || {
        mailbox.count_send();
        Reply::Socket(Owed::new(mailbox, me, conv, owed_id))
    };
    let sent = crate::server::analytics::Event::new("message_sent")
        .d1(content.kind().as_str())
        .d2(conn.kind_of(conv).map_or("unknown", kind_name))
        .n1(content.body().chars().count() as f64);
    match conn.state.chat.post(author, conv, id, content, reply).await {
        Ok(()) => {
            conn.state.analytics.record(sent);
            Ok(())
        }
        // The log is stopping; the acknowledgement it owed said so already.
        Err(Refusal::Stopping) => Ok(()),
        Err(refusal) => {
            // What could never be sent (a blocked peer, a message that is not theirs to
            // delete) costs no send; a nudge too soon does, as a flood of them should.
            if matches!(refusal, Refusal::Undeliverable | Refusal::CannotDelete(_)) {
                conn.refund_token();
            }
            let message = refusal.message();
            Ok(conn
                .refuse(refusal.code(), &message, Some(conv), Some(client_id))
                .await?)
        }
    }
}

/// The name of a conversation's kind in the analytics.
fn kind_name(kind: crate::protocol::ConversationKind) -> &'static str {
    match kind {
        crate::protocol::ConversationKind::Dm => "dm",
        crate::protocol::ConversationKind::Group => "group",
        crate::protocol::ConversationKind::Room => "room",
    }
}
