//! Tests that run the server binary itself.
//!
//! The crash test: clients send without pause while the real server binary is killed with
//! SIGKILL and restarted, several times. Afterwards every acknowledged message is stored
//! exactly once, with the sequence number its ack gave, sequences have no gaps, and SQLite's
//! integrity check passes.

use futures::StreamExt;
use serde_json::json;
use std::{collections::HashMap, process::Command, sync::Arc, time::Duration};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

mod process;
use process::*;

const SENDERS: usize = 4;
const KILLS: usize = 8;

/// Raising the soft limit to the hard one (256) and keeping a quarter of it back (64) leaves
/// room for 192 sockets: all of them open (with the soft limit of 200 kept, the process
/// would run out of descriptors first), the next is refused with "try again later", and
/// signing up over HTTP still works with every socket open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_limit_is_raised_and_a_reserve_keeps_http_working() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("messenger.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let _server = Killed(start_server_with_few_descriptors(port, &db));
    wait_up(&http, &base).await;

    let mut sockets = Vec::new();
    let mut refused = None;
    'users: for _ in 0..20 {
        let token = guest_token(&http, &base).await;
        for _ in 0..20 {
            let mut req = format!("ws://127.0.0.1:{port}/ws")
                .into_client_request()
                .expect("request");
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
            );
            let (mut ws, _) = tokio_tungstenite::connect_async(req)
                .await
                .expect("the upgrade is answered");
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => sockets.push(ws),
                Ok(Some(Ok(Message::Close(c)))) => {
                    refused = c.map(|c| (u16::from(c.code), c.reason.to_string()));
                    break 'users;
                }
                other => panic!("expected hello or a close, got {other:?}"),
            }
        }
    }
    assert_eq!(sockets.len(), 192, "sockets open before the cap");
    assert_eq!(
        refused,
        Some((1013, "server full; try again later".to_owned()))
    );
    let res = http
        .post(format!("{base}/api/signup"))
        .form(&[
            ("username", "latecomer"),
            ("password", "a long enough password"),
        ])
        .send()
        .await
        .expect("sign-up answered");
    assert_eq!(res.status(), 201, "{:?}", res.text().await);

    drop(sockets);
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A burst of wrong passwords, sixteen at a time, costs argon2's two memory areas (2 ×
/// 19 MiB), once: it used to leave every blocking thread's allocator holding its own, and
/// the process 260 MB larger for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_leaves_memory_where_it_was() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("messenger.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let server = Killed(server(
        port,
        &db,
        &[
            ("MESSENGER_SIGNIN_FAILURES_PER_ADDRESS", "1000000/1s"),
            (
                "MESSENGER_SIGNIN_FAILURES_PER_ACCOUNT_AND_ADDRESS",
                "1000000/1s",
            ),
            ("MESSENGER_SIGNIN_FAILURES_PER_ACCOUNT", "1000000/1s"),
        ],
        None,
    ));
    wait_up(&http, &base).await;
    let pid = server.0.id();
    let res = http
        .post(format!("{base}/api/signup"))
        .form(&[("username", "wendy"), ("password", "the right password")])
        .send()
        .await
        .expect("sign-up");
    assert_eq!(res.status(), 201);
    let before = rss_kib(pid);
    let tries = futures::stream::iter(0..300)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                http.post(format!("{base}/api/token"))
                    .json(&json!({ "username": "wendy", "password": format!("guess {i}") }))
                    .send()
                    .await
                    .expect("answered")
                    .status()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(
        tries.iter().all(|s| *s == 401),
        "every guess refused as wrong: {tries:?}"
    );
    let after = rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 80,
        "resident memory grew by {grown_mib} MiB ({before} -> {after} KiB)"
    );
}

