//! Files and photos shared in conversations.
//!
//! A member uploads a file into a conversation (`POST /api/conversations/{id}/files`, the
//! body is the file itself). It is streamed into the object store sealed in chunks
//! (`seal`, `objects`): never whole in memory, counted against the size limit as it comes,
//! and on disk before anything refers to it. A picture (PNG, JPEG, GIF, WebP, read from its
//! bytes) then gets a view copy and a thumbnail made by the server (`pictures`). A row
//! records the objects under the message's client id, and the message itself, of kind
//! `file`, goes through the log like any other: durable before it is acknowledged,
//! sequenced, synced, paged, deletable by its sender, expired and erased like any message.
//! A retry with the same client id gets the first upload's acknowledgement.
//!
//! A download (`GET /api/files/{id}`, `/thumb`, `/view`) is checked on every request: the
//! file's message must still be a file, and the caller a member who can see it. Anything
//! but the thumbnail and the view copy is sent as an attachment; byte ranges are served.
//!
//! The collector removes the objects of files whose message was deleted, expired or erased,
//! of uploads whose message never committed (after a grace period), and objects no row
//! names (an upload cut off between storing and recording).

pub mod objects;
pub mod pictures;
pub mod seal;

use crate::protocol::{ClientId, SharedFile, UserSummary};
use crate::server::{
    chat::{Author, Chat, Refusal},
    error::{AppError, Result},
    store::{
        files::{FileRow, FileStore},
        now_ms,
        vault::Vault,
        Content,
    },
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use objects::Objects;
use seal::{Header, Opener, Sealer, CHUNK};
use std::{ops::Range, sync::Arc, time::Duration};
use tokio::sync::Semaphore;

/// The limits and schedule of shared files.
#[derive(Debug, Clone)]
pub struct MediaLimits {
    /// Largest file, in bytes.
    pub max_file: u64,
    /// Most bytes one user's shared files may take (with their thumbnails and view copies).
    pub quota: u64,
    /// Free bytes the media store's disk keeps (a local store): an upload that would go
    /// below is refused.
    pub floor: u64,
    /// How often the collector runs.
    pub collect_every: Duration,
    /// How long an upload may wait for its message before the collector takes it.
    pub grace: Duration,
}

impl MediaLimits {
    /// The limits as the operator set them (`--media-*`).
    pub fn from_config(cfg: &crate::server::config::MediaConfig) -> Self {
        Self {
            max_file: cfg.max_mb * 1_000_000,
            quota: cfg.quota_mb * 1_000_000,
            floor: cfg.floor_mb * 1024 * 1024,
            collect_every: cfg.collect_every,
            grace: cfg.grace,
        }
    }
}

/// A finished upload: its message's acknowledgement and the file as the message names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Uploaded {
    pub conv: i64,
    pub client_id: String,
    pub seq: i64,
    pub at: i64,
    pub file: SharedFile,
}

/// Which of a file's objects a download wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The file as it was sent (always an attachment).
    Original,
    /// A picture's copy for viewing (made by the server; shown inline).
    View,
    /// A picture's thumbnail (made by the server; shown inline).
    Thumb,
}

/// A download ready to stream.
pub struct Download {
    pub file: FileRow,
    pub variant: Variant,
    /// Its whole length, and the range sent (all of it when the request asked for none).
    pub len: u64,
    pub range: Range<u64>,
    pub partial: bool,
    pub body: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
    /// The type it is sent as.
    pub mime: String,
    /// The stored object (its hash): an entity tag.
    pub etag: String,
}

/// Shared files.
pub struct Media {
    pub objects: Objects,
    files: Arc<dyn FileStore>,
    vault: Arc<Vault>,
    chat: Arc<Chat>,
    limits: MediaLimits,
    /// Pictures decoded at once (each may take ~200 MB).
    decoding: Semaphore,
}

/// Longest name of a shared file, in characters.
pub const MAX_NAME: usize = 255;

impl Media {
    pub fn new(
        objects: Objects,
        files: Arc<dyn FileStore>,
        vault: Arc<Vault>,
        chat: Arc<Chat>,
        limits: MediaLimits,
    ) -> Self {
        Self {
            objects,
            files,
            vault,
            chat,
            limits,
            decoding: Semaphore::new(2),
        }
    }

