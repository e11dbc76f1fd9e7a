//! One typed configuration, from command-line flags or environment variables.

use clap::Parser;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Messenger's settings. Every flag can also be given as the environment variable named
/// beside it; flags win.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "messenger",
    version,
    about = "A self-hostable, real-time messenger"
)]
pub struct Config {
    /// Address and port to listen on. Port 0 picks a free port (tests use this).
    #[arg(long, env = "MESSENGER_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// SQLite database file; created and migrated on start, with its folder.
    #[arg(long, env = "MESSENGER_DATABASE", default_value = "data/messenger.db")]
    pub database: PathBuf,

    /// Origins allowed to open the WebSocket and to make state-changing calls with a cookie,
    /// comma-separated (e.g. `https://chat.example.org`). Default: http://127.0.0.1:PORT and
    /// http://localhost:PORT for the listening port. An https origin also marks the session
    /// cookie `Secure`.
    #[arg(long, env = "MESSENGER_PUBLIC_ORIGIN", value_delimiter = ',')]
    pub public_origin: Vec<String>,

    /// Folder with the built site (the `pkg/` bundle and public assets).
    #[arg(long, env = "MESSENGER_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Minutes without activity after which a session ends.
    #[arg(long, env = "MESSENGER_SESSION_IDLE_MINUTES", default_value_t = 20)]
    pub session_idle_minutes: u64,

    /// Hours after sign-in after which a session ends however active it is.
    #[arg(long, env = "MESSENGER_SESSION_ABSOLUTE_HOURS", default_value_t = 12)]
    pub session_absolute_hours: u64,

    /// Idle timeout in seconds, overriding the minutes above (tests use it for expiry).
    #[arg(long, env = "MESSENGER_SESSION_IDLE_SECONDS", hide = true)]
    pub session_idle_seconds: Option<u64>,

    /// Deliveries each connection's mailbox holds, over all its conversations; a connection
    /// further behind than this is told to resync the conversations it missed messages of.
    #[arg(long, env = "MESSENGER_BROADCAST_CAPACITY", default_value_t = 1024)]
    pub broadcast_capacity: usize,

    /// Most messages one group commit writes in a single transaction.
    #[arg(long, env = "MESSENGER_MAX_BATCH", default_value_t = 512)]
    pub max_batch: usize,

    /// Messages a user may send per second on one connection (burst of the same size).
    #[arg(long, env = "MESSENGER_SEND_RATE", default_value_t = 20)]
    pub send_rate_per_second: u32,

    /// Seconds between heartbeat pings on each socket; a socket silent for three is closed.
    #[arg(long, env = "MESSENGER_HEARTBEAT_SECONDS", default_value_t = 25)]
    pub heartbeat_seconds: u64,

    /// Set TCP_NODELAY on accepted sockets: each write leaves at once instead of waiting
    /// (Nagle) for the previous one's acknowledgement. See docs/BENCHMARKS.md for the
    /// measured trade-off; off by default.
    #[arg(long, env = "MESSENGER_TCP_NODELAY", default_value_t = false, action = clap::ArgAction::Set)]
    pub tcp_nodelay: bool,

    /// Seconds the server waits for connections to close on shutdown.
    #[arg(long, env = "MESSENGER_SHUTDOWN_GRACE_SECONDS", default_value_t = 5)]
    pub shutdown_grace_seconds: u64,

    /// Log filter in `tracing` syntax.
    /// Whether the AI contacts (persona bots) exist and answer.
    #[arg(long, env = "MESSENGER_BOTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub bots: bool,

    /// Base URL of an OpenAI-compatible chat-completions API, up to the version
    /// (e.g. http://127.0.0.1:11434/v1 for Ollama). Without it the bots use the offline
    /// persona engine.
    #[arg(long, env = "MESSENGER_BOT_BASE_URL")]
    pub bot_base_url: Option<String>,

    /// The model to ask for.
    #[arg(long, env = "MESSENGER_BOT_MODEL", default_value = "llama3.2")]
    pub bot_model: String,

    /// The API key, sent as a bearer token (not needed by local servers).
    #[arg(long, env = "MESSENGER_BOT_API_KEY", hide_env_values = true)]
    pub bot_api_key: Option<String>,

    /// Most tokens a model may produce per reply.
    #[arg(long, env = "MESSENGER_BOT_MAX_TOKENS", default_value_t = 200)]
    pub bot_max_tokens: u32,

