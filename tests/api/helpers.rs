//! `spawn_app()` and clients for the tests.

use futures::{SinkExt, StreamExt};
use messenger::{
    protocol::{ServerFrame, UserSummary},
    server::{
        app::{AppState, Application},
        config::Config,
    },
};
use serde_json::{json, Value};
use std::{net::SocketAddr, time::Duration};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_tungstenite::{
    tungstenite::{
        client::IntoClientRequest,
        http::{header, HeaderValue},
        protocol::CloseFrame,
        Message,
    },
    MaybeTlsStream, WebSocketStream,
};

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tune: impl FnOnce(&mut Config)) -> TestApp {
    spawn_in(tempfile::tempdir().expect("temp dir"), tune).await
}

/// Starts the server on the database `messenger.db` in `dir`.
pub async fn spawn_app_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut Config)) -> TestApp {
    spawn_in(dir, tune).await
}

/// Whether this run is against PostgreSQL (`MESSENGER_TEST_STORE=postgres`, as `make test`
/// runs the suite a second time): every test's server then gets a PostgreSQL database of
/// its own on the machine's server (`MESSENGER_TEST_POSTGRES`, default
/// postgres://postgres@127.0.0.1:5432/postgres) instead of a SQLite file.
pub fn on_postgres() -> bool {
    std::env::var("MESSENGER_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// Returns from a test that is about SQLite itself (its file, its WAL, its backups, the
/// administration commands that open the file) when the suite runs against PostgreSQL.
#[macro_export]
macro_rules! sqlite_only {
    () => {
        if $crate::helpers::on_postgres() {
            eprintln!("about the SQLite file: run against SQLite only");
            return;
        }
    };
}

/// The PostgreSQL database of the test whose files are in `dir`: made at the first start,
/// the same one after a restart (its address is kept in the folder).
async fn postgres_for(dir: &std::path::Path) -> String {
    let kept = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&kept) {
        return url;
    }
    use sqlx::Connection;
    let admin = std::env::var("MESSENGER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!(
        "messenger_api_{}",
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the machine's PostgreSQL (MESSENGER_TEST_POSTGRES)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("a database for the test");
    let url = format!("{}/{name}", admin.rsplit_once('/').expect("a database").0);
    std::fs::write(&kept, &url).expect("keep the address");
    url
}

/// Starts the server on the database in `dir`.
async fn spawn_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut Config)) -> TestApp {
    let mut cfg = Config::for_tests(dir.path().join("messenger.db"));
    if on_postgres() {
        // The files a node keeps beside its database stay in the test's folder.
        cfg.store.database = postgres_for(dir.path()).await.into();
        let ring = dir.path().join("messenger.db.keys");
        if !ring.exists() {
            // Made once for the installation, as every node must share it.
            messenger::server::store::vault::RingFile::fresh()
                .write(&ring)
                .expect("a key ring");
        }
        cfg.store.key_file = Some(ring);
        cfg.store.analytics_database = Some(dir.path().join("analytics.db"));
        cfg.media.store = Some(dir.path().join("messenger.db.media").display().to_string());
    }
    cfg.server.log = "warn".into();
    tune(&mut cfg);
    messenger::server::app::init_tracing(&cfg.server.log, cfg.server.log_format);
    let app = Application::build(cfg).await.expect("the app builds");
    let addr = app.addr();
    let state = app.state();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        state,
        http: reqwest::Client::builder().build().expect("http client"),
        dir,
        stop: Some(stop),
        server: Some(server),
    }
}

/// A signed-in user: bearer token and who they are.
#[derive(Clone, Debug)]
pub struct User {
    pub token: String,
    pub me: UserSummary,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Signs in a new guest over HTTP (no password hashing: fast).
    pub async fn guest(&self) -> User {
        let res = self
            .http
            .post(self.url("/api/token"))
            .json(&json!({ "guest": true }))
            .send()
            .await
            .expect("token request");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("json");
        User {
            token: body["token"].as_str().expect("token").to_owned(),
            me: serde_json::from_value(body["user"].clone()).expect("user"),
        }
    }

