//! Reading messages: replays after a sequence number, history pages before one. Messages
//! are written only by the log (`writer.rs`).

use super::SqliteStore;
use crate::protocol::{MessageKind, MessageView};
use crate::server::store::{MessageRecord, MessageStore, Result};
use async_trait::async_trait;

#[async_trait]
impl MessageStore for SqliteStore {
    async fn last_seq(&self, conv: i64) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COALESCE(MAX(seq), 0) AS "last!: i64" FROM messages WHERE conversation_id = ?"#,
            conv
        )
        .fetch_one(self.pool())
        .await?)
    }

    async fn messages_after(&self, conv: i64, after: i64, limit: u32) -> Result<Vec<MessageView>> {
        let rows = sqlx::query_as!(
            MessageRecord,
            "SELECT m.conversation_id, m.seq, m.sender_id, u.display_name, m.client_id, m.body,
                 m.created_at, m.kind,
                 m.key_id, m.sealed
             FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.conversation_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?",
            conv,
            after,
            limit,
        )
        .fetch_all(self.pool())
        .await?;
        let vault = self.vault();
        rows.into_iter().map(|r| r.view(&vault)).collect()
    }

    async fn messages_before(
        &self,
        conv: i64,
        floor: i64,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<MessageView>, bool)> {
        let before = before.unwrap_or(i64::MAX);
        let fetch = i64::from(limit) + 1;
        let rows = sqlx::query_as!(
            MessageRecord,
            "SELECT m.conversation_id, m.seq, m.sender_id, u.display_name, m.client_id, m.body,
                 m.created_at, m.kind,
                 m.key_id, m.sealed
             FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.conversation_id = ? AND m.seq > ? AND m.seq < ?
             ORDER BY m.seq DESC LIMIT ?",
            conv,
            floor,
            before,
            fetch,
        )
        .fetch_all(self.pool())
        .await?;
        let has_more = rows.len() > limit as usize;
        let vault = self.vault();
        let mut messages = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| r.view(&vault))
            .collect::<Result<Vec<MessageView>>>()?;
        messages.reverse();
        Ok((messages, has_more))
    }

    async fn message_meta(&self, conv: i64, seq: i64) -> Result<Option<(i64, MessageKind)>> {
        let row = sqlx::query!(
            "SELECT sender_id, kind FROM messages WHERE conversation_id = ? AND seq = ?",
            conv,
            seq,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| (r.sender_id, MessageKind::parse(&r.kind).unwrap_or_default())))
    }
}

/// One row as re-encryption reads it.
struct RekeyRow {
    conversation_id: i64,
    seq: i64,
    body: String,
    key_id: Option<String>,
    sealed: Option<Vec<u8>>,
}

impl SqliteStore {
    /// Re-encrypts under the vault's active key the next rows after `after` (in key order),
    /// at most `limit` read; returns the last row looked at (None: the end was reached) and
    /// how many rows were sealed anew. Plain bodies (written before encryption was on) are
    /// sealed; bodies under another key are opened and sealed again. Each row is updated only
    /// if it is still as read (a deletion meanwhile wins), in one short write transaction.
    pub async fn rekey_batch(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> std::result::Result<(Option<(i64, i64)>, u64), crate::server::store::StoreError> {
        let vault = self.vault();
        let Some(active) = vault.active_key() else {
            return Ok((None, 0));
        };
        let rows = sqlx::query_as!(
            RekeyRow,
            r#"SELECT conversation_id, seq, body, key_id, sealed FROM messages
               WHERE (conversation_id, seq) > (?1, ?2)
               ORDER BY conversation_id, seq LIMIT ?3"#,
            after.0,
            after.1,
            limit,
        )
        .fetch_all(self.pool())
        .await?;
        let last = rows.last().map(|r| (r.conversation_id, r.seq));
        let mut todo = Vec::new();
        for r in rows {
            let plain = match (&r.key_id, &r.sealed) {
                (Some(k), Some(_)) if *k == active => continue,
                (Some(k), Some(sealed)) => vault.open(r.conversation_id, r.seq, k, sealed)?,
                _ if r.body.is_empty() => continue,
                _ => r.body.clone(),
            };
            if let Some(new) = vault.seal(r.conversation_id, r.seq, &plain) {
                todo.push((r, new));
            }
        }
        let mut done = 0;
        if !todo.is_empty() {
            let mut tx = self.begin_write().await?;
            for (r, new) in &todo {
                let changed = sqlx::query!(
                    "UPDATE messages SET body = '', key_id = ?1, sealed = ?2
                     WHERE conversation_id = ?3 AND seq = ?4
                       AND key_id IS ?5 AND sealed IS ?6 AND body = ?7",
                    new.key_id,
                    new.bytes,
                    r.conversation_id,
                    r.seq,
                    r.key_id,
                    r.sealed,
                    r.body,
                )
                .execute(&mut *tx)
                .await?;
                done += changed.rows_affected();
            }
            tx.commit().await?;
        }
        Ok((last, done))
    }

    /// How many messages each key seals (`None`: plain bodies that are not empty).
    pub async fn rows_per_key(
        &self,
    ) -> std::result::Result<Vec<(Option<String>, i64)>, crate::server::store::StoreError> {
        let rows = sqlx::query!(
            r#"SELECT key_id, COUNT(*) AS "n!: i64" FROM messages
               WHERE key_id IS NOT NULL OR body != ''
               GROUP BY key_id ORDER BY key_id"#
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| (r.key_id, r.n)).collect())
    }

    /// Forgets that the database used `key` (it seals no row any more).
    pub async fn forget_key(
        &self,
        key: &str,
    ) -> std::result::Result<(), crate::server::store::StoreError> {
        sqlx::query!("DELETE FROM keys_used WHERE key_id = ?", key)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
