//! The door: failed sign-ins limited per address, per account from an address and per
//! account (beyond which a solved challenge is asked for); accounts and guests limited per
//! address; bot verification (ALTCHA, or Turnstile against a stand-in of its API).

use crate::helpers::*;
use base64::{engine::general_purpose::STANDARD, Engine};
use messenger::server::{
    config::{Config, VerificationKind},
    limits::stored::Allowance,
};
use serde_json::{json, Value};

fn allowance(s: &str) -> Allowance {
    s.parse().expect("a valid allowance")
}

/// `POST /api/token` as a script would, optionally forwarded for `from` by a trusted proxy.
async fn token(app: &TestApp, body: Value, from: Option<&str>) -> reqwest::Response {
    let mut req = app.http.post(app.url("/api/token")).json(&body);
    if let Some(from) = from {
        req = req.header("X-Forwarded-For", from);
    }
    req.send().await.expect("request")
}

async fn sign_in(
    app: &TestApp,
    user: &str,
    password: &str,
    from: Option<&str>,
) -> reqwest::Response {
    token(app, json!({ "username": user, "password": password }), from).await
}

async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("an error body");
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn behind_proxy(c: &mut Config) {
    c.limits.trusted_proxies = vec!["127.0.0.1/32".parse().expect("literal")];
}

