//! Shared files at rest: sealed in chunks, so a file is written and read as a stream (never
//! whole in memory) and any byte range can be read by opening only the chunks it covers.
//!
//! An object is a header, then the file in chunks of [`CHUNK`] bytes (the last may be
//! shorter), each sealed with AES-256-GCM under the key ring's active key (the same ring as
//! message bodies, `store::vault`). The header names the key and holds a random 8-byte
//! prefix; chunk `i`'s nonce is that prefix and `i` (so no nonce repeats within a file, and
//! files differ by their prefix). The associated data binds each chunk to its index and to
//! whether it is the last, so chunks cannot be reordered, dropped or the file cut short
//! without a chunk failing to open. With encryption off the header names no key and the
//! chunks are stored as they are.
//!
//! ```text
//! "MSGF1" | key id length (1 byte) | key id | nonce prefix (8 bytes) | chunk 0 | chunk 1 | ...
//! chunk = ciphertext of up to CHUNK bytes | tag (16 bytes; absent when plain)
//! ```

use aes_gcm::{aead::AeadInPlace, Aes256Gcm, Nonce};
use std::ops::Range;

/// Bytes of the file in each chunk.
pub const CHUNK: usize = 64 * 1024;
const MAGIC: &[u8; 5] = b"MSGF1";
const TAG: usize = 16;

/// Why a stored file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the stored file has no valid header")]
    Header,
    #[error("chunk {0} of the stored file failed to open: it was altered, moved or cut short")]
    Corrupt(u64),
}

/// The header of a sealed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key that sealed it; None: stored plain.
    pub key_id: Option<String>,
    prefix: [u8; 8],
}

impl Header {
    fn encoded(&self) -> Vec<u8> {
        let key = self.key_id.as_deref().unwrap_or("");
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + key.len() + 8);
        out.extend_from_slice(MAGIC);
        out.push(key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&self.prefix);
        out
    }

    /// The header at the start of `bytes`, and its length. `bytes` needs at most
    /// [`Header::MAX_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), SealError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(SealError::Header)?;
        let (&len, rest) = rest.split_first().ok_or(SealError::Header)?;
        let len = usize::from(len);
        if rest.len() < len + 8 {
            return Err(SealError::Header);
        }
        let key = std::str::from_utf8(&rest[..len]).map_err(|_| SealError::Header)?;
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&rest[len..len + 8]);
        let header = Header {
            key_id: (!key.is_empty()).then(|| key.to_owned()),
            prefix,
        };
        Ok((header, MAGIC.len() + 1 + len + 8))
    }

    /// The longest a header can be.
    pub const MAX_LEN: usize = 5 + 1 + 255 + 8;

    fn tag_len(&self) -> usize {
        if self.key_id.is_some() {
            TAG
        } else {
            0
        }
    }
}

fn nonce(prefix: &[u8; 8], index: u64) -> [u8; 12] {
    let mut n = [0; 12];
    n[..8].copy_from_slice(prefix);
    // At most 2^32 chunks (256 TiB): far beyond any size limit.
    n[8..].copy_from_slice(&(index as u32).to_be_bytes());
    n
}

fn aad(index: u64, last: bool) -> [u8; 9] {
    let mut a = [0; 9];
    a[..8].copy_from_slice(&index.to_be_bytes());
    a[8] = u8::from(last);
    a
}

/// Seals a file chunk by chunk as it arrives.
pub struct Sealer {
    header: Header,
    cipher: Option<Aes256Gcm>,
    index: u64,
}

impl Sealer {
    /// A sealer with `key` (the key ring's active key), or storing plain without one.
    pub fn new(key: Option<(String, Aes256Gcm)>) -> Self {
        let (key_id, cipher) = match key {
            Some((id, c)) => (Some(id), Some(c)),
            None => (None, None),
        };
        Self {
            header: Header {
                key_id,
                prefix: rand::random(),
            },
            cipher,
            index: 0,
        }
    }

    /// The header, to write first.
    pub fn header(&self) -> Vec<u8> {
        self.header.encoded()
    }

    /// The key it seals with.
    pub fn key_id(&self) -> Option<&str> {
        self.header.key_id.as_deref()
    }

    /// Seals the next chunk in place: `CHUNK` bytes, or fewer for the `last` one.
    pub fn seal(&mut self, chunk: &mut Vec<u8>, last: bool) {
        debug_assert!(chunk.len() == CHUNK || last);
        if let Some(cipher) = &self.cipher {
            let n = nonce(&self.header.prefix, self.index);
            let tag = cipher
                .encrypt_in_place_detached(Nonce::from_slice(&n), &aad(self.index, last), chunk)
                .expect("a chunk of at most 64 KiB always seals");
            chunk.extend_from_slice(&tag);
        }
        self.index += 1;
    }
}

/// Opens a sealed file's chunks, given its header and the file's size.
pub struct Opener {
    header: Header,
    header_len: u64,
    cipher: Option<Aes256Gcm>,
    size: u64,
}

impl Opener {
    /// An opener for a file of `size` bytes whose header is `header` (`header_len` bytes),
    /// with the cipher of its key (None: it was stored plain).
    pub fn new(header: Header, header_len: usize, cipher: Option<Aes256Gcm>, size: u64) -> Self {
        Self {
            header,
            header_len: header_len as u64,
            cipher,
            size,
        }
    }

