//! `day`: a day of Messenger, compressed into a minute. No peer server can run it: it needs
//! contacts, presence, one-to-one and group conversations, rooms and resync.
//!
//! N users, each online on one socket and a contact of the 20 users nearest to them on a
//! ring (10 each side), so every presence change concerns about 20 people. Each user has
//! one-to-one conversations with their four nearest contacts; one user in 50 starts a group
//! with their next five; one user in 10 sits in one of N/1000 rooms (~100 members each). Then
//! every user, independently and at random (exponential gaps, at least a second apart):
//!
//! - writes a message every 30 s on average, to one of their conversations, after showing
//!   "typing" for one to three seconds;
//! - changes their status every 5 minutes on average (online, busy, away, be right back);
//! - edits their personal message every 10 minutes on average (over HTTP, as the page does);
//! - signs out and back in every 10 minutes on average: the socket closes, the user stays
//!   away two to eight seconds, comes back to a new `hello` and syncs every conversation
//!   from the last sequence number it saw (the messages it missed come from the store).
//!
//! Measured: the latency of every live delivery (send to receipt, from the time in the
//! body), of presence (a personal message edit to the moment each online contact sees it;
//! the edit carries its time), and of acknowledgements; losses, duplicates and gaps per
//! conversation (every member's last sequence number must reach the last acknowledged one);
//! the server's CPU per 1,000 active users per minute and its resident memory per user.
//! `--ramp` runs it again with 1.5x the users on a fresh server until a p99 passes 100 ms, a
//! message is lost or the next step would pass the descriptor limit.

use super::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{HashMap, VecDeque};

/// What one run of the day looks like.
#[derive(Clone, Copy, clap::Args)]
pub struct Day {
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Contacts per user (half on each side of them on a ring of users).
    #[arg(long, default_value_t = 20)]
    pub contacts: usize,
    /// Seconds of activity measured.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Mean seconds between one user's messages.
    #[arg(long, default_value_t = 30.0)]
    pub message_every: f64,
    /// Mean seconds between one user's status changes.
    #[arg(long, default_value_t = 300.0)]
    pub status_every: f64,
    /// Mean seconds between one user's personal message edits.
    #[arg(long, default_value_t = 600.0)]
    pub psm_every: f64,
    /// Mean seconds between one user's sign-outs (each followed by a sign-in and resync).
    #[arg(long, default_value_t = 600.0)]
    pub reconnect_every: f64,
}

/// One-to-one partners on each side of a user on the ring.
const DM_REACH: usize = 2;
/// One user in this many starts a group with the next [`GROUP_SIZE`] - 1.
const GROUP_EVERY: usize = 50;
const GROUP_SIZE: usize = 6;
/// One user in this many joins a room; one room per this many users.
const ROOM_EVERY: usize = 10;
const USERS_PER_ROOM: usize = 1000;
/// The least time between two actions of one user (a person does not change their status
/// twice a second; presence is coalesced to one frame a second per user anyway).
const MIN_GAP: Duration = Duration::from_millis(1100);
/// How long members wait, once everyone has stopped, for the last acknowledged messages.
const SETTLE: Duration = Duration::from_secs(15);

/// A conversation a user is in.
#[derive(Clone, Copy)]
struct ConvRef {
    /// Its place in [`Shared::acked`].
    slot: usize,
    id: i64,
    /// How often the user writes here, relative to their other conversations.
    weight: f64,
}

/// A user's part in the day.
struct Plan {
    idx: usize,
    id: i64,
    token: String,
    convs: Vec<ConvRef>,
}

/// What every user's task shares.
struct Shared {
    url: String,
    /// Per conversation: the highest sequence number acknowledged so far.
    acked: Vec<AtomicI64>,
    /// Per user (by place): the time in their latest personal message (0: none yet).
    psm_stamp: Vec<std::sync::atomic::AtomicU64>,
    /// User id to place.
    place: HashMap<i64, usize>,
    phase: tokio::sync::watch::Sender<u8>,
    settled: AtomicUsize,
    /// Told when `settled` reaches the number of users.
    all_settled: tokio::sync::Notify,
    day: Day,
    /// When the day started, on the tool's clock (microseconds).
    start_us: std::sync::atomic::AtomicU64,
    /// When a presence frame last arrived anywhere (how the sign-in storm is seen to end).
    last_presence_us: std::sync::atomic::AtomicU64,
    /// One HTTP client for all (each makes its own TLS set-up: milliseconds per user).
    http: reqwest::Client,
    /// The day begins: users start acting.
    go: tokio::sync::watch::Sender<bool>,
}

