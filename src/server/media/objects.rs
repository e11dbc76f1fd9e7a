//! Where shared files' bytes live, through the `object_store` crate: a directory beside the
//! database by default (`<database>.media/`), or any S3-compatible bucket
//! (`--media-store s3://bucket/prefix`, with the usual `AWS_*` variables for credentials,
//! region and endpoint).
//!
//! Objects are content-addressed: each is written under a temporary name (`tmp/...`), then
//! renamed to `objects/<first two hex digits>/<SHA-256 of its stored bytes>`. In a local
//! directory the object and its directory are then fsynced, so a file is on disk before the
//! message that shares it is acknowledged. An object is written as it arrives, in parts
//! (never whole in memory), and read back by byte ranges.

use anyhow::Context;
use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt, TryStreamExt};
use object_store::{
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path as ObjectPath, prefix::PrefixStore,
    GetOptions, GetRange, ObjectStore, WriteMultipart,
};
use sha2::{Digest, Sha256};
use std::{
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

/// Bytes buffered per part before it is written (S3 wants at least 5 MiB per part but the
/// last; a local directory takes any size, and a smaller part holds less memory).
const LOCAL_PART: usize = 256 * 1024;
const S3_PART: usize = 5 * 1024 * 1024;

/// The objects of shared files.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// The directory, when they are local (fsynced after each write).
    root: Option<PathBuf>,
    part: usize,
    /// What it is, for logs: the directory or the bucket URL.
    pub describe: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// The default directory of a database's shared files: beside it.
pub fn default_dir(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".media");
    PathBuf::from(name)
}

impl Objects {
    /// Objects in the local directory `dir` (made if missing).
    pub fn local(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("objects"))
            .and_then(|()| std::fs::create_dir_all(dir.join("tmp")))
            .with_context(|| format!("making the media directory {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("finding the media directory {}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .with_context(|| format!("opening the media directory {}", dir.display()))?;
        Ok(Self {
            store: Arc::new(store),
            describe: dir.display().to_string(),
            root: Some(dir),
            part: LOCAL_PART,
        })
    }

    /// Objects in an S3-compatible bucket: `s3://bucket` or `s3://bucket/prefix`. The
    /// credentials, region and endpoint come from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).
    pub fn s3(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .with_context(|| format!("a media store is s3://bucket/prefix, not {url:?}"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            anyhow::bail!("the media store {url:?} names no bucket");
        }
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .with_context(|| format!("configuring the media store {url}"))?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            store,
            root: None,
            part: S3_PART,
            describe: url.to_owned(),
        })
    }

    /// The local directory, when the objects are local.
    pub fn local_dir(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    fn object_path(name: &str) -> ObjectPath {
        let shard = name.get(..2).unwrap_or("00");
        ObjectPath::from(format!("objects/{shard}/{name}"))
    }

    /// Starts writing a new object under a temporary name.
    pub async fn writer(&self) -> anyhow::Result<ObjectWriter> {
        let tmp = ObjectPath::from(format!("tmp/{:032x}", rand::random::<u128>()));
        let upload = self
            .store
            .put_multipart(&tmp)
            .await
            .context("starting an upload to the media store")?;
        Ok(ObjectWriter {
            objects: self.clone(),
            tmp,
            upload: WriteMultipart::new_with_chunk_size(upload, self.part),
            hash: Sha256::new(),
        })
    }

    /// Reads `range` of the object `name` (all of it when None), as it arrives.
    pub async fn read(
        &self,
        name: &str,
        range: Option<Range<u64>>,
    ) -> anyhow::Result<BoxStream<'static, anyhow::Result<Bytes>>> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&Self::object_path(name), options)
            .await
            .with_context(|| format!("reading the stored file {name}"))?;
        Ok(got.into_stream().map_err(anyhow::Error::from).boxed())
    }

    /// Reads `range` of the object `name` whole (a chunk, a header).
    pub async fn read_bytes(&self, name: &str, range: Range<u64>) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        let mut stream = self.read(name, Some(range)).await?;
        while let Some(b) = stream.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    /// Removes the object `name` (gone already is fine).
    pub async fn remove(&self, name: &str) -> anyhow::Result<()> {
        match self.store.delete(&Self::object_path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the stored file {name}")),
        }
    }

    /// Every stored object's name and age in milliseconds since the epoch, and temporary
    /// objects left by uploads that never finished (their paths), for the collector.
    pub async fn inventory(&self) -> anyhow::Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let mut objects = Vec::new();
        let mut list = self.store.list(Some(&ObjectPath::from("objects")));
        while let Some(meta) = list.next().await {
            let meta = meta.context("listing the media store")?;
            if let Some(name) = meta.location.filename() {
                objects.push((name.to_owned(), meta.last_modified.timestamp_millis()));
            }
        }
        let mut tmp = Vec::new();
        let mut list = self.store.list(Some(&ObjectPath::from("tmp")));
        while let Some(meta) = list.next().await {
            let meta = meta.context("listing the media store")?;
            tmp.push((
                meta.location.to_string(),
                meta.last_modified.timestamp_millis(),
            ));
        }
        Ok((objects, tmp))
    }

    /// Removes files of a local store's `tmp/` older than `before` (ms since the epoch) that
    /// listing does not show (the parts of an upload a crash cut off); how many.
    pub fn sweep_local_tmp(&self, before: i64) -> usize {
        let Some(root) = &self.root else { return 0 };
        let Ok(entries) = std::fs::read_dir(root.join("tmp")) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|d| (d.as_millis() as i64) < before);
            if old && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes a temporary object by its path (from [`Objects::inventory`]).
    pub async fn remove_tmp(&self, path: &str) -> anyhow::Result<()> {
        match self.store.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {path} from the media store")),
        }
    }

    /// fsyncs a local object and the directories its name lives in.
    async fn sync_local(&self, name: &str) -> anyhow::Result<()> {
        let Some(root) = self.root.clone() else {
            return Ok(());
        };
        let path = root.join(Self::object_path(name).as_ref());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&path)?.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
                if let Some(objects) = dir.parent() {
                    std::fs::File::open(objects)?.sync_all()?;
                }
            }
            Ok(())
        })
        .await
        .context("syncing a stored file")?
        .context("syncing a stored file to disk")
    }
}

/// An object being written: bytes go out in parts as they come; [`ObjectWriter::finish`]
/// names it by its hash.
pub struct ObjectWriter {
    objects: Objects,
    tmp: ObjectPath,
    upload: WriteMultipart,
    hash: Sha256,
}

impl ObjectWriter {
    /// Appends bytes (waiting while two parts are being written).
    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.hash.update(bytes);
        self.upload
            .wait_for_capacity(2)
            .await
            .context("writing to the media store")?;
        self.upload.write(bytes);
        Ok(())
    }

    /// Completes the object and gives it its name (the hex SHA-256 of its bytes); on disk
    /// (fsynced) when it returns, for a local directory.
    pub async fn finish(self) -> anyhow::Result<String> {
        let name: String = self
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.upload
            .finish()
            .await
            .context("completing an upload to the media store")?;
        let to = Objects::object_path(&name);
        let moved = self.objects.store.rename(&self.tmp, &to).await;
        if let Err(e) = moved {
            let _ = self.objects.store.delete(&self.tmp).await;
            return Err(e).context("naming a stored file");
        }
        self.objects.sync_local(&name).await?;
        Ok(name)
    }

    /// Gives the object up: nothing of it stays.
    pub async fn abort(self) {
        let _ = self.upload.abort().await;
        let _ = self.objects.store.delete(&self.tmp).await;
    }
}
