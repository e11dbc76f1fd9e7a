//! Contacts, blocks and contact groups on PostgreSQL. A relationship is one row per side,
//! always in pairs: when A asks B, (A, B, 'requested') and (B, A, 'incoming'); when B
//! accepts, both become 'accepted'; removing deletes both. Group names are unique per owner
//! whatever their case (an index on `(owner_id, lower(name))`).

use super::PgStore;
use crate::protocol::{ContactGroup, ContactState, UserSummary};
use crate::server::store::{now_ms, ContactRow, ContactStore, GroupChange, Requested, Result};
use async_trait::async_trait;
use sqlx::PgConnection;

/// One entry of a contact list as the queries read it.
#[derive(Debug, sqlx::FromRow)]
struct ContactRecord {
    id: i64,
    username: String,
    display_name: String,
    is_guest: bool,
    is_bot: bool,
    blocked: bool,
    blocked_me: bool,
    state: Option<String>,
    group_id: Option<i64>,
}

impl From<ContactRecord> for ContactRow {
    fn from(r: ContactRecord) -> Self {
        let mut state = match r.state.as_deref() {
            Some("accepted") => Some(ContactState::Accepted),
            Some("requested") => Some(ContactState::Requested),
            Some("incoming") => Some(ContactState::Incoming),
            _ => None,
        };
        // A request from someone the owner blocked is not shown as a request.
        if r.blocked && state == Some(ContactState::Incoming) {
            state = None;
        }
        ContactRow {
            user: UserSummary {
                id: r.id,
                username: r.username,
                display_name: r.display_name,
                is_guest: r.is_guest,
                is_bot: r.is_bot,
            },
            state,
            group: r.group_id,
            blocked: r.blocked,
            blocked_me: r.blocked_me,
        }
    }
}

/// Whether an entry has anything to show: a relationship, or a block.
fn shown(row: &ContactRow) -> bool {
    row.state.is_some() || row.blocked
}

/// Locks the rows of `users` until the transaction ends, in id order (so that two
/// transactions never wait for each other in a circle). Changes that read a pair's state
/// before writing it take turns this way, as they did under SQLite's single writer; `FOR NO
/// KEY UPDATE` leaves foreign-key checks (new messages, members) unblocked.
async fn lock_users(tx: &mut PgConnection, users: &[i64]) -> Result<()> {
    sqlx::query("SELECT id FROM users WHERE id = ANY($1::int8[]) ORDER BY id FOR NO KEY UPDATE")
        .bind(users)
        .execute(tx)
        .await?;
    Ok(())
}

/// Whether a failed statement broke a unique index (PostgreSQL's 23505).
fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if e.code().as_deref() == Some("23505"))
}

