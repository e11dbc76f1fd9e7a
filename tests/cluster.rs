//! Several nodes on the machine's real PostgreSQL and a real NATS server (issue 30): each
//! node is a PostgreSQL message log (`store::postgres::log`) feeding a hub joined to the
//! others by NATS (`hub::nats`), as the server assembles them with `--database postgres://`
//! and `--nats`. Each test gets a database of its own on the machine's PostgreSQL
//! (`MESSENGER_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/postgres, trust
//! auth) and starts its own nats-server on a free port, so it can stop and restart it.

use messenger::protocol::{Body, ClientId};
use messenger::server::{
    hub::{
        local::LocalHub,
        nats::{CatchUp, NatsHub, CHECK_EVERY},
        Delivery, Fanout, Frame, Inbox,
    },
    metrics::Metrics,
    store::{
        postgres::{log::PgLog, PgStore},
        vault::Vault,
        Ack, Content, MessageLog, NewMessage, Reply, WriteFailed,
    },
};
use sqlx::{Connection, PgConnection};
use std::{
    collections::{BTreeSet, HashMap},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::{oneshot, watch, RwLock};

mod process;
use process::{free_port, progress, roaming_sender, wait_up, Acks, Killed};

/// Tests that only use PostgreSQL take it shared; the one that restarts it takes it alone.
static POSTGRES: RwLock<()> = RwLock::const_new(());

fn admin_url() -> String {
    std::env::var("MESSENGER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of the test's own, dropped when the test ends.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn new(label: &str) -> Self {
        let name = format!(
            "messenger_test_{label}_{}_{}",
            std::process::id(),
            rand_suffix()
        );
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("the machine's PostgreSQL (MESSENGER_TEST_POSTGRES)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let base = admin.rsplit_once('/').expect("a database in the address").0;
        let url = format!("{base}/{name}");
        // The schema, as a node applies it at start.
        PgStore::connect(&url, Arc::new(Vault::plain()))
            .await
            .expect("the schema");
        Self { url, name }
    }

    async fn drop_now(self) {
        if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() % 1_000_000_000
}

/// A nats-server of the test's own.
struct Nats {
    port: u16,
    process: Option<Killed>,
}

impl Nats {
    async fn start() -> Self {
        let mut nats = Self {
            port: free_port(),
            process: None,
        };
        nats.restart().await;
        nats
    }

    fn stop(&mut self) {
        self.process = None;
    }

    async fn restart(&mut self) {
        let child: Child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian's nats-server package)");
        self.process = Some(Killed(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// What reached a node's subscriber: each conversation's numbers.
#[derive(Default)]
struct Seen(Mutex<HashMap<i64, BTreeSet<i64>>>);

impl Seen {
    fn of(&self, conv: i64) -> BTreeSet<i64> {
        self.0
            .lock()
            .expect("seen")
            .get(&conv)
            .cloned()
            .unwrap_or_default()
    }
}

impl Inbox for Seen {
    fn deliver(&self, deliveries: &[(i64, Delivery)], _acks: &[Frame], _: &mut Vec<u8>) {
        let mut seen = self.0.lock().expect("seen");
        for (conv, d) in deliveries {
            if d.seq > 0 {
                seen.entry(*conv).or_default().insert(d.seq);
            }
        }
    }

    fn control(&self, _: messenger::server::hub::Control) -> bool {
        true
    }
}

/// A catch-up that never finds anything: what NATS alone delivers.
struct NoCatchUp;

#[async_trait::async_trait]
impl CatchUp for NoCatchUp {
    async fn newer(&self, _: &[(i64, i64)]) -> anyhow::Result<Vec<(i64, i64)>> {
        Ok(Vec::new())
    }
    async fn messages_after(
        &self,
        _: i64,
        _: i64,
        _: u32,
    ) -> anyhow::Result<Vec<messenger::protocol::MessageView>> {
        Ok(Vec::new())
    }
    async fn ended_sessions(&self, _: &[i64]) -> anyhow::Result<Vec<i64>> {
        Ok(Vec::new())
    }
}

/// One node: its log, its hub joined to the others, and a subscriber in `convs`.
struct Node {
    log: PgLog,
    hub: Arc<NatsHub>,
    seen: Arc<Seen>,
    _stop: watch::Sender<bool>,
}

impl Node {
    async fn start(db: &Database, nats: &Nats, prefix: &str, convs: &[i64], check: bool) -> Self {
        let store = PgStore::connect(&db.url, Arc::new(Vault::plain()))
            .await
            .expect("the PostgreSQL store");
        let client = async_nats::ConnectOptions::new()
            .no_echo()
            .retry_on_initial_connect()
            .connect(nats.url())
            .await
            .expect("NATS");
        let catch_up: Arc<dyn CatchUp> = if check {
            Arc::new(store.clone())
        } else {
            Arc::new(NoCatchUp)
        };
        let hub = NatsHub::start(Arc::new(LocalHub::new()), client, prefix, catch_up);
        let seen = Arc::new(Seen::default());
        let id = hub.local().register(1, 1, seen.clone());
        for conv in convs {
            hub.local().subscribe(*conv, id, seen.clone());
        }
        let (stop, stopped) = watch::channel(false);
        let fanout: Arc<dyn Fanout> = hub.clone();
        let (log, _task) =
            PgLog::spawn(&store, fanout, Arc::new(Metrics::new()), 256, stopped, None)
                .expect("the log");
        Self {
            log,
            hub,
            seen,
            _stop: stop,
        }
    }

    async fn send(&self, conv: i64, sender: i64, client_id: &str) -> Result<Ack, WriteFailed> {
        let (reply, answer) = oneshot::channel();
        self.log
            .append(
                NewMessage {
                    conv,
                    sender,
                    sender_name: format!("user {sender}"),
                    client_id: ClientId::parse(client_id).expect("client id"),
                    content: Content::Text(
                        Body::parse(&format!("hello from {client_id}")).expect("body"),
                    ),
                },
                Reply::Wait(reply),
            )
            .await?;
        answer.await.unwrap_or(Err(WriteFailed::Internal))
    }
}

/// Three users, a one-to-one conversation, a group and the Lobby (seeded): their ids.
async fn people_and_conversations(db: &Database) -> (Vec<i64>, Vec<i64>) {
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    let mut users = Vec::new();
    for name in ["ann", "bob", "cat"] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, created_at) VALUES ($1, $1, 0) RETURNING id",
        )
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("a user");
        users.push(id);
    }
    let dm: i64 = sqlx::query_scalar(
        "INSERT INTO conversations (kind, dm_key, created_at) VALUES ('dm', $1, 0) RETURNING id",
    )
    .bind(format!("{}:{}", users[0], users[1]))
    .fetch_one(&mut conn)
    .await
    .expect("a dm");
    let group: i64 = sqlx::query_scalar(
        "INSERT INTO conversations (kind, title, created_at) VALUES ('group', 'trio', 0) RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .expect("a group");
    let lobby: i64 = sqlx::query_scalar("SELECT id FROM conversations WHERE title = 'Lobby'")
        .fetch_one(&mut conn)
        .await
        .expect("the seeded Lobby");
    (users, vec![dm, group, lobby])
}

/// Every stored message of `conv`: (seq, client id), in order.
async fn stored(db: &Database, conv: i64) -> Vec<(i64, String)> {
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query_as("SELECT seq, client_id FROM messages WHERE conversation_id = $1 ORDER BY seq")
        .bind(conv)
        .fetch_all(&mut conn)
        .await
        .expect("messages")
}

/// Waits until `node` has seen every number in `want` of `conv`.
async fn wait_seen(node: &Node, conv: i64, want: &BTreeSet<i64>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen = node.seen.of(conv);
        if want.is_subset(&seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "conversation {conv}: {} of {} messages arrived; missing e.g. {:?}",
            want.intersection(&seen).count(),
            want.len(),
            want.difference(&seen).take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `node` has seen `n` messages of `conv`.
async fn wait_count(node: &Node, conv: i64, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.seen.of(conv).len() < n {
        assert!(Instant::now() < deadline, "deliveries did not go on");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts the log of `conv` is 1..=n with each client id once, and matches the acks.
async fn assert_gap_free(db: &Database, conv: i64, acks: &[(String, i64)]) {
    let rows = stored(db, conv).await;
    let seqs: Vec<i64> = rows.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=rows.len() as i64).collect::<Vec<_>>(),
        "conversation {conv}: gap-free from 1"
    );
    let by_id: HashMap<&str, i64> = rows.iter().map(|(s, c)| (c.as_str(), *s)).collect();
    assert_eq!(by_id.len(), rows.len(), "each client id stored once");
    for (client_id, seq) in acks {
        assert_eq!(
            by_id.get(client_id.as_str()),
            Some(seq),
            "{client_id} is stored under the number its acknowledgement gave"
        );
    }
}

/// Three nodes send at once to a one-to-one conversation, a group and a room: every send is
/// acknowledged with a number, each conversation is numbered 1..n without a gap in the
/// order of the acknowledgements, every node's subscriber gets every message of the others,
/// and a resend through another node gets the first acknowledgement and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_number_every_conversation_without_gaps_and_deliver_across_nodes() {
    let _shared = POSTGRES.read().await;
    let db = Database::new("three").await;
    let nats = Nats::start().await;
    let (users, convs) = people_and_conversations(&db).await;
    let prefix = format!("t{}", rand_suffix());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Arc::new(
            Node::start(&db, &nats, &prefix, &convs, true).await,
        ));
    }
    let per_node = 100;
    let mut sends = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for &conv in &convs {
            let node = node.clone();
            let sender = users[n];
            sends.push(tokio::spawn(async move {
                let mut acks = Vec::new();
                for i in 0..per_node {
                    let client_id = format!("n{n}-c{conv}-{i}");
                    let ack = node.send(conv, sender, &client_id).await.expect("stored");
                    acks.push((client_id, ack.seq));
                }
                (conv, acks)
            }));
        }
    }
    let mut acks: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
    for send in sends {
        let (conv, got) = send.await.expect("sender");
        acks.entry(conv).or_default().extend(got);
    }
    for &conv in &convs {
        let got = &acks[&conv];
        assert_eq!(got.len(), 3 * per_node);
        assert_gap_free(&db, conv, got).await;
        let want: BTreeSet<i64> = got.iter().map(|(_, s)| *s).collect();
        for node in &nodes {
            wait_seen(node, conv, &want, Duration::from_secs(10)).await;
        }
    }

    // A resend through another node: the first acknowledgement, nothing new stored.
    let (client_id, seq) = acks[&convs[1]][7].clone();
    let sender = users[0];
    let again = nodes[2]
        .send(convs[1], sender, &client_id)
        .await
        .expect("a resend is answered");
    assert_eq!(again.seq, seq);
    assert_eq!(stored(&db, convs[1]).await.len(), 3 * per_node);

    // A send to a conversation that does not exist fails alone; its neighbours are stored.
    let (missing, fine) = tokio::join!(
        nodes[0].send(9_999_999, users[0], "nowhere"),
        nodes[0].send(convs[0], users[0], "somewhere"),
    );
    assert_eq!(missing, Err(WriteFailed::Internal));
    assert_eq!(fine.expect("stored").seq, 3 * per_node as i64 + 1);
    drop(nodes);
    db.drop_now().await;
}

/// Without the database check, NATS alone carries a commit to the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_alone_carries_commits_to_the_other_node() {
    let _shared = POSTGRES.read().await;
    let db = Database::new("nats").await;
    let nats = Nats::start().await;
    let (users, convs) = people_and_conversations(&db).await;
    let prefix = format!("t{}", rand_suffix());
    let a = Node::start(&db, &nats, &prefix, &convs, false).await;
    let b = Node::start(&db, &nats, &prefix, &convs, false).await;
    // B's subscription is in place once a probe sent on A reaches it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probes = 0;
    loop {
        probes += 1;
        let ack = a
            .send(convs[0], users[0], &format!("probe-{probes}"))
            .await
            .expect("stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
        if b.seen.of(convs[0]).contains(&ack.seq) {
            break;
        }
        assert!(Instant::now() < deadline, "B never subscribed");
    }
    let mut want = BTreeSet::new();
    for i in 0..50 {
        want.insert(
            a.send(convs[0], users[0], &format!("m-{i}"))
                .await
                .expect("stored")
                .seq,
        );
    }
    wait_seen(&b, convs[0], &want, Duration::from_secs(5)).await;
    assert!(a.hub.dropped() == 0, "nothing was dropped on the way out");
    drop((a, b));
    db.drop_now().await;
}

/// NATS stops under load and comes back: sends are acknowledged throughout (PostgreSQL is
/// the log), and the other node gets every acknowledged message, the ones sent while NATS
/// was away through the database check, within a few checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_under_load_loses_nothing() {
    let _shared = POSTGRES.read().await;
    let db = Database::new("natsrestart").await;
    let mut nats = Nats::start().await;
    let (users, convs) = people_and_conversations(&db).await;
    let prefix = format!("t{}", rand_suffix());
    let a = Arc::new(Node::start(&db, &nats, &prefix, &convs, true).await);
    let b = Node::start(&db, &nats, &prefix, &convs, true).await;
    let (done_tx, done) = watch::channel(false);
    let sender = {
        let a = a.clone();
        let who = users[1];
        let conv = convs[2];
        tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut i = 0;
            while !*done.borrow() {
                let client_id = format!("load-{i}");
                let ack = a
                    .send(conv, who, &client_id)
                    .await
                    .expect("stored while NATS is away");
                acks.push((client_id, ack.seq));
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acks
        })
    };
    wait_count(&b, convs[2], 20).await;
    nats.stop();
    let stopped_at = b.seen.of(convs[2]).len();
    // No fixed wait: more arrive (bounded by wait_count's deadline) while NATS is away,
    // which only the database check can bring.
    wait_count(&b, convs[2], stopped_at + 10).await;
    nats.restart().await;
    let restarted_at = b.seen.of(convs[2]).len();
    wait_count(&b, convs[2], restarted_at + 50).await;
    done_tx.send(true).expect("stop the sender");
    let acks = sender.await.expect("sender");
    assert_gap_free(&db, convs[2], &acks).await;
    let want: BTreeSet<i64> = acks.iter().map(|(_, s)| *s).collect();
    wait_seen(&b, convs[2], &want, CHECK_EVERY * 5).await;
    drop((a, b));
    db.drop_now().await;
}

/// PostgreSQL restarts while a node sends: sends made while it is down fail with an error
/// that asks for a resend (never an acknowledgement), and once it is back, the same sends
/// succeed; the log holds each acknowledged message once, without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_sends_fail_clearly_then_resume() {
    let _alone = POSTGRES.write().await;
    let db = Database::new("pgrestart").await;
    let nats = Nats::start().await;
    let (users, convs) = people_and_conversations(&db).await;
    let prefix = format!("t{}", rand_suffix());
    let a = Node::start(&db, &nats, &prefix, &convs, true).await;
    let mut acks = Vec::new();
    for i in 0..10 {
        let id = format!("before-{i}");
        acks.push((
            id.clone(),
            a.send(convs[1], users[2], &id).await.expect("stored").seq,
        ));
    }
    let cluster = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a PostgreSQL cluster in /etc/postgresql: this test stops and starts the machine's PostgreSQL with pg_ctlcluster");
    let stopped = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &cluster,
            "main",
            "stop",
            "-m",
            "fast",
        ])
        .status()
        .expect("pg_ctlcluster");
    assert!(stopped.success(), "PostgreSQL stopped");
    // Whatever happens below, PostgreSQL is started again for the rest of the machine.
    struct StartAgain(String);
    impl StartAgain {
        fn now(&self) -> bool {
            Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &self.0, "main", "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        }
    }
    impl Drop for StartAgain {
        fn drop(&mut self) {
            // Already running after the test's own start: refused, harmlessly.
            self.now();
        }
    }
    let restart = StartAgain(cluster);
    let mut refused = Vec::new();
    for i in 0..3 {
        let id = format!("down-{i}");
        let got = a.send(convs[1], users[2], &id).await;
        assert_eq!(
            got,
            Err(WriteFailed::Internal),
            "no acknowledgement while PostgreSQL is down"
        );
        refused.push(id);
    }
    assert!(restart.now(), "PostgreSQL started");
    // The client resends what was refused; the pool reconnects.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in refused {
        loop {
            match a.send(convs[1], users[2], &id).await {
                Ok(ack) => {
                    acks.push((id, ack.seq));
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("sends did not resume: {e}"),
            }
        }
    }
    assert_gap_free(&db, convs[1], &acks).await;
    assert_eq!(stored(&db, convs[1]).await.len(), 13);
    drop(a);
    db.drop_now().await;
}

