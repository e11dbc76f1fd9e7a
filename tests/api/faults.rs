//! Faults around the core: readers that stop, closes that must reach the client, frames
//! too large to read.

use crate::delivery::ack_of;
use crate::helpers::{spawn_app, spawn_app_with, TestApp, User, Ws, WAIT};
use futures::SinkExt;
use messenger::protocol::{close, ErrorCode, ServerFrame, MAX_FRAME_BYTES};
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

/// A tmpfs of a few megabytes: a disk that really fills up. Unmounted when dropped.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn new(megabytes: u32) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        // The tests run as root here and in CI (the project's machines); a disk that fills
        // up is what this test is about, so no mount is a failure, not a skip.
        assert!(mounted.success(), "mounting a tmpfs (the tests need root)");
        Self { dir }
    }

    /// Fills the disk to the last byte it takes; returns the filler's path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let bytes = vec![0u8; chunk];
            while file
                .write_all(&bytes)
                .and_then(|()| file.sync_all())
                .is_ok()
            {}
        }
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        // Lazily: a file still open (a failed test's server) must not leave the mount behind.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Waits until `/readyz` answers `status`.
async fn readiness(app: &TestApp, status: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16();
        if got == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz answers {got}, not {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A disk that fills up (no floor set, so SQLite meets it): sends get `storage_full` and the
/// socket stays open, history and reconnects work, a new account is refused rather than
/// reported made, `/readyz` says so; once space is freed, the same client id goes through.
#[tokio::test]
async fn a_full_disk_makes_the_server_read_only_not_broken() {
    crate::sqlite_only!();
    let disk = TinyDisk::new(24);
    let mut app =
        crate::helpers::spawn_app_in(tempfile::tempdir_in(disk.dir.path()).expect("dir"), |c| {
            c.store.disk_floor_mb = 0
        })
        .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "before", "before the disk filled").await;
    assert!(ack_of(&mut wa, "before").await > 0);
    let users_before = user_count(&app).await;

    let filler = disk.fill();
    // Enough to need new pages (and WAL frames) whatever the WAL held before.
    let big = "x".repeat(messenger::protocol::MAX_BODY_CHARS);
    for i in 0..40 {
        wa.send_msg(conv, &format!("full-{i}"), &big).await;
    }
    let refused = wa
        .until(|f| {
            matches!(
                f,
                ServerFrame::Error {
                    code: ErrorCode::StorageFull,
                    ..
                }
            )
        })
        .await;
    let ServerFrame::Error {
        client_id, message, ..
    } = refused
    else {
        unreachable!()
    };
    let client_id = client_id.expect("the refused send's id");
    assert!(message.contains("storage is full"), "{message}");
    readiness(&app, 503).await;
    // Reading goes on: history, and a socket opened now.
    let page = app.history(conv, &b).await;
    assert!(page.messages.iter().any(|m| m.client_id == "before"));
    let mut again = app.online(&b).await;
    again.live(conv).await;
    // A new account cannot be stored: refused, not reported made.
    let res = app
        .http
        .post(app.url("/api/token"))
        .json(&serde_json::json!({ "guest": true }))
        .send()
        .await
        .expect("guest");
    assert!(res.status().is_server_error(), "{}", res.status());

    std::fs::remove_file(filler).expect("free the space");
    readiness(&app, 200).await;
    assert_eq!(
        user_count(&app).await,
        users_before,
        "no account half-made while the disk was full"
    );
    wa.send_msg(conv, &client_id, &big).await;
    assert!(
        ack_of(&mut wa, &client_id).await > 0,
        "the same id goes through"
    );
    wb.until(|f| matches!(f, ServerFrame::Msg(m) if m.client_id == client_id))
        .await;
    app.guest().await;
    // Its files closed before the disk goes.
    drop((wa, wb, again));
    app.stop().await;
    drop(app);
}

/// Below the free-space floor the server refuses new messages before SQLite meets a full
/// disk, and says so at `/readyz`; reading goes on.
#[tokio::test]
async fn below_the_disk_floor_sends_are_refused_and_reading_goes_on() {
    // The floor guards the disk SQLite writes to; PostgreSQL's disk is its server's.
    crate::sqlite_only!();
    let app = spawn_app_with(|c| c.store.disk_floor_mb = u64::MAX / (1 << 21)).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "floor-1", "hello").await;
    let f = wa
        .until(|f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Ack { .. }))
        .await;
    assert!(
        matches!(&f, ServerFrame::Error { code: ErrorCode::StorageFull, client_id: Some(id), .. } if id == "floor-1"),
        "{f:?}"
    );
    readiness(&app, 503).await;
    assert!(app.history(conv, &b).await.messages.is_empty());
}

async fn user_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut app.db().await)
        .await
        .expect("count")
}
