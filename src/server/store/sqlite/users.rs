//! Users: accounts, guests and bots share one table.

use super::{SqliteStore, UserRecord};
use crate::protocol::GUEST_PREFIX;
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

    async fn delete_guest(&self, user: i64, now: i64) -> Result<Option<Vec<i64>>> {
        let mut tx = self.begin_write().await?;
        let guest = sqlx::query_scalar!(
            r#"SELECT id AS "id!" FROM users WHERE id = ? AND is_guest = 1 AND is_bot = 0
               AND deleted_at IS NULL"#,
            user
        )
        .fetch_optional(&mut *tx)
        .await?;
        if guest.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let told = sqlx::query_scalar!(
            r#"SELECT owner_id AS "owner!" FROM contacts WHERE contact_id = ?"#,
            user
        )
        .fetch_all(&mut *tx)
        .await?;
        // Conversations (not rooms) with no other person in them: gone with their messages.
        sqlx::query!(
            "DELETE FROM conversations
             WHERE kind != 'room'
               AND id IN (SELECT conversation_id FROM members WHERE user_id = ?1)
               AND NOT EXISTS (
                   SELECT 1 FROM members o JOIN users u ON u.id = o.user_id
                   WHERE o.conversation_id = conversations.id AND o.user_id != ?1
                     AND u.is_bot = 0 AND u.deleted_at IS NULL)",
            user
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM members WHERE user_id = ?", user)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "DELETE FROM contacts WHERE owner_id = ?1 OR contact_id = ?1",
            user
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM blocks WHERE blocker_id = ?1 OR blocked_id = ?1",
            user
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM contact_groups WHERE owner_id = ?", user)
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM pictures WHERE user_id = ?", user)
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM sessions WHERE user_id = ?", user)
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM bot_usage WHERE user_id = ?", user)
            .execute(&mut *tx)
            .await?;
        let tombstone = format!("{GUEST_PREFIX}gone-{user}");
        sqlx::query!(
            "UPDATE users SET display_name = 'Former guest', password_hash = NULL,
                 username = ?, deleted_at = ? WHERE id = ?",
            tombstone,
            now,
            user
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM users WHERE id = ?1
             AND NOT EXISTS (SELECT 1 FROM messages WHERE sender_id = ?1)",
            user
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(told))
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