/// A server process on the shared database and NATS, with its own files in `dir`, the
/// installation's key ring and `more` in its environment.
fn node_process_with(
    port: u16,
    db: &Database,
    nats: &Nats,
    prefix: &str,
    dir: &std::path::Path,
    more: &[(&str, &str)],
) -> Killed {
    let media = dir.join(format!("media-{port}"));
    let ring = dir.join("ring");
    if !ring.exists() {
        messenger::server::store::vault::RingFile::fresh()
            .write(&ring)
            .expect("the installation's key ring");
    }
    let mut env = vec![
        ("MESSENGER_NATS", nats.url()),
        ("MESSENGER_NATS_PREFIX", prefix.to_owned()),
        ("MESSENGER_KEY_FILE", ring.display().to_string()),
        ("MESSENGER_ANALYTICS", "off".to_owned()),
        ("MESSENGER_MEDIA_STORE", media.display().to_string()),
    ];
    env.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Killed(process::server(
        port,
        std::path::Path::new(&db.url),
        &env,
        None,
    ))
}

/// Server processes of one installation on a database and a NATS of the test's own, each
/// with `env` added to its environment, all answering.
struct Cluster {
    db: Database,
    nats: Nats,
    _dir: tempfile::TempDir,
    prefix: String,
    ports: Vec<u16>,
    bases: Vec<String>,
    procs: Vec<Killed>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(label: &str, nodes: usize, env: &[(&str, &str)]) -> Self {
        let db = Database::new(label).await;
        let nats = Nats::start().await;
        let dir = tempfile::tempdir().expect("dir");
        let prefix = format!("t{}", rand_suffix());
        let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let procs = ports
            .iter()
            .map(|p| node_process_with(*p, &db, &nats, &prefix, dir.path(), env))
            .collect();
        let bases: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let http = reqwest::Client::new();
        for base in &bases {
            wait_up(&http, base).await;
        }
        Self {
            db,
            nats,
            _dir: dir,
            prefix,
            ports,
            bases,
            procs,
            http,
        }
    }

