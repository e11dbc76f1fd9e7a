//! Password hashing with argon2id on the blocking pool, a few at a time.

use crate::server::error::{AppError, Result};
use anyhow::Context;
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use tokio::sync::Semaphore;

pub struct Hasher {
    /// Bounds concurrent argon2 work (each hash takes ~19 MiB and a core for a while).
    permits: Semaphore,
    /// A real argon2 hash of a random password, verified against when a user is unknown, so
    /// that timing does not tell which usernames exist.
    dummy: String,
}

impl Hasher {
    pub async fn new() -> anyhow::Result<Self> {
        let dummy = tokio::task::spawn_blocking(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"no account has this password", &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await??;
        Ok(Self {
            permits: Semaphore::new(2),
            dummy,
        })
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("hashing limiter closed")?;
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await
        .context("hashing task")?
        .map_err(AppError::Internal)
    }

    /// Checks a password against a stored hash. With no hash (unknown user or guest) it still
    /// does the work, and answers no.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("hashing limiter closed")?;
        let dummy = self.dummy.clone();
        tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let stored = hash.unwrap_or(dummy);
            let parsed =
                PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && ok)
        })
        .await
        .context("verifying task")?
        .map_err(AppError::Internal)
    }
}
