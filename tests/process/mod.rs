//! What the tests of the server binary share: starting it on a free port with a temp
//! database, waiting for it, and clients that send without pause.
#![allow(dead_code)] // each test binary uses its own part

use futures::{SinkExt, StreamExt};
use messenger::protocol::ServerFrame;
use serde_json::{json, Value};
use std::{
    collections::HashMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub async fn guest_token(http: &reqwest::Client, base: &str) -> String {
    let body: Value = http
        .post(format!("{base}/api/token"))
        .json(&json!({ "guest": true }))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    body["token"].as_str().expect("token").to_owned()
}

/// The server binary on `port` with the database `db`, made to make its users by script
/// (bot verification off), logging only errors; `env` is added last. `shell` runs it
/// through `sh -c` first (to set limits with `ulimit`).
pub fn server(port: u16, db: &Path, env: &[(&str, &str)], shell: Option<&str>) -> Child {
    let mut cmd = match shell {
        Some(script) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{script} && exec \"$0\""))
                .arg(env!("CARGO_BIN_EXE_messenger"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_messenger")),
    };
    cmd.env("MESSENGER_ADDR", format!("127.0.0.1:{port}"))
        .env("MESSENGER_DATABASE", db)
        .env("MESSENGER_VERIFICATION", "off")
        .env("RUST_LOG", "error")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts")
}

/// The server started with a soft descriptor limit of 200 under a hard one of 256.
pub fn start_server_with_few_descriptors(port: u16, db: &Path) -> Child {
    server(port, db, &[], Some("ulimit -n 256 && ulimit -Sn 200"))
}

/// A server process that is killed when the test ends, passed or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_server(port: u16, db: &Path) -> Child {
    server(
        port,
        db,
        &[
            ("MESSENGER_SEND_RATE", "100000"),
            ("MESSENGER_FRAME_RATE", "100000"),
        ],
        None,
    )
}

pub async fn wait_up(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not come up");
}

/// What one sender saw acknowledged: client id -> sequence number.
pub type Acks = Arc<Mutex<HashMap<String, i64>>>;

/// Sends numbered messages forever, a few in flight; after any disconnect it reconnects and
/// resends everything not yet acknowledged, with the same ids.
pub async fn sender(
    base: String,
    token: String,
    conv: i64,
    who: usize,
    acks: Acks,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    roaming_sender(vec![base], token, conv, who, acks, stop).await
}

/// [`sender`] over several servers (nodes of one installation): it starts on the first and,
/// after a disconnect, reconnects to the next one, as a client behind a load balancer would.
pub async fn roaming_sender(
    bases: Vec<String>,
    token: String,
    conv: i64,
    who: usize,
    acks: Acks,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut next = 0u64;
    let mut unacked: Vec<String> = Vec::new();
    let mut attempt = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let base = &bases[attempt % bases.len()];
        attempt += 1;
        let mut req = format!("{}/ws", base.replace("http", "ws"))
            .into_client_request()
            .expect("req");
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("hdr"),
        );
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        for id in &unacked {
            let f = json!({ "t": "send", "conv": conv, "client_id": id, "body": format!("body of {id}") });
            if ws.send(Message::text(f.to_string())).await.is_err() {
                break;
            }
        }
        loop {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            while unacked.len() < 8 {
                next += 1;
                let id = format!("s{who}-{next}");
                let f = json!({ "t": "send", "conv": conv, "client_id": id, "body": format!("body of {id}") });
                unacked.push(id);
                if ws.send(Message::text(f.to_string())).await.is_err() {
                    break;
                }
            }
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    if let Ok(ServerFrame::Ack { client_id, seq, .. }) =
                        serde_json::from_str(t.as_str())
                    {
                        unacked.retain(|u| *u != client_id);
                        let prev = acks.lock().expect("lock").insert(client_id.clone(), seq);
                        assert!(
                            prev.is_none_or(|p| p == seq),
                            "{client_id} acked with two sequence numbers"
                        );
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break, // killed: reconnect
            }
        }
    }
}

pub fn acked(acks: &[Acks]) -> usize {
    acks.iter().map(|a| a.lock().expect("lock").len()).sum()
}

/// Waits until `more` further messages have been acknowledged (bounded).
pub async fn progress(acks: &[Acks], more: usize) {
    let target = acked(acks) + more;
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked(acks) < target {
        assert!(Instant::now() < deadline, "no progress after a restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One test's own server, logging to a file: a temporary directory with its database and
/// its log, a free port, and an HTTP client for it.
pub struct Logged {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    pub base: String,
    pub http: reqwest::Client,
}

impl Logged {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        Self {
            db: dir.path().join("messenger.db"),
            log: dir.path().join("server.log"),
            dir,
            port,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    /// Starts the server with `env` on top of the tests' settings ([`server_logged`]).
    pub fn start(&self, env: &[(&str, &str)]) -> Child {
        server_logged(self.port, &self.db, env, &self.log)
    }
}

/// Like [`server`], with what it logs (at `error`; stdout and stderr) going to the file `log`.
pub fn server_logged(port: u16, db: &Path, env: &[(&str, &str)], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_messenger"))
        .env("MESSENGER_ADDR", format!("127.0.0.1:{port}"))
        .env("MESSENGER_DATABASE", db)
        .env("MESSENGER_VERIFICATION", "off")
        .env("MESSENGER_SEND_RATE", "100000")
        .env("MESSENGER_FRAME_RATE", "100000")
        .env("RUST_LOG", "error")
        .envs(env.iter().copied())
        .stdout(Stdio::from(file.try_clone().expect("log file")))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("the server starts")
}

/// Sends `signal` (TERM, STOP, CONT, ...) to the process.
pub fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal}");
}

/// Waits for the process to end; its exit status. A process still running after 20 s is
/// killed (the test then fails on its status) rather than left to hang the suite.
pub fn exited(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if ended.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let status = child.wait().expect("wait");
    drop(done);
    let _ = watchdog.join();
    status
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket of the user with `token` on the server at `port`.
pub async fn socket(port: u16, token: &str) -> Socket {
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("the upgrade is answered")
        .0
}

/// The next server frame (pings skipped).
pub async fn frame(ws: &mut Socket) -> ServerFrame {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(t.as_str()).expect("a server frame")
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// Sends a JSON frame.
pub async fn send(ws: &mut Socket, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

/// Joins the public room `room` as the user with `token`.
pub async fn join(http: &reqwest::Client, base: &str, token: &str, room: i64) {
    let res = http
        .post(format!("{base}/api/rooms/{room}/join"))
        .bearer_auth(token)
        .send()
        .await
        .expect("join");
    assert_eq!(res.status(), 200);
}

/// Sends a message and waits for its acknowledgement; its sequence number.
pub async fn send_acked(ws: &mut Socket, conv: i64, client_id: &str, body: &str) -> i64 {
    send(
        ws,
        json!({ "t": "send", "conv": conv, "client_id": client_id, "body": body }),
    )
    .await;
    loop {
        match frame(ws).await {
            ServerFrame::Ack {
                client_id: c, seq, ..
            } if c == client_id => return seq,
            ServerFrame::Error {
                client_id: Some(c),
                message,
                ..
            } if c == client_id => {
                panic!("{client_id} refused: {message}")
            }
            _ => {}
        }
    }
}

/// Stops the server gracefully (SIGTERM: sockets closed, WAL checkpointed) and waits.
pub fn stop(child: &mut Child) {
    signal(child, "TERM");
    let status = exited(child);
    assert!(status.success(), "a clean stop: {status}");
}