    /// Takes an upload of `name` into `conv` from `me`, and shares it there as the message
    /// `client_id`. `declared` is the body's length if the request gave one.
    pub async fn upload<S, E>(
        &self,
        me: &UserSummary,
        conv: i64,
        client_id: ClientId,
        name: &str,
        declared: Option<u64>,
        body: S,
    ) -> Result<Uploaded>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let mut body = body;
        let checked = self
            .before_upload(me, conv, &client_id, name, declared)
            .await;
        let (name, dm_peer, used) = match checked {
            Ok(Before::Go {
                name,
                dm_peer,
                used,
            }) => (name, dm_peer, used),
            // Answered without reading the file: read (and drop) what the client sends
            // first, so that it gets the answer rather than a connection cut mid-upload.
            Ok(Before::Done(done)) => {
                drain(&mut body).await;
                return Ok(*done);
            }
            Err(e) => {
                drain(&mut body).await;
                return Err(e);
            }
        };
        let stored = self.store_stream(&name, body).await?;
        let mut file = FileRow {
            id: 0,
            conv,
            uploader: me.id,
            client_id: client_id.as_str().to_owned(),
            name,
            mime: stored.mime.to_owned(),
            size: stored.size as i64,
            object: stored.object,
            view: None,
            thumb: None,
            width: None,
            height: None,
            key_id: stored.key_id,
            created_at: now_ms(),
        };
        if let Some(format) = stored.picture {
            if let Err(e) = self.derive(&mut file, format).await {
                self.remove_objects(&file.objects()).await;
                return Err(e);
            }
        }
        // The quota again, now the sizes are known (a body without a length).
        if used + file.stored_bytes() as u64 > self.limits.quota {
            self.remove_objects(&file.objects()).await;
            return Err(self.over_quota(used));
        }
        let (id, replaced) = match self.files.insert_file(&file).await {
            Ok(done) => done,
            Err(e) => {
                self.remove_objects(&file.objects()).await;
                return Err(e.into());
            }
        };
        self.remove_objects(&replaced).await;
        file.id = id;
        let shared = shared_file(&file);
        let json = serde_json::to_string(&shared).map_err(anyhow::Error::from)?;
        let author = Author {
            id: me.id,
            name: &me.display_name,
            dm_peer,
        };
        match self
            .chat
            .post_and_wait(author, conv, client_id.clone(), Content::File(json))
            .await
        {
            Ok(ack) => Ok(Uploaded {
                conv,
                client_id: ack.client_id,
                seq: ack.seq,
                at: ack.at,
                file: shared,
            }),
            Err(refusal) => {
                // Not shared: nothing of it stays (a failure to store may be retried with
                // the same client id; the upload is sent again then).
                let _ = self.files.delete_file(id).await;
                self.remove_objects(&file.objects()).await;
                Err(match refusal {
                    Refusal::Undeliverable => AppError::Forbidden(refusal.message()),
                    _ => AppError::Internal(anyhow::anyhow!(
                        "the file's message was not stored: {}",
                        refusal.message()
                    )),
                })
            }
        }
    }

    /// The checks before an upload's bytes are read: the name, membership, a retry, the
    /// declared size against the limit, the quota and the disk.
    async fn before_upload(
        &self,
        me: &UserSummary,
        conv: i64,
        client_id: &ClientId,
        name: &str,
        declared: Option<u64>,
    ) -> Result<Before> {
        let name = file_name(name)?;
        let dm_peer = self
            .files
            .share_target(conv, me.id)
            .await?
            .ok_or_else(|| AppError::Forbidden("You are not in that conversation.".into()))?;
        // The same message again: the first upload's answer, and nothing stored twice.
        if let Some(done) = self.already_shared(conv, me.id, client_id.as_str()).await? {
            return Ok(Before::Done(Box::new(done)));
        }
        if declared == Some(0) {
            return Err(empty());
        }
        if declared.is_some_and(|n| n > self.limits.max_file) {
            return Err(self.too_large());
        }
        let used = u64::try_from(self.files.usage(me.id).await?).unwrap_or(0);
        let incoming = declared.unwrap_or(0);
        if used + incoming > self.limits.quota {
            return Err(self.over_quota(used));
        }
        self.check_space(incoming)?;
        Ok(Before::Go {
            name,
            dm_peer,
            used,
        })
    }

    /// The answer to an upload whose client id was used already: the first upload's, when
    /// that message is the file; a refusal when the id went to a message since deleted (or
    /// to another kind).
    async fn already_shared(
        &self,
        conv: i64,
        me: i64,
        client_id: &str,
    ) -> Result<Option<Uploaded>> {
        let Some(sharing) = self.files.sharing(conv, me, client_id).await? else {
            return Ok(None);
        };
        let file = match sharing.live {
            true => self.files.file_of_message(conv, me, client_id).await?,
            false => None,
        };
        let Some(file) = file else {
            return Err(AppError::Conflict(
                "That message was deleted (or is not a file); send the file again as a new message."
                    .into(),
            ));
        };
        Ok(Some(Uploaded {
            conv,
            client_id: client_id.to_owned(),
            seq: sharing.seq,
            at: sharing.at,
            file: shared_file(&file),
        }))
    }

    fn too_large(&self) -> AppError {
        AppError::TooLarge(format!(
            "The file is larger than {}; send a smaller one.",
            megabytes(self.limits.max_file)
        ))
    }

    fn over_quota(&self, used: u64) -> AppError {
        AppError::TooLarge(format!(
            "Your shared files take {} of your {}; delete some of them first.",
            megabytes(used),
            megabytes(self.limits.quota)
        ))
    }

    /// Refuses an upload that would take the media store's disk below its floor.
    fn check_space(&self, incoming: u64) -> Result<()> {
        let Some(dir) = self.objects.local_dir() else {
            return Ok(());
        };
        match crate::server::store::space::free_bytes(dir) {
            Some(free) if free < self.limits.floor + incoming => {
                tracing::warn!(
                    free,
                    floor = self.limits.floor,
                    "media disk low: an upload was refused"
                );
                Err(AppError::StorageFull)
            }
            _ => Ok(()),
        }
    }

    /// Streams the body into a new object, sealing it chunk by chunk; refuses it (and keeps
    /// nothing) when it is empty, too large, cut short, or a picture by its name but not by
    /// its bytes.
    async fn store_stream<S, E>(&self, name: &str, mut body: S) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let mut sealer = Sealer::new(self.vault.file_key());
        let mut writer = self.objects.writer().await?;
        let outcome: Result<(u64, &'static str, Option<image::ImageFormat>)> = async {
            writer.write(&sealer.header()).await?;
            let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK + 16);
            let mut size: u64 = 0;
            let mut sniffed: Option<(&'static str, Option<image::ImageFormat>)> = None;
            let mut since_space_check: u64 = 0;
            while let Some(next) = body.next().await {
                let bytes = next.map_err(|e| {
                    AppError::Invalid(format!(
                        "The upload was cut short ({e}); send the file again."
                    ))
                })?;
                size += bytes.len() as u64;
                if size > self.limits.max_file {
                    return Err(self.too_large());
                }
                since_space_check += bytes.len() as u64;
                if since_space_check > 4 * 1024 * 1024 {
                    since_space_check = 0;
                    self.check_space(0)?;
                }
                let mut rest: &[u8] = &bytes;
                while !rest.is_empty() {
                    // A full chunk with more after it is not the last one.
                    if chunk.len() == CHUNK {
                        if sniffed.is_none() {
                            sniffed = Some(sniff(name, &chunk)?);
                        }
                        sealer.seal(&mut chunk, false);
                        writer.write(&chunk).await?;
                        chunk.clear();
                    }
                    let take = (CHUNK - chunk.len()).min(rest.len());
                    chunk.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                }
            }
            if size == 0 {
                return Err(empty());
            }
            let (mime, picture) = match sniffed {
                Some(s) => s,
                None => sniff(name, &chunk)?,
            };
            sealer.seal(&mut chunk, true);
            writer.write(&chunk).await?;
            Ok((size, mime, picture))
        }
        .await;
        match outcome {
            Ok((size, mime, picture)) => {
                let object = writer.finish().await?;
                Ok(Stored {
                    object,
                    size,
                    mime,
                    picture,
                    key_id: sealer.key_id().map(str::to_owned),
                })
            }
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }

    /// Makes a picture's view copy and thumbnail, reading the stored original back.
    async fn derive(&self, file: &mut FileRow, format: image::ImageFormat) -> Result<()> {
        let _permit = self
            .decoding
            .acquire()
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        let reader = self.reader(file).await?;
        let handle = tokio::runtime::Handle::current();
        let derived = tokio::task::spawn_blocking(move || {
            pictures::derive(
                || {
                    Ok(std::io::BufReader::with_capacity(
                        CHUNK,
                        reader.clone().blocking(handle.clone()),
                    ))
                },
                format,
            )
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::Invalid(e.to_string()))?;
        let view = self.store_bytes(&derived.view.0).await?;
        let thumb = match self.store_bytes(&derived.thumb.0).await {
            Ok(t) => t,
            Err(e) => {
                self.remove_objects(&[view.0]).await;
                return Err(e);
            }
        };
        file.view = Some(view);
        file.thumb = Some(thumb);
        file.width = Some(i64::from(derived.width));
        file.height = Some(i64::from(derived.height));
        Ok(())
    }

    /// Stores bytes made here (a thumbnail): sealed, as a new object; its name and size.
    async fn store_bytes(&self, bytes: &[u8]) -> Result<(String, i64)> {
        let mut sealer = Sealer::new(self.vault.file_key());
        let mut writer = self.objects.writer().await?;
        let written: anyhow::Result<()> = async {
            writer.write(&sealer.header()).await?;
            let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
            let n = chunks.len();
            for (i, c) in chunks.into_iter().enumerate() {
                let mut c = c.to_vec();
                sealer.seal(&mut c, i + 1 == n);
                writer.write(&c).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            writer.abort().await;
            return Err(e.into());
        }
        Ok((writer.finish().await?, bytes.len() as i64))
    }

    /// Reads a stored file's original back (for making its pictures).
    async fn reader(&self, file: &FileRow) -> Result<ObjectReader> {
        let opener = self
            .opener(&file.object, file.key_id.as_deref(), file.size as u64)
            .await?;
        Ok(ObjectReader {
            objects: self.objects.clone(),
            name: file.object.clone(),
            opener: Arc::new(opener),
            size: file.size as u64,
        })
    }

    async fn opener(&self, object: &str, key_id: Option<&str>, size: u64) -> Result<Opener> {
        let header_len = 5 + 1 + key_id.map_or(0, str::len) + 8;
        let bytes = self
            .objects
            .read_bytes(object, 0..header_len as u64)
            .await?;
        let (header, len) = Header::parse(&bytes).map_err(|e| AppError::Internal(e.into()))?;
        let cipher = match &header.key_id {
            Some(k) => Some(
                self.vault
                    .cipher(k)
                    .map_err(|e| AppError::Internal(e.into()))?,
            ),
            None => None,
        };
        Ok(Opener::new(header, len, cipher, size))
    }

    async fn remove_objects(&self, names: &[String]) {
        for name in names {
            if let Err(e) = self.objects.remove(name).await {
                tracing::warn!(error = %e, object = %name, "a stored file was not removed; the collector will");
            }
        }
    }

    /// A download of `id` for `me`, if they may see it: the whole of it, or `range` (an
    /// HTTP `Range` header's value).
    pub async fn download(
        &self,
        me: i64,
        id: i64,
        variant: Variant,
        range: Option<&str>,
    ) -> Result<Download> {
        let gone = || AppError::NotFound("There is no such file, or it was deleted.".into());
        let file = self.files.file(id).await?.ok_or_else(gone)?;
        let sharing = self
            .files
            .sharing(file.conv, file.uploader, &file.client_id)
            .await?
            .ok_or_else(gone)?;
        if !sharing.live {
            return Err(gone());
        }
        let visible_after = self
            .chat
            .convs
            .member_view(file.conv, me)
            .await?
            .ok_or_else(gone)?;
        if sharing.seq <= visible_after {
            return Err(gone());
        }
        let (object, len, mime) = match variant {
            Variant::Original => (file.object.clone(), file.size as u64, file.mime.clone()),
            Variant::View | Variant::Thumb => {
                let (object, len) = match variant {
                    Variant::View => file.view.clone(),
                    _ => file.thumb.clone(),
                }
                .ok_or_else(|| AppError::NotFound("That file has no picture to show.".into()))?;
                let mime = if file.mime == "image/jpeg" {
                    "image/jpeg"
                } else {
                    "image/png"
                };
                (object, len as u64, mime.to_owned())
            }
        };
        let (range, partial) = match range {
            None => (0..len, false),
            Some(h) => (parse_range(h, len)?, true),
        };
        let opener = Arc::new(self.opener(&object, file.key_id.as_deref(), len).await?);
        let body = self.stream_range(object.clone(), opener, range.clone());
        Ok(Download {
            file,
            variant,
            len,
            range,
            partial,
            body,
            mime,
            etag: object,
        })
    }

    /// The bytes `range` of a stored object, opened chunk by chunk as they arrive.
    fn stream_range(
        &self,
        object: String,
        opener: Arc<Opener>,
        range: Range<u64>,
    ) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
        let objects = self.objects.clone();
        let chunks = opener.chunks_for(&range);
        let stored = opener.stored_range(&chunks);
        let first = chunks.start;
        let state = (None, Vec::new(), first, chunks.end);
        futures::stream::try_unfold(state, move |(mut source, mut buf, index, end)| {
            let (objects, object, opener, range) = (
                objects.clone(),
                object.clone(),
                opener.clone(),
                range.clone(),
            );
            let stored = stored.clone();
            async move {
                if index >= end {
                    return Ok(None);
                }
                if source.is_none() {
                    source = Some(
                        objects
                            .read(&object, Some(stored))
                            .await
                            .map_err(std::io::Error::other)?,
                    );
                }
                let this = opener.stored_range(&(index..index + 1));
                let want = (this.end - this.start) as usize;
                let src = source.as_mut().expect("opened above");
                while buf.len() < want {
                    match src.next().await {
                        Some(Ok(b)) => buf.extend_from_slice(&b),
                        Some(Err(e)) => return Err(std::io::Error::other(e)),
                        None => return Err(std::io::Error::other("a stored file ended early")),
                    }
                }
                let rest = buf.split_off(want);
                let mut chunk = std::mem::replace(&mut buf, rest);
                opener
                    .open(index, &mut chunk)
                    .map_err(std::io::Error::other)?;
                // Only the asked-for bytes of the first and last chunks.
                let chunk_start = index * CHUNK as u64;
                let from = range.start.saturating_sub(chunk_start) as usize;
                let to = ((range.end - chunk_start) as usize).min(chunk.len());
                let piece = Bytes::copy_from_slice(&chunk[from.min(to)..to]);
                Ok(Some((piece, (source, buf, index + 1, end))))
            }
        })
        .boxed()
    }

    /// The files whose message is gone or never came (after the grace period): their
    /// objects and rows are removed. How many.
    pub async fn collect_files(&self) -> Result<usize> {
        let before = now_ms() - self.limits.grace.as_millis() as i64;
        let mut files = 0;
        loop {
            let batch = self.files.collectable(before, 200).await?;
            for f in &batch {
                self.remove_objects(&f.objects()).await;
                self.files.delete_file(f.id).await?;
                files += 1;
            }
            if batch.len() < 200 {
                break;
            }
        }
        Ok(files)
    }

    /// One pass of the collector: removes what no live message shares, then objects no row
    /// names. How many files and stray objects it removed.
    pub async fn collect(&self) -> Result<(usize, usize)> {
        let files = self.collect_files().await?;
        let before = now_ms() - self.limits.grace.as_millis() as i64;
        // Objects no row names, and unfinished uploads, once older than the grace.
        let known = self.files.known_objects().await?;
        let (objects, tmp) = self.objects.inventory().await?;
        let mut strays = 0;
        for (name, at) in objects {
            if at < before && !known.contains(&name) {
                self.remove_objects(&[name]).await;
                strays += 1;
            }
        }
        for (path, at) in tmp {
            if at < before && self.objects.remove_tmp(&path).await.is_ok() {
                strays += 1;
            }
        }
        strays += self.objects.sweep_local_tmp(before);
        if files + strays > 0 {
            tracing::info!(
                files,
                strays,
                "the media collector removed files no message shares"
            );
        }
        Ok((files, strays))
    }

    /// After a file's message was posted for deletion: collects until the deletion has
    /// committed and its file is gone (a few tries over two seconds; the next regular pass
    /// catches anything later).
    async fn collect_after_deletion(&self) -> Result<()> {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        for _ in 0..20 {
            every.tick().await;
            if self.collect_files().await? > 0 {
                break;
            }
        }
        Ok(())
    }

    /// Runs the collector every `collect_every`, and soon after a file's message is
    /// deleted, until the server stops.
    pub async fn run_collector(self: Arc<Self>) {
        let mut every =
            tokio::time::interval(self.limits.collect_every.max(Duration::from_secs(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first pass one period after start, like the other jobs.
        every.tick().await;
        loop {
            let whole = tokio::select! {
                _ = every.tick() => true,
                () = self.chat.file_deleted.notified() => false,
            };
            let done = if whole {
                self.collect().await.map(|_| ())
            } else {
                // A deletion was posted: once it is committed, its file goes.
                self.collect_after_deletion().await
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "the media collector failed; it tries again next time");
            }
        }
    }
}

/// What the checks before an upload decided.
enum Before {
    /// Read and store it.
    Go {
        name: String,
        dm_peer: Option<i64>,
        used: u64,
    },
    /// A retry of an upload already shared: its answer.
    Done(Box<Uploaded>),
}

/// Most bytes read and dropped from an upload answered before it was read: beyond them the
/// connection is closed (the client then sees it cut, not the answer).
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

/// Reads and drops the rest of a request body (up to [`DRAIN_MAX`]).
pub async fn drain<S, E>(body: &mut S)
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    let mut read = 0u64;
    while let Some(Ok(bytes)) = body.next().await {
        read += bytes.len() as u64;
        if read > DRAIN_MAX {
            break;
        }
    }
}

/// An upload stored: its object and what its bytes are.
struct Stored {
    object: String,
    size: u64,
    mime: &'static str,
    picture: Option<image::ImageFormat>,
    key_id: Option<String>,
}

/// Reads a stored file back as plain bytes, from a blocking thread (the picture decoder).
#[derive(Clone)]
struct ObjectReader {
    objects: Objects,
    name: String,
    opener: Arc<Opener>,
    size: u64,
}

impl ObjectReader {
    fn blocking(self, handle: tokio::runtime::Handle) -> BlockingReader {
        BlockingReader {
            inner: self,
            handle,
            pos: 0,
            chunk: None,
        }
    }
}

/// `Read + Seek` over a stored file: fetches and opens one chunk at a time.
struct BlockingReader {
    inner: ObjectReader,
    handle: tokio::runtime::Handle,
    pos: u64,
    chunk: Option<(u64, Vec<u8>)>,
}

impl std::io::Read for BlockingReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.inner.size || out.is_empty() {
            return Ok(0);
        }
        let index = self.pos / CHUNK as u64;
        if self.chunk.as_ref().is_none_or(|(i, _)| *i != index) {
            let r = self.inner.opener.stored_range(&(index..index + 1));
            let mut bytes = self
                .handle
                .block_on(self.inner.objects.read_bytes(&self.inner.name, r))
                .map_err(std::io::Error::other)?;
            self.inner
                .opener
                .open(index, &mut bytes)
                .map_err(std::io::Error::other)?;
            self.chunk = Some((index, bytes));
        }
        let (_, chunk) = self.chunk.as_ref().expect("just read");
        let at = (self.pos - index * CHUNK as u64) as usize;
        let n = (chunk.len() - at).min(out.len());
        out[..n].copy_from_slice(&chunk[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for BlockingReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            std::io::SeekFrom::Start(p) => p as i64,
            std::io::SeekFrom::End(d) => self.inner.size as i64 + d,
            std::io::SeekFrom::Current(d) => self.pos as i64 + d,
        };
        if pos < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        }
        self.pos = pos as u64;
        Ok(self.pos)
    }
}

