//! Deleting your own message: gone for every member, live and in history, in order; nobody
//! else's, never twice.

use crate::helpers::spawn_app_with;
use messenger::protocol::{ErrorCode, MessageKind, ServerFrame};
use serde_json::json;

#[tokio::test]
async fn a_sender_deletes_their_message_for_every_member_live_and_in_history() {
    // Plain bodies, so the test can look for the deleted text in the database itself.
    let app = spawn_app_with(|c| c.store.encryption = messenger::server::config::Switch::Off).await;
    let (a, b, c) = (app.guest().await, app.guest().await, app.guest().await);
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "m1", "oops, wrong window").await;
    wa.until(|f| matches!(f, ServerFrame::Ack { seq: 1, .. }))
        .await;
    wb.send_msg(conv, "m2", "what was that?").await;
    wb.until(|f| matches!(f, ServerFrame::Ack { seq: 2, .. }))
        .await;

    // b cannot delete a's message; nobody can delete one that does not exist.
    let delete =
        |id: &str, seq: i64| json!({ "t": "delete", "conv": conv, "client_id": id, "seq": seq });
    for (seq, why) in [(1, "your own"), (99, "does not exist")] {
        wb.send(delete("d-b", seq)).await;
        match wb.until(|f| matches!(f, ServerFrame::Error { .. })).await {
            ServerFrame::Error { code, message, .. } => {
                assert_eq!(code, ErrorCode::CannotDelete);
                assert!(message.contains(why), "{message}");
            }
            _ => unreachable!(),
        }
    }

    // a deletes: both sides get the deletion, in order, acknowledged like a message.
    wa.send(delete("d-1", 1)).await;
    match wa.until(|f| matches!(f, ServerFrame::Ack { .. })).await {
        ServerFrame::Ack { client_id, seq, .. } => {
            assert_eq!((client_id.as_str(), seq), ("d-1", 3))
        }
        _ => unreachable!(),
    }
    match wb
        .until(|f| matches!(f, ServerFrame::Msg(m) if m.seq == 3))
        .await
    {
        ServerFrame::Msg(m) => {
            assert_eq!(
                (m.kind, m.body.as_str(), m.from),
                (MessageKind::Delete, "1", a.me.id)
            )
        }
        _ => unreachable!(),
    }
    // Twice: refused.
    wa.send(delete("d-2", 1)).await;
    match wa.until(|f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::CannotDelete);
            assert!(message.contains("already deleted"), "{message}");
        }
        _ => unreachable!(),
    }

    // History: the text is gone from the store; numbers stay gap-free.
    let page = app.history(conv, &b).await;
    let rows: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.seq, m.kind, m.body.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (1, MessageKind::Deleted, ""),
            (2, MessageKind::Text, "what was that?"),
            (3, MessageKind::Delete, "1"),
        ]
    );
    let mut db = app.db().await;
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE body LIKE '%wrong window%'")
            .fetch_one(&mut db)
            .await
            .expect("count");
    assert_eq!(left, 0, "the deleted text is not kept");

    // A later sync (another device) replays the deletion too.
    let mut late = app.online(&b).await;
    late.sync(conv, 0).await;
    let frames = late
        .frames_until(|f| matches!(f, ServerFrame::Synced { .. }))
        .await;
    assert!(frames.iter().any(
        |f| matches!(f, ServerFrame::Msg(m) if m.kind == MessageKind::Delete && m.body == "1")
    ));

    // Outsiders cannot delete anything.
    let mut wc = app.online(&c).await;
    wc.send(json!({ "t": "delete", "conv": conv, "client_id": "d-c", "seq": 2 }))
        .await;
    wc.until(|f| {
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::NotMember,
                ..
            }
        )
    })
    .await;
}

#[tokio::test]
async fn refused_deletions_and_undeliverable_sends_spend_no_sends() {
    // Three sends a second: twenty refusals in a row would empty the bucket if they cost one.
    let app = spawn_app_with(|c| c.sockets.send_rate_per_second = 3).await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "m1", "mine").await;
    wa.until(|f| matches!(f, ServerFrame::Ack { seq: 1, .. }))
        .await;
    for i in 0..20 {
        let id = format!("d-{i}");
        wb.send(json!({ "t": "delete", "conv": conv, "client_id": id, "seq": 1 }))
            .await;
        match wb.until(|f| matches!(f, ServerFrame::Error { .. })).await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::CannotDelete, "{i}"),
            _ => unreachable!(),
        }
    }
    // a blocks b: b's messages are undeliverable, and cost nothing either.
    let res = app
        .post(
            &format!("/api/contacts/{}/block", b.me.id),
            Some(&a.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    for i in 0..20 {
        wb.send_msg(conv, &format!("u-{i}"), "hello?").await;
        match wb.until(|f| matches!(f, ServerFrame::Error { .. })).await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Undeliverable, "{i}"),
            _ => unreachable!(),
        }
    }
    // The bucket is still full: b can still write elsewhere straight away.
    let res = app
        .post(
            &format!("/api/contacts/{}/unblock", b.me.id),
            Some(&a.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    wb.send_msg(conv, "m2", "sorry").await;
    wb.until(|f| matches!(f, ServerFrame::Ack { seq: 2, .. }))
        .await;
}
