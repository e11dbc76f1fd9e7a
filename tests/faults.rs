//! Faults around the server binary: a lost WAL, a damaged or read-only database, an engine
//! thread that panics, a stop in the middle of a burst, and crash images taken under load.

use futures::StreamExt;
use messenger::protocol::{close, ServerFrame};
use serde_json::json;
use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};
use tokio_tungstenite::tungstenite::Message;

mod process;
use process::*;

/// The public room every installation starts with.
const LOBBY: i64 = 1;

/// The epoch a fresh socket's `hello` carries.
async fn hello_epoch(ws: &mut Socket) -> String {
    match frame(ws).await {
        ServerFrame::Hello { epoch, .. } => epoch,
        other => panic!("expected hello, got {other:?}"),
    }
}

/// Sends `sync` and reads up to its `synced`: whether a `reset` came first, and the
/// sequence numbers replayed.
async fn sync(ws: &mut Socket, conv: i64, after: i64, epoch: &str) -> (bool, Vec<i64>) {
    send(
        ws,
        json!({ "t": "sync", "conv": conv, "after": after, "epoch": epoch }),
    )
    .await;
    let (mut reset, mut seqs) = (false, Vec::new());
    loop {
        match frame(ws).await {
            ServerFrame::Reset { conv: c, .. } if c == conv => reset = true,
            ServerFrame::Msg(m) if m.conv == conv => seqs.push(m.seq),
            ServerFrame::Synced { conv: c, .. } if c == conv => return (reset, seqs),
            _ => {}
        }
    }
}

/// A WAL deleted after a kill loses acknowledged messages. The server notices at start
/// (its high-water record says more commits were acknowledged than the database holds),
/// logs it loudly and takes a new epoch; a client syncing from its old cursor, under the
/// old epoch or the new, is told to reset instead of skipping the numbers given out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_wal_is_noticed_and_old_cursors_get_the_conversation_afresh() {
    let t = Logged::new();
    let (dir, port, base, http, log) = (&t.dir, t.port, &t.base, &t.http, &t.log);

    // The account and its room membership are checkpointed into the database file by a
    // clean stop; the messages after it live in the WAL only.
    let mut server = Killed(t.start(&[]));
    wait_up(http, base).await;
    let token = guest_token(http, base).await;
    join(http, base, &token, LOBBY).await;
    stop(&mut server.0);
    server.0 = t.start(&[]);
    wait_up(http, base).await;
    let mut ws = socket(port, &token).await;
    let old_epoch = hello_epoch(&mut ws).await;
    let mut last = 0;
    for i in 0..30 {
        last = send_acked(&mut ws, LOBBY, &format!("m{i}"), "soon lost").await;
    }
    drop(ws);

    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("reaped");
    for wal in ["messenger.db-wal", "messenger.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(wal));
    }
    server.0 = t.start(&[]);
    wait_up(http, base).await;
    let logged = std::fs::read_to_string(log).expect("log");
    assert!(
        logged.contains("LOST ACKNOWLEDGED MESSAGES"),
        "the loss is logged: {logged}"
    );

    let mut ws = socket(port, &token).await;
    let new_epoch = hello_epoch(&mut ws).await;
    assert_ne!(new_epoch, old_epoch, "a new epoch");
    // The numbers are given out again from where the database is now.
    let reused = send_acked(&mut ws, LOBBY, "after", "after the loss").await;
    assert!(reused <= last, "seq {reused} reused (was at {last})");
    let (reset, seqs) = sync(&mut ws, LOBBY, last, &old_epoch).await;
    assert!(reset, "a cursor of the old epoch is reset");
    assert!(
        seqs.contains(&reused),
        "and gets what it would have skipped: {seqs:?}"
    );
    let (reset, _) = sync(&mut ws, LOBBY, last + 5, &new_epoch).await;
    assert!(reset, "a cursor beyond the last message is reset");
    let (reset, seqs) = sync(&mut ws, LOBBY, reused - 1, &new_epoch).await;
    assert_eq!(
        (reset, seqs),
        (false, vec![reused]),
        "a fitting cursor replays"
    );
}

