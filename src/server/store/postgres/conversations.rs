//! Conversations and their members on PostgreSQL: one-to-one conversations (one per pair),
//! public rooms, group conversations, read marks. A conversation's last sequence number is
//! its row's `last_seq`, which the message log raises in the transaction that inserts the
//! messages (`log.rs`); a row lock on it therefore holds the log back for that conversation.

use super::{users::UserRecord, PgStore};
use crate::protocol::{
    conversation_title, ConversationKind, ConversationSummary, RoomSummary, UserSummary,
    HELLO_ROOMS_MAX,
};
use crate::server::store::{now_ms, AddMember, ConversationStore, Result, RoomListing};
use async_trait::async_trait;
use sqlx::PgConnection;

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

/// A conversation of a user's list as the query reads it.
#[derive(Debug, sqlx::FromRow)]
struct SummaryRecord {
    id: i64,
    kind: String,
    title: Option<String>,
    last_read: i64,
    visible_after: i64,
    last_seq: i64,
}

/// A member of a conversation, with the conversation.
#[derive(Debug, sqlx::FromRow)]
struct MemberRecord {
    conversation_id: i64,
    #[sqlx(flatten)]
    user: UserRecord,
}

/// A conversation kind as stored.
fn kind_of(s: &str) -> ConversationKind {
    match s {
        "dm" => ConversationKind::Dm,
        "group" => ConversationKind::Group,
        _ => ConversationKind::Room,
    }
}

