//! Delivery guarantees: ack after commit, idempotent resends, gap-free replay, resync on lag,
//! membership, history paging.

use crate::helpers::{spawn_app, spawn_app_with, TestApp, User, Ws};
use futures::StreamExt;
use messenger::protocol::{ErrorCode, ServerFrame};
use messenger::server::hub::Fanout;
use serde_json::json;
use sqlx::Row;
use tokio::io::AsyncReadExt;

pub(crate) async fn ack_of(ws: &mut Ws, client_id: &str) -> i64 {
    match ws.until(|f| matches!(f, ServerFrame::Ack { client_id: c, .. } | ServerFrame::Error { client_id: Some(c), .. } if c == client_id)).await {
        ServerFrame::Ack { seq, .. } => seq,
        other => panic!("expected an ack for {client_id}, got {other:?}"),
    }
}

async fn msg_seq(ws: &mut Ws) -> (i64, String) {
    match ws.until(|f| matches!(f, ServerFrame::Msg(_))).await {
        ServerFrame::Msg(m) => (m.seq, m.body),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn an_ack_arrives_only_after_the_message_is_committed() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut ws = app.online(&a).await;
    let mut db = app.db().await;
    for i in 0..20 {
        let cid = format!("c{i}");
        ws.send_msg(conv, &cid, &format!("message {i}")).await;
        let seq = ack_of(&mut ws, &cid).await;
        // Read from a separate connection at the moment the ack is in hand.
        let row = sqlx::query(
            "SELECT body, seq, key_id, sealed FROM messages WHERE conversation_id = $1 AND client_id = $2",
        )
        .bind(conv)
        .bind(&cid)
        .fetch_optional(&mut db)
        .await
        .expect("query");
        let row = row.expect("the acknowledged message is committed");
        // Stored sealed (encryption is on by default): no plain text in the row.
        assert_eq!(row.get::<String, _>("body"), "");
        assert!(row.get::<Option<String>, _>("key_id").is_some());
        let sealed: Vec<u8> = row.get("sealed");
        let plain = format!("message {i}");
        assert!(!sealed.windows(plain.len()).any(|w| w == plain.as_bytes()));
        assert_eq!(row.get::<i64, _>("seq"), seq);
        assert_eq!(seq, i + 1, "sequence numbers start at 1 and have no gaps");
    }
}

#[tokio::test]
async fn a_resend_with_the_same_client_id_gets_the_same_ack_and_stores_one_message() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut ws = app.online(&a).await;
    ws.send_msg(conv, "once", "only once please").await;
    let first = ack_of(&mut ws, "once").await;
    // The same id again on the same socket, and again after reconnecting (a retry after a drop).
    ws.send_msg(conv, "once", "only once please").await;
    assert_eq!(ack_of(&mut ws, "once").await, first);
    drop(ws);
    let mut ws = app.online(&a).await;
    ws.send_msg(conv, "once", "only once please").await;
    assert_eq!(ack_of(&mut ws, "once").await, first);
    // Two copies in flight at the same time land in one group commit; still one message.
    ws.send_msg(conv, "twin", "x").await;
    ws.send_msg(conv, "twin", "x").await;
    let t1 = ack_of(&mut ws, "twin").await;
    let t2 = ack_of(&mut ws, "twin").await;
    assert_eq!(t1, t2);

    assert_eq!(app.message_count(Some(conv)).await, 2);
}

