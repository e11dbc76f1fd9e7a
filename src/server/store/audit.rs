//! The audit log's entries and where they are kept (the service that records them is
//! `server::audit`): each entry carries the SHA-256 of the previous entry and of its own
//! fields, so an edited, inserted or removed entry breaks the chain.

use super::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first entry follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub event: &'static str,
    /// Whom it is about.
    pub user: Option<i64>,
    /// Who did it: `user:<id>`, `admin` (the command line), `server`, `anonymous`.
    pub actor: String,
    pub address: Option<String>,
    /// What else there is to say, as a JSON object.
    pub detail: serde_json::Value,
}

/// An entry as stored (and exported, one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub user: Option<i64>,
    pub actor: String,
    pub address: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Entry {
    /// The hash this entry must carry: SHA-256 over the previous hash and every field, each
    /// in one JSON array on a line of its own (a field cannot spill into the next).
    pub fn computed_hash(&self) -> String {
        let fields = serde_json::json!([
            self.id,
            self.at,
            self.event,
            self.user,
            self.actor,
            self.address,
            self.detail
        ]);
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(fields.to_string().as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether this entry's hash is what its fields and `prev_hash` make.
    fn holds(&self) -> bool {
        self.computed_hash() == self.hash
    }
}

/// Where the entries are kept.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry at `at`, chained to the last one; the entry as stored.
    async fn append(&self, entry: &NewEntry, at: i64) -> Result<Entry, StoreError>;
    /// Entries with ids above `after`, in order, at most `limit`.
    async fn entries_after(&self, after: i64, limit: i64) -> Result<Vec<Entry>, StoreError>;
    /// The newest entries with ids below `before`, newest first, at most `limit`.
    async fn entries_before(&self, before: i64, limit: i64) -> Result<Vec<Entry>, StoreError>;
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The whole chain holds: this many entries.
    Holds(u64),
    /// The first entry that does not follow from the one before it (or whose own hash is
    /// not what its fields make).
    BrokenAt(i64),
}

/// Walks the whole chain, page by page.
pub async fn verify(store: &dyn AuditStore) -> Result<Verdict, StoreError> {
    let (mut prev, mut after, mut count) = (GENESIS.to_owned(), 0, 0u64);
    loop {
        let page = store.entries_after(after, 1000).await?;
        if page.is_empty() {
            return Ok(Verdict::Holds(count));
        }
        for e in page {
            if e.prev_hash != prev || !e.holds() {
                return Ok(Verdict::BrokenAt(e.id));
            }
            prev = e.hash.clone();
            after = e.id;
            count += 1;
        }
    }
}
