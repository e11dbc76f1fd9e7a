//! Profiles on PostgreSQL: each user's chosen status, personal message, display name and
//! picture.

use super::PgStore;
use crate::protocol::Status;
use crate::server::store::{now_ms, Profile, ProfileStore, Result};
use async_trait::async_trait;

#[async_trait]
impl ProfileStore for PgStore {
    async fn profile(&self, user: i64) -> Result<Option<Profile>> {
        let row: Option<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT u.status, u.personal_message, u.display_name, p.version
             FROM users u LEFT JOIN pictures p ON p.user_id = u.id WHERE u.id = $1::bigint",
        )
        .bind(user)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(status, personal_message, display_name, picture)| Profile {
                status: Status::parse(&status).unwrap_or_default(),
                personal_message,
                display_name,
                picture,
            },
        ))
    }

    async fn update_profile(
        &self,
        user: i64,
        status: Option<Status>,
        display_name: Option<&str>,
        personal_message: Option<&str>,
    ) -> Result<Option<Profile>> {
        let status = status.map(Status::as_str);
        sqlx::query(
            "UPDATE users SET status = COALESCE($1::text, status),
                 display_name = COALESCE($2::text, display_name),
                 personal_message = COALESCE($3::text, personal_message)
             WHERE id = $4::bigint",
        )
        .bind(status)
        .bind(display_name)
        .bind(personal_message)
        .bind(user)
        .execute(self.pool())
        .await?;
        self.profile(user).await
    }

    async fn set_picture(
        &self,
        user: i64,
        picture: Option<(&str, &[u8])>,
    ) -> Result<Option<Profile>> {
        match picture {
            Some((version, png)) => {
                let now = now_ms();
                // Only for a user that exists: no row to insert otherwise.
                sqlx::query(
                    "INSERT INTO pictures (user_id, version, png, updated_at)
                     SELECT id, $2::text, $3::bytea, $4::bigint FROM users WHERE id = $1::bigint
                     ON CONFLICT (user_id) DO UPDATE
                     SET version = EXCLUDED.version, png = EXCLUDED.png,
                         updated_at = EXCLUDED.updated_at",
                )
                .bind(user)
                .bind(version)
                .bind(png)
                .bind(now)
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM pictures WHERE user_id = $1::bigint")
                    .bind(user)
                    .execute(self.pool())
                    .await?;
            }
        }
        self.profile(user).await
    }

    async fn picture(&self, user: i64) -> Result<Option<(String, Vec<u8>)>> {
        Ok(
            sqlx::query_as("SELECT version, png FROM pictures WHERE user_id = $1::bigint")
                .bind(user)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