#[tokio::test]
async fn a_client_reconnecting_with_its_last_sequence_gets_exactly_the_gap_then_live_messages() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut wa = app.online(&a).await;
    let mut wb = app.online(&b).await;
    wb.sync(conv, 0).await;
    wb.until(|f| matches!(f, ServerFrame::Synced { .. })).await;
    for i in 1..=3 {
        wa.send_msg(conv, &format!("a{i}"), &format!("m{i}")).await;
        ack_of(&mut wa, &format!("a{i}")).await;
    }
    for want in 1..=3 {
        assert_eq!(msg_seq(&mut wb).await.0, want);
    }
    drop(wb);
    for i in 4..=7 {
        wa.send_msg(conv, &format!("a{i}"), &format!("m{i}")).await;
        ack_of(&mut wa, &format!("a{i}")).await;
    }
    let mut wb = app.online(&b).await;
    wb.sync(conv, 3).await;
    let mut got = Vec::new();
    loop {
        match wb.next().await {
            ServerFrame::Msg(m) => got.push((m.seq, m.body)),
            ServerFrame::Synced { last_seq, .. } => {
                assert_eq!(last_seq, 7);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let want: Vec<(i64, String)> = (4..=7).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(got, want, "exactly the missed messages, in order");
    wa.send_msg(conv, "a8", "m8").await;
    assert_eq!(msg_seq(&mut wb).await, (8, "m8".to_owned()));
}

#[tokio::test]
async fn live_messages_of_a_conversation_flow_only_after_it_is_synced() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut wa = app.online(&a).await;
    let mut wb = app.online(&b).await;
    wa.send_msg(conv, "early", "before b synced").await;
    ack_of(&mut wa, "early").await;
    wb.sync(conv, 0).await;
    // The message arrives once, from the replay, followed by `synced`.
    assert_eq!(msg_seq(&mut wb).await, (1, "before b synced".to_owned()));
    assert!(matches!(
        wb.next().await,
        ServerFrame::Synced { last_seq: 1, .. }
    ));
}

/// A client that syncs while messages are being committed gets each exactly once and in
/// order, up to the last: the replay from the store and the live messages (written
/// straight into the socket once it is live) meet without a gap or a repeat. (The hub's
/// unit tests pin the rule that makes it so, deterministically.)
#[tokio::test]
async fn messages_committed_while_a_client_syncs_all_arrive_once_in_order() {
    let app = spawn_app_with(|c| {
        c.sockets.send_rate_per_second = 1_000_000;
        c.sockets.frame_rate_per_second = 1_000_000;
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut wa = app.online(&a).await;
    let mut wb = app.online(&b).await;
    let mut sent: i64 = 0;
    // Sends `n` messages without waiting, then waits for their acks.
    async fn burst(ws: &mut Ws, conv: i64, sent: &mut i64, n: i64, window: i64) {
        let mut acked = 0;
        let mut inflight = 0;
        while acked < n {
            while inflight < window && acked + inflight < n {
                *sent += 1;
                inflight += 1;
                ws.send_msg(conv, &format!("m{sent}"), &format!("message {sent}"))
                    .await;
            }
            if let ServerFrame::Ack { .. } = ws.next().await {
                acked += 1;
                inflight -= 1;
            }
        }
    }
    // A history long enough that replaying it takes many store reads.
    burst(&mut wa, conv, &mut sent, 3000, 64).await;
    for round in 0..3 {
        // A fresh socket each round: one already live may rightly get a message committed
        // before its new `sync` is read, ahead of the replay.
        if round > 0 {
            wb = app.online(&b).await;
        }
        // The burst is committed while b's replay is under way.
        wb.sync(conv, 0).await;
        burst(&mut wa, conv, &mut sent, 20, 20).await;
        let mut next_expected = 1;
        let mut synced = false;
        while next_expected <= sent {
            match wb.next().await {
                ServerFrame::Msg(m) => {
                    assert_eq!(m.seq, next_expected, "never skipped, never repeated");
                    assert_eq!(m.body, format!("message {next_expected}"));
                    next_expected += 1;
                }
                ServerFrame::Synced { last_seq, .. } => {
                    assert!(!synced, "one sync, one synced");
                    assert_eq!(last_seq, next_expected - 1, "synced after the replay");
                    synced = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if !synced {
            assert!(matches!(wb.next().await, ServerFrame::Synced { .. }));
        }
    }
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_to_resync_and_then_gets_everything() {
    // A tiny broadcast buffer and a reader that stops reading: the server must say so.
    let app = spawn_app_with(|c| {
        c.sockets.broadcast_capacity = 4;
        c.sockets.send_rate_per_second = 1_000_000;
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut wa = app.online(&a).await;
    let mut wb = app.online(&b).await;
    wb.sync(conv, 0).await;
    wb.until(|f| matches!(f, ServerFrame::Synced { .. })).await;

    // Enough big messages to fill the socket buffers while b does not read.
    let body = "x".repeat(2000);
    let total: i64 = 6000;
    let sender = tokio::spawn(async move {
        let mut inflight = 0;
        let mut sent = 0;
        while sent < total || inflight > 0 {
            while sent < total && inflight < 32 {
                sent += 1;
                inflight += 1;
                wa.send_msg(conv, &format!("m{sent}"), &body).await;
            }
            if let ServerFrame::Ack { .. } = wa.next().await {
                inflight -= 1;
            }
        }
    });
    sender.await.expect("sender");

    let mut next_expected = 1;
    let mut resyncs = 0;
    while next_expected <= total {
        match wb.next().await {
            ServerFrame::Msg(m) => {
                assert_eq!(m.seq, next_expected, "never skipped, never repeated");
                next_expected += 1;
            }
            ServerFrame::Resync { after, .. } => {
                assert_eq!(
                    after,
                    next_expected - 1,
                    "resync from the last message delivered"
                );
                resyncs += 1;
                wb.sync(conv, after).await;
            }
            ServerFrame::Synced { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(resyncs >= 1, "the lagging client was told to resync");
}

#[tokio::test]
async fn someone_outside_a_conversation_can_neither_send_nor_sync_nor_read_history() {
    let app = spawn_app().await;
    let (a, b, c) = (app.guest().await, app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut wc = app.online(&c).await;
    wc.send_msg(conv, "intruder", "let me in").await;
    match wc.next().await {
        ServerFrame::Error {
            code, client_id, ..
        } => {
            assert_eq!(code, ErrorCode::NotMember);
            assert_eq!(client_id.as_deref(), Some("intruder"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    wc.sync(conv, 0).await;
    assert!(matches!(
        wc.next().await,
        ServerFrame::Error {
            code: ErrorCode::NotMember,
            ..
        }
    ));
    let res = app
        .http
        .get(app.url(&format!("/api/history?conv={conv}")))
        .bearer_auth(&c.token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403);
    assert_eq!(app.message_count(None).await, 0);
}

#[tokio::test]
async fn bad_bodies_and_client_ids_are_refused_with_their_own_codes() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut ws = app.online(&a).await;
    ws.send_msg(conv, "blank", "   ").await;
    assert!(matches!(
        ws.next().await,
        ServerFrame::Error {
            code: ErrorCode::InvalidBody,
            ..
        }
    ));
    ws.send_msg(conv, "long", &"y".repeat(2049)).await;
    assert!(matches!(
        ws.next().await,
        ServerFrame::Error {
            code: ErrorCode::InvalidBody,
            ..
        }
    ));
    ws.send_msg(conv, "not an id!", "hello").await;
    assert!(matches!(
        ws.next().await,
        ServerFrame::Error {
            code: ErrorCode::InvalidClientId,
            ..
        }
    ));
    ws.send(json!({ "t": "shout", "conv": conv })).await;
    assert!(matches!(
        ws.next().await,
        ServerFrame::Error {
            code: ErrorCode::BadFrame,
            ..
        }
    ));
    // The socket is still usable.
    ws.send_msg(conv, "fine", "a good one").await;
    assert_eq!(ack_of(&mut ws, "fine").await, 1);
}

/// A server without a send rate limit worth the name, two guests with a conversation, and
/// the first one online: for tests that send in bursts.
async fn burst_sender() -> (TestApp, User, User, i64, Ws) {
    let app = spawn_app_with(|c| c.sockets.send_rate_per_second = 10_000).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let ws = app.online(&a).await;
    (app, a, b, conv, ws)
}

#[tokio::test]
async fn acks_come_in_the_order_of_the_sends() {
    // The writer commits on its own thread while the connection collects its answers; a
    // burst larger than one connection's in-flight limit (64) spans many commits.
    let (_app, _a, _b, conv, mut ws) = burst_sender().await;
    let sent: Vec<String> = (1..=300).map(|i| format!("o{i}")).collect();
    for cid in &sent {
        ws.send_msg(conv, cid, cid).await;
    }
    let mut acked = Vec::new();
    while acked.len() < sent.len() {
        match ws.next().await {
            ServerFrame::Ack { client_id, seq, .. } => acked.push((client_id, seq)),
            ServerFrame::Error { client_id, .. } => panic!("a send was refused: {client_id:?}"),
            _ => {}
        }
    }
    let ids: Vec<&str> = acked.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(ids, sent.iter().map(String::as_str).collect::<Vec<_>>());
    let seqs: Vec<i64> = acked.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
}

#[tokio::test]
async fn history_pages_back_to_the_first_message() {
    let (app, _a, b, conv, mut ws) = burst_sender().await;
    for i in 1..=120 {
        ws.send_msg(conv, &format!("h{i}"), &format!("n{i}")).await;
    }
    for i in 1..=120 {
        ack_of(&mut ws, &format!("h{i}")).await;
    }
    let mut before: Option<i64> = None;
    let mut seen = Vec::new();
    loop {
        let mut url = app.url(&format!("/api/history?conv={conv}&limit=50"));
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let page: messenger::protocol::HistoryPage = app
            .http
            .get(url)
            .bearer_auth(&b.token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        let seqs: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "a page is in order"
        );
        seen.splice(0..0, seqs.iter().copied());
        before = seqs.first().copied();
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, (1..=120).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_one_to_one_conversation_is_unique_and_both_sides_learn_of_it_live() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let mut wb = app.online(&b).await;
    let first = app.dm(&a, &b).await;
    match wb.next().await {
        ServerFrame::ConvAdded { conversation } => {
            assert_eq!(conversation.id, first);
            assert_eq!(conversation.title, a.me.display_name);
        }
        other => panic!("expected conv_added, got {other:?}"),
    }
    assert_eq!(app.dm(&b, &a).await, first);
    assert_eq!(app.dm(&a, &b).await, first);
    let res = app
        .post(
            "/api/dm",
            Some(&a.token),
            json!({ "username": a.me.username }),
        )
        .await;
    assert_eq!(res.status(), 422, "not with yourself");
    let res = app
        .post(
            "/api/dm",
            Some(&a.token),
            json!({ "username": "nobody_here" }),
        )
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_rooms_members_see_who_is_in_it_and_others_do_not() {
    let app = spawn_app().await;
    let (a, b, c) = (app.guest().await, app.guest().await, app.guest().await);
    let lobby = 1;
    for u in [&a, &b] {
        let res = app
            .post(
                &format!("/api/rooms/{lobby}/join"),
                Some(&u.token),
                json!({}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    let res = app
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{lobby}/members"),
            &a.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let found: messenger::protocol::http::RoomMembers = res.json().await.expect("members");
    assert_eq!(found.count, 2);
    // The latest to join first.
    let ids: Vec<i64> = found.members.iter().map(|u| u.id).collect();
    assert_eq!(ids, [b.me.id, a.me.id]);
    let outsider = app
        .call(
            reqwest::Method::GET,
            &format!("/api/rooms/{lobby}/members"),
            &c.token,
            None,
        )
        .await;
    assert_eq!(outsider.status(), 404);
}

#[tokio::test]
async fn rooms_exist_from_the_start_and_joining_one_subscribes_the_open_sockets() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let mut wa = app.connect(&a).await;
    let lobby = match wa.hello().await {
        ServerFrame::Hello { rooms, .. } => {
            let lobby = rooms.iter().find(|r| r.title == "Lobby").expect("a Lobby");
            assert!(!lobby.joined);
            lobby.id
        }
        _ => unreachable!(),
    };
    wa.send_msg(lobby, "early", "hello?").await;
    assert!(matches!(
        wa.next().await,
        ServerFrame::Error {
            code: ErrorCode::NotMember,
            ..
        }
    ));
    for u in [&a, &b] {
        let res = app
            .post(
                &format!("/api/rooms/{lobby}/join"),
                Some(&u.token),
                json!({}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    assert!(matches!(wa.next().await, ServerFrame::ConvAdded { .. }));
    wa.sync(lobby, 0).await;
    wa.until(|f| matches!(f, ServerFrame::Synced { .. })).await;
    let mut wb = app.online(&b).await;
    wb.sync(lobby, 0).await;
    wb.until(|f| matches!(f, ServerFrame::Synced { .. })).await;
    wb.send_msg(lobby, "hi", "hi lobby").await;
    assert_eq!(msg_seq(&mut wa).await, (1, "hi lobby".to_owned()));
    let res = app
        .post("/api/rooms/999/join", Some(&a.token), json!({}))
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_graceful_shutdown_tells_sockets_to_reconnect_and_keeps_every_acknowledged_message() {
    let mut app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut ws = app.online(&a).await;
    for i in 0..10 {
        ws.send_msg(conv, &format!("g{i}"), "bye").await;
    }
    for i in 0..10 {
        ack_of(&mut ws, &format!("g{i}")).await;
    }
    let stopping = tokio::spawn(async move {
        app.stop().await;
        app
    });
    assert_eq!(
        ws.close_code().await,
        messenger::protocol::close::GOING_AWAY
    );
    let app = stopping.await.expect("stopped");
    assert_eq!(app.message_count(None).await, 10);
}

#[tokio::test]
async fn a_conversation_channel_is_dropped_when_its_last_socket_closes() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.dm(&a, &b).await;
    let ws = app.online(&a).await;
    assert_eq!(app.state.hub.active_channels(), 1);
    assert_eq!(app.state.hub.connections_of(a.me.id), 1);
    drop(ws);
    // The server notices the close asynchronously; give it a bounded moment.
    for _ in 0..200 {
        if app.state.hub.active_channels() == 0 && app.state.hub.connections_of(a.me.id) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the channel or the connection entry outlived the socket");
}

#[tokio::test]
async fn read_marks_count_unread_across_sign_ins_and_tabs() {
    let app = spawn_app().await;
    let (a, b, stranger) = (app.guest().await, app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut wa = app.online(&a).await;
    for i in 1..=3 {
        wa.send_msg(conv, &format!("m{i}"), "while you were away")
            .await;
        wa.until(|f| matches!(f, ServerFrame::Ack { seq, .. } if *seq == i))
            .await;
    }
    let summary = |hello: ServerFrame| match hello {
        ServerFrame::Hello { conversations, .. } => conversations
            .into_iter()
            .find(|c| c.id == conv)
            .expect("the conversation"),
        other => panic!("not a hello: {other:?}"),
    };
    // b was offline: all three are unread at sign-in.
    let mut wb = app.connect(&b).await;
    let s = summary(wb.hello().await);
    assert_eq!((s.last_seq, s.last_read), (3, 0));

    // Reading in one tab tells the others; the mark is kept for the next sign-in.
    let mut other_tab = app.online(&b).await;
    wb.send(serde_json::json!({ "t": "read", "conv": conv, "seq": 2 }))
        .await;
    other_tab
        .until(|f| matches!(f, ServerFrame::Read { conv: c, seq: 2 } if *c == conv))
        .await;
    let s = summary(app.connect(&b).await.hello().await);
    assert_eq!((s.last_seq, s.last_read), (3, 2));
    // Never beyond the last message, never backwards; the tabs hear the mark as it is kept
    // (they were told 99 once, and counted later messages as read).
    wb.send(serde_json::json!({ "t": "read", "conv": conv, "seq": 99 }))
        .await;
    let told = other_tab
        .until(|f| matches!(f, ServerFrame::Read { conv: c, .. } if *c == conv))
        .await;
    assert!(
        matches!(told, ServerFrame::Read { seq: 3, .. }),
        "the other tab is told the kept mark: {told:?}"
    );
    wb.send(serde_json::json!({ "t": "read", "conv": conv, "seq": 1 }))
        .await;
    // A later frame's answer shows the server has handled that one.
    wb.sync(i64::MAX, 0).await;
    wb.until(|f| matches!(f, ServerFrame::Error { .. })).await;
    let s = summary(app.connect(&b).await.hello().await);
    assert_eq!(s.last_read, 3);
    // a's own mark is untouched.
    let s = summary(app.connect(&a).await.hello().await);
    assert_eq!(s.last_read, 0);

    let mut ws = app.online(&stranger).await;
    ws.send(serde_json::json!({ "t": "read", "conv": conv, "seq": 1 }))
        .await;
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
}

/// The heartbeat shares one timer with the session deadline: a socket that keeps answering
/// pings stays open past three heartbeats, one that stops reading (so never answers) is
/// closed with the heartbeat code, and the answering one still delivers.
#[tokio::test]
async fn a_socket_that_stops_answering_pings_is_closed_and_one_that_answers_stays() {
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(|c| c.sockets.heartbeat_seconds = 1).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut answering = app.online(&a).await;
    let mut silent = app.online(&b).await;
    // Reading answers each ping with a pong (tungstenite does it as it reads).
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(4500);
    let mut pings = 0;
    while let Ok(msg) = tokio::time::timeout_at(until, answering.stream.next()).await {
        match msg {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(c))) => panic!("the answering socket was closed: {c:?}"),
            None | Some(Err(_)) => panic!("the answering socket ended"),
            Some(Ok(_)) => {}
        }
    }
    assert!(pings >= 3, "a ping every second, got {pings}");
    // Read the silent socket's bytes as they came, without tungstenite: it would answer the
    // pings now, into a connection the server has closed.
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = silent.stream.get_mut() else {
        panic!("a plain TCP socket");
    };
    let mut raw = Vec::new();
    tokio::time::timeout(crate::helpers::WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("the server closes the silent socket")
        .expect("read");
    // Server frames are unmasked and short here: opcode byte, length byte, payload.
    let (mut at, mut close) = (0, None);
    while at + 2 <= raw.len() {
        let (opcode, len) = (raw[at] & 0x0f, usize::from(raw[at + 1] & 0x7f));
        if opcode == 0x8 {
            close = Some(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
        }
        at += 2 + len;
    }
    assert_eq!(close, Some(messenger::protocol::close::HEARTBEAT_TIMEOUT));
    answering.live(conv).await;
    answering.send_msg(conv, "still-here", "hello").await;
    assert!(ack_of(&mut answering, "still-here").await > 0);
}

/// Browsers cannot see the WebSocket's own pings: the page's heartbeat is a `ping` frame,
/// answered at once with `pong`.
#[tokio::test]
async fn a_ping_frame_is_answered_with_a_pong_frame() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let mut ws = app.online(&a).await;
    ws.send(serde_json::json!({ "t": "ping" })).await;
    assert_eq!(ws.next().await, ServerFrame::Pong {});
}

#[tokio::test]
async fn a_ping_from_the_client_gets_its_pong_and_a_close_gets_its_answer() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::{
        protocol::{frame::coding::CloseCode, CloseFrame},
        Message,
    };
    let app = spawn_app().await;
    let a = app.guest().await;
    let mut ws = app.online(&a).await;
    ws.stream
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    let pong = loop {
        match tokio::time::timeout(crate::helpers::WAIT, ws.stream.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => break p,
            Ok(Some(Ok(Message::Text(_)))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"are you there");
    ws.stream
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .expect("close");
    let answer = loop {
        match tokio::time::timeout(crate::helpers::WAIT, ws.stream.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => break c,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected the server's close, got {other:?}"),
        }
    };
    assert_eq!(answer.map(|c| c.code), Some(CloseCode::Normal));
}
