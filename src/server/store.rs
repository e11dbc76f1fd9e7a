//! The SQLite store: opening and migrating the database, and every query as a small named
//! function. Message writes go through [`crate::server::writer`], the single writer.

use crate::protocol::{
    conversation_title, ContactGroup, ContactState, ConversationKind, ConversationSummary,
    MessageKind, MessageView, RoomSummary, Status, UserSummary, HELLO_ROOMS_MAX,
};
use anyhow::Context;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    ConnectOptions, Row, Sqlite, SqlitePool, Transaction,
};
use std::{path::Path, str::FromStr, time::Duration};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// WAL size, in pages, at which the writer's commit checkpoints it into the database file
/// (SQLite's default is 1000 pages, 4 MB). Messages spread over many conversations touch a
/// different B-tree leaf each, and every commit appends each touched page whole to the WAL;
/// a page written many times to the WAL is copied to the file once per checkpoint, so rarer
/// checkpoints copy far fewer pages. (Checkpointing beside the writer, on a connection of
/// its own every 250 ms, was tried: the rooms benchmark's p99 got worse, 100-308 ms against
/// 49-51 ms, as the two fsyncs contended.)
const WAL_AUTOCHECKPOINT_PAGES: &str = "10000";
/// How every transaction that writes begins: with SQLite's write lock taken at once. A
/// deferred `BEGIN` that reads first and writes later fails at the write with `SQLITE_BUSY`,
/// not retried by the busy timeout, whenever another connection committed in between (the
/// message writer commits all the time): contact requests and group changes failed that way
/// while messages flowed. `IMMEDIATE` waits (up to the busy timeout) for the lock instead.
pub const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Begins a transaction that will write (see [`BEGIN_WRITE`]).
async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with(BEGIN_WRITE).await
}

/// Most page cache the message writer's connection keeps, in KiB. The writer touches the
/// leaf pages of every busy conversation; with SQLite's default 2 MB cache it read them back
/// from the file (pread) at every commit. The cache grows only as pages are used.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// What every connection to the database is opened with, the pool's and the message
/// writer's (each applies them in its own way: the pool through sqlx's options, the writer
/// as statements; a test reads them back from both).
const PRAGMAS: [(&str, &str); 5] = [
    // WAL lets readers run beside the writer; FULL fsyncs the WAL at every commit, so an
    // acknowledged message survives power loss, not only a process crash.
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES),
    // Temporary files in memory. The one that matters is the statement journal: inside a
    // transaction, each statement that could fail half-way (the writer's multi-row INSERT)
    // copies every page it changes there first, so that it alone can be undone. On disk
    // that was a 4-byte and a 4096-byte `pwrite` per page, as many calls as the WAL frames
    // themselves. It is never needed after a crash (the WAL is what makes a commit
    // durable), so keeping it in memory weakens nothing.
    ("temp_store", "MEMORY"),
];

/// How long a connection waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The read side of the store plus the options to open the writer's own connection.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    options: SqliteConnectOptions,
}

impl Store {
    /// Opens (creating folder and file if needed) and migrates the database.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        let options = PRAGMAS.iter().fold(
            SqliteConnectOptions::from_str("sqlite:")
                .context("sqlite options")?
                .filename(path)
                .create_if_missing(true),
            |options, (name, value)| options.pragma(*name, *value),
        );
        let options = options
            .busy_timeout(BUSY_TIMEOUT)
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the database {}", path.display()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("applying database migrations")?;
        Ok(Self { pool, options })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A dedicated connection for the single message writer, which commits synchronously
    /// on a thread of its own (`writer.rs`); opened with the same settings as the pool's.
    pub fn writer_connection(&self) -> anyhow::Result<rusqlite::Connection> {
        let path = self.options.get_filename();
        let conn = rusqlite::Connection::open(path)
            .with_context(|| format!("opening the writer connection to {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let cache_size = format!("-{WRITER_CACHE_KIB}");
        for (name, value) in PRAGMAS.iter().chain([&("cache_size", cache_size.as_str())]) {
            // As a batch: it ignores the row some pragmas answer with (journal_mode does).
            conn.execute_batch(&format!("PRAGMA {name} = {value}"))
                .with_context(|| format!("setting {name} on the writer connection"))?;
        }
        // The multi-row INSERTs (one per power-of-two size), the single-row one, the lookups
        // and the delete: all stay prepared.
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Checkpoints the WAL into the main file (at shutdown, so a copy of the file is whole).
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A user row with what authentication needs.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub summary: UserSummary,
    pub password_hash: Option<String>,
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UserSummary, sqlx::Error> {
    Ok(UserSummary {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        is_guest: row.try_get::<i64, _>("is_guest")? != 0,
        is_bot: row.try_get::<i64, _>("is_bot")? != 0,
    })
}

/// Whether a username was free.
#[derive(Debug)]
pub enum CreateUser {
    Created(UserSummary),
    Taken,
}

pub async fn create_user(
    pool: &SqlitePool,
    username: &str,
    display_name: &str,
    password_hash: Option<&str>,
    is_guest: bool,
) -> Result<CreateUser, sqlx::Error> {
    let res = sqlx::query(
        "INSERT INTO users (username, display_name, password_hash, is_guest, created_at)
         VALUES (?, ?, ?, ?, ?) RETURNING id, username, display_name, is_guest, is_bot",
    )
    .bind(username)
    .bind(display_name)
    .bind(password_hash)
    .bind(is_guest as i64)
    .bind(now_ms())
    .fetch_one(pool)
    .await;
    match res {
        Ok(row) => Ok(CreateUser::Created(user_from_row(&row)?)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(CreateUser::Taken),
        Err(e) => Err(e),
    }
}

pub async fn user_by_username(
    pool: &SqlitePool,
    username: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, username, display_name, is_guest, is_bot, password_hash FROM users WHERE username = ?",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(UserRow {
            summary: user_from_row(&r)?,
            password_hash: r.try_get("password_hash")?,
        })
    })
    .transpose()
}

