//! One typed configuration, from command-line flags or environment variables, in groups
//! (the server, the store, sessions, sockets, the AI contacts). Secrets are wrapped so that
//! no `Debug` print shows them.

use super::limits::stored::{period, Allowance, Allowances};
use clap::{Args, Parser};
use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

/// Messenger's settings. Every flag can also be given as the environment variable named
/// beside it; flags win.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "messenger",
    version,
    about = "A self-hostable, real-time messenger"
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub sessions: SessionConfig,
    #[command(flatten)]
    pub sockets: SocketConfig,
    #[command(flatten)]
    pub bots: BotConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
    #[command(flatten)]
    pub verification: VerificationConfig,
    #[command(flatten)]
    pub media: MediaConfig,

    /// An administration command to run on the database instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Analytics events that may wait for their writer by default: several ticks' worth at the
/// fastest this server commits (`analytics::QUEUE`).
pub const ANALYTICS_QUEUE: usize = 1 << 15;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Shared files")]
pub struct MediaConfig {
    /// Where shared files are kept: a directory (default: `<database>.media` beside the
    /// database) or an S3-compatible bucket, `s3://bucket/prefix` (credentials, region and
    /// endpoint from the usual `AWS_*` variables).
    #[arg(long = "media-store", env = "MESSENGER_MEDIA_STORE")]
    pub store: Option<String>,