    fn chunks(&self) -> u64 {
        self.size.div_ceil(CHUNK as u64).max(1)
    }

    /// The chunks that hold the bytes `range` of the file.
    pub fn chunks_for(&self, range: &Range<u64>) -> Range<u64> {
        let first = range.start / CHUNK as u64;
        let end = range.end.div_ceil(CHUNK as u64).min(self.chunks());
        first..end.max(first)
    }

    /// Where chunks `chunks` lie in the stored object.
    pub fn stored_range(&self, chunks: &Range<u64>) -> Range<u64> {
        let sealed = (CHUNK + self.header.tag_len()) as u64;
        let start = self.header_len + chunks.start * sealed;
        let stored_len = self.header_len + self.size + self.chunks() * self.header.tag_len() as u64;
        let end = (self.header_len + chunks.end * sealed).min(stored_len);
        start..end
    }

    /// How long the whole stored object is.
    pub fn stored_len(&self) -> u64 {
        self.stored_range(&(0..self.chunks())).end
    }

    /// Opens chunk `index` in place (the sealed bytes of exactly that chunk).
    pub fn open(&self, index: u64, chunk: &mut Vec<u8>) -> Result<(), SealError> {
        let last = index + 1 == self.chunks();
        let Some(cipher) = &self.cipher else {
            return Ok(());
        };
        if chunk.len() < TAG {
            return Err(SealError::Corrupt(index));
        }
        let split = chunk.len() - TAG;
        let tag = aes_gcm::Tag::clone_from_slice(&chunk[split..]);
        chunk.truncate(split);
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce(&self.header.prefix, index)),
                &aad(index, last),
                chunk,
                &tag,
            )
            .map_err(|_| SealError::Corrupt(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::KeyInit;

    fn key() -> (String, Aes256Gcm) {
        ("k1".into(), Aes256Gcm::new_from_slice(&[7; 32]).unwrap())
    }

    /// Seals `plain` whole, as the upload does chunk by chunk.
    fn sealed(plain: &[u8], key: Option<(String, Aes256Gcm)>) -> Vec<u8> {
        let mut s = Sealer::new(key);
        let mut out = s.header();
        let chunks: Vec<&[u8]> = if plain.is_empty() {
            vec![&[]]
        } else {
            plain.chunks(CHUNK).collect()
        };
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            let mut c = c.to_vec();
            s.seal(&mut c, i + 1 == n);
            out.extend_from_slice(&c);
        }
        out
    }

    fn read(
        stored: &[u8],
        range: Range<u64>,
        size: u64,
        cipher: Option<Aes256Gcm>,
    ) -> Result<Vec<u8>, SealError> {
        let (header, len) = Header::parse(stored)?;
        let o = Opener::new(header, len, cipher, size);
        assert_eq!(o.stored_len(), stored.len() as u64);
        let chunks = o.chunks_for(&range);
        let mut out = Vec::new();
        for i in chunks.clone() {
            let r = o.stored_range(&(i..i + 1));
            let mut c = stored[r.start as usize..r.end as usize].to_vec();
            o.open(i, &mut c)?;
            out.extend_from_slice(&c);
        }
        let skip = (range.start - chunks.start * CHUNK as u64) as usize;
        Ok(out[skip..skip + (range.end - range.start) as usize].to_vec())
    }

    #[test]
    fn any_range_reads_back_sealed_or_plain() {
        let plain: Vec<u8> = (0..(3 * CHUNK + 1234))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let size = plain.len() as u64;
        for key in [Some(key()), None] {
            let cipher = key.as_ref().map(|k| k.1.clone());
            let stored = sealed(&plain, key);
            for r in [
                0..size,
                0..1,
                5..CHUNK as u64 + 3,
                size - 1..size,
                2 * CHUNK as u64..3 * CHUNK as u64,
            ] {
                assert_eq!(
                    read(&stored, r.clone(), size, cipher.clone()).unwrap(),
                    plain[r.start as usize..r.end as usize]
                );
            }
        }
    }

    #[test]
    fn an_altered_reordered_or_cut_file_fails_to_open() {
        let plain = vec![9u8; 2 * CHUNK + 10];
        let size = plain.len() as u64;
        let stored = sealed(&plain, Some(key()));
        let cipher = Some(key().1);
        let mut flipped = stored.clone();
        let at = flipped.len() - 20; // inside the last chunk (10 bytes and its tag)
        flipped[at] ^= 1;
        assert_eq!(
            read(&flipped, 0..size, size, cipher.clone()),
            Err(SealError::Corrupt(2))
        );
        // Cut after a whole chunk: the new last chunk was not sealed as the last.
        let (_, hl) = Header::parse(&stored).unwrap();
        let cut = &stored[..hl + CHUNK + TAG];
        let cut_size = CHUNK as u64;
        let (h, _) = Header::parse(cut).unwrap();
        let o = Opener::new(h, hl, cipher.clone(), cut_size);
        let mut c = cut[hl..].to_vec();
        assert_eq!(o.open(0, &mut c), Err(SealError::Corrupt(0)));
        // Another key does not open it.
        let other = Aes256Gcm::new_from_slice(&[8; 32]).unwrap();
        assert!(read(&stored, 0..10, size, Some(other)).is_err());
        assert_eq!(Header::parse(b"MSGF0xx"), Err(SealError::Header));
    }
}