/// A session joined with its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub user: UserSummary,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub revoked: bool,
}

impl SessionRow {
    /// Whether the session can still be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        !self.revoked && now < self.idle_expires_at && now < self.absolute_expires_at
    }
    /// When the session ends unless it is used again.
    pub fn deadline(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

const SESSION_SELECT: &str = "SELECT s.id AS sid, s.idle_expires_at, s.absolute_expires_at,
        s.revoked_at, u.id, u.username, u.display_name, u.is_guest, u.is_bot
     FROM sessions s JOIN users u ON u.id = s.user_id";

fn session_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: r.try_get("sid")?,
        user: user_from_row(r)?,
        idle_expires_at: r.try_get("idle_expires_at")?,
        absolute_expires_at: r.try_get("absolute_expires_at")?,
        revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

pub async fn create_session(
    pool: &SqlitePool,
    user_id: i64,
    token_hash: &[u8],
    idle_expires_at: i64,
    absolute_expires_at: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO sessions (token_hash, user_id, created_at, idle_expires_at, absolute_expires_at)
         VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now_ms())
    .bind(idle_expires_at)
    .bind(absolute_expires_at)
    .fetch_one(pool)
    .await
}

pub async fn session_by_token_hash(
    pool: &SqlitePool,
    token_hash: &[u8],
) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = format!("{SESSION_SELECT} WHERE s.token_hash = ?");
    let row = sqlx::query(&sql)
        .bind(token_hash)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

pub async fn session_by_id(pool: &SqlitePool, id: i64) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = format!("{SESSION_SELECT} WHERE s.id = ?");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(session_from_row).transpose()
}

/// Slides the idle expiry forward (never past the absolute lifetime, never backwards).
pub async fn touch_session(
    pool: &SqlitePool,
    id: i64,
    idle_expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET idle_expires_at = MIN(MAX(idle_expires_at, ?), absolute_expires_at)
         WHERE id = ? AND revoked_at IS NULL",
    )
    .bind(idle_expires_at)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn revoke_session(pool: &SqlitePool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Removes sessions that ended more than a day ago (they can never be used again).
pub async fn delete_dead_sessions(pool: &SqlitePool, now: i64) -> Result<u64, sqlx::Error> {
    let day = 24 * 3600 * 1000;
    let res = sqlx::query(
        "DELETE FROM sessions WHERE MIN(idle_expires_at, absolute_expires_at, COALESCE(revoked_at, absolute_expires_at)) < ?",
    )
    .bind(now - day)
    .execute(pool)
    .await?;
    Ok(res.rows_affected())
}

fn kind_of(s: &str) -> ConversationKind {
    match s {
        "dm" => ConversationKind::Dm,
        "group" => ConversationKind::Group,
        _ => ConversationKind::Room,
    }
}

/// Every conversation `user_id` belongs to, titled for them.
/// The sender and kind of one message, if it exists.
pub async fn message_meta(
    pool: &SqlitePool,
    conv: i64,
    seq: i64,
) -> Result<Option<(i64, MessageKind)>, sqlx::Error> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT sender_id, kind FROM messages WHERE conversation_id = ? AND seq = ?",
    )
    .bind(conv)
    .bind(seq)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(sender, kind)| (sender, MessageKind::parse(&kind).unwrap_or_default())))
}