#[async_trait]
impl ConversationStore for PgStore {
    async fn forget_dm(&self, conv: i64, user: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "UPDATE members m
             SET visible_after = c.last_seq, last_read = GREATEST(m.last_read, c.last_seq)
             FROM conversations c
             WHERE c.id = m.conversation_id AND c.kind = 'dm'
               AND m.conversation_id = $1 AND m.user_id = $2
             RETURNING m.visible_after",
        )
        .bind(conv)
        .bind(user)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn expired_before(&self, conv: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT expired_before FROM conversations WHERE id = $1")
                .bind(conv)
                .fetch_optional(self.pool())
                .await?
                .unwrap_or(0),
        )
    }

    async fn conversations_for_user(&self, user: i64) -> Result<Vec<ConversationSummary>> {
        let rows: Vec<SummaryRecord> = sqlx::query_as(
            "SELECT c.id, c.kind, c.title, m.last_read, m.visible_after, c.last_seq
             FROM members m
             JOIN conversations c ON c.id = m.conversation_id AND c.archived_at IS NULL
             WHERE m.user_id = $1 ORDER BY c.id",
        )
        .bind(user)
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
        let members: Vec<MemberRecord> = sqlx::query_as(
            "SELECT m.conversation_id, u.id, u.username, u.display_name, u.is_guest, u.is_bot
             FROM members mine
             JOIN conversations c ON c.id = mine.conversation_id AND c.kind IN ('dm', 'group')
             JOIN members m ON m.conversation_id = c.id
             JOIN users u ON u.id = m.user_id
             WHERE mine.user_id = $1 ORDER BY m.conversation_id, m.joined_at, u.id",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        for r in members {
            if let Some(c) = convs.iter_mut().find(|c| c.id == r.conversation_id) {
                c.members.push(r.user.into());
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
        let rows: Vec<RoomRecord> = sqlx::query_as(
            "SELECT c.id, c.title,
                 EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user_id = $1)
                     AS joined
             FROM conversations c
             WHERE c.kind = 'room' AND c.archived_at IS NULL AND (
                 c.id IN (SELECT m.conversation_id FROM members m WHERE m.user_id = $1)
                 OR c.id IN (SELECT id FROM conversations
                             WHERE kind = 'room' AND archived_at IS NULL ORDER BY id LIMIT $2))
             ORDER BY c.id",
        )
        .bind(user)
        .bind(HELLO_ROOMS_MAX)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(RoomSummary::from).collect())
    }

    async fn count_rooms(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM conversations WHERE kind = 'room' AND archived_at IS NULL",
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
        // ILIKE: titles match in any case, as SQLite's LIKE does.
        let rows: Vec<RoomRecord> = sqlx::query_as(
            "SELECT c.id, c.title,
                 EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user_id = $1)
                     AS joined
             FROM conversations c
             WHERE c.kind = 'room' AND c.archived_at IS NULL AND c.id > $2
               AND c.title ILIKE $3 ESCAPE '\\'
             ORDER BY c.id LIMIT $4",
        )
        .bind(user)
        .bind(after)
        .bind(like_pattern(search))
        .bind(limit + 1)
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
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(MAX(m.visible_after), 0)
             FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = $1 AND NOT u.is_bot",
        )
        .bind(conv)
        .fetch_one(self.pool())
        .await?)
    }

    async fn member_view(&self, conv: i64, user: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT visible_after FROM members WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conv)
        .bind(user)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn conversation_kind(&self, conv: i64) -> Result<Option<(ConversationKind, i64)>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT c.kind, (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id)
             FROM conversations c WHERE c.id = $1",
        )
        .bind(conv)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(kind, members)| (kind_of(&kind), members)))
    }

    async fn create_group_conversation(&self, members: &[i64]) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO conversations (kind, created_at) VALUES ('group', $1) RETURNING id",
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, joined_at)
             SELECT $1, u, $2 FROM unnest($3::int8[]) AS u",
        )
        .bind(id)
        .bind(now)
        .bind(members)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn add_group_member(&self, conv: i64, user: i64, max: usize) -> Result<AddMember> {
        let mut tx = self.pool().begin().await?;
        // The conversation's row locked: two additions at once cannot both pass the count,
        // and no message commits to it before the newcomer's view starts at its last one.
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT kind, last_seq FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(conv)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(("group", last)) = row.as_ref().map(|(k, l)| (k.as_str(), *l)) else {
            return Ok(AddMember::NotAGroup);
        };
        let (count, already): (i64, bool) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(bool_or(user_id = $2), FALSE)
             FROM members WHERE conversation_id = $1",
        )
        .bind(conv)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        if already {
            return Ok(AddMember::AlreadyMember);
        }
        if count as usize >= max {
            return Ok(AddMember::Full);
        }
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, joined_at, last_read, visible_after)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(conv)
        .bind(user)
        .bind(now_ms())
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AddMember::Added)
    }

    async fn remove_member(&self, conv: i64, user: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
            .bind(conv)
            .bind(user)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn members_page(&self, conv: i64, limit: i64) -> Result<(i64, Vec<UserSummary>)> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE conversation_id = $1")
                .bind(conv)
                .fetch_one(self.pool())
                .await?;
        let rows: Vec<UserRecord> = sqlx::query_as(
            "SELECT u.id, u.username, u.display_name, u.is_guest, u.is_bot
             FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = $1
             ORDER BY m.joined_at DESC, u.id DESC LIMIT $2",
        )
        .bind(conv)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok((count, rows.into_iter().map(Into::into).collect()))
    }

    async fn join_room(&self, room: i64, user: i64) -> Result<Option<bool>> {
        // Someone joining a room has read nothing of its past, and owes it nothing either:
        // its unread count starts at the join. One statement, with the room's row share-
        // locked, so an archive by another node cannot slip between the check and the insert.
        let res = sqlx::query(
            "WITH room AS (
                 SELECT id, last_seq FROM conversations
                 WHERE id = $1 AND kind = 'room' AND archived_at IS NULL FOR SHARE)
             INSERT INTO members (conversation_id, user_id, joined_at, last_read)
             SELECT id, $2, $3, last_seq FROM room
             ON CONFLICT DO NOTHING",
        )
        .bind(room)
        .bind(user)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        if res.rows_affected() == 1 {
            return Ok(Some(true));
        }
        let open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM conversations
                            WHERE id = $1 AND kind = 'room' AND archived_at IS NULL)",
        )
        .bind(room)
        .fetch_one(self.pool())
        .await?;
        Ok(open.then_some(false))
    }

    async fn get_or_create_dm(&self, a: i64, b: i64) -> Result<(i64, bool)> {
        let key = format!("{}:{}", a.min(b), a.max(b));
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // dm_key is unique: of two nodes creating the same pair's conversation at once, the
        // second's insert waits for the first's commit, then does nothing, and the select
        // below (a statement of its own, so it sees that commit) finds the first's row.
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO conversations (kind, dm_key, created_at) VALUES ('dm', $1, $2)
             ON CONFLICT (dm_key) DO NOTHING RETURNING id",
        )
        .bind(&key)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let result = match created {
            Some(id) => {
                for user in [a, b] {
                    sqlx::query(
                        "INSERT INTO members (conversation_id, user_id, joined_at)
                         VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                (id, true)
            }
            None => {
                let id: i64 = sqlx::query_scalar("SELECT id FROM conversations WHERE dm_key = $1")
                    .bind(&key)
                    .fetch_one(&mut *tx)
                    .await?;
                (id, false)
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn add_rooms(&self, titles: &[String]) -> Result<Vec<i64>> {
        let mut tx = self.pool().begin().await?;
        let mut ids = Vec::with_capacity(titles.len());
        for title in titles {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO conversations (kind, title, created_at) VALUES ('room', $1, $2)
                 RETURNING id",
            )
            .bind(title)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn list_rooms(&self, search: &str, limit: i64) -> Result<Vec<RoomListing>> {
        let rows: Vec<(i64, Option<String>, bool, i64, i64)> = sqlx::query_as(
            "SELECT c.id, c.title, c.archived_at IS NOT NULL,
                 (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id),
                 c.last_seq
             FROM conversations c
             WHERE c.kind = 'room' AND c.title ILIKE $1 ESCAPE '\\'
             ORDER BY c.id LIMIT $2",
        )
        .bind(like_pattern(search))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, title, archived, members, last_seq)| RoomListing {
                id,
                title: title.unwrap_or_default(),
                members,
                last_seq,
                archived,
            })
            .collect())
    }

    async fn rename_room(&self, room: i64, title: &str) -> Result<Option<Vec<i64>>> {
        let mut tx = self.pool().begin().await?;
        let done =
            sqlx::query("UPDATE conversations SET title = $1 WHERE id = $2 AND kind = 'room'")
                .bind(title)
                .bind(room)
                .execute(&mut *tx)
                .await?;
        let members = room_members(&mut tx, room, done.rows_affected()).await?;
        tx.commit().await?;
        Ok(members)
    }

    async fn set_room_archived(&self, room: i64, archived: bool) -> Result<Option<Vec<i64>>> {
        let at = archived.then(now_ms);
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE conversations SET archived_at = $1 WHERE id = $2 AND kind = 'room'",
        )
        .bind(at)
        .bind(room)
        .execute(&mut *tx)
        .await?;
        let members = room_members(&mut tx, room, done.rows_affected()).await?;
        tx.commit().await?;
        Ok(members)
    }

    async fn mark_read(&self, user: i64, conv: i64, seq: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "UPDATE members m SET last_read = LEAST($1, c.last_seq)
             FROM conversations c
             WHERE c.id = m.conversation_id AND m.user_id = $2 AND m.conversation_id = $3
               AND m.last_read < LEAST($1, c.last_seq)
             RETURNING m.last_read",
        )
        .bind(seq)
        .bind(user)
        .bind(conv)
        .fetch_optional(self.pool())
        .await?)
    }
}

/// An `ILIKE ... ESCAPE '\'` pattern for titles containing `search`.
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
async fn room_members(tx: &mut PgConnection, room: i64, changed: u64) -> Result<Option<Vec<i64>>> {
    if changed == 0 {
        return Ok(None);
    }
    let ids = sqlx::query_scalar("SELECT user_id FROM members WHERE conversation_id = $1")
        .bind(room)
        .fetch_all(tx)
        .await?;
    Ok(Some(ids))
}
