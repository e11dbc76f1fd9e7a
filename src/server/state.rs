//! The state every handler and WebSocket connection shares.

use super::{config::Config, hub::Hub, presence::PresenceHub, store::Store, writer::Writer};
use crate::protocol::NUDGE_EVERY;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::{ops::Deref, sync::Arc};
use tokio::sync::{watch, Semaphore};

/// Cheap to clone and small: one `Arc`. Every WebSocket connection keeps a copy for its
/// lifetime, so Leptos' options (~250 bytes of `Arc<str>`s, which `leptos_axum` wants by
/// `FromRef`) live in [`Shared`] rather than here.
#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.shared.leptos_options.clone()
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

pub struct Shared {
    pub leptos_options: LeptosOptions,
    pub cfg: Config,
    pub store: Store,
    pub writer: Writer,
    pub hub: Arc<Hub>,
    /// Who is online and who may see it.
    pub presence: PresenceHub,
    /// Origins allowed for the WebSocket and for cookie-authenticated writes.
    pub origins: Vec<String>,
    /// Whether the public origin is https, so the cookie gets `Secure`.
    pub secure_cookies: bool,
    /// Bounds concurrent argon2 work (each hash takes ~19 MiB and a core for a while).
    pub hashing: Semaphore,
    /// A real argon2 hash of a random password, verified against when a user is unknown.
    pub dummy_hash: String,
    /// Counts open WebSocket connections, so shutdown can wait for them.
    pub live_sockets: watch::Sender<usize>,
    /// Held while a user's profile is stored and told to presence and their tabs, so that two
    /// changes at once (status from one tab, personal message from another) reach everyone
    /// in the order the database applied them. Profile changes are rare: one lock is enough.
    pub profile_changes: tokio::sync::Mutex<()>,
    /// Bounds concurrent display-picture decoding (each takes a core and up to ~100 MiB).
    pub pictures: Semaphore,
    /// The AI contacts; None when the server runs without them (`--bots false`).
    pub bots: Option<super::bots::Bots>,
    /// When each user last nudged each conversation.
    pub nudges: NudgeLimit,
}

/// One nudge per user per conversation per [`NUDGE_EVERY`], across all their connections.
/// In memory: after a restart a nudge may come sooner, which harms nobody.
#[derive(Default)]
pub struct NudgeLimit {
    last: std::sync::Mutex<std::collections::HashMap<(i64, i64), std::time::Instant>>,
}

impl NudgeLimit {
    /// Whether `user` may nudge `conv` now; if so, counts this nudge.
    pub fn allow(&self, conv: i64, user: i64) -> bool {
        let now = std::time::Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last
            .get(&(conv, user))
            .is_some_and(|at| now.duration_since(*at) < NUDGE_EVERY)
        {
            return false;
        }
        // Entries older than the window decide nothing: drop them now and then.
        if last.len() >= 1024 {
            last.retain(|_, at| now.duration_since(*at) < NUDGE_EVERY);
        }
        last.insert((conv, user), now);
        true
    }
}
