//! Contacts, blocks and contact groups. A relationship is one row per side, always in pairs:
//! when A asks B, (A, B, 'requested') and (B, A, 'incoming'); when B accepts, both become
//! 'accepted'; removing deletes both.

use super::{SqliteStore, UserRecord};
use crate::protocol::{ContactGroup, ContactState};
use crate::server::store::{now_ms, ContactRow, ContactStore, GroupChange, Requested, Result};
use async_trait::async_trait;

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
            user: UserRecord {
                id: r.id,
                username: r.username,
                display_name: r.display_name,
                is_guest: r.is_guest,
                is_bot: r.is_bot,
            }
            .into(),
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

#[async_trait]
impl ContactStore for SqliteStore {
    async fn contacts_of(&self, owner: i64) -> Result<Vec<ContactRow>> {
        let rows = sqlx::query_as!(
            ContactRecord,
            r#"SELECT u.id AS "id!", u.username, u.display_name, u.is_guest AS "is_guest: bool",
                   u.is_bot AS "is_bot: bool",
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?1 AND b.blocked_id = u.id)
                       AS "blocked!: bool",
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = ?1)
                       AS "blocked_me!: bool",
                   c.state AS "state: String", c.group_id AS "group_id: i64"
               FROM contacts c JOIN users u ON u.id = c.contact_id WHERE c.owner_id = ?1
               UNION ALL
               SELECT u.id, u.username, u.display_name, u.is_guest, u.is_bot,
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?1 AND b.blocked_id = u.id),
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = ?1),
                   NULL, NULL
               FROM blocks bl JOIN users u ON u.id = bl.blocked_id WHERE bl.blocker_id = ?1
                 AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.owner_id = ?1 AND c.contact_id = bl.blocked_id)
               ORDER BY 3 COLLATE NOCASE, 1"#,
            owner,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(ContactRow::from)
            .filter(shown)
            .collect())
    }

    async fn contact_of(&self, owner: i64, other: i64) -> Result<Option<ContactRow>> {
        let row = sqlx::query_as!(
            ContactRecord,
            r#"SELECT u.id AS "id!", u.username, u.display_name, u.is_guest AS "is_guest: bool",
                   u.is_bot AS "is_bot: bool",
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?1 AND b.blocked_id = u.id)
                       AS "blocked!: bool",
                   EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = ?1)
                       AS "blocked_me!: bool",
                   c.state AS "state: String", c.group_id AS "group_id: i64"
               FROM users u
               LEFT JOIN contacts c ON c.owner_id = ?1 AND c.contact_id = u.id
               WHERE u.id = ?2"#,
            owner,
            other,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(ContactRow::from).filter(shown))
    }

    async fn request_contact(&self, from: i64, to: i64) -> Result<Requested> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query_scalar!(
            "SELECT state FROM contacts WHERE owner_id = ? AND contact_id = ?",
            from,
            to,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match existing.as_deref() {
            Some("incoming") => {
                sqlx::query!(
                    "UPDATE contacts SET state = 'accepted'
                     WHERE (owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1)",
                    from,
                    to,
                )
                .execute(&mut *tx)
                .await?;
                Requested::Accepted
            }
            Some(_) => Requested::Unchanged,
            None => {
                let now = now_ms();
                sqlx::query!(
                    "INSERT INTO contacts (owner_id, contact_id, state, created_at)
                     VALUES (?1, ?2, 'requested', ?3), (?2, ?1, 'incoming', ?3)",
                    from,
                    to,
                    now,
                )
                .execute(&mut *tx)
                .await?;
                Requested::Sent
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn accept_contact(&self, me: i64, other: i64) -> Result<bool> {
        let res = sqlx::query!(
            "UPDATE contacts SET state = 'accepted'
             WHERE ((owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1))
               AND EXISTS (SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact_id = ?2 AND state = 'incoming')",
            me,
            other,
        )
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn remove_contact(&self, me: i64, other: i64, only_incoming: bool) -> Result<bool> {
        let res = sqlx::query!(
            "DELETE FROM contacts
             WHERE ((owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1))
               AND (?3 = 0 OR EXISTS (SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact_id = ?2 AND state = 'incoming'))",
            me,
            other,
            only_incoming,
        )
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_block(&self, me: i64, other: i64, blocked: bool) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let changed = if blocked {
            sqlx::query!(
                "DELETE FROM contacts
                 WHERE ((owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1))
                   AND EXISTS (SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact_id = ?2 AND state = 'incoming')",
                me,
                other,
            )
            .execute(&mut *tx)
            .await?;
            let now = now_ms();
            sqlx::query!(
                "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)
                 ON CONFLICT DO NOTHING",
                me,
                other,
                now,
            )
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0
        } else {
            sqlx::query!(
                "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
                me,
                other,
            )
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0
        };
        tx.commit().await?;
        Ok(changed)
    }

    async fn all_blocks(&self) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query!("SELECT blocker_id, blocked_id FROM blocks")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.blocker_id, r.blocked_id))
            .collect())
    }

    async fn presence_viewers(&self, user: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar!(
            "SELECT c.owner_id FROM contacts c
             WHERE c.contact_id = ?1 AND c.state = 'accepted'
               AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?1 AND b.blocked_id = c.owner_id)",
            user,
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn may_see_presence(&self, viewer: i64, owner: i64) -> Result<bool> {
        let found = sqlx::query_scalar!(
            r#"SELECT 1 AS "one!: i64" FROM contacts c
               WHERE c.owner_id = ?1 AND c.contact_id = ?2 AND c.state = 'accepted'
                 AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?2 AND b.blocked_id = ?1)"#,
            viewer,
            owner,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    async fn groups_of(&self, owner: i64) -> Result<Vec<ContactGroup>> {
        Ok(sqlx::query_as!(
            ContactGroup,
            r#"SELECT id AS "id!", name FROM contact_groups WHERE owner_id = ?
               ORDER BY name COLLATE NOCASE, id"#,
            owner,
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn create_group(&self, owner: i64, name: &str, max: usize) -> Result<GroupChange> {
        let mut tx = self.begin_write().await?;
        let count = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM contact_groups WHERE owner_id = ?"#,
            owner,
        )
        .fetch_one(&mut *tx)
        .await?;
        if count as usize >= max {
            return Ok(GroupChange::TooMany);
        }
        let now = now_ms();
        let created = sqlx::query_scalar!(
            r#"INSERT INTO contact_groups (owner_id, name, created_at) VALUES (?, ?, ?)
               RETURNING id AS "id!""#,
            owner,
            name,
            now,
        )
        .fetch_one(&mut *tx)
        .await;
        match created {
            Ok(id) => {
                tx.commit().await?;
                Ok(GroupChange::Done(id))
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(GroupChange::NameTaken),
            Err(e) => Err(e.into()),
        }
    }

    async fn rename_group(&self, owner: i64, id: i64, name: &str) -> Result<GroupChange> {
        let res = sqlx::query!(
            "UPDATE contact_groups SET name = ? WHERE id = ? AND owner_id = ?",
            name,
            id,
            owner,
        )
        .execute(self.pool())
        .await;
        match res {
            Ok(r) if r.rows_affected() == 0 => Ok(GroupChange::NotFound),
            Ok(_) => Ok(GroupChange::Done(id)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(GroupChange::NameTaken),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_group(&self, owner: i64, id: i64) -> Result<bool> {
        let res = sqlx::query!(
            "DELETE FROM contact_groups WHERE id = ? AND owner_id = ?",
            id,
            owner,
        )
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
        let res = sqlx::query!(
            "UPDATE contacts SET group_id = ?3 WHERE owner_id = ?1 AND contact_id = ?2
               AND (?3 IS NULL OR EXISTS (SELECT 1 FROM contact_groups g WHERE g.id = ?3 AND g.owner_id = ?1))",
            owner,
            contact,
            group,
        )
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() > 0)
    }
}