/// What one user saw.
#[derive(Default)]
struct Outcome {
    sent: u64,
    received: u64,
    replayed: u64,
    duplicates: u64,
    gaps: u64,
    lost: u64,
    errors: u64,
    resyncs: u64,
    reconnects: u64,
    statuses: u64,
    psm_edits: u64,
    typing: u64,
    /// Latencies as (second of the day it was seen, microseconds).
    delivery: Vec<(u16, u32)>,
    presence: Vec<(u16, u32)>,
    ack: Vec<(u16, u32)>,
    /// How long each personal message edit's HTTP request took (the store write in it).
    edit: Vec<(u16, u32)>,
}

/// A latency from `since` (microseconds on the tool's clock) to now, with the second of the
/// day it ends in.
fn sample(shared: &Shared, since: u64) -> (u16, u32) {
    let now = micros_now();
    let second = now.saturating_sub(shared.start_us.load(Ordering::Relaxed)) / 1_000_000;
    (
        u16::try_from(second).unwrap_or(u16::MAX),
        u32::try_from(now.saturating_sub(since).max(1)).unwrap_or(u32::MAX),
    )
}

/// What one run measured, for the ramp.
struct Measured {
    delivery_p99_ms: f64,
    presence_p99_ms: f64,
    bad: u64,
}

pub async fn run(cli: &Cli, day: Day, ramp: bool) -> Result<()> {
    let limit = descriptor_limit();
    let mut users = day.users;
    let mut best: Option<usize> = None;
    loop {
        let m = run_once(cli, Day { users, ..day }).await?;
        if !ramp {
            return Ok(());
        }
        if m.delivery_p99_ms > 100.0 || m.presence_p99_ms > 100.0 || m.bad > 0 {
            println!(
                "day ramp: {users} users: delivery p99 {:.1} ms, presence p99 {:.1} ms, \
                 {} lost, duplicated, out of order or refused: stop",
                m.delivery_p99_ms, m.presence_p99_ms, m.bad
            );
            break;
        }
        best = Some(users);
        let next = users * 3 / 2;
        // The server and this tool each hold one descriptor per user, and a reserve.
        if next + 1000 > limit {
            let last = limit.saturating_sub(1000);
            if users < last {
                users = last;
                continue;
            }
            println!(
                "day ramp: the next step ({next} users) would pass the descriptor limit ({limit}): stop"
            );
            break;
        }
        users = next;
    }
    match best {
        Some(n) => println!("day ramp result: the most users with p99 < 100 ms: {n}"),
        None => println!(
            "day ramp result: even {} users were over the limit",
            day.users
        ),
    }
    Ok(())
}

