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
        "UPDATE messages SET sealed = (SELECT sealed FROM messages WHERE conversation_id = ?1 AND seq = ?3)
         WHERE conversation_id = ?1 AND seq = ?2",
    )
    .bind(conv)
    .bind(first)
    .bind(second)
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
