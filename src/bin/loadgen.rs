//! loadgen: drives a Messenger server through its real protocol (guest tokens over HTTP,
//! bearer-authenticated WebSockets, `sync`, `send`) and reports throughput, latency from send
//! to receive, losses, duplicates and reordering, and the server's CPU time and memory.
//!
//! By default it starts a fresh server (release binary, temp database) for each run, so the
//! figures are for that process alone. See docs/BENCHMARKS.md for the scenarios and results.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures::{stream, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    MaybeTlsStream, WebSocketStream,
};

#[path = "loadgen/day.rs"]
mod day;

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Parser)]
#[command(about = "Load generator for Messenger")]
struct Cli {
    /// Server binary to start, with a fresh temp database, for each run.
    #[arg(long, default_value = "target/release/messenger")]
    server_bin: PathBuf,
    /// Use an already running server instead (CPU and memory need --pid). Several nodes of
    /// one installation: their addresses, comma-separated; HTTP goes to the first, and the
    /// fan-out and rooms scenarios spread their sockets over all of them in turn.
    #[arg(long)]
    url: Option<String>,
    /// Process id of the running server given with --url (several nodes: comma-separated;
    /// CPU is their sum, memory too).
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Run against one of the peer chat servers in benches/peers instead of Messenger
    /// (`idle` and `fanout` only; they store nothing and have no acknowledgements).
    #[arg(long, value_enum)]
    peer: Option<Peer>,
    /// Loopback source addresses to spread the sockets over (127.0.0.1 up to 127.0.0.N).
    #[arg(long, default_value_t = 4)]
    sources: usize,
    /// Start every sender's ticks at the same instant instead of spreading them over one
    /// period: slow senders then send in bursts, which the server's group commit turns into
    /// one batch (and one socket write per member) per burst. The first round measured this.
    #[arg(long)]
    aligned: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Peer {
    /// Node + ws 8
    Ws,
    /// Node + socket.io 4 rooms
    Socketio,
    /// Bun's WebSocket pub/sub
    Bun,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// N connections held open: server RSS per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
    },
    /// One conversation with M members; S of them send R messages/s in total (the senders'
    /// own messages come back to them too: they are members).
    Fanout {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Messages per second, all senders together.
        #[arg(long, default_value_t = 50)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Raise the rate step by step (x1.5) until p99 exceeds 100 ms or a message is lost.
        #[arg(long)]
        ramp: bool,
    },
    /// K conversations of M members each, every member sending; R messages/s in total.
    Rooms {
        #[arg(long, default_value_t = 1000)]
        rooms: usize,
        #[arg(long, default_value_t = 5)]
        members: usize,
        /// Messages per second, all members together (10,000: 2 per member per second).
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Raise the rate step by step (x1.5) until p99 exceeds 100 ms or a message is lost.
        #[arg(long)]
        ramp: bool,
    },
    /// S senders, each in its own one-to-one conversation with a partner, send R messages/s
    /// each; then the same while one more user, a contact of all of them, floods the server
    /// from many sockets with every kind of frame (status changes, typing, read marks,
    /// garbage). The per-user limits are the server's defaults here: the senders' ack
    /// latency should not move.
    Flood {
        #[arg(long, default_value_t = 16)]
        senders: usize,
        /// Messages per second per sender.
        #[arg(long, default_value_t = 10)]
        rate: u64,
        /// Sockets of the flooding user.
        #[arg(long, default_value_t = 20)]
        sockets: usize,
        /// Seconds of each phase.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// One conversation filled with N messages, then R readers fetch its history pages of
    /// 100 (newest page, then older ones, round and round) for S seconds: pages read per
    /// second and their latency (the cost of opening sealed bodies shows here).
    History {
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        #[arg(long, default_value_t = 8)]
        readers: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// U users, each in a one-to-one conversation with a partner, share a file of M
    /// megabytes at the same moment (streamed, never whole in the tool's memory either), then
    /// their partners download them all at once: upload and download throughput, and the
    /// server's resident memory before and at its peak.
    Uploads {
        #[arg(long, default_value_t = 20)]
        users: usize,
        #[arg(long, default_value_t = 25)]
        mb: u64,
    },
    /// A day of Messenger compressed into a minute: N users with ~20 contacts each, presence
    /// changes, personal message edits, sign-outs and back with resync, one-to-one
    /// conversations with typing, groups and rooms (see src/bin/loadgen/day.rs).
    Day {
        #[command(flatten)]
        day: day::Day,
        /// Run again with 1.5x the users (a fresh server each time) until a p99 passes 100 ms.
        #[arg(long)]
        ramp: bool,
    },
    /// S senders, each in its own one-to-one conversation, as fast as acks come back.
    Durable {
        #[arg(long, default_value_t = 16)]
        senders: usize,
        /// Sends each sender keeps awaiting their ack.
        #[arg(long, default_value_t = 32)]
        inflight: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
}

/// The instant all latencies are measured from (sender and receivers share this process).
fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros_now() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// A server under test: one we started, or one we were pointed at.
struct Server {
    url: String,
    /// Every node's address, comma-separated (the one `url` when there is one node).
    nodes: String,
    pids: Vec<u32>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    /// The database of a server this tool started.
    database: Option<PathBuf>,
}

impl Server {
    /// Starts a fresh server, first seeding `seed_rooms` public rooms titled "Load room N"
    /// with its own administration command; or uses the one given with --url.
    async fn start(cli: &Cli, seed_rooms: Option<usize>) -> Result<Self> {
        Self::start_with(cli, seed_rooms, &[]).await
    }

    /// Starts the server with `env` added last (it wins over the defaults below).
    async fn start_with(
        cli: &Cli,
        seed_rooms: Option<usize>,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        if let Some(url) = &cli.url {
            let nodes: Vec<&str> = url
                .split(',')
                .map(|u| u.trim().trim_end_matches('/'))
                .collect();
            return Ok(Self {
                url: nodes[0].to_owned(),
                nodes: nodes.join(","),
                pids: cli.pid.clone(),
                child: None,
                _dir: None,
                database: None,
            });
        }
        let dir = tempfile::tempdir()?;
        let database = dir.path().join("bench.db");
        if let Some(n) = seed_rooms {
            let out = Command::new(&cli.server_bin)
                .env("MESSENGER_DATABASE", &database)
                .env("RUST_LOG", "warn")
                .args(["rooms", "add", "--numbered", &n.to_string(), LOAD_ROOM])
                .stderr(Stdio::inherit())
                .output()
                .context("seeding rooms")?;
            if !out.status.success() {
                bail!("seeding rooms failed");
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&cli.server_bin)
            .env("MESSENGER_ADDR", format!("127.0.0.1:{port}"))
            .env("MESSENGER_DATABASE", &database)
            // The load tool measures the engine; the per-user and per-address limits
            // (docs/SECURITY.md) would only refuse its many clients from one address.
            .env("MESSENGER_SEND_RATE", "1000000")
            .env("MESSENGER_FRAME_RATE", "1000000")
            .env("MESSENGER_MAX_SOCKETS_PER_USER", "1000000")
            .env("MESSENGER_MAX_SOCKETS_PER_ADDRESS", "1000000")
            .env("MESSENGER_GUESTS_PER_ADDRESS", "1000000000/1s")
            .env("MESSENGER_VERIFICATION", "off")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (run `make release` first)",
                    cli.server_bin.display()
                )
            })?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http
                .get(format!("{url}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            nodes: url.clone(),
            url,
            pids: vec![child.id()],
            child: Some(child),
            _dir: Some(dir),
            database: Some(database),
        })
    }

    /// User plus system CPU seconds the server (every node) has used so far.
    fn cpu_seconds(&self) -> Option<f64> {
        self.sum(cpu_seconds_of)
    }

    /// The most resident memory the server has had, in KiB (every node's, added).
    fn peak_rss_kib(&self) -> Option<u64> {
        self.sum(|pid| status_kib(pid, "VmHWM:"))
    }

    /// Resident memory in KiB (every node's, added).
    fn rss_kib(&self) -> Option<u64> {
        self.sum(|pid| status_kib(pid, "VmRSS:"))
    }

    fn sum<T: std::iter::Sum<T>>(&self, of: impl Fn(u32) -> Option<T>) -> Option<T> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|pid| of(*pid)).sum()
    }
}

