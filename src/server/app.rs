//! Builds the application: the store, the message log, the fan-out hub, presence, the
//! services (each given the handles it uses), the [`AppState`] the edges share, and the
//! router (pages, server functions, the JSON API, the WebSocket, the bundle), on its own
//! listener; then serves until a shutdown signal, closes sockets with "going away", lets the
//! log commit what it holds, and checkpoints the database.

/// Largest HTTP request body accepted (picture uploads have their own limit).
const MAX_BODY: usize = 64 * 1024;

pub use super::state::{AppState, Shared};
use super::{
    account::Erasure,
    auth::{challenge::Verifier, Auth, Lifetimes},
    bots::{self, Replier},
    chat::{Chat, MembersWatch},
    config::{default_origins, Config},
    contacts::Contacts,
    http::{self, client::Peer, error, profile, security, server_fns},
    hub::nats::NatsHub,
    hub::{local::LocalHub, Fanout},
    limits::{
        rate::Rate,
        sockets::{raise_descriptor_limit, SocketSlots},
        stored::StoredLimits,
        users::{UserRateConfig, UserRateRegistry},
    },
    presence::{self, PresenceHub, Publisher},
    profile::Profiles,
    retention::Retention,
    store::{
        postgres::{log::PgLog, PgStore},
        space::DiskSpace,
        sqlite::writer::Writer,
        sqlite::SqliteStore,
        ContactStore, Database, MessageLog,
    },
    ws,
};
use crate::app::{shell, App};
use crate::protocol::http::paths;
use anyhow::Context;
use axum::{middleware, routing::get, Router};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{future::Future, net::SocketAddr, path::Path, sync::Arc, time::Duration};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tower::ServiceExt;
use tower_http::{compression::CompressionLayer, limit::RequestBodyLimitLayer, services::ServeDir};

/// The database the server was started on.
enum Backend {
    /// Boxed: its connection options make it several times PostgreSQL's size.
    Sqlite(Box<SqliteStore>),
    Postgres(PgStore),
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    writer_task: JoinHandle<()>,
    /// Tells the writer to commit what it holds and stop, once the sockets are closed.
    writer_stop: watch::Sender<bool>,
    presence_events: mpsc::UnboundedReceiver<presence::Event>,
    /// Committed messages, for the bots' dispatcher.
    observed: mpsc::Receiver<crate::protocol::MessageView>,
}

