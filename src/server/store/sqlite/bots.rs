//! The bots' records: their accounts, the conversations they are in, the administrator's
//! switch and the daily reply quotas.

use super::{kind_of, SqliteStore};
use crate::protocol::{ConversationKind, Status};
use crate::server::store::{now_ms, BotStore, Quota, Result};
use async_trait::async_trait;

#[async_trait]
impl BotStore for SqliteStore {
    async fn upsert_bot(
        &self,
        handle: &str,
        display_name: &str,
        personal_message: &str,
        status: Status,
    ) -> Result<Option<i64>> {
        let status = status.as_str();
        let now = now_ms();
        // In a transaction whose commit is checked: an autocommit INSERT ... RETURNING hands
        // its row over before it commits, and a commit that then fails (a full disk) went
        // unreported.
        let mut tx = self.begin_write().await?;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO users (username, display_name, personal_message, status, is_bot, created_at)
               VALUES (?1, ?2, ?3, ?4, 1, ?5)
               ON CONFLICT (username) DO UPDATE
               SET display_name = excluded.display_name, personal_message = excluded.personal_message,
                   status = excluded.status
               WHERE users.is_bot = 1
               RETURNING id AS "id!""#,
            handle,
            display_name,
            personal_message,
            status,
            now,
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn bots_in(&self, conv: i64) -> Result<Option<(ConversationKind, Vec<i64>)>> {
        let kind = sqlx::query_scalar!("SELECT kind FROM conversations WHERE id = ?", conv)
            .fetch_optional(self.pool())
            .await?;
        let Some(kind) = kind else { return Ok(None) };
        let kind = kind_of(&kind);
        if kind == ConversationKind::Room {
            // Bots never join rooms.
            return Ok(Some((kind, Vec::new())));
        }
        let bots = sqlx::query_scalar!(
            "SELECT m.user_id FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = ? AND u.is_bot = 1 ORDER BY m.joined_at, m.user_id",
            conv,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(Some((kind, bots)))
    }

    async fn bot_conversations(&self) -> Result<Vec<(i64, ConversationKind, i64)>> {
        let rows = sqlx::query!(
            "SELECT m.conversation_id, c.kind, m.user_id
             FROM members m JOIN users u ON u.id = m.user_id
             JOIN conversations c ON c.id = m.conversation_id
             WHERE u.is_bot = 1 ORDER BY m.conversation_id, m.joined_at, m.user_id"
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.conversation_id, kind_of(&r.kind), r.user_id))
            .collect())
    }

    async fn bots_enabled(&self) -> Result<bool> {
        let value = sqlx::query_scalar!("SELECT value FROM settings WHERE key = 'bots'")
            .fetch_optional(self.pool())
            .await?;
        Ok(value.as_deref() != Some("off"))
    }

    async fn set_bots_enabled(&self, on: bool) -> Result<()> {
        let value = if on { "on" } else { "off" };
        sqlx::query!(
            "INSERT INTO settings (key, value) VALUES ('bots', ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            value,
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One transaction whose first statement writes, so concurrent takers queue on SQLite's
    /// write lock and each sees the count the previous one left: a limit is never exceeded.
    async fn take_bot_quota(
        &self,
        day: i64,
        user: i64,
        user_limit: u32,
        global_limit: u32,
        first_replies: u32,
    ) -> Result<Quota> {
        if user_limit == 0 {
            return Ok(Quota::UserSpent);
        }
        let mut tx = self.begin_write().await?;
        let mine = sqlx::query_scalar!(
            r#"INSERT INTO bot_usage (day, user_id, replies) VALUES (?1, ?2, 1)
               ON CONFLICT (day, user_id) DO UPDATE SET replies = replies + 1
               WHERE replies < ?3
               RETURNING replies AS "replies: i64""#,
            day,
            user,
            user_limit,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mine) = mine else {
            tx.rollback().await?;
            return Ok(Quota::UserSpent);
        };
        // User 0 is no one: its row holds the total. A user's first replies of the day are
        // counted in it whatever it says.
        let limit = if mine <= i64::from(first_replies) {
            i64::MAX
        } else {
            i64::from(global_limit)
        };
        let all = sqlx::query!(
            "INSERT INTO bot_usage (day, user_id, replies) VALUES (?1, 0, 1)
             ON CONFLICT (day, user_id) DO UPDATE SET replies = replies + 1
             WHERE replies < ?2",
            day,
            limit,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if all == 0 || (limit != i64::MAX && global_limit == 0) {
            tx.rollback().await?;
            return Ok(Quota::AllSpent);
        }
        tx.commit().await?;
        Ok(Quota::Granted)
    }
}