/// The soft limit on open descriptors of this process (the server raises its own to the
/// hard limit; this tool has as many sockets as the server).
fn descriptor_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// Runs `jobs` with `width` in flight and fails on the first error.
async fn all<F>(what: &str, width: usize, jobs: Vec<F>) -> Result<Vec<Value>>
where
    F: std::future::Future<Output = Result<Value>>,
{
    let started = Instant::now();
    let n = jobs.len();
    let out: Vec<Result<Value>> = stream::iter(jobs).buffered(width).collect().await;
    let out = out.into_iter().collect::<Result<Vec<_>>>()?;
    eprintln!("  {n} {what} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(out)
}

async fn run_once(cli: &Cli, day: Day) -> Result<Measured> {
    let n = day.users;
    let reach = (day.contacts / 2).max(DM_REACH.max(GROUP_SIZE - 1));
    if n < 2 * reach + 1 {
        bail!(
            "day needs at least {} users for {} contacts each",
            2 * reach + 1,
            2 * reach
        );
    }
    let rooms = n.div_ceil(USERS_PER_ROOM);
    let server = Server::start(cli, Some(rooms)).await?;
    let url = server.url.clone();
    let guests = guests(&url, n).await?;

    // Contacts: each user asks the `reach` users after them on the ring, who accept.
    let requests: Vec<_> = (0..n)
        .flat_map(|i| (1..=reach).map(move |d| (i, (i + d) % n)))
        .collect();
    match &server.database {
        // 100,000 requests and as many acceptances over HTTP take a quarter of an hour here
        // (each is its own fsynced transaction, and goes through the presence publisher):
        // for a server this tool started, nobody is online yet, and the rows are the ones an
        // accepted request leaves, so they are written straight into its database.
        Some(database) => {
            let started = Instant::now();
            let ids: Vec<(i64, i64)> = requests
                .iter()
                .map(|&(i, j)| (guests[i].id, guests[j].id))
                .collect();
            let database = database.clone();
            tokio::task::spawn_blocking(move || seed_contacts(&database, &ids)).await??;
            eprintln!(
                "  {} contacts written in {:.1} s",
                requests.len(),
                started.elapsed().as_secs_f64()
            );
        }
        None => {
            let asks =
                requests
                    .iter()
                    .map(|&(i, j)| {
                        let (url, token, name) = (&url, &guests[i].token, &guests[j].username);
                        async move {
                            post(url, "/api/contacts", token, json!({ "username": name })).await
                        }
                    })
                    .collect();
            all("contact requests", 64, asks).await?;
            let accepts = requests
                .iter()
                .map(|&(i, j)| {
                    let (url, token) = (&url, &guests[j].token);
                    let path = format!("/api/contacts/{}/accept", guests[i].id);
                    async move { post(url, &path, token, json!({})).await }
                })
                .collect();
            all("acceptances", 64, accepts).await?;
        }
    }

    // Conversations, each with a slot for its acknowledged sequence number.
    let mut convs: Vec<Vec<ConvRef>> = vec![Vec::new(); n];
    let mut slots = 0usize;
    let mut add = |members: &[usize], id: i64, weight: f64, convs: &mut Vec<Vec<ConvRef>>| {
        for &m in members {
            convs[m].push(ConvRef {
                slot: slots,
                id,
                weight,
            });
        }
        slots += 1;
    };
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (1..=DM_REACH).map(move |d| (i, (i + d) % n)))
        .collect();
    let started = Instant::now();
    let asking: Vec<(&Guest, &Guest)> = pairs
        .iter()
        .map(|&(i, j)| (&guests[i], &guests[j]))
        .collect();
    let dms = dms(&url, &asking).await?;
    eprintln!(
        "  {} one-to-one conversations in {:.1} s",
        dms.len(),
        started.elapsed().as_secs_f64()
    );
    for (&(i, j), &id) in pairs.iter().zip(&dms) {
        add(&[i, j], id, 1.0, &mut convs);
    }
    let starters: Vec<usize> = (0..n).step_by(GROUP_EVERY).collect();
    let groups = starters
        .iter()
        .map(|&i| {
            let members: Vec<i64> = (1..GROUP_SIZE).map(|d| guests[(i + d) % n].id).collect();
            let (url, token) = (&url, &guests[i].token);
            async move {
                post(
                    url,
                    "/api/conversations",
                    token,
                    json!({ "members": members }),
                )
                .await
            }
        })
        .collect();
    let groups = all("group conversations", 16, groups).await?;
    for (&i, v) in starters.iter().zip(&groups) {
        let id = v["id"].as_i64().context("group id")?;
        let members: Vec<usize> = (0..GROUP_SIZE).map(|d| (i + d) % n).collect();
        add(&members, id, 2.0, &mut convs);
    }
    let shape = Shape {
        rooms,
        members: 1,
        senders: 1,
    };
    let room_ids = rooms_for(&server, shape, &guests[0].token).await?;
    let sitters: Vec<usize> = (0..n).step_by(ROOM_EVERY).collect();
    let joins = sitters
        .iter()
        .map(|&i| {
            let path = format!("/api/rooms/{}/join", room_ids[(i / ROOM_EVERY) % rooms]);
            let (url, token) = (&url, &guests[i].token);
            async move { post(url, &path, token, json!({})).await }
        })
        .collect();
    all("room joins", 32, joins).await?;
    for (r, &id) in room_ids.iter().enumerate() {
        let members: Vec<usize> = sitters
            .iter()
            .copied()
            .filter(|&i| (i / ROOM_EVERY) % rooms == r)
            .collect();
        add(&members, id, 0.5, &mut convs);
    }

    // Everyone comes online and syncs.
    let before = server.rss_kib();
    let tokens: Vec<String> = guests.iter().map(|g| g.token.clone()).collect();
    let storm_cpu0 = server.cpu_seconds();
    let storm_us = micros_now();
    STORM_PRESENCE_US.store(0, Ordering::Relaxed);
    let socks = connect_all(&url, &tokens).await?;
    let started = Instant::now();
    let synced: Vec<Result<(Ws, Vec<i64>)>> = stream::iter(socks.into_iter().zip(&convs))
        .map(|(mut ws, mine)| async move {
            let highest = sync_from(&mut ws, mine, &vec![0; mine.len()]).await?;
            Ok((ws, highest))
        })
        .buffered(64)
        .collect()
        .await;
    let socks = synced.into_iter().collect::<Result<Vec<_>>>()?;
    eprintln!(
        "  {} users synced {} conversations in {:.1} s",
        n,
        convs.iter().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    let online = server.rss_kib();
    let online_secs = micros_now().saturating_sub(storm_us) as f64 / 1e6;

    let (phase, _) = tokio::sync::watch::channel(RUNNING);
    let shared = Arc::new(Shared {
        url: url.clone(),
        acked: (0..slots).map(|_| AtomicI64::new(0)).collect(),
        psm_stamp: (0..n)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
        place: guests.iter().enumerate().map(|(i, g)| (g.id, i)).collect(),
        phase,
        settled: AtomicUsize::new(0),
        all_settled: tokio::sync::Notify::new(),
        day,
        start_us: std::sync::atomic::AtomicU64::new(0),
        last_presence_us: std::sync::atomic::AtomicU64::new(
            STORM_PRESENCE_US.load(Ordering::Relaxed).max(storm_us),
        ),
        go: tokio::sync::watch::channel(false).0,
        http: reqwest::Client::new(),
    });
    let tasks: Vec<_> = socks
        .into_iter()
        .zip(convs)
        .zip(guests)
        .enumerate()
        .map(|(idx, (((ws, highest), convs), g))| {
            let plan = Plan {
                idx,
                id: g.id,
                token: g.token,
                convs,
            };
            tokio::spawn(user(plan, ws, highest, shared.clone()))
        })
        .collect();
    // The sign-in storm: everyone came online within seconds, and each user's presence goes
    // to their contacts. The day starts once no presence frame has arrived for two seconds.
    // (Waits until two seconds after the last frame seen, again while frames come, at most
    // two minutes from the first socket.)
    let quiet_from = |last: u64| (last + 2_000_000).min(storm_us + 120_000_000);
    loop {
        let until = quiet_from(shared.last_presence_us.load(Ordering::Relaxed));
        let now = micros_now();
        if now >= until {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_micros(until - now))
            .await;
    }
    let storm_cpu = storm_cpu0.zip(server.cpu_seconds()).map(|(a, b)| b - a);
    println!(
        "day: sign-in storm: {n} users came online (sockets, hello, sync) in {:.1} s; the last presence frame \
         arrived {:.1} s after the first socket opened; server CPU {}",
        online_secs,
        shared
            .last_presence_us
            .load(Ordering::Relaxed)
            .saturating_sub(storm_us) as f64
            / 1e6,
        storm_cpu.map_or("n/a".into(), |c| format!("{c:.2} s")),
    );
    shared.start_us.store(micros_now(), Ordering::Relaxed);
    let cpu0 = server.cpu_seconds();
    let t0 = Instant::now();
    shared.go.send_replace(true);
    tokio::time::sleep(Duration::from_secs(day.secs)).await;
    let cpu = cpu0.zip(server.cpu_seconds()).map(|(a, b)| b - a);
    let active_secs = t0.elapsed().as_secs_f64();
    let peak = server.rss_kib();
    shared.phase.send_replace(STOPPING);
    // Every user has stopped and holds an ack for everything they sent (or SETTLE passed):
    // the acknowledged sequence numbers are final.
    let _ = tokio::time::timeout(SETTLE, shared.all_settled.notified()).await;
    shared.phase.send_replace(SETTLED);
    let mut all_out = Outcome::default();
    let mut failed = 0u64;
    for t in tasks {
        match t.await? {
            Ok(o) => merge(&mut all_out, o),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("  a user failed: {e:#}");
                }
            }
        }
    }
    let o = all_out;
    let (mut delivery, mut presence, mut ack, mut edit) =
        (histogram(), histogram(), histogram(), histogram());
    for (h, v) in [
        (&mut delivery, &o.delivery),
        (&mut presence, &o.presence),
        (&mut ack, &o.ack),
        (&mut edit, &o.edit),
    ] {
        for &(_, us) in v {
            h.saturating_record(u64::from(us));
        }
    }
    let q = |h: &Histogram<u64>, p: f64| ms(h.value_at_quantile(p));
    let minutes = active_secs / 60.0;
    println!(
        "day: {n} users ({} contacts each, {} one-to-one, {} groups of {GROUP_SIZE}, {rooms} rooms of ~{}) for {:.0} s: \
         {} messages ({:.0}/s) after {} typing, {} status changes, {} personal message edits, {} sign-outs and back",
        2 * reach,
        dms.len(),
        groups.len(),
        USERS_PER_ROOM / ROOM_EVERY,
        active_secs,
        o.sent,
        o.sent as f64 / active_secs,
        o.typing,
        o.statuses,
        o.psm_edits,
        o.reconnects
    );
    println!(
        "day: deliveries {} live + {} replayed on resync; delivery latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms; \
         presence latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms ({} seen; the edit's own request p50 {:.1} ms p99 {:.1} ms); ack p50 {:.1} ms p99 {:.1} ms; \
         lost {}, duplicated {}, gaps {}, refused {}, resyncs asked by the server {}, users failed {failed}",
        o.received,
        o.replayed,
        q(&delivery, 0.5),
        q(&delivery, 0.99),
        ms(delivery.max()),
        q(&presence, 0.5),
        q(&presence, 0.99),
        ms(presence.max()),
        presence.len(),
        q(&edit, 0.5),
        q(&edit, 0.99),
        q(&ack, 0.5),
        q(&ack, 0.99),
        o.lost,
        o.duplicates,
        o.gaps,
        o.errors,
        o.resyncs
    );
    let per_user = |a: Option<u64>| {
        before
            .zip(a)
            .map(|(b, a)| a.saturating_sub(b) as f64 / n as f64)
    };
    println!(
        "day: server CPU {} = {} CPU-seconds per 1,000 active users per minute; RSS {} MiB before the sockets, \
         {} MiB with everyone online ({} KiB per user), {} MiB at the end of the day ({} KiB per user)",
        cpu.map_or("n/a".into(), |c| format!("{c:.2} s")),
        cpu.map_or("n/a".into(), |c| format!(
            "{:.3}",
            c / (n as f64 / 1000.0) / minutes
        )),
        before.map_or("n/a".into(), |b| format!("{:.1}", b as f64 / 1024.0)),
        online.map_or("n/a".into(), |b| format!("{:.1}", b as f64 / 1024.0)),
        per_user(online).map_or("n/a".into(), |k| format!("{k:.2}")),
        peak.map_or("n/a".into(), |b| format!("{:.1}", b as f64 / 1024.0)),
        per_user(peak).map_or("n/a".into(), |k| format!("{k:.2}")),
    );
    // The day in windows of ten seconds: where a p99 comes from.
    let windows = (active_secs / 10.0).ceil() as u16 + 2;
    let mut line = String::from("day: p99 per 10 s (delivery / presence, ms):");
    for w in 0..windows {
        let p99 = |v: &[(u16, u32)]| {
            let mut h = histogram();
            for &(s, us) in v {
                if s / 10 == w {
                    h.saturating_record(u64::from(us));
                }
            }
            (!h.is_empty()).then(|| format!("{:.0}", ms(h.value_at_quantile(0.99))))
        };
        let (d, p) = (p99(&o.delivery), p99(&o.presence));
        if d.is_some() || p.is_some() {
            line.push_str(&format!(
                " {}s {}/{}",
                w * 10,
                d.unwrap_or_else(|| "-".into()),
                p.unwrap_or_else(|| "-".into())
            ));
        }
    }
    println!("{line}");
    Ok(Measured {
        delivery_p99_ms: q(&delivery, 0.99),
        presence_p99_ms: q(&presence, 0.99),
        bad: o.lost + o.duplicates + o.gaps + o.errors + failed,
    })
}

