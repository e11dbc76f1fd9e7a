//! The user's own card: status, display name, personal message and display picture. A change
//! is stored, then told to presence (and so to the contacts who may see it) and to the
//! user's own tabs, in the order the database applied them.

pub mod pictures;

use super::{
    bots::personas,
    error::{AppError, Result},
    hub::{Control, Fanout},
    presence::PresenceHub,
    store::{ContactStore, Profile, ProfileStore, UserStore},
    text,
};
use crate::protocol::{
    http::{Me, UpdateMe},
    ServerFrame, Status, Username, MAX_DISPLAY_NAME_CHARS, MAX_PERSONAL_MESSAGE_CHARS,
};
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::{
    sync::{Mutex, Semaphore},
    time::Instant,
};

pub struct Profiles {
    pub store: Arc<dyn ProfileStore>,
    /// Usernames, so a display name cannot pass for someone else's.
    pub users: Arc<dyn UserStore>,
    pub contacts: Arc<dyn ContactStore>,
    pub presence: Arc<PresenceHub>,
    pub fanout: Arc<dyn Fanout>,
    /// Held while a profile is stored and told, so that two changes at once (status from one
    /// tab, personal message from another) reach everyone in the order the database applied
    /// them. Profile changes are rare: one lock is enough.
    changes: Mutex<()>,
    /// Bounds concurrent picture decoding (each takes a core and up to ~100 MiB).
    decoding: Semaphore,
    /// Status changes from sockets, coalesced: see [`Profiles::choose_status`].
    status_writes: std::sync::Mutex<HashMap<i64, StatusWrite>>,
}

/// Least time between two stored status changes of one user from their sockets.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// A user's last status write, and the status waiting for the next one.
struct StatusWrite {
    last: Instant,
    pending: Option<Status>,
}

impl From<Profile> for Me {
    fn from(p: Profile) -> Self {
        Self {
            status: p.status,
            display_name: p.display_name,
            personal_message: p.personal_message,
            picture: p.picture,
        }
    }
}

impl Profiles {
    pub fn new(
        store: Arc<dyn ProfileStore>,
        users: Arc<dyn UserStore>,
        contacts: Arc<dyn ContactStore>,
        presence: Arc<PresenceHub>,
        fanout: Arc<dyn Fanout>,
    ) -> Self {
        Self {
            store,
            users,
            contacts,
            presence,
            fanout,
            changes: Mutex::new(()),
            decoding: Semaphore::new(2),
            status_writes: std::sync::Mutex::default(),
        }
    }

    pub async fn profile(&self, user: i64) -> Result<Profile> {
        self.store
            .profile(user)
            .await?
            .ok_or_else(|| AppError::NotFound("Your account no longer exists.".into()))
    }

    /// Validates and stores a change to the user's status, name or personal message.
    pub async fn update(&self, user: i64, change: UpdateMe) -> Result<Me> {
        let display_name = change
            .display_name
            .map(|n| text::line(&n, "display name", MAX_DISPLAY_NAME_CHARS, false))
            .transpose()?;
        if let Some(name) = &display_name {
            self.not_someone_else(user, name).await?;
        }
        let personal_message = change
            .personal_message
            .map(|m| text::line(&m, "personal message", MAX_PERSONAL_MESSAGE_CHARS, true))
            .transpose()?;
        let p = self
            .store_change(
                user,
                change.status,
                display_name.as_deref(),
                personal_message.as_deref(),
            )
            .await?;
        Ok(Me::from(p))
    }

