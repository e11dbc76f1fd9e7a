//! Shared files on PostgreSQL (`store::files`).

use super::PgStore;
use crate::server::store::files::{FileRow, FileStore, Sharing};
use crate::server::store::{Result, StoreError};
use async_trait::async_trait;
use std::collections::HashSet;

/// A row as the queries read it.
#[derive(Debug, sqlx::FromRow)]
struct Record {
    id: i64,
    conversation_id: i64,
    uploader_id: i64,
    client_id: String,
    name: String,
    mime: String,
    size: i64,
    object: String,
    view_object: Option<String>,
    view_size: Option<i64>,
    thumb_object: Option<String>,
    thumb_size: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
    key_id: Option<String>,
    created_at: i64,
}

impl From<Record> for FileRow {
    fn from(r: Record) -> Self {
        FileRow {
            id: r.id,
            conv: r.conversation_id,
            uploader: r.uploader_id,
            client_id: r.client_id,
            name: r.name,
            mime: r.mime,
            size: r.size,
            object: r.object,
            view: r.view_object.zip(r.view_size),
            thumb: r.thumb_object.zip(r.thumb_size),
            width: r.width,
            height: r.height,
            key_id: r.key_id,
            created_at: r.created_at,
        }
    }
}

/// The columns of [`Record`].
const COLUMNS: &str = "id, conversation_id, uploader_id, client_id, name, mime, size, object, \
     view_object, view_size, thumb_object, thumb_size, width, height, key_id, created_at";

/// How often an upload is recorded again when another one for the same message got in first.
const ATTEMPTS: usize = 3;

#[async_trait]
impl FileStore for PgStore {
    async fn share_target(&self, conv: i64, user: i64) -> Result<Option<Option<i64>>> {
        let row: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT c.kind,
                 (SELECT o.user_id FROM members o
                  WHERE o.conversation_id = c.id AND o.user_id <> $2 LIMIT 1)
             FROM members m
             JOIN conversations c ON c.id = m.conversation_id AND c.archived_at IS NULL
             WHERE m.conversation_id = $1 AND m.user_id = $2",
        )
        .bind(conv)
        .bind(user)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(kind, peer)| if kind == "dm" { peer } else { None }))
    }

    async fn insert_file(&self, f: &FileRow) -> Result<(i64, Vec<String>)> {
        let (view, view_size) = f.view.clone().unzip();
        let (thumb, thumb_size) = f.thumb.clone().unzip();
        // The earlier row of the same message is deleted and the new one inserted in one
        // transaction. Two uploads of the same message at once (on two nodes): the second's
        // insert waits for the first's commit and then inserts nothing; it starts over and
        // replaces the first's row, as it would have come second under SQLite's one writer.
        for _ in 0..ATTEMPTS {
            let mut tx = self.pool().begin().await?;
            let old: Option<Record> = sqlx::query_as(&format!(
                "DELETE FROM files WHERE conversation_id = $1 AND uploader_id = $2 AND client_id = $3
                 RETURNING {COLUMNS}"
            ))
            .bind(f.conv)
            .bind(f.uploader)
            .bind(&f.client_id)
            .fetch_optional(&mut *tx)
            .await?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO files (conversation_id, uploader_id, client_id, name, mime, size,
                     object, view_object, view_size, thumb_object, thumb_size, width, height,
                     key_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (conversation_id, uploader_id, client_id) DO NOTHING
                 RETURNING id",
            )
            .bind(f.conv)
            .bind(f.uploader)
            .bind(&f.client_id)
            .bind(&f.name)
            .bind(&f.mime)
            .bind(f.size)
            .bind(&f.object)
            .bind(&view)
            .bind(view_size)
            .bind(&thumb)
            .bind(thumb_size)
            .bind(f.width)
            .bind(f.height)
            .bind(&f.key_id)
            .bind(f.created_at)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                tx.commit().await?;
                let replaced = old.map(|o| FileRow::from(o).objects()).unwrap_or_default();
                return Ok((id, replaced));
            }
        }
        Err(StoreError::from(
            Box::<dyn std::error::Error + Send + Sync>::from(
                "another upload of the same message kept getting in first",
            ),
        ))
    }

    async fn file(&self, id: i64) -> Result<Option<FileRow>> {
        let row: Option<Record> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM files WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(Into::into))
    }

    async fn file_of_message(
        &self,
        conv: i64,
        uploader: i64,
        client_id: &str,
    ) -> Result<Option<FileRow>> {
        let row: Option<Record> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM files
             WHERE conversation_id = $1 AND uploader_id = $2 AND client_id = $3"
        ))
        .bind(conv)
        .bind(uploader)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(Into::into))
    }

    async fn sharing(&self, conv: i64, sender: i64, client_id: &str) -> Result<Option<Sharing>> {
        let row: Option<(i64, i64, bool)> = sqlx::query_as(
            "SELECT seq, created_at, kind = 'file' FROM messages
             WHERE client_id = $1 AND conversation_id = $2 AND sender_id = $3",
        )
        .bind(client_id)
        .bind(conv)
        .bind(sender)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(seq, at, live)| Sharing { seq, at, live }))
    }

    async fn usage(&self, user: i64) -> Result<i64> {
        // SUM of BIGINT is NUMERIC in PostgreSQL: cast back.
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(size + COALESCE(view_size, 0) + COALESCE(thumb_size, 0)), 0)::bigint
             FROM files WHERE uploader_id = $1",
        )
        .bind(user)
        .fetch_one(self.pool())
        .await?)
    }

    async fn collectable(&self, unshared_before: i64, limit: i64) -> Result<Vec<FileRow>> {
        let rows: Vec<Record> = sqlx::query_as(
            "SELECT f.id, f.conversation_id, f.uploader_id, f.client_id, f.name, f.mime, f.size,
                 f.object, f.view_object, f.view_size, f.thumb_object, f.thumb_size, f.width,
                 f.height, f.key_id, f.created_at
             FROM files f
             LEFT JOIN messages m ON m.client_id = f.client_id
                 AND m.conversation_id = f.conversation_id AND m.sender_id = f.uploader_id
             WHERE (m.seq IS NOT NULL AND m.kind <> 'file')
                OR (m.seq IS NULL AND f.created_at < $1)
             ORDER BY f.id LIMIT $2",
        )
        .bind(unshared_before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn delete_file(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn files_sealed_with(&self, key_id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE key_id = $1")
                .bind(key_id)
                .fetch_one(self.pool())
                .await?,
        )
    }

    async fn known_objects(&self) -> Result<HashSet<String>> {
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT object, view_object, thumb_object FROM files")
                .fetch_all(self.pool())
                .await?;
        let mut out = HashSet::with_capacity(rows.len());
        for (object, view, thumb) in rows {
            out.insert(object);
            out.extend(view);
            out.extend(thumb);
        }
        Ok(out)
    }
}