    /// Largest file one may share, in megabytes.
    #[arg(
        long = "media-max-mb",
        env = "MESSENGER_MEDIA_MAX_MB",
        default_value_t = 25
    )]
    pub max_mb: u64,

    /// Most megabytes one user's shared files may take (their thumbnails and view copies
    /// count).
    #[arg(
        long = "media-quota-mb",
        env = "MESSENGER_MEDIA_QUOTA_MB",
        default_value_t = 1000
    )]
    pub quota_mb: u64,

    /// Free megabytes a local media directory's disk keeps: an upload that would go below
    /// is refused (503 storage_full) before the disk fills.
    #[arg(
        long = "media-floor-mb",
        env = "MESSENGER_MEDIA_FLOOR_MB",
        default_value_t = 512
    )]
    pub floor_mb: u64,

    /// How often the collector removes files no message shares any more.
    #[arg(long = "media-collect-every", env = "MESSENGER_MEDIA_COLLECT_EVERY", value_parser = period, default_value = "10m")]
    pub collect_every: Duration,

    /// How long an upload may wait for its message before the collector removes it.
    #[arg(long = "media-grace", env = "MESSENGER_MEDIA_GRACE", value_parser = period, default_value = "1h")]
    pub grace: Duration,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerConfig {
    /// Address and port to listen on. Port 0 picks a free port (tests use this).
    #[arg(long, env = "MESSENGER_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// A bearer token that opens `/metrics` to callers other than this machine (without it,
    /// only a loopback caller that no proxy forwarded for may read them).
    #[arg(long, env = "MESSENGER_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Origins allowed to open the WebSocket and to make state-changing calls with a cookie,
    /// comma-separated (e.g. `https://chat.example.org`). Default: http://127.0.0.1:PORT and
    /// http://localhost:PORT for the listening port. An https origin also marks the session
    /// cookie `Secure`.
    #[arg(long, env = "MESSENGER_PUBLIC_ORIGIN", value_delimiter = ',')]
    pub public_origin: Vec<String>,

    /// Folder with the built site (the `pkg/` bundle and public assets).
    #[arg(long, env = "MESSENGER_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Set TCP_NODELAY on accepted sockets: each write leaves at once instead of waiting
    /// (Nagle) for the previous one's acknowledgement. On by default: without it a message
    /// could wait for a delayed acknowledgement (up to 40 ms on Linux), and a busy fan-out's
    /// p99 doubled; it costs some CPU per delivery under heavy fan-out (docs/BENCHMARKS.md,
    /// "TCP_NODELAY on by default"). `--tcp-nodelay false` turns it off.
    #[arg(long, env = "MESSENGER_TCP_NODELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub tcp_nodelay: bool,

    /// Seconds the server waits for connections to close on shutdown.
    #[arg(long, env = "MESSENGER_SHUTDOWN_GRACE_SECONDS", default_value_t = 5)]
    pub shutdown_grace_seconds: u64,

    /// Log filter in `tracing` syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn")]
    pub log: String,

    /// Log lines as text for people, or as JSON objects (one per line, with the request's or
    /// socket's span and its id) for log shippers.
    #[arg(long, env = "MESSENGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Store")]
pub struct StoreConfig {
    /// SQLite database file; created and migrated on start, with its folder. Or a
    /// PostgreSQL database, `postgres://user@host:port/name`, shared by several nodes
    /// (docs/SCALING.md); migrated on start.
    #[arg(long, env = "MESSENGER_DATABASE", default_value = "data/messenger.db")]
    pub database: PathBuf,

    /// The NATS server(s) the nodes of one installation tell each other through, as
    /// `nats://host:port` (several: comma-separated). Needs a PostgreSQL `--database`.
    #[arg(long, env = "MESSENGER_NATS")]
    pub nats: Option<String>,

    /// The subjects' prefix on NATS: the nodes of one installation share it, another
    /// installation on the same NATS takes another.
    #[arg(long, env = "MESSENGER_NATS_PREFIX", default_value = "messenger")]
    pub nats_prefix: String,

    /// Most messages one group commit writes in a single transaction.
    #[arg(long, env = "MESSENGER_MAX_BATCH", default_value_t = 512)]
    pub max_batch: usize,

    /// Free megabytes on the database's disk below which new messages are refused
    /// (`storage_full`, retryable) while reads, sign-ins and open sockets go on. Keep it
    /// above the WAL's size limit (see docs/OPERATIONS.md).
    #[arg(long, env = "MESSENGER_DISK_FLOOR_MB", default_value_t = 64)]
    pub disk_floor_mb: u64,

    /// Whether message bodies are stored encrypted (AES-256-GCM). `off` is for benchmarks
    /// and tests; a key ring is still read, if there is one, to open what was sealed.
    #[arg(long, env = "MESSENGER_ENCRYPTION", value_enum, default_value_t = Switch::On)]
    pub encryption: Switch,

    /// The key ring file (made at first start, mode 0600). Default: beside the database, with
    /// `.keys` added to its name. The `MESSENGER_KEYS` variable, when set, holds the ring
    /// itself instead (JSON, as in the file) and no file is read or made.
    #[arg(long, env = "MESSENGER_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// Also append every audit log entry to this file, as a JSON line (for log shippers).
    #[arg(long, env = "MESSENGER_AUDIT_SINK")]
    pub audit_sink: Option<PathBuf>,

    /// Record analytics events (sign-ins, messages sent, bot calls, sockets; never a
    /// message's text nor who wrote it) into their own database for operators' SQL.
    #[arg(long, env = "MESSENGER_ANALYTICS", value_enum, default_value_t = Switch::On)]
    pub analytics: Switch,

    /// The analytics database. Default: `analytics.db` beside the message database.
    #[arg(long, env = "MESSENGER_ANALYTICS_DATABASE")]
    pub analytics_database: Option<PathBuf>,

    /// Analytics events that may wait for their writer; beyond, they are dropped and
    /// counted (a test makes it small to see the drops at once).
    #[arg(long, env = "MESSENGER_ANALYTICS_QUEUE", default_value_t = ANALYTICS_QUEUE, hide = true)]
    pub analytics_queue: usize,

    /// How long analytics events are kept, as a period.
    #[arg(long, env = "MESSENGER_ANALYTICS_RETENTION", value_parser = period, default_value = "90d")]
    pub analytics_retention: Duration,

    /// How long messages are kept, as a period (`30d`, `12h`); older ones are deleted by
    /// a background job and readers are told they expired. Unset: kept for ever. A
    /// conversation can have a shorter one of its own (`messenger retention set`); the
    /// shorter wins.
    #[arg(long, env = "MESSENGER_RETENTION", value_parser = period)]
    pub retention: Option<Duration>,

    /// How often the retention job runs, as a period.
    #[arg(long, env = "MESSENGER_RETENTION_EVERY", value_parser = period, default_value = "1h")]
    pub retention_every: Duration,
}

impl StoreConfig {
    /// The PostgreSQL address, when `--database` is one.
    pub fn postgres(&self) -> Option<&str> {
        let url = self.database.to_str()?;
        (url.starts_with("postgres://") || url.starts_with("postgresql://")).then_some(url)
    }

    /// What the files a node keeps beside its database are named after (the key ring, shared
    /// files in a directory, analytics, the disk watched for free space): the SQLite file,
    /// or with PostgreSQL, `data/messenger.db` in the working directory, as if it were one.
    pub fn files_base(&self) -> PathBuf {
        match self.postgres() {
            Some(_) => PathBuf::from("data/messenger.db"),
            None => self.database.clone(),
        }
    }
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sessions")]
pub struct SessionConfig {
    /// Minutes without activity after which a session ends.
    #[arg(
        long = "session-idle-minutes",
        env = "MESSENGER_SESSION_IDLE_MINUTES",
        default_value_t = 20
    )]
    pub idle_minutes: u64,

    /// Hours after sign-in after which a session ends however active it is.
    #[arg(
        long = "session-absolute-hours",
        env = "MESSENGER_SESSION_ABSOLUTE_HOURS",
        default_value_t = 12
    )]
    pub absolute_hours: u64,

    /// Hours after which a guest with no live session is deleted with their data (a guest
    /// is also deleted when they sign out).
    #[arg(
        long = "guest-idle-hours",
        env = "MESSENGER_GUEST_IDLE_HOURS",
        default_value_t = 24
    )]
    pub guest_idle_hours: u64,

    /// Idle timeout in seconds, overriding the minutes above (tests use it for expiry).
    #[arg(
        long = "session-idle-seconds",
        env = "MESSENGER_SESSION_IDLE_SECONDS",
        hide = true
    )]
    pub idle_seconds: Option<u64>,
}

