//! Password hashing with argon2id on the blocking pool, two at a time, each in one of two
//! memory areas that are kept and reused: argon2 needs ~19 MiB per hash, and allocating it
//! afresh on whichever blocking thread ran it left every thread's allocator holding its own
//! copy (a burst of failed sign-ins grew the process by 260 MB that it never gave back).
//! Now the hashing memory is 2 × 19 MiB, allocated on first use, whatever the load.

use crate::server::error::{AppError, Result};
use anyhow::Context;
use argon2::{
    password_hash::{rand_core::OsRng, Decimal, Output, ParamsString, PasswordHash, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};
use std::{sync::Mutex, time::Duration};
use tokio::sync::Semaphore;

/// Hashes at once (each takes a core while it runs).
const AT_ONCE: usize = 2;
/// Longest a sign-in waits for a turn before it is told to come back.
const LONGEST_WAIT: Duration = Duration::from_secs(10);
/// Most memory one stored hash may ask for (our own ask for 19 MiB).
const MAX_BLOCKS: usize = 64 * 1024;

pub struct Hasher {
    /// Bounds concurrent argon2 work.
    permits: Semaphore,
    /// The memory areas, one per permit (taken while hashing).
    areas: Mutex<Vec<Vec<Block>>>,
    /// A real argon2 hash of a random password, verified against when a user is unknown, so
    /// that timing does not tell which usernames exist.
    dummy: String,
}

impl Hasher {
    pub async fn new() -> anyhow::Result<Self> {
        let dummy = tokio::task::spawn_blocking(|| {
            let mut area = Vec::new();
            hash_with(b"no account has this password", &mut area)
        })
        .await??;
        Ok(Self {
            permits: Semaphore::new(AT_ONCE),
            areas: Mutex::new(Vec::new()),
            dummy,
        })
    }

    /// Runs `work` on the blocking pool with a memory area, once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = match tokio::time::timeout(LONGEST_WAIT, self.permits.acquire()).await {
            Ok(permit) => permit.context("hashing limiter closed")?,
            Err(_) => {
                return Err(AppError::TooMany {
                    message: "The server is busy signing people in; try again in a moment.".into(),
                    retry_after: Duration::from_secs(5),
                })
            }
        };
        let mut area = self
            .areas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        let (area, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut area);
            (area, result)
        })
        .await
        .context("hashing task")?;
        self.areas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(area);
        result.map_err(AppError::Internal)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move |area| hash_with(password.as_bytes(), area))
            .await
    }

    /// Checks a password against a stored hash. With no hash (unknown user or guest) it still
    /// does the work, and answers no.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool> {
        let known = hash.is_some();
        let stored = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .run(move |area| verify_with(&stored, password.as_bytes(), area))
            .await?;
        Ok(known && ok)
    }
}

/// The area, grown to `blocks` if it is smaller (it never shrinks: it is reused).
fn area_of(area: &mut Vec<Block>, blocks: usize) -> anyhow::Result<&mut [Block]> {
    anyhow::ensure!(blocks <= MAX_BLOCKS, "a hash asks for {blocks} KiB");
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    Ok(&mut area[..blocks])
}

/// argon2id with the default parameters, as a PHC string.
fn hash_with(password: &[u8], area: &mut Vec<Block>) -> anyhow::Result<String> {
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let memory = area_of(area, params.block_count())?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon
            .hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Decimal::from(Version::V0x13)),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` is the one `stored` (a PHC string) was made from.
fn verify_with(stored: &str, password: &[u8], area: &mut Vec<Block>) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let algorithm =
        Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("algorithm: {e}"))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| anyhow::anyhow!("version: {e}"))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("params: {e}"))?;
    let expected = parsed.hash.context("stored hash has no output")?;
    let salt = parsed.salt.context("stored hash has no salt")?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let memory = area_of(area, params.block_count())?;
    let argon = Argon2::new(algorithm, version, params);
    let output = Output::init_with(expected.len(), |out| {
        argon
            .hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    // `Output`'s equality is constant-time.
    Ok(output == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_are_standard_argon2id_both_ways() {
        let mut area = Vec::new();
        let ours = hash_with(b"correct horse", &mut area).expect("hash");
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // The library's own verifier accepts ours...
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // ... and ours accepts the library's (hashes stored before this change).
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_with(&theirs, b"battery staple", &mut area).expect("verify"));
        assert!(!verify_with(&theirs, b"battery stapler", &mut area).expect("verify"));
        assert!(verify_with(&ours, b"correct horse", &mut area).expect("verify"));
        assert!(!verify_with(&ours, b"Correct horse", &mut area).expect("verify"));
        assert_eq!(
            area.len(),
            Params::default().block_count(),
            "one area, reused"
        );
    }
}
