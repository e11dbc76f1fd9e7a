//! Users on PostgreSQL: accounts, guests and bots share one table. Usernames are unique
//! whatever their case (an index on `lower(username)`), so lookups compare lowered names.

use super::PgStore;
use crate::protocol::UserSummary;
use crate::server::store::{now_ms, CreateUser, Result, UserRow, UserStore};
use async_trait::async_trait;

/// A user as the queries read one (`id, username, display_name, is_guest, is_bot`).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UserRecord {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub is_guest: bool,
    pub is_bot: bool,
}

impl From<UserRecord> for UserSummary {
    fn from(r: UserRecord) -> Self {
        Self {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            is_guest: r.is_guest,
            is_bot: r.is_bot,
        }
    }
}

/// A user with the password hash authentication checks.
#[derive(Debug, sqlx::FromRow)]
struct UserWithHash {
    #[sqlx(flatten)]
    user: UserRecord,
    password_hash: Option<String>,
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: Option<&str>,
        is_guest: bool,
    ) -> Result<CreateUser> {
        let now = now_ms();
        // A name taken in any case conflicts with the unique index on lower(username): no
        // row comes back (Taken). One autocommit statement: sqlx reads PostgreSQL's answer
        // to its end, past the commit, so a commit that fails is an error here.
        let created: Option<UserRecord> = sqlx::query_as(
            "INSERT INTO users (username, display_name, password_hash, is_guest, created_at)
             VALUES ($1::text, $2::text, $3::text, $4::boolean, $5::bigint)
             ON CONFLICT DO NOTHING
             RETURNING id, username, display_name, is_guest, is_bot",
        )
        .bind(username)
        .bind(display_name)
        .bind(password_hash)
        .bind(is_guest)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(match created {
            Some(user) => CreateUser::Created(user.into()),
            None => CreateUser::Taken,
        })
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>> {
        let row: Option<UserWithHash> = sqlx::query_as(
            "SELECT id, username, display_name, is_guest, is_bot, password_hash
             FROM users WHERE lower(username) = lower($1::text) AND deleted_at IS NULL",
        )
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| UserRow {
            summary: r.user.into(),
            password_hash: r.password_hash,
        }))
    }

    async fn idle_guests(&self, cutoff: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT u.id FROM users u
             WHERE u.is_guest AND NOT u.is_bot AND u.deleted_at IS NULL
               AND u.created_at < $1::bigint
               AND NOT EXISTS (
                   SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
                     AND LEAST(s.idle_expires_at, s.absolute_expires_at) > $1::bigint)
             LIMIT $2::bigint",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