/// Moves `user`'s read mark in `conv` forward to `seq` (at most the last message); false if
/// it was already there (or the user is not a member).
pub async fn mark_read(
    pool: &SqlitePool,
    user: i64,
    conv: i64,
    seq: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE members
         SET last_read = MIN(?1, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?3))
         WHERE user_id = ?2 AND conversation_id = ?3
           AND last_read < MIN(?1, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?3))",
    )
    .bind(seq)
    .bind(user)
    .bind(conv)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn conversations_for_user(
    pool: &SqlitePool,
    user_id: i64,
) -> Result<Vec<ConversationSummary>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.id, c.kind, c.title, m.last_read, m.visible_after,
             (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = c.id) AS last_seq
         FROM members m
         JOIN conversations c ON c.id = m.conversation_id
         WHERE m.user_id = ? ORDER BY c.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    let mut convs = Vec::with_capacity(rows.len());
    for r in &rows {
        convs.push(ConversationSummary {
            id: r.try_get("id")?,
            kind: kind_of(r.try_get("kind")?),
            title: r.try_get::<Option<String>, _>("title")?.unwrap_or_default(),
            last_seq: r.try_get("last_seq")?,
            last_read: r.try_get("last_read")?,
            members: Vec::new(),
            visible_after: r.try_get("visible_after")?,
        });
    }
    // Members of one-to-one and group conversations, which also give them their titles.
    let rows = sqlx::query(
        "SELECT m.conversation_id, u.id, u.username, u.display_name, u.is_guest, u.is_bot
         FROM members mine
         JOIN conversations c ON c.id = mine.conversation_id AND c.kind IN ('dm', 'group')
         JOIN members m ON m.conversation_id = c.id
         JOIN users u ON u.id = m.user_id
         WHERE mine.user_id = ? ORDER BY m.conversation_id, m.joined_at, u.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    for r in &rows {
        let conv_id: i64 = r.try_get("conversation_id")?;
        let user = user_from_row(r)?;
        if let Some(c) = convs.iter_mut().find(|c| c.id == conv_id) {
            c.members.push(user);
        }
    }
    for c in &mut convs {
        if c.kind != ConversationKind::Room {
            c.title = conversation_title(&c.members, user_id);
        }
    }
    Ok(convs)
}

/// One conversation as `viewer` sees it, if they are a member.
pub async fn conversation_for_member(
    pool: &SqlitePool,
    conv: i64,
    viewer: i64,
) -> Result<Option<ConversationSummary>, sqlx::Error> {
    // The list is short for any one user; reuse the single definition of a summary.
    Ok(conversations_for_user(pool, viewer)
        .await?
        .into_iter()
        .find(|c| c.id == conv))
}

pub async fn rooms_for_user(
    pool: &SqlitePool,
    user_id: i64,
) -> Result<Vec<RoomSummary>, sqlx::Error> {
    // The rooms joined, and the first public rooms: a bounded list however many there are.
    let rows = sqlx::query(
        "SELECT c.id, c.title, EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user_id = ?1) AS joined
         FROM conversations c
         WHERE c.kind = 'room' AND (
             c.id IN (SELECT m.conversation_id FROM members m WHERE m.user_id = ?1)
             OR c.id IN (SELECT id FROM conversations WHERE kind = 'room' ORDER BY id LIMIT ?2))
         ORDER BY c.id",
    )
    .bind(user_id)
    .bind(HELLO_ROOMS_MAX)
    .fetch_all(pool)
    .await?;
    rows.iter().map(room_from_row).collect()
}

fn room_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<RoomSummary, sqlx::Error> {
    Ok(RoomSummary {
        id: r.try_get("id")?,
        title: r.try_get::<Option<String>, _>("title")?.unwrap_or_default(),
        joined: r.try_get::<i64, _>("joined")? != 0,
    })
}

/// How many public rooms exist.
pub async fn count_rooms(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE kind = 'room'")
        .fetch_one(pool)
        .await
}

/// Up to `limit` public rooms with ids above `after` whose title contains `search` (any
/// case), by id, as `user_id` sees them; and whether more follow.
pub async fn room_page(
    pool: &SqlitePool,
    user_id: i64,
    after: i64,
    search: &str,
    limit: i64,
) -> Result<(Vec<RoomSummary>, bool), sqlx::Error> {
    let pattern = format!(
        "%{}%",
        search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = sqlx::query(
        "SELECT c.id, c.title, EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user_id = ?1) AS joined
         FROM conversations c
         WHERE c.kind = 'room' AND c.id > ?2 AND c.title LIKE ?3 ESCAPE '\\'
         ORDER BY c.id LIMIT ?4",
    )
    .bind(user_id)
    .bind(after)
    .bind(pattern)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let has_more = rows.len() as i64 > limit;
    let rooms = rows
        .iter()
        .take(limit as usize)
        .map(room_from_row)
        .collect::<Result<_, _>>()?;
    Ok((rooms, has_more))
}

/// How far back `user` may read `conv`: None if not a member, else the sequence number
/// their view starts after (0: the whole history).
pub async fn member_view(
    pool: &SqlitePool,
    conv: i64,
    user_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT visible_after FROM members WHERE conversation_id = ? AND user_id = ?",
    )
    .bind(conv)
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// The kind and member count of a conversation, if it exists.
pub async fn conversation_kind(
    pool: &SqlitePool,
    conv: i64,
) -> Result<Option<(ConversationKind, i64)>, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT c.kind, (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id)
         FROM conversations c WHERE c.id = ?",
    )
    .bind(conv)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(kind, n)| (kind_of(&kind), n)))
}