    /// Stops the nodes, then drops the database.
    async fn finish(mut self) {
        self.procs.clear();
        self.nats.stop();
        self.db.drop_now().await;
    }
}

/// A guest signed in through `base`: token, id and username.
async fn guest_at(http: &reqwest::Client, base: &str) -> (String, i64, String) {
    let body: serde_json::Value = http
        .post(format!("{base}/api/token"))
        .json(&serde_json::json!({ "guest": true }))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    (
        body["token"].as_str().expect("token").to_owned(),
        body["user"]["id"].as_i64().expect("id"),
        body["user"]["username"]
            .as_str()
            .expect("username")
            .to_owned(),
    )
}

/// Waits (bounded) for the presence of `user` that `pick` accepts on `ws`.
async fn presence_of(
    ws: &mut process::Socket,
    user: i64,
    within: Duration,
    pick: impl Fn(&messenger::protocol::Presence) -> bool,
) -> Duration {
    use futures::StreamExt;
    let started = Instant::now();
    let deadline = started + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                if let Ok(messenger::protocol::ServerFrame::Presence { user: u, presence }) =
                    serde_json::from_str(t.as_str())
                {
                    if u == user && pick(&presence) {
                        return started.elapsed();
                    }
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no such presence of {user} within {within:?}: {other:?}"),
        }
    }
}