/// A server that cannot start says why in one line and exits with status 1: no backtrace,
/// even with RUST_BACKTRACE set.
#[test]
fn a_failed_start_is_one_clear_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().expect("dir");
    // The database's folder cannot be made: a file stands where it would go.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").expect("file");
    let out = Command::new(env!("CARGO_BIN_EXE_messenger"))
        .env("MESSENGER_ADDR", "127.0.0.1:0")
        .env("MESSENGER_DATABASE", blocker.join("messenger.db"))
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "error")
        .output()
        .expect("ran");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("messenger: "), "{stderr}");
    assert!(
        lines[0].contains("not-a-folder"),
        "it names the path: {stderr}"
    );
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_repeated_sigkills_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("messenger.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = Killed(start_server(port, &db));
    wait_up(&http, &base).await;

    let mut tokens = Vec::new();
    for _ in 0..SENDERS {
        tokens.push(guest_token(&http, &base).await);
    }
    let lobby = 1;
    for t in &tokens {
        join(&http, &base, t, lobby).await;
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks: Vec<Acks> = (0..SENDERS).map(|_| Acks::default()).collect();
    let tasks: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            tokio::spawn(sender(
                base.clone(),
                t.clone(),
                lobby,
                i,
                acks[i].clone(),
                stop.clone(),
            ))
        })
        .collect();

    for _ in 0..KILLS {
        // Let acknowledgements pile up, then pull the plug mid-stream.
        progress(&acks, 200).await;
        server.0.kill().expect("SIGKILL");
        server.0.wait().expect("reaped");
        server.0 = start_server(port, &db);
        wait_up(&http, &base).await;
    }
    // Progress after the last restart too, then stop everything.
    progress(&acks, 200).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("reaped");

    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("db");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("check");
    assert_eq!(check, "ok");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT client_id, seq FROM messages WHERE conversation_id = ? ORDER BY seq",
    )
    .bind(lobby)
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    let seqs: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(
        seqs,
        (1..=rows.len() as i64).collect::<Vec<_>>(),
        "gap-free sequence numbers"
    );
    let stored: HashMap<&str, i64> = rows.iter().map(|(c, s)| (c.as_str(), *s)).collect();
    assert_eq!(stored.len(), rows.len(), "no client id stored twice");
    let mut acked = 0;
    for a in &acks {
        for (client_id, seq) in a.lock().expect("lock").iter() {
            acked += 1;
            assert_eq!(
                stored.get(client_id.as_str()),
                Some(seq),
                "{client_id} was acknowledged but is missing or moved"
            );
        }
    }
    assert!(
        acked >= KILLS * 200,
        "the test exercised enough traffic ({acked} acks)"
    );
    eprintln!(
        "{acked} acknowledged messages, {} stored, all present exactly once",
        rows.len()
    );
}

/// With `--log-format json` every log line is one JSON object, and a request's lines carry
/// its id in their spans: the id the response gave back in `X-Request-Id`, or the one a
/// proxy sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_the_response_names() {
    let t = Logged::new();
    let (base, http, log) = (&t.base, &t.http, &t.log);
    let _server = Killed(t.start(&[("MESSENGER_LOG_FORMAT", "json"), ("RUST_LOG", "info")]));
    wait_up(http, base).await;
    let refused = |id: Option<&'static str>| {
        let mut req = http
            .post(format!("{base}/api/token"))
            .json(&json!({ "username": "nobody_here", "password": "wrong password" }));
        if let Some(id) = id {
            req = req.header("X-Request-Id", id);
        }
        req.send()
    };
    let mine = refused(None).await.expect("answered");
    assert_eq!(mine.status(), 401);
    let made = mine.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(made.len(), 16, "a new id: {made}");
    let given = refused(Some("edge-7f3a.1")).await.expect("answered");
    assert_eq!(given.headers()["x-request-id"], "edge-7f3a.1");
    // A header that is not a plain id is replaced, not echoed.
    let odd = refused(Some("a b\"<script>")).await.expect("answered");
    assert_ne!(odd.headers()["x-request-id"], "a b\"<script>");

    let text = std::fs::read_to_string(log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let failed: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "a sign-in failed")
        .collect();
    assert_eq!(failed.len(), 3, "{text}");
    let ids: Vec<&str> = failed
        .iter()
        .filter_map(|l| l["spans"][0]["id"].as_str())
        .collect();
    assert_eq!(ids[..2], [made.as_str(), "edge-7f3a.1"]);
    assert_eq!(failed[0]["spans"][0]["path"], "/api/token");
}

/// A socket's log lines name the request that opened it, in a span of the socket's own: kept
/// inside the request's span, the socket held that span open (and its memory in the log's
/// registry) for its whole life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sockets_log_lines_name_its_request_in_a_span_of_its_own() {
    let t = Logged::new();
    let (port, log) = (t.port, &t.log);
    let _server = Killed(t.start(&[
        ("MESSENGER_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("MESSENGER_MAX_SOCKETS_PER_USER", "1"),
    ]));
    wait_up(&t.http, &t.base).await;
    let token = guest_token(&t.http, &t.base).await;
    let open = |id: &'static str| {
        let mut req = format!("ws://127.0.0.1:{port}/ws")
            .into_client_request()
            .expect("request");
        let headers = req.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        headers.insert("x-request-id", HeaderValue::from_static(id));
        tokio_tungstenite::connect_async(req)
    };
    let (mut first, _) = open("socket-one").await.expect("upgraded");
    assert!(matches!(first.next().await, Some(Ok(Message::Text(_)))));
    // The second is over this user's cap: refused, with a log line in its socket's span.
    let (mut second, _) = open("socket-two").await.expect("upgraded");
    assert!(matches!(second.next().await, Some(Ok(Message::Close(_)))));

    // The refusal is logged (stderr is unbuffered) before its close frame is written, so the
    // line is in the file once the close has come.
    let text = std::fs::read_to_string(log).expect("log");
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "a socket was refused")
        .unwrap_or_else(|| panic!("no refusal logged: {text}"));
    let spans = line["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 1, "the socket's span alone: {line}");
    assert_eq!(spans[0]["name"], "socket");
    assert_eq!(spans[0]["request"], "socket-two");
}