impl Application {
    pub async fn build(cfg: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(cfg.server.addr)
            .await
            .with_context(|| format!("binding {}", cfg.server.addr))?;
        let addr = listener.local_addr()?;
        let origins: Vec<String> = if cfg.server.public_origin.is_empty() {
            default_origins(addr.port())
        } else {
            cfg.server
                .public_origin
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect()
        };
        let secure_cookies = origins.iter().any(|o| o.starts_with("https://"));

        let sockets = socket_slots(&cfg);
        let rates = Arc::new(UserRateRegistry::new(user_rates(&cfg)));
        let vault = Arc::new(open_vault(&cfg)?);
        let backend = match cfg.store.postgres() {
            Some(url) => Backend::Postgres(PgStore::connect(url, vault.clone()).await?),
            None => Backend::Sqlite(Box::new(
                SqliteStore::open(&cfg.store.database)
                    .await?
                    .with_vault(vault.clone())
                    .await?,
            )),
        };
        let db: Arc<dyn Database> = match &backend {
            Backend::Sqlite(store) => Arc::new((**store).clone()),
            Backend::Postgres(store) => Arc::new(store.clone()),
        };
        let hub = Arc::new(LocalHub::new());
        let nats = match (&cfg.store.nats, &backend) {
            (None, _) => None,
            (Some(url), Backend::Postgres(_)) => Some(
                // A node starts even while NATS is away: the client keeps trying, and until
                // it is in, the check against the database delivers (docs/SCALING.md).
                async_nats::ConnectOptions::new()
                    .no_echo()
                    .retry_on_initial_connect()
                    .connect(url.as_str())
                    .await
                    .with_context(|| format!("connecting to NATS at {url}"))?,
            ),
            (Some(_), Backend::Sqlite(_)) => anyhow::bail!(
                "--nats joins nodes that share a PostgreSQL --database (postgres://...); a \
                 SQLite database belongs to one node"
            ),
        };
        let fanout: Arc<dyn Fanout> = match (&nats, &backend) {
            (Some(client), Backend::Postgres(store)) => NatsHub::start(
                hub.clone(),
                client.clone(),
                &cfg.store.nats_prefix,
                Arc::new(store.clone()),
            ),
            _ => hub.clone(),
        };
        let (presence, presence_events) = PresenceHub::new(db.all_blocks().await?);
        let presence = Arc::new(presence);
        if let Some(client) = &nats {
            let nodes =
                presence::nodes::start(presence.clone(), client.clone(), &cfg.store.nats_prefix);
            tracing::info!(node = nodes.node, "joined the other nodes through NATS");
        }
        let bots = if cfg.bots.enabled {
            Some(Arc::new(
                bots::start(db.clone(), &*db, &presence, cfg.bots.clone()).await?,
            ))
        } else {
            None
        };
        // Committed messages go to the bots' dispatcher too (bounded; it only filters).
        let (observer, observed) = mpsc::channel(4096);
        let (writer_stop, writer_stop_rx) = watch::channel(false);
        let space = Arc::new(DiskSpace::new(
            &cfg.store.files_base(),
            cfg.store.disk_floor_mb * 1024 * 1024,
        ));
        space.check();
        let metrics = Arc::new(crate::server::metrics::Metrics::new());
        let analytics = match cfg.store.analytics {
            crate::server::config::Switch::On => {
                let path = crate::server::analytics::path_of(&cfg.store);
                crate::server::analytics::Analytics::start(
                    &path,
                    cfg.store.analytics_retention,
                    cfg.store.analytics_queue,
                    metrics.clone(),
                )?
            }
            crate::server::config::Switch::Off => {
                crate::server::analytics::Analytics::off(metrics.clone())
            }
        };
        let observer = bots.as_ref().map(|b| (observer, b.interest()));
        let (log, writer_task): (Arc<dyn MessageLog>, JoinHandle<()>) = match &backend {
            Backend::Sqlite(store) => {
                let (writer, task) = Writer::spawn(
                    store.writer_connection()?,
                    crate::server::store::sqlite::writer::Surroundings {
                        high_water: store.high_water(),
                        space: space.clone(),
                        vault: vault.clone(),
                        metrics: metrics.clone(),
                        checkpoints: store.checkpointer_connection()?,
                    },
                    fanout.clone(),
                    cfg.store.max_batch,
                    writer_stop_rx,
                    observer,
                );
                (Arc::new(writer), task)
            }
            Backend::Postgres(store) => {
                let (log, task) = PgLog::spawn(
                    store,
                    fanout.clone(),
                    metrics.clone(),
                    cfg.store.max_batch,
                    writer_stop_rx,
                    observer,
                )?;
                (Arc::new(log), task)
            }
        };
        let profiles = Arc::new(Profiles::new(
            db.clone(),
            db.clone(),
            db.clone(),
            presence.clone(),
            fanout.clone(),
        ));
        let watch: Option<Arc<dyn MembersWatch>> = bots.clone().map(|b| b as Arc<dyn MembersWatch>);
        let chat = Arc::new(Chat::new(
            log,
            db.clone(),
            db.clone(),
            db.clone(),
            db.clone(),
            db.clone(),
            presence.clone(),
            fanout.clone(),
            watch,
        ));
        let objects = match &cfg.media.store {
            Some(url) if url.starts_with("s3://") => {
                crate::server::media::objects::Objects::s3(url)?
            }
            // A directory, as the flag's help says.
            Some(dir) => crate::server::media::objects::Objects::local(Path::new(dir))?,
            None => crate::server::media::objects::Objects::local(
                &crate::server::media::objects::default_dir(&cfg.store.files_base()),
            )?,
        };
        tracing::info!(store = %objects.describe, "shared files");
        let media = Arc::new(crate::server::media::Media::new(
            objects,
            db.clone(),
            vault.clone(),
            chat.clone(),
            crate::server::media::MediaLimits::from_config(&cfg.media),
        ));
        let contacts = Arc::new(Contacts {
            store: db.clone(),
            users: db.clone(),
            profiles: db.clone(),
            presence: presence.clone(),
        });
        let lifetimes = Lifetimes {
            idle: cfg.sessions.idle(),
            absolute: cfg.sessions.absolute(),
            guest_idle: Duration::from_secs(cfg.sessions.guest_idle_hours * 3600),
        };
        let stored_limits = Arc::new(StoredLimits::new(db.clone(), cfg.limits.allowances()));
        let audit = Arc::new(crate::server::audit::Audit::new(
            db.clone(),
            cfg.store.audit_sink.as_deref(),
        )?);
        let erasure = Arc::new(Erasure::new(
            db.clone(),
            chat.clone(),
            fanout.clone(),
            presence.clone(),
            audit.clone(),
        ));
        let retention = Arc::new(Retention::new(
            db.clone(),
            cfg.store.retention,
            audit.clone(),
        ));
        let auth = Arc::new(
            Auth::new(
                db.clone(),
                db.clone(),
                erasure.clone(),
                db.clone(),
                profiles.clone(),
                fanout.clone(),
                lifetimes,
                stored_limits.clone(),
                audit.clone(),
            )
            .await?,
        );
        let verifier = Arc::new(Verifier::build(&cfg.verification, db.clone()).await?);
        // With several nodes, a user's messages are counted over all of them.
        let shared_rates = match (&nats, &backend) {
            (Some(_), Backend::Postgres(store)) => {
                let per_second = f64::from(cfg.sockets.send_rate_per_second.max(1));
                Some(Arc::new(crate::server::limits::shared::SharedRates::new(
                    Arc::new(store.clone()),
                    per_second,
                    per_second,
                )))
            }
            _ => None,
        };
        let leptos_options = LeptosOptions::builder()
            .output_name("messenger")
            .site_root(cfg.server.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let state = AppState {
            shared: Arc::new(Shared {
                leptos_options,
                cfg,
                origins,
                secure_cookies,
                store: db,
                hub,
                presence,
                auth,
                erasure,
                audit,
                beacons: Default::default(),
                analytics,
                metrics,
                retention,
                verifier,
                stored_limits,
                chat,
                media,
                contacts,
                profiles,
                bots,
                live_sockets: watch::channel(0).0,
                sockets,
                rates,
                shared_rates,
                space,
                sealed_under: watch::channel(None).0,
            }),
        };
        Ok(Self {
            listener,
            addr,
            state,
            writer_task,
            writer_stop,
            presence_events,
            observed,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The shared state (tests read the store and hub through it).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Every route: pages, server functions, the JSON API, the WebSocket and the bundle.
    pub fn router(state: &AppState) -> Router {
        let routes = generate_route_list(App);
        let options = state.leptos_options.clone();
        // The bundle as the build left it, compressed once at build time when it can be
        // (scripts/precompress.mjs); the compression layer skips what is already compressed.
        let pkg = ServeDir::new(state.cfg.server.site_root.join("pkg"))
            .precompressed_br()
            .precompressed_gzip();
        Router::new()
            .route(paths::WS, get(ws::upgrade))
            .nest_service("/pkg", pkg)
            .merge(http::api())
            // Pages, and the server functions (which get the state as Leptos context).
            .leptos_routes(state, routes, move || shell(options.clone()))
            .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
            .layer(RequestBodyLimitLayer::new(MAX_BODY))
            // Picture uploads are the one large body; that router sets its own limit.
            .merge(profile::picture_router())
            .merge(crate::server::http::files::router())
            // Web-vitals beacons: a body limit of their own.
            .merge(http::rum::router())
            .route(http::ops::METRICS, get(http::ops::metrics))
            // Counted by route pattern: this wraps each route above, which knows its pattern.
            .layer(middleware::from_fn_with_state(
                state.clone(),
                http::ops::count_requests,
            ))
            .layer(middleware::from_fn(server_fns::server_fn_calls))
            .layer(middleware::from_fn(error::plain_refusals))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                security::pages,
            ))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                security::csrf,
            ))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                security::host,
            ))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                security::headers,
            ))
            .layer(middleware::from_fn(error::log_errors))
            // Outermost but compression: every log line of a request carries its id.
            .layer(middleware::from_fn(http::ops::request_span))
            .layer(CompressionLayer::new())
            .with_state(state.clone())
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn run_until_stopped(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            writer_task,
            writer_stop,
            presence_events,
            observed,
            ..
        } = self;
        let router = Self::router(&state);
        let housekeeping = tokio::spawn(housekeeping(state.clone()));
        let rekeying = tokio::spawn(rekey(state.clone()));
        let collecting = tokio::spawn(state.media.clone().run_collector());
        let retaining = tokio::spawn(
            state
                .retention
                .clone()
                .run_every(state.cfg.store.retention_every),
        );
        // An account erasure that a stop interrupted is finished now.
        let erasing = {
            let erasure = state.erasure.clone();
            tokio::spawn(async move {
                if let Err(e) = erasure.resume().await {
                    tracing::error!(error = %e, "finishing interrupted account erasures");
                }
            })
        };
        let space = state.space.clone();
        let space_watch = tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::server::store::space::CHECK_EVERY);
            loop {
                every.tick().await;
                space.check();
            }
        });
        let sweeper = tokio::spawn(sweep_rates(state.rates.clone(), state.shared_rates.clone()));
        let contacts: Arc<dyn ContactStore> = state.store.clone();
        let publisher = tokio::spawn(presence::run_publisher(
            Publisher {
                presence: state.presence.clone(),
                contacts,
                fanout: state.hub.clone(),
            },
            presence_events,
        ));
        let dispatcher = state.bots.clone().map(|bots| {
            tokio::spawn(bots::run_dispatcher(
                Replier {
                    bots,
                    metrics: state.metrics.clone(),
                    analytics: state.analytics.clone(),
                    chat: state.chat.clone(),
                    profiles: state.store.clone(),
                    limits: state.stored_limits.clone(),
                },
                observed,
            ))
        });
        let hub = state.hub.clone();
        let stop = async move {
            signal.await;
            tracing::info!("shutting down: closing sockets with 'going away'");
            hub.close_all(crate::protocol::close::GOING_AWAY, "server restarting");
        };
        serve_http(listener, router, state.cfg.server.tcp_nodelay, stop).await;

        let grace = Duration::from_secs(state.cfg.server.shutdown_grace_seconds);
        let mut sockets = state.live_sockets.subscribe();
        if tokio::time::timeout(grace, sockets.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                open = *sockets.borrow(),
                "sockets still open after the grace period"
            );
        }
        housekeeping.abort();
        rekeying.abort();
        collecting.abort();
        retaining.abort();
        erasing.abort();
        space_watch.abort();
        sweeper.abort();
        publisher.abort();
        if let Some(dispatcher) = dispatcher {
            dispatcher.abort();
        }
        let store = state.store.clone();
        drop(state);
        let _ = writer_stop.send(true);
        if tokio::time::timeout(grace, writer_task).await.is_err() {
            tracing::warn!("the message writer did not finish in time");
        }
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Accepts connections and serves each with hyper's HTTP/1 builder until `stop` resolves;
/// then stops accepting, lets each open HTTP connection finish the request in flight and
/// close, and waits for them (upgraded WebSockets are no longer HTTP connections: they end
/// through the hub).
///
/// Not `axum::serve`: its HTTP/1-or-2 builder wraps every stream in a private type, and a
/// WebSocket upgraded through it cannot be turned back into the `TcpStream` that the fan-out
/// writes deliveries into (`ws/`). Browsers speak HTTP/1.1 to this server (no TLS here, so
/// no HTTP/2 either way).
async fn serve_http(
    listener: TcpListener,
    router: Router,
    nodelay: bool,
    stop: impl Future<Output = ()>,
) {
    let (closing_tx, closing_rx) = watch::channel(false);
    // Each connection's task holds a sender; `recv` returns `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if nodelay {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY not set: {e}");
            }
        }
        // The timer lets hyper's default header timeout apply: a request's head must arrive
        // within 30 s, and a kept-alive connection with no next request is closed after 30 s
        // (browsers open a new one). `axum::serve` set no timer, so it had neither.
        // Each request learns its peer (`http::client`: address-based limits count by it).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                req
            },
        ));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut closing = closing_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            tokio::pin!(conn);
            let stopping = async {
                let _ = closing.wait_for(|c| *c).await;
            };
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(open_tx);
    let _ = open_rx.recv().await;
}

