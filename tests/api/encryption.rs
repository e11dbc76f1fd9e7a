//! Encryption at rest: bodies sealed with AES-256-GCM, bound to their place, under keys
//! from a key ring outside the database.

use crate::delivery::ack_of;
use crate::helpers::spawn_app;
use messenger::server::{app::Application, config::Config};

/// A ciphertext moved to another row does not decrypt, and the history refuses rather
/// than show anything.
#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_open() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "one", "the first secret").await;
    let first = ack_of(&mut wa, "one").await;
    wa.send_msg(conv, "two", "the second secret").await;
    let second = ack_of(&mut wa, "two").await;
    let page = app.history(conv, &b).await;
    assert_eq!(page.messages.len(), 2, "both open in their places");
    // Swap the two ciphertexts, as someone with write access to the file might.
    let mut db = app.db().await;
    sqlx::query(
        "UPDATE messages SET sealed = (SELECT sealed FROM messages WHERE conversation_id = $1 AND seq = $2)
         WHERE conversation_id = $3 AND seq = $4",
    )
    .bind(conv)
    .bind(second)
    .bind(conv)
    .bind(first)
    .execute(&mut db)
    .await
    .expect("moved");
    let res = app
        .call(
            reqwest::Method::GET,
            &format!("/api/history?conv={conv}"),
            &b.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 500, "refused, not shown");
    let text = res.text().await.expect("body");
    assert!(!text.contains("secret"), "{text}");
}

/// A database holding messages sealed with a key the ring lacks is refused at start, naming
/// the key; nothing in it changes.
#[tokio::test]
async fn a_key_ring_without_a_key_in_use_is_refused_at_start() {
    crate::sqlite_only!();
    let mut app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "sealed", "under k1").await;
    ack_of(&mut wa, "sealed").await;
    drop(wa);
    app.stop().await;
    let database = app.dir.path().join("messenger.db");
    let ring_path = messenger::server::store::vault::default_ring_path(&database);
    let before = std::fs::read_to_string(&ring_path).expect("the ring was made");
    // A ring with another key only.
    let mut other = messenger::server::store::vault::RingFile::default();
    other.add_active();
    other.add_active();
    other.keys.remove("k1");
    other.write(&ring_path).expect("written");
    let refused = Application::build(Config::for_tests(database.clone()))
        .await
        .err()
        .expect("refused");
    let said = format!("{refused:#}");
    assert!(said.contains("key k1"), "{said}");
    assert!(said.contains("not in the key ring"), "{said}");
    // With its own ring back, it starts and reads the message.
    std::fs::write(&ring_path, before).expect("restored");
    let app = app.restarted(|_| {}).await;
    let page = app.history(conv, &b).await;
    assert_eq!(page.messages[0].body, "under k1");
}

/// No send rate in the way of the tests that send many messages at once.
fn fast(c: &mut Config) {
    c.sockets.send_rate_per_second = 100_000;
    c.sockets.frame_rate_per_second = 100_000;
}

/// Waits (bounded) until the server says every message is sealed under `key`, and checks
/// the database agrees.
async fn all_under(app: &crate::helpers::TestApp, key: &str) {
    let mut sealed = app.state.sealed_under.subscribe();
    let reached = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        sealed.wait_for(|k| k.as_deref() == Some(key)),
    )
    .await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "not all under {key} within the wait"
    );
    let rows = app.state.store.rows_per_key().await.expect("rows per key");
    assert!(
        rows.iter().all(|(k, _)| k.as_deref() == Some(key)),
        "{rows:?}"
    );
}