/// Scribbles over every page but the first of a database file.
fn damage(db: &Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .expect("open");
    let len = file.metadata().expect("size").len();
    let mut at = 4096;
    while at < len {
        file.write_all_at(&[0xA5; 4096], at).expect("scribble");
        at += 4096;
    }
}

/// Starts the binary on `db` and expects it to refuse: exit status 1 and one line.
fn refused_start(db: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_messenger"))
        .env("MESSENGER_ADDR", "127.0.0.1:0")
        .env("MESSENGER_DATABASE", db)
        .env("RUST_LOG", "error")
        .output()
        .expect("ran");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

/// A database made, used and stopped cleanly (everything in the main file).
async fn used_database(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("messenger.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = Killed(start_server(port, &db));
    wait_up(&http, &base).await;
    let token = guest_token(&http, &base).await;
    join(&http, &base, &token, LOBBY).await;
    let mut ws = socket(port, &token).await;
    frame(&mut ws).await;
    for i in 0..50 {
        send_acked(&mut ws, LOBBY, &format!("m{i}"), "a message").await;
    }
    drop(ws);
    stop(&mut server.0);
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let db = used_database(dir.path()).await;
    damage(&db);
    let said = refused_start(&db);
    assert!(said.contains(&db.display().to_string()), "{said}");
    assert!(said.contains("damaged"), "{said}");
}

/// Makes a file immutable (even for root) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(path: &Path) -> Self {
        let done = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("chattr runs");
        // The tests run as root (here and in CI): file modes do not stop root, this does.
        assert!(done.success(), "chattr +i (the tests need root)");
        Self(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_refused_at_start_with_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let db = used_database(dir.path()).await;
    let _locked = Immutable::new(&db);
    let said = refused_start(&db);
    assert!(said.contains(&db.display().to_string()), "{said}");
    assert!(said.contains("read-only"), "{said}");
    assert!(said.contains("write access"), "{said}");
}

/// A panic in the publisher or the writer ends the process at once, loudly (status 70),
/// rather than leaving a node that takes sends and never answers. The message in hand was
/// committed before the panic: resent after the restart with its id, it gets its ack, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_thread_that_panics_ends_the_process_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("messenger.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let faults = [("MESSENGER_FAULTS", "1")];
    let mut running = Killed(server(port, &db, &faults, None));
    wait_up(&http, &base).await;
    let token = guest_token(&http, &base).await;
    join(&http, &base, &token, LOBBY).await;
    let mut seqs = Vec::new();
    for (id, marker) in [
        ("publisher", "fault:panic-publisher"),
        ("writer", "fault:panic-writer"),
    ] {
        let mut ws = socket(port, &token).await;
        frame(&mut ws).await;
        seqs.push(send_acked(&mut ws, LOBBY, &format!("before-{id}"), "fine").await);
        send(
            &mut ws,
            json!({ "t": "send", "conv": LOBBY, "client_id": id, "body": marker }),
        )
        .await;
        let status = exited(&mut running.0);
        assert_eq!(status.code(), Some(70), "{marker}: {status}");
        running.0 = server(port, &db, &faults, None);
        wait_up(&http, &base).await;
        let mut ws = socket(port, &token).await;
        frame(&mut ws).await;
        // Resent as a client would after reconnecting; the faults stay armed, but this
        // one is stored already, so nothing is published again.
        seqs.push(send_acked(&mut ws, LOBBY, id, marker).await);
        let again = send_acked(&mut ws, LOBBY, id, marker).await;
        assert_eq!(again, *seqs.last().expect("a seq"), "stored once");
    }
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + 4).collect::<Vec<_>>(),
        "gap-free, each once"
    );
}

