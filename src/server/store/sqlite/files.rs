//! Shared files on SQLite (`store::files`).

use super::SqliteStore;
use crate::server::store::files::{FileRow, FileStore, Sharing};
use crate::server::store::Result;
use async_trait::async_trait;
use std::collections::HashSet;

/// A row as the queries read it.
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

#[async_trait]
impl FileStore for SqliteStore {
    async fn share_target(&self, conv: i64, user: i64) -> Result<Option<Option<i64>>> {
        let row = sqlx::query!(
            r#"SELECT c.kind,
                   (SELECT o.user_id FROM members o
                    WHERE o.conversation_id = c.id AND o.user_id <> ?2 LIMIT 1) AS "peer?: i64"
               FROM members m
               JOIN conversations c ON c.id = m.conversation_id AND c.archived_at IS NULL
               WHERE m.conversation_id = ?1 AND m.user_id = ?2"#,
            conv,
            user,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| if r.kind == "dm" { r.peer } else { None }))
    }

    async fn insert_file(&self, f: &FileRow) -> Result<(i64, Vec<String>)> {
        let mut tx = self.begin_write().await?;
        let old = sqlx::query_as!(
            Record,
            r#"SELECT id AS "id!", conversation_id, uploader_id, client_id, name, mime, size,
                   object, view_object, view_size, thumb_object, thumb_size, width, height,
                   key_id, created_at
               FROM files WHERE conversation_id = ? AND uploader_id = ? AND client_id = ?"#,
            f.conv,
            f.uploader,
            f.client_id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(old) = &old {
            sqlx::query!("DELETE FROM files WHERE id = ?", old.id)
                .execute(&mut *tx)
                .await?;
        }
        let (view, view_size) = f.view.clone().unzip();
        let (thumb, thumb_size) = f.thumb.clone().unzip();
        let id = sqlx::query_scalar!(
            r#"INSERT INTO files (conversation_id, uploader_id, client_id, name, mime, size,
                   object, view_object, view_size, thumb_object, thumb_size, width, height,
                   key_id, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id AS "id!""#,
            f.conv,
            f.uploader,
            f.client_id,
            f.name,
            f.mime,
            f.size,
            f.object,
            view,
            view_size,
            thumb,
            thumb_size,
            f.width,
            f.height,
            f.key_id,
            f.created_at,
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let replaced = old.map(|o| FileRow::from(o).objects()).unwrap_or_default();
        Ok((id, replaced))
    }

    async fn file(&self, id: i64) -> Result<Option<FileRow>> {
        Ok(sqlx::query_as!(
            Record,
            r#"SELECT id AS "id!", conversation_id, uploader_id, client_id, name, mime, size,
                   object, view_object, view_size, thumb_object, thumb_size, width, height,
                   key_id, created_at
               FROM files WHERE id = ?"#,
            id
        )
        .fetch_optional(self.pool())
        .await?
        .map(Into::into))
    }

    async fn file_of_message(
        &self,
        conv: i64,
        uploader: i64,
        client_id: &str,
    ) -> Result<Option<FileRow>> {
        Ok(sqlx::query_as!(
            Record,
            r#"SELECT id AS "id!", conversation_id, uploader_id, client_id, name, mime, size,
                   object, view_object, view_size, thumb_object, thumb_size, width, height,
                   key_id, created_at
               FROM files WHERE conversation_id = ? AND uploader_id = ? AND client_id = ?"#,
            conv,
            uploader,
            client_id,
        )
        .fetch_optional(self.pool())
        .await?
        .map(Into::into))
    }

    async fn sharing(&self, conv: i64, sender: i64, client_id: &str) -> Result<Option<Sharing>> {
        let row = sqlx::query!(
            r#"SELECT seq AS "seq!", created_at AS "at!", kind = 'file' AS "live!: bool"
               FROM messages
               WHERE client_id = ? AND conversation_id = ? AND sender_id = ?"#,
            client_id,
            conv,
            sender,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| Sharing {
            seq: r.seq,
            at: r.at,
            live: r.live,
        }))
    }

    async fn usage(&self, user: i64) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COALESCE(SUM(size + COALESCE(view_size, 0) + COALESCE(thumb_size, 0)), 0)
                   AS "bytes!: i64"
               FROM files WHERE uploader_id = ?"#,
            user
        )
        .fetch_one(self.pool())
        .await?)
    }

    async fn collectable(&self, unshared_before: i64, limit: i64) -> Result<Vec<FileRow>> {
        Ok(sqlx::query_as!(
            Record,
            r#"SELECT f.id AS "id!", f.conversation_id, f.uploader_id, f.client_id, f.name,
                   f.mime, f.size, f.object, f.view_object, f.view_size, f.thumb_object,
                   f.thumb_size, f.width, f.height, f.key_id, f.created_at
               FROM files f
               LEFT JOIN messages m ON m.client_id = f.client_id
                   AND m.conversation_id = f.conversation_id AND m.sender_id = f.uploader_id
               WHERE (m.seq IS NOT NULL AND m.kind <> 'file')
                  OR (m.seq IS NULL AND f.created_at < ?)
               ORDER BY f.id LIMIT ?"#,
            unshared_before,
            limit,
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    async fn delete_file(&self, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query!("DELETE FROM files WHERE id = ?", id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn files_sealed_with(&self, key_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM files WHERE key_id = ?"#,
            key_id
        )
        .fetch_one(self.pool())
        .await?)
    }

    async fn known_objects(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query!("SELECT object, view_object, thumb_object FROM files")
            .fetch_all(self.pool())
            .await?;
        let mut out = HashSet::with_capacity(rows.len());
        for r in rows {
            out.insert(r.object);
            out.extend(r.view_object);
            out.extend(r.thumb_object);
        }
        Ok(out)
    }
}