#[async_trait]
impl ContactStore for PgStore {
    async fn contacts_of(&self, owner: i64) -> Result<Vec<ContactRow>> {
        // Ordered outside the UNION: PostgreSQL orders a UNION by its columns only, and
        // display names sort without regard to case (SQLite: COLLATE NOCASE).
        let rows: Vec<ContactRecord> = sqlx::query_as(
            "SELECT * FROM (
                 SELECT u.id, u.username, u.display_name, u.is_guest, u.is_bot,
                     EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = u.id)
                         AS blocked,
                     EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $1)
                         AS blocked_me,
                     c.state, c.group_id
                 FROM contacts c JOIN users u ON u.id = c.contact_id WHERE c.owner_id = $1
                 UNION ALL
                 SELECT u.id, u.username, u.display_name, u.is_guest, u.is_bot,
                     EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = u.id),
                     EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $1),
                     NULL::text, NULL::bigint
                 FROM blocks bl JOIN users u ON u.id = bl.blocked_id WHERE bl.blocker_id = $1
                   AND NOT EXISTS (SELECT 1 FROM contacts c
                                   WHERE c.owner_id = $1 AND c.contact_id = bl.blocked_id)
             ) e
             ORDER BY lower(e.display_name), e.id",
        )
        .bind(owner)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(ContactRow::from)
            .filter(shown)
            .collect())
    }

    async fn contact_of(&self, owner: i64, other: i64) -> Result<Option<ContactRow>> {
        let row: Option<ContactRecord> = sqlx::query_as(
            "SELECT u.id, u.username, u.display_name, u.is_guest, u.is_bot,
                 EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = u.id)
                     AS blocked,
                 EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $1)
                     AS blocked_me,
                 c.state, c.group_id
             FROM users u
             LEFT JOIN contacts c ON c.owner_id = $1 AND c.contact_id = u.id
             WHERE u.id = $2",
        )
        .bind(owner)
        .bind(other)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(ContactRow::from).filter(shown))
    }

    async fn request_contact(&self, from: i64, to: i64) -> Result<Requested> {
        let mut tx = self.pool().begin().await?;
        // Both users locked first: two requests between them (either way) take turns, so
        // the second sees the first's rows and accepts it instead of inserting a pair again.
        lock_users(&mut tx, &[from, to]).await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT state FROM contacts WHERE owner_id = $1 AND contact_id = $2",
        )
        .bind(from)
        .bind(to)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match existing.as_deref() {
            Some("incoming") => {
                sqlx::query(
                    "UPDATE contacts SET state = 'accepted'
                     WHERE (owner_id = $1 AND contact_id = $2) OR (owner_id = $2 AND contact_id = $1)",
                )
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?;
                Requested::Accepted
            }
            Some(_) => Requested::Unchanged,
            None => {
                sqlx::query(
                    "INSERT INTO contacts (owner_id, contact_id, state, created_at)
                     VALUES ($1, $2, 'requested', $3), ($2, $1, 'incoming', $3)",
                )
                .bind(from)
                .bind(to)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                Requested::Sent
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn accept_contact(&self, me: i64, other: i64) -> Result<bool> {
        // Takes its turn with a decline or removal of the same pair (see `lock_users`): the
        // condition below is then read after the other one committed.
        let mut tx = self.pool().begin().await?;
        lock_users(&mut tx, &[me, other]).await?;
        let res = sqlx::query(
            "UPDATE contacts SET state = 'accepted'
             WHERE ((owner_id = $1 AND contact_id = $2) OR (owner_id = $2 AND contact_id = $1))
               AND EXISTS (SELECT 1 FROM contacts
                           WHERE owner_id = $1 AND contact_id = $2 AND state = 'incoming')",
        )
        .bind(me)
        .bind(other)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn remove_contact(&self, me: i64, other: i64, only_incoming: bool) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        lock_users(&mut tx, &[me, other]).await?;
        let res = sqlx::query(
            "DELETE FROM contacts
             WHERE ((owner_id = $1 AND contact_id = $2) OR (owner_id = $2 AND contact_id = $1))
               AND (NOT $3::boolean OR EXISTS (
                   SELECT 1 FROM contacts
                   WHERE owner_id = $1 AND contact_id = $2 AND state = 'incoming'))",
        )
        .bind(me)
        .bind(other)
        .bind(only_incoming)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_block(&self, me: i64, other: i64, blocked: bool) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        // Takes its turn with requests between the two (see `lock_users`), so a request
        // declined here cannot be half-made meanwhile.
        lock_users(&mut tx, &[me, other]).await?;
        let changed = if blocked {
            sqlx::query(
                "DELETE FROM contacts
                 WHERE ((owner_id = $1 AND contact_id = $2) OR (owner_id = $2 AND contact_id = $1))
                   AND EXISTS (SELECT 1 FROM contacts
                               WHERE owner_id = $1 AND contact_id = $2 AND state = 'incoming')",
            )
            .bind(me)
            .bind(other)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(me)
            .bind(other)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0
        } else {
            sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
                .bind(me)
                .bind(other)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        };
        tx.commit().await?;
        Ok(changed)
    }

    async fn all_blocks(&self) -> Result<Vec<(i64, i64)>> {
        Ok(
            sqlx::query_as::<_, (i64, i64)>("SELECT blocker_id, blocked_id FROM blocks")
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn presence_viewers(&self, user: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT c.owner_id FROM contacts c
             WHERE c.contact_id = $1 AND c.state = 'accepted'
               AND NOT EXISTS (SELECT 1 FROM blocks b
                               WHERE b.blocker_id = $1 AND b.blocked_id = c.owner_id)",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await?)
    }

    async fn may_see_presence(&self, viewer: i64, owner: i64) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (
                 SELECT 1 FROM contacts c
                 WHERE c.owner_id = $1 AND c.contact_id = $2 AND c.state = 'accepted'
                   AND NOT EXISTS (SELECT 1 FROM blocks b
                                   WHERE b.blocker_id = $2 AND b.blocked_id = $1))",
        )
        .bind(viewer)
        .bind(owner)
        .fetch_one(self.pool())
        .await?)
    }

    async fn groups_of(&self, owner: i64) -> Result<Vec<ContactGroup>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, name FROM contact_groups WHERE owner_id = $1 ORDER BY lower(name), id",
        )
        .bind(owner)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| ContactGroup { id, name })
            .collect())
    }

    async fn create_group(&self, owner: i64, name: &str, max: usize) -> Result<GroupChange> {
        let mut tx = self.pool().begin().await?;
        // The owner locked first: two creations at once cannot both pass the count.
        lock_users(&mut tx, &[owner]).await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM contact_groups WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?;
        if count as usize >= max {
            return Ok(GroupChange::TooMany);
        }
        let created: std::result::Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO contact_groups (owner_id, name, created_at) VALUES ($1, $2, $3)
             RETURNING id",
        )
        .bind(owner)
        .bind(name)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await;
        match created {
            Ok(id) => {
                tx.commit().await?;
                Ok(GroupChange::Done(id))
            }
            Err(e) if unique_violation(&e) => Ok(GroupChange::NameTaken),
            Err(e) => Err(e.into()),
        }
    }

    async fn rename_group(&self, owner: i64, id: i64, name: &str) -> Result<GroupChange> {
        let res =
            sqlx::query("UPDATE contact_groups SET name = $1 WHERE id = $2 AND owner_id = $3")
                .bind(name)
                .bind(id)
                .bind(owner)
                .execute(self.pool())
                .await;
        match res {
            Ok(r) if r.rows_affected() == 0 => Ok(GroupChange::NotFound),
            Ok(_) => Ok(GroupChange::Done(id)),
            Err(e) if unique_violation(&e) => Ok(GroupChange::NameTaken),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_group(&self, owner: i64, id: i64) -> Result<bool> {
        let res = sqlx::query("DELETE FROM contact_groups WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_contact_group(
        &self,
        owner: i64,
        contact: i64,
        group: Option<i64>,
    ) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE contacts SET group_id = $3 WHERE owner_id = $1 AND contact_id = $2
               AND ($3::bigint IS NULL OR EXISTS (
                   SELECT 1 FROM contact_groups g WHERE g.id = $3 AND g.owner_id = $1))",
        )
        .bind(owner)
        .bind(contact)
        .bind(group)
        .execute(self.pool())
        .await;
        match res {
            Ok(r) => Ok(r.rows_affected() > 0),
            // The group was deleted by another node between the check and the update: it is
            // not the owner's any more.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
