//! Encryption at rest of message bodies: AES-256-GCM (the RustCrypto `aes-gcm` crate), a
//! random 96-bit nonce per row, and associated data binding each ciphertext to its place
//! (conversation, sequence number, key id), so a ciphertext copied to another row does not
//! decrypt.
//!
//! Keys live in a key ring outside the database: a JSON file beside it (mode 0600, made at
//! first start) or the `MESSENGER_KEYS` environment variable, `{"active": "k1", "keys":
//! {"k1": "<32 bytes, base64>"}}`. One key is active for new writes; older ones stay until no
//! row uses them (`messenger keys retire`). The database records which keys it has used
//! (`keys_used`), so a ring that lacks one is refused at start, naming it.

use aes_gcm::{
    aead::{Aead, AeadInPlace, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use anyhow::Context;
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::SystemTime,
};

/// Bytes of the nonce stored before each ciphertext.
const NONCE: usize = 12;

/// The key ring as written in its file or the environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingFile {
    /// The id of the key new writes use.
    pub active: String,
    /// Every key by id, base64 of 32 bytes.
    pub keys: BTreeMap<String, String>,
}

impl RingFile {
    /// A ring with one new random key, `k1`, active.
    pub fn fresh() -> Self {
        let mut ring = Self::default();
        ring.add_active();
        ring
    }

    /// Adds a new random key and makes it the active one; its id.
    pub fn add_active(&mut self) -> String {
        let next = self
            .keys
            .keys()
            .filter_map(|id| id.strip_prefix('k').and_then(|n| n.parse::<u32>().ok()))
            .max()
            .unwrap_or(0)
            + 1;
        let id = format!("k{next}");
        let key: [u8; 32] = rand::random();
        self.keys.insert(id.clone(), STANDARD.encode(key));
        self.active = id.clone();
        id
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let ring: RingFile = serde_json::from_str(text).context("reading the key ring (JSON)")?;
        if !ring.keys.contains_key(&ring.active) {
            anyhow::bail!(
                "the key ring's active key {:?} is not among its keys",
                ring.active
            );
        }
        for (id, key) in &ring.keys {
            let bytes = STANDARD
                .decode(key)
                .with_context(|| format!("key {id} of the key ring is not base64"))?;
            if bytes.len() != 32 {
                anyhow::bail!("key {id} of the key ring is not 32 bytes");
            }
        }
        Ok(ring)
    }

    /// Writes the ring to `path`, readable by its owner only, replacing it whole.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("keys.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing the key ring {}", tmp.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("replacing the key ring {}", path.display()))?;
        Ok(())
    }
}

/// Where a database's key ring file is, unless configured: beside it.
pub fn default_ring_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".keys");
    PathBuf::from(name)
}

/// The keys, ready to use.
struct Ring {
    active: String,
    ciphers: BTreeMap<String, Aes256Gcm>,
}

impl Ring {
    fn from_file(file: &RingFile) -> anyhow::Result<Self> {
        let mut ciphers = BTreeMap::new();
        for (id, key) in &file.keys {
            let bytes = STANDARD.decode(key)?;
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| anyhow::anyhow!("key {id} is not 32 bytes"))?;
            ciphers.insert(id.clone(), cipher);
        }
        Ok(Self {
            active: file.active.clone(),
            ciphers,
        })
    }
}

/// A row's body, sealed: the key's id and nonce-then-ciphertext.
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// Why a body could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the key {0} is not in the key ring")]
    MissingKey(String),
    #[error("a message body failed to decrypt (conversation {conv}, message {seq}, key {key_id}): it was altered or moved")]
    Corrupt { conv: i64, seq: i64, key_id: String },
}

/// Seals and opens message bodies. Shared by the writer (seal) and the readers (open);
/// the ring can be reloaded while the server runs (a rotation).
pub struct Vault {
    /// Whether new bodies are sealed (`--encryption on`); the ring is used to read either way.
    sealing: bool,
    ring: RwLock<Option<Arc<Ring>>>,
    /// Where the ring came from (a file is watched for rotations), and when it last changed.
    source: Option<PathBuf>,
    loaded: RwLock<Option<SystemTime>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("sealing", &self.sealing)
            .field("active", &self.active_key())
            .finish_non_exhaustive()
    }
}