impl SessionConfig {
    pub fn idle(&self) -> Duration {
        match self.idle_seconds {
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(self.idle_minutes * 60),
        }
    }
    pub fn absolute(&self) -> Duration {
        Duration::from_secs(self.absolute_hours * 3600)
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sockets")]
pub struct SocketConfig {
    /// Deliveries each connection's mailbox holds, over all its conversations; a connection
    /// further behind than this is told to resync the conversations it missed messages of.
    #[arg(long, env = "MESSENGER_BROADCAST_CAPACITY", default_value_t = 1024)]
    pub broadcast_capacity: usize,

    /// Messages (sends, nudges, deletions) a user may send per second, over all their
    /// connections together (burst of the same size).
    #[arg(long, env = "MESSENGER_SEND_RATE", default_value_t = 20)]
    pub send_rate_per_second: u32,

    /// Frames of any kind a user may send per second over all their connections together
    /// (burst of three seconds' worth); beyond it their sockets are read no faster.
    #[arg(
        long = "frame-rate",
        env = "MESSENGER_FRAME_RATE",
        default_value_t = 100
    )]
    pub frame_rate_per_second: u32,

    /// Seconds between heartbeat pings on each socket; a socket silent for three is closed.
    #[arg(long, env = "MESSENGER_HEARTBEAT_SECONDS", default_value_t = 25)]
    pub heartbeat_seconds: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "AI contacts")]
pub struct BotConfig {
    /// Whether the AI contacts (persona bots) exist and answer.
    #[arg(long = "bots", env = "MESSENGER_BOTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Base URL of an OpenAI-compatible chat-completions API, up to the version
    /// (e.g. http://127.0.0.1:11434/v1 for Ollama). Without it the bots use the offline
    /// persona engine.
    #[arg(long = "bot-base-url", env = "MESSENGER_BOT_BASE_URL")]
    pub base_url: Option<String>,

