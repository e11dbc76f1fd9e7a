//! Upgrade checks, Origin and CSRF rules, size limits.

use crate::helpers::{spawn_app, spawn_app_with, Ws};
use futures::SinkExt;
use messenger::protocol::{close, ServerFrame, MAX_FRAME_BYTES};
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest,
    http::HeaderValue,
    protocol::frame::{
        coding::{Data, OpCode},
        Frame,
    },
    Message,
};

#[tokio::test]
async fn an_upgrade_without_a_live_session_is_refused() {
    let app = spawn_app().await;
    assert_eq!(app.try_connect(None, None).await.err(), Some(401));
    assert_eq!(
        app.try_connect(Some("made-up-token"), None).await.err(),
        Some(401)
    );
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_refused() {
    let app = spawn_app().await;
    let a = app.guest().await;
    assert_eq!(
        app.try_connect(Some(&a.token), Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert!(app
        .try_connect(Some(&a.token), Some(&app.origin()))
        .await
        .is_ok());
    let localhost = format!("http://localhost:{}", app.addr.port());
    assert!(app
        .try_connect(Some(&a.token), Some(&localhost))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_cookie_alone_cannot_change_state_from_another_origin_or_without_one() {
    let app = spawn_app().await;
    let cookie = app.signup_cookie("mallory", "mallory-pass").await;
    let signout = |origin: Option<&str>| {
        let mut req = app
            .http
            .post(app.url("/api/signout"))
            .header("Cookie", &cookie)
            .form(&[] as &[(&str, &str)]);
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        req.send()
    };
    assert_eq!(
        signout(Some("http://evil.example"))
            .await
            .expect("post")
            .status(),
        403
    );
    assert_eq!(signout(None).await.expect("post").status(), 403);
    // The session survived both attempts.
    let me = app
        .http
        .get(app.url("/api/session"))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(me.status(), 200);
    assert_eq!(
        signout(Some(&app.origin())).await.expect("post").status(),
        204
    );
}

#[tokio::test]
async fn a_cookie_socket_needs_an_origin() {
    let app = spawn_app().await;
    let cookie = app.signup_cookie("trent", "trent-pass").await;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
    let mut req = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("cookie", HeaderValue::from_str(&cookie).expect("header"));
    assert_eq!(crate::helpers::Ws::open(req.clone()).await.err(), Some(403));
    req.headers_mut().insert(
        "origin",
        HeaderValue::from_str(&app.origin()).expect("header"),
    );
    assert!(crate::helpers::Ws::open(req).await.is_ok());
}

#[tokio::test]
async fn what_is_not_a_websocket_handshake_is_refused_with_a_clear_status() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let http = reqwest::Client::new();
    let get = |headers: &[(&str, &str)]| {
        let mut req = http
            .get(app.url("/ws"))
            .bearer_auth(&a.token)
            .header("origin", app.origin());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
    };
    let plain = get(&[]).await.expect("plain GET");
    assert_eq!(plain.status(), 426);
    assert!(plain.text().await.expect("body").contains("WebSocket"));
    let upgrade = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let old_version = get(&[
        upgrade[0],
        upgrade[1],
        upgrade[2],
        ("sec-websocket-version", "8"),
    ])
    .await
    .expect("old version");
    assert_eq!(old_version.status(), 400);
    let no_key = get(&[upgrade[0], upgrade[1], ("sec-websocket-version", "13")])
        .await
        .expect("no key");
    assert_eq!(no_key.status(), 400);
    let posted = http
        .post(app.url("/ws"))
        .bearer_auth(&a.token)
        .header("origin", app.origin())
        .send()
        .await
        .expect("POST");
    assert_eq!(posted.status(), 405);
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket_with_the_too_big_code() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let mut ws = app.online(&a).await;
    let huge = format!(
        r#"{{"t":"send","conv":1,"client_id":"x","body":"{}"}}"#,
        "z".repeat(MAX_FRAME_BYTES)
    );
    ws.stream.send(Message::text(huge)).await.expect("send");
    assert_eq!(ws.close_code().await, close::TOO_BIG);
}

/// The client's frames as RFC 6455 allows them (the server reads them itself, `ws::wire`):
/// a text message in fragments, with a ping between them, is one client frame; binary data
/// and text that is not UTF-8 close the socket, each with its code.
#[tokio::test]
async fn fragments_join_and_what_is_not_json_text_closes_with_its_code() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let mut ws = app.online(&a).await;
    let ping = br#"{"t":"ping"}"#;
    let text = |bytes: &[u8], fin| Frame::message(bytes.to_vec(), OpCode::Data(Data::Text), fin);
    let more =
        |bytes: &[u8], fin| Frame::message(bytes.to_vec(), OpCode::Data(Data::Continue), fin);
    for frame in [
        Message::Frame(text(&ping[..3], false)),
        Message::Ping(b"between".to_vec().into()),
        Message::Frame(more(&ping[3..7], false)),
        Message::Frame(more(&ping[7..], true)),
    ] {
        ws.stream.send(frame).await.expect("send");
    }
    ws.until(|f| matches!(f, ServerFrame::Pong {})).await;

    ws.stream
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(
        ws.close_frame().await,
        (close::PROTOCOL_ERROR, "frames are JSON text".to_owned())
    );

    let mut ws = app.online(&a).await;
    ws.stream
        .send(Message::Frame(text(b"{\"t\":\"p\xffing\"}", true)))
        .await
        .expect("send");
    assert_eq!(ws.close_code().await, close::NOT_UTF8);
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/")).send().await.expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn only_the_main_window_loads_the_islands_bundle() {
    let app = spawn_app().await;
    let signin = app.http.get(app.url("/")).send().await.expect("get");
    assert_eq!(signin.status(), 200);
    let html = signin.text().await.expect("html");
    assert!(html.contains("Sign in to Messenger"), "{html}");
    assert!(
        !html.contains("messenger.wasm") && !html.contains("/pkg/messenger.js"),
        "{html}"
    );

    let cookie = app.signup_cookie("paige", "long enough password").await;
    let main = app
        .http
        .get(app.url("/app"))
        .header("Cookie", cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(main.status(), 200);
    let html = main.text().await.expect("html");
    assert!(html.contains("/pkg/messenger.js"), "{html}");
}

#[tokio::test]
async fn the_bundle_is_sent_as_compressed_at_build_time_when_the_browser_takes_it() {
    let site = tempfile::tempdir().expect("temp dir");
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).expect("pkg");
    std::fs::write(pkg.join("messenger.js"), "export const plain = 1;").expect("js");
    // Not real brotli: the point is that these very bytes are sent, untouched.
    std::fs::write(pkg.join("messenger.js.br"), b"pretend-brotli").expect("br");
    let root = site.path().to_owned();
    let app = spawn_app_with(move |cfg| cfg.server.site_root = root).await;

    let res = app
        .http
        .get(app.url("/pkg/messenger.js"))
        .header("Accept-Encoding", "br")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "br");
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"pretend-brotli");

    // A client that does not take brotli gets the file itself.
    let res = app
        .http
        .get(app.url("/pkg/messenger.js"))
        .header("Accept-Encoding", "identity")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(res.text().await.expect("body"), "export const plain = 1;");
}

#[tokio::test]
async fn a_lower_case_bearer_scheme_is_accepted_over_http_and_for_the_socket() {
    let app = spawn_app().await;
    let user = app.guest().await;
    let res = app
        .http
        .get(app.url("/api/session"))
        .header("Authorization", format!("bearer {}", user.token))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let mut req = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("bearer {}", user.token)).expect("header"),
    );
    let mut ws = Ws::open(req).await.expect("upgrade accepted");
    ws.hello().await;
}