fn aad(conv: i64, seq: i64, key_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    aad_into(&mut out, conv, seq, key_id);
    out
}

/// The associated data of the row `(conv, seq)` under `key_id`, written into `out`.
fn aad_into(out: &mut Vec<u8>, conv: i64, seq: i64, key_id: &str) {
    use std::io::Write;
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "messenger:{conv}:{seq}:{key_id}");
}

/// The active key, taken once for a batch of rows, with the buffers sealing reuses: the
/// message writer seals every body of a batch with it, without a lock, a lookup or an
/// allocation per row.
pub struct Sealer {
    key_id: String,
    cipher: Aes256Gcm,
    aad: Vec<u8>,
    out: Vec<u8>,
}

impl Sealer {
    /// The id of the key it seals with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `body` for its place: the key id and the nonce-then-ciphertext (valid until
    /// the next call).
    pub fn seal(&mut self, conv: i64, seq: i64, body: &[u8]) -> Option<(&str, &[u8])> {
        let nonce: [u8; NONCE] = rand::random();
        aad_into(&mut self.aad, conv, seq, &self.key_id);
        self.out.clear();
        self.out.extend_from_slice(&nonce);
        self.out.extend_from_slice(body);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &self.aad, &mut self.out[NONCE..])
            .ok()?;
        self.out.extend_from_slice(&tag);
        Some((&self.key_id, &self.out))
    }
}

impl Vault {
    /// A vault without keys: bodies stay plain, and sealed ones cannot be read.
    pub fn plain() -> Self {
        Self {
            sealing: false,
            ring: RwLock::new(None),
            source: None,
            loaded: RwLock::new(None),
        }
    }

    /// A vault over `ring`, sealing new bodies if `sealing`.
    pub fn new(ring: &RingFile, sealing: bool, source: Option<PathBuf>) -> anyhow::Result<Self> {
        let loaded = source
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        Ok(Self {
            sealing,
            ring: RwLock::new(Some(Arc::new(Ring::from_file(ring)?))),
            source,
            loaded: RwLock::new(loaded),
        })
    }

    fn ring(&self) -> Option<Arc<Ring>> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The id of the key new bodies are sealed with (None: they are written plain).
    pub fn active_key(&self) -> Option<String> {
        if !self.sealing {
            return None;
        }
        self.ring().map(|r| r.active.clone())
    }

