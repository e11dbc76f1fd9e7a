//! Profiles: each user's chosen status, personal message, display name and picture.

use super::SqliteStore;
use crate::protocol::Status;
use crate::server::store::{now_ms, Profile, ProfileStore, Result};
use async_trait::async_trait;

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn profile(&self, user: i64) -> Result<Option<Profile>> {
        let row = sqlx::query!(
            r#"SELECT u.status, u.personal_message, u.display_name, p.version AS "version?"
               FROM users u LEFT JOIN pictures p ON p.user_id = u.id WHERE u.id = ?"#,
            user,
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| Profile {
            status: Status::parse(&r.status).unwrap_or_default(),
            personal_message: r.personal_message,
            display_name: r.display_name,
            picture: r.version,
        }))
    }

    async fn update_profile(
        &self,
        user: i64,
        status: Option<Status>,
        display_name: Option<&str>,
        personal_message: Option<&str>,
    ) -> Result<Option<Profile>> {
        let status = status.map(Status::as_str);
        sqlx::query!(
            "UPDATE users SET status = COALESCE(?, status), display_name = COALESCE(?, display_name),
                 personal_message = COALESCE(?, personal_message)
             WHERE id = ?",
            status,
            display_name,
            personal_message,
            user,
        )
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
                sqlx::query!(
                    "INSERT INTO pictures (user_id, version, png, updated_at)
                     SELECT id, ?2, ?3, ?4 FROM users WHERE id = ?1
                     ON CONFLICT (user_id) DO UPDATE
                     SET version = excluded.version, png = excluded.png, updated_at = excluded.updated_at",
                    user,
                    version,
                    png,
                    now,
                )
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query!("DELETE FROM pictures WHERE user_id = ?", user)
                    .execute(self.pool())
                    .await?;
            }
        }
        self.profile(user).await
    }

    async fn picture(&self, user: i64) -> Result<Option<(String, Vec<u8>)>> {
        let row = sqlx::query!("SELECT version, png FROM pictures WHERE user_id = ?", user)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| (r.version, r.png)))
    }
}
