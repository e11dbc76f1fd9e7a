//! What the edges (HTTP handlers, server functions, WebSocket connections) share: the
//! services, the hub and the configuration. Built by [`crate::server::app`]; nothing below
//! the edges sees it: services are given the handles they use.

use super::{
    auth::{challenge::Verifier, Auth},
    bots::Bots,
    chat::Chat,
    config::Config,
    contacts::Contacts,
    hub::local::LocalHub,
    limits::{sockets::SocketSlots, stored::StoredLimits, users::UserRateRegistry},
    presence::PresenceHub,
    profile::Profiles,
    store::Database,
};
use leptos::config::LeptosOptions;
use std::{ops::Deref, sync::Arc};
use tokio::sync::watch;

/// What the edges share. Cheap to clone and small: one `Arc`. Every WebSocket connection
/// keeps a copy for its lifetime, so everything lives in [`Shared`].
#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
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
    /// Origins allowed for the WebSocket and for cookie-authenticated writes.
    pub origins: Vec<String>,
    /// Whether the public origin is https, so the cookie gets `Secure`.
    pub secure_cookies: bool,
    /// The database (administration and tests reach it here).
    pub store: Arc<dyn Database>,
    /// The in-process fan-out: sockets register and subscribe here.
    pub hub: Arc<LocalHub>,
    pub presence: Arc<PresenceHub>,
    pub auth: Arc<Auth>,
    /// Deletes accounts and erases what they wrote (`account`).
    pub erasure: Arc<crate::server::account::Erasure>,
    /// The audit log (`audit`).
    pub audit: Arc<crate::server::audit::Audit>,
    /// What each address may still send of web-vitals beacons (`http::rum` takes them).
    pub beacons: crate::server::limits::addresses::AddressBuckets,
    /// Analytics events (`analytics`).
    pub analytics: crate::server::analytics::Analytics,
    /// Prometheus metrics (`metrics`).
    pub metrics: Arc<crate::server::metrics::Metrics>,
    /// The retention job (`retention`).
    pub retention: Arc<crate::server::retention::Retention>,
    /// Bot verification at the door (ALTCHA, Turnstile or off).
    pub verifier: Arc<Verifier>,
    /// The limits kept in the store (sign-in failures, accounts and guests per address).
    pub stored_limits: Arc<StoredLimits>,
    pub chat: Arc<Chat>,
    /// Shared files (`media`).
    pub media: Arc<crate::server::media::Media>,
    pub contacts: Arc<Contacts>,
    pub profiles: Arc<Profiles>,
    /// The AI contacts; None when the server runs without them (`--bots false`).
    pub bots: Option<Arc<Bots>>,
    /// Counts open WebSocket connections, so shutdown can wait for them.
    pub live_sockets: watch::Sender<usize>,
    /// The WebSockets' caps (per user, per address, in all) and what is open.
    pub sockets: Arc<SocketSlots>,
    /// Each user's frame and message rates, shared by their sockets.
    pub rates: Arc<UserRateRegistry>,
    /// Each user's message rate over every node (with `--nats`; `limits/shared.rs`).
    pub shared_rates: Option<Arc<crate::server::limits::shared::SharedRates>>,
    /// Free space on the database's disk: below its floor, new messages are refused.
    pub space: Arc<crate::server::store::space::DiskSpace>,
    /// The key every message is sealed under, once the background re-encryption has
    /// finished a pass with nothing left under another (None until then).
    pub sealed_under: watch::Sender<Option<String>>,
}
