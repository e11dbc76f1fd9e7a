//! Upgrading a database made by an earlier version keeps everything in it.

use messenger::server::store::sqlite::SqliteStore as Store;
use sqlx::{
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqlitePool},
};

async fn count(pool: &SqlitePool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn rebuilding_tables_for_group_conversations_loses_no_member_or_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The migrations as they were before group conversations.
    let before = dir.path().join("migrations-0006");
    std::fs::create_dir(&before).expect("folder");
    for entry in std::fs::read_dir("migrations").expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.ends_with(".sql") && name.as_str() < "0007" {
            std::fs::copy(&path, before.join(&name)).expect("copy");
        }
    }
    let file = dir.path().join("old.db");
    let options = SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePool::connect_with(options).await.expect("open");
    Migrator::new(before.as_path())
        .await
        .expect("migrations")
        .run(&pool)
        .await
        .expect("old schema");
    for sql in [
        "INSERT INTO users (id, username, display_name, created_at) VALUES (1, 'ann', 'Ann', 0), (2, 'bob', 'Bob', 0)",
        "INSERT INTO conversations (id, kind, dm_key, created_at) VALUES (10, 'dm', '1:2', 0)",
        "INSERT INTO members (conversation_id, user_id, joined_at, last_read) VALUES (10, 1, 0, 2), (10, 2, 0, 0), (1, 1, 0, 0)",
        "INSERT INTO messages (conversation_id, seq, sender_id, client_id, body, created_at, kind) VALUES
            (10, 1, 1, 'a', 'hello', 0, 'text'), (10, 2, 2, 'b', '', 0, 'nudge'), (1, 1, 1, 'c', 'lobby', 0, 'text')",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    pool.close().await;

    let store = Store::open(&file).await.expect("the upgrade runs");
    let pool = store.pool();
    assert_eq!(
        count(pool, "conversations").await,
        4,
        "three rooms and the DM"
    );
    assert_eq!(count(pool, "members").await, 3);
    assert_eq!(count(pool, "messages").await, 3);
    let read: i64 = sqlx::query_scalar(
        "SELECT last_read FROM members WHERE conversation_id = 10 AND user_id = 1",
    )
    .fetch_one(pool)
    .await
    .expect("read mark");
    assert_eq!(read, 2);
    let broken: Vec<(String, i64, String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(pool)
        .await
        .expect("check");
    assert!(broken.is_empty(), "{broken:?}");
    // Foreign keys are on again, and cascade: deleting the DM takes its rows with it.
    sqlx::query("DELETE FROM conversations WHERE id = 10")
        .execute(pool)
        .await
        .expect("delete");
    assert_eq!(count(pool, "members").await, 1);
    assert_eq!(count(pool, "messages").await, 1);
    // And the new kinds are accepted.
    sqlx::query("INSERT INTO conversations (kind, created_at) VALUES ('group', 0)")
        .execute(pool)
        .await
        .expect("a group");
}

#[tokio::test]
async fn the_idempotency_index_leads_with_the_client_id_and_serves_the_resend_lookup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("m.db")).await.expect("open");
    let pool = store.pool();
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM pragma_index_info('messages_idempotency') ORDER BY seqno",
    )
    .fetch_all(pool)
    .await
    .expect("index columns");
    assert_eq!(columns, ["client_id", "conversation_id", "sender_id"]);
    let unique: i64 = sqlx::query_scalar(
        "SELECT \"unique\" FROM pragma_index_list('messages') WHERE name = 'messages_idempotency'",
    )
    .fetch_one(pool)
    .await
    .expect("index list");
    assert_eq!(unique, 1);
    // The writer's lookup of a resent message (src/server/writer.rs) finds it through the index.
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT seq, created_at FROM messages
         WHERE client_id = ? AND conversation_id = ? AND sender_id = ?",
    )
    .bind("x")
    .bind(1)
    .bind(1)
    .fetch_all(pool)
    .await
    .expect("plan");
    assert!(
        plan.iter()
            .any(|(.., detail)| detail.contains("USING INDEX messages_idempotency")),
        "{plan:?}"
    );
}