/// Reads room 1 on `ws` (after its `sync` was sent) until it is quiet for 5 s: how many
/// messages came, and each place where the next one was not the one after the last
/// (a duplicate, a gap or a reordering), as (last, then).
fn room_reader(mut ws: process::Socket) -> tokio::task::JoinHandle<(usize, Vec<(i64, i64)>)> {
    tokio::spawn(async move {
        use futures::StreamExt;
        use messenger::protocol::ServerFrame;
        let (mut last, mut got, mut wrong) = (0i64, 0usize, Vec::new());
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        {
            let tokio_tungstenite::tungstenite::Message::Text(t) = frame else {
                continue;
            };
            match serde_json::from_str(t.as_str()) {
                Ok(ServerFrame::Msg(m)) if m.conv == 1 => {
                    if m.seq != last + 1 {
                        wrong.push((last, m.seq));
                    }
                    last = last.max(m.seq);
                    got += 1;
                }
                Ok(ServerFrame::Resync { conv: 1, after }) => {
                    last = after;
                    process::send(
                        &mut ws,
                        serde_json::json!({ "t": "sync", "conv": 1, "after": after }),
                    )
                    .await;
                }
                _ => {}
            }
        }
        (got, wrong)
    })
}

/// Three server processes on one PostgreSQL database and NATS, clients spread over them.
/// One node is killed (SIGKILL) under load: its senders reconnect to the others and resend
/// what was not acknowledged; every acknowledged message is stored once, numbered without a
/// gap; the killed node's user goes offline for their contact on another node within the
/// node timeout, and comes back online when they reconnect elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_server_processes_lose_nothing_when_one_is_killed() {
    use messenger::protocol::Status;
    let _shared = POSTGRES.read().await;
    let mut cluster = Cluster::start("procs", 3, &[]).await;
    let (ports, bases, http) = (
        cluster.ports.clone(),
        cluster.bases.clone(),
        cluster.http.clone(),
    );
    let (a, b, c) = (&bases[0], &bases[1], &bases[2]);

    // Q on node A is a contact of P, who is on node C only.
    let (q_token, q_id, _) = guest_at(&http, a).await;
    let (p_token, p_id, p_name) = guest_at(&http, b).await;
    let asked = http
        .post(format!("{a}/api/contacts"))
        .bearer_auth(&q_token)
        .header("Origin", a.as_str())
        .json(&serde_json::json!({ "username": p_name }))
        .send()
        .await
        .expect("request");
    assert_eq!(
        asked.status(),
        200,
        "{}",
        asked.text().await.unwrap_or_default()
    );
    let accepted = http
        .post(format!("{c}/api/contacts/{q_id}/accept"))
        .bearer_auth(&p_token)
        .header("Origin", c.as_str())
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("accept");
    assert_eq!(
        accepted.status(),
        200,
        "{}",
        accepted.text().await.unwrap_or_default()
    );
    let mut q = process::socket(ports[0], &q_token).await;
    let p = process::socket(ports[2], &p_token).await;
    presence_of(&mut q, p_id, Duration::from_secs(10), |pr| {
        pr.status != Status::Offline
    })
    .await;

    // A reader of the room on node A: it must get each message once, in order, whichever
    // node committed it (messages from several nodes arrive in any order, and the
    // connection fills each gap from the store while the next ones wait).
    let (w_token, _, _) = guest_at(&http, a).await;
    process::join(&http, a, &w_token, 1).await;
    let mut watcher = process::socket(ports[0], &w_token).await;
    process::send(
        &mut watcher,
        serde_json::json!({ "t": "sync", "conv": 1, "after": 0 }),
    )
    .await;
    let reading = room_reader(watcher);

    // Load: one sender per node, each moving on to the next node when its own goes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks: Vec<Acks> = (0..3).map(|_| Acks::default()).collect();
    let mut senders = Vec::new();
    for i in 0..3 {
        let (token, _, _) = guest_at(&http, &bases[i]).await;
        process::join(&http, &bases[i], &token, 1).await;
        let order: Vec<String> = (0..3).map(|k| bases[(i + k) % 3].clone()).collect();
        senders.push(tokio::spawn(roaming_sender(
            order,
            token,
            1,
            i,
            acks[i].clone(),
            stop.clone(),
        )));
    }
    progress(&acks, 200).await;

    // Node C dies at once: no close frames, no goodbye on NATS.
    cluster.procs[2].0.kill().expect("SIGKILL");
    let _ = cluster.procs[2].0.wait();
    drop(p);
    let took = presence_of(
        &mut q,
        p_id,
        messenger::server::presence::nodes::NODE_TIMEOUT + Duration::from_secs(5),
        |pr| pr.status == Status::Offline,
    )
    .await;
    eprintln!("the killed node's user was offline for their contact after {took:?}");
    progress(&acks, 300).await;

    // P comes back through node B.
    let _p_again = process::socket(ports[1], &p_token).await;
    presence_of(&mut q, p_id, Duration::from_secs(10), |pr| {
        pr.status != Status::Offline
    })
    .await;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        let _ = sender.await;
    }
    let acked: Vec<(String, i64)> = acks
        .iter()
        .flat_map(|a| {
            a.lock()
                .expect("acks")
                .iter()
                .map(|(id, seq)| (id.clone(), *seq))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(acked.len() >= 500);
    assert_gap_free(&cluster.db, 1, &acked).await;
    let (got, wrong) = reading.await.expect("reader");
    assert!(
        got >= acked.len(),
        "the reader on node A got {got} of {}",
        acked.len()
    );
    assert!(
        wrong.is_empty(),
        "each message once and in order on node A; (last, then): {:?}",
        &wrong[..wrong.len().min(10)]
    );
    cluster.finish().await;
}

/// One user with a socket on each of two nodes sends as fast as they can: the messages
/// stored are at most what one rate allows (its burst, then its rate), not twice that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_message_rate_holds_over_every_node() {
    use futures::{SinkExt, StreamExt};
    use messenger::protocol::ServerFrame;
    use tokio_tungstenite::tungstenite::Message;
    let _shared = POSTGRES.read().await;
    let rate = 5;
    let cluster = Cluster::start("rates", 2, &[("MESSENGER_SEND_RATE", "5")]).await;
    let (ports, bases, http) = (&cluster.ports, &cluster.bases, &cluster.http);
    let (token, _, _) = guest_at(http, &bases[0]).await;
    process::join(http, &bases[0], &token, 1).await;
    let started = Instant::now();
    let mut sockets = Vec::new();
    for &port in ports {
        sockets.push(process::socket(port, &token).await);
    }
    // Each socket sends 40 at once and reads every answer.
    let per_socket = 40;
    let mut tasks = Vec::new();
    for (n, mut ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..per_socket {
                let frame = serde_json::json!({
                    "t": "send", "conv": 1, "client_id": format!("r{n}-{i}"), "body": "fast"
                });
                ws.send(Message::text(frame.to_string()))
                    .await
                    .expect("send");
            }
            let (mut acked, mut refused) = (0, 0);
            while acked + refused < per_socket {
                match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(t.as_str()) {
                        Ok(ServerFrame::Ack { .. }) => acked += 1,
                        Ok(ServerFrame::Error {
                            client_id: Some(_), ..
                        }) => refused += 1,
                        _ => {}
                    },
                    Ok(Some(Ok(_))) => {}
                    other => panic!("answers stopped: {other:?}"),
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await.expect("socket");
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst, then the rate for the time it took (and one token of rounding).
    let allowed = rate as f64 * (1.0 + elapsed) + 1.0;
    assert!(acked >= rate, "the burst goes through: {acked}");
    assert!(
        (acked as f64) <= allowed,
        "{acked} messages in {elapsed:.2} s over two nodes; one rate allows {allowed:.1}"
    );
    cluster.finish().await;
}

/// A session ended where no notice reaches the other nodes (here: revoked in the database
/// itself, as a lost NATS notice would leave it): each node's session check closes its
/// sockets of that session within [`SESSION_CHECK_EVERY`], and another user's socket on
/// the same node stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_without_a_notice_closes_its_sockets_on_every_node() {
    use futures::{SinkExt, StreamExt};
    use messenger::server::hub::nats::SESSION_CHECK_EVERY;
    use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};
    let _shared = POSTGRES.read().await;
    let cluster = Cluster::start("sessions", 2, &[]).await;
    let (ports, base, http) = (&cluster.ports, &cluster.bases[0], &cluster.http);
    let (ended, user, username) = guest_at(http, base).await;
    let (other, _, _) = guest_at(http, base).await;
    let mut other_ws = process::socket(ports[1], &other).await;
    assert!(matches!(
        process::frame(&mut other_ws).await,
        messenger::protocol::ServerFrame::Hello { .. }
    ));
    let mut ended_sockets = Vec::new();
    for &port in ports {
        let mut ws = process::socket(port, &ended).await;
        assert!(matches!(
            process::frame(&mut ws).await,
            messenger::protocol::ServerFrame::Hello { .. }
        ));
        ended_sockets.push(ws);
    }
    let mut pg = PgConnection::connect(&cluster.db.url)
        .await
        .expect("the test database");
    let session: i64 =
        sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(user)
            .fetch_one(&mut pg)
            .await
            .expect("the session");
    let started = Instant::now();
    sqlx::query("UPDATE sessions SET revoked_at = 1 WHERE id = $1")
        .bind(session)
        .execute(&mut pg)
        .await
        .expect("revoke");
    let within = SESSION_CHECK_EVERY * 2 + Duration::from_secs(3);
    for mut ws in ended_sockets {
        let closed = loop {
            match tokio::time::timeout(within, ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => break frame,
                Ok(Some(Ok(_))) => {}
                other => panic!("{username}'s socket was not closed within {within:?}: {other:?}"),
            }
        };
        let code = closed.map(|f| f.code);
        assert_eq!(
            code,
            Some(CloseCode::from(messenger::protocol::close::SESSION_ENDED)),
            "closed as a session that ended"
        );
    }
    assert!(started.elapsed() < within);
    // The other user's socket on the same node still answers.
    other_ws
        .send(Message::Ping(b"still here".to_vec().into()))
        .await
        .expect("ping");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), other_ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) if &p[..] == b"still here" => break,
            Ok(Some(Ok(Message::Close(f)))) => panic!("the other user's socket closed: {f:?}"),
            Ok(Some(Ok(_))) => {}
            other => panic!("the other user's socket stopped answering: {other:?}"),
        }
    }
    cluster.finish().await;
}