    /// The model to ask for.
    #[arg(
        long = "bot-model",
        env = "MESSENGER_BOT_MODEL",
        default_value = "llama3.2"
    )]
    pub model: String,

    /// The API key, sent as a bearer token (not needed by local servers).
    #[arg(
        long = "bot-api-key",
        env = "MESSENGER_BOT_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<Secret>,

    /// Most tokens a model may produce per reply.
    #[arg(
        long = "bot-max-tokens",
        env = "MESSENGER_BOT_MAX_TOKENS",
        default_value_t = 200
    )]
    pub max_tokens: u32,

    /// Bot replies each user gets per day (UTC), across all bots.
    #[arg(
        long = "bot-user-daily",
        env = "MESSENGER_BOT_USER_DAILY",
        default_value_t = 200
    )]
    pub user_daily: u32,

    /// Bot replies each guest gets per day (UTC): guests cost nothing to make, so they get
    /// a small allowance of their own.
    #[arg(
        long = "bot-guest-daily",
        env = "MESSENGER_BOT_GUEST_DAILY",
        default_value_t = 10
    )]
    pub guest_daily: u32,

    /// Each user's first bot replies of the day, granted even when everyone's quota is
    /// spent (they still count in it), so that others never starve a newcomer.
    #[arg(
        long = "bot-first-replies",
        env = "MESSENGER_BOT_FIRST_REPLIES",
        default_value_t = 3
    )]
    pub first_replies: u32,

    /// Bot replies everyone together gets per day (UTC).
    #[arg(
        long = "bot-global-daily",
        env = "MESSENGER_BOT_GLOBAL_DAILY",
        default_value_t = 5000
    )]
    pub global_daily: u32,

    /// Most model calls at the same time.
    #[arg(
        long = "bot-max-concurrent",
        env = "MESSENGER_BOT_MAX_CONCURRENT",
        default_value_t = 4
    )]
    pub max_concurrent: usize,

    /// Longest a model call may take, in seconds, before the offline engine answers.
    #[arg(
        long = "bot-timeout-seconds",
        env = "MESSENGER_BOT_TIMEOUT_SECONDS",
        default_value_t = 20
    )]
    pub timeout_seconds: u64,

    /// Failures (errors or timeouts) in a row that open the circuit breaker.
    #[arg(
        long = "bot-breaker-failures",
        env = "MESSENGER_BOT_BREAKER_FAILURES",
        default_value_t = 3
    )]
    pub breaker_failures: u32,

    /// Seconds the open breaker waits before it lets one call through to probe.
    #[arg(
        long = "bot-breaker-cooldown-seconds",
        env = "MESSENGER_BOT_BREAKER_COOLDOWN_SECONDS",
        default_value_t = 30
    )]
    pub breaker_cooldown_seconds: u64,

    /// How long the offline engine takes to answer, in milliseconds (so its typing
    /// indicator shows).
    #[arg(
        long = "bot-offline-delay-ms",
        env = "MESSENGER_BOT_OFFLINE_DELAY_MS",
        default_value_t = 900
    )]
    pub offline_delay_ms: u64,
}

