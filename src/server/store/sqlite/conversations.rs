//! Conversations and their members: one-to-one conversations (one per pair), public rooms,
//! group conversations, read marks.

use super::{kind_of, SqliteStore, UserRecord};
use crate::protocol::{
    conversation_title, ConversationKind, ConversationSummary, RoomSummary, HELLO_ROOMS_MAX,
};
use crate::server::store::{now_ms, AddMember, ConversationStore, Result, RoomListing};
use async_trait::async_trait;

/// A public room as the queries read it.
#[derive(Debug, sqlx::FromRow)]
struct RoomRecord {
    id: i64,
    title: Option<String>,
    joined: bool,
}

impl From<RoomRecord> for RoomSummary {
    fn from(r: RoomRecord) -> Self {
        Self {
            id: r.id,
            title: r.title.unwrap_or_default(),
            joined: r.joined,
        }
    }
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn forget_dm(&self, conv: i64, user: i64) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        let after = sqlx::query_scalar!(
            r#"UPDATE members
               SET visible_after = (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?1),
                   last_read = MAX(last_read, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?1))
               WHERE conversation_id = ?1 AND user_id = ?2
                 AND (SELECT kind FROM conversations WHERE id = ?1) = 'dm'
               RETURNING visible_after AS "after!: i64""#,
            conv,
            user
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn expired_before(&self, conv: i64) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT expired_before AS "e!: i64" FROM conversations WHERE id = ?"#,
            conv
        )
        .fetch_optional(self.pool())
        .await?
        .unwrap_or(0))
    }

    async fn conversations_for_user(&self, user: i64) -> Result<Vec<ConversationSummary>> {
        let rows = sqlx::query!(
            r#"SELECT c.id AS "id!", c.kind, c.title, m.last_read, m.visible_after,
                   (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = c.id)
                       AS "last_seq!: i64"
               FROM members m
               JOIN conversations c ON c.id = m.conversation_id AND c.archived_at IS NULL
               WHERE m.user_id = ? ORDER BY c.id"#,
            user,
        )
        .fetch_all(self.pool())
        .await?;
        let mut convs: Vec<ConversationSummary> = rows
            .into_iter()
            .map(|r| ConversationSummary {
                id: r.id,
                kind: kind_of(&r.kind),
                title: r.title.unwrap_or_default(),
                last_seq: r.last_seq,
                last_read: r.last_read,
                members: Vec::new(),
                visible_after: r.visible_after,
            })
            .collect();
        // Members of one-to-one and group conversations, which also give them their titles.
        let members = sqlx::query!(
            r#"SELECT m.conversation_id, u.id AS "id!", u.username, u.display_name,
                   u.is_guest AS "is_guest: bool", u.is_bot AS "is_bot: bool"
               FROM members mine
               JOIN conversations c ON c.id = mine.conversation_id AND c.kind IN ('dm', 'group')
               JOIN members m ON m.conversation_id = c.id
               JOIN users u ON u.id = m.user_id
               WHERE mine.user_id = ? ORDER BY m.conversation_id, m.joined_at, u.id"#,
            user,
        )
        .fetch_all(self.pool())
        .await?;
        for r in members {
            if let Some(c) = convs.iter_mut().find(|c| c.id == r.conversation_id) {
                c.members.push(
                    UserRecord {
                        id: r.id,
                        username: r.username,
                        display_name: r.display_name,
                        is_guest: r.is_guest,
                        is_bot: r.is_bot,
                    }
                    .into(),
                );
            }
        }
        for c in &mut convs {
            if c.kind != ConversationKind::Room {
                c.title = conversation_title(&c.members, user);
            }
        }
        Ok(convs)
    }

    async fn conversation_for_member(
        &self,
        conv: i64,
        viewer: i64,
    ) -> Result<Option<ConversationSummary>> {
        // The list is short for any one user; reuse the single definition of a summary.
        Ok(self
            .conversations_for_user(viewer)
            .await?
            .into_iter()
            .find(|c| c.id == conv))
    }

    async fn rooms_for_user(&self, user: i64) -> Result<Vec<RoomSummary>> {
        // The rooms joined, and the first public rooms: a bounded list however many there are.
        let rows = sqlx::query_as!(
            RoomRecord,
            r#"SELECT c.id AS "id!", c.title,
                   EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user_id = ?1)
                       AS "joined!: bool"
               FROM conversations c
               WHERE c.kind = 'room' AND c.archived_at IS NULL AND (
                   c.id IN (SELECT m.conversation_id FROM members m WHERE m.user_id = ?1)
                   OR c.id IN (SELECT id FROM conversations
                               WHERE kind = 'room' AND archived_at IS NULL ORDER BY id LIMIT ?2))
               ORDER BY c.id"#,
            user,
            HELLO_ROOMS_MAX,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(RoomSummary::from).collect())
    }

    async fn count_rooms(&self) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM conversations
               WHERE kind = 'room' AND archived_at IS NULL"#
        )
        .fetch_one(self.pool())
        .await?)
    }

    async fn room_page(
        &self,
        user: i64,
        after: i64,
        search: &str,
        limit: i64,
    ) -> Result<(Vec<RoomSummary>, bool)> {
        let pattern = like_pattern(search);
        let fetch = limit + 1;
        let rows = sqlx::query_as!(
            RoomRecord,
            r#"SELECT c.id AS "id!", c.title,
                   EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user_id = ?1)
                       AS "joined!: bool"
               FROM conversations c
               WHERE c.kind = 'room' AND c.archived_at IS NULL AND c.id > ?2
                 AND c.title LIKE ?3 ESCAPE '\'
               ORDER BY c.id LIMIT ?4"#,
            user,
            after,
            pattern,
            fetch,
        )
        .fetch_all(self.pool())
        .await?;
        let has_more = rows.len() as i64 > limit;
        let rooms = rows
            .into_iter()
            .take(limit as usize)
            .map(RoomSummary::from)
            .collect();
        Ok((rooms, has_more))
    }

    async fn shared_view(&self, conv: i64) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COALESCE(MAX(m.visible_after), 0) AS "view!: i64"
               FROM members m JOIN users u ON u.id = m.user_id
               WHERE m.conversation_id = ? AND u.is_bot = 0"#,
            conv,
        )
        .fetch_one(self.pool())
        .await?)
    }

    async fn member_view(&self, conv: i64, user: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar!(
            "SELECT visible_after FROM members WHERE conversation_id = ? AND user_id = ?",
            conv,
            user,
        )
        .fetch_optional(self.pool())
        .await?)
    }

    async fn conversation_kind(&self, conv: i64) -> Result<Option<(ConversationKind, i64)>> {
        let row = sqlx::query!(
            r#"SELECT c.kind, (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id)
                   AS "members!: i64"
               FROM conversations c WHERE c.id = ?"#,
            conv,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| (kind_of(&r.kind), r.members)))
    }

    async fn create_group_conversation(&self, members: &[i64]) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO conversations (kind, created_at) VALUES ('group', ?) RETURNING id AS "id!""#,
            now,
        )
        .fetch_one(&mut *tx)
        .await?;
        for user in members {
            sqlx::query!(
                "INSERT INTO members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)",
                id,
                user,
                now,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn add_group_member(&self, conv: i64, user: i64, max: usize) -> Result<AddMember> {
        let mut tx = self.begin_write().await?;
        let kind = sqlx::query_scalar!("SELECT kind FROM conversations WHERE id = ?", conv)
            .fetch_optional(&mut *tx)
            .await?;
        if kind.as_deref() != Some("group") {
            return Ok(AddMember::NotAGroup);
        }
        let counts = sqlx::query!(
            r#"SELECT COUNT(*) AS "count!: i64", COALESCE(SUM(user_id = ?2), 0) AS "already!: i64"
               FROM members WHERE conversation_id = ?1"#,
            conv,
            user,
        )
        .fetch_one(&mut *tx)
        .await?;
        if counts.already > 0 {
            return Ok(AddMember::AlreadyMember);
        }
        if counts.count as usize >= max {
            return Ok(AddMember::Full);
        }
        let now = now_ms();
        sqlx::query!(
            "INSERT INTO members (conversation_id, user_id, joined_at, last_read, visible_after)
             SELECT ?1, ?2, ?3, s.last, s.last
             FROM (SELECT COALESCE(MAX(seq), 0) AS last FROM messages WHERE conversation_id = ?1) s",
            conv,
            user,
            now,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AddMember::Added)
    }

    async fn remove_member(&self, conv: i64, user: i64) -> Result<bool> {
        let done = sqlx::query!(
            "DELETE FROM members WHERE conversation_id = ? AND user_id = ?",
            conv,
            user,
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn members_page(
        &self,
        conv: i64,
        limit: i64,
    ) -> Result<(i64, Vec<crate::protocol::UserSummary>)> {
        let count = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM members WHERE conversation_id = ?"#,
            conv
        )
        .fetch_one(self.pool())
        .await?;
        let rows = sqlx::query_as!(
            UserRecord,
            r#"SELECT u.id AS "id!", u.username, u.display_name,
                   u.is_guest AS "is_guest: bool", u.is_bot AS "is_bot: bool"
               FROM members m JOIN users u ON u.id = m.user_id
               WHERE m.conversation_id = ?
               ORDER BY m.joined_at DESC, u.id DESC LIMIT ?"#,
            conv,
            limit,
        )
        .fetch_all(self.pool())
        .await?;
        Ok((count, rows.into_iter().map(Into::into).collect()))
    }

    async fn join_room(&self, room: i64, user: i64) -> Result<Option<bool>> {
        let now = now_ms();
        // Someone joining a room has read nothing of its past, and owes it nothing either:
        // its unread count starts at the join. One statement, so an archive cannot slip
        // between the check and the insert.
        let res = sqlx::query!(
            "INSERT INTO members (conversation_id, user_id, joined_at, last_read)
             SELECT ?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?1)
             WHERE EXISTS (SELECT 1 FROM conversations
                           WHERE id = ?1 AND kind = 'room' AND archived_at IS NULL)
             ON CONFLICT DO NOTHING",
            room,
            user,
            now,
        )
        .execute(self.pool())
        .await?;
        if res.rows_affected() == 1 {
            return Ok(Some(true));
        }
        let open = sqlx::query_scalar!(
            r#"SELECT 1 AS "one!: i64" FROM conversations
               WHERE id = ? AND kind = 'room' AND archived_at IS NULL"#,
            room,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(open.map(|_| false))
    }

    async fn get_or_create_dm(&self, a: i64, b: i64) -> Result<(i64, bool)> {
        let key = format!("{}:{}", a.min(b), a.max(b));
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let created = sqlx::query_scalar!(
            r#"INSERT INTO conversations (kind, dm_key, created_at) VALUES ('dm', ?, ?)
               ON CONFLICT (dm_key) DO NOTHING RETURNING id AS "id!""#,
            key,
            now,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let result = match created {
            Some(id) => {
                for user in [a, b] {
                    sqlx::query!(
                        "INSERT INTO members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)",
                        id,
                        user,
                        now,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                (id, true)
            }
            None => {
                let id = sqlx::query_scalar!(
                    r#"SELECT id AS "id!" FROM conversations WHERE dm_key = ?"#,
                    key
                )
                .fetch_one(&mut *tx)
                .await?;
                (id, false)
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn add_rooms(&self, titles: &[String]) -> Result<Vec<i64>> {
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(titles.len());
        for title in titles {
            let now = now_ms();
            let id = sqlx::query_scalar!(
                r#"INSERT INTO conversations (kind, title, created_at) VALUES ('room', ?, ?)
                   RETURNING id AS "id!""#,
                title,
                now,
            )
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn list_rooms(&self, search: &str, limit: i64) -> Result<Vec<RoomListing>> {
        let pattern = like_pattern(search);
        let rows = sqlx::query!(
            r#"SELECT c.id AS "id!", c.title, c.archived_at IS NOT NULL AS "archived!: bool",
                   (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id) AS "members!: i64",
                   (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = c.id)
                       AS "last_seq!: i64"
               FROM conversations c
               WHERE c.kind = 'room' AND c.title LIKE ?1 ESCAPE '\'
               ORDER BY c.id LIMIT ?2"#,
            pattern,
            limit,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RoomListing {
                id: r.id,
                title: r.title.unwrap_or_default(),
                members: r.members,
                last_seq: r.last_seq,
                archived: r.archived,
            })
            .collect())
    }

    async fn rename_room(&self, room: i64, title: &str) -> Result<Option<Vec<i64>>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query!(
            "UPDATE conversations SET title = ? WHERE id = ? AND kind = 'room'",
            title,
            room,
        )
        .execute(&mut *tx)
        .await?;
        let members = room_members(&mut tx, room, done.rows_affected()).await?;
        tx.commit().await?;
        Ok(members)
    }

    async fn set_room_archived(&self, room: i64, archived: bool) -> Result<Option<Vec<i64>>> {
        let at = archived.then(now_ms);
        let mut tx = self.begin_write().await?;
        let done = sqlx::query!(
            "UPDATE conversations SET archived_at = ? WHERE id = ? AND kind = 'room'",
            at,
            room,
        )
        .execute(&mut *tx)
        .await?;
        let members = room_members(&mut tx, room, done.rows_affected()).await?;
        tx.commit().await?;
        Ok(members)
    }

    async fn mark_read(&self, user: i64, conv: i64, seq: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar!(
            r#"UPDATE members
             SET last_read = MIN(?1, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?3))
             WHERE user_id = ?2 AND conversation_id = ?3
               AND last_read < MIN(?1, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?3))
             RETURNING last_read AS "last_read!: i64""#,
            seq,
            user,
            conv,
        )
        .fetch_optional(self.pool())
        .await?)
    }
}

/// A `LIKE ... ESCAPE '\'` pattern for titles containing `search`.
fn like_pattern(search: &str) -> String {
    format!(
        "%{}%",
        search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// The members of a room an update just touched (`changed` rows); None if it touched none.
async fn room_members(
    tx: &mut sqlx::SqliteConnection,
    room: i64,
    changed: u64,
) -> Result<Option<Vec<i64>>> {
    if changed == 0 {
        return Ok(None);
    }
    let ids = sqlx::query_scalar!(
        r#"SELECT user_id AS "id!" FROM members WHERE conversation_id = ?"#,
        room
    )
    .fetch_all(tx)
    .await?;
    Ok(Some(ids))
}
