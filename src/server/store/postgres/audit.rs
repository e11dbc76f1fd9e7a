//! The audit log's entries on PostgreSQL (`store::audit`), appended one at a time, each
//! chained to the last whichever node appends it.

use super::PgStore;
use crate::server::store::audit::{AuditStore, Entry, NewEntry, GENESIS};
use crate::server::store::StoreError;
use async_trait::async_trait;

/// An entry as the queries read it: id, at, event, user_id, actor, address, detail,
/// prev_hash, hash.
type EntryRow = (
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

fn entry_of(r: EntryRow) -> Entry {
    let (id, at, event, user, actor, address, detail, prev_hash, hash) = r;
    Entry {
        id,
        at,
        event,
        user,
        actor,
        address,
        detail,
        prev_hash,
        hash,
    }
}

const ENTRY_COLUMNS: &str = "id, at, event, user_id, actor, address, detail, prev_hash, hash";

#[async_trait]
impl AuditStore for PgStore {
    async fn append(&self, entry: &NewEntry, at: i64) -> Result<Entry, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Appends queue on this lock, taken by every node (readers are not held up): each
        // reads the last entry only after the one before it committed, so two appends never
        // follow the same entry or take the same id. (SQLite's single writer did this.)
        sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (id, prev_hash) = match last {
            Some((id, hash)) => (id + 1, hash),
            None => (1, GENESIS.to_owned()),
        };
        let mut stored = Entry {
            id,
            at,
            event: entry.event.to_owned(),
            user: entry.user,
            actor: entry.actor.clone(),
            address: entry.address.clone(),
            detail: entry.detail.to_string(),
            prev_hash,
            hash: String::new(),
        };
        stored.hash = stored.computed_hash();
        // The id is given here, not by the identity: the hash covers it.
        sqlx::query(
            "INSERT INTO audit_log (id, at, event, user_id, actor, address, detail, prev_hash, hash)
             VALUES ($1::bigint, $2::bigint, $3::text, $4::bigint, $5::text, $6::text, $7::text,
                     $8::text, $9::text)",
        )
        .bind(stored.id)
        .bind(stored.at)
        .bind(&stored.event)
        .bind(stored.user)
        .bind(&stored.actor)
        .bind(&stored.address)
        .bind(&stored.detail)
        .bind(&stored.prev_hash)
        .bind(&stored.hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn entries_before(&self, before: i64, limit: i64) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log
             WHERE id < $1::bigint ORDER BY id DESC LIMIT $2::bigint"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(entry_of).collect())
    }

    async fn entries_after(&self, after: i64, limit: i64) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log
             WHERE id > $1::bigint ORDER BY id LIMIT $2::bigint"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(entry_of).collect())
    }
}
