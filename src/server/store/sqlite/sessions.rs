//! Sessions: stored by the SHA-256 of their token, with their idle and absolute ends.

use super::{SqliteStore, UserRecord};
use crate::server::store::{now_ms, Result, SessionRow, SessionStore, StoreError};
use async_trait::async_trait;

/// A session joined with its user, as the queries read it.
#[derive(Debug, sqlx::FromRow)]
struct SessionRecord {
    sid: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    revoked_at: Option<i64>,
    id: i64,
    username: String,
    display_name: String,
    is_guest: bool,
    is_bot: bool,
}

impl From<SessionRecord> for SessionRow {
    fn from(r: SessionRecord) -> Self {
        Self {
            id: r.sid,
            user: UserRecord {
                id: r.id,
                username: r.username,
                display_name: r.display_name,
                is_guest: r.is_guest,
                is_bot: r.is_bot,
            }
            .into(),
            idle_expires_at: r.idle_expires_at,
            absolute_expires_at: r.absolute_expires_at,
            revoked: r.revoked_at.is_some(),
        }
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &[u8],
        idle_expires_at: i64,
        absolute_expires_at: i64,
    ) -> Result<SessionRow> {
        let now = now_ms();
        // In a transaction whose commit is checked: an autocommit INSERT ... RETURNING hands
        // its row over before it commits, and a commit that then fails (a full disk) went
        // unreported.
        let mut tx = self.begin_write().await?;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO sessions (token_hash, user_id, created_at, idle_expires_at, absolute_expires_at)
               VALUES (?, ?, ?, ?, ?) RETURNING id AS "id!""#,
            token_hash,
            user_id,
            now,
            idle_expires_at,
            absolute_expires_at,
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.session_by_id(id).await?.ok_or_else(|| {
            StoreError::from(Box::<dyn std::error::Error + Send + Sync>::from(
                "the session just created is missing",
            ))
        })
    }

    async fn session_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let row = sqlx::query_as!(
            SessionRecord,
            r#"SELECT s.id AS "sid!", s.idle_expires_at, s.absolute_expires_at, s.revoked_at,
                   u.id AS "id!", u.username, u.display_name, u.is_guest AS "is_guest: bool",
                   u.is_bot AS "is_bot: bool"
               FROM sessions s JOIN users u ON u.id = s.user_id
               WHERE s.token_hash = ?"#,
            token_hash,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(SessionRow::from))
    }

    async fn session_by_id(&self, id: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query_as!(
            SessionRecord,
            r#"SELECT s.id AS "sid!", s.idle_expires_at, s.absolute_expires_at, s.revoked_at,
                   u.id AS "id!", u.username, u.display_name, u.is_guest AS "is_guest: bool",
                   u.is_bot AS "is_bot: bool"
               FROM sessions s JOIN users u ON u.id = s.user_id
               WHERE s.id = ?"#,
            id,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(SessionRow::from))
    }

    async fn touch_session(&self, id: i64, idle_expires_at: i64) -> Result<()> {
        let now = now_ms();
        sqlx::query!(
            "UPDATE sessions SET idle_expires_at = MIN(MAX(idle_expires_at, ?), absolute_expires_at),
                 last_seen_at = ?
             WHERE id = ? AND revoked_at IS NULL",
            idle_expires_at,
            now,
            id,
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn revoke_session(&self, id: i64) -> Result<()> {
        let now = now_ms();
        sqlx::query!(
            "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            now,
            id,
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn revoke_other_sessions(&self, user: i64, keep: i64) -> Result<Vec<i64>> {
        let now = now_ms();
        Ok(sqlx::query_scalar!(
            r#"UPDATE sessions SET revoked_at = ?
               WHERE user_id = ? AND id != ? AND revoked_at IS NULL
               RETURNING id AS "id!""#,
            now,
            user,
            keep,
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn delete_dead_sessions(&self, now: i64) -> Result<u64> {
        let day = 24 * 3600 * 1000;
        let before = now - day;
        let res = sqlx::query!(
            "DELETE FROM sessions
             WHERE MIN(idle_expires_at, absolute_expires_at, COALESCE(revoked_at, absolute_expires_at)) < ?",
            before,
        )
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected())
    }
}