/// Starts a group conversation with these members (the caller checked who may be in it).
pub async fn create_group_conversation(
    pool: &SqlitePool,
    members: &[i64],
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let mut tx = begin_write(pool).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO conversations (kind, created_at) VALUES ('group', ?) RETURNING id",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for user in members {
        sqlx::query("INSERT INTO members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// What adding someone to a group conversation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMember {
    Added,
    AlreadyMember,
    Full,
    NotAGroup,
}

/// Adds `user` to the group conversation `conv` if it has fewer than `max` members. They
/// see it from now on: what was said before stays with those who were there.
pub async fn add_group_member(
    pool: &SqlitePool,
    conv: i64,
    user_id: i64,
    max: usize,
) -> Result<AddMember, sqlx::Error> {
    let mut tx = begin_write(pool).await?;
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM conversations WHERE id = ?")
        .bind(conv)
        .fetch_optional(&mut *tx)
        .await?;
    if kind.as_deref() != Some("group") {
        return Ok(AddMember::NotAGroup);
    }
    let (count, already): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(user_id = ?2), 0) FROM members WHERE conversation_id = ?1",
    )
    .bind(conv)
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    if already > 0 {
        return Ok(AddMember::AlreadyMember);
    }
    if count as usize >= max {
        return Ok(AddMember::Full);
    }
    sqlx::query(
        "INSERT INTO members (conversation_id, user_id, joined_at, last_read, visible_after)
         SELECT ?1, ?2, ?3, s.last, s.last
         FROM (SELECT COALESCE(MAX(seq), 0) AS last FROM messages WHERE conversation_id = ?1) s",
    )
    .bind(conv)
    .bind(user_id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(AddMember::Added)
}

/// Takes `user` out of a conversation; false if they were not in it.
pub async fn remove_member(
    pool: &SqlitePool,
    conv: i64,
    user_id: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM members WHERE conversation_id = ? AND user_id = ?")
        .bind(conv)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Joins a public room. `Ok(None)`: no such room. `Ok(Some(true))`: newly joined.
pub async fn join_room(
    pool: &SqlitePool,
    room: i64,
    user_id: i64,
) -> Result<Option<bool>, sqlx::Error> {
    let is_room: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM conversations WHERE id = ? AND kind = 'room'")
            .bind(room)
            .fetch_optional(pool)
            .await?;
    if is_room.is_none() {
        return Ok(None);
    }
    let res = sqlx::query(
        // Someone joining a room has read nothing of its past, and owes it nothing either:
        // its unread count starts at the join.
        "INSERT INTO members (conversation_id, user_id, joined_at, last_read)
         VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?1))
         ON CONFLICT DO NOTHING",
    )
    .bind(room)
    .bind(user_id)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(Some(res.rows_affected() == 1))
}

/// The one-to-one conversation of two users, created with both as members if it is new.
/// Returns its id and whether it was created now.
pub async fn get_or_create_dm(
    pool: &SqlitePool,
    a: i64,
    b: i64,
) -> Result<(i64, bool), sqlx::Error> {
    let key = format!("{}:{}", a.min(b), a.max(b));
    let mut tx = begin_write(pool).await?;
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO conversations (kind, dm_key, created_at) VALUES ('dm', ?, ?)
         ON CONFLICT (dm_key) DO NOTHING RETURNING id",
    )
    .bind(&key)
    .bind(now_ms())
    .fetch_optional(&mut *tx)
    .await?;
    let result = match created {
        Some(id) => {
            for user in [a, b] {
                sqlx::query(
                    "INSERT INTO members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)",
                )
                .bind(id)
                .bind(user)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            (id, true)
        }
        None => {
            let id = sqlx::query_scalar("SELECT id FROM conversations WHERE dm_key = ?")
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?;
            (id, false)
        }
    };
    tx.commit().await?;
    Ok(result)
}

const MESSAGE_SELECT: &str = "SELECT m.conversation_id, m.seq, m.sender_id, u.display_name,
        m.client_id, m.body, m.created_at, m.kind
     FROM messages m JOIN users u ON u.id = m.sender_id";

fn message_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<MessageView, sqlx::Error> {
    Ok(MessageView {
        conv: r.try_get("conversation_id")?,
        seq: r.try_get("seq")?,
        from: r.try_get("sender_id")?,
        from_name: r.try_get("display_name")?,
        client_id: r.try_get("client_id")?,
        body: r.try_get("body")?,
        at: r.try_get("created_at")?,
        kind: MessageKind::parse(r.try_get("kind")?).unwrap_or_default(),
    })
}

