//! Input the server cannot read gets the same answer as any refusal: the `{"error",
//! "message"}` body with the status of its code.

use crate::helpers::spawn_app;
use serde_json::Value;

/// The status and the error code of a response.
async fn refusal(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("a JSON error body");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, body["error"].as_str().expect("a code").to_owned())
}

#[tokio::test]
async fn unreadable_bodies_ids_and_queries_are_refused_with_the_error_body() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let post = |path: &str, content_type: &str, body: &'static str| {
        app.http
            .post(app.url(path))
            .header("Origin", app.origin())
            .header("Content-Type", content_type)
            .bearer_auth(&a.token)
            .body(body)
            .send()
    };
    // JSON endpoints: not JSON, and JSON that does not fit.
    let res = post("/api/dm", "text/plain", "bob").await.expect("post");
    assert_eq!(refusal(res).await, (415, "unsupported_media_type".into()));
    let res = post("/api/dm", "application/json", "{\"username\":")
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
    let res = post("/api/groups", "application/json", "{\"name\": 7}")
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
    // Form endpoints (server functions): JSON is not a form.
    let res = post(
        "/api/signup",
        "application/json",
        "{\"username\":\"ann\",\"password\":\"long enough\"}",
    )
    .await
    .expect("post");
    assert_eq!(refusal(res).await, (415, "unsupported_media_type".into()));
    // An id that is not a number is no address at all; a query that does not fit is invalid.
    let res = post("/api/contacts/abc/accept", "application/json", "{}")
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (404, "not_found".into()));
    let res = app
        .http
        .get(app.url("/api/rooms?after=first"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("get");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
    let res = app
        .http
        .get(app.url("/api/history?conv=x"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("get");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_error_body_however_it_is_sent() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let big = format!("{{\"username\":\"{}\"}}", "x".repeat(100 * 1024));
    // With its length announced: refused before it is read.
    let res = app
        .http
        .post(app.url("/api/dm"))
        .header("Origin", app.origin())
        .header("Content-Type", "application/json")
        .bearer_auth(&a.token)
        .body(big.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (413, "too_large".into()));
    // The same to a server function (a form).
    let field = "x".repeat(100 * 1024);
    let res = app
        .form(
            "/api/signin",
            None,
            &[("username", &field), ("password", "p")],
        )
        .await;
    assert_eq!(refusal(res).await, (413, "too_large".into()));
    // In chunks, without a length: refused while it is read.
    let (status, body) = chunked_post(&app, "/api/dm", &a.token, big.as_bytes()).await;
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!((status, body["error"].as_str()), (413, Some("too_large")));
}

/// Posts `body` as JSON in chunks (no `Content-Length`) over a plain connection; returns the
/// status and the body (de-chunked).
async fn chunked_post(
    app: &crate::helpers::TestApp,
    path: &str,
    token: &str,
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr,
        app.origin()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    for chunk in body.chunks(8 * 1024) {
        let sent = tcp
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .and(tcp.write_all(chunk).await)
            .and(tcp.write_all(b"\r\n").await);
        if sent.is_err() {
            break; // the server answered and closed before the rest
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        rest.to_owned()
    };
    (status, body)
}

#[tokio::test]
async fn only_a_browsers_own_form_submission_is_answered_with_redirects() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let signin = |headers: &[(&'static str, &'static str)], password: &'static str| {
        let mut req = http
            .post(app.url("/api/signin"))
            .header("Origin", app.origin())
            .header("Referer", app.url("/"))
            .form(&[("username", "nobody-here"), ("password", password)]);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
    };
    // A browser's navigation, and a client too old to say so that asks for a page only.
    for headers in [
        &[("Accept", html), ("Sec-Fetch-Mode", "navigate")][..],
        &[("Accept", html)][..],
    ] {
        let res = signin(headers, "wrong").await.expect("post");
        assert_eq!(res.status(), 303, "{headers:?}");
        let to = res.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            to == "/?mode=signin&username=nobody-here&error=wrong_password",
            "{to}"
        );
    }
    // A script in a browser (it says cors), or a client that takes JSON too: the JSON answer,
    // even though its Accept names HTML (the framework would have sent it to the referrer).
    for headers in [
        &[("Accept", html), ("Sec-Fetch-Mode", "cors")][..],
        &[("Accept", "text/html, application/json")][..],
    ] {
        let res = signin(headers, "wrong").await.expect("post");
        assert_eq!(
            refusal(res).await,
            (401, "unauthorized".into()),
            "{headers:?}"
        );
    }
    // A browser form refused before the function read it (too large) still goes back to the
    // sign-in window, with the reason.
    let field = "x".repeat(100 * 1024);
    let res = http
        .post(app.url("/api/signup"))
        .header("Origin", app.origin())
        .header("Accept", html)
        .header("Sec-Fetch-Mode", "navigate")
        .form(&[("username", field.as_str()), ("password", "p")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().expect("ascii");
    assert!(to == "/?mode=signup&error=too_large", "{to}");
    // A history link opened in a tab is answered in JSON, not sent back where it came from.
    let res = http
        .get(app.url("/api/history?conv=1"))
        .header("Accept", html)
        .header("Sec-Fetch-Mode", "navigate")
        .header("Referer", app.url("/app"))
        .send()
        .await
        .expect("get");
    assert_eq!(refusal(res).await, (401, "unauthorized".into()));
    // A method the address does not take.
    let res = http.get(app.url("/api/signup")).send().await.expect("get");
    assert_eq!(refusal(res).await, (405, "invalid".into()));
    // The WebSocket address, asked for something else than an upgrade.
    let res = http.get(app.url("/ws")).send().await.expect("get");
    assert_eq!(refusal(res).await, (426, "invalid".into()));
    let res = http
        .post(app.url("/ws"))
        .header("Origin", app.origin())
        .send()
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (405, "invalid".into()));
}

#[tokio::test]
async fn the_sign_in_window_shows_only_its_own_texts_whatever_the_address_says() {
    let app = spawn_app().await;
    let page = |query: &'static str| {
        let url = app.url(&format!("/?{query}"));
        let http = app.http.clone();
        async move {
            let res = http.get(url).send().await.expect("get");
            assert_eq!(res.status(), 200);
            res.text().await.expect("html")
        }
    };
    let html = page("error=Your+account+is+locked.+Call+0900-EVIL+to+unlock").await;
    assert!(!html.contains("0900-EVIL"), "free text is never shown");
    assert!(!html.contains("role=\"alert\""), "nor an empty alert");
    let html = page("error=wrong_password").await;
    assert!(
        html.contains("Wrong username or password."),
        "a code shows its text"
    );
}