/// The shared rates' lease (one statement): a new bucket starts full and grants at most
/// what is asked; it grants what whole tokens it has, then nothing; it refills with time
/// (never beyond its burst); and leases taken at once by many tasks, as by many nodes, never
/// grant more than the bucket holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_grants_what_the_shared_bucket_holds_and_never_more() {
    use messenger::server::store::{BucketRate, LeaseStore};
    let _shared = POSTGRES.read().await;
    let db = Database::new("leases").await;
    let store = Arc::new(
        PgStore::connect(&db.url, Arc::new(Vault::plain()))
            .await
            .expect("store"),
    );
    // 10 at once, then 1 a second.
    let rate = BucketRate {
        burst: 10.0,
        per_ms: 0.001,
    };
    let t = 1_000_000;
    let lease = |key: &'static str, want: u32, now: i64| {
        let store = store.clone();
        async move {
            store
                .lease_tokens("test", key, rate, want, now)
                .await
                .expect("lease")
        }
    };
    assert_eq!(lease("a", 4, t).await, 4, "a new bucket is full");
    assert_eq!(lease("a", 4, t).await, 4);
    assert_eq!(lease("a", 4, t).await, 2, "what whole tokens are left");
    assert_eq!(lease("a", 4, t).await, 0, "then nothing");
    assert_eq!(lease("a", 4, t + 500).await, 0, "half a token is not one");
    assert_eq!(lease("a", 4, t + 1_000).await, 1, "a second brings one");
    assert_eq!(
        lease("a", 4, t).await,
        0,
        "a clock behind takes nothing back"
    );
    assert_eq!(
        lease("a", 20, t + 1_000_000).await,
        10,
        "never more than the burst however long it rested"
    );
    // Many takers at once on one bucket: exactly the burst in all.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        tasks.push(tokio::spawn(lease("b", 3, t)));
    }
    let mut granted = 0;
    for task in tasks {
        granted += task.await.expect("task");
    }
    assert_eq!(granted, 10, "forty leases at once share one burst");
    db.drop_now().await;
}

