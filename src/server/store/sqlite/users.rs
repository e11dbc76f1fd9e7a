//! Users: accounts, guests and bots share one table.

use super::{SqliteStore, UserRecord};
use crate::server::store::{now_ms, CreateUser, Result, UserRow, UserStore};
use async_trait::async_trait;

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: Option<&str>,
        is_guest: bool,
    ) -> Result<CreateUser> {
        let now = now_ms();
        // In a transaction whose commit is checked: an autocommit INSERT ... RETURNING hands
        // its row over before it commits, and a commit that then fails (a full disk) went
        // unreported.
        let mut tx = self.begin_write().await?;
        let created = sqlx::query_as!(
            UserRecord,
            r#"INSERT INTO users (username, display_name, password_hash, is_guest, created_at)
               VALUES (?, ?, ?, ?, ?)
               RETURNING id AS "id!", username, display_name,
                   is_guest AS "is_guest: bool", is_bot AS "is_bot: bool""#,
            username,
            display_name,
            password_hash,
            is_guest,
            now,
        )
        .fetch_one(&mut *tx)
        .await;
        match created {
            Ok(user) => {
                tx.commit().await?;
                Ok(CreateUser::Created(user.into()))
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(CreateUser::Taken),
            Err(e) => Err(e.into()),
        }
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query!(
            r#"SELECT id AS "id!", username, display_name, is_guest AS "is_guest: bool",
                   is_bot AS "is_bot: bool", password_hash
               FROM users WHERE username = ? AND deleted_at IS NULL"#,
            username,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| UserRow {
            summary: UserRecord {
                id: r.id,
                username: r.username,
                display_name: r.display_name,
                is_guest: r.is_guest,
                is_bot: r.is_bot,
            }
            .into(),
            password_hash: r.password_hash,
        }))
    }

    async fn idle_guests(&self, cutoff: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT u.id AS "id!" FROM users u
               WHERE u.is_guest = 1 AND u.is_bot = 0 AND u.deleted_at IS NULL
                 AND u.created_at < ?1
                 AND NOT EXISTS (
                     SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
                       AND min(s.idle_expires_at, s.absolute_expires_at) > ?1)
               LIMIT ?2"#,
            cutoff,
            limit
        )
        .fetch_all(self.pool())
        .await?)
    }
}
