//! The store on PostgreSQL (`--database postgres://...`, issue 30): the shared store and log
//! of several Messenger nodes. SQLite stays the embedded default.
//!
//! What is here so far (docs/SCALING.md says what is still to come): the schema's first
//! migration (`migrations-postgres/`), the message log with group commit (`log.rs`), the
//! message reads ([`MessageStore`]) and what the nodes' fan-out needs to catch up on what a
//! lost publish did not bring ([`crate::server::hub::nats::CatchUp`]).
//!
//! Queries here are checked at run time, not compile time: sqlx's `query!` macros are
//! described against one database per crate (`.sqlx/`, from SQLite), so the PostgreSQL
//! queries are checked by running the PostgreSQL tests against the machine's real server,
//! in `make test` and in CI.

mod account;
mod audit;
mod bots;
mod contacts;
mod conversations;
mod files;
mod limits;
pub mod log;
mod profiles;
mod sessions;
mod users;

use crate::protocol::{MessageKind, MessageView};
use crate::server::{
    hub::nats::CatchUp,
    store::{vault::Vault, MessageRecord, MessageStore, Result},
};
use anyhow::Context;
use async_trait::async_trait;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, PgPool,
};
use std::{
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

/// The schema, applied at start. Several nodes starting at once are safe: sqlx takes
/// PostgreSQL's advisory lock around the migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-postgres");

/// Connections per node. The message log holds one for each commit; reads take the others.
const POOL_SIZE: u32 = 16;

/// Longest a request waits for a connection. While PostgreSQL is down, a send fails after
/// this long with an error that asks the client to send again (never a false
/// acknowledgement), instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections per node for the shared rates' leases (one statement each, not waiting for
/// the disk: `limits.rs`).
const LEASE_POOL_SIZE: u32 = 4;

/// The PostgreSQL store: a pool, and the vault that seals and opens bodies.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Sessions with `synchronous_commit` off, for what a crash of PostgreSQL may lose
    /// without harm: the shared rates' leases.
    lease_pool: PgPool,
    vault: Arc<Vault>,
    /// The database's epoch (`store_epoch`): clients keep it with their cursors.
    epoch: Arc<str>,
    /// Client cursors found beyond their conversation's last message, since start.
    regressions: Arc<AtomicU64>,
}

impl PgStore {
    /// Connects to `url`, applies the schema's migrations and checks that `vault` holds every
    /// key that sealed a row.
    pub async fn connect(url: &str, vault: Arc<Vault>) -> anyhow::Result<Self> {
        let mut store = Self::connect_unchecked(url).await?;
        let pool = store.pool.clone();
        // Never serve garbage: every key that sealed a row must be in the ring.
        let used: Vec<String> = sqlx::query_scalar("SELECT key_id FROM keys_used ORDER BY key_id")
            .fetch_all(&pool)
            .await?;
        let have = vault.key_ids();
        if let Some(missing) = used.iter().find(|id| !have.contains(id)) {
            anyhow::bail!(
                "the PostgreSQL database holds messages sealed with key {missing}, which is not \
                 in the key ring: start every node with the key ring the others use (nothing \
                 was changed)"
            );
        }
        store.vault = vault;
        Ok(store)
    }