/// Messages with `after < seq`, oldest first, at most `limit`.
pub async fn messages_after(
    pool: &SqlitePool,
    conv: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<MessageView>, sqlx::Error> {
    let sql = format!(
        "{MESSAGE_SELECT} WHERE m.conversation_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(conv)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(pool)
        .await?;
    rows.iter().map(message_from_row).collect()
}

/// Messages with `from <= seq <= to`, oldest first.
pub async fn messages_between(
    pool: &SqlitePool,
    conv: i64,
    from: i64,
    to: i64,
) -> Result<Vec<MessageView>, sqlx::Error> {
    let sql = format!(
        "{MESSAGE_SELECT} WHERE m.conversation_id = ? AND m.seq BETWEEN ? AND ? ORDER BY m.seq"
    );
    let rows = sqlx::query(&sql)
        .bind(conv)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
    rows.iter().map(message_from_row).collect()
}

/// The `limit` messages just before `before` (or the newest ones) and after `floor`, oldest
/// first, and whether older ones (after `floor`) exist.
pub async fn messages_before(
    pool: &SqlitePool,
    conv: i64,
    floor: i64,
    before: Option<i64>,
    limit: u32,
) -> Result<(Vec<MessageView>, bool), sqlx::Error> {
    let sql = format!(
        "{MESSAGE_SELECT} WHERE m.conversation_id = ? AND m.seq > ? AND m.seq < ?
         ORDER BY m.seq DESC LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(conv)
        .bind(floor)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(pool)
        .await?;
    let has_more = rows.len() > limit as usize;
    let mut msgs = rows
        .iter()
        .take(limit as usize)
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    msgs.reverse();
    Ok((msgs, has_more))
}

/// Creates public rooms with the given titles in one transaction; returns their ids.
pub async fn add_rooms(pool: &SqlitePool, titles: &[String]) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = begin_write(pool).await?;
    let mut ids = Vec::with_capacity(titles.len());
    for title in titles {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO conversations (kind, title, created_at) VALUES ('room', ?, ?) RETURNING id",
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

/// Every public room with its number of members: (id, members, title).
pub async fn list_rooms(pool: &SqlitePool) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.id, c.title, (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id) AS n
         FROM conversations c WHERE c.kind = 'room' ORDER BY c.id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("n")?,
                r.try_get::<Option<String>, _>("title")?.unwrap_or_default(),
            ))
        })
        .collect()
}

// ---- Contacts, blocks, groups and profiles -------------------------------------------------

/// One entry of a user's contact list as stored, before presence is added.
#[derive(Debug, Clone)]
pub struct ContactRow {
    pub user: UserSummary,
    /// None: no relationship, only a block.
    pub state: Option<ContactState>,
    pub group: Option<i64>,
    /// The owner has blocked this user.
    pub blocked: bool,
    /// This user has blocked the owner.
    pub blocked_me: bool,
}

fn state_of(s: Option<String>) -> Option<ContactState> {
    match s.as_deref() {
        Some("accepted") => Some(ContactState::Accepted),
        Some("requested") => Some(ContactState::Requested),
        Some("incoming") => Some(ContactState::Incoming),
        _ => None,
    }
}

const CONTACT_COLUMNS: &str = "u.id, u.username, u.display_name, u.is_guest, u.is_bot,
    EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?1 AND b.blocked_id = u.id) AS blocked,
    EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = ?1) AS blocked_me";

fn contact_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ContactRow, sqlx::Error> {
    let blocked = r.try_get::<i64, _>("blocked")? != 0;
    let mut state = state_of(r.try_get("state")?);
    // A request from someone the owner blocked is not shown as a request.
    if blocked && state == Some(ContactState::Incoming) {
        state = None;
    }
    Ok(ContactRow {
        user: user_from_row(r)?,
        state,
        group: r.try_get("group_id")?,
        blocked,
        blocked_me: r.try_get::<i64, _>("blocked_me")? != 0,
    })
}

/// The contact list of `owner`: relationships in every state, and blocked users.
pub async fn contacts_of(pool: &SqlitePool, owner: i64) -> Result<Vec<ContactRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CONTACT_COLUMNS}, c.state, c.group_id FROM contacts c
         JOIN users u ON u.id = c.contact_id WHERE c.owner_id = ?1
         UNION ALL
         SELECT {CONTACT_COLUMNS}, NULL AS state, NULL AS group_id FROM blocks bl
         JOIN users u ON u.id = bl.blocked_id WHERE bl.blocker_id = ?1
           AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.owner_id = ?1 AND c.contact_id = bl.blocked_id)
         ORDER BY 3 COLLATE NOCASE, 1"
    );
    let rows = sqlx::query(&sql).bind(owner).fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let c = contact_from_row(r)?;
        if c.state.is_some() || c.blocked {
            out.push(c);
        }
    }
    Ok(out)
}

/// `other` as an entry of `owner`'s list; None when there is nothing to show.
pub async fn contact_of(
    pool: &SqlitePool,
    owner: i64,
    other: i64,
) -> Result<Option<ContactRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CONTACT_COLUMNS}, c.state, c.group_id FROM users u
         LEFT JOIN contacts c ON c.owner_id = ?1 AND c.contact_id = u.id
         WHERE u.id = ?2"
    );
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(other)
        .fetch_optional(pool)
        .await?;
    Ok(match row {
        Some(r) => Some(contact_from_row(&r)?).filter(|c| c.state.is_some() || c.blocked),
        None => None,
    })
}

/// What a contact request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// A new request; the other side now has it as incoming.
    Sent,
    /// They had asked first: both are contacts now.
    Accepted,
    /// Nothing changed (already requested or already contacts).
    Unchanged,
}