/// One user floods frames (WebSocket pings) through a socket on each of two nodes: each
/// node lets through its share of the user's frame rate, so all of them take as long as one
/// rate allows for the lot, not for half of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_frame_rate_holds_over_every_node() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let _shared = POSTGRES.read().await;
    // 20 frames a second, a burst of 60.
    let rate = 20.0;
    let cluster = Cluster::start("frames", 2, &[("MESSENGER_FRAME_RATE", "20")]).await;
    let (token, _, _) = guest_at(&cluster.http, &cluster.bases[0]).await;
    let mut sockets = Vec::new();
    for &port in &cluster.ports {
        let mut ws = process::socket(port, &token).await;
        assert!(matches!(
            process::frame(&mut ws).await,
            messenger::protocol::ServerFrame::Hello { .. }
        ));
        sockets.push(ws);
    }
    let per_socket = 100;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in sockets {
        tasks.push(tokio::spawn(async move {
            for i in 0..per_socket {
                ws.send(Message::Ping(format!("{i}").into_bytes().into()))
                    .await
                    .expect("ping");
            }
            let mut pongs = 0;
            while pongs < per_socket {
                match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                    Ok(Some(Ok(Message::Pong(_)))) => pongs += 1,
                    Ok(Some(Ok(_))) => {}
                    other => panic!("answers stopped: {other:?}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("socket");
    }
    let elapsed = started.elapsed().as_secs_f64();
    // One rate for 200 frames: (200 - 60) / 20 = 7 s. Each node at the whole rate would take
    // (100 - 60) / 20 = 2 s. Even if a node let its whole burst through before it heard of
    // the other node, (60 + 2 * 40 - 60) / 20 = 4 s.
    let total = 2.0 * f64::from(per_socket);
    let floor = ((total - 3.0 * rate) / rate).min(4.0) - 0.5;
    assert!(
        elapsed >= floor,
        "{total} frames over two nodes in {elapsed:.2} s; one rate needs at least {floor:.1} s"
    );
    cluster.finish().await;
}

/// Every message reaching a node twice and out of order (as NATS and the database check
/// can bring it): a NATS client of the test's own republishes each conversation payload it
/// hears, once at once and once again a few payloads later, to every node. Readers of the
/// room on both nodes still get each message once and in order, while senders on both
/// nodes write into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_twice_and_out_of_order_are_sent_once_in_order() {
    let _shared = POSTGRES.read().await;
    let cluster = Cluster::start("twice", 2, &[]).await;
    let (ports, bases, http) = (&cluster.ports, &cluster.bases, &cluster.http);

    // The echo: every payload on a conversation subject, again now and again later.
    let echo = async_nats::ConnectOptions::new()
        .connect(cluster.nats.url())
        .await
        .expect("the test's NATS client");
    let mut heard = echo
        .subscribe(format!("{}.c.>", cluster.prefix))
        .await
        .expect("subscribe");
    let republish = echo.clone();
    let echoing = tokio::spawn(async move {
        use futures::StreamExt;
        let mut later: std::collections::VecDeque<(async_nats::Subject, bytes::Bytes)> =
            std::collections::VecDeque::new();
        let mut echoed = 0usize;
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(5), heard.next()).await
        {
            // The test's own echoes come back to it too: only first copies are echoed.
            if message.headers.is_some() {
                continue;
            }
            let mut mark = async_nats::HeaderMap::new();
            mark.insert("echo", "1");
            let (subject, payload) = (message.subject.clone(), message.payload.clone());
            republish
                .publish_with_headers(subject.clone(), mark.clone(), payload.clone())
                .await
                .expect("echo");
            later.push_back((subject, payload));
            if later.len() > 3 {
                let (subject, payload) = later.pop_front().expect("one");
                republish
                    .publish_with_headers(subject, mark, payload)
                    .await
                    .expect("echo later");
            }
            echoed += 1;
        }
        echoed
    });
    // The echo client's subscription is in place once a round trip to the server is done.
    echo.flush().await.expect("flush");

    let mut readings = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        let (token, _, _) = guest_at(http, base).await;
        process::join(http, base, &token, 1).await;
        let mut reader = process::socket(ports[i], &token).await;
        process::send(
            &mut reader,
            serde_json::json!({ "t": "sync", "conv": 1, "after": 0 }),
        )
        .await;
        readings.push(room_reader(reader));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks: Vec<Acks> = (0..2).map(|_| Acks::default()).collect();
    let mut senders = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        let (token, _, _) = guest_at(http, base).await;
        process::join(http, base, &token, 1).await;
        senders.push(tokio::spawn(roaming_sender(
            vec![base.clone()],
            token,
            1,
            i,
            acks[i].clone(),
            stop.clone(),
        )));
    }
    progress(&acks, 400).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        let _ = sender.await;
    }
    let acked: Vec<(String, i64)> = acks
        .iter()
        .flat_map(|a| {
            a.lock()
                .expect("acks")
                .iter()
                .map(|(id, seq)| (id.clone(), *seq))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_gap_free(&cluster.db, 1, &acked).await;
    for (node, reading) in readings.into_iter().enumerate() {
        let (got, wrong) = reading.await.expect("reader");
        assert!(
            got >= acked.len(),
            "the reader on node {node} got {got} of {}",
            acked.len()
        );
        assert!(
            wrong.is_empty(),
            "each message once and in order on node {node}; (last, then): {:?}",
            &wrong[..wrong.len().min(10)]
        );
    }
    let echoed = echoing.await.expect("echo");
    assert!(echoed > 0, "the echo heard the nodes' payloads");
    cluster.finish().await;
}

/// A notice lost while NATS was away (here: a contact request made on node A for a user
/// whose socket is on node B) reaches the user once NATS is back: node B's connections send
/// their hello again, read afresh, and it carries the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_missed_while_nats_was_away_is_sent_again_when_it_is_back() {
    use futures::StreamExt;
    use messenger::protocol::ServerFrame;
    use tokio_tungstenite::tungstenite::Message;
    let _shared = POSTGRES.read().await;
    let mut cluster = Cluster::start("refresh", 2, &[]).await;
    let (a, http) = (cluster.bases[0].clone(), cluster.http.clone());
    let (x_token, x_id, _) = guest_at(&http, &a).await;
    let (y_token, _, y_name) = guest_at(&http, &a).await;
    let mut y = process::socket(cluster.ports[1], &y_token).await;
    assert!(matches!(
        process::frame(&mut y).await,
        ServerFrame::Hello { .. }
    ));

    cluster.nats.stop();
    let asked = http
        .post(format!("{a}/api/contacts"))
        .bearer_auth(&x_token)
        .header("Origin", a.as_str())
        .json(&serde_json::json!({ "username": y_name }))
        .send()
        .await
        .expect("request");
    assert_eq!(
        asked.status(),
        200,
        "{}",
        asked.text().await.unwrap_or_default()
    );
    cluster.nats.restart().await;

    // NATS clients retry with a growing wait; the node's check sees the reconnection.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no hello with the request after NATS came back"
        );
        let text = match tokio::time::timeout(left, y.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            other => panic!("y's socket ended: {other:?}"),
        };
        let Ok(ServerFrame::Hello { contacts, .. }) = serde_json::from_str(text.as_str()) else {
            continue;
        };
        assert!(
            contacts.iter().any(|c| c.user.id == x_id),
            "the hello again carries the request: {contacts:?}"
        );
        break;
    }
    cluster.finish().await;
}
