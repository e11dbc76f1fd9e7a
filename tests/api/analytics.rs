//! Analytics events: they land in their own database, with no text of any message, and
//! never hold delivery up.

use crate::delivery::ack_of;
use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn fast(c: &mut messenger::server::config::Config) {
    c.sockets.send_rate_per_second = 1_000_000;
    c.sockets.frame_rate_per_second = 1_000_000;
}

/// The analytics database of a test server.
fn analytics(app: &TestApp) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.dir.path().join("analytics.db")).expect("open");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    conn
}

/// Waits (up to 10 s) until `sql` counts at least `n`; the count.
async fn count_reaches(app: &TestApp, sql: &str, n: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut every = tokio::time::interval(Duration::from_millis(20));
    loop {
        every.tick().await;
        let got: i64 = analytics(app)
            .query_row(sql, [], |r| r.get(0))
            .expect("count");
        if got >= n || Instant::now() > deadline {
            return got;
        }
    }
}

#[tokio::test]
async fn events_land_in_their_own_database_without_any_text() {
    let app = spawn_app_with(fast).await;
    app.signup_cookie("ines", "a long enough password").await;
    let res = app
        .post(
            "/api/token",
            None,
            json!({ "username": "ines", "password": "not it at all" }),
        )
        .await;
    assert_eq!(res.status(), 401);
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "secret", "PLATYPUS-TEXT never leaves the messages")
        .await;
    ack_of(&mut wa, "secret").await;

    assert_eq!(
        count_reaches(&app, "SELECT CAST(COALESCE(SUM(messages), 0) AS INTEGER) FROM messages_sent WHERE conversation_type = 'dm' AND kind = 'text' AND size = 39", 1).await,
        1
    );
    for (event, at_least) in [
        ("signup", 1),
        ("login_failure", 1),
        ("guest_created", 2),
        ("socket_open", 2),
    ] {
        let sql = format!("SELECT COUNT(*) FROM events WHERE event = '{event}'");
        assert!(
            count_reaches(&app, &sql, at_least).await >= at_least,
            "{event}"
        );
    }
    let text: String = analytics(&app)
        .query_row(
            "SELECT group_concat(coalesce(d1,'') || coalesce(d2,'') || coalesce(d3,''), '|') FROM events",
            [],
            |r| r.get(0),
        )
        .expect("all");
    assert!(!text.contains("PLATYPUS"), "{text}");
    assert!(!text.contains("ines"), "no username: {text}");
    // Not in the message database either.
    let mut db = app.db().await;
    let tables: Vec<String> = sqlx::query_scalar(if crate::helpers::on_postgres() {
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    })
    .fetch_all(&mut db)
    .await
    .expect("tables");
    assert!(!tables.iter().any(|t| t == "events"), "{tables:?}");
}

#[tokio::test]
async fn a_stuck_analytics_writer_drops_events_and_delivery_goes_on() {
    // A small queue: it overflows within one of the writer's 5 s waits for the lock, however
    // slowly this machine sends. With the full queue the test raced the lock's timeout; with
    // 1,000 it still did under the whole suite's load (3,200 sends spread over more than
    // five 5 s waits, none of which saw 1,000 of them): 100 leaves an eight-fold margin.
    let app = spawn_app_with(|c| {
        fast(c);
        c.store.analytics_queue = 100;
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    // Someone holds the analytics database's write lock: its writer waits, its queue fills.
    let holder = analytics(&app);
    holder
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO events (at, event) VALUES (0, 'held');")
        .expect("lock");
    let total = 3200;
    for i in 0..total {
        wa.send_msg(conv, &format!("m{i}"), "flowing").await;
        if i % 500 == 499 {
            ack_of(&mut wa, &format!("m{i}")).await;
        }
    }
    assert_eq!(
        ack_of(&mut wa, &format!("m{}", total - 1)).await,
        total as i64
    );
    assert!(app.state.analytics.dropped() > 0, "the queue overflowed");
    let page = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        page.lines()
            .any(|l| l.starts_with("messenger_analytics_dropped_total ") && !l.ends_with(" 0")),
        "{page}"
    );
    // Once the lock goes, what was kept is written.
    holder.execute_batch("ROLLBACK").expect("unlock");
    assert!(count_reaches(&app, "SELECT COUNT(*) FROM messages_sent", 1).await >= 1);
}

#[tokio::test]
async fn web_vitals_beacons_are_stored_without_anyone_in_them_and_garbage_is_refused() {
    let app = spawn_app().await;
    let cookie = app.signup_cookie("jude", "a long enough password").await;
    let beacon = |body: String| {
        app.http
            .post(app.url("/api/rum"))
            .header("Origin", app.origin())
            .header("Content-Type", "application/json")
            .header("Cookie", &cookie)
            .body(body)
            .send()
    };
    let good =
        r#"{"page":"/app","device":"mobile","metrics":{"lcp":1234,"inp":88,"cls":0.05,"ttfb":41}}"#;
    assert_eq!(beacon(good.into()).await.expect("sent").status(), 204);
    assert_eq!(
        count_reaches(
            &app,
            "SELECT COUNT(*) FROM web_vitals WHERE page = '/app' AND device = 'mobile'",
            4
        )
        .await,
        4
    );
    let (metric, value): (String, f64) = analytics(&app)
        .query_row(
            "SELECT metric, value FROM web_vitals WHERE metric = 'lcp'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("lcp");
    assert_eq!((metric.as_str(), value), ("lcp", 1234.0));
    let everything: String = analytics(&app)
        .query_row(
            "SELECT group_concat(coalesce(d1,'') || coalesce(d2,'') || coalesce(d3,''), '|') FROM events WHERE event = 'web_vital'",
            [],
            |r| r.get(0),
        )
        .expect("all");
    assert!(!everything.contains("jude") && !everything.contains("127.0.0.1"));

    for bad in [
        "not json".to_owned(),
        r#"{"page":"/app","device":"mobile","metrics":{"lcp":-5}}"#.to_owned(),
        r#"{"page":"/app","device":"mobile","metrics":{"lcp":5},"user":"jude"}"#.to_owned(),
    ] {
        assert_eq!(beacon(bad).await.expect("sent").status(), 400);
    }
    let huge = format!(
        r#"{{"page":"/app","device":"mobile","metrics":{{"lcp":1}},"x":"{}"}}"#,
        "a".repeat(2000)
    );
    assert_eq!(beacon(huge).await.expect("sent").status(), 413);
    // An address gets so many (30 at once, the ones above included).
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(beacon(good.into()).await.expect("sent").status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}