fn empty() -> AppError {
    AppError::Invalid("The file is empty: there is nothing to send.".into())
}

fn megabytes(n: u64) -> String {
    format!("{} MB", n.div_ceil(1_000_000))
}

/// The file's name as shown: its last path part, one line, at most [`MAX_NAME`] characters.
fn file_name(raw: &str) -> Result<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
    let name = crate::server::text::line(last, "file name", MAX_NAME, false)
        .map_err(|e| AppError::Invalid(e.0))?;
    if name == "." || name == ".." {
        return Err(AppError::Invalid("The file needs a name.".into()));
    }
    Ok(name)
}

/// What the first bytes of a file say it is: its type, and the picture format when it is
/// one shown inline. A name that promises a picture the bytes are not is refused.
fn sniff(name: &str, first: &[u8]) -> Result<(&'static str, Option<image::ImageFormat>)> {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let picture = image::guess_format(first)
        .ok()
        .and_then(|f| pictures::picture_type(f).map(|t| (t, f)));
    let promised = match ext.as_str() {
        "png" => Some("PNG"),
        "jpg" | "jpeg" => Some("JPEG"),
        "gif" => Some("GIF"),
        "webp" => Some("WebP"),
        _ => None,
    };
    match (picture, promised) {
        (Some((mime, format)), _) => Ok((mime, Some(format))),
        (None, Some(kind)) => Err(AppError::Invalid(format!(
            "{name} is not a {kind} picture: its bytes say otherwise. Rename it or send the real picture."
        ))),
        (None, None) => Ok((other_type(first), None)),
    }
}