/// User plus system CPU seconds process `pid` has used so far.
fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per s).
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A KiB figure of process `pid`'s status (`VmRSS:`, `VmHWM:`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Guest {
    token: String,
    username: String,
    id: i64,
}

async fn guests(url: &str, n: usize) -> Result<Vec<Guest>> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let out: Vec<Result<Guest>> = stream::iter(0..n)
        .map(|_| {
            let http = http.clone();
            async move {
                let v: Value = http
                    .post(format!("{url}/api/token"))
                    .json(&json!({ "guest": true }))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                Ok(Guest {
                    token: v["token"].as_str().context("token")?.to_owned(),
                    username: v["user"]["username"]
                        .as_str()
                        .context("username")?
                        .to_owned(),
                    id: v["user"]["id"].as_i64().context("user id")?,
                })
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let out = out.into_iter().collect::<Result<Vec<_>>>()?;
    eprintln!(
        "  {n} guests signed in in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Starts a one-to-one conversation for each pair of guests in order (the first of each pair
/// asks, up to 64 at once); their ids, pair by pair.
async fn dms_of_pairs(url: &str, guests: &[Guest]) -> Result<Vec<i64>> {
    let pairs: Vec<(&Guest, &Guest)> = guests.chunks_exact(2).map(|p| (&p[0], &p[1])).collect();
    dms(url, &pairs).await
}

/// Starts a one-to-one conversation between each pair (the first asks), up to 64 at once;
/// their ids, in order.
async fn dms(url: &str, pairs: &[(&Guest, &Guest)]) -> Result<Vec<i64>> {
    let out: Vec<Result<i64>> = stream::iter(pairs)
        .map(|(a, b)| async move {
            let v = post(url, "/api/dm", &a.token, json!({ "username": b.username })).await?;
            v["id"].as_i64().context("conversation id")
        })
        .buffered(64)
        .collect()
        .await;
    out.into_iter().collect()
}

async fn post(url: &str, path: &str, token: &str, body: Value) -> Result<Value> {
    Ok(reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// How many loopback source addresses (127.0.0.1, 127.0.0.2, ...) the sockets are spread
/// over, so that no one address runs out of ephemeral ports.
static SOURCES: AtomicUsize = AtomicUsize::new(4);
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// Each socket's read buffer (see `open_ws`).
const READ_BUFFER: usize = 8 * 1024;

/// Opens a WebSocket to `url` (ws://host:port/...) over a TCP connection without Nagle's
/// delay, as browsers open theirs; to a loopback server, from the next source address.
async fn open_ws(req: tokio_tungstenite::tungstenite::handshake::client::Request) -> Result<Ws> {
    let uri = req.uri();
    let host = uri
        .host()
        .context("no host in the WebSocket URL")?
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if addr.ip().is_loopback() && addr.is_ipv4() {
        let n = SOURCES.load(Ordering::Relaxed).clamp(1, 254);
        let i = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % n;
        socket.bind(SocketAddr::from(([127, 0, 0, 1 + i as u8], 0)))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    // tungstenite 0.26 zero-fills its whole read buffer before every read (128 KiB by
    // default): that memset was nearly half of this tool's CPU in the rooms scenario. Frames
    // here are ~200 bytes; 8 KiB still takes a burst of them in a few reads.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        req,
        MaybeTlsStream::Plain(stream),
        Some(config),
    )
    .await?;
    Ok(ws)
}

/// Opens an authenticated Messenger socket; returns it with the text of its hello.
async fn connect_with_hello(url: &str, token: &str) -> Result<(Ws, String)> {
    let mut req = format!("{}/ws", url.replacen("http", "ws", 1)).into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let mut ws = open_ws(req).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) => Ok((ws, t.as_str().to_owned())),
        other => bail!("no hello: {other:?}"),
    }
}

async fn connect(url: &str, token: &str) -> Result<Ws> {
    Ok(connect_with_hello(url, token).await?.0)
}

/// Opens one socket per item with up to 64 handshakes in flight, in order.
async fn open_many<I, F, Fut>(items: I, open: F) -> Result<Vec<Ws>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<Ws>>,
{
    let started = Instant::now();
    let out: Vec<Result<Ws>> = stream::iter(items).map(open).buffered(64).collect().await;
    let out = out.into_iter().collect::<Result<Vec<_>>>()?;
    eprintln!(
        "  {} sockets open in {:.1} s",
        out.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// One socket per token; with several nodes' addresses (comma-separated), socket i goes to
/// node i modulo their number.
async fn connect_all(urls: &str, tokens: &[String]) -> Result<Vec<Ws>> {
    let nodes: Vec<&str> = urls.split(',').collect();
    open_many(tokens.iter().enumerate(), |(i, t)| {
        connect(nodes[i % nodes.len()], t)
    })
    .await
}

/// Sends `sync` and waits for `synced`.
async fn sync(ws: &mut Ws, conv: i64) -> Result<()> {
    ws.send(Message::text(
        json!({ "t": "sync", "conv": conv, "after": 0 }).to_string(),
    ))
    .await?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg? {
            if t.as_str().starts_with(r#"{"t":"synced""#) {
                return Ok(());
            }
        }
    }
    bail!("closed before synced")
}

/// A field of a server frame the tool reads, found by a searcher built once: at a million
/// frames a second, `str::find` building its searcher for every frame cost the tool about
/// a tenth of its time, which the server then saw as latency (docs/BENCHMARKS.md).
pub(crate) struct Field(std::sync::LazyLock<memchr::memmem::Finder<'static>>);

macro_rules! field {
    ($name:ident, $key:literal) => {
        pub(crate) static $name: Field = Field(std::sync::LazyLock::new(|| {
            memchr::memmem::Finder::new($key)
        }));
    };
}
field!(CONV, r#""conv":"#);
field!(SEQ, r#""seq":"#);
field!(BODY, r#""body":""#);
field!(USER, r#""user":"#);
field!(DAY_NOTE, r#""personal_message":"day "#);

/// The integer right after `key` in a frame, without a JSON parse (the tool must be cheap).
fn field_i64(text: &str, key: &Field) -> Option<i64> {
    let at = key.0.find(text.as_bytes())? + key.0.needle().len();
    let digits = &text.as_bytes()[at..];
    let end = digits
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// What one member socket saw in one step.
struct Seen {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Messenger: the highest sequence number seen.
    highest: i64,
    /// Each delivery's latency in microseconds, in arrival order. A plain list: a
    /// histogram per member socket (17,408 counters, 136 KiB each at three significant
    /// digits) spread every record over memory the size of the step's sockets times that,
    /// and recording cost the load tool 7.6% of its time; the list is folded into one
    /// histogram when the step is tallied.
    latency: Vec<u32>,
}

impl Seen {
    fn new(highest: i64) -> Self {
        Self {
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            highest,
            latency: Vec::new(),
        }
    }

    /// Notes a delivery that arrived now and was sent at `sent` (microseconds).
    fn note_latency(&mut self, sent: u64) {
        let us = micros_now().saturating_sub(sent).max(1);
        self.latency.push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// K conversations of M members each; in each, the first S members also send.
#[derive(Clone, Copy)]
struct Shape {
    rooms: usize,
    members: usize,
    senders: usize,
}

impl Shape {
    fn sockets(&self) -> usize {
        self.rooms * self.members
    }
    fn room_of(&self, i: usize) -> usize {
        i / self.members
    }
    /// The member's place in its room.
    fn who(&self, i: usize) -> usize {
        i % self.members
    }
    fn sends(&self, i: usize) -> bool {
        self.who(i) < self.senders
    }
    /// Messages per second for each sender, for `rate` messages/s in all.
    fn per_sender(&self, rate: u64) -> f64 {
        rate as f64 / (self.rooms * self.senders) as f64
    }
    fn describe(&self) -> String {
        if self.rooms == 1 {
            format!("fanout members={} senders={}", self.members, self.senders)
        } else {
            format!(
                "rooms rooms={} members={} senders={}",
                self.rooms, self.members, self.senders
            )
        }
    }
}

/// How often a sender wakes: every millisecond for fast senders, once per message for slow
/// ones (thousands of slow senders must not wake a thousand times a second each).
fn tick_period(per_sender: f64) -> Duration {
    Duration::from_secs_f64((1.0 / per_sender.max(1e-3)).clamp(0.001, 1.0))
}

/// The phases of a measured step, told to every member through a watch channel (no member
/// polls a flag on a timer).
const RUNNING: u8 = 0;
/// Members stop sending.
const STOPPING: u8 = 1;
/// Every member has stopped (and, for Messenger, holds all its acks): the expected counts are
/// final, and a member that waits 5 s more for a message counts the rest as lost.
const SETTLED: u8 = 2;

/// A deterministic spread of the senders' first ticks over one period, so slow senders do
/// not all send in the same millisecond.
fn phase(i: usize, period: Duration) -> Duration {
    if ALIGNED.load(Ordering::Relaxed) {
        return Duration::ZERO;
    }
    period.mul_f64((i.wrapping_mul(7919) % 1000) as f64 / 1000.0)
}

/// `--aligned`, set once at start.
static ALIGNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A ramp first runs this long at its starting rate without counting it: start-up transients
/// (first frames on every socket, a JIT warming up in the Node peers) would otherwise decide
/// the first step.
const WARMUP_SECS: u64 = 3;

/// How a ramp goes on: the result of one step decides the next.
struct Ramp {
    start: u64,
    best: Option<u64>,
}

impl Ramp {
    /// Records a step; returns the next rate, or None when the ramp is over.
    fn next(&mut self, rate: u64, p99_ms: f64, bad: u64) -> Option<u64> {
        if p99_ms > 100.0 || bad > 0 {
            println!(
                "ramp: p99 {p99_ms:.1} ms, lost, duplicated or reordered {bad} at {rate}/s: stop"
            );
            return None;
        }
        self.best = Some(rate);
        Some(rate * 3 / 2)
    }

    fn report(&self, per_message: usize) {
        match self.best {
            Some(b) => println!(
                "ramp result: highest rate with p99 < 100 ms: {b} messages/s = {} deliveries/s",
                b * per_message as u64
            ),
            None => println!("ramp result: even {}/s was over the limit", self.start),
        }
    }
}

/// Sums the members' observations of one step and prints the report line.
struct Tally {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    lost: u64,
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            lost: 0,
            latency: histogram(),
        }
    }

    /// Adds one member that should have received `expected` messages.
    fn add(&mut self, seen: &Seen, expected: u64) {
        self.received += seen.received;
        self.duplicates += seen.duplicates;
        self.out_of_order += seen.out_of_order;
        self.lost += expected.saturating_sub(seen.received);
        for &us in &seen.latency {
            self.latency.saturating_record(u64::from(us));
        }
    }

    fn p99_ms(&self) -> f64 {
        ms(self.latency.value_at_quantile(0.99))
    }

    /// Losses, duplicates and reordering: any of them ends a ramp.
    fn bad(&self) -> u64 {
        self.lost + self.duplicates + self.out_of_order
    }

    fn print(&self, what: &str, sent: u64, secs: u64, cpu: Option<f64>) {
        println!(
            "{what}: sent {sent}, deliveries {} ({:.0}/s), latency p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms max {:.1} ms, \
             lost {}, duplicated {}, out of order {}, server CPU {} ({} deliveries per CPU-second)",
            self.received,
            self.received as f64 / secs as f64,
            ms(self.latency.value_at_quantile(0.5)),
            ms(self.latency.value_at_quantile(0.9)),
            self.p99_ms(),
            ms(self.latency.max()),
            self.lost,
            self.duplicates,
            self.out_of_order,
            cpu.map_or("n/a".into(), |c| format!("{c:.2} s")),
            cpu.map_or("n/a".into(), |c| format!("{:.0}", self.received as f64 / c.max(0.01))),
        );
    }
}

/// What every member of one Messenger step shares.
struct StepShared {
    phase: tokio::sync::watch::Sender<u8>,
    /// Members that have stopped sending and hold an ack for everything they sent.
    settled: AtomicUsize,
    /// Per room: the highest sequence number acknowledged so far (final once SETTLED).
    acked: Vec<AtomicI64>,
}

/// One member socket of a Messenger conversation, kept across the steps of a ramp.
struct Member {
    ws: Ws,
    conv: i64,
    /// Highest sequence number received so far.
    highest: i64,
}

/// One member for one step: sends at `rate` (0: receives only) until told to stop, counts
/// every message of its conversation and stops when it has everything acknowledged.
async fn member_step(
    mut m: Member,
    i: usize,
    room: usize,
    tag: String,
    rate: f64,
    shared: Arc<StepShared>,
) -> Result<(Member, Seen, u64)> {
    let mut seen = Seen::new(m.highest);
    let sending = rate > 0.0;
    let period = tick_period(rate);
    let started = tokio::time::Instant::now() + phase(i, period);
    let mut tick = tokio::time::interval_at(started, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut settled = false;
    let conv = m.conv;
    let mut phase_rx = shared.phase.subscribe();
    loop {
        let now = *phase_rx.borrow_and_update();
        let stopping = now >= STOPPING;
        if stopping && !settled && acked == sent {
            settled = true;
            shared.settled.fetch_add(1, Ordering::Relaxed);
        }
        let all_settled = now >= SETTLED;
        if all_settled && seen.highest >= shared.acked[room].load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if sending && !stopping => {
                let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
                while sent < due {
                    sent += 1;
                    // Time first, at a fixed width, as the web client's ids (docs/PROTOCOL.md).
                    let now = micros_now();
                    let frame = format!(
                        r#"{{"t":"send","conv":{conv},"client_id":"{now:010x}-{tag}-{i}-{sent}","body":"{now:016}"}}"#,
                    );
                    m.ws.feed(Message::text(frame)).await?;
                }
                m.ws.flush().await?;
            }
            _ = phase_rx.changed(), if !all_settled => {}
            // An async block: `select!` builds every branch's future, enabled or not, and a
            // timer per received frame cost the tool a few percent.
            _ = async { tokio::time::sleep(Duration::from_secs(5)).await }, if all_settled => break,
            msg = m.ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let text = t.as_str();
                    if text.starts_with(r#"{"t":"msg""#) {
                        record(&mut seen, text);
                    } else if text.starts_with(r#"{"t":"ack""#) {
                        acked += 1;
                        if let Some(seq) = field_i64(text, &SEQ) {
                            shared.acked[room].fetch_max(seq, Ordering::Relaxed);
                        }
                    } else if text.starts_with(r#"{"t":"error""#) || text.starts_with(r#"{"t":"resync""#) {
                        bail!("the server answered {text}");
                    }
                }
                Some(Ok(_)) => {}
                _ => bail!("the server closed a socket"),
            },
        }
    }
    m.highest = seen.highest;
    Ok((m, seen, sent))
}

/// Counts one `msg` frame: its sequence number against the highest seen, and its latency
/// from the send time the sender put in the body.
fn record(seen: &mut Seen, text: &str) {
    let (Some(seq), Some(sent)) = (field_i64(text, &SEQ), field_i64(text, &BODY)) else {
        return;
    };
    if seq <= seen.highest {
        seen.duplicates += 1;
        return;
    }
    if seq != seen.highest + 1 {
        seen.out_of_order += 1;
    }
    seen.highest = seq;
    seen.received += 1;
    seen.note_latency(sent as u64);
}

/// One measured step at `rate` messages/s in all; returns the members and the tally.
async fn group_step(
    server: &Server,
    shape: Shape,
    step: usize,
    rate: u64,
    secs: u64,
    members: Vec<Member>,
    warmup: bool,
) -> Result<(Vec<Member>, Tally)> {
    let shared = Arc::new(StepShared {
        phase: tokio::sync::watch::channel(RUNNING).0,
        settled: AtomicUsize::new(0),
        acked: (0..shape.rooms)
            .map(|r| AtomicI64::new(members[r * shape.members].highest))
            .collect(),
    });
    let base: Vec<i64> = members.iter().map(|m| m.highest).collect();
    let per_sender = shape.per_sender(rate);
    let cpu0 = server.cpu_seconds();
    let tasks: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let rate = if shape.sends(i) { per_sender } else { 0.0 };
            tokio::spawn(member_step(
                m,
                i,
                shape.room_of(i),
                format!("s{step}"),
                rate,
                shared.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    shared.phase.send_replace(STOPPING);
    // Once every member has its acks, the rooms' highest acknowledged numbers are final.
    let deadline = Instant::now() + Duration::from_secs(15);
    while shared.settled.load(Ordering::Relaxed) < shape.sockets() {
        if Instant::now() > deadline {
            bail!("sends were still unacknowledged 15 s after the step");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.phase.send_replace(SETTLED);
    let mut tally = Tally::new();
    let mut sent = 0;
    let mut members = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.into_iter().enumerate() {
        let (m, seen, n) = t.await??;
        let target = shared.acked[shape.room_of(i)].load(Ordering::Relaxed);
        tally.add(&seen, (target - base[i]).max(0) as u64);
        sent += n;
        members.push(m);
    }
    let cpu = server.cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    let warmup = if warmup { "warm-up (not counted) " } else { "" };
    tally.print(
        &format!("{warmup}{} rate={rate}/s", shape.describe()),
        sent,
        secs,
        cpu,
    );
    Ok((members, tally))
}

/// The title the load tool's seeded rooms start with.
const LOAD_ROOM: &str = "Load room";

/// The conversations of a group scenario: the Lobby for one, else the seeded load rooms,
/// found through the room directory.
async fn rooms_for(server: &Server, shape: Shape, token: &str) -> Result<Vec<i64>> {
    if shape.rooms == 1 {
        return Ok(vec![1]);
    }
    let prefix = format!("{LOAD_ROOM} ");
    let http = reqwest::Client::new();
    let mut ids: Vec<i64> = Vec::with_capacity(shape.rooms);
    let mut after = 0;
    while ids.len() < shape.rooms {
        let page: messenger::protocol::RoomPage = http
            .get(format!("{}/api/rooms", server.url))
            .query(&[
                ("q", LOAD_ROOM.to_owned()),
                ("after", after.to_string()),
                ("limit", "200".into()),
            ])
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.extend(
            page.rooms
                .iter()
                .filter(|r| r.title.starts_with(&prefix))
                .map(|r| r.id),
        );
        match page.rooms.last() {
            Some(last) if page.has_more => after = last.id,
            _ => break,
        }
    }
    ids.truncate(shape.rooms);
    if ids.len() < shape.rooms {
        bail!(
            "the server has {} of the {} rooms needed; seed them with \
             `messenger --database FILE rooms add --numbered {} '{LOAD_ROOM}'`",
            ids.len(),
            shape.rooms,
            shape.rooms
        );
    }
    Ok(ids)
}

/// Fan-out (one conversation) and rooms (many): every member a socket, synced to its
/// conversation; the first senders of each conversation send.
async fn group(cli: &Cli, shape: Shape, rate: u64, secs: u64, ramp: bool) -> Result<()> {
    if shape.senders == 0 || shape.senders > shape.members || shape.rooms == 0 {
        bail!("need rooms >= 1 and 1 <= senders <= members");
    }
    let seed = (shape.rooms > 1).then_some(shape.rooms);
    let server = Server::start(cli, seed).await?;
    let users = guests(&server.url, shape.sockets()).await?;
    let convs = rooms_for(&server, shape, &users[0].token).await?;
    let started = Instant::now();
    let joined: Vec<Result<Value>> = stream::iter(users.iter().enumerate())
        .map(|(i, u)| {
            let path = format!("/api/rooms/{}/join", convs[shape.room_of(i)]);
            let url = &server.url;
            async move { post(url, &path, &u.token, json!({})).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    joined.into_iter().collect::<Result<Vec<_>>>()?;
    eprintln!(
        "  {} joins in {:.1} s",
        users.len(),
        started.elapsed().as_secs_f64()
    );
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
    let socks = connect_all(&server.nodes, &tokens).await?;
    let synced: Vec<Result<Member>> = stream::iter(socks.into_iter().enumerate())
        .map(|(i, mut ws)| {
            let conv = convs[shape.room_of(i)];
            async move {
                sync(&mut ws, conv).await?;
                Ok(Member {
                    ws,
                    conv,
                    highest: 0,
                })
            }
        })
        .buffered(64)
        .collect()
        .await;
    let mut members = synced.into_iter().collect::<Result<Vec<_>>>()?;
    if let Some(rss) = server.rss_kib() {
        eprintln!(
            "  server RSS with {} sockets: {:.1} MiB",
            members.len(),
            rss as f64 / 1024.0
        );
    }
    let mut ramp_state = Ramp {
        start: rate,
        best: None,
    };
    let mut r = rate;
    let mut warming = ramp;
    for step in 0.. {
        let step_secs = if warming { WARMUP_SECS } else { secs };
        let (back, tally) =
            group_step(&server, shape, step, r, step_secs, members, warming).await?;
        members = back;
        if std::mem::take(&mut warming) {
            continue;
        }
        if !ramp {
            break;
        }
        match ramp_state.next(r, tally.p99_ms(), tally.bad()) {
            Some(next) => r = next,
            None => break,
        }
    }
    if ramp {
        ramp_state.report(shape.members);
    }
    Ok(())
}

async fn durable(cli: &Cli, senders: usize, inflight: usize, secs: u64) -> Result<()> {
    let server = Server::start(cli, None).await?;
    let users = guests(&server.url, senders * 2).await?;
    let convs = dms_of_pairs(&server.url, &users).await?;
    let tokens: Vec<String> = users.iter().step_by(2).map(|u| u.token.clone()).collect();
    let socks = connect_all(&server.url, &tokens).await?;
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    let tasks: Vec<_> = socks
        .into_iter()
        .zip(convs)
        .enumerate()
        .map(|(i, (mut ws, conv))| {
            tokio::spawn(async move {
                let mut latency = histogram();
                let mut sent_at = std::collections::VecDeque::new();
                let mut acked = 0u64;
                let mut n = 0u64;
                let end = Instant::now() + Duration::from_secs(secs);
                loop {
                    while sent_at.len() < inflight && Instant::now() < end {
                        n += 1;
                        let f = format!(r#"{{"t":"send","conv":{conv},"client_id":"{:010x}-d{i}-{n}","body":"durable {n}"}}"#, micros_now());
                        ws.feed(Message::text(f)).await?;
                        sent_at.push_back(micros_now());
                    }
                    ws.flush().await?;
                    if sent_at.is_empty() {
                        break;
                    }
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"t":"ack""#) => {
                            acked += 1;
                            // Acks of one connection come back in the order of the sends.
                            if let Some(at) = sent_at.pop_front() {
                                let _ = latency.record(micros_now().saturating_sub(at).max(1));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => bail!("socket closed"),
                    }
                }
                anyhow::Ok((acked, latency))
            })
        })
        .collect();
    let mut acked = 0;
    let mut latency = histogram();
    for t in tasks {
        let (n, h) = t.await??;
        acked += n;
        latency.add(&h).ok();
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    println!(
        "durable senders={senders} inflight={inflight}: {acked} acknowledged in {wall:.1} s = {:.0} commits/s, \
         ack latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms, server CPU {}",
        acked as f64 / wall,
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max()),
        cpu.map_or("n/a".into(), |c| format!("{c:.2} s ({:.1} us per message)", c * 1e6 / acked.max(1) as f64)),
    );
    Ok(())
}

async fn uploads(cli: &Cli, users: usize, mb: u64) -> Result<()> {
    const PIECE: usize = 256 * 1024;
    let server = Server::start(cli, None).await?;
    let people = guests(&server.url, users * 2).await?;
    let convs = dms_of_pairs(&server.url, &people).await?;
    let size = (mb * 1_000_000) as usize;
    let rss_before = server.rss_kib().unwrap_or(0);
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    let sending: Vec<_> = people
        .chunks(2)
        .zip(&convs)
        .enumerate()
        .map(|(i, (pair, &conv))| {
            let (url, token) = (server.url.clone(), pair[0].token.clone());
            tokio::spawn(async move {
                // Made piece by piece as the request goes out.
                let pieces = (0..size.div_ceil(PIECE)).map(move |k| {
                    let n = PIECE.min(size - k * PIECE);
                    Ok::<_, std::io::Error>(bytes::Bytes::from(vec![(k + i) as u8; n]))
                });
                let res = reqwest::Client::new()
                    .post(format!(
                        "{url}/api/conversations/{conv}/files?client_id=up-{i}&name=load-{i}.bin"
                    ))
                    .bearer_auth(&token)
                    .header("Content-Length", size)
                    .body(reqwest::Body::wrap_stream(stream::iter(pieces)))
                    .send()
                    .await?;
                if !res.status().is_success() {
                    let status = res.status();
                    bail!(
                        "upload answered {status}: {}",
                        res.text().await.unwrap_or_default()
                    );
                }
                let v: Value = res.json().await?;
                v["file"]["id"].as_i64().context("file id")
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(users);
    for t in sending {
        ids.push(t.await??);
    }
    let up_secs = started.elapsed().as_secs_f64();
    let peak_up = server.peak_rss_kib().unwrap_or(0);
    let started = Instant::now();
    let fetching: Vec<_> = people
        .chunks(2)
        .zip(ids)
        .map(|(pair, id)| {
            let (url, token) = (server.url.clone(), pair[1].token.clone());
            tokio::spawn(async move {
                let res = reqwest::Client::new()
                    .get(format!("{url}/api/files/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                if !res.status().is_success() {
                    bail!("download answered {}", res.status());
                }
                let mut body = res.bytes_stream();
                let mut got = 0usize;
                while let Some(piece) = body.next().await {
                    got += piece?.len();
                }
                if got != size {
                    bail!("a download came back with {got} bytes of {size}");
                }
                Ok(())
            })
        })
        .collect();
    for t in fetching {
        t.await??;
    }
    let down_secs = started.elapsed().as_secs_f64();
    let peak = server.peak_rss_kib().unwrap_or(0);
    let cpu = server
        .cpu_seconds()
        .zip(cpu0)
        .map_or(String::new(), |(b, a)| {
            format!(", server CPU {:.2} s", b - a)
        });
    let total_mb = (size * users) as f64 / 1e6;
    println!(
        "uploads users={users} size={mb} MB: {total_mb:.0} MB up in {up_secs:.1} s = {:.0} MB/s, down in {down_secs:.1} s = {:.0} MB/s; server RSS {:.1} MiB before, peak {:.1} MiB while uploading, {:.1} MiB after the downloads{cpu}",
        total_mb / up_secs,
        total_mb / down_secs,
        rss_before as f64 / 1024.0,
        peak_up as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    Ok(())
}

async fn history(cli: &Cli, messages: u64, readers: usize, secs: u64) -> Result<()> {
    let server = Server::start(cli, None).await?;
    let users = guests(&server.url, 2).await?;
    let conv = dms_of_pairs(&server.url, &users).await?[0];
    let mut socks = connect_all(&server.url, std::slice::from_ref(&users[0].token)).await?;
    let mut ws = socks.pop().context("socket")?;
    // Filled as fast as acks come back, 64 in flight.
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < messages {
        while sent < messages && sent - acked < 64 {
            sent += 1;
            let f = format!(
                r#"{{"t":"send","conv":{conv},"client_id":"h-{sent}","body":"history line {sent}, long enough to be a typical message"}}"#
            );
            ws.feed(Message::text(f)).await?;
        }
        ws.flush().await?;
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"t":"ack""#) => acked += 1,
            Some(Ok(_)) => {}
            _ => bail!("socket closed while filling"),
        }
    }
    let pages = messages.div_ceil(100).max(1);
    let token = users[1].token.clone();
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..readers)
        .map(|r| {
            let (url, token) = (server.url.clone(), token.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut latency = histogram();
                let mut read = 0u64;
                let mut page = r as u64 % pages;
                while Instant::now() < end {
                    // Page `page` from the newest: the messages before `before`.
                    let before = messages + 1 - page * 100;
                    let at = micros_now();
                    let res = http
                        .get(format!(
                            "{url}/api/history?conv={conv}&before={before}&limit=100"
                        ))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    if !res.status().is_success() {
                        bail!("history answered {}", res.status());
                    }
                    res.bytes().await?;
                    let _ = latency.record(micros_now().saturating_sub(at).max(1));
                    read += 1;
                    page = (page + 1) % pages;
                }
                anyhow::Ok((read, latency))
            })
        })
        .collect();
    let mut read = 0;
    let mut latency = histogram();
    for t in tasks {
        let (n, h) = t.await??;
        read += n;
        latency.add(&h).ok();
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    println!(
        "history messages={messages} readers={readers}: {read} pages of 100 in {wall:.1} s = {:.0} pages/s, \
         latency p50 {:.2} ms p99 {:.2} ms, server CPU {}",
        read as f64 / wall,
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        cpu.map_or("n/a".into(), |c| format!("{c:.2} s ({:.1} us per page)", c * 1e6 / read.max(1) as f64)),
    );
    Ok(())
}

async fn flood(cli: &Cli, senders: usize, rate: u64, sockets: usize, secs: u64) -> Result<()> {
    // The server's own per-user limits (frames, messages, sockets), not the load tool's.
    let server = Server::start_with(
        cli,
        None,
        &[
            ("MESSENGER_SEND_RATE", "20"),
            ("MESSENGER_FRAME_RATE", "100"),
            ("MESSENGER_MAX_SOCKETS_PER_USER", "20"),
        ],
    )
    .await?;
    let users = guests(&server.url, senders * 2 + 1).await?;
    let (flooder, pairs) = users.split_last().context("users")?;
    // Everyone is the flooder's contact, so each of its presence changes concerns them all.
    for u in pairs {
        post(
            &server.url,
            "/api/contacts",
            &flooder.token,
            json!({ "username": u.username }),
        )
        .await?;
    }
    let me: Value = reqwest::Client::new()
        .get(format!("{}/api/session", server.url))
        .bearer_auth(&flooder.token)
        .send()
        .await?
        .json()
        .await?;
    let flooder_id = me["user"]["id"].as_i64().context("flooder id")?;
    for u in pairs {
        post(
            &server.url,
            &format!("/api/contacts/{flooder_id}/accept"),
            &u.token,
            json!({}),
        )
        .await?;
    }
    let convs = dms_of_pairs(&server.url, pairs).await?;
    let tokens: Vec<String> = pairs.iter().map(|u| u.token.clone()).collect();
    // Every user is online (their contacts' presence goes somewhere); the first of each
    // pair sends.
    let mut socks = connect_all(&server.url, &tokens).await?;
    let mut senders_ws = Vec::new();
    for (i, ws) in socks.drain(..).enumerate() {
        if i % 2 == 0 {
            senders_ws.push(ws);
        } else {
            tokio::spawn(drain(ws));
        }
    }
    let mut results = Vec::new();
    for phase in ["quiet", "flood"] {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut flood_tasks = Vec::new();
        if phase == "flood" {
            let flooders = connect_all(&server.url, &vec![flooder.token.clone(); sockets]).await?;
            for (k, ws) in flooders.into_iter().enumerate() {
                let (stop, written) = (stop.clone(), written.clone());
                let conv = convs[k % convs.len()];
                flood_tasks.push(tokio::spawn(async move {
                    let statuses = ["busy", "away", "online", "be_right_back"];
                    let mut n = 0u64;
                    let (mut tx, mut rx) = ws.split();
                    let reader = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        let f = match n % 4 {
                            0 => json!({ "t": "set_status", "status": statuses[(n / 4) as usize % 4] }),
                            1 => json!({ "t": "typing", "conv": conv, "active": true }),
                            2 => json!({ "t": "read", "conv": conv, "seq": n }),
                            _ => json!({ "t": "shout", "n": n }),
                        };
                        if tx.send(Message::text(f.to_string())).await.is_err() {
                            break;
                        }
                        written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    reader.abort();
                }));
            }
        }
        let started = Instant::now();
        let tasks: Vec<_> = senders_ws
            .drain(..)
            .zip(convs.clone())
            .enumerate()
            .map(|(i, (mut ws, conv))| {
                tokio::spawn(async move {
                    let mut latency = histogram();
                    let mut sent_at = std::collections::VecDeque::new();
                    let every = Duration::from_micros(1_000_000 / rate.max(1));
                    let end = Instant::now() + Duration::from_secs(secs);
                    let mut tick = tokio::time::interval(every);
                    let mut n = 0u64;
                    loop {
                        tokio::select! {
                            _ = tick.tick(), if Instant::now() < end => {
                                n += 1;
                                let f = format!(r#"{{"t":"send","conv":{conv},"client_id":"{:010x}-f{i}-{n}","body":"steady {n}"}}"#, micros_now());
                                ws.send(Message::text(f)).await?;
                                sent_at.push_back(micros_now());
                            }
                            msg = ws.next() => match msg {
                                Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"t":"ack""#) => {
                                    if let Some(at) = sent_at.pop_front() {
                                        let _ = latency.record(micros_now().saturating_sub(at).max(1));
                                    }
                                }
                                Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"t":"error""#) => {
                                    bail!("a steady send was refused: {t}");
                                }
                                Some(Ok(_)) => {}
                                _ => bail!("socket closed"),
                            },
                        }
                        if Instant::now() >= end && sent_at.is_empty() {
                            break;
                        }
                    }
                    anyhow::Ok((ws, latency))
                })
            })
            .collect();
        let mut latency = histogram();
        for t in tasks {
            let (ws, h) = t.await??;
            senders_ws.push(ws);
            latency.add(&h)?;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let wall = started.elapsed().as_secs_f64();
        // A flooding socket may wait in a send the server is in no hurry to read: stop it.
        for t in flood_tasks {
            t.abort();
        }
        let flood_frames = written.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "flood {phase}: {senders} senders at {rate}/s, ack latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms; \
             the flooder wrote {flood_frames} frames over {sockets} sockets ({:.0}/s)",
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.99)),
            ms(latency.max()),
            flood_frames as f64 / wall,
        );
        results.push(latency.value_at_quantile(0.99));
    }
    if let [quiet, flooded] = results[..] {
        println!(
            "flood: p99 with the flood / without: {:.2}",
            flooded as f64 / quiet.max(1) as f64
        );
    }
    Ok(())
}

/// Reads a socket until it closes (a user who is online and does not measure anything).
async fn drain(mut ws: Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

async fn idle(cli: &Cli, conns: usize) -> Result<()> {
    let server = Server::start(cli, None).await?;
    // A user may have many sockets (tabs); 100 per guest keeps set-up short.
    let users = guests(&server.url, conns.div_ceil(100)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib();
    let tokens: Vec<String> = (0..conns).map(|i| users[i / 100].token.clone()).collect();
    let socks = connect_all(&server.url, &tokens).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib();
    match before.zip(after) {
        Some((b, a)) => println!(
            "idle: {conns} connections: server RSS {:.1} MiB -> {:.1} MiB = {:.2} KiB per connection",
            b as f64 / 1024.0,
            a as f64 / 1024.0,
            (a.saturating_sub(b)) as f64 / conns as f64
        ),
        None => println!("idle: {conns} connections held (no --pid: memory not measured)"),
    }
    drop(socks);
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    ALIGNED.store(cli.aligned, Ordering::Relaxed);
    epoch();
    SOURCES.store(cli.sources, Ordering::Relaxed);
    if let Some(kind) = cli.peer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        return rt.block_on(peer::run(kind, cli.scenario.clone()));
    }
    // Two worker threads: the server under test shares this machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.scenario.clone() {
            Scenario::Idle { conns } => idle(&cli, conns).await,
            Scenario::Fanout {
                members,
                senders,
                rate,
                secs,
                ramp,
            } => {
                let shape = Shape {
                    rooms: 1,
                    members,
                    senders,
                };
                group(&cli, shape, rate, secs, ramp).await
            }
            Scenario::Rooms {
                rooms,
                members,
                rate,
                secs,
                ramp,
            } => {
                let shape = Shape {
                    rooms,
                    members,
                    senders: members,
                };
                group(&cli, shape, rate, secs, ramp).await
            }
            Scenario::Durable {
                senders,
                inflight,
                secs,
            } => durable(&cli, senders, inflight, secs).await,
            Scenario::History {
                messages,
                readers,
                secs,
            } => history(&cli, messages, readers, secs).await,
            Scenario::Flood {
                senders,
                rate,
                sockets,
                secs,
            } => flood(&cli, senders, rate, sockets, secs).await,
            Scenario::Uploads { users, mb } => uploads(&cli, users, mb).await,
            Scenario::Day { day, ramp } => day::run(&cli, day, ramp).await,
        }
    })
}

/// The peer servers of benches/peers: the same fan-out and idle scenarios over their own
/// minimal protocols (a room per URL; every message goes to every member, sender included).
mod peer {
    use super::*;

    struct PeerServer {
        child: Child,
        port: u16,
    }

    impl PeerServer {
        async fn start(kind: Peer) -> Result<Self> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let dir = "benches/peers";
            let mut cmd = match kind {
                Peer::Ws => {
                    let mut c = Command::new("node");
                    c.arg(format!("{dir}/ws-server.mjs"));
                    c
                }
                Peer::Socketio => {
                    let mut c = Command::new("node");
                    c.arg(format!("{dir}/socketio-server.mjs"));
                    c
                }
                Peer::Bun => {
                    let mut c = Command::new(format!("{dir}/node_modules/.bin/bun"));
                    c.arg(format!("{dir}/bun-server.ts"));
                    c
                }
            };
            let child = cmd
                .env("PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting the peer (run `npm ci` in benches/peers)")?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                if Instant::now() > deadline {
                    bail!("the peer did not start");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Self { child, port })
        }

        fn server(&self) -> Server {
            Server {
                url: String::new(),
                nodes: String::new(),
                pids: vec![self.child.id()],
                child: None,
                _dir: None,
                database: None,
            }
        }
    }

    impl Drop for PeerServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn connect(kind: Peer, port: u16, room: usize) -> Result<Ws> {
        let url = match kind {
            Peer::Socketio => {
                format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&room=r{room}")
            }
            _ => format!("ws://127.0.0.1:{port}/?room=r{room}"),
        };
        let mut ws = open_ws(url.into_client_request()?).await?;
        if kind == Peer::Socketio {
            // Engine.IO open packet, then connect to the default namespace.
            ws.next().await.context("no open packet")??;
            ws.send(Message::text("40")).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str().starts_with("40") => break,
                    Some(Ok(_)) => continue,
                    other => bail!("socket.io connect failed: {other:?}"),
                }
            }
        }
        Ok(ws)
    }

    fn encode(kind: Peer, who: usize, n: u64) -> Message {
        let payload = format!("{who}:{n}:{:016}", micros_now());
        match kind {
            Peer::Socketio => Message::text(format!(r#"42["msg","{payload}"]"#)),
            _ => Message::text(payload),
        }
    }

    /// Per member: the last counter seen from each sender of its room, and the counts.
    struct Tracker {
        last: Vec<u64>,
        seen: Seen,
    }

    impl Tracker {
        fn new(last: Vec<u64>) -> Self {
            Self {
                last,
                seen: Seen::new(0),
            }
        }

        /// Handles one incoming text; returns a reply to send (socket.io's pong).
        fn on_text(&mut self, kind: Peer, text: &str) -> Option<&'static str> {
            let payload = match kind {
                Peer::Socketio if text == "2" => return Some("3"),
                Peer::Socketio => text.strip_prefix(r#"42["msg",""#)?.strip_suffix(r#""]"#)?,
                _ => text,
            };
            let mut parts = payload.split(':');
            let who: usize = parts.next()?.parse().ok()?;
            let n: u64 = parts.next()?.parse().ok()?;
            let sent: u64 = parts.next()?.parse().ok()?;
            let last = self.last.get_mut(who)?;
            if n <= *last {
                self.seen.duplicates += 1;
                return None;
            }
            if n != *last + 1 {
                self.seen.out_of_order += 1;
            }
            *last = n;
            self.seen.received += 1;
            self.seen.note_latency(sent);
            None
        }
    }

    /// What every member of one step shares.
    struct Step {
        kind: Peer,
        phase: tokio::sync::watch::Sender<u8>,
        /// Members that have seen STOPPING and will send nothing more.
        stopped: AtomicUsize,
        /// Per room: messages sent in this step (final once SETTLED).
        sent: Vec<AtomicI64>,
    }

    /// A member socket and, per sender of its room, the last counter it received; the
    /// counters go on across the steps of a ramp.
    struct PeerMember {
        ws: Ws,
        last: Vec<u64>,
    }

    /// One member for one step: sends at `rate` (0: receives only) until `stop`, and receives
    /// until it has everything its room's senders sent.
    async fn member(
        step: Arc<Step>,
        m: PeerMember,
        i: usize,
        room: usize,
        who: usize,
        rate: f64,
    ) -> Result<(PeerMember, Seen, u64)> {
        let PeerMember { mut ws, last } = m;
        let kind = step.kind;
        let first_n = last.get(who).copied().unwrap_or(0);
        let mut tracker = Tracker::new(last);
        let before: u64 = tracker.last.iter().sum();
        let sending = rate > 0.0;
        let period = tick_period(rate);
        let started = tokio::time::Instant::now() + phase(i, period);
        let mut tick = tokio::time::interval_at(started, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut sent = 0u64;
        let mut announced = false;
        let mut phase_rx = step.phase.subscribe();
        loop {
            let now = *phase_rx.borrow_and_update();
            let stopping = now >= STOPPING;
            if stopping && !announced {
                // Nothing more is sent after this point; the driver waits for every member.
                announced = true;
                step.stopped.fetch_add(1, Ordering::Relaxed);
            }
            let all_stopped = now >= SETTLED;
            let got = tracker.last.iter().sum::<u64>() - before;
            if all_stopped && got as i64 >= step.sent[room].load(Ordering::Relaxed) {
                break;
            }
            tokio::select! {
                _ = tick.tick(), if sending && !stopping => {
                    let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
                    while sent < due {
                        sent += 1;
                        step.sent[room].fetch_add(1, Ordering::Relaxed);
                        ws.feed(encode(kind, who, first_n + sent)).await?;
                    }
                    ws.flush().await?;
                }
                _ = phase_rx.changed(), if !all_stopped => {}
                // Built only when enabled (see member_step).
                _ = async { tokio::time::sleep(Duration::from_secs(5)).await }, if all_stopped => break,
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(reply) = tracker.on_text(kind, t.as_str()) {
                            ws.send(Message::text(reply)).await?;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => bail!("peer closed a socket"),
                },
            }
        }
        let Tracker { last, seen } = tracker;
        Ok((PeerMember { ws, last }, seen, sent))
    }

    pub async fn run(kind: Peer, scenario: Scenario) -> Result<()> {
        let peer = PeerServer::start(kind).await?;
        let server = peer.server();
        let (shape, rate, secs, ramp) = match scenario {
            Scenario::Idle { conns } => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let before = server.rss_kib();
                let socks = open_many(0..conns, |_| connect(kind, peer.port, 0)).await?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Some((b, a)) = before.zip(server.rss_kib()) {
                    println!(
                        "idle: {conns} connections: server RSS {:.1} MiB -> {:.1} MiB = {:.2} KiB per connection",
                        b as f64 / 1024.0,
                        a as f64 / 1024.0,
                        a.saturating_sub(b) as f64 / conns as f64
                    );
                }
                drop(socks);
                return Ok(());
            }
            Scenario::Durable { .. } | Scenario::History { .. } | Scenario::Uploads { .. } => {
                bail!("the peers store nothing: `durable`, `history` and `uploads` are Messenger only")
            }
            Scenario::Flood { .. } => bail!("`flood` tests Messenger's own limits"),
            Scenario::Day { .. } => {
                bail!("`day` needs contacts, presence and history: Messenger only")
            }
            Scenario::Fanout {
                members,
                senders,
                rate,
                secs,
                ramp,
            } => (
                Shape {
                    rooms: 1,
                    members,
                    senders,
                },
                rate,
                secs,
                ramp,
            ),
            Scenario::Rooms {
                rooms,
                members,
                rate,
                secs,
                ramp,
            } => (
                Shape {
                    rooms,
                    members,
                    senders: members,
                },
                rate,
                secs,
                ramp,
            ),
        };
        if shape.senders == 0 || shape.senders > shape.members || shape.rooms == 0 {
            bail!("need rooms >= 1 and 1 <= senders <= members");
        }
        let socks = open_many(0..shape.sockets(), |i| {
            connect(kind, peer.port, shape.room_of(i))
        })
        .await?;
        let mut members: Vec<PeerMember> = socks
            .into_iter()
            .map(|ws| PeerMember {
                ws,
                last: vec![0; shape.senders],
            })
            .collect();
        let mut ramp_state = Ramp {
            start: rate,
            best: None,
        };
        let mut r = rate;
        let mut warming = ramp;
        loop {
            let secs = if warming { WARMUP_SECS } else { secs };
            let step = Arc::new(Step {
                kind,
                phase: tokio::sync::watch::channel(RUNNING).0,
                stopped: AtomicUsize::new(0),
                sent: (0..shape.rooms).map(|_| AtomicI64::new(0)).collect(),
            });
            let per_sender = shape.per_sender(r);
            let cpu0 = server.cpu_seconds();
            let tasks: Vec<_> = members
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    let rate = if shape.sends(i) { per_sender } else { 0.0 };
                    tokio::spawn(member(
                        step.clone(),
                        m,
                        i,
                        shape.room_of(i),
                        shape.who(i),
                        rate,
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            step.phase.send_replace(STOPPING);
            // Once every member has stopped sending, what was sent is what members expect.
            let deadline = Instant::now() + Duration::from_secs(10);
            while step.stopped.load(Ordering::Relaxed) < shape.sockets() {
                if Instant::now() > deadline {
                    bail!("senders did not stop");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            step.phase.send_replace(SETTLED);
            let mut tally = Tally::new();
            let mut sent = 0;
            members = Vec::with_capacity(tasks.len());
            for (i, t) in tasks.into_iter().enumerate() {
                let (m, seen, n) = t.await??;
                let expected = step.sent[shape.room_of(i)].load(Ordering::Relaxed);
                tally.add(&seen, expected as u64);
                sent += n;
                members.push(m);
            }
            let cpu = server.cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
            let warmup = if warming {
                "warm-up (not counted) "
            } else {
                ""
            };
            tally.print(
                &format!("{warmup}peer {} rate={r}/s", shape.describe()),
                sent,
                secs,
                cpu,
            );
            if std::mem::take(&mut warming) {
                continue;
            }
            if !ramp {
                break;
            }
            match ramp_state.next(r, tally.p99_ms(), tally.bad()) {
                Some(next) => r = next,
                None => break,
            }
        }
        if ramp {
            ramp_state.report(shape.members);
        }
        Ok(())
    }
}