/// `from` asks `to` to be contacts.
pub async fn request_contact(
    pool: &SqlitePool,
    from: i64,
    to: i64,
) -> Result<Requested, sqlx::Error> {
    let mut tx = begin_write(pool).await?;
    let existing: Option<String> =
        sqlx::query_scalar("SELECT state FROM contacts WHERE owner_id = ? AND contact_id = ?")
            .bind(from)
            .bind(to)
            .fetch_optional(&mut *tx)
            .await?;
    let outcome = match existing.as_deref() {
        Some("incoming") => {
            sqlx::query(
                "UPDATE contacts SET state = 'accepted'
                 WHERE (owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1)",
            )
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?;
            Requested::Accepted
        }
        Some(_) => Requested::Unchanged,
        None => {
            let now = now_ms();
            sqlx::query(
                "INSERT INTO contacts (owner_id, contact_id, state, created_at)
                 VALUES (?1, ?2, 'requested', ?3), (?2, ?1, 'incoming', ?3)",
            )
            .bind(from)
            .bind(to)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Requested::Sent
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// `me` accepts the request of `other`; false when there was no such request.
pub async fn accept_contact(pool: &SqlitePool, me: i64, other: i64) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(
        "UPDATE contacts SET state = 'accepted'
         WHERE ((owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1))
           AND EXISTS (SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact_id = ?2 AND state = 'incoming')",
    )
    .bind(me)
    .bind(other)
    .execute(pool)
    .await?;
    Ok(res.rows_affected() > 0)
}

/// Ends the relationship of `me` and `other` on both sides. With `only_incoming`, only a
/// request `other` sent (declining it). Returns whether anything was removed.
pub async fn remove_contact(
    pool: &SqlitePool,
    me: i64,
    other: i64,
    only_incoming: bool,
) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(
        "DELETE FROM contacts
         WHERE ((owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1))
           AND (?3 = 0 OR EXISTS (SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact_id = ?2 AND state = 'incoming'))",
    )
    .bind(me)
    .bind(other)
    .bind(only_incoming as i64)
    .execute(pool)
    .await?;
    Ok(res.rows_affected() > 0)
}

/// Blocks or unblocks; a pending request from the blocked user is declined. Returns whether
/// anything changed.
pub async fn set_block(
    pool: &SqlitePool,
    me: i64,
    other: i64,
    blocked: bool,
) -> Result<bool, sqlx::Error> {
    let mut tx = begin_write(pool).await?;
    let changed = if blocked {
        sqlx::query(
            "DELETE FROM contacts
             WHERE ((owner_id = ?1 AND contact_id = ?2) OR (owner_id = ?2 AND contact_id = ?1))
               AND EXISTS (SELECT 1 FROM contacts WHERE owner_id = ?1 AND contact_id = ?2 AND state = 'incoming')",
        )
        .bind(me)
        .bind(other)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)
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
        sqlx::query("DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
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

/// Every block, as (blocker, blocked); loaded once at start.
pub async fn all_blocks(pool: &SqlitePool) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT blocker_id, blocked_id FROM blocks")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Users who may see `user`'s presence: accepted contacts that `user` has not blocked.
pub async fn presence_viewers(pool: &SqlitePool, user: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.owner_id FROM contacts c
         WHERE c.contact_id = ?1 AND c.state = 'accepted'
           AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?1 AND b.blocked_id = c.owner_id)",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

/// A user's chosen status, personal message, display name and picture version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub status: Status,
    pub personal_message: String,
    pub display_name: String,
    pub picture: Option<String>,
}

pub async fn profile(pool: &SqlitePool, user: i64) -> Result<Option<Profile>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.status, u.personal_message, u.display_name, p.version
         FROM users u LEFT JOIN pictures p ON p.user_id = u.id WHERE u.id = ?",
    )
    .bind(user)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(Profile {
            status: Status::parse(r.try_get("status")?).unwrap_or_default(),
            personal_message: r.try_get("personal_message")?,
            display_name: r.try_get("display_name")?,
            picture: r.try_get("version")?,
        })
    })
    .transpose()
}

/// Stores (`Some((version, png))`) or removes the user's display picture; returns the
/// profile as it is now (None: no such user).
pub async fn set_picture(
    pool: &SqlitePool,
    user: i64,
    picture: Option<(&str, &[u8])>,
) -> Result<Option<Profile>, sqlx::Error> {
    match picture {
        Some((version, png)) => {
            sqlx::query(
                "INSERT INTO pictures (user_id, version, png, updated_at)
                 SELECT id, ?2, ?3, ?4 FROM users WHERE id = ?1
                 ON CONFLICT (user_id) DO UPDATE
                 SET version = excluded.version, png = excluded.png, updated_at = excluded.updated_at",
            )
            .bind(user)
            .bind(version)
            .bind(png)
            .bind(now_ms())
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM pictures WHERE user_id = ?")
                .bind(user)
                .execute(pool)
                .await?;
        }
    }
    profile(pool, user).await
}

/// The stored picture of `user`: its version and PNG bytes.
pub async fn picture(
    pool: &SqlitePool,
    user: i64,
) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT version, png FROM pictures WHERE user_id = ?")
        .bind(user)
        .fetch_optional(pool)
        .await
}