impl BotConfig {
    /// The model API's base URL, if one is set (blank counts as none).
    pub fn provider_url(&self) -> Option<&str> {
        self.base_url.as_deref().filter(|u| !u.trim().is_empty())
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.max(1))
    }
    pub fn breaker_cooldown(&self) -> Duration {
        Duration::from_secs(self.breaker_cooldown_seconds)
    }
    pub fn offline_delay(&self) -> Duration {
        Duration::from_millis(self.offline_delay_ms)
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitsConfig {
    /// Most WebSocket connections one user may have open at once (tabs, devices).
    #[arg(
        long = "max-sockets-per-user",
        env = "MESSENGER_MAX_SOCKETS_PER_USER",
        default_value_t = 20
    )]
    pub sockets_per_user: u32,

    /// Most WebSocket connections from one address at once (an IPv6 address counts by its
    /// /64 network).
    #[arg(
        long = "max-sockets-per-address",
        env = "MESSENGER_MAX_SOCKETS_PER_ADDRESS",
        default_value_t = 200
    )]
    pub sockets_per_address: u32,

    /// Most WebSocket connections in all. Default: the process's descriptor limit (raised
    /// to its hard limit at start) less the reserve below.
    #[arg(long = "max-sockets", env = "MESSENGER_MAX_SOCKETS")]
    pub sockets: Option<u64>,

    /// File descriptors kept out of the WebSockets' reach, so that pages, sign-in and the
    /// database keep working when the sockets are at their cap (at most a quarter of the
    /// descriptor limit is reserved).
    #[arg(
        long = "descriptor-reserve",
        env = "MESSENGER_DESCRIPTOR_RESERVE",
        default_value_t = 256
    )]
    pub descriptor_reserve: u64,

    /// Addresses or networks of reverse proxies whose `X-Forwarded-For` header is believed,
    /// comma-separated (e.g. `127.0.0.1,10.0.0.0/8`). From any other peer the header is
    /// ignored, so address-based limits cannot be dodged by writing it.
    #[arg(
        long = "trusted-proxy",
        env = "MESSENGER_TRUSTED_PROXY",
        value_delimiter = ',',
        value_parser = parse_network
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Failed sign-ins one address may make, whatever the accounts, as `BURST/PERIOD`: that
    /// many at once, and that many more each period (units s, m, h, d). Beyond: `429` with
    /// `Retry-After`. Stored, so it holds across restarts.
    #[arg(
        long = "signin-failures-per-address",
        env = "MESSENGER_SIGNIN_FAILURES_PER_ADDRESS",
        default_value = "20/10m"
    )]
    pub signin_per_address: Allowance,

    /// Failed sign-ins to one account from one address (`429` with `Retry-After` beyond).
    #[arg(
        long = "signin-failures-per-account-and-address",
        env = "MESSENGER_SIGNIN_FAILURES_PER_ACCOUNT_AND_ADDRESS",
        default_value = "5/5m"
    )]
    pub signin_per_account_address: Allowance,

    /// Failed sign-ins to one account from anywhere. Beyond it every sign-in to that account
    /// must carry a solved challenge (never a wait, so nobody can lock the owner out).
    #[arg(
        long = "signin-failures-per-account",
        env = "MESSENGER_SIGNIN_FAILURES_PER_ACCOUNT",
        default_value = "5/1h"
    )]
    pub signin_per_account: Allowance,

    /// Accounts one address may create (`429` with `Retry-After` beyond).
    #[arg(
        long = "signups-per-address",
        env = "MESSENGER_SIGNUPS_PER_ADDRESS",
        default_value = "5/1h"
    )]
    pub signups_per_address: Allowance,

    /// Bot replies to the users of one address (the address of the socket they wrote
    /// from), so that no address can spend everyone's quota. Beyond it the bots say they
    /// are tired.
    #[arg(
        long = "bot-replies-per-address",
        env = "MESSENGER_BOT_REPLIES_PER_ADDRESS",
        default_value = "100/1d"
    )]
    pub bot_replies_per_address: Allowance,

    /// Files one user may share (`429` with `Retry-After` beyond): a burst, and that many
    /// more per period.
    #[arg(
        long = "uploads-per-user",
        env = "MESSENGER_UPLOADS_PER_USER",
        default_value = "60/1h"
    )]
    pub uploads_per_user: Allowance,

    /// Guests one address may create (`429` with `Retry-After` beyond).
    #[arg(
        long = "guests-per-address",
        env = "MESSENGER_GUESTS_PER_ADDRESS",
        default_value = "20/1h"
    )]
    pub guests_per_address: Allowance,
}