    /// Connects to `url` and applies the schema's migrations, with no key to open bodies
    /// (administration commands, which never read them).
    pub async fn connect_unchecked(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("the PostgreSQL address (postgres://user@host:port/database)")?
            .disable_statement_logging();
        let lease_pool = PgPoolOptions::new()
            .max_connections(LEASE_POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redacted(url)))?;
        MIGRATOR
            .run(&pool)
            .await
            .context("applying the PostgreSQL schema (migrations-postgres/)")?;
        let epoch: String = sqlx::query_scalar("SELECT epoch FROM store_epoch WHERE id = 1")
            .fetch_one(&pool)
            .await
            .context("reading the database's epoch")?;
        Ok(Self {
            pool,
            lease_pool,
            vault: Arc::new(Vault::plain()),
            epoch: epoch.into(),
            regressions: Arc::default(),
        })
    }

    /// The database's epoch: clients keep it with their cursors.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Counts a sequence regression seen from a client's cursor.
    pub fn count_regression(&self) {
        self.regressions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool whose commits do not wait for the disk (the shared rates' leases).
    fn lease_pool(&self) -> &PgPool {
        &self.lease_pool
    }

    pub fn vault(&self) -> Arc<Vault> {
        self.vault.clone()
    }
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => {
                format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The columns of a message and its sender's name, as [`MessageRecord`] reads them.
const MESSAGE_COLUMNS: &str = "m.conversation_id, m.seq, m.sender_id, u.display_name, \
     m.client_id, m.body, m.created_at, m.kind, m.key_id, m.sealed";

#[async_trait]
impl MessageStore for PgStore {
    /// The log raises `conversations.last_seq` in the transaction that inserts the messages,
    /// so it is the last stored number (0: none), read without scanning messages.
    async fn last_seq(&self, conv: i64) -> Result<i64> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM conversations WHERE id = $1")
                .bind(conv)
                .fetch_optional(&self.pool)
                .await?;
        Ok(last.unwrap_or(0))
    }

    async fn messages_after(&self, conv: i64, after: i64, limit: u32) -> Result<Vec<MessageView>> {
        let rows: Vec<MessageRecord> = sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.conversation_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3"
        ))
        .bind(conv)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.view(&self.vault)).collect()
    }

    async fn messages_before(
        &self,
        conv: i64,
        floor: i64,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<MessageView>, bool)> {
        let rows: Vec<MessageRecord> = sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.conversation_id = $1 AND m.seq > $2 AND m.seq < $3
             ORDER BY m.seq DESC LIMIT $4"
        ))
        .bind(conv)
        .bind(floor)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let has_more = rows.len() > limit as usize;
        let mut messages = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| r.view(&self.vault))
            .collect::<Result<Vec<MessageView>>>()?;
        messages.reverse();
        Ok((messages, has_more))
    }

    async fn message_meta(&self, conv: i64, seq: i64) -> Result<Option<(i64, MessageKind)>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT sender_id, kind FROM messages WHERE conversation_id = $1 AND seq = $2",
        )
        .bind(conv)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(sender, kind)| (sender, MessageKind::parse(&kind).unwrap_or_default())))
    }
}

#[async_trait]
impl CatchUp for PgStore {
    async fn newer(&self, known: &[(i64, i64)]) -> anyhow::Result<Vec<(i64, i64)>> {
        let (convs, seqs): (Vec<i64>, Vec<i64>) = known.iter().copied().unzip();
        Ok(sqlx::query_as(
            "SELECT c.id, c.last_seq
             FROM unnest($1::int8[], $2::int8[]) AS k(id, seq)
             JOIN conversations c ON c.id = k.id
             WHERE c.last_seq > k.seq",
        )
        .bind(convs)
        .bind(seqs)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn messages_after(
        &self,
        conv: i64,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<MessageView>> {
        Ok(MessageStore::messages_after(self, conv, after, limit).await?)
    }

    async fn ended_sessions(&self, sessions: &[i64]) -> anyhow::Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT k.id FROM unnest($1::int8[]) AS k(id)
             LEFT JOIN sessions s ON s.id = k.id
             WHERE s.id IS NULL OR s.revoked_at IS NOT NULL",
        )
        .bind(sessions)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[async_trait]
impl crate::server::store::Database for PgStore {
    fn vault(&self) -> Arc<Vault> {
        PgStore::vault(self)
    }
    fn epoch(&self) -> &str {
        PgStore::epoch(self)
    }
    fn count_regression(&self) {
        PgStore::count_regression(self)
    }
    async fn rekey_batch(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> Result<(Option<(i64, i64)>, u64)> {
        PgStore::rekey_batch(self, after, limit).await
    }
    async fn rows_per_key(&self) -> Result<Vec<(Option<String>, i64)>> {
        PgStore::rows_per_key(self).await
    }
    async fn forget_key(&self, key: &str) -> Result<()> {
        PgStore::forget_key(self, key).await
    }
    /// PostgreSQL's own checkpoints make commits part of its files.
    async fn checkpoint(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn an_address_is_shown_without_its_password() {
        assert_eq!(
            redacted("postgres://app:s3cret@db.example:5432/messenger"),
            "postgres://app:***@db.example:5432/messenger"
        );
        assert_eq!(
            redacted("postgres://app@db/messenger?sslmode=require"),
            "postgres://app@db/messenger?sslmode=require"
        );
        assert_eq!(redacted("postgres://db/m"), "postgres://db/m");
        assert_eq!(redacted("not an address"), "not an address");
    }
}