/// The WebSockets' caps: per user and per address as configured; in all, what the
/// descriptor limit (raised to its hard limit) leaves once the reserve is kept back.
fn socket_slots(cfg: &Config) -> Arc<SocketSlots> {
    let limits = &cfg.limits;
    let (descriptors, room) = raise_descriptor_limit(limits.descriptor_reserve);
    let total = match limits.sockets {
        Some(n) if n > room => {
            tracing::warn!(
                asked = n,
                descriptors,
                room,
                "--max-sockets is more than the descriptors allow; using {room}"
            );
            room
        }
        Some(n) => n,
        None => room,
    };
    tracing::info!(
        total,
        per_user = limits.sockets_per_user,
        per_address = limits.sockets_per_address,
        "WebSocket caps"
    );
    SocketSlots::new(limits.sockets_per_user, limits.sockets_per_address, total)
}

/// Each user's rates over all their sockets.
fn user_rates(cfg: &Config) -> UserRateConfig {
    let frames = f64::from(cfg.sockets.frame_rate_per_second.max(1));
    let messages = f64::from(cfg.sockets.send_rate_per_second.max(1));
    UserRateConfig {
        frames: Rate::new(frames, 3.0 * frames),
        messages: Rate::new(messages, messages),
    }
}

/// Every minute: forgets the rates of users who have no socket and have waited long
/// enough for them to be full again.
async fn sweep_rates(
    rates: Arc<UserRateRegistry>,
    shared: Option<Arc<crate::server::limits::shared::SharedRates>>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        rates.sweep();
        if let Some(shared) = &shared {
            shared.sweep();
        }
    }
}