#[tokio::test]
async fn pages_carry_a_strict_policy_with_a_fresh_nonce_and_personal_answers_are_not_stored() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/")).send().await.expect("get");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(page.headers()["cache-control"], "no-store");
    for must in [
        "script-src 'self' 'nonce-",
        "'wasm-unsafe-eval'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(must), "{must} in {csp}");
    }
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    let scripts = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .expect("script-src");
    assert!(!scripts.contains("'unsafe-inline'"), "{scripts}");
    // A fresh nonce per page.
    let again = app.http.get(app.url("/")).send().await.expect("get");
    assert_ne!(
        again.headers()["content-security-policy"]
            .to_str()
            .expect("ascii"),
        csp
    );

    // The main window's inline scripts carry the nonce its policy names.
    let user = app.guest().await;
    let res = app
        .http
        .get(app.url("/app"))
        .header("Cookie", format!("messenger_session={}", user.token))
        .send()
        .await
        .expect("get");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a nonce")
        .to_owned();
    let html = res.text().await.expect("html");
    let inline = html.matches("<script").count() - html.matches("<script src").count();
    assert!(inline > 0, "the islands' loader is inline");
    let with_nonce = html
        .split("<script")
        .skip(1)
        .filter(|tag| !tag.starts_with(" src") && tag.contains(&format!("nonce=\"{nonce}\"")))
        .count();
    assert_eq!(with_nonce, inline, "every inline script carries the nonce");
    // API answers with personal data are not stored by caches; the bundle keeps its caching.
    let res = app
        .http
        .get(app.url("/api/session"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("get");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .starts_with("default-src 'none'"));
    assert!(
        res.headers().get("strict-transport-security").is_none(),
        "not over http"
    );
}

