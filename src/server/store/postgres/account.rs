//! Account security and data protection on PostgreSQL (`store::account`), and the upkeep of
//! encryption at rest: the key ring checked against the keys the database used, messages
//! sealed anew under the active key, keys forgotten once they seal nothing.

use super::PgStore;
use crate::server::store::account::{AccountRow, AccountStore, Deleted, Retained, SessionInfo};
use crate::server::store::audit::Entry;
use crate::server::store::sqlite::account::DELETED_NAME;
use crate::server::store::{now_ms, Result};
use async_trait::async_trait;
use sqlx::Acquire;

/// The kinds of message that hold what a person wrote (what erasure empties).
const WRITTEN: &str = "('text', 'nudge', 'file')";

#[async_trait]
impl AccountStore for PgStore {
    async fn password_hash(&self, user: i64) -> Result<Option<String>> {
        let hash: Option<Option<String>> = sqlx::query_scalar(
            "SELECT password_hash FROM users
             WHERE id = $1 AND deleted_at IS NULL AND NOT is_guest AND NOT is_bot",
        )
        .bind(user)
        .fetch_optional(self.pool())
        .await?;
        Ok(hash.flatten())
    }

    async fn set_password_hash(&self, user: i64, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(hash)
            .bind(user)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn is_admin(&self, user: i64) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT is_admin FROM users
             WHERE id = $1 AND deleted_at IS NULL AND NOT is_guest AND NOT is_bot",
        )
        .bind(user)
        .fetch_optional(self.pool())
        .await?
        .unwrap_or(false))
    }

    async fn set_admin(&self, username: &str, admin: bool) -> Result<Option<bool>> {
        let mut tx = self.pool().begin().await?;
        // Found (in any case, as usernames compare) and locked, then changed.
        let found: Option<(i64, bool, bool)> = sqlx::query_as(
            "SELECT id, is_guest, is_bot FROM users
             WHERE lower(username) = lower($1) AND deleted_at IS NULL
             FOR NO KEY UPDATE",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, guest, bot)) = found else {
            tx.rollback().await?;
            return Ok(None);
        };
        if guest || bot {
            tx.rollback().await?;
            return Ok(Some(false));
        }
        sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2")
            .bind(admin)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    async fn admins(&self) -> Result<Vec<String>> {
        // Usernames sort without regard to case (SQLite: COLLATE NOCASE).
        Ok(sqlx::query_scalar(
            "SELECT username FROM users WHERE is_admin AND deleted_at IS NULL
             ORDER BY lower(username)",
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn bot_replies_today(&self, day: i64) -> Result<i64> {
        // SUM of BIGINT is NUMERIC in PostgreSQL: cast back.
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(replies), 0)::bigint FROM bot_usage WHERE day = $1",
        )
        .bind(day)
        .fetch_one(self.pool())
        .await?)
    }

    async fn is_disabled(&self, user: i64) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT disabled_at IS NOT NULL FROM users WHERE id = $1")
                .bind(user)
                .fetch_optional(self.pool())
                .await?
                .unwrap_or(false),
        )
    }

    async fn set_disabled(&self, user: i64, disabled: bool, now: i64) -> Result<Option<Vec<i64>>> {
        let mut tx = self.pool().begin().await?;
        let at = disabled.then_some(now);
        let n = sqlx::query(
            "UPDATE users SET disabled_at = $1
             WHERE id = $2 AND deleted_at IS NULL AND NOT is_bot",
        )
        .bind(at)
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let ended = if disabled {
            sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL
                 RETURNING id",
            )
            .bind(now)
            .bind(user)
            .fetch_all(&mut *tx)
            .await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok(Some(ended))
    }

    async fn find_accounts(&self, search: &str, limit: i64) -> Result<Vec<AccountRow>> {
        let pattern = format!(
            "%{}%",
            search
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        // ILIKE: names match in any case, as SQLite's LIKE does.
        let rows: Vec<(i64, String, String, bool, bool, bool, i64, i64)> = sqlx::query_as(
            "SELECT u.id, u.username, u.display_name, u.is_guest, u.is_admin,
                 u.disabled_at IS NOT NULL, u.created_at,
                 (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
                    AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2)
             FROM users u
             WHERE u.deleted_at IS NULL AND NOT u.is_bot
               AND (u.username ILIKE $1 ESCAPE '\\' OR u.display_name ILIKE $1 ESCAPE '\\')
             ORDER BY lower(u.username) LIMIT $3",
        )
        .bind(pattern)
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    username,
                    display_name,
                    is_guest,
                    is_admin,
                    disabled,
                    created_at,
                    sessions,
                )| {
                    AccountRow {
                        id,
                        username,
                        display_name,
                        is_guest,
                        is_admin,
                        disabled,
                        created_at,
                        sessions,
                    }
                },
            )
            .collect())
    }

    async fn note_reauth(&self, session: i64, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET reauth_at = $1 WHERE id = $2")
            .bind(now)
            .bind(session)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn reauth_at(&self, session: i64) -> Result<Option<i64>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT reauth_at FROM sessions WHERE id = $1")
                .bind(session)
                .fetch_optional(self.pool())
                .await?;
        Ok(at.flatten())
    }

    async fn describe_session(&self, session: i64, device: &str, address: &str) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET device = $1, address = $2, last_seen_at = $3 WHERE id = $4",
        )
        .bind(device)
        .bind(address)
        .bind(now_ms())
        .bind(session)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn live_sessions(&self, user: i64, now: i64) -> Result<Vec<SessionInfo>> {
        let rows: Vec<(i64, Option<String>, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT id, device, address, created_at, COALESCE(last_seen_at, created_at)
             FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL
               AND idle_expires_at > $2 AND absolute_expires_at > $2
             ORDER BY COALESCE(last_seen_at, created_at) DESC, id DESC",
        )
        .bind(user)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, device, address, created_at, last_seen_at)| SessionInfo {
                    id,
                    device,
                    address,
                    created_at,
                    last_seen_at,
                },
            )
            .collect())
    }

    async fn revoke_own_session(&self, user: i64, session: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(session)
        .bind(user)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn delete_account(&self, user: i64, now: i64) -> Result<Option<Deleted>> {
        let mut tx = self.pool().begin().await?;
        // The account's row locked for the whole deletion: contact requests and admin
        // changes that lock it wait, and a second deletion finds it deleted. `NO KEY`: the
        // message log's inserts (which check the sender's row) are not held back.
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM users WHERE id = $1 AND NOT is_bot AND deleted_at IS NULL
             FOR NO KEY UPDATE",
        )
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let told: Vec<i64> =
            sqlx::query_scalar("SELECT owner_id FROM contacts WHERE contact_id = $1")
                .bind(user)
                .fetch_all(&mut *tx)
                .await?;
        let sessions: Vec<i64> =
            sqlx::query_scalar("DELETE FROM sessions WHERE user_id = $1 RETURNING id")
                .bind(user)
                .fetch_all(&mut *tx)
                .await?;
        // Conversations (not rooms) with no other person in them: gone with their messages.
        sqlx::query(
            "DELETE FROM conversations
             WHERE kind <> 'room'
               AND id IN (SELECT conversation_id FROM members WHERE user_id = $1)
               AND NOT EXISTS (
                   SELECT 1 FROM members o JOIN users u ON u.id = o.user_id
                   WHERE o.conversation_id = conversations.id AND o.user_id <> $1
                     AND NOT u.is_bot AND u.deleted_at IS NULL)",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM members WHERE user_id = $1",
            "DELETE FROM contacts WHERE owner_id = $1 OR contact_id = $1",
            "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
            "DELETE FROM contact_groups WHERE owner_id = $1",
            "DELETE FROM pictures WHERE user_id = $1",
            "DELETE FROM bot_usage WHERE user_id = $1",
        ] {
            sqlx::query(statement).bind(user).execute(&mut *tx).await?;
        }
        // The row stays, for the username (never to be taken again) and for the messages
        // others keep; everything it said about the person goes.
        sqlx::query(
            "UPDATE users SET display_name = $1, password_hash = NULL, personal_message = '',
                 status = 'offline', is_admin = FALSE, deleted_at = $2 WHERE id = $3",
        )
        .bind(DELETED_NAME)
        .bind(now)
        .bind(user)
        .execute(&mut *tx)
        .await?;
        let wrote_in: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT c.id FROM conversations c
             WHERE EXISTS (SELECT 1 FROM messages m
                           WHERE m.conversation_id = c.id AND m.sender_id = $1
                             AND m.kind IN {WRITTEN})
             ORDER BY c.id"
        ))
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        if !wrote_in.is_empty() {
            sqlx::query(
                "INSERT INTO erasures (user_id, started_at) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // A guest's name was never theirs to keep: without a message left to name a
        // sender, the row goes too. In a savepoint: a message of theirs that another node
        // commits meanwhile makes the delete fail its foreign key, and the row then stays,
        // as it does when a message names it.
        let mut guest = tx.begin().await?;
        let gone = sqlx::query(
            "DELETE FROM users WHERE id = $1 AND is_guest
             AND NOT EXISTS (SELECT 1 FROM messages WHERE sender_id = $1)",
        )
        .bind(user)
        .execute(&mut *guest)
        .await;
        match gone {
            Ok(_) => guest.commit().await?,
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                guest.rollback().await?
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(Some(Deleted {
            told,
            wrote_in,
            sessions,
        }))
    }

    async fn erase_some(&self, conv: i64, user: i64, limit: i64) -> Result<u64> {
        Ok(sqlx::query(&format!(
            "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
             WHERE conversation_id = $1 AND kind IN {WRITTEN} AND seq IN (
                 SELECT seq FROM messages
                 WHERE conversation_id = $1 AND sender_id = $2 AND kind IN {WRITTEN}
                 LIMIT $3)"
        ))
        .bind(conv)
        .bind(user)
        .bind(limit)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    async fn unfinished_erasures(&self) -> Result<Vec<(i64, Vec<i64>)>> {
        let users: Vec<i64> = sqlx::query_scalar("SELECT user_id FROM erasures")
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let convs: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT c.id FROM conversations c
                 WHERE EXISTS (SELECT 1 FROM messages m
                               WHERE m.conversation_id = c.id AND m.sender_id = $1
                                 AND m.kind IN {WRITTEN})
                 ORDER BY c.id"
            ))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
            out.push((user, convs));
        }
        Ok(out)
    }

    async fn finish_erasure(&self, user: i64) -> Result<()> {
        sqlx::query("DELETE FROM erasures WHERE user_id = $1")
            .bind(user)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn audit_of(&self, user: i64, after: i64, limit: i64) -> Result<Vec<Entry>> {
        type Row = (
            i64,
            i64,
            String,
            Option<i64>,
            String,
            Option<String>,
            String,
            String,
            String,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, event, user_id, actor, address, detail, prev_hash, hash
             FROM audit_log WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(user)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, event, user, actor, address, detail, prev_hash, hash)| Entry {
                    id,
                    at,
                    event,
                    user,
                    actor,
                    address,
                    detail,
                    prev_hash,
                    hash,
                },
            )
            .collect())
    }

    async fn retained(&self) -> Result<Vec<Retained>> {
        let rows: Vec<(i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT id, retention_ms, expired_before FROM conversations c
             WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)
             ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(conv, retention_ms, expired_before)| Retained {
                conv,
                retention_ms,
                expired_before,
            })
            .collect())
    }

    async fn set_retention(&self, conv: i64, retention_ms: Option<i64>) -> Result<bool> {
        let n = sqlx::query("UPDATE conversations SET retention_ms = $1 WHERE id = $2")
            .bind(retention_ms)
            .bind(conv)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn expire_some(&self, conv: i64, cutoff: i64, limit: i64) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        // The conversation's row locked first, as the message log locks it: no message
        // commits to it meanwhile, so `last` stays its newest message until the end.
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT last_seq FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(conv)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            tx.rollback().await?;
            return Ok(0);
        };
        // The oldest messages first, up to the first that has not expired.
        let upto: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM (
                 SELECT seq FROM messages
                 WHERE conversation_id = $1 AND seq < $2 AND created_at < $3
                 ORDER BY seq LIMIT $4) oldest",
        )
        .bind(conv)
        .bind(last)
        .bind(cutoff)
        .bind(limit)
        .fetch_one(&mut *tx)
        .await?;
        let mut n = 0;
        if let Some(upto) = upto {
            n += sqlx::query(
                "DELETE FROM messages
                 WHERE conversation_id = $1 AND seq <= $2 AND created_at < $3",
            )
            .bind(conv)
            .bind(upto)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE conversations SET expired_before = GREATEST(expired_before, $1)
                 WHERE id = $2",
            )
            .bind(upto + 1)
            .bind(conv)
            .execute(&mut *tx)
            .await?;
        }
        // The newest message keeps the conversation's numbering: emptied, not removed.
        if (n as i64) < limit {
            let emptied = sqlx::query(
                "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
                 WHERE conversation_id = $1 AND seq = $2 AND created_at < $3
                   AND kind <> 'deleted'",
            )
            .bind(conv)
            .bind(last)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if emptied > 0 {
                n += emptied;
                sqlx::query(
                    "UPDATE conversations SET expired_before = GREATEST(expired_before, $1)
                     WHERE id = $2",
                )
                .bind(last)
                .bind(conv)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// One row as re-encryption reads it.
#[derive(Debug, sqlx::FromRow)]
struct RekeyRow {
    conversation_id: i64,
    seq: i64,
    body: String,
    key_id: Option<String>,
    sealed: Option<Vec<u8>>,
}

impl PgStore {
    /// Re-encrypts under the vault's active key the next rows after `after` (in key order),
    /// at most `limit` read; returns the last row looked at (None: the end was reached) and
    /// how many rows were sealed anew. Plain bodies (written before encryption was on) are
    /// sealed; bodies under another key are opened and sealed again. Each row is updated only
    /// if it is still as read (a deletion meanwhile wins), in one short statement.
    pub async fn rekey_batch(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> std::result::Result<(Option<(i64, i64)>, u64), crate::server::store::StoreError> {
        let vault = self.vault();
        let Some(active) = vault.active_key() else {
            return Ok((None, 0));
        };
        let rows: Vec<RekeyRow> = sqlx::query_as(
            "SELECT conversation_id, seq, body, key_id, sealed FROM messages
             WHERE (conversation_id, seq) > ($1, $2)
             ORDER BY conversation_id, seq LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let last = rows.last().map(|r| (r.conversation_id, r.seq));
        // The rows to change, column by column, for one UPDATE over arrays.
        let mut convs = Vec::new();
        let mut seqs = Vec::new();
        let mut new_keys = Vec::new();
        let mut new_sealed = Vec::new();
        let mut old_keys = Vec::new();
        let mut old_sealed = Vec::new();
        let mut old_bodies = Vec::new();
        for r in rows {
            let plain = match (&r.key_id, &r.sealed) {
                (Some(k), Some(_)) if *k == active => continue,
                (Some(k), Some(sealed)) => vault.open(r.conversation_id, r.seq, k, sealed)?,
                _ if r.body.is_empty() => continue,
                _ => r.body.clone(),
            };
            if let Some(new) = vault.seal(r.conversation_id, r.seq, &plain) {
                convs.push(r.conversation_id);
                seqs.push(r.seq);
                new_keys.push(new.key_id);
                new_sealed.push(new.bytes);
                old_keys.push(r.key_id);
                old_sealed.push(r.sealed);
                old_bodies.push(r.body);
            }
        }
        if convs.is_empty() {
            return Ok((last, 0));
        }
        let mut tx = self.pool().begin().await?;
        // The key is recorded as used before (in the same commit as) the first row it seals,
        // whether or not the message log has sealed with it yet.
        sqlx::query(
            "INSERT INTO keys_used (key_id, first_used_at) VALUES ($1, $2)
             ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(&active)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE messages m SET body = '', key_id = n.key_id, sealed = n.sealed
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::bytea[], $5::text[],
                         $6::bytea[], $7::text[])
                 AS n(conv, seq, key_id, sealed, old_key, old_sealed, old_body)
             WHERE m.conversation_id = n.conv AND m.seq = n.seq
               AND m.key_id IS NOT DISTINCT FROM n.old_key
               AND m.sealed IS NOT DISTINCT FROM n.old_sealed
               AND m.body = n.old_body",
        )
        .bind(&convs)
        .bind(&seqs)
        .bind(&new_keys)
        .bind(&new_sealed)
        .bind(&old_keys)
        .bind(&old_sealed)
        .bind(&old_bodies)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((last, done))
    }

    /// How many messages each key seals (`None`: plain bodies that are not empty).
    pub async fn rows_per_key(
        &self,
    ) -> std::result::Result<Vec<(Option<String>, i64)>, crate::server::store::StoreError> {
        // NULLS FIRST: plain bodies first, where SQLite sorts NULL.
        Ok(sqlx::query_as(
            "SELECT key_id, COUNT(*) FROM messages
             WHERE key_id IS NOT NULL OR body <> ''
             GROUP BY key_id ORDER BY key_id NULLS FIRST",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Forgets that the database used `key` (it seals no row any more).
    pub async fn forget_key(
        &self,
        key: &str,
    ) -> std::result::Result<(), crate::server::store::StoreError> {
        sqlx::query("DELETE FROM keys_used WHERE key_id = $1")
            .bind(key)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
