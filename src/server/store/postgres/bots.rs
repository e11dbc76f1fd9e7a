//! The bots' records on PostgreSQL: their accounts, the conversations they are in, the
//! administrator's switch and the daily reply quotas.

use super::PgStore;
use crate::protocol::{ConversationKind, Status};
use crate::server::store::{now_ms, BotStore, Quota, Result};
use async_trait::async_trait;

/// A conversation kind as stored.
fn kind_of(s: &str) -> ConversationKind {
    match s {
        "dm" => ConversationKind::Dm,
        "group" => ConversationKind::Group,
        _ => ConversationKind::Room,
    }
}

#[async_trait]
impl BotStore for PgStore {
    async fn upsert_bot(
        &self,
        handle: &str,
        display_name: &str,
        personal_message: &str,
        status: Status,
    ) -> Result<Option<i64>> {
        let status = status.as_str();
        let now = now_ms();
        // The conflict is on the unique index on lower(username): a person with that name in
        // any case keeps it, and no row comes back.
        Ok(sqlx::query_scalar(
            "INSERT INTO users
                 (username, display_name, personal_message, status, is_bot, created_at)
             VALUES ($1::text, $2::text, $3::text, $4::text, TRUE, $5::bigint)
             ON CONFLICT ((lower(username))) DO UPDATE
             SET display_name = EXCLUDED.display_name,
                 personal_message = EXCLUDED.personal_message,
                 status = EXCLUDED.status
             WHERE users.is_bot
             RETURNING id",
        )
        .bind(handle)
        .bind(display_name)
        .bind(personal_message)
        .bind(status)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn bots_in(&self, conv: i64) -> Result<Option<(ConversationKind, Vec<i64>)>> {
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM conversations WHERE id = $1::bigint")
                .bind(conv)
                .fetch_optional(self.pool())
                .await?;
        let Some(kind) = kind else { return Ok(None) };
        let kind = kind_of(&kind);
        if kind == ConversationKind::Room {
            // Bots never join rooms.
            return Ok(Some((kind, Vec::new())));
        }
        let bots = sqlx::query_scalar(
            "SELECT m.user_id FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = $1::bigint AND u.is_bot
             ORDER BY m.joined_at, m.user_id",
        )
        .bind(conv)
        .fetch_all(self.pool())
        .await?;
        Ok(Some((kind, bots)))
    }

    async fn bot_conversations(&self) -> Result<Vec<(i64, ConversationKind, i64)>> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT m.conversation_id, c.kind, m.user_id
             FROM members m JOIN users u ON u.id = m.user_id
             JOIN conversations c ON c.id = m.conversation_id
             WHERE u.is_bot ORDER BY m.conversation_id, m.joined_at, m.user_id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(conv, kind, bot)| (conv, kind_of(&kind), bot))
            .collect())
    }

    async fn bots_enabled(&self) -> Result<bool> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'bots'")
                .fetch_optional(self.pool())
                .await?;
        Ok(value.as_deref() != Some("off"))
    }

    async fn set_bots_enabled(&self, on: bool) -> Result<()> {
        let value = if on { "on" } else { "off" };
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('bots', $1::text)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One transaction of two upserts, each with its limit in its WHERE: ON CONFLICT DO
    /// UPDATE locks the row and checks the latest committed count, so concurrent takers on
    /// any node queue on the user's row, then on the day's total, and each sees what the
    /// previous one left: a limit is never exceeded. Every taker locks its own user's row
    /// before the total's, so no two wait for each other in a circle.
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
        let mut tx = self.pool().begin().await?;
        let mine: Option<i64> = sqlx::query_scalar(
            "INSERT INTO bot_usage AS b (day, user_id, replies) VALUES ($1::bigint, $2::bigint, 1)
             ON CONFLICT (day, user_id) DO UPDATE SET replies = b.replies + 1
             WHERE b.replies < $3::bigint
             RETURNING b.replies",
        )
        .bind(day)
        .bind(user)
        .bind(i64::from(user_limit))
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
        let all = sqlx::query(
            "INSERT INTO bot_usage AS b (day, user_id, replies) VALUES ($1::bigint, 0, 1)
             ON CONFLICT (day, user_id) DO UPDATE SET replies = b.replies + 1
             WHERE b.replies < $2::bigint",
        )
        .bind(day)
        .bind(limit)
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