#[tokio::test]
async fn a_request_for_another_host_is_refused_but_health_answers_any() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/"))
        .header("Host", "rebound.example")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .get(app.url("/health"))
        .header("Host", "lb.internal")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .get(format!("http://localhost:{}/health", app.addr.port()))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_https_public_origin_brings_hsts() {
    let app = spawn_app_with(|c| {
        c.server.public_origin = vec!["https://chat.example.org".into()];
    })
    .await;
    let res = app.http.get(app.url("/health")).send().await.expect("get");
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    // And the host check answers for the configured name only.
    let res = app
        .http
        .get(app.url("/api/session"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .get(app.url("/api/session"))
        .header("Host", "chat.example.org")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
}

/// What a browser cannot send, a script can: a request line naming another host, or two
/// `Host` headers. Neither gets the site.
#[tokio::test]
async fn an_absolute_request_line_or_two_hosts_cannot_name_another_host() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let ours = format!("127.0.0.1:{}", app.addr.port());
    for request in [
        format!("GET http://evil.example/ HTTP/1.1\r\nHost: {ours}\r\nConnection: close\r\n\r\n"),
        format!(
            "GET / HTTP/1.1\r\nHost: {ours}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        ),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.expect("read");
        let status = answer.split(' ').nth(1).unwrap_or_default().to_owned();
        assert!(
            status == "403" || status == "400",
            "{request:?} got {status}"
        );
    }
}

/// Sign-ins (with the address) and failed ones land in the audit log; its chain holds, and
/// an entry edited behind the server's back is named by `audit verify`; the sink file gets
/// every entry as a JSON line.
#[tokio::test]
async fn the_audit_log_records_sign_ins_and_finds_an_edited_entry() {
    crate::sqlite_only!();
    use messenger::server::config::{AuditCommand, Command};
    let sink_dir = tempfile::tempdir().expect("dir");
    let sink = sink_dir.path().join("audit.jsonl");
    let app = spawn_app_with(|c| c.store.audit_sink = Some(sink.clone())).await;
    let cookie = app.signup_cookie("auditee", "the right password").await;
    assert!(!cookie.is_empty());
    for password in ["a wrong one", "the right password"] {
        let res = app
            .http
            .post(app.url("/api/token"))
            .json(&serde_json::json!({ "username": "auditee", "password": password }))
            .send()
            .await
            .expect("sign-in");
        assert!(res.status() == 401 || res.status() == 200);
    }
    let mut db = app.db().await;
    let events: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT event, address FROM audit_log ORDER BY id")
            .fetch_all(&mut db)
            .await
            .expect("entries");
    assert_eq!(
        events,
        [
            ("sign_in_failed".to_owned(), Some("127.0.0.1".to_owned())),
            ("sign_in".to_owned(), Some("127.0.0.1".to_owned())),
        ]
    );
    let lines = std::fs::read_to_string(&sink).expect("sink");
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let store_cfg = app.state.cfg.store.clone();
    let verify = || messenger::server::admin::run(&store_cfg, Command::Audit(AuditCommand::Verify));
    verify().await.expect("the chain holds");
    // Someone with the file edits the failed attempt away (the triggers stop the server's own
    // connection; a hand on the file can drop them).
    sqlx::query("DROP TRIGGER audit_log_append_only_update")
        .execute(&mut db)
        .await
        .expect("drop");
    sqlx::query("UPDATE audit_log SET detail = '{}' WHERE event = 'sign_in_failed'")
        .execute(&mut db)
        .await
        .expect("edit");
    let broken = verify().await.expect_err("the edit is found");
    assert!(
        format!("{broken:#}").contains("broken at entry 1"),
        "{broken:#}"
    );
}
