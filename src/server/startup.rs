//! Builds the application (database, writer, hub, router) on its own listener and runs it
//! until a shutdown signal, then closes sockets with "going away", lets the writer commit
//! what it holds, and checkpoints the database.

use super::{
    api, bots,
    config::{default_origins, Config},
    contacts,
    hub::Hub,
    pictures,
    presence::{self, PresenceHub},
    security,
    state::{AppState, Shared},
    store::{self, now_ms, Store},
    writer::Writer,
    ws,
};
use crate::app::{shell, App};
use anyhow::Context;
use axum::{middleware, routing::get, Router};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tower_http::{compression::CompressionLayer, limit::RequestBodyLimitLayer, services::ServeDir};

/// Largest HTTP request body accepted.
const MAX_BODY: usize = 64 * 1024;

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
        let listener = TcpListener::bind(cfg.addr)
            .await
            .with_context(|| format!("binding {}", cfg.addr))?;
        let addr = listener.local_addr()?;
        let origins: Vec<String> = if cfg.public_origin.is_empty() {
            default_origins(addr.port())
        } else {
            cfg.public_origin
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect()
        };
        let secure_cookies = origins.iter().any(|o| o.starts_with("https://"));
        let store = Store::open(&cfg.database).await?;
        let (presence, presence_events) = PresenceHub::new(store::all_blocks(store.pool()).await?);
        let hub = Arc::new(Hub::new(cfg.broadcast_capacity));
        let (writer_stop, writer_stop_rx) = watch::channel(false);
        let bots = if cfg.bots {
            Some(bots::start(store.pool(), &presence, cfg.bot_config()).await?)
        } else {
            None
        };
        // Committed messages go to the bots' dispatcher too (bounded; it only filters).
        let (observer, observed) = mpsc::channel(4096);
        let (writer, writer_task) = Writer::spawn(
            store.writer_connection()?,
            hub.clone(),
            cfg.max_batch,
            writer_stop_rx,
            bots.as_ref().map(|b| (observer, b.interest())),
        );
        let dummy_hash = tokio::task::spawn_blocking(|| {
            use argon2::{
                password_hash::{rand_core::OsRng, SaltString},
                Argon2, PasswordHasher,
            };
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"no account has this password", &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await??;
        let leptos_options = LeptosOptions::builder()
            .output_name("messenger")
            .site_root(cfg.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let state = AppState {
            shared: Arc::new(Shared {
                leptos_options,
                cfg,
                store,
                writer,
                hub,
                presence,
                origins,
                secure_cookies,
                hashing: tokio::sync::Semaphore::new(2),
                pictures: tokio::sync::Semaphore::new(2),
                dummy_hash,
                live_sockets: watch::channel(0).0,
                profile_changes: tokio::sync::Mutex::new(()),
                nudges: Default::default(),
                bots,
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

    pub fn router(state: &AppState) -> Router {
        let routes = generate_route_list(App);
        let options = state.leptos_options.clone();
        // The bundle as the build left it, compressed once at build time when it can be
        // (scripts/precompress.mjs); the compression layer skips what is already compressed.
        let pkg = ServeDir::new(state.cfg.site_root.join("pkg"))
            .precompressed_br()
            .precompressed_gzip();
        Router::new()
            .route("/ws", get(ws::upgrade))
            .nest_service("/pkg", pkg)
            .merge(api::router())
            .merge(contacts::router())
            .leptos_routes(state, routes, move || shell(options.clone()))
            .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
            .layer(RequestBodyLimitLayer::new(MAX_BODY))
            // Picture uploads are the one large body; that router sets its own limit.
            .merge(pictures::router())
            .layer(middleware::from_fn_with_state(
                state.clone(),
                security::pages,
            ))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                security::csrf,
            ))
            .layer(middleware::from_fn(security::headers))
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
        let publisher = tokio::spawn(presence::run_publisher(state.clone(), presence_events));
        let dispatcher = tokio::spawn(bots::run_dispatcher(state.clone(), observed));
        let hub = state.hub.clone();
        let stop = async move {
            signal.await;
            tracing::info!("shutting down: closing sockets with 'going away'");
            hub.close_all(crate::protocol::close::GOING_AWAY, "server restarting");
        };
        serve_http(listener, router, state.cfg.tcp_nodelay, stop).await;

        let grace = Duration::from_secs(state.cfg.shutdown_grace_seconds);
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
        publisher.abort();
        dispatcher.abort();
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
/// WebSocket upgraded through it cannot be turned back into the `TcpStream` that the hub
/// writes deliveries into (`ws.rs`). Browsers speak HTTP/1.1 to this server (no TLS here,
/// so no HTTP/2 either way).
async fn serve_http(
    listener: TcpListener,
    router: Router,
    nodelay: bool,
    stop: impl Future<Output = ()>,
) {
    let service = TowerToHyperService::new(router);
    let (closing_tx, closing_rx) = watch::channel(false);
    // Each connection's task holds a sender; `recv` returns `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
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
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(tcp), service.clone())
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

/// Hourly: forgets sessions that ended more than a day ago.
async fn housekeeping(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match store::delete_dead_sessions(state.store.pool(), now_ms()).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "old sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing old sessions"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
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
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
