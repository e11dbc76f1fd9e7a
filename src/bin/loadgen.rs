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
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    MaybeTlsStream, WebSocketStream,
};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Parser)]
#[command(about = "Load generator for Messenger")]
struct Cli {
    /// Server binary to start, with a fresh temp database, for each run.
    #[arg(long, default_value = "target/release/messenger")]
    server_bin: PathBuf,
    /// Use an already running server instead (CPU and memory need --pid).
    #[arg(long)]
    url: Option<String>,
    /// Process id of the running server given with --url.
    #[arg(long)]
    pid: Option<u32>,
    /// Run against one of the peer chat servers in benches/peers instead of Messenger
    /// (`idle` and `fanout` only; they store nothing and have no acknowledgements).
    #[arg(long, value_enum)]
    peer: Option<Peer>,
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
    /// One conversation with M members; S of them send R messages/s in total.
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
    pid: Option<u32>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    async fn start(cli: &Cli) -> Result<Self> {
        if let Some(url) = &cli.url {
            return Ok(Self {
                url: url.trim_end_matches('/').to_owned(),
                pid: cli.pid,
                child: None,
                _dir: None,
            });
        }
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&cli.server_bin)
            .env("MESSENGER_ADDR", format!("127.0.0.1:{port}"))
            .env("MESSENGER_DATABASE", dir.path().join("bench.db"))
            .env("MESSENGER_SEND_RATE", "1000000")
            .env("RUST_LOG", "warn")
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
            url,
            pid: Some(child.id()),
            child: Some(child),
            _dir: Some(dir),
        })
    }

    /// User plus system CPU seconds the server has used so far.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per s).
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
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

