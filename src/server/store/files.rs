//! What the store keeps about shared files (the service is `server::media`): a row per
//! upload naming its objects, found by the message that shares it.

use super::Result;
use async_trait::async_trait;

/// A shared file as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: i64,
    pub conv: i64,
    pub uploader: i64,
    pub client_id: String,
    pub name: String,
    pub mime: String,
    pub size: i64,
    pub object: String,
    /// For pictures: the copy for viewing and the thumbnail, with their sizes.
    pub view: Option<(String, i64)>,
    pub thumb: Option<(String, i64)>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub key_id: Option<String>,
    pub created_at: i64,
}

impl FileRow {
    /// Every object it names.
    pub fn objects(&self) -> Vec<String> {
        let mut out = vec![self.object.clone()];
        out.extend(self.view.iter().map(|v| v.0.clone()));
        out.extend(self.thumb.iter().map(|t| t.0.clone()));
        out
    }

    /// The bytes it takes against its uploader's quota.
    pub fn stored_bytes(&self) -> i64 {
        self.size + self.view.as_ref().map_or(0, |v| v.1) + self.thumb.as_ref().map_or(0, |t| t.1)
    }
}

/// The message that shares a file: its sequence number and whether it is still a file
/// (not deleted, expired or erased since).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sharing {
    pub seq: i64,
    pub at: i64,
    pub live: bool,
}

#[async_trait]
pub trait FileStore: Send + Sync {
    /// Whether `user` may share into `conv` (a member of it, not archived): None if not;
    /// else the other member when it is a one-to-one conversation (their block stops it).
    async fn share_target(&self, conv: i64, user: i64) -> Result<Option<Option<i64>>>;
    /// Records an upload (its objects are stored already); its id. An earlier row with the
    /// same message (an upload whose message never committed) is replaced: its objects are
    /// returned for removal.
    async fn insert_file(&self, file: &FileRow) -> Result<(i64, Vec<String>)>;
    async fn file(&self, id: i64) -> Result<Option<FileRow>>;
    /// The upload of the message `(conv, uploader, client_id)`, if any.
    async fn file_of_message(
        &self,
        conv: i64,
        uploader: i64,
        client_id: &str,
    ) -> Result<Option<FileRow>>;
    /// The message `(conv, sender, client_id)`, if one was committed (it shares a file if
    /// it is `live`).
    async fn sharing(&self, conv: i64, sender: i64, client_id: &str) -> Result<Option<Sharing>>;
    /// The bytes `user`'s uploads take.
    async fn usage(&self, user: i64) -> Result<i64>;
    /// Uploads to remove: those whose message was deleted, expired or erased, and those
    /// older than `unshared_before` whose message never committed. At most `limit`.
    async fn collectable(&self, unshared_before: i64, limit: i64) -> Result<Vec<FileRow>>;
    async fn delete_file(&self, id: i64) -> Result<()>;
    /// How many shared files the key `key_id` seals.
    async fn files_sealed_with(&self, key_id: &str) -> Result<i64>;
    /// Every object some row names.
    async fn known_objects(&self) -> Result<std::collections::HashSet<String>>;
}