/// SIGTERM in the middle of a burst: every sending client gets the close frame 1001, not a
/// reset (the server reads what they sent until their answer, then closes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_stop_every_sending_client_gets_going_away() {
    const CLIENTS: usize = 20;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("messenger.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = Killed(start_server(port, &db));
    wait_up(&http, &base).await;
    let (sending, mut started) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let token = guest_token(&http, &base).await;
        join(&http, &base, &token, LOBBY).await;
        let ws = socket(port, &token).await;
        let sending = sending.clone();
        clients.push(tokio::spawn(async move {
            use futures::SinkExt;
            let (mut sink, mut stream) = ws.split();
            let writer = tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    n += 1;
                    let f = json!({ "t": "send", "conv": LOBBY, "client_id": format!("c{c}-{n}"), "body": "burst" });
                    if sink.send(Message::text(f.to_string())).await.is_err() {
                        return;
                    }
                    if n == 50 {
                        let _ = sending.send(()).await;
                    }
                }
            });
            let mut code = None;
            while let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_secs(20), stream.next()).await
            {
                match msg {
                    Ok(Message::Close(frame)) => {
                        code = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            writer.abort();
            code
        }));
    }
    for _ in 0..CLIENTS {
        started.recv().await.expect("every client sending");
    }
    stop(&mut server.0);
    let mut codes = Vec::new();
    for c in clients {
        codes.push(c.await.expect("client"));
    }
    assert_eq!(
        codes,
        vec![Some(close::GOING_AWAY); CLIENTS],
        "every client got 1001"
    );
}

/// Copies the database and its WAL while the server is frozen (SIGSTOP: what the disk holds
/// at that instant, as a crash would leave it), then lets it go on.
fn crash_image(server: &std::process::Child, db: &Path, into: &Path) -> std::path::PathBuf {
    signal(server, "STOP");
    let copy = into.join("image.db");
    let copied = std::fs::copy(db, &copy).and_then(|_| {
        let wal = db.with_extension("db-wal");
        if wal.exists() {
            std::fs::copy(&wal, into.join("image.db-wal"))?;
        }
        Ok(())
    });
    signal(server, "CONT");
    copied.expect("copied");
    copy
}

/// Crash images taken at random instants under load hold every message acknowledged
/// before each was taken, with the number its ack gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_image_holds_every_message_acknowledged_before_it() {
    const SENDERS: usize = 4;
    const IMAGES: usize = 8;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("messenger.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let server = Killed(start_server(port, &db));
    wait_up(&http, &base).await;
    let stop_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks: Vec<Acks> = (0..SENDERS).map(|_| Acks::default()).collect();
    let mut tasks = Vec::new();
    for (i, a) in acks.iter().enumerate() {
        let token = guest_token(&http, &base).await;
        join(&http, &base, &token, LOBBY).await;
        tasks.push(tokio::spawn(sender(
            base.clone(),
            token,
            LOBBY,
            i,
            a.clone(),
            stop_all.clone(),
        )));
    }
    let mut checked = 0;
    for image in 0..IMAGES {
        // A different amount of traffic before each image: the instants fall anywhere in
        // the commit cycle.
        progress(&acks, 37 + (image * 71) % 250).await;
        let before: HashMap<String, i64> = acks
            .iter()
            .flat_map(|a| a.lock().expect("lock").clone())
            .collect();
        let into = tempfile::tempdir().expect("image dir");
        let copy = crash_image(&server.0, &db, into.path());
        let conn = rusqlite::Connection::open(&copy).expect("the image opens");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok", "image {image}");
        let mut stmt = conn
            .prepare("SELECT client_id, seq FROM messages WHERE conversation_id = ?")
            .expect("select");
        let stored: HashMap<String, i64> = stmt
            .query_map([LOBBY], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        for (client_id, seq) in &before {
            assert_eq!(
                stored.get(client_id),
                Some(seq),
                "image {image}: {client_id} was acknowledged before the image"
            );
        }
        checked += before.len();
    }
    stop_all.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    assert!(
        checked > IMAGES * 37,
        "enough acknowledged messages checked ({checked})"
    );
}