fn merge(all: &mut Outcome, o: Outcome) {
    all.sent += o.sent;
    all.received += o.received;
    all.replayed += o.replayed;
    all.duplicates += o.duplicates;
    all.gaps += o.gaps;
    all.lost += o.lost;
    all.errors += o.errors;
    all.resyncs += o.resyncs;
    all.reconnects += o.reconnects;
    all.statuses += o.statuses;
    all.psm_edits += o.psm_edits;
    all.typing += o.typing;
    all.delivery.extend(o.delivery);
    all.presence.extend(o.presence);
    all.ack.extend(o.ack);
    all.edit.extend(o.edit);
}

/// Writes each pair as accepted contacts of each other (both rows, as an accepted request
/// leaves them), in one transaction, beside the running server (WAL: it waits its turn).
fn seed_contacts(database: &std::path::Path, pairs: &[(i64, i64)]) -> Result<()> {
    let mut db = rusqlite::Connection::open(database)?;
    db.busy_timeout(Duration::from_secs(30))?;
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO contacts (owner_id, contact_id, state, created_at) VALUES (?1, ?2, 'accepted', ?3)",
        )?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        for &(a, b) in pairs {
            insert.execute(rusqlite::params![a, b, now])?;
            insert.execute(rusqlite::params![b, a, now])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Sends `sync` for every conversation from the last sequence number seen; the answers are
/// read by the caller (or, at start, here: see [`sync_from`]).
fn sync_frames(convs: &[ConvRef], highest: &[i64]) -> Vec<Message> {
    convs
        .iter()
        .zip(highest)
        .map(|(c, h)| Message::text(json!({ "t": "sync", "conv": c.id, "after": h }).to_string()))
        .collect()
}

/// When a presence frame last arrived while the users were still syncing (the storm's
/// presence can reach a user before their own sync is done).
static STORM_PRESENCE_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// At start: syncs every conversation and waits for each `synced`; returns the last
/// sequence number of each (a group opens with its join lines).
async fn sync_from(ws: &mut Ws, convs: &[ConvRef], highest: &[i64]) -> Result<Vec<i64>> {
    for f in sync_frames(convs, highest) {
        ws.feed(f).await?;
    }
    ws.flush().await?;
    let mut last = highest.to_vec();
    let mut left = convs.len();
    while left > 0 {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let text = t.as_str();
                if text.starts_with(r#"{"t":"synced""#) {
                    left -= 1;
                } else if text.starts_with(r#"{"t":"presence""#) {
                    STORM_PRESENCE_US.fetch_max(micros_now(), Ordering::Relaxed);
                } else if text.starts_with(r#"{"t":"msg""#) {
                    let conv = field_i64(text, &CONV);
                    let seq = field_i64(text, &SEQ).unwrap_or(0);
                    if let Some(c) = convs.iter().position(|c| Some(c.id) == conv) {
                        last[c] = last[c].max(seq);
                    }
                }
            }
            Some(Ok(_)) => {}
            other => bail!("no synced: {other:?}"),
        }
    }
    Ok(last)
}