/// A rotation while messages flow: the new key seals new messages at once, the old ones
/// are re-encrypted in the background, the old key retires once unused, and every
/// acknowledged message still reads as it was sent.
#[tokio::test]
async fn a_rotation_under_load_loses_and_corrupts_nothing() {
    crate::sqlite_only!();
    use messenger::server::config::{Command, KeysCommand};
    let app = crate::helpers::spawn_app_with(fast).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    let mut sent = Vec::new();
    for i in 0..150 {
        let id = format!("before{i}");
        wa.send_msg(conv, &id, &format!("before rotation {i}"))
            .await;
        sent.push((id, format!("before rotation {i}")));
    }
    for (id, _) in &sent {
        ack_of(&mut wa, id).await;
    }
    let store_cfg = app.state.cfg.store.clone();
    let keys = |c| messenger::server::admin::run(&store_cfg, Command::Keys(c));
    keys(KeysCommand::Rotate).await.expect("rotated");
    // Retiring the old key is refused while it seals anything.
    let early = keys(KeysCommand::Retire { id: "k1".into() }).await;
    assert!(early.is_err(), "k1 still in use");
    // Messages keep flowing during the re-encryption.
    for i in 0..150 {
        let id = format!("during{i}");
        let body = format!("during rotation {i}");
        wa.send_msg(conv, &id, &body).await;
        ack_of(&mut wa, &id).await;
        sent.push((id, body));
    }
    all_under(&app, "k2").await;
    keys(KeysCommand::Retire { id: "k1".into() })
        .await
        .expect("retired once unused");
    // Every acknowledged message reads back as sent, after a restart without k1.
    let app = app.restarted(fast).await;
    let mut read = Vec::new();
    let mut before = None;
    loop {
        let path = match before {
            Some(s) => format!("/api/history?conv={conv}&before={s}"),
            None => format!("/api/history?conv={conv}"),
        };
        let res = app.call(reqwest::Method::GET, &path, &b.token, None).await;
        assert_eq!(res.status(), 200);
        let page: messenger::protocol::HistoryPage = res.json().await.expect("page");
        let first = page.messages.first().map(|m| m.seq);
        read.extend(page.messages.into_iter().map(|m| (m.client_id, m.body)));
        if !page.has_more {
            break;
        }
        before = first;
    }
    read.sort();
    sent.sort();
    assert_eq!(read, sent);
}

/// A database written plain (encryption off) is sealed in place once the server runs with
/// encryption on, and reads the same.
#[tokio::test]
async fn a_plain_database_is_sealed_in_place() {
    use messenger::server::config::Switch;
    let app = crate::helpers::spawn_app_with(|c| {
        fast(c);
        c.store.encryption = Switch::Off;
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    for i in 0..40 {
        let id = format!("p{i}");
        wa.send_msg(conv, &id, &format!("plain words {i}")).await;
        ack_of(&mut wa, &id).await;
    }
    drop(wa);
    let app = app.restarted(fast).await;
    all_under(&app, "k1").await;
    let mut db = app.db().await;
    let plain: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE body LIKE '%plain words%'")
            .fetch_one(&mut db)
            .await
            .expect("count");
    assert_eq!(plain, 0, "no plain body left");
    let page = app.history(conv, &b).await;
    assert!(page.messages.iter().any(|m| m.body == "plain words 39"));
}

/// A backup taken while messages flow holds every message acknowledged before it began,
/// and a server started on it (with the key ring) reads them.
#[tokio::test]
async fn a_backup_under_load_holds_everything_acknowledged_before_it() {
    crate::sqlite_only!();
    use messenger::server::config::Command;
    use std::sync::{Arc, Mutex};
    let app = crate::helpers::spawn_app_with(fast).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, wa, _wb) = app.dm_live(&a, &b).await;
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (count, mut counted) = tokio::sync::watch::channel(0usize);
    let sender = tokio::spawn({
        let (acked, stop) = (acked.clone(), stop.clone());
        let mut wa = wa;
        async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let id = format!("b{i}");
                wa.send_msg(conv, &id, &format!("backed up {i}")).await;
                let seq = ack_of(&mut wa, &id).await;
                let n = {
                    let mut acked = acked.lock().expect("lock");
                    acked.push((id, seq));
                    acked.len()
                };
                count.send_replace(n);
            }
        }
    });
    tokio::time::timeout(crate::helpers::WAIT, counted.wait_for(|n| *n >= 100))
        .await
        .expect("100 messages acknowledged")
        .expect("the sender runs");
    let before: Vec<(String, i64)> = acked.lock().expect("lock").clone();
    let database = app.dir.path().join("messenger.db");
    let store_cfg = app.state.cfg.store.clone();
    let copy_dir = tempfile::tempdir().expect("dir");
    let copy = copy_dir.path().join("messenger.db");
    messenger::server::admin::run(&store_cfg, Command::Backup { file: copy.clone() })
        .await
        .expect("backed up");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.await.expect("sender");
    assert!(
        acked.lock().expect("lock").len() > before.len(),
        "messages flowed during the backup"
    );
    // Restore: the copy and the key ring, in a new place.
    std::fs::copy(
        messenger::server::store::vault::default_ring_path(&database),
        messenger::server::store::vault::default_ring_path(&copy),
    )
    .expect("key ring");
    let restored = crate::helpers::spawn_app_in(copy_dir, fast).await;
    let mut db = restored.db().await;
    for (id, seq) in &before {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM messages WHERE conversation_id = $1 AND client_id = $2",
        )
        .bind(conv)
        .bind(id)
        .fetch_optional(&mut db)
        .await
        .expect("query");
        assert_eq!(found, Some(*seq), "{id} was acknowledged before the backup");
    }
    let page = restored.history(conv, &b).await;
    assert!(page
        .messages
        .iter()
        .all(|m| m.body.starts_with("backed up")));
}