impl LimitsConfig {
    pub fn allowances(&self) -> Allowances {
        Allowances {
            signin_address: self.signin_per_address,
            signin_account_address: self.signin_per_account_address,
            signin_account: self.signin_per_account,
            signup_address: self.signups_per_address,
            guest_address: self.guests_per_address,
            bot_address: self.bot_replies_per_address,
            upload_user: self.uploads_per_user,
        }
    }
}

/// How people show they are not bots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerificationKind {
    /// A proof-of-work challenge, solved by the browser in the background (ALTCHA's widget,
    /// served by this server: no third party is asked anything).
    Altcha,
    /// Cloudflare Turnstile (needs `--turnstile-site-key` and `--turnstile-secret`).
    Turnstile,
    /// No verification (for tests and closed networks).
    Off,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Bot verification")]
pub struct VerificationConfig {
    /// What sign-up, guests and a sign-in after many failures must pass. Default: turnstile
    /// when its site key and secret are set, altcha otherwise.
    #[arg(long = "verification", env = "MESSENGER_VERIFICATION", value_enum)]
    pub kind: Option<VerificationKind>,

    /// The secret ALTCHA challenges are signed with. Default: one made at first start and
    /// kept in the database.
    #[arg(
        long = "altcha-secret",
        env = "MESSENGER_ALTCHA_SECRET",
        hide_env_values = true
    )]
    pub altcha_secret: Option<Secret>,

    /// PBKDF2 iterations per try of an ALTCHA challenge.
    #[arg(
        long = "altcha-cost",
        env = "MESSENGER_ALTCHA_COST",
        default_value_t = 1000
    )]
    pub altcha_cost: u32,

    /// Tries a solver needs at most (the answer is picked at random below it, so a
    /// browser makes half as many on average).
    #[arg(
        long = "altcha-max-tries",
        env = "MESSENGER_ALTCHA_MAX_TRIES",
        default_value_t = 2000
    )]
    pub altcha_max_tries: u32,

    /// Cloudflare Turnstile's site key (public, shown in the page).
    #[arg(long = "turnstile-site-key", env = "MESSENGER_TURNSTILE_SITE_KEY")]
    pub turnstile_site_key: Option<String>,

    /// Cloudflare Turnstile's secret key.
    #[arg(
        long = "turnstile-secret",
        env = "MESSENGER_TURNSTILE_SECRET",
        hide_env_values = true
    )]
    pub turnstile_secret: Option<Secret>,

    /// Where Turnstile tokens are checked.
    #[arg(
        long = "turnstile-verify-url",
        env = "MESSENGER_TURNSTILE_VERIFY_URL",
        default_value = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
    )]
    pub turnstile_verify_url: String,
}

impl VerificationConfig {
    /// The kind in force: the one asked for, else Turnstile if it is configured, else ALTCHA.
    pub fn kind(&self) -> VerificationKind {
        self.kind.unwrap_or(
            if self.turnstile_site_key.is_some() && self.turnstile_secret.is_some() {
                VerificationKind::Turnstile
            } else {
                VerificationKind::Altcha
            },
        )
    }
}

/// An address (`10.0.0.1`, a network of one) or a network (`10.0.0.0/8`).
fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or a network (like 10.0.0.0/8)"))
}