    /// The ids of every key in the ring.
    pub fn key_ids(&self) -> Vec<String> {
        self.ring()
            .map(|r| r.ciphers.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A sealer with the active key, for a batch of rows; None when bodies are written
    /// plain.
    pub fn sealer(&self) -> Option<Sealer> {
        if !self.sealing {
            return None;
        }
        let ring = self.ring()?;
        let cipher = ring.ciphers.get(&ring.active)?.clone();
        Some(Sealer {
            key_id: ring.active.clone(),
            cipher,
            aad: Vec::with_capacity(64),
            out: Vec::with_capacity(256),
        })
    }

    /// The active key and its cipher, for sealing a shared file (`server::media::seal`);
    /// None when new data is written plain.
    pub fn file_key(&self) -> Option<(String, Aes256Gcm)> {
        if !self.sealing {
            return None;
        }
        let ring = self.ring()?;
        let cipher = ring.ciphers.get(&ring.active)?.clone();
        Some((ring.active.clone(), cipher))
    }

    /// The cipher of the key `key_id`, for opening a shared file.
    pub fn cipher(&self, key_id: &str) -> Result<Aes256Gcm, VaultError> {
        self.ring()
            .and_then(|r| r.ciphers.get(key_id).cloned())
            .ok_or_else(|| VaultError::MissingKey(key_id.to_owned()))
    }

    /// Seals `body` for its place; None when bodies are written plain.
    pub fn seal(&self, conv: i64, seq: i64, body: &str) -> Option<Sealed> {
        if !self.sealing {
            return None;
        }
        let ring = self.ring()?;
        let cipher = ring.ciphers.get(&ring.active)?;
        let nonce: [u8; NONCE] = rand::random();
        let aad = aad(conv, seq, &ring.active);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: body.as_bytes(),
                    aad: &aad,
                },
            )
            .ok()?;
        let mut bytes = Vec::with_capacity(NONCE + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Some(Sealed {
            key_id: ring.active.clone(),
            bytes,
        })
    }

    /// Opens a sealed body of the row `(conv, seq)`.
    pub fn open(
        &self,
        conv: i64,
        seq: i64,
        key_id: &str,
        bytes: &[u8],
    ) -> Result<String, VaultError> {
        let ring = self
            .ring()
            .ok_or_else(|| VaultError::MissingKey(key_id.to_owned()))?;
        let cipher = ring
            .ciphers
            .get(key_id)
            .ok_or_else(|| VaultError::MissingKey(key_id.to_owned()))?;
        let corrupt = || VaultError::Corrupt {
            conv,
            seq,
            key_id: key_id.to_owned(),
        };
        if bytes.len() < NONCE {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let aad = aad(conv, seq, key_id);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }

    /// Reads the ring file again if it changed since it was loaded (a rotation by `messenger
    /// keys rotate`); whether it did.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let Some(path) = &self.source else {
            return Ok(false);
        };
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .with_context(|| format!("looking at the key ring {}", path.display()))?;
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if *loaded == Some(modified) {
            return Ok(false);
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the key ring {}", path.display()))?;
        let mut ring = Ring::from_file(&RingFile::parse(&text)?)?;
        // A key gone from the file (retired: no row uses it) stays in memory until the next
        // start, so a row it still sealed, if any, can be read meanwhile.
        if let Some(old) = self.ring() {
            for (id, cipher) in &old.ciphers {
                ring.ciphers
                    .entry(id.clone())
                    .or_insert_with(|| cipher.clone());
            }
        }
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(ring));
        *loaded = Some(modified);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_opens_only_in_its_own_place_and_with_its_key() {
        let ring = RingFile::fresh();
        let vault = Vault::new(&ring, true, None).expect("vault");
        let sealed = vault.seal(7, 42, "meet me at noon").expect("sealed");
        assert!(
            !sealed.bytes.windows(4).any(|w| w == b"noon"),
            "no plain text"
        );
        assert_eq!(
            vault
                .open(7, 42, &sealed.key_id, &sealed.bytes)
                .expect("opens"),
            "meet me at noon"
        );
        // Moved to another row, or another conversation: it does not decrypt.
        assert!(matches!(
            vault.open(7, 43, &sealed.key_id, &sealed.bytes),
            Err(VaultError::Corrupt { .. })
        ));
        assert!(vault.open(8, 42, &sealed.key_id, &sealed.bytes).is_err());
        // A flipped bit is found.
        let mut altered = sealed.bytes.clone();
        *altered.last_mut().expect("bytes") ^= 1;
        assert!(vault.open(7, 42, &sealed.key_id, &altered).is_err());
        // Two seals of the same text differ (a fresh nonce each).
        // The writer's sealer writes what `open` reads.
        let mut sealer = vault.sealer().expect("sealer");
        let (key, batch) = sealer.seal(7, 43, b"and bring cake").expect("sealed");
        let (key, batch) = (key.to_owned(), batch.to_vec());
        assert_eq!(
            vault.open(7, 43, &key, &batch).expect("opens"),
            "and bring cake"
        );
        assert!(vault.open(7, 44, &key, &batch).is_err());
        let again = vault.seal(7, 42, "meet me at noon").expect("sealed");
        assert_ne!(again.bytes, sealed.bytes);
        // A key the ring lacks is named.
        assert!(matches!(
            vault.open(7, 42, "k9", &sealed.bytes),
            Err(VaultError::MissingKey(id)) if id == "k9"
        ));
    }

    #[test]
    fn a_rotation_adds_a_key_and_keeps_the_old_one_readable() {
        let mut ring = RingFile::fresh();
        let vault = Vault::new(&ring, true, None).expect("vault");
        let old = vault.seal(1, 1, "before").expect("sealed");
        assert_eq!(ring.add_active(), "k2");
        let vault = Vault::new(&ring, true, None).expect("vault");
        let new = vault.seal(1, 2, "after").expect("sealed");
        assert_eq!((old.key_id.as_str(), new.key_id.as_str()), ("k1", "k2"));
        assert_eq!(vault.open(1, 1, "k1", &old.bytes).expect("old"), "before");
        let text = serde_json::to_string(&ring).expect("json");
        assert_eq!(RingFile::parse(&text).expect("parses"), ring);
    }
}
