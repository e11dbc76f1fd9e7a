//! Sessions on PostgreSQL: stored by the SHA-256 of their token, with their idle and
//! absolute ends.

use super::{users::UserRecord, PgStore};
use crate::server::store::{now_ms, Result, SessionRow, SessionStore, StoreError};
use async_trait::async_trait;

/// A session joined with its user, as the queries read it.
#[derive(Debug, sqlx::FromRow)]
struct SessionRecord {
    sid: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    revoked_at: Option<i64>,
    #[sqlx(flatten)]
    user: UserRecord,
}

impl From<SessionRecord> for SessionRow {
    fn from(r: SessionRecord) -> Self {
        Self {
            id: r.sid,
            user: r.user.into(),
            idle_expires_at: r.idle_expires_at,
            absolute_expires_at: r.absolute_expires_at,
            revoked: r.revoked_at.is_some(),
        }
    }
}

/// The columns of [`SessionRecord`], from `sessions s JOIN users u`.
const SESSION_COLUMNS: &str = "s.id AS sid, s.idle_expires_at, s.absolute_expires_at, \
     s.revoked_at, u.id, u.username, u.display_name, u.is_guest, u.is_bot";

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &[u8],
        idle_expires_at: i64,
        absolute_expires_at: i64,
    ) -> Result<SessionRow> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sessions
                 (token_hash, user_id, created_at, idle_expires_at, absolute_expires_at)
             VALUES ($1::bytea, $2::bigint, $3::bigint, $4::bigint, $5::bigint) RETURNING id",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now)
        .bind(idle_expires_at)
        .bind(absolute_expires_at)
        .fetch_one(self.pool())
        .await?;
        self.session_by_id(id).await?.ok_or_else(|| {
            StoreError::from(Box::<dyn std::error::Error + Send + Sync>::from(
                "the session just created is missing",
            ))
        })
    }

    async fn session_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let row: Option<SessionRecord> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1::bytea"
        ))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(SessionRow::from))
    }

    async fn session_by_id(&self, id: i64) -> Result<Option<SessionRow>> {
        let row: Option<SessionRecord> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1::bigint"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(SessionRow::from))
    }

    async fn touch_session(&self, id: i64, idle_expires_at: i64) -> Result<()> {
        let now = now_ms();
        // One statement: concurrent touches from several nodes each move the end forward
        // from the row as it is, never backwards.
        sqlx::query(
            "UPDATE sessions
             SET idle_expires_at = LEAST(GREATEST(idle_expires_at, $1::bigint),
                                         absolute_expires_at),
                 last_seen_at = $2::bigint
             WHERE id = $3::bigint AND revoked_at IS NULL",
        )
        .bind(idle_expires_at)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn revoke_session(&self, id: i64) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1::bigint
             WHERE id = $2::bigint AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn revoke_other_sessions(&self, user: i64, keep: i64) -> Result<Vec<i64>> {
        let now = now_ms();
        Ok(sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1::bigint
             WHERE user_id = $2::bigint AND id <> $3::bigint AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(now)
        .bind(user)
        .bind(keep)
        .fetch_all(self.pool())
        .await?)
    }

    async fn delete_dead_sessions(&self, now: i64) -> Result<u64> {
        let day = 24 * 3600 * 1000;
        let before = now - day;
        let res = sqlx::query(
            "DELETE FROM sessions
             WHERE LEAST(idle_expires_at, absolute_expires_at,
                         COALESCE(revoked_at, absolute_expires_at)) < $1::bigint",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected())
    }
}
