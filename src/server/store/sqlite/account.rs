//! Account security and data protection on SQLite (`store::account`).

use super::SqliteStore;
use crate::server::store::account::{AccountRow, AccountStore, Deleted, Retained, SessionInfo};
use crate::server::store::Result;
use async_trait::async_trait;

/// The name a deleted account goes by in the conversations that keep its tombstones.
pub const DELETED_NAME: &str = "Deleted user";

#[async_trait]
impl AccountStore for SqliteStore {
    async fn password_hash(&self, user: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar!(
            "SELECT password_hash FROM users
             WHERE id = ? AND deleted_at IS NULL AND is_guest = 0 AND is_bot = 0",
            user
        )
        .fetch_optional(self.pool())
        .await?
        .flatten())
    }

    async fn set_password_hash(&self, user: i64, hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query!(
            "UPDATE users SET password_hash = ? WHERE id = ? AND deleted_at IS NULL",
            hash,
            user
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn is_admin(&self, user: i64) -> Result<bool> {
        Ok(sqlx::query_scalar!(
            r#"SELECT is_admin AS "admin: bool" FROM users
               WHERE id = ? AND deleted_at IS NULL AND is_guest = 0 AND is_bot = 0"#,
            user
        )
        .fetch_optional(self.pool())
        .await?
        .unwrap_or(false))
    }

    async fn set_admin(&self, username: &str, admin: bool) -> Result<Option<bool>> {
        let mut tx = self.begin_write().await?;
        let found = sqlx::query!(
            r#"SELECT id AS "id!", is_guest AS "guest: bool", is_bot AS "bot: bool" FROM users
               WHERE username = ? AND deleted_at IS NULL"#,
            username
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = found else {
            tx.rollback().await?;
            return Ok(None);
        };
        if user.guest || user.bot {
            tx.rollback().await?;
            return Ok(Some(false));
        }
        sqlx::query!("UPDATE users SET is_admin = ? WHERE id = ?", admin, user.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    async fn admins(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar!(
            "SELECT username FROM users WHERE is_admin = 1 AND deleted_at IS NULL ORDER BY username"
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn bot_replies_today(&self, day: i64) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COALESCE(SUM(replies), 0) AS "n!: i64" FROM bot_usage WHERE day = ?"#,
            day
        )
        .fetch_one(self.pool())
        .await?)
    }

    async fn is_disabled(&self, user: i64) -> Result<bool> {
        Ok(sqlx::query_scalar!(
            r#"SELECT disabled_at IS NOT NULL AS "d!: bool" FROM users WHERE id = ?"#,
            user
        )
        .fetch_optional(self.pool())
        .await?
        .unwrap_or(false))
    }

    async fn set_disabled(&self, user: i64, disabled: bool, now: i64) -> Result<Option<Vec<i64>>> {
        let mut tx = self.begin_write().await?;
        let at = disabled.then_some(now);
        let n = sqlx::query!(
            "UPDATE users SET disabled_at = ? WHERE id = ? AND deleted_at IS NULL AND is_bot = 0",
            at,
            user
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let ended = if disabled {
            sqlx::query_scalar!(
                r#"UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL
                   RETURNING id AS "id!""#,
                now,
                user
            )
            .fetch_all(&mut *tx)
            .await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok(Some(ended))
    }

    async fn find_accounts(&self, search: &str, limit: i64) -> Result<Vec<AccountRow>> {
        let now = crate::server::store::now_ms();
        let pattern = format!(
            "%{}%",
            search
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        Ok(sqlx::query_as!(
            AccountRow,
            r#"SELECT u.id AS "id!", u.username, u.display_name, u.is_guest AS "is_guest: bool",
                   u.is_admin AS "is_admin: bool", u.disabled_at IS NOT NULL AS "disabled!: bool",
                   u.created_at,
                   (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
                      AND s.idle_expires_at > ?2 AND s.absolute_expires_at > ?2) AS "sessions!: i64"
               FROM users u
               WHERE u.deleted_at IS NULL AND u.is_bot = 0
                 AND (u.username LIKE ?1 ESCAPE '\' OR u.display_name LIKE ?1 ESCAPE '\')
               ORDER BY u.username LIMIT ?3"#,
            pattern,
            now,
            limit
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn note_reauth(&self, session: i64, now: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query!(
            "UPDATE sessions SET reauth_at = ? WHERE id = ?",
            now,
            session
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reauth_at(&self, session: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar!("SELECT reauth_at FROM sessions WHERE id = ?", session)
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }

    async fn describe_session(&self, session: i64, device: &str, address: &str) -> Result<()> {
        let now = crate::server::store::now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query!(
            "UPDATE sessions SET device = ?, address = ?, last_seen_at = ? WHERE id = ?",
            device,
            address,
            now,
            session
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn live_sessions(&self, user: i64, now: i64) -> Result<Vec<SessionInfo>> {
        Ok(sqlx::query_as!(
            SessionInfo,
            r#"SELECT id AS "id!", device, address, created_at,
                   COALESCE(last_seen_at, created_at) AS "last_seen_at!: i64"
               FROM sessions
               WHERE user_id = ?1 AND revoked_at IS NULL
                 AND idle_expires_at > ?2 AND absolute_expires_at > ?2
               ORDER BY COALESCE(last_seen_at, created_at) DESC, id DESC"#,
            user,
            now
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn revoke_own_session(&self, user: i64, session: i64) -> Result<bool> {
        let now = crate::server::store::now_ms();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query!(
            "UPDATE sessions SET revoked_at = ?1
             WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
            now,
            session,
            user
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    async fn delete_account(&self, user: i64, now: i64) -> Result<Option<Deleted>> {
        let mut tx = self.begin_write().await?;
        let live = sqlx::query_scalar!(
            r#"SELECT id AS "id!" FROM users WHERE id = ? AND is_bot = 0 AND deleted_at IS NULL"#,
            user
        )
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let told = sqlx::query_scalar!(
            r#"SELECT owner_id AS "owner!" FROM contacts WHERE contact_id = ?"#,
            user
        )
        .fetch_all(&mut *tx)
        .await?;
        let sessions = sqlx::query_scalar!(
            r#"DELETE FROM sessions WHERE user_id = ? RETURNING id AS "id!""#,
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
        sqlx::query!("DELETE FROM bot_usage WHERE user_id = ?", user)
            .execute(&mut *tx)
            .await?;
        // The row stays, for the username (never to be taken again) and for the messages
        // others keep; everything it said about the person goes.
        sqlx::query!(
            "UPDATE users SET display_name = ?, password_hash = NULL, personal_message = '',
                 status = 'offline', is_admin = 0, deleted_at = ? WHERE id = ?",
            DELETED_NAME,
            now,
            user
        )
        .execute(&mut *tx)
        .await?;
        let wrote_in = sqlx::query_scalar!(
            r#"SELECT c.id AS "id!" FROM conversations c
               WHERE EXISTS (SELECT 1 FROM messages m
                             WHERE m.conversation_id = c.id AND m.sender_id = ?1
                               AND m.kind IN ('text', 'nudge', 'file'))"#,
            user
        )
        .fetch_all(&mut *tx)
        .await?;
        if !wrote_in.is_empty() {
            sqlx::query!(
                "INSERT OR IGNORE INTO erasures (user_id, started_at) VALUES (?, ?)",
                user,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        // A guest's name was never theirs to keep: without a message left to name a
        // sender, the row goes too.
        sqlx::query!(
            "DELETE FROM users WHERE id = ?1 AND is_guest = 1
             AND NOT EXISTS (SELECT 1 FROM messages WHERE sender_id = ?1)",
            user
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Deleted {
            told,
            wrote_in,
            sessions,
        }))
    }

    async fn erase_some(&self, conv: i64, user: i64, limit: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query!(
            "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
             WHERE conversation_id = ?1 AND seq IN (
                 SELECT seq FROM messages
                 WHERE conversation_id = ?1 AND sender_id = ?2 AND kind IN ('text', 'nudge', 'file')
                 LIMIT ?3)",
            conv,
            user,
            limit
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn unfinished_erasures(&self) -> Result<Vec<(i64, Vec<i64>)>> {
        let users = sqlx::query_scalar!(r#"SELECT user_id AS "user!" FROM erasures"#)
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let convs = sqlx::query_scalar!(
                r#"SELECT c.id AS "id!" FROM conversations c
                   WHERE EXISTS (SELECT 1 FROM messages m
                                 WHERE m.conversation_id = c.id AND m.sender_id = ?1
                                   AND m.kind IN ('text', 'nudge', 'file'))"#,
                user
            )
            .fetch_all(self.pool())
            .await?;
            out.push((user, convs));
        }
        Ok(out)
    }

    async fn finish_erasure(&self, user: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query!("DELETE FROM erasures WHERE user_id = ?", user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_of(
        &self,
        user: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<crate::server::store::audit::Entry>> {
        Ok(sqlx::query_as!(
            crate::server::store::audit::Entry,
            r#"SELECT id AS "id!: i64", at, event, user_id AS "user: i64", actor, address, detail,
                   prev_hash, hash
               FROM audit_log WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?"#,
            user,
            after,
            limit,
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn retained(&self) -> Result<Vec<Retained>> {
        Ok(sqlx::query_as!(
            Retained,
            r#"SELECT id AS "conv!", retention_ms, expired_before FROM conversations c
               WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)
               ORDER BY id"#
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn set_retention(&self, conv: i64, retention_ms: Option<i64>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query!(
            "UPDATE conversations SET retention_ms = ? WHERE id = ?",
            retention_ms,
            conv
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn expire_some(&self, conv: i64, cutoff: i64, limit: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let last = sqlx::query_scalar!(
            r#"SELECT COALESCE(MAX(seq), 0) AS "last!: i64" FROM messages WHERE conversation_id = ?"#,
            conv
        )
        .fetch_one(&mut *tx)
        .await?;
        // The oldest messages first, up to the first that has not expired.
        let upto = sqlx::query_scalar!(
            r#"SELECT MAX(seq) AS "upto: i64" FROM (
                   SELECT seq FROM messages
                   WHERE conversation_id = ?1 AND seq < ?2 AND created_at < ?3
                   ORDER BY seq LIMIT ?4)"#,
            conv,
            last,
            cutoff,
            limit
        )
        .fetch_one(&mut *tx)
        .await?;
        let mut n = 0;
        if let Some(upto) = upto {
            n += sqlx::query!(
                "DELETE FROM messages
                 WHERE conversation_id = ?1 AND seq <= ?2 AND created_at < ?3",
                conv,
                upto,
                cutoff
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let watermark = upto + 1;
            sqlx::query!(
                "UPDATE conversations SET expired_before = MAX(expired_before, ?) WHERE id = ?",
                watermark,
                conv
            )
            .execute(&mut *tx)
            .await?;
        }
        // The newest message keeps the conversation's numbering: emptied, not removed.
        if (n as i64) < limit {
            let emptied = sqlx::query!(
                "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
                 WHERE conversation_id = ?1 AND seq = ?2 AND created_at < ?3
                   AND kind != 'deleted'",
                conv,
                last,
                cutoff
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if emptied > 0 {
                n += emptied;
                sqlx::query!(
                    "UPDATE conversations SET expired_before = MAX(expired_before, ?) WHERE id = ?",
                    last,
                    conv
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(n)
    }
}
