//! What one user or one address may consume: sockets per user, per address and in all.

use crate::helpers::*;
use messenger::protocol::{close, ServerFrame};
use std::time::Duration;

/// Opens sockets for `user` until one is refused; the open ones and the refused one's close.
async fn fill(app: &TestApp, user: &User, most: usize) -> (Vec<Ws>, Option<(u16, String)>) {
    let mut open = Vec::new();
    for _ in 0..most {
        let mut ws = app.connect(user).await;
        match ws.next_event().await {
            Event::Frame(ServerFrame::Hello { .. }) => open.push(ws),
            Event::Frame(f) => panic!("expected hello or a close, got {f:?}"),
            Event::Closed(c) => {
                let c = c.expect("a close frame saying why");
                return (open, Some((c.code.into(), c.reason.to_string())));
            }
        }
    }
    (open, None)
}

#[tokio::test]
async fn one_user_gets_so_many_sockets_and_is_told_why_beyond() {
    let app = spawn_app_with(|c| c.limits.sockets_per_user = 3).await;
    let user = app.guest().await;
    let (mut open, refused) = fill(&app, &user, 10).await;
    assert_eq!(open.len(), 3, "three sockets open");
    assert_eq!(
        refused,
        Some((
            close::TOO_MANY_SOCKETS,
            "too many connections for this user".to_owned()
        ))
    );
    // Another user is not affected.
    let other = app.guest().await;
    app.online(&other).await;
    // A closed socket gives its place back.
    let mut gone = open.pop().expect("an open socket");
    gone.stream.close(None).await.expect("close");
    drop(gone);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (more, refused) = fill(&app, &user, 1).await;
        if more.len() == 1 {
            break;
        }
        assert!(refused.is_some());
        assert!(tokio::time::Instant::now() < deadline, "the place came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_address_gets_so_many_sockets_however_many_users_it_makes() {
    let app = spawn_app_with(|c| c.limits.sockets_per_address = 4).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let user = app.guest().await;
        open.push(app.online(&user).await);
    }
    let fifth = app.guest().await;
    let mut ws = app.connect(&fifth).await;
    assert_eq!(
        ws.close_frame().await,
        (
            close::TOO_MANY_SOCKETS,
            "too many connections from this address".to_owned()
        )
    );
    // Writing X-Forwarded-For does not help without a trusted proxy in front.
    let mut ws = app.connect_forwarded(&fifth, "203.0.113.50").await;
    assert_eq!(ws.close_frame().await.0, close::TOO_MANY_SOCKETS);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_counts_on_its_own() {
    let app = spawn_app_with(|c| {
        c.limits.sockets_per_address = 2;
        c.limits.trusted_proxies = vec!["127.0.0.1/32".parse().expect("literal")];
    })
    .await;
    let user = app.guest().await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut ws = app.connect_forwarded(&user, "203.0.113.1").await;
        ws.hello().await;
        open.push(ws);
    }
    let mut ws = app.connect_forwarded(&user, "203.0.113.1").await;
    assert_eq!(ws.close_frame().await.0, close::TOO_MANY_SOCKETS);
    // What a client wrote to the left of the proxy's entry is not believed.
    let mut ws = app
        .connect_forwarded(&user, "198.51.100.7, 203.0.113.1")
        .await;
    assert_eq!(ws.close_frame().await.0, close::TOO_MANY_SOCKETS);
    // Another client behind the same proxy has its own count.
    let mut ws = app.connect_forwarded(&user, "203.0.113.2").await;
    ws.hello().await;
}

#[tokio::test]
async fn at_the_servers_cap_sockets_wait_and_signing_in_still_works() {
    let app = spawn_app_with(|c| c.limits.sockets = Some(3)).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let user = app.guest().await;
        open.push(app.online(&user).await);
    }
    let late = app.guest().await;
    let mut ws = app.connect(&late).await;
    assert_eq!(
        ws.close_frame().await,
        (close::TRY_AGAIN_LATER, "server full; try again later".to_owned())
    );
    // HTTP is not counted against the sockets' cap.
    app.signup_cookie("latecomer", "a long enough password")
        .await;
}