async fn connect(url: &str, token: &str) -> Result<Ws> {
    let mut req = format!("{}/ws", url.replacen("http", "ws", 1)).into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    // The hello.
    match ws.next().await {
        Some(Ok(Message::Text(_))) => Ok(ws),
        other => bail!("no hello: {other:?}"),
    }
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

async fn connect_all(url: &str, tokens: &[String]) -> Result<Vec<Ws>> {
    open_many(tokens.iter(), |t| connect(url, t)).await
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

/// The integer after `"key":` in a frame, without a JSON parse (the tool must be cheap).
fn field_i64(text: &str, key: &str) -> Option<i64> {
    let at = text.find(key)? + key.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// What one receiving socket saw.
struct Seen {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    highest: i64,
    latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Sends at `rate` messages/s until `stop`; returns how many were acknowledged and the
/// highest sequence number acknowledged.
async fn send_at(
    mut ws: Ws,
    conv: i64,
    who: String,
    rate: f64,
    stop: Arc<AtomicBool>,
    acked_seq: Arc<AtomicI64>,
) -> Result<(u64, Ws)> {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let due = (started.elapsed().as_secs_f64() * rate) as u64;
                while sent < due {
                    sent += 1;
                    let frame = format!(
                        r#"{{"t":"send","conv":{conv},"client_id":"w{who}-{sent}","body":"{:016}"}}"#,
                        micros_now()
                    );
                    ws.feed(Message::text(frame)).await?;
                }
                ws.flush().await?;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"t":"ack""#) => {
                    acked += 1;
                    if let Some(seq) = field_i64(t.as_str(), r#""seq":"#) {
                        acked_seq.fetch_max(seq, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                _ => bail!("sender socket closed"),
            }
        }
    }
    // Collect the acks still on their way.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked < sent && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with(r#"{"t":"ack""#) => {
                acked += 1;
                if let Some(seq) = field_i64(t.as_str(), r#""seq":"#) {
                    acked_seq.fetch_max(seq, Ordering::Relaxed);
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    if acked < sent {
        bail!("{} sends were never acknowledged", sent - acked);
    }
    Ok((acked, ws))
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

struct StepResult {
    rate: u64,
    p99_ms: f64,
    lost: u64,
}

async fn fanout_step(
    server: &Server,
    members: usize,
    senders: usize,
    rate: u64,
    secs: u64,
    socks: (Vec<Ws>, Vec<Ws>),
) -> Result<(StepResult, (Vec<Ws>, Vec<Ws>))> {
    let (receivers, sender_socks) = socks;
    let conv = 1;
    let stop = Arc::new(AtomicBool::new(false));
    let target = Arc::new(AtomicI64::new(i64::MAX));
    let acked_seq = Arc::new(AtomicI64::new(0));
    let base = BASE_SEQ.load(Ordering::Relaxed);
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    let recv_tasks: Vec<_> = receivers
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, stop.clone(), target.clone(), base)))
        .collect();
    let step = STEP.fetch_add(1, Ordering::Relaxed);
    let per_sender = rate as f64 / senders as f64;
    let send_tasks: Vec<_> = sender_socks
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            tokio::spawn(send_at(
                ws,
                conv,
                format!("{step}x{i}"),
                per_sender,
                stop.clone(),
                acked_seq.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    let mut sender_socks = Vec::new();
    for t in send_tasks {
        let (n, ws) = t.await??;
        acked += n;
        sender_socks.push(ws);
    }
    target.store(acked_seq.load(Ordering::Relaxed), Ordering::Relaxed);
    let mut latency = histogram();
    let (mut received, mut dups, mut ooo, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut receivers = Vec::new();
    for t in recv_tasks {
        let (seen, ws) = t.await?;
        received += seen.received;
        dups += seen.duplicates;
        ooo += seen.out_of_order;
        lost += (acked as i64 - seen.received as i64).max(0) as u64;
        latency.add(&seen.latency).ok();
        receivers.push(ws);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    BASE_SEQ.store(acked_seq.load(Ordering::Relaxed), Ordering::Relaxed);
    println!(
        "fanout members={members} senders={senders} rate={rate}/s: sent+acked {acked}, deliveries {received} ({:.0}/s), \
         latency p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms max {:.1} ms, lost {lost}, duplicated {dups}, out of order {ooo}, \
         server CPU {} ({} deliveries per CPU-second)",
        received as f64 / secs as f64,
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.9)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max()),
        cpu.map_or("n/a".into(), |c| format!("{c:.2} s over {wall:.1} s")),
        cpu.map_or("n/a".into(), |c| format!("{:.0}", received as f64 / c.max(0.01))),
    );
    Ok((
        StepResult {
            rate,
            p99_ms: ms(latency.value_at_quantile(0.99)),
            lost: lost + dups,
        },
        (receivers, sender_socks),
    ))
}

/// Sequence numbers continue across ramp steps: the last one acknowledged so far.
static BASE_SEQ: AtomicI64 = AtomicI64::new(0);
/// Ramp steps so far; part of every client id, so no step resends an earlier step's ids.
static STEP: AtomicI64 = AtomicI64::new(0);

/// Counts the messages one socket receives after sequence number `base`, until told to stop
/// and everything up to `target` has arrived (or nothing came for 5 s); returns the socket.
async fn receive(
    mut ws: Ws,
    stop: Arc<AtomicBool>,
    target: Arc<AtomicI64>,
    base: i64,
) -> (Seen, Ws) {
    let mut seen = Seen {
        received: 0,
        duplicates: 0,
        out_of_order: 0,
        highest: base,
        latency: histogram(),
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && seen.highest >= target.load(Ordering::Relaxed) {
            break;
        }
        let wait = Duration::from_millis(if stopping { 5000 } else { 200 });
        let msg = match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            Ok(_) => break,
            Err(_) if stopping => break,
            Err(_) => continue,
        };
        let text = msg.as_str();
        if !text.starts_with(r#"{"t":"msg""#) {
            continue;
        }
        let (Some(seq), Some(sent)) =
            (field_i64(text, r#""seq":"#), field_i64(text, r#""body":""#))
        else {
            continue;
        };
        if seq <= seen.highest {
            seen.duplicates += 1;
            continue;
        }
        if seq != seen.highest + 1 {
            seen.out_of_order += 1;
        }
        seen.highest = seq;
        seen.received += 1;
        let _ = seen
            .latency
            .record(micros_now().saturating_sub(sent as u64).max(1));
    }
    (seen, ws)
}

async fn fanout(
    cli: &Cli,
    members: usize,
    senders: usize,
    rate: u64,
    secs: u64,
    ramp: bool,
) -> Result<()> {
    if senders == 0 || senders > members {
        bail!("need 1 <= senders <= members");
    }
    let server = Server::start(cli).await?;
    let users = guests(&server.url, members).await?;
    let lobby = 1;
    let join_path = format!("/api/rooms/{lobby}/join");
    let joined: Vec<Result<Value>> = stream::iter(users.iter())
        .map(|u| post(&server.url, &join_path, &u.token, json!({})))
        .buffer_unordered(32)
        .collect()
        .await;
    joined.into_iter().collect::<Result<Vec<_>>>()?;
    // Senders get a socket of their own besides their receiving one, as a second tab would.
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
    let mut receivers = connect_all(&server.url, &tokens).await?;
    for ws in receivers.iter_mut() {
        sync(ws, lobby).await?;
    }
    let sender_socks = connect_all(&server.url, &tokens[..senders]).await?;
    if let Some(rss) = server.rss_kib() {
        eprintln!(
            "  server RSS with {} sockets: {:.1} MiB",
            members + senders,
            rss as f64 / 1024.0
        );
    }
    let mut socks = (receivers, sender_socks);
    if !ramp {
        fanout_step(&server, members, senders, rate, secs, socks).await?;
        return Ok(());
    }
    let mut best = None;
    let mut r = rate;
    loop {
        let (step, back) = fanout_step(&server, members, senders, r, secs, socks).await?;
        socks = back;
        if step.p99_ms > 100.0 || step.lost > 0 {
            println!(
                "ramp: p99 {:.1} ms, lost or duplicated {} at {r}/s: stop",
                step.p99_ms, step.lost
            );
            break;
        }
        best = Some(step.rate);
        r = r * 3 / 2;
    }
    match best {
        Some(b) => println!(
            "ramp result: highest rate with p99 < 100 ms: {b} messages/s = {} deliveries/s to {members} members",
            b * members as u64
        ),
        None => println!("ramp result: even {rate}/s was over the limit"),
    }
    Ok(())
}

async fn durable(cli: &Cli, senders: usize, inflight: usize, secs: u64) -> Result<()> {
    let server = Server::start(cli).await?;
    let users = guests(&server.url, senders * 2).await?;
    let mut convs = Vec::new();
    for pair in users.chunks(2) {
        let v = post(
            &server.url,
            "/api/dm",
            &pair[0].token,
            json!({ "username": pair[1].username }),
        )
        .await?;
        convs.push(v["id"].as_i64().context("conversation id")?);
    }
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
                        let f = format!(r#"{{"t":"send","conv":{conv},"client_id":"d{i}-{n}","body":"durable {n}"}}"#);
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

async fn idle(cli: &Cli, conns: usize) -> Result<()> {
    let server = Server::start(cli).await?;
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
    epoch();
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
            } => fanout(&cli, members, senders, rate, secs, ramp).await,
            Scenario::Durable {
                senders,
                inflight,
                secs,
            } => durable(&cli, senders, inflight, secs).await,
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
                pid: Some(self.child.id()),
                child: None,
                _dir: None,
            }
        }
    }

    impl Drop for PeerServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn connect(kind: Peer, port: u16) -> Result<Ws> {
        let url = match kind {
            Peer::Socketio => {
                format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&room=lobby")
            }
            _ => format!("ws://127.0.0.1:{port}/?room=lobby"),
        };
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
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

    async fn connect_all(kind: Peer, port: u16, n: usize) -> Result<Vec<Ws>> {
        open_many(0..n, |_| connect(kind, port)).await
    }

    fn encode(kind: Peer, who: usize, n: u64) -> Message {
        let payload = format!("{who}:{n}:{:016}", micros_now());
        match kind {
            Peer::Socketio => Message::text(format!(r#"42["msg","{payload}"]"#)),
            _ => Message::text(payload),
        }
    }

    /// Per member: the last counter seen from each sender, and the counts.
    struct Tracker {
        last: Vec<u64>,
        seen: Seen,
    }

    impl Tracker {
        fn new(senders: usize) -> Self {
            Self {
                last: vec![0; senders],
                seen: Seen {
                    received: 0,
                    duplicates: 0,
                    out_of_order: 0,
                    highest: 0,
                    latency: histogram(),
                },
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
            let _ = self
                .seen
                .latency
                .record(micros_now().saturating_sub(sent).max(1));
            None
        }
    }

    /// What every member of one fan-out step shares.
    #[derive(Clone)]
    struct Step {
        kind: Peer,
        senders: usize,
        /// Messages per second for each sender.
        rate: f64,
        stop: Arc<AtomicBool>,
        /// Messages every member must receive before it stops (set when sending stops).
        expected: Arc<AtomicI64>,
        sent_total: Arc<AtomicI64>,
        /// Senders that have seen `stop` and will send nothing more.
        senders_stopped: Arc<AtomicI64>,
        /// Counters of this step start after this value.
        first_n: u64,
    }

    /// A member socket; the first `senders` also send at `rate` each until `stop`.
    async fn member(step: Step, mut ws: Ws, who: usize) -> Result<(u64, Tracker, Ws)> {
        let Step {
            kind,
            senders,
            rate,
            stop,
            expected,
            sent_total,
            senders_stopped,
            first_n,
        } = step;
        let mut tracker = Tracker::new(senders);
        tracker.last.iter_mut().for_each(|l| *l = first_n);
        let sending = who < senders;
        let started = Instant::now();
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut announced = false;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping && sending && !announced {
                // Nothing more is sent after this point; the driver waits for every sender.
                announced = true;
                senders_stopped.fetch_add(1, Ordering::Relaxed);
            }
            if stopping && tracker.seen.received as i64 >= expected.load(Ordering::Relaxed) {
                break;
            }
            tokio::select! {
                _ = tick.tick(), if sending && !stopping => {
                    let due = (started.elapsed().as_secs_f64() * rate) as u64;
                    while sent < due {
                        sent += 1;
                        sent_total.fetch_add(1, Ordering::Relaxed);
                        ws.feed(encode(kind, who, first_n + sent)).await?;
                    }
                    ws.flush().await?;
                }
                msg = tokio::time::timeout(Duration::from_secs(5), ws.next()) => match msg {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        if let Some(reply) = tracker.on_text(kind, t.as_str()) {
                            ws.send(Message::text(reply)).await?;
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(_) => bail!("peer closed a socket"),
                    Err(_) if stopping => break,
                    Err(_) => {}
                },
            }
        }
        Ok((sent, tracker, ws))
    }

    pub async fn run(kind: Peer, scenario: Scenario) -> Result<()> {
        let peer = PeerServer::start(kind).await?;
        let server = peer.server();
        match scenario {
            Scenario::Idle { conns } => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let before = server.rss_kib();
                let socks = connect_all(kind, peer.port, conns).await?;
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
            }
            Scenario::Fanout {
                members,
                senders,
                rate,
                secs,
                ramp,
            } => {
                let mut socks = connect_all(kind, peer.port, members).await?;
                let mut r = rate;
                let mut best = None;
                let mut first_n = 0u64;
                loop {
                    let stop = Arc::new(AtomicBool::new(false));
                    let expected = Arc::new(AtomicI64::new(i64::MAX));
                    let sent_total = Arc::new(AtomicI64::new(0));
                    let senders_stopped = Arc::new(AtomicI64::new(0));
                    let step = Step {
                        kind,
                        senders,
                        rate: r as f64 / senders as f64,
                        stop: stop.clone(),
                        expected: expected.clone(),
                        sent_total: sent_total.clone(),
                        senders_stopped: senders_stopped.clone(),
                        first_n,
                    };
                    let cpu0 = server.cpu_seconds();
                    let tasks: Vec<_> = socks
                        .into_iter()
                        .enumerate()
                        .map(|(i, ws)| tokio::spawn(member(step.clone(), ws, i)))
                        .collect();
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    stop.store(true, Ordering::Relaxed);
                    // Once every sender has stopped, what they sent is what every member expects.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while senders_stopped.load(Ordering::Relaxed) < senders as i64 {
                        if Instant::now() > deadline {
                            bail!("senders did not stop");
                        }
                        tokio::task::yield_now().await;
                    }
                    let total_sent = sent_total.load(Ordering::Relaxed) as u64;
                    expected.store(total_sent as i64, Ordering::Relaxed);
                    let mut done = Vec::new();
                    let mut max_sent = 0u64;
                    for t in tasks {
                        let (sent, tr, ws) = t.await??;
                        max_sent = max_sent.max(sent);
                        done.push((tr, ws));
                    }
                    let cpu = server.cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
                    let mut latency = histogram();
                    let (mut received, mut dups, mut ooo, mut lost) = (0u64, 0u64, 0u64, 0u64);
                    socks = Vec::new();
                    for (tr, ws) in done {
                        received += tr.seen.received;
                        dups += tr.seen.duplicates;
                        ooo += tr.seen.out_of_order;
                        lost += total_sent.saturating_sub(tr.seen.received);
                        latency.add(&tr.seen.latency).ok();
                        socks.push(ws);
                    }
                    let p99 = ms(latency.value_at_quantile(0.99));
                    println!(
                        "peer fanout members={members} senders={senders} rate={r}/s: sent {total_sent}, deliveries {received} ({:.0}/s), \
                         latency p50 {:.1} ms p90 {:.1} ms p99 {p99:.1} ms max {:.1} ms, lost {lost}, duplicated {dups}, out of order {ooo}, \
                         server CPU {} ({} deliveries per CPU-second)",
                        received as f64 / secs as f64,
                        ms(latency.value_at_quantile(0.5)),
                        ms(latency.value_at_quantile(0.9)),
                        ms(latency.max()),
                        cpu.map_or("n/a".into(), |c| format!("{c:.2} s")),
                        cpu.map_or("n/a".into(), |c| format!("{:.0}", received as f64 / c.max(0.01))),
                    );
                    first_n += max_sent;
                    if !ramp {
                        break;
                    }
                    if p99 > 100.0 || lost > 0 {
                        println!("ramp: p99 {p99:.1} ms, lost {lost} at {r}/s: stop");
                        break;
                    }
                    best = Some(r);
                    r = r * 3 / 2;
                }
                if ramp {
                    match best {
                        Some(b) => println!(
                            "ramp result: highest rate with p99 < 100 ms: {b} messages/s = {} deliveries/s to {members} members",
                            b * members as u64
                        ),
                        None => println!("ramp result: even {rate}/s was over the limit"),
                    }
                }
            }
            Scenario::Durable { .. } => {
                bail!("the peers store nothing: `durable` is Messenger only")
            }
        }
        Ok(())
    }
}
