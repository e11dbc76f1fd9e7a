//! Accounts and sessions.

use crate::helpers::{spawn_app, spawn_app_with};
use messenger::protocol::close;
use serde_json::{json, Value};

fn session_cookie(res: &reqwest::Response) -> String {
    let raw = res.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
        "{raw}"
    );
    assert!(!raw.contains("Secure"), "not Secure over plain http: {raw}");
    crate::helpers::cookie_pair(res)
}

#[tokio::test]
async fn sign_up_enforces_the_username_and_password_rules_with_clear_messages() {
    let app = spawn_app().await;
    let cases = [
        (("al", "long enough"), "3 to 24"),
        (("9lives", "long enough"), "starts with a letter"),
        (("guest~abc", "long enough"), "'~'"),
        (("alice", "short"), "at least 8"),
    ];
    for ((username, password), says) in cases {
        let res = app
            .form(
                "/api/signup",
                None,
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(res.status(), 422, "{username} {password}");
        let err: Value = res.json().await.expect("json");
        assert!(
            err["message"].as_str().expect("message").contains(says),
            "{err} should say {says}"
        );
    }
    let ok = app
        .form(
            "/api/signup",
            None,
            &[("username", "Alice"), ("password", "wonderland")],
        )
        .await;
    assert_eq!(ok.status(), 201);
    let taken = app
        .form(
            "/api/signup",
            None,
            &[("username", "alice"), ("password", "wonderland")],
        )
        .await;
    assert_eq!(
        taken.status(),
        409,
        "usernames are unique regardless of case"
    );
}

#[tokio::test]
async fn signing_in_checks_the_password_and_issues_a_new_token_each_time() {
    let app = spawn_app().await;
    app.form(
        "/api/signup",
        None,
        &[("username", "bob"), ("password", "builder123")],
    )
    .await;
    let wrong = app
        .form(
            "/api/signin",
            None,
            &[("username", "bob"), ("password", "builder124")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let err: Value = wrong.json().await.expect("json");
    assert_eq!(err["message"], "Wrong username or password.");
    let unknown = app
        .form(
            "/api/signin",
            None,
            &[("username", "nobody"), ("password", "builder123")],
        )
        .await;
    assert_eq!(unknown.status(), 401, "unknown users get the same answer");

    let one = app
        .form(
            "/api/signin",
            None,
            &[("username", "BOB"), ("password", "builder123")],
        )
        .await;
    assert_eq!(one.status(), 200);
    let two = app
        .form(
            "/api/signin",
            None,
            &[("username", "bob"), ("password", "builder123")],
        )
        .await;
    let (c1, c2) = (session_cookie(&one), session_cookie(&two));
    assert_ne!(c1, c2, "every sign-in gets a fresh token");
    // Tokens are stored hashed: the raw token is nowhere in the database.
    let token = c1.split_once('=').expect("pair").1.to_owned();
    let mut db = app.db().await;
    let hits: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions WHERE token_hash = $1 OR CAST(token_hash AS TEXT) = $2",
    )
    .bind(token.as_bytes())
    .bind(&token)
    .fetch_one(&mut db)
    .await
    .expect("query");
    assert_eq!(hits, 0);
}

#[tokio::test]
async fn a_form_post_signs_in_with_a_redirect_and_a_bad_one_comes_back_with_the_error() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // What a browser sends with a plain form post: it wants a page back.
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let res = http
        .post(app.url("/api/signup"))
        .header("Origin", app.origin())
        .header("Accept", html)
        .form(&[("username", "carol"), ("password", "carols-password")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app");
    session_cookie(&res);
    let res = http
        .post(app.url("/api/signin"))
        .header("Origin", app.origin())
        .header("Accept", html)
        .form(&[("username", "carol"), ("password", "nope nope")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().expect("ascii");
    assert!(
        to == "/?mode=signin&username=carol&error=wrong_password",
        "{to}"
    );
}

#[tokio::test]
async fn guests_get_marked_names_that_no_account_can_take() {
    let app = spawn_app().await;
    let g = app.guest().await;
    assert!(g.me.is_guest);
    assert!(g.me.username.starts_with("guest~"), "{}", g.me.username);
    assert!(
        g.me.display_name.starts_with("Guest "),
        "{}",
        g.me.display_name
    );
    let res = app
        .form(
            "/api/signin",
            None,
            &[("username", &g.me.username), ("password", "")],
        )
        .await;
    assert_eq!(
        res.status(),
        401,
        "a guest cannot be signed into with a password"
    );
}

#[tokio::test]
async fn an_expired_session_closes_its_socket_with_the_session_ended_code() {
    let app = spawn_app_with(|c| c.sessions.idle_seconds = Some(2)).await;
    let a = app.guest().await;
    let mut ws = app.online(&a).await;
    assert_eq!(ws.close_code().await, close::SESSION_ENDED);
    assert_eq!(app.try_connect(Some(&a.token), None).await.err(), Some(401));
    let res = app
        .http
        .get(app.url("/api/session"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn refreshing_slides_the_idle_expiry_within_the_absolute_lifetime() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let before: Value = app
        .http
        .get(app.url("/api/session"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let refreshed_at = messenger::server::store::now_ms();
    let after: Value = app
        .post("/api/session/refresh", Some(&a.token), json!({}))
        .await
        .json()
        .await
        .expect("json");
    // Slid to a full idle period (20 minutes by default) from the refresh.
    let idle = 20 * 60 * 1000;
    assert!(after["idle_expires_at"].as_i64().expect("ms") >= refreshed_at + idle);
    assert!(after["idle_expires_at"].as_i64() >= before["idle_expires_at"].as_i64());
    assert!(after["idle_expires_at"].as_i64() <= after["absolute_expires_at"].as_i64());
    assert_eq!(after["absolute_expires_at"], before["absolute_expires_at"]);
}

#[tokio::test]
async fn signing_out_ends_the_session_and_closes_its_sockets_only() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let b = app.guest().await;
    let mut wa = app.online(&a).await;
    let mut wb = app.online(&b).await;
    let res = app.form("/api/signout", Some(&a.token), &[]).await;
    assert_eq!(res.status(), 204);
    assert_eq!(wa.close_code().await, close::SESSION_ENDED);
    assert_eq!(app.try_connect(Some(&a.token), None).await.err(), Some(401));
    // b's socket is untouched.
    let conv = app.dm(&b, &app.guest().await).await;
    wb.sync(conv, 0).await;
    assert!(matches!(
        wb.until(|f| matches!(f, messenger::protocol::ServerFrame::Synced { .. }))
            .await,
        messenger::protocol::ServerFrame::Synced { .. }
    ));
}

#[tokio::test]
async fn signing_in_can_sign_out_every_other_session_and_their_sockets_close() {
    let app = spawn_app().await;
    app.signup_cookie("yara", "yara's password").await;
    let token = |body: serde_json::Value| {
        let http = app.http.clone();
        let url = app.url("/api/token");
        async move {
            let res = http.post(url).json(&body).send().await.expect("token");
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.expect("json")["token"]
                .as_str()
                .expect("token")
                .to_owned()
        }
    };
    let creds = serde_json::json!({ "username": "yara", "password": "yara's password" });
    let (laptop, phone) = (token(creds.clone()).await, token(creds.clone()).await);
    let mut laptop_ws = app.try_connect(Some(&laptop), None).await.expect("upgrade");
    laptop_ws.hello().await;
    // A third sign-in, from the window, with the box ticked.
    let res = app
        .form(
            "/api/signin",
            None,
            &[
                ("username", "yara"),
                ("password", "yara's password"),
                ("sign_out_others", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        laptop_ws.close_code().await,
        messenger::protocol::close::SESSION_ENDED
    );
    let session = |t: String| {
        let http = app.http.clone();
        let url = app.url("/api/session");
        async move {
            http.get(url)
                .bearer_auth(t)
                .send()
                .await
                .expect("get")
                .status()
        }
    };
    assert_eq!(session(laptop).await, 401);
    assert_eq!(session(phone).await, 401);
    // The endpoint on its own: the caller's session stays.
    let (a, b) = (token(creds.clone()).await, token(creds).await);
    let res = app
        .http
        .post(app.url("/api/signout-others"))
        .bearer_auth(&b)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert!(res.json::<u64>().await.expect("a count") >= 2);
    assert_eq!(session(a).await, 401);
    assert_eq!(session(b).await, 200);
}
