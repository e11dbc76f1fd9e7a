//! Stored token buckets on PostgreSQL (each take is one statement, so concurrent requests,
//! on one node or several, cannot both take the last token), and what bot verification
//! keeps.

use super::PgStore;
use crate::server::store::{BucketRate, ChallengeStore, LeaseStore, LimitStore, Result};
use async_trait::async_trait;

#[async_trait]
impl LimitStore for PgStore {
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
        // Atomic across nodes: ON CONFLICT DO UPDATE locks the bucket's row and checks its
        // WHERE against the latest committed version, so concurrent takers queue on the row
        // and each sees what the previous one left.
        // Nodes read their own clocks, and a take may commit after one that read a later
        // time: time never runs backwards here (a negative refill would take tokens away).
        let taken: Option<f64> = sqlx::query_scalar(
            "INSERT INTO rate_limits AS r (scope, key, tokens, updated_at, burst, per_ms)
             VALUES ($1::text, $2::text, $3::float8 - 1.0, $4::bigint, $3::float8, $5::float8)
             ON CONFLICT (scope, key) DO UPDATE SET
                 tokens = LEAST($3::float8,
                                r.tokens + GREATEST(0, $4::bigint - r.updated_at) * $5::float8)
                          - 1.0,
                 updated_at = GREATEST(r.updated_at, $4::bigint),
                 burst = $3::float8,
                 per_ms = $5::float8
             WHERE LEAST($3::float8,
                         r.tokens + GREATEST(0, $4::bigint - r.updated_at) * $5::float8) >= 1.0
             RETURNING r.tokens",
        )
        .bind(scope)
        .bind(key)
        .bind(burst)
        .bind(now)
        .bind(per_ms)
        .fetch_optional(self.pool())
        .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let row: Option<(f64, i64)> = sqlx::query_as(
            "SELECT tokens, updated_at FROM rate_limits WHERE scope = $1::text AND key = $2::text",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        let wait = match row {
            Some((tokens, updated_at)) => {
                let now_tokens = (tokens + (now - updated_at).max(0) as f64 * per_ms).min(burst);
                ((1.0 - now_tokens) / per_ms).ceil().max(1.0) as i64
            }
            None => 1,
        };
        Ok(Err(wait))
    }

    async fn give_token(&self, scope: &str, key: &str, rate: BucketRate) -> Result<()> {
        sqlx::query(
            "UPDATE rate_limits SET tokens = LEAST($1::float8, tokens + 1.0)
             WHERE scope = $2::text AND key = $3::text",
        )
        .bind(rate.burst)
        .bind(scope)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn forget_full_buckets(&self, now: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM rate_limits WHERE tokens + ($1::bigint - updated_at) * per_ms >= burst",
        )
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ChallengeStore for PgStore {
    async fn setting_or(&self, key: &str, fresh: &str) -> Result<String> {
        // Two statements: the read after the insert sees the value whichever node set it
        // first (one statement's snapshot could miss a row another node just committed).
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1::text, $2::text)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(fresh)
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1::text")
                .bind(key)
                .fetch_one(self.pool())
                .await?,
        )
    }

    async fn spend_challenge(&self, id: &str, expires_at: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO spent_challenges (id, expires_at) VALUES ($1::text, $2::bigint)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_expired_challenges(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM spent_challenges WHERE expires_at < $1::bigint")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl LeaseStore for PgStore {
    async fn lease_tokens(
        &self,
        scope: &str,
        key: &str,
        rate: BucketRate,
        want: u32,
        now: i64,
    ) -> Result<u32> {
        let (burst, per_ms) = (rate.burst, rate.per_ms);
        // One statement, as `take_token`: a new bucket starts full; an existing one is
        // refilled for the time since it was last touched (never backwards: nodes read
        // their own clocks), and gives up to `want` whole tokens if it has one. The row lock
        // of ON CONFLICT DO UPDATE orders the nodes that lease at once, each seeing what the
        // previous one left. `last_lease` carries what was granted out through RETURNING
        // (which shows only the new row). The lease pool does not wait for the disk
        // (`synchronous_commit` off): a lease lost in a crash of PostgreSQL only gives the
        // user back tokens they would have regained by waiting; waiting for each lease's
        // fsync put one before many sends and cost them a second under load
        // (docs/BENCHMARKS.md, "Several nodes").
        let granted: Option<i32> = sqlx::query_scalar(
            "INSERT INTO rate_limits AS r (scope, key, tokens, updated_at, burst, per_ms, last_lease)
             VALUES ($1::text, $2::text,
                     $3::float8 - LEAST($6::float8, FLOOR($3::float8)),
                     $4::bigint, $3::float8, $5::float8,
                     LEAST($6::float8, FLOOR($3::float8))::int4)
             ON CONFLICT (scope, key) DO UPDATE SET
                 tokens = LEAST($3::float8,
                                r.tokens + GREATEST(0, $4::bigint - r.updated_at) * $5::float8)
                          - LEAST($6::float8, FLOOR(LEAST($3::float8,
                                r.tokens + GREATEST(0, $4::bigint - r.updated_at) * $5::float8))),
                 updated_at = GREATEST(r.updated_at, $4::bigint),
                 burst = $3::float8,
                 per_ms = $5::float8,
                 last_lease = LEAST($6::float8, FLOOR(LEAST($3::float8,
                                r.tokens + GREATEST(0, $4::bigint - r.updated_at) * $5::float8)))::int4
             WHERE LEAST($3::float8,
                         r.tokens + GREATEST(0, $4::bigint - r.updated_at) * $5::float8) >= 1.0
             RETURNING r.last_lease",
        )
        .bind(scope)
        .bind(key)
        .bind(burst)
        .bind(now)
        .bind(per_ms)
        .bind(f64::from(want))
        .fetch_optional(self.lease_pool())
        .await?;
        Ok(granted.map_or(0, |g| g.max(0) as u32))
    }
}
