//! What operators read: `/metrics` (who may, and that its numbers move with the traffic),
//! `/healthz` and `/readyz`.

use crate::delivery::ack_of;
use crate::helpers::*;
use serde_json::json;

/// The value of the sample `name` (with its labels, as written) on the page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not on the page:\n{page}"))
}

async fn scrape(app: &TestApp) -> String {
    let res = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().expect("ascii");
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    res.text().await.expect("text")
}

#[tokio::test]
async fn the_metrics_move_with_the_traffic() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let committed = sample(&before, "messenger_messages_committed_total");
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    for i in 0..5 {
        wa.send_msg(conv, &format!("m{i}"), "counted").await;
    }
    ack_of(&mut wa, "m4").await;
    app.history(conv, &b).await;
    let res = app
        .post(
            "/api/token",
            None,
            json!({ "username": "nobody_at_all", "password": "not a password" }),
        )
        .await;
    assert_eq!(res.status(), 401);

    let after = scrape(&app).await;
    assert_eq!(
        sample(&after, "messenger_messages_committed_total") - committed,
        5.0
    );
    assert!(sample(&after, "messenger_commit_batch_size_count") >= 1.0);
    assert!(sample(&after, "messenger_commit_seconds_count") >= 1.0);
    assert!(sample(&after, "messenger_fanout_seconds_count") >= 1.0);
    assert_eq!(sample(&after, "messenger_sockets"), 2.0);
    assert_eq!(sample(&after, "messenger_users_online"), 2.0);
    assert_eq!(sample(&after, "messenger_signin_failures_total"), 1.0);
    assert!(
        sample(
            &after,
            r#"messenger_http_requests_total{route="/api/history",method="GET",status="200"}"#
        ) >= 1.0
    );
    // Ids never make a series of their own: the route's pattern does.
    assert!(!after.contains(&format!("/api/rooms/{conv}")));
    app.call(reqwest::Method::POST, "/api/rooms/1/join", &a.token, None)
        .await;
    let again = scrape(&app).await;
    assert!(again.contains(r#"route="/api/rooms/{id}/join""#), "{again}");
}

#[tokio::test]
async fn the_metrics_are_for_this_machine_or_the_token_holder() {
    let app = spawn_app_with(|c| c.server.metrics_token = Some("s3cret-metrics".into())).await;
    scrape(&app).await;
    // A request a proxy forwarded is not this machine's, even from loopback.
    let forwarded = app
        .http
        .get(app.url("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .expect("metrics");
    assert_eq!(forwarded.status(), 403);
    let wrong = app
        .http
        .get(app.url("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("metrics");
    assert_eq!(wrong.status(), 403);
    let right = app
        .http
        .get(app.url("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .bearer_auth("s3cret-metrics")
        .send()
        .await
        .expect("metrics");
    assert_eq!(right.status(), 200);
    // Health for orchestrators, whatever the host.
    for path in ["/healthz", "/health", "/readyz"] {
        let res = app
            .http
            .get(app.url(path))
            .header("Host", "elsewhere.example")
            .send()
            .await
            .expect("health");
        assert_eq!(res.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_non_admin_gets_403_on_every_admin_route_and_page() {
    let app = spawn_app().await;
    let cookie = app.signup_cookie("norm", "a long enough password").await;
    for (method, path) in [
        ("GET", "/api/admin/overview"),
        ("GET", "/api/admin/query?sql=SELECT%201"),
        ("GET", "/api/admin/users"),
        ("GET", "/api/admin/rooms"),
        ("POST", "/api/admin/room"),
        ("GET", "/api/admin/bots"),
        ("GET", "/api/admin/audit"),
        ("POST", "/api/admin/reauth"),
        ("POST", "/api/admin/user"),
        ("POST", "/api/admin/bots/switch"),
        ("DELETE", "/api/admin/users/norm"),
        ("GET", "/admin"),
        ("GET", "/admin/users"),
        ("GET", "/admin/rooms"),
        ("GET", "/admin/bots"),
        ("GET", "/admin/audit"),
    ] {
        let req = app
            .http
            .request(method.parse().expect("method"), app.url(path))
            .header("Origin", app.origin())
            .header("Cookie", &cookie)
            .header("Accept", "application/json");
        let req = if method == "POST" {
            req.header("Content-Type", "application/x-www-form-urlencoded")
                .body(
                    "password=a+long+enough+password&on=no&username=norm&action=delete&title=Mine",
                )
        } else {
            req
        };
        let res = req.send().await.expect("answered");
        assert_eq!(res.status(), 403, "{method} {path}");
    }
    // And nothing happened.
    let me = app
        .http
        .get(app.url("/api/session"))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("session");
    assert_eq!(me.status(), 200);
}