    /// Posts JSON as a browser on our own origin would, with the given bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("Origin", self.origin())
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// Posts a form (the encoding of the account endpoints) from our own origin, as a script
    /// would (it answers JSON; a browser's form post, which wants HTML, gets redirects).
    pub async fn form(
        &self,
        path: &str,
        token: Option<&str>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("Origin", self.origin())
            .form(fields);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// Any JSON request as a browser on our own origin would make it, with a bearer token.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("Origin", self.origin())
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    /// Makes `a` and `b` contacts: `a` asks, `b` accepts.
    pub async fn befriend(&self, a: &User, b: &User) {
        let res = self
            .post(
                "/api/contacts",
                Some(&a.token),
                json!({ "username": b.me.username }),
            )
            .await;
        assert_eq!(
            res.status(),
            200,
            "{}",
            res.text().await.unwrap_or_default()
        );
        let res = self
            .post(
                &format!("/api/contacts/{}/accept", a.me.id),
                Some(&b.token),
                json!({}),
            )
            .await;
        assert_eq!(
            res.status(),
            200,
            "{}",
            res.text().await.unwrap_or_default()
        );
    }

    /// Starts (or finds) the one-to-one conversation of `a` with `b`; returns its id.
    pub async fn dm(&self, a: &User, b: &User) -> i64 {
        let res = self
            .post(
                "/api/dm",
                Some(&a.token),
                json!({ "username": b.me.username }),
            )
            .await;
        assert_eq!(
            res.status(),
            200,
            "{}",
            res.text().await.unwrap_or_default()
        );
        res.json::<Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id")
    }

    /// The one-to-one conversation of `a` and `b`, with a socket of each synced to it.
    pub async fn dm_live(&self, a: &User, b: &User) -> (i64, Ws, Ws) {
        let conv = self.dm(a, b).await;
        let mut wa = self.online(a).await;
        let mut wb = self.online(b).await;
        wa.live(conv).await;
        wb.live(conv).await;
        (conv, wa, wb)
    }

    pub async fn connect(&self, user: &User) -> Ws {
        self.try_connect(Some(&user.token), None)
            .await
            .expect("upgrade accepted")
    }

    /// Connects `user` and reads the hello: a socket ready for frames.
    pub async fn online(&self, user: &User) -> Ws {
        let mut ws = self.connect(user).await;
        ws.hello().await;
        ws
    }

    /// Opens `/ws` with an optional bearer token and Origin; the HTTP status on refusal.
    pub async fn try_connect(&self, token: Option<&str>, origin: Option<&str>) -> Result<Ws, u16> {
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .expect("request");
        if let Some(t) = token {
            req.headers_mut().insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).expect("header"),
            );
        }
        if let Some(o) = origin {
            req.headers_mut()
                .insert(header::ORIGIN, HeaderValue::from_str(o).expect("header"));
        }
        Ws::open(req).await
    }

    /// Opens `/ws` for `user` claiming to be forwarded for `forwarded_for` (a proxy's
    /// `X-Forwarded-For`).
    pub async fn connect_forwarded(&self, user: &User, forwarded_for: &str) -> Ws {
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .expect("request");
        let h = req.headers_mut();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", user.token)).expect("header"),
        );
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_str(forwarded_for).expect("header"),
        );
        Ws::open(req).await.expect("upgrade accepted")
    }

    /// Stops the server and starts it again on the same database, configured by `tune`.
    pub async fn restarted(mut self, tune: impl FnOnce(&mut Config)) -> TestApp {
        self.stop().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        spawn_in(dir, tune).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }

    /// Signs up over HTTP as a browser would and returns the `name=value` session cookie.
    pub async fn signup_cookie(&self, username: &str, password: &str) -> String {
        let res = self
            .form(
                "/api/signup",
                None,
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(res.status(), 201);
        cookie_pair(&res)
    }

    /// The newest page of a conversation's history, as `user` reads it over HTTP.
    pub async fn history(&self, conv: i64, user: &User) -> messenger::protocol::HistoryPage {
        let res = self
            .http
            .get(self.url(&format!("/api/history?conv={conv}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("history request");
        assert_eq!(res.status(), 200);
        res.json().await.expect("a history page")
    }

    /// Messages stored, in one conversation or in all.
    pub async fn message_count(&self, conv: Option<i64>) -> i64 {
        let mut db = self.db().await;
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE $1 IS NULL OR conversation_id = $1")
            .bind(conv)
            .fetch_one(&mut db)
            .await
            .expect("count")
    }

    /// A new connection to the server's database (the SQLite file, or the test's PostgreSQL
    /// database), outside the server's pool. Queries written for both: `$1`-style
    /// parameters, numbered in the order they appear.
    pub async fn db(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = if on_postgres() {
            postgres_for(self.dir.path()).await
        } else {
            format!(
                "sqlite://{}",
                self.dir.path().join("messenger.db").display()
            )
        };
        sqlx::AnyConnection::connect(&url).await.expect("db")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The `name=value` part of a response's `Set-Cookie`.
pub fn cookie_pair(res: &reqwest::Response) -> String {
    res.headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned()
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a test waits for a frame that should come.
pub const WAIT: Duration = Duration::from_secs(10);

impl Ws {
    pub async fn open(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Ws, u16> {
        match tokio_tungstenite::connect_async(req).await {
            Ok((stream, _)) => Ok(Ws { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("connecting failed: {e}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_msg(&mut self, conv: i64, client_id: &str, body: &str) {
        self.send(json!({ "t": "send", "conv": conv, "client_id": client_id, "body": body }))
            .await;
    }

    /// Syncs `conv` from the start and waits for `synced`: live frames of it flow from here.
    pub async fn live(&mut self, conv: i64) {
        self.sync(conv, 0).await;
        self.until(|f| matches!(f, ServerFrame::Synced { conv: c, .. } if *c == conv))
            .await;
    }

    pub async fn sync(&mut self, conv: i64, after: i64) {
        self.send(json!({ "t": "sync", "conv": conv, "after": after }))
            .await;
    }

    /// The next server frame (pings skipped); panics on close or timeout.
    pub async fn next(&mut self) -> ServerFrame {
        match self.next_event().await {
            Event::Frame(f) => f,
            Event::Closed(c) => panic!("socket closed: {c:?}"),
        }
    }

    pub async fn next_event(&mut self) -> Event {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Event::Frame(serde_json::from_str(t.as_str()).expect("a server frame"))
                }
                Some(Ok(Message::Close(c))) => return Event::Closed(c),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    /// Every frame up to and including the first that matches.
    pub async fn frames_until(
        &mut self,
        mut pick: impl FnMut(&ServerFrame) -> bool,
    ) -> Vec<ServerFrame> {
        let mut out = Vec::new();
        loop {
            let f = self.next().await;
            let done = pick(&f);
            out.push(f);
            if done {
                return out;
            }
        }
    }

    /// Skips frames until one matches.
    pub async fn until(&mut self, mut pick: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let f = self.next().await;
            if pick(&f) {
                return f;
            }
        }
    }

    /// Waits for the close frame and returns its code and reason.
    pub async fn close_frame(&mut self) -> (u16, String) {
        loop {
            match self.next_event().await {
                Event::Closed(Some(c)) => return (c.code.into(), c.reason.to_string()),
                Event::Closed(None) => panic!("closed without a close frame"),
                Event::Frame(_) => continue,
            }
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.next_event().await {
                Event::Closed(Some(c)) => return c.code.into(),
                Event::Closed(None) => panic!("closed without a close frame"),
                Event::Frame(_) => continue,
            }
        }
    }

    /// Reads the hello and returns it.
    pub async fn hello(&mut self) -> ServerFrame {
        let f = self.next().await;
        assert!(
            matches!(f, ServerFrame::Hello { .. }),
            "first frame is hello: {f:?}"
        );
        f
    }
}

#[derive(Debug)]
// A test's frames are read one at a time; their size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    Frame(ServerFrame),
    Closed(Option<CloseFrame>),
}