/// Whether `viewer` may see `owner`'s presence, personal message and picture: they are
/// accepted contacts and `owner` has not blocked `viewer`.
pub async fn may_see_presence(
    pool: &SqlitePool,
    viewer: i64,
    owner: i64,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM contacts c
         WHERE c.owner_id = ?1 AND c.contact_id = ?2 AND c.state = 'accepted'
           AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = ?2 AND b.blocked_id = ?1)",
    )
    .bind(viewer)
    .bind(owner)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Changes what is given; returns the profile as it is now.
pub async fn update_profile(
    pool: &SqlitePool,
    user: i64,
    status: Option<Status>,
    display_name: Option<&str>,
    personal_message: Option<&str>,
) -> Result<Option<Profile>, sqlx::Error> {
    sqlx::query(
        "UPDATE users SET status = COALESCE(?, status), display_name = COALESCE(?, display_name),
             personal_message = COALESCE(?, personal_message)
         WHERE id = ?",
    )
    .bind(status.map(Status::as_str))
    .bind(display_name)
    .bind(personal_message)
    .bind(user)
    .execute(pool)
    .await?;
    profile(pool, user).await
}

pub async fn groups_of(pool: &SqlitePool, owner: i64) -> Result<Vec<ContactGroup>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name FROM contact_groups WHERE owner_id = ? ORDER BY name COLLATE NOCASE, id",
    )
    .bind(owner)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ContactGroup {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            })
        })
        .collect()
}

/// What a change to a contact group did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChange {
    Done(i64),
    /// Another group of this owner has that name.
    NameTaken,
    /// No such group of this owner.
    NotFound,
    /// The owner has the most groups allowed.
    TooMany,
}

pub async fn create_group(
    pool: &SqlitePool,
    owner: i64,
    name: &str,
    max: usize,
) -> Result<GroupChange, sqlx::Error> {
    let mut tx = begin_write(pool).await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contact_groups WHERE owner_id = ?")
        .bind(owner)
        .fetch_one(&mut *tx)
        .await?;
    if count as usize >= max {
        return Ok(GroupChange::TooMany);
    }
    let res = sqlx::query_scalar(
        "INSERT INTO contact_groups (owner_id, name, created_at) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(owner)
    .bind(name)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await;
    match res {
        Ok(id) => {
            tx.commit().await?;
            Ok(GroupChange::Done(id))
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(GroupChange::NameTaken),
        Err(e) => Err(e),
    }
}

pub async fn rename_group(
    pool: &SqlitePool,
    owner: i64,
    id: i64,
    name: &str,
) -> Result<GroupChange, sqlx::Error> {
    let res = sqlx::query("UPDATE contact_groups SET name = ? WHERE id = ? AND owner_id = ?")
        .bind(name)
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await;
    match res {
        Ok(r) if r.rows_affected() == 0 => Ok(GroupChange::NotFound),
        Ok(_) => Ok(GroupChange::Done(id)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(GroupChange::NameTaken),
        Err(e) => Err(e),
    }
}

/// Deletes a group; its contacts stay, in no group.
pub async fn delete_group(pool: &SqlitePool, owner: i64, id: i64) -> Result<bool, sqlx::Error> {
    let res = sqlx::query("DELETE FROM contact_groups WHERE id = ? AND owner_id = ?")
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(res.rows_affected() > 0)
}

/// Moves a contact of `owner` into `group` (None: out of any group). False when the contact
/// or the group is not the owner's.
pub async fn set_contact_group(
    pool: &SqlitePool,
    owner: i64,
    contact: i64,
    group: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(
        "UPDATE contacts SET group_id = ?3 WHERE owner_id = ?1 AND contact_id = ?2
           AND (?3 IS NULL OR EXISTS (SELECT 1 FROM contact_groups g WHERE g.id = ?3 AND g.owner_id = ?1))",
    )
    .bind(owner)
    .bind(contact)
    .bind(group)
    .execute(pool)
    .await?;
    Ok(res.rows_affected() > 0)
}

// ---- Bots ------------------------------------------------------------------------------------

/// Creates the bot account `handle` or brings it up to date; its id, or None when a person
/// already has that username.
pub async fn upsert_bot(
    pool: &SqlitePool,
    handle: &str,
    display_name: &str,
    personal_message: &str,
    status: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, display_name, personal_message, status, is_bot, created_at)
         VALUES (?1, ?2, ?3, ?4, 1, ?5)
         ON CONFLICT (username) DO UPDATE
         SET display_name = excluded.display_name, personal_message = excluded.personal_message,
             status = excluded.status
         WHERE users.is_bot = 1
         RETURNING id",
    )
    .bind(handle)
    .bind(display_name)
    .bind(personal_message)
    .bind(status)
    .bind(now_ms())
    .fetch_optional(pool)
    .await?;
    Ok(id)
}

/// The kind of `conv` and the bots among its members; None if there is no such
/// conversation.
pub async fn bots_in(
    pool: &SqlitePool,
    conv: i64,
) -> Result<Option<(ConversationKind, Vec<i64>)>, sqlx::Error> {
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM conversations WHERE id = ?")
        .bind(conv)
        .fetch_optional(pool)
        .await?;
    let Some(kind) = kind else { return Ok(None) };
    let kind = kind_of(&kind);
    if kind == ConversationKind::Room {
        // Bots never join rooms.
        return Ok(Some((kind, Vec::new())));
    }
    let bots = sqlx::query_scalar(
        "SELECT m.user_id FROM members m JOIN users u ON u.id = m.user_id
         WHERE m.conversation_id = ? AND u.is_bot = 1 ORDER BY m.joined_at, m.user_id",
    )
    .bind(conv)
    .fetch_all(pool)
    .await?;
    Ok(Some((kind, bots)))
}

/// Every (conversation, kind, bot) where a bot is a member, in order of arrival.
pub async fn bot_conversations(
    pool: &SqlitePool,
) -> Result<Vec<(i64, ConversationKind, i64)>, sqlx::Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT m.conversation_id, c.kind, m.user_id
         FROM members m JOIN users u ON u.id = m.user_id
         JOIN conversations c ON c.id = m.conversation_id
         WHERE u.is_bot = 1 ORDER BY m.conversation_id, m.joined_at, m.user_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(conv, kind, bot)| (conv, kind_of(&kind), bot))
        .collect())
}

