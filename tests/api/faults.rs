//! Faults around the core: readers that stop, closes that must reach the client, frames
//! too large to read.

use crate::helpers::{spawn_app, spawn_app_with, TestApp, User, Ws, WAIT};
use futures::SinkExt;
use messenger::protocol::{close, MAX_FRAME_BYTES};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

/// Opens `user`'s socket with a tiny receive buffer and reads its hello and the `synced` of
/// `conv`: from here the test stops reading it, and the server's writes soon block.
async fn stopped_reader(app: &TestApp, user: &User, conv: i64) -> Ws {
    let mut req = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", user.token)).expect("header"),
    );
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("receive buffer");
    let tcp = tcp.connect(app.addr).await.expect("connect");
    let (stream, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrade");
    let mut ws = Ws { stream };
    ws.hello().await;
    ws.live(conv).await;
    ws
}

/// Sends `n` long messages to `conv` from `ws` and waits until all are acknowledged (so
/// all were delivered to the conversation's other sockets). The sender reads in the
/// background, so its own socket never blocks; what it reads afterwards is dropped.
async fn flood(ws: Ws, conv: i64, n: usize) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    let (mut sink, mut stream) = ws.stream.split();
    let last = format!("\"f{}\"", n - 1);
    let (acked, all_acked) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut acked = Some(acked);
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(t) = msg {
                if t.contains("\"ack\"") && t.contains(&last) {
                    if let Some(tx) = acked.take() {
                        let _ = tx.send(());
                    }
                }
            }
        }
    });
    let body = "ア".repeat(messenger::protocol::MAX_BODY_CHARS);
    for i in 0..n {
        let frame = serde_json::json!({
            "t": "send", "conv": conv, "client_id": format!("f{i}"), "body": body,
        });
        sink.send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }
    tokio::time::timeout(WAIT * 6, all_acked)
        .await
        .expect("every send acknowledged")
        .expect("the sender's socket stayed open");
    reader
}

/// Waits until the server counts `n` open sockets.
async fn sockets_open(app: &TestApp, n: usize) {
    let mut counted = app.state.live_sockets.subscribe();
    let reached = tokio::time::timeout(WAIT, counted.wait_for(|open| *open == n))
        .await
        .map(|r| r.is_ok());
    assert_eq!(
        reached,
        Ok(true),
        "{n} sockets open within the wait (now {})",
        *app.state.live_sockets.borrow()
    );
}

/// The heartbeat is one second: a socket that took no byte for three is closed, though
/// deliveries kept coming for it, and its user goes offline.
#[tokio::test]
async fn a_socket_whose_reader_stops_under_a_flood_is_closed_within_three_heartbeats() {
    let app = spawn_app_with(|c| {
        c.sockets.heartbeat_seconds = 1;
        c.sockets.send_rate_per_second = 100_000;
        c.sockets.frame_rate_per_second = 100_000;
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut sender = app.online(&a).await;
    sender.live(conv).await;
    let stopped = stopped_reader(&app, &b, conv).await;
    sockets_open(&app, 2).await;
    // ~12 MB for a socket that takes ~4 KB: more than the system buffers between them.
    let reader = flood(sender, conv, 2000).await;
    sockets_open(&app, 1).await;
    // Its client sees the connection end (what was buffered, then the end).
    let mut stopped = stopped;
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = stopped.stream.get_mut() else {
        panic!("a plain socket");
    };
    let mut sink = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server ended the stopped reader's connection"
    );
    reader.abort();
}

/// A session that ends and a server that stops reach a socket whose writes are blocked,
/// long before the stall limit (90 s here).
#[tokio::test]
async fn a_blocked_socket_still_gets_its_session_end_and_the_shutdown() {
    let mut app = spawn_app_with(|c| {
        c.sockets.heartbeat_seconds = 30;
        c.sockets.send_rate_per_second = 100_000;
        c.sockets.frame_rate_per_second = 100_000;
    })
    .await;
    let (a, b, c) = (app.guest().await, app.guest().await, app.guest().await);
    let with_b = app.dm(&a, &b).await;
    let with_c = app.dm(&a, &c).await;
    let mut to_b = app.online(&a).await;
    to_b.live(with_b).await;
    let mut to_c = app.online(&a).await;
    to_c.live(with_c).await;
    let _b = stopped_reader(&app, &b, with_b).await;
    let _c = stopped_reader(&app, &c, with_c).await;
    sockets_open(&app, 4).await;
    // Block b's writes, then c's.
    let reader_b = flood(to_b, with_b, 2000).await;
    let reader_c = flood(to_c, with_c, 2000).await;
    // Signing b out closes its socket now.
    let res = app.form("/api/signout", Some(&b.token), &[]).await;
    assert_eq!(res.status(), 204);
    sockets_open(&app, 3).await;
    // Stopping the server does not wait for c's socket to take its bytes.
    tokio::time::timeout(WAIT, app.stop())
        .await
        .expect("the server stopped within the wait");
    reader_b.abort();
    reader_c.abort();
}

/// Frames over the limit are refused from their header, whatever their length, and the
/// client gets the 1009 close (it used to reach it only for frames up to 64 KiB).
#[tokio::test]
async fn a_frame_of_any_length_over_the_limit_gets_the_too_big_close() {
    let app = spawn_app().await;
    let a = app.guest().await;
    for len in [
        MAX_FRAME_BYTES + 1,
        100 * 1024,
        1024 * 1024,
        8 * 1024 * 1024,
    ] {
        let mut ws = app.online(&a).await;
        ws.stream
            .send(Message::text("z".repeat(len)))
            .await
            .expect("the server reads (and drops) the frame");
        let (code, reason) = ws.close_frame().await;
        assert_eq!(
            (code, reason.as_str()),
            (close::TOO_BIG, "frame too large"),
            "{len} bytes"
        );
    }
}