    /// Bot replies each user gets per day (UTC), across all bots.
    #[arg(long, env = "MESSENGER_BOT_USER_DAILY", default_value_t = 200)]
    pub bot_user_daily: u32,

    /// Bot replies everyone together gets per day (UTC).
    #[arg(long, env = "MESSENGER_BOT_GLOBAL_DAILY", default_value_t = 5000)]
    pub bot_global_daily: u32,

    /// Most model calls at the same time.
    #[arg(long, env = "MESSENGER_BOT_MAX_CONCURRENT", default_value_t = 4)]
    pub bot_max_concurrent: usize,

    /// Longest a model call may take, in seconds, before the offline engine answers.
    #[arg(long, env = "MESSENGER_BOT_TIMEOUT_SECONDS", default_value_t = 20)]
    pub bot_timeout_seconds: u64,

    /// Failures (errors or timeouts) in a row that open the circuit breaker.
    #[arg(long, env = "MESSENGER_BOT_BREAKER_FAILURES", default_value_t = 3)]
    pub bot_breaker_failures: u32,

    /// Seconds the open breaker waits before it lets one call through to probe.
    #[arg(
        long,
        env = "MESSENGER_BOT_BREAKER_COOLDOWN_SECONDS",
        default_value_t = 30
    )]
    pub bot_breaker_cooldown_seconds: u64,

    /// How long the offline engine takes to answer, in milliseconds (so its typing
    /// indicator shows).
    #[arg(long, env = "MESSENGER_BOT_OFFLINE_DELAY_MS", default_value_t = 900)]
    pub bot_offline_delay_ms: u64,

    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn")]
    pub log: String,

    /// An administration command to run on the database instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Administration commands: they open (and migrate) the database, act and exit. Run them
/// while the server is stopped or running; SQLite serialises the writes.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Public rooms, which every user can see and join.
    #[command(subcommand)]
    Rooms(RoomsCommand),
    /// The AI contacts: switch their replies off or on while the server runs.
    #[command(subcommand)]
    Bots(BotsCommand),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BotsCommand {
    /// Stops every bot reply (each bot then says, in character, that it is away).
    Off,
    /// Lets the bots answer again.
    On,
    /// Prints "on" or "off".
    Status,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RoomsCommand {
    /// Lists the public rooms: id, members, title.
    List,
    /// Adds public rooms and prints their ids and titles.
    Add {
        /// Titles of the new rooms (1 to 64 characters each).
        #[arg(required = true)]
        titles: Vec<String>,
        /// Adds this many rooms per title, numbered: "TITLE 1", "TITLE 2", ... (the load tool
        /// seeds its rooms this way).
        #[arg(long)]
        numbered: Option<u32>,
    },
}

impl Config {
    pub fn session_idle(&self) -> Duration {
        match self.session_idle_seconds {
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(self.session_idle_minutes * 60),
        }
    }
    pub fn session_absolute(&self) -> Duration {
        Duration::from_secs(self.session_absolute_hours * 3600)
    }

    pub fn bot_config(&self) -> crate::server::bots::BotConfig {
        crate::server::bots::BotConfig {
            base_url: self.bot_base_url.clone().filter(|u| !u.trim().is_empty()),
            model: self.bot_model.clone(),
            api_key: self.bot_api_key.clone(),
            max_tokens: self.bot_max_tokens,
            user_daily: self.bot_user_daily,
            global_daily: self.bot_global_daily,
            max_concurrent: self.bot_max_concurrent,
            timeout: Duration::from_secs(self.bot_timeout_seconds.max(1)),
            breaker_failures: self.bot_breaker_failures,
            breaker_cooldown: Duration::from_secs(self.bot_breaker_cooldown_seconds),
            offline_delay: Duration::from_millis(self.bot_offline_delay_ms),
        }
    }

    /// A configuration for tests: port 0, the given database, defaults otherwise.
    pub fn for_tests(database: PathBuf) -> Self {
        let mut cfg = Config::parse_from(["messenger"]);
        cfg.addr = "127.0.0.1:0".parse().expect("literal address");
        cfg.database = database;
        // Tests wait for bot replies; the pause only exists for people to see the typing.
        cfg.bot_offline_delay_ms = 0;
        cfg
    }
}

/// The origins allowed for a server listening on `port`, when none were configured.
pub fn default_origins(port: u16) -> Vec<String> {
    vec![
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ]
}
