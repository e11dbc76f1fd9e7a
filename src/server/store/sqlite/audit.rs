//! The audit log's entries (`store::audit`), appended one at a time in a write
//! transaction, so that each follows the last.

use super::{SqliteStore, BEGIN_WRITE};
use crate::server::store::audit::{AuditStore, Entry, NewEntry, GENESIS};
use crate::server::store::StoreError;
use async_trait::async_trait;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, entry: &NewEntry, at: i64) -> Result<Entry, StoreError> {
        let mut tx = self.pool().begin_with(BEGIN_WRITE).await?;
        let last = sqlx::query!(
            r#"SELECT id AS "id!: i64", hash FROM audit_log ORDER BY id DESC LIMIT 1"#
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (id, prev_hash) = match last {
            Some(r) => (r.id + 1, r.hash),
            None => (1, GENESIS.to_owned()),
        };
        let mut stored = Entry {
            id,
            at,
            event: entry.event.to_owned(),
            user: entry.user,
            actor: entry.actor.clone(),
            address: entry.address.clone(),
            detail: entry.detail.to_string(),
            prev_hash,
            hash: String::new(),
        };
        stored.hash = stored.computed_hash();
        sqlx::query!(
            "INSERT INTO audit_log (id, at, event, user_id, actor, address, detail, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            stored.id,
            stored.at,
            stored.event,
            stored.user,
            stored.actor,
            stored.address,
            stored.detail,
            stored.prev_hash,
            stored.hash,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn entries_before(&self, before: i64, limit: i64) -> Result<Vec<Entry>, StoreError> {
        Ok(sqlx::query_as!(
            Entry,
            r#"SELECT id AS "id!: i64", at, event, user_id AS "user: i64", actor, address, detail,
                   prev_hash, hash
               FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?"#,
            before,
            limit,
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn entries_after(&self, after: i64, limit: i64) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query_as!(
            Entry,
            r#"SELECT id AS "id!: i64", at, event, user_id AS "user: i64", actor, address, detail,
                   prev_hash, hash
               FROM audit_log WHERE id > ? ORDER BY id LIMIT ?"#,
            after,
            limit,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}