/// A gap drawn from an exponential distribution with this mean, at least [`MIN_GAP`].
fn gap(rng: &mut StdRng, mean_secs: f64) -> Duration {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    Duration::from_secs_f64(-u.ln() * mean_secs).max(MIN_GAP)
}

/// What a user does next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Choose an action.
    Act,
    /// Send the message whose typing was shown, in conversation `k`.
    Send(usize),
    /// Come back online.
    Return,
}

/// One user for the whole day.
async fn user(plan: Plan, ws: Ws, mut highest: Vec<i64>, shared: Arc<Shared>) -> Result<Outcome> {
    let day = shared.day;
    let mut rng = StdRng::seed_from_u64(0x5eed ^ plan.idx as u64);
    let mut out = Outcome::default();
    let mut ws = Some(ws);
    let k = plan.convs.len();
    let mut syncing = vec![false; k];
    // Sends waiting for their acknowledgement, in order: (conversation slot, sent at).
    let mut unacked: VecDeque<(usize, u64)> = VecDeque::new();
    // The personal message times already measured, by user.
    let mut measured: HashMap<i64, u64> = HashMap::new();
    let mut connected_at = micros_now();
    let rate = 1.0 / day.message_every
        + 1.0 / day.status_every
        + 1.0 / day.psm_every
        + 1.0 / day.reconnect_every;
    let mut next = Next::Act;
    let mut due = tokio::time::Instant::now();
    let mut go_rx = shared.go.subscribe();
    let mut going = false;
    if *go_rx.borrow_and_update() {
        going = true;
        due += gap(&mut rng, 1.0 / rate);
    }
    let weights: f64 = plan.convs.iter().map(|c| c.weight).sum();
    let http = shared.http.clone();
    let mut phase_rx = shared.phase.subscribe();
    let mut settled = false;
    let mut settle_deadline: Option<tokio::time::Instant> = None;
    loop {
        let now_phase = *phase_rx.borrow_and_update();
        let stopping = now_phase >= STOPPING;
        if stopping && ws.is_none() {
            next = Next::Return;
            due = tokio::time::Instant::now();
        } else if stopping && next != Next::Return {
            // A message whose typing was shown is not sent any more.
            next = Next::Act;
        }
        let in_sync = !syncing.contains(&true);
        if stopping && !settled && ws.is_some() && unacked.is_empty() && in_sync {
            settled = true;
            if shared.settled.fetch_add(1, Ordering::Relaxed) + 1 == day.users {
                shared.all_settled.notify_one();
            }
        }
        if now_phase >= SETTLED {
            let behind = plan
                .convs
                .iter()
                .zip(&highest)
                .any(|(c, &h)| h < shared.acked[c.slot].load(Ordering::Relaxed));
            let deadline =
                *settle_deadline.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
            if !behind || tokio::time::Instant::now() >= deadline {
                for (c, &h) in plan.convs.iter().zip(&highest) {
                    let acked = shared.acked[c.slot].load(Ordering::Relaxed);
                    out.lost += u64::try_from(acked - h).unwrap_or(0);
                }
                return Ok(out);
            }
        }
        let acting = going && (!stopping || next == Next::Return);
        let settle_wait = settle_deadline.unwrap_or_else(|| tokio::time::Instant::now() + SETTLE);
        tokio::select! {
            () = tokio::time::sleep_until(due), if acting => {
                match next {
                    Next::Return => {
                        let (mut fresh, _hello) =
                            connect_with_hello(&shared.url, &plan.token).await?;
                        for f in sync_frames(&plan.convs, &highest) {
                            fresh.feed(f).await?;
                        }
                        fresh.flush().await?;
                        syncing.iter_mut().for_each(|s| *s = true);
                        connected_at = micros_now();
                        ws = Some(fresh);
                        next = Next::Act;
                        due = tokio::time::Instant::now() + gap(&mut rng, 1.0 / rate);
                    }
                    Next::Send(c) => {
                        let conv = plan.convs[c];
                        let t = micros_now();
                        out.sent += 1;
                        let frame = format!(
                            r#"{{"t":"send","conv":{},"client_id":"{t:010x}-d{}-{}","body":"{t:016} and what did you think of it?"}}"#,
                            conv.id, plan.idx, out.sent
                        );
                        if let Some(s) = ws.as_mut() {
                            s.send(Message::text(frame)).await?;
                            unacked.push_back((conv.slot, t));
                        }
                        next = Next::Act;
                        due = tokio::time::Instant::now() + gap(&mut rng, 1.0 / rate);
                    }
                    Next::Act => {
                        let Some(s) = ws.as_mut() else { continue };
                        let pick = rng.gen_range(0.0..rate);
                        if pick < 1.0 / day.message_every {
                            // Typing first, then the message one to three seconds later.
                            let mut w = rng.gen_range(0.0..weights);
                            let c = plan
                                .convs
                                .iter()
                                .position(|c| {
                                    w -= c.weight;
                                    w < 0.0
                                })
                                .unwrap_or(k - 1);
                            s.send(Message::text(
                                json!({ "t": "typing", "conv": plan.convs[c].id, "active": true })
                                    .to_string(),
                            ))
                            .await?;
                            out.typing += 1;
                            next = Next::Send(c);
                            due = tokio::time::Instant::now()
                                + Duration::from_millis(rng.gen_range(1000..3000));
                            continue;
                        }
                        let pick = pick - 1.0 / day.message_every;
                        if pick < 1.0 / day.status_every {
                            let statuses = ["busy", "away", "be_right_back", "online"];
                            let status = statuses[rng.gen_range(0..statuses.len())];
                            s.send(Message::text(
                                json!({ "t": "set_status", "status": status }).to_string(),
                            ))
                            .await?;
                            out.statuses += 1;
                        } else if pick < 1.0 / day.status_every + 1.0 / day.psm_every {
                            let t = micros_now();
                            shared.psm_stamp[plan.idx].store(t, Ordering::Relaxed);
                            http.patch(format!("{}/api/me", shared.url))
                                .bearer_auth(&plan.token)
                                .json(&json!({ "personal_message": format!("day {t:016}") }))
                                .send()
                                .await?
                                .error_for_status()?;
                            out.edit.push(sample(&shared, t));
                            out.psm_edits += 1;
                        } else if unacked.is_empty() && !syncing.contains(&true) {
                            // Signing out with nothing unacknowledged: what was sent is known.
                            if let Some(mut s) = ws.take() {
                                let _ = s.close(None).await;
                            }
                            out.reconnects += 1;
                            next = Next::Return;
                            due = tokio::time::Instant::now()
                                + Duration::from_millis(rng.gen_range(2000..8000));
                            continue;
                        }
                        due = tokio::time::Instant::now() + gap(&mut rng, 1.0 / rate);
                    }
                }
            }
            _ = phase_rx.changed(), if now_phase < SETTLED => {}
            _ = go_rx.changed(), if !going => {
                going = true;
                due = tokio::time::Instant::now() + gap(&mut rng, 1.0 / rate);
            }
            () = tokio::time::sleep_until(settle_wait), if now_phase >= SETTLED => {}
            msg = async { ws.as_mut().expect("checked").next().await }, if ws.is_some() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let text = t.as_str();
                    if text.starts_with(r#"{"t":"msg""#) {
                        let (Some(conv), Some(seq)) =
                            (field_i64(text, &CONV), field_i64(text, &SEQ))
                        else {
                            bail!("a message without conv or seq: {text}");
                        };
                        let Some(c) = plan.convs.iter().position(|c| c.id == conv) else {
                            continue;
                        };
                        if seq <= highest[c] {
                            out.duplicates += 1;
                            continue;
                        }
                        if seq > highest[c] + 1 {
                            out.gaps += 1;
                        }
                        highest[c] = seq;
                        if syncing[c] {
                            out.replayed += 1;
                        } else {
                            out.received += 1;
                            if let Some(sent) = field_i64(text, &BODY) {
                                out.delivery.push(sample(&shared, sent as u64));
                            }
                        }
                    } else if text.starts_with(r#"{"t":"ack""#) {
                        let Some((slot, at)) = unacked.pop_front() else {
                            bail!("an acknowledgement of nothing: {text}");
                        };
                        if let Some(seq) = field_i64(text, &SEQ) {
                            shared.acked[slot].fetch_max(seq, Ordering::Relaxed);
                        }
                        out.ack.push(sample(&shared, at));
                    } else if text.starts_with(r#"{"t":"presence""#) {
                        shared.last_presence_us.fetch_max(micros_now(), Ordering::Relaxed);
                        let (Some(who), Some(stamp)) = (
                            field_i64(text, &USER),
                            field_i64(text, &DAY_NOTE),
                        ) else {
                            continue;
                        };
                        let stamp = stamp as u64;
                        let Some(&place) = shared.place.get(&who) else { continue };
                        // Only the latest edit, first seen here, made while this socket
                        // was open (a comeback repeats the message it had).
                        if stamp == shared.psm_stamp[place].load(Ordering::Relaxed)
                            && stamp > connected_at
                            && measured.get(&who) != Some(&stamp)
                        {
                            measured.insert(who, stamp);
                            out.presence.push(sample(&shared, stamp));
                        }
                    } else if text.starts_with(r#"{"t":"synced""#) {
                        if let Some(conv) = field_i64(text, &CONV) {
                            if let Some(c) = plan.convs.iter().position(|c| c.id == conv) {
                                syncing[c] = false;
                            }
                        }
                    } else if text.starts_with(r#"{"t":"resync""#) {
                        // The server let this socket fall behind: sync from the last seen.
                        out.resyncs += 1;
                        let conv = field_i64(text, &CONV);
                        if let (Some(c), Some(s)) =
                            (plan.convs.iter().position(|c| Some(c.id) == conv), ws.as_mut())
                        {
                            let frame = json!({ "t": "sync", "conv": plan.convs[c].id, "after": highest[c] });
                            s.send(Message::text(frame.to_string())).await?;
                            syncing[c] = true;
                        }
                    } else if text.starts_with(r#"{"t":"error""#) {
                        out.errors += 1;
                        if out.errors == 1 {
                            eprintln!("  user {} got {text}", plan.id);
                        }
                        if text.contains(r#""client_id":"#) {
                            unacked.pop_front();
                        }
                    }
                }
                Some(Ok(_)) => {}
                other => bail!("user {}: the socket ended: {other:?}", plan.id),
            },
        }
    }
}
