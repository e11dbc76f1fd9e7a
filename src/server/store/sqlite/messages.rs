//! Reading messages: replays after a sequence number, history pages before one. Messages
//! are written only by the log (`writer.rs`).

use super::SqliteStore;
use crate::protocol::{MessageKind, MessageView};
use crate::server::store::{MessageStore, Result};
use async_trait::async_trait;

/// A message joined with its sender's current name, as the queries read it.
#[derive(Debug, sqlx::FromRow)]
struct MessageRecord {
    conversation_id: i64,
    seq: i64,
    sender_id: i64,
    display_name: String,
    client_id: String,
    body: String,
    created_at: i64,
    kind: String,
    key_id: Option<String>,
    sealed: Option<Vec<u8>>,
}

impl MessageRecord {
    /// The message as clients see it: its body opened if it is sealed (a body that does not
    /// open is an error, never shown).
    fn view(self, vault: &crate::server::store::vault::Vault) -> Result<MessageView> {
        let body = match (&self.key_id, &self.sealed) {
            (Some(key_id), Some(sealed)) => {
                vault.open(self.conversation_id, self.seq, key_id, sealed)?
            }
            _ => self.body,
        };
        Ok(MessageView {
            conv: self.conversation_id,
            seq: self.seq,
            from: self.sender_id,
            from_name: self.display_name,
            client_id: self.client_id,
            body,
            at: self.created_at,
            kind: MessageKind::parse(&self.kind).unwrap_or_default(),
        })
    }
}

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
