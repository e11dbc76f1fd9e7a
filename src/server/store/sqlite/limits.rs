//! Stored token buckets (each take is one statement, so concurrent requests cannot both
//! take the last token), and what bot verification keeps.

use super::SqliteStore;
use crate::server::store::{BucketRate, ChallengeStore, LimitStore, Result};
use async_trait::async_trait;

#[async_trait]
impl LimitStore for SqliteStore {
    async fn take_token(
        &self,
        scope: &str,
        key: &str,
        rate: BucketRate,
        now: i64,
    ) -> Result<std::result::Result<(), i64>> {
        let (burst, per_ms) = (rate.burst, rate.per_ms);
        // A new bucket starts full (one token taken); an existing one is refilled for the
        // time since it was last touched, and touched only if a token is there to take.
        // In a transaction whose commit is checked: an autocommit INSERT ... RETURNING hands
        // its row over before it commits, and a commit that then fails (a full disk) went
        // unreported.
        // Concurrent takes read the clock before they queue for the write lock, so one may
        // commit with an earlier `now` than the bucket's last touch: time never runs
        // backwards here (a negative refill took tokens away; at a high rate, all of them).
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query_scalar!(
            r#"INSERT INTO rate_limits (scope, key, tokens, updated_at, burst, per_ms)
               VALUES (?1, ?2, ?3 - 1.0, ?4, ?3, ?5)
               ON CONFLICT (scope, key) DO UPDATE SET
                   tokens = min(?3, tokens + max(0, ?4 - updated_at) * ?5) - 1.0,
                   updated_at = max(updated_at, ?4), burst = ?3, per_ms = ?5
               WHERE min(?3, tokens + max(0, ?4 - updated_at) * ?5) >= 1.0
               RETURNING tokens AS "tokens: f64""#,
            scope,
            key,
            burst,
            now,
            per_ms,
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let row = sqlx::query!(
            r#"SELECT tokens AS "tokens: f64", updated_at FROM rate_limits
               WHERE scope = ? AND key = ?"#,
            scope,
            key,
        )
        .fetch_optional(self.pool())
        .await?;
        let wait = match row {
            Some(r) => {
                let now_tokens =
                    (r.tokens + (now - r.updated_at).max(0) as f64 * per_ms).min(burst);
                ((1.0 - now_tokens) / per_ms).ceil().max(1.0) as i64
            }
            None => 1,
        };
        Ok(Err(wait))
    }

    async fn give_token(&self, scope: &str, key: &str, rate: BucketRate) -> Result<()> {
        sqlx::query!(
            "UPDATE rate_limits SET tokens = min(?, tokens + 1.0) WHERE scope = ? AND key = ?",
            rate.burst,
            scope,
            key,
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn forget_full_buckets(&self, now: i64) -> Result<u64> {
        let done = sqlx::query!(
            "DELETE FROM rate_limits WHERE tokens + (? - updated_at) * per_ms >= burst",
            now,
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ChallengeStore for SqliteStore {
    async fn setting_or(&self, key: &str, fresh: &str) -> Result<String> {
        sqlx::query!(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            key,
            fresh,
        )
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query_scalar!("SELECT value FROM settings WHERE key = ?", key)
                .fetch_one(self.pool())
                .await?,
        )
    }

    async fn spend_challenge(&self, id: &str, expires_at: i64) -> Result<bool> {
        let done = sqlx::query!(
            "INSERT INTO spent_challenges (id, expires_at) VALUES (?, ?)
             ON CONFLICT (id) DO NOTHING",
            id,
            expires_at,
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_expired_challenges(&self, now: i64) -> Result<u64> {
        let done = sqlx::query!("DELETE FROM spent_challenges WHERE expires_at < ?", now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes read the clock, then queue for the write lock: under load (a thousand guests
    /// at once) a take may commit seconds after a later reading did. It must not see time
    /// run backwards: a refill of minus five seconds at a bucket's whole burst per second
    /// took every token (the load tool's guests were refused with 429, room to spare).
    #[tokio::test]
    async fn a_take_that_commits_after_a_later_one_is_not_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("l.db"))
            .await
            .expect("open");
        let rate = BucketRate {
            burst: 1e9,
            per_ms: 1e6,
        };
        let now = 1_000_000;
        assert_eq!(
            store.take_token("s", "k", rate, now + 5_000).await.unwrap(),
            Ok(())
        );
        assert_eq!(store.take_token("s", "k", rate, now).await.unwrap(), Ok(()));
        // Slow buckets keep their exact count whatever the order.
        let slow = BucketRate {
            burst: 2.0,
            per_ms: 1e-9,
        };
        assert_eq!(
            store
                .take_token("s", "slow", slow, now + 5_000)
                .await
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            store.take_token("s", "slow", slow, now).await.unwrap(),
            Ok(())
        );
        assert!(store
            .take_token("s", "slow", slow, now + 5_001)
            .await
            .unwrap()
            .is_err());
    }
}
