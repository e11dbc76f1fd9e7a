//! Typing indicators: passed on to the conversation's live members, limited, never stored,
//! silent for someone appearing offline or blocked.

use crate::helpers::spawn_app;
use messenger::protocol::{ErrorCode, ServerFrame};
use serde_json::json;

fn typing(conv: i64, active: bool) -> serde_json::Value {
    json!({ "t": "typing", "conv": conv, "active": active })
}

fn typing_frames(frames: &[ServerFrame], from: i64) -> Vec<bool> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Typing { user, active, .. } if *user == from => Some(*active),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn typing_reaches_the_other_member_limited_and_is_never_stored() {
    let app = spawn_app().await;
    let (a, b, stranger) = (app.guest().await, app.guest().await, app.guest().await);
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;

    wa.send(typing(conv, true)).await;
    match wb.until(|f| matches!(f, ServerFrame::Typing { .. })).await {
        ServerFrame::Typing {
            conv: c,
            user,
            name,
            active,
        } => {
            assert_eq!((c, user, active), (conv, a.me.id, true));
            assert_eq!(name, a.me.display_name);
        }
        _ => unreachable!(),
    }
    // Repeats within a second are dropped; "stopped" goes through; a second "stopped"
    // (nothing was started) is dropped too. A message closes the window of frames.
    wa.send(typing(conv, true)).await;
    wa.send(typing(conv, true)).await;
    wa.send(typing(conv, false)).await;
    wa.send(typing(conv, false)).await;
    wa.send_msg(conv, "m1", "hello").await;
    let frames = wb
        .frames_until(|f| matches!(f, ServerFrame::Msg(m) if m.client_id == "m1"))
        .await;
    assert_eq!(typing_frames(&frames, a.me.id), [false], "{frames:?}");
    assert_eq!(
        app.message_count(Some(conv)).await,
        1,
        "typing is never stored"
    );

    // Not a member: a clear error, and nothing reaches the members.
    let mut ws = app.online(&stranger).await;
    ws.send(typing(conv, true)).await;
    match ws.until(|f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error { code, conv: c, .. } => {
            assert_eq!((code, c), (ErrorCode::NotMember, Some(conv)))
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn someone_appearing_offline_or_blocked_shows_no_typing() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;

    let res = app
        .call(
            reqwest::Method::PATCH,
            "/api/me",
            &a.token,
            Some(json!({ "status": "offline" })),
        )
        .await;
    assert_eq!(res.status(), 200);
    wa.send(typing(conv, true)).await;
    wa.send_msg(conv, "m1", "still here").await;
    let frames = wb
        .frames_until(|f| matches!(f, ServerFrame::Msg(m) if m.client_id == "m1"))
        .await;
    assert!(typing_frames(&frames, a.me.id).is_empty(), "{frames:?}");

    // b blocks a: a's typing no longer reaches b (nor do a's messages).
    let res = app
        .call(
            reqwest::Method::PATCH,
            "/api/me",
            &a.token,
            Some(json!({ "status": "online" })),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            &format!("/api/contacts/{}/block", a.me.id),
            Some(&b.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    wa.send(typing(conv, true)).await;
    // Once a's socket answered a later frame, a's typing (had it passed) is in the
    // conversation's channel before anything published after; b's own typing comes back to
    // b's socket through the same channel.
    wa.sync(i64::MAX, 0).await;
    wa.until(|f| matches!(f, ServerFrame::Error { .. })).await;
    wb.send(typing(conv, true)).await;
    let frames = wb
        .frames_until(|f| matches!(f, ServerFrame::Typing { user, .. } if *user == b.me.id))
        .await;
    assert!(typing_frames(&frames, a.me.id).is_empty(), "{frames:?}");
    // The block is one-way: b's typing reaches a.
    wa.until(|f| matches!(f, ServerFrame::Typing { user, .. } if *user == b.me.id))
        .await;
}
