//! What one user or one address may consume: sockets per user, per address and in all.

use crate::helpers::*;
use messenger::protocol::{close, ServerFrame, Status};
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
    let _other_socket = app.online(&other).await;
    // A closed socket gives its place back.
    let mut gone = open.pop().expect("an open socket");
    gone.stream.close(None).await.expect("close");
    drop(gone);
    // Three of this user's sockets and the other user's one were open; once one of the
    // three has ended, its place is free.
    let mut counted = app.state.live_sockets.subscribe();
    tokio::time::timeout(WAIT, counted.wait_for(|n| *n == 3))
        .await
        .expect("the socket ended")
        .expect("the server runs");
    let (more, refused) = fill(&app, &user, 1).await;
    assert_eq!((more.len(), refused), (1, None), "the place came back");
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
        (
            close::TRY_AGAIN_LATER,
            "server full; try again later".to_owned()
        )
    );
    // HTTP is not counted against the sockets' cap.
    app.signup_cookie("latecomer", "a long enough password")
        .await;
}

#[tokio::test]
async fn the_send_rate_is_one_users_over_all_their_sockets() {
    let app = spawn_app_with(|c| c.sockets.send_rate_per_second = 10).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut ws = app.online(&a).await;
        ws.live(conv).await;
        sockets.push(ws);
    }
    let started = tokio::time::Instant::now();
    for (i, ws) in sockets.iter_mut().enumerate() {
        for n in 0..15 {
            ws.send_msg(conv, &format!("s{i}-{n}"), "hello").await;
        }
    }
    let (mut acked, mut limited) = (0, 0);
    for ws in &mut sockets {
        let mut answered = 0;
        while answered < 15 {
            match ws.next().await {
                ServerFrame::Ack { .. } => (acked, answered) = (acked + 1, answered + 1),
                ServerFrame::Error { code, .. } => {
                    assert_eq!(code, messenger::protocol::ErrorCode::RateLimited);
                    (limited, answered) = (limited + 1, answered + 1);
                }
                _ => {}
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A burst of 10, then 10 a second, over the four sockets together.
    let most = 10 + (10.0 * elapsed).ceil() as usize;
    assert!(acked >= 10, "the burst goes through: {acked}");
    assert!(
        acked <= most,
        "{acked} stored in {elapsed:.2} s over four sockets; at most {most}"
    );
    assert_eq!(acked + limited, 60);
}

#[tokio::test]
async fn every_frame_counts_against_one_users_frame_rate_over_all_their_sockets() {
    // 200 frames a second, a burst of 600: 900 frames over three sockets take 1.5 s at least.
    let app = spawn_app_with(|c| c.sockets.frame_rate_per_second = 200).await;
    let a = app.guest().await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(app.online(&a).await);
    }
    let started = tokio::time::Instant::now();
    for ws in &mut sockets {
        for _ in 0..300 {
            // Not a frame the server knows: each is answered with `bad_frame`.
            ws.send(serde_json::json!({ "t": "shout" })).await;
        }
    }
    for ws in &mut sockets {
        for _ in 0..300 {
            match ws.next().await {
                ServerFrame::Error { code, .. } => {
                    assert_eq!(code, messenger::protocol::ErrorCode::BadFrame)
                }
                f => panic!("expected bad_frame, got {f:?}"),
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        elapsed >= 1.4,
        "900 frames answered in {elapsed:.2} s; the rate allows 600 at once and 200 a second"
    );
}

#[tokio::test]
async fn a_status_flood_costs_one_write_and_one_frame_per_contact_a_second_and_the_last_wins() {
    let app = spawn_app_with(|c| c.sockets.frame_rate_per_second = 100_000).await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    let mut flooder = app.online(&a).await;
    let mut other_tab = app.online(&a).await;
    let mut contact = app.online(&b).await;
    let started = tokio::time::Instant::now();
    let cycle = ["busy", "away", "online"];
    for n in 0..3000 {
        let status = cycle[n % 3];
        flooder
            .send(serde_json::json!({ "t": "set_status", "status": status }))
            .await;
    }
    flooder
        .send(serde_json::json!({ "t": "set_status", "status": "busy" }))
        .await;
    // Everything each side hears until the coalesced changes have settled.
    let mine = drain(&mut other_tab).await;
    let theirs = drain(&mut contact).await;
    let elapsed = started.elapsed().as_secs_f64();
    let writes: Vec<_> = mine
        .iter()
        .filter_map(|f| match f {
            ServerFrame::MyStatus { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    let told: Vec<_> = theirs
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Presence { user, presence } if *user == a.me.id => Some(presence.status),
            _ => None,
        })
        .collect();
    let most = elapsed.ceil() as usize + 1;
    assert!(
        writes.len() <= most,
        "{} status writes in {elapsed:.2} s",
        writes.len()
    );
    assert!(
        told.len() <= most,
        "{} presence frames in {elapsed:.2} s",
        told.len()
    );
    assert_eq!(writes.last(), Some(&Status::Busy), "the last status wins");
    assert_eq!(
        told.last(),
        Some(&Status::Busy),
        "the contact sees the last status"
    );
    let db_status: String = sqlx::query_scalar("SELECT status FROM users WHERE id = $1")
        .bind(a.me.id)
        .fetch_one(&mut app.db().await)
        .await
        .expect("status");
    assert_eq!(db_status, "busy");
}

/// The frames a socket receives until it has been quiet for 1.5 s (longer than the
/// one-second intervals of coalescing).
async fn drain(ws: &mut Ws) -> Vec<ServerFrame> {
    let mut out = Vec::new();
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(1500), ws.next_event()).await {
        match event {
            Event::Frame(f) => out.push(f),
            Event::Closed(c) => panic!("closed: {c:?}"),
        }
    }
    out
}
