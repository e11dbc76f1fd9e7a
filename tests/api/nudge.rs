//! Nudges: stored in history and delivered like messages, one per user per conversation per
//! ten seconds, members only.

use crate::helpers::spawn_app;
use messenger::protocol::{ErrorCode, MessageKind, ServerFrame};
use serde_json::json;

fn nudge(conv: i64, id: &str) -> serde_json::Value {
    json!({ "t": "nudge", "conv": conv, "client_id": id })
}

#[tokio::test]
async fn a_nudge_reaches_every_member_is_stored_and_is_limited_per_sender() {
    let app = spawn_app().await;
    let (a, b, stranger) = (app.guest().await, app.guest().await, app.guest().await);
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;

    wa.send(nudge(conv, "nudge-1")).await;
    match wa.until(|f| matches!(f, ServerFrame::Ack { .. })).await {
        ServerFrame::Ack { client_id, seq, .. } => {
            assert_eq!((client_id.as_str(), seq), ("nudge-1", 1))
        }
        _ => unreachable!(),
    }
    match wb.until(|f| matches!(f, ServerFrame::Msg(_))).await {
        ServerFrame::Msg(m) => {
            assert_eq!(
                (m.kind, m.from, m.body.as_str()),
                (MessageKind::Nudge, a.me.id, "")
            );
        }
        _ => unreachable!(),
    }

    // Again at once: refused with a clear message, nothing stored.
    wa.send(nudge(conv, "nudge-2")).await;
    match wa.until(|f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error {
            code,
            message,
            conv: c,
            client_id,
        } => {
            assert_eq!(code, ErrorCode::NudgeLimited);
            assert_eq!((c, client_id.as_deref()), (Some(conv), Some("nudge-2")));
            assert!(message.contains("once every 10 seconds"), "{message}");
        }
        _ => unreachable!(),
    }
    // The limit is per sender: b may nudge back; a second tab of a's is limited too.
    wb.send(nudge(conv, "nudge-b")).await;
    wb.until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == "nudge-b"))
        .await;
    let mut second_tab = app.online(&a).await;
    second_tab.send(nudge(conv, "nudge-3")).await;
    second_tab
        .until(|f| {
            matches!(
                f,
                ServerFrame::Error {
                    code: ErrorCode::NudgeLimited,
                    ..
                }
            )
        })
        .await;
    assert_eq!(app.message_count(Some(conv)).await, 2);

    // History keeps them as nudges; text messages still read as text.
    wa.send_msg(conv, "text-1", "hello").await;
    wa.until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == "text-1"))
        .await;
    let page = app.history(conv, &b).await;
    let kinds: Vec<_> = page.messages.iter().map(|m| (m.seq, m.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, MessageKind::Nudge),
            (2, MessageKind::Nudge),
            (3, MessageKind::Text)
        ]
    );

    // Not a member: refused.
    let mut ws = app.online(&stranger).await;
    ws.send(nudge(conv, "nudge-x")).await;
    ws.until(|f| {
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::NotMember,
                ..
            }
        )
    })
    .await;
    assert_eq!(app.message_count(Some(conv)).await, 3);
}