/// A few common types by their first bytes; anything else is `application/octet-stream`.
fn other_type(first: &[u8]) -> &'static str {
    const KNOWN: [(&[u8], &str); 5] = [
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"ID3", "audio/mpeg"),
        (b"OggS", "audio/ogg"),
    ];
    for (magic, mime) in KNOWN {
        if first.starts_with(magic) {
            return mime;
        }
    }
    if first.len() > 8 && &first[4..8] == b"ftyp" {
        return "video/mp4";
    }
    if std::str::from_utf8(first).is_ok()
        || std::str::from_utf8(&first[..first.len().saturating_sub(3)]).is_ok()
    {
        return "text/plain";
    }
    "application/octet-stream"
}

fn shared_file(f: &FileRow) -> SharedFile {
    SharedFile {
        id: f.id,
        name: f.name.clone(),
        size: f.size,
        mime: f.mime.clone(),
        picture: f.width.zip(f.height).map(|(w, h)| (w as u32, h as u32)),
    }
}

/// One byte range from a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) within
/// `len` bytes; 416 for anything else.
fn parse_range(header: &str, len: u64) -> Result<Range<u64>> {
    let bad = || AppError::RangeNotSatisfiable(len);
    let spec = header.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(bad());
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        len.saturating_sub(n)..len
    } else {
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end = if b.is_empty() {
            len
        } else {
            b.parse::<u64>()
                .map_err(|_| bad())?
                .saturating_add(1)
                .min(len)
        };
        start..end
    };
    if range.start >= range.end || range.start >= len {
        return Err(bad());
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(parse_range("bytes=0-0", 10).unwrap(), 0..1);
        assert_eq!(parse_range("bytes=2-", 10).unwrap(), 2..10);
        assert_eq!(parse_range("bytes=-3", 10).unwrap(), 7..10);
        assert_eq!(parse_range("bytes=5-100", 10).unwrap(), 5..10);
        for bad in [
            "bytes=10-",
            "bytes=3-2",
            "bytes=-0",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=x-",
        ] {
            assert!(parse_range(bad, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_their_last_part_and_pictures_must_be_what_they_say() {
        assert_eq!(file_name("C:\\Users\\me\\photo.png").unwrap(), "photo.png");
        assert_eq!(file_name("../../etc/passwd").unwrap(), "passwd");
        assert!(file_name("  ").is_err());
        assert!(file_name("a/..").is_err());
        let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        assert_eq!(sniff("x.bin", &png).unwrap().0, "image/png");
        assert!(sniff("holiday.jpg", b"<html>not a picture</html>").is_err());
        assert_eq!(sniff("notes.txt", b"hello").unwrap(), ("text/plain", None));
        assert_eq!(
            sniff("page.html", b"<script>alert(1)</script>").unwrap().0,
            "text/plain"
        );
        assert_eq!(sniff("a.pdf", b"%PDF-1.7").unwrap().0, "application/pdf");
    }
}