/// The key ring for message bodies: from `MESSENGER_KEYS`, or the key file (made, with a
/// new key, at the first start with encryption on, and said so); without either, and with
/// encryption off, bodies stay plain.
pub fn open_vault(cfg: &Config) -> anyhow::Result<crate::server::store::vault::Vault> {
    use crate::server::store::vault::{default_ring_path, RingFile, Vault};
    let sealing = cfg.store.encryption == crate::server::config::Switch::On;
    if let Ok(text) = std::env::var("MESSENGER_KEYS") {
        let ring = RingFile::parse(&text).context("the key ring in MESSENGER_KEYS")?;
        return Vault::new(&ring, sealing, None);
    }
    let path = cfg
        .store
        .key_file
        .clone()
        .unwrap_or_else(|| default_ring_path(&cfg.store.files_base()));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let ring = RingFile::parse(&text)
                .with_context(|| format!("the key ring {}", path.display()))?;
            warn_if_readable(&path);
            Vault::new(&ring, sealing, Some(path))
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && sealing
                && cfg.store.postgres().is_some() =>
        {
            // Nodes that each made their own ring would seal what the others cannot open.
            anyhow::bail!(
                "no key ring at {}: with PostgreSQL every node uses the same one. Make it once \
                 (`messenger --database <the same postgres://...> --key-file FILE keys init`) \
                 and give every node that file (--key-file) or its text (MESSENGER_KEYS)",
                path.display()
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && sealing => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the folder of {}", path.display()))?;
            }
            let ring = RingFile::fresh();
            ring.write(&path)?;
            tracing::info!(
                key_ring = %path.display(),
                "created the key ring that encrypts message bodies: back it up apart from the \
                 database; without it the messages cannot be read"
            );
            Vault::new(&ring, sealing, Some(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vault::plain()),
        Err(e) => Err(e).with_context(|| format!("reading the key ring {}", path.display())),
    }
}

/// Says so when a key ring file can be read by others than its owner.
fn warn_if_readable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(key_ring = %path.display(), "the key ring can be read by others than its owner: chmod 600 it");
        }
    }
}