/// Solves a challenge from the server as the widget would; the `proof` to send.
async fn solve(app: &TestApp) -> String {
    let res = app
        .http
        .get(app.url("/api/challenge"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let challenge: altcha::Challenge = res.json().await.expect("a challenge");
    let solution = altcha::solve_challenge(altcha::SolveChallengeOptions::new(&challenge))
        .expect("solvable")
        .expect("solved in time");
    let payload = json!({ "challenge": challenge, "solution": solution });
    STANDARD.encode(payload.to_string())
}

/// ALTCHA on, with challenges cheap enough for tests.
fn altcha(c: &mut Config) {
    c.verification.kind = Some(VerificationKind::Altcha);
    c.verification.altcha_cost = 10;
    c.verification.altcha_max_tries = 40;
}

#[tokio::test]
async fn failed_sign_ins_from_one_address_are_limited_with_a_wait_that_survives_a_restart() {
    let tune = |c: &mut Config| c.limits.signin_per_address = allowance("3/1h");
    let app = spawn_app_with(tune).await;
    app.signup_cookie("olivia", "the right password").await;
    for _ in 0..3 {
        assert_eq!(
            code(sign_in(&app, "olivia", "wrong", None).await).await.0,
            401
        );
    }
    let res = sign_in(&app, "olivia", "the right password", None).await;
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait > 60 && wait <= 1200, "about twenty minutes: {wait}");
    assert_eq!(code(res).await, (429, "too_many_requests".into()));
    // Another account from the same address: the same bucket.
    assert_eq!(code(sign_in(&app, "nobody", "x", None).await).await.0, 429);
    // A restart forgets nothing.
    let app = app.restarted(tune).await;
    assert_eq!(
        code(sign_in(&app, "olivia", "the right password", None).await)
            .await
            .0,
        429
    );
}

#[tokio::test]
async fn a_right_password_costs_nothing_and_one_account_from_one_address_has_its_own_limit() {
    let app = spawn_app_with(|c| {
        behind_proxy(c);
        c.limits.signin_per_account_address = allowance("2/1h");
    })
    .await;
    app.signup_cookie("pavel", "the right password").await;
    // Right passwords do not count.
    for _ in 0..5 {
        assert_eq!(
            sign_in(&app, "pavel", "the right password", Some("203.0.113.1"))
                .await
                .status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            code(sign_in(&app, "pavel", "wrong", Some("203.0.113.1")).await)
                .await
                .0,
            401
        );
    }
    assert_eq!(
        code(sign_in(&app, "PAVEL", "the right password", Some("203.0.113.1")).await).await,
        (429, "too_many_requests".into()),
        "the account is the same whatever its case"
    );
    // The owner elsewhere is not locked out, nor is another account from that address.
    assert_eq!(
        sign_in(&app, "pavel", "the right password", Some("198.51.100.9"))
            .await
            .status(),
        200
    );
    assert_eq!(
        code(sign_in(&app, "someone", "wrong", Some("203.0.113.1")).await)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn many_failures_on_one_account_ask_for_a_solved_challenge_never_a_lockout() {
    let app = spawn_app_with(|c| {
        behind_proxy(c);
        altcha(c);
        // The first try below, before the account exists, counts too.
        c.limits.signin_per_account = allowance("3/1h");
    })
    .await;
    let proof = solve(&app).await;
    let res = token(
        &app,
        json!({ "username": "quinn", "password": "the right password", "guest": false, "proof": proof }),
        None,
    )
    .await;
    assert_eq!(res.status(), 401, "no such account yet");
    let form = app
        .http
        .post(app.url("/api/signup"))
        .form(&[
            ("username", "quinn"),
            ("password", "the right password"),
            ("proof", &solve(&app).await),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(form.status(), 201, "{:?}", form.text().await);
    // Two guessers from two addresses use up the account's failures...
    let res = sign_in(&app, "quinn", "guess1", Some("203.0.113.1")).await;
    let status = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(status, 401, "{text}");
    assert_eq!(
        code(sign_in(&app, "quinn", "guess2", Some("203.0.113.2")).await)
            .await
            .0,
        401
    );
    // ... and from anywhere the account now asks for a solved challenge, even with the
    // right password; no wait is imposed on the owner.
    let res = sign_in(&app, "quinn", "the right password", Some("198.51.100.7")).await;
    assert!(res.headers().get("retry-after").is_none());
    assert_eq!(code(res).await, (403, "challenge_required".into()));
    let proof = solve(&app).await;
    let with = |proof: &str| json!({ "username": "quinn", "password": "the right password", "proof": proof });
    assert_eq!(
        token(&app, with(&proof), Some("198.51.100.7"))
            .await
            .status(),
        200
    );
    // A solved challenge opens the door once.
    assert_eq!(
        code(token(&app, with(&proof), Some("198.51.100.7")).await).await,
        (403, "challenge_required".into())
    );
    // Something that is not a solution is no proof.
    let forged = STANDARD.encode(r#"{"challenge":{},"solution":{}}"#);
    assert_eq!(code(token(&app, with(&forged), None).await).await.0, 403);
    assert_eq!(code(token(&app, with("%%%"), None).await).await.0, 403);
}

#[tokio::test]
async fn one_address_creates_so_many_guests_and_accounts() {
    let app = spawn_app_with(|c| {
        behind_proxy(c);
        c.limits.guests_per_address = allowance("3/1h");
        c.limits.signups_per_address = allowance("2/1h");
    })
    .await;
    let guest = || token(&app, json!({ "guest": true }), Some("203.0.113.5"));
    for _ in 0..3 {
        assert_eq!(guest().await.status(), 200);
    }
    let res = guest().await;
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(code(res).await, (429, "too_many_requests".into()));
    // Another address is not affected.
    assert_eq!(
        token(&app, json!({ "guest": true }), Some("203.0.113.6"))
            .await
            .status(),
        200
    );

    let signup = |name: &'static str| {
        app.http
            .post(app.url("/api/signup"))
            .header("X-Forwarded-For", "203.0.113.5")
            .form(&[("username", name), ("password", "a long enough password")])
            .send()
    };
    assert_eq!(signup("rita").await.expect("post").status(), 201);
    // A name that is taken creates nothing and costs nothing.
    assert_eq!(signup("rita").await.expect("post").status(), 409);
    assert_eq!(signup("sam").await.expect("post").status(), 201);
    let res = signup("tess").await.expect("post");
    assert_eq!(code(res).await, (429, "too_many_requests".into()));
}

#[tokio::test]
async fn with_altcha_every_new_account_and_guest_needs_a_solved_challenge_used_once() {
    let app = spawn_app_with(altcha).await;
    assert_eq!(
        code(token(&app, json!({ "guest": true }), None).await).await,
        (403, "challenge_required".into())
    );
    let proof = solve(&app).await;
    let guest = json!({ "guest": true, "proof": proof });
    assert_eq!(token(&app, guest.clone(), None).await.status(), 200);
    assert_eq!(
        code(token(&app, guest, None).await).await.0,
        403,
        "a replay"
    );
    // The sign-up form too; a browser's form comes back with the code.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = browser
        .post(app.url("/api/signup"))
        .header("Origin", app.origin())
        .header("Accept", "text/html")
        .header("Sec-Fetch-Mode", "navigate")
        .form(&[("username", "uma"), ("password", "a long enough password")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/?mode=signup&username=uma&error=verification_needed"
    );
}

#[tokio::test]
async fn a_spent_challenge_stays_spent_across_a_restart() {
    let app = spawn_app_with(altcha).await;
    let proof = solve(&app).await;
    let guest = json!({ "guest": true, "proof": proof });
    assert_eq!(token(&app, guest.clone(), None).await.status(), 200);
    let app = app.restarted(altcha).await;
    assert_eq!(code(token(&app, guest, None).await).await.0, 403);
}

#[tokio::test]
async fn without_altcha_there_is_no_challenge_to_fetch() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/challenge"))
        .send()
        .await
        .expect("get");
    assert_eq!(code(res).await, (404, "not_found".into()));
}

/// A stand-in for Turnstile's siteverify: "good" passes (once the secret is right and the
/// client's address is given), "slow" never answers in time, "broken" is a server error,
/// anything else fails. It records what it was asked.
async fn turnstile_stand_in() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>,
) {
    use axum::{extract::State, routing::post, Form, Json, Router};
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>;
    let seen: Seen = Default::default();
    async fn verify(
        State(seen): State<Seen>,
        Form(fields): Form<Vec<(String, String)>>,
    ) -> Result<Json<Value>, axum::http::StatusCode> {
        seen.lock().expect("lock").push(fields.clone());
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("response") {
            // Never answers: the server's own timeout must decide.
            Some("slow") => std::future::pending().await,
            Some("broken") => Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            Some("good") if get("secret") == Some("the-secret") && get("remoteip").is_some() => {
                Ok(Json(json!({ "success": true })))
            }
            _ => Ok(Json(
                json!({ "success": false, "error-codes": ["invalid-input-response"] }),
            )),
        }
    }
    let app = Router::new()
        .route("/siteverify", post(verify))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/siteverify", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn turnstile_is_asked_and_anything_but_a_clear_yes_is_a_no() {
    let (url, seen) = turnstile_stand_in().await;
    let app = spawn_app_with(move |c| {
        c.verification.kind = None; // chosen because a site key and secret are set
        c.verification.turnstile_site_key = Some("the-site-key".into());
        c.verification.turnstile_secret = Some("the-secret".into());
        c.verification.turnstile_verify_url = url;
    })
    .await;
    let guest = |proof: &'static str| token(&app, json!({ "guest": true, "proof": proof }), None);
    assert_eq!(guest("good").await.status(), 200);
    assert_eq!(code(guest("bad").await).await.0, 403);
    assert_eq!(
        code(guest("broken").await).await.0,
        403,
        "an error fails closed"
    );
    assert_eq!(
        code(guest("slow").await).await.0,
        403,
        "a timeout fails closed"
    );
    let asked = seen.lock().expect("lock").clone();
    assert_eq!(asked.len(), 4);
    assert!(asked[0].contains(&("remoteip".to_owned(), "127.0.0.1".to_owned())));
    // The sign-in window shows Turnstile's widget with the site key.
    let html = app
        .http
        .get(app.url("/"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(html.contains("the-site-key"), "the widget is on the page");
    assert!(!html.contains("the-secret"));
}