    /// Refuses a display name that looks like an AI contact's name or handle, or like
    /// another user's username (their own is fine).
    async fn not_someone_else(&self, user: i64, name: &str) -> Result<()> {
        let key = text::look_alike_key(name);
        if let Some(bot) = personas::ALL.iter().find(|p| {
            text::look_alike_key(p.display_name) == key || text::look_alike_key(p.handle) == key
        }) {
            if self
                .users
                .user_by_username(bot.handle)
                .await?
                .map(|u| u.summary.id)
                != Some(user)
            {
                return Err(AppError::Invalid(format!(
                    "That name looks like the AI contact {}; choose another.",
                    bot.display_name
                )));
            }
        }
        // Usernames are ASCII letters, digits, '_' and '.': a name whose look-alike form is
        // one may be impersonating its owner.
        for candidate in [name.trim().to_owned(), key] {
            if Username::parse(&candidate).is_err() {
                continue;
            }
            if let Some(owner) = self.users.user_by_username(&candidate).await? {
                if owner.summary.id != user {
                    return Err(AppError::Invalid(
                        "That name looks like another user's username; choose another.".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Chooses a status (from a socket, or the sign-in window's "Sign in as").
    pub async fn set_status(&self, user: i64, status: Status) -> Result<Profile> {
        self.store_change(user, Some(status), None, None).await
    }

    /// Chooses a status from a socket, at most one write per [`STATUS_EVERY`] per user over
    /// all their sockets: a change within the interval waits for its end, and a later one
    /// replaces it (the last status wins). A flood of status frames costs one write, and one
    /// frame to each tab and contact, per interval.
    pub async fn choose_status(self: &Arc<Self>, user: i64, status: Status) -> Result<()> {
        let now = Instant::now();
        {
            let mut writes = self.status_writes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = writes.get_mut(&user) {
                if w.pending.is_some() {
                    w.pending = Some(status);
                    return Ok(());
                }
                if now.duration_since(w.last) < STATUS_EVERY {
                    w.pending = Some(status);
                    let due = w.last + STATUS_EVERY;
                    tokio::spawn(Arc::clone(self).write_status_at(user, due));
                    return Ok(());
                }
            }
            writes.insert(
                user,
                StatusWrite {
                    last: now,
                    pending: None,
                },
            );
            if writes.len() > 4096 {
                writes.retain(|_, w| {
                    w.pending.is_some() || now.duration_since(w.last) < STATUS_EVERY
                });
            }
        }
        self.set_status(user, status).await.map(|_| ())
    }

    /// Stores the status waiting for `user` at `due`.
    async fn write_status_at(self: Arc<Self>, user: i64, due: Instant) {
        tokio::time::sleep_until(due).await;
        let status = {
            let mut writes = self.status_writes.lock().unwrap_or_else(|p| p.into_inner());
            let Some(w) = writes.get_mut(&user) else {
                return;
            };
            w.last = Instant::now();
            w.pending.take()
        };
        if let Some(status) = status {
            if let Err(e) = self.set_status(user, status).await {
                tracing::warn!(user, error = %e, "storing a status change failed");
            }
        }
    }

    async fn store_change(
        &self,
        user: i64,
        status: Option<Status>,
        display_name: Option<&str>,
        personal_message: Option<&str>,
    ) -> Result<Profile> {
        let _in_order = self.changes.lock().await;
        let profile = self
            .store
            .update_profile(user, status, display_name, personal_message)
            .await?
            .ok_or_else(|| AppError::NotFound("Your account no longer exists.".into()))?;
        self.tell(user, &profile);
        Ok(profile)
    }

    /// Checks, re-encodes and stores a new display picture.
    pub async fn set_picture(&self, user: i64, upload: bytes::Bytes) -> Result<Me> {
        let processed = {
            // Decoding takes a core and up to ~100 MiB: at most two at once.
            let _permit = self
                .decoding
                .acquire()
                .await
                .map_err(|e| AppError::Internal(e.into()))?;
            tokio::task::spawn_blocking(move || pictures::process(&upload))
                .await
                .map_err(|e| AppError::Internal(e.into()))?
        }
        .map_err(|e| AppError::Invalid(e.to_string()))?;
        let profile = {
            let _in_order = self.changes.lock().await;
            let profile = self
                .store
                .set_picture(user, Some((&processed.version, &processed.png)))
                .await?
                .ok_or_else(|| AppError::NotFound("Your account no longer exists.".into()))?;
            self.tell(user, &profile);
            profile
        };
        tracing::info!(user, bytes = processed.png.len(), "display picture changed");
        Ok(Me::from(profile))
    }

    /// Back to the default picture.
    pub async fn remove_picture(&self, user: i64) -> Result<Me> {
        let _in_order = self.changes.lock().await;
        let profile = self
            .store
            .set_picture(user, None)
            .await?
            .ok_or_else(|| AppError::NotFound("Your account no longer exists.".into()))?;
        self.tell(user, &profile);
        Ok(Me::from(profile))
    }

    /// `owner`'s picture (version and PNG) as `viewer` may see it: the owner's own, or an
    /// accepted contact's whom the owner has not blocked; None for everyone else and for
    /// users without a picture.
    pub async fn picture_for(&self, viewer: i64, owner: i64) -> Result<Option<(String, Vec<u8>)>> {
        if viewer != owner && !self.contacts.may_see_presence(viewer, owner).await? {
            return Ok(None);
        }
        Ok(self.store.picture(owner).await?)
    }

    /// Tells presence (and so the contacts) and the user's own tabs about a stored change.
    /// Called holding `changes`, so changes reach everyone in order.
    fn tell(&self, user: i64, profile: &Profile) {
        self.presence.set_profile(user, profile.clone());
        self.fanout.notify_user(
            user,
            Control::frame(&ServerFrame::MyStatus {
                status: profile.status,
                personal_message: profile.personal_message.clone(),
                display_name: profile.display_name.clone(),
                picture: profile.picture.clone(),
            }),
        );
    }
}