/// Keeps every message sealed under the active key, in the background: picks up a rotated
/// key ring (`messenger keys rotate` rewrites the file; it is looked at every 2 s), then
/// walks the messages in key order, a batch of 256 at a time with a pause between, opening
/// what another key sealed (or taking what was stored plain) and sealing it again. Short
/// transactions of its own: the message writer is never blocked for long. A pass that ends
/// with rows still under another key (sealed by a commit already under way at the
/// rotation) starts again; one interrupted by a restart starts over, skipping what is done.
async fn rekey(state: AppState) {
    const BATCH: i64 = 256;
    let vault = state.store.vault();
    let start = (i64::MIN, i64::MIN);
    let mut done_for: Option<String> = None;
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        every.tick().await;
        match vault.reload_if_changed() {
            Ok(true) => tracing::info!(active = ?vault.active_key(), "key ring reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "reading the key ring"),
        }
        let Some(active) = vault.active_key() else {
            continue;
        };
        if done_for.as_ref() == Some(&active) {
            continue;
        }
        let (mut cursor, mut sealed) = (start, 0u64);
        let finished = loop {
            if vault.active_key().as_ref() != Some(&active) {
                break false; // rotated again: start over with the new key
            }
            match state.store.rekey_batch(cursor, BATCH).await {
                Ok((Some(last), n)) => {
                    cursor = last;
                    sealed += n;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok((None, _)) => break true,
                Err(e) => {
                    tracing::warn!(error = %e, "re-encrypting messages; trying again shortly");
                    break false;
                }
            }
        };
        if !finished {
            continue;
        }
        let left = match state.store.rows_per_key().await {
            Ok(rows) => rows
                .iter()
                .filter(|(k, _)| k.as_ref() != Some(&active))
                .map(|(_, n)| n)
                .sum::<i64>(),
            Err(e) => {
                tracing::warn!(error = %e, "counting messages per key");
                continue;
            }
        };
        if sealed > 0 {
            tracing::info!(sealed, key = %active, "messages re-encrypted under the active key");
        }
        if left == 0 {
            state.sealed_under.send_replace(Some(active.clone()));
            done_for = Some(active);
        }
    }
}

/// Every ten minutes, the first time ten minutes after start: forgets sessions that ended
/// more than a day ago, deletes guests idle for longer than allowed, forgets full limit
/// buckets and expired spent challenges. (Not at once at start: a pass racing what a fresh
/// server is doing gains nothing, and the tests that run a pass themselves need it alone.)
async fn housekeeping(state: AppState) {
    let period = Duration::from_secs(600);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        every.tick().await;
        match state.auth.forget_dead_sessions().await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "old sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing old sessions"),
        }
        match state.auth.forget_idle_guests().await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "idle guests deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "deleting idle guests"),
        }
        if let Err(e) = state.stored_limits.forget_full().await {
            tracing::warn!(error = %e, "forgetting full limit buckets");
        }
        if let Err(e) = state.verifier.forget_expired().await {
            tracing::warn!(error = %e, "forgetting expired challenges");
        }
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Sets up structured logging once (later calls are ignored, which tests rely on).
pub fn init_tracing(filter: &str, format: crate::server::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        crate::server::config::LogFormat::Text => builder.try_init(),
        // One object per line: the message and fields, the level, the target, and the
        // spans it happened in (the request's id, the socket's user and session).
        crate::server::config::LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}