/// Whether the administrator lets the bots answer (`messenger bots on|off`).
pub async fn bots_enabled(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'bots'")
        .fetch_optional(pool)
        .await?;
    Ok(value.as_deref() != Some("off"))
}

pub async fn set_bots_enabled(pool: &SqlitePool, on: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ('bots', ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(if on { "on" } else { "off" })
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether a bot reply may be made today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Granted,
    /// This user had their replies for the day.
    UserSpent,
    /// Everyone together had the day's replies.
    AllSpent,
}

/// Counts one bot reply for `user` on `day` if both the user's and the global count are
/// under their limits; otherwise counts nothing. One transaction whose first statement
/// writes, so concurrent takers queue on SQLite's write lock and each sees the count the
/// previous one left: a limit is never exceeded.
pub async fn take_bot_quota(
    pool: &SqlitePool,
    day: i64,
    user: i64,
    user_limit: u32,
    global_limit: u32,
) -> Result<Quota, sqlx::Error> {
    if user_limit == 0 {
        return Ok(Quota::UserSpent);
    }
    if global_limit == 0 {
        return Ok(Quota::AllSpent);
    }
    let bump = "INSERT INTO bot_usage (day, user_id, replies) VALUES (?1, ?2, 1)
                ON CONFLICT (day, user_id) DO UPDATE SET replies = replies + 1
                WHERE replies < ?3";
    let mut tx = begin_write(pool).await?;
    let mine = sqlx::query(bump)
        .bind(day)
        .bind(user)
        .bind(user_limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if mine == 0 {
        tx.rollback().await?;
        return Ok(Quota::UserSpent);
    }
    // User 0 is no one: its row holds the total.
    let all = sqlx::query(bump)
        .bind(day)
        .bind(0i64)
        .bind(global_limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if all == 0 {
        tx.rollback().await?;
        return Ok(Quota::AllSpent);
    }
    tx.commit().await?;
    Ok(Quota::Granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings the writer's speed and durability rest on, read back from SQLite on the
    /// connections as opened (a pragma misspelt in the options would be silently ignored).
    #[tokio::test]
    async fn connections_are_durable_and_keep_temporary_files_in_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("m.db")).await.expect("open");
        // journal_mode; synchronous (2 = FULL: the WAL is synced at every commit);
        // temp_store (2 = MEMORY: statement journals never touch the disk); foreign_keys.
        let expected = ("wal".to_owned(), 2, 2, 1);
        let mut pooled = store.pool().acquire().await.expect("pooled");
        let mut read = Vec::new();
        for name in ["synchronous", "temp_store", "foreign_keys"] {
            let value: i64 = sqlx::query_scalar(&format!("PRAGMA {name}"))
                .fetch_one(&mut *pooled)
                .await
                .unwrap();
            read.push(value);
        }
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *pooled)
            .await
            .unwrap();
        assert_eq!((mode, read[0], read[1], read[2]), expected, "pool");
        let checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *pooled)
            .await
            .unwrap();
        assert_eq!(checkpoint, 10_000, "pool");

        // The message writer's own connection, opened apart from the pool.
        let writer = store.writer_connection().expect("writer");
        let int = |name: &str| -> i64 {
            writer
                .pragma_query_value(None, name, |row| row.get(0))
                .unwrap()
        };
        let mode: String = writer
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(
            (
                mode,
                int("synchronous"),
                int("temp_store"),
                int("foreign_keys")
            ),
            expected,
            "writer"
        );
        assert_eq!(int("busy_timeout"), 10_000);
        assert_eq!(int("wal_autocheckpoint"), 10_000);
        assert_eq!(int("cache_size"), -i64::from(WRITER_CACHE_KIB));
    }
}