/// A value that must never be printed (an API key): `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
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
    /// The key ring that encrypts message bodies (the file, not MESSENGER_KEYS).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit log: check its chain, or write it out as JSON lines.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The admin role: who holds it (`list`), and giving or taking it by username.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// How long one conversation keeps its messages (its own retention; the server's is
    /// `--retention`, and the shorter wins).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Writes a consistent copy of the database to FILE, while the server runs (restore:
    /// docs/OPERATIONS.md). Message bodies stay sealed in it: keep the key ring too.
    Backup {
        /// Where the copy goes (refused if it exists).
        file: PathBuf,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Makes USER an administrator (never a guest).
    Grant { user: String },
    /// Takes the role back from USER.
    Revoke { user: String },
    /// Lists the administrators.
    List,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RetentionCommand {
    /// Gives conversation ID a retention PERIOD (`30d`, `12h`), or `off` for none of its
    /// own. A running server applies it at its next retention run.
    Set { conversation: i64, period: String },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Checks the chain of hashes; names the first broken entry (and fails) if there is one.
    Verify,
    /// Writes the entries as JSON lines on standard output.
    Export {
        /// Only entries at or after this time (milliseconds since the Unix epoch).
        #[arg(long)]
        since: Option<i64>,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Makes the key ring file with one new key (refused if it exists).
    Init,
    /// Adds a new key and makes it the active one. A running server picks it up within
    /// seconds and re-encrypts older messages under it in the background.
    Rotate,
    /// The ring's keys, which is active, and how many messages each seals.
    Status,
    /// Removes a key from the ring once no message uses it.
    Retire {
        /// The key's id (as `status` shows it).
        id: String,
    },
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
    /// Lists the public rooms: id, members, title (and "archived" after an archived one).
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
    /// A configuration for tests: port 0, the given database, defaults otherwise.
    pub fn for_tests(database: PathBuf) -> Self {
        let mut cfg = Config::parse_from(["messenger"]);
        cfg.server.addr = "127.0.0.1:0".parse().expect("literal address");
        cfg.store.database = database;
        // Tests wait for bot replies; the pause only exists for people to see the typing.
        cfg.bots.offline_delay_ms = 0;
        // Every test comes from 127.0.0.1 and makes many guests; the tests of the limits
        // set the ones they test.
        let limits = &mut cfg.limits;
        limits.signups_per_address = Allowance::UNLIMITED;
        limits.guests_per_address = Allowance::UNLIMITED;
        limits.signin_per_address = Allowance::UNLIMITED;
        limits.signin_per_account_address = Allowance::UNLIMITED;
        limits.signin_per_account = Allowance::UNLIMITED;
        limits.bot_replies_per_address = Allowance::UNLIMITED;
        limits.uploads_per_user = Allowance::UNLIMITED;
        // The tests of verification turn it on.
        cfg.verification.kind = Some(VerificationKind::Off);
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_api_key_never_shows_in_a_debug_print() {
        let cfg = Config::parse_from(["messenger", "--bot-api-key", "sk-very-secret"]);
        assert_eq!(
            cfg.bots.api_key.as_ref().map(Secret::expose),
            Some("sk-very-secret")
        );
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("sk-very-secret"), "{printed}");
        assert!(printed.contains("Secret(..)"));
    }

    /// Nagle's algorithm held a message behind the previous one's delayed acknowledgement
    /// (up to 40 ms; measured in docs/BENCHMARKS.md): accepted sockets send at once unless
    /// the operator turns it off.
    #[test]
    fn accepted_sockets_send_without_delay_unless_turned_off() {
        assert!(Config::parse_from(["messenger"]).server.tcp_nodelay);
        let off = Config::parse_from(["messenger", "--tcp-nodelay", "false"]);
        assert!(!off.server.tcp_nodelay);
    }

    #[test]
    fn every_flag_keeps_its_name_and_its_help_sits_beside_it() {
        let cmd = Config::command();
        let help = |name: &str| {
            cmd.get_arguments()
                .find(|a| a.get_long() == Some(name))
                .unwrap_or_else(|| panic!("--{name} exists"))
                .get_help()
                .map(|h| h.to_string())
                .unwrap_or_default()
        };
        assert!(help("log").contains("Log filter"));
        assert!(help("bots").contains("AI contacts"));
        assert!(help("session-idle-minutes").contains("without activity"));
        assert!(help("send-rate-per-second").contains("per second"));
        assert!(help("bot-api-key").contains("API key"));
        assert!(help("database").contains("SQLite"));
    }
}
