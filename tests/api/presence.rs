//! Contacts and presence: requests, acceptance, who sees what, Appear Offline on every path,
//! presence across several sockets and across a restart, blocks, groups, profile checks.
//!
//! "Nothing was sent" is checked with a barrier: presence frames reach a user through one
//! ordered queue, fed by one publisher that handles events in order, so once a frame about a
//! later event arrives, every frame about earlier events has arrived before it.

use crate::helpers::{spawn_app, spawn_app_with, TestApp, User, Ws};
use messenger::protocol::{Contact, ContactState, ErrorCode, ServerFrame, Status};
use reqwest::Method;
use serde_json::{json, Value};

fn hello_contacts(f: ServerFrame) -> Vec<Contact> {
    match f {
        ServerFrame::Hello { contacts, .. } => contacts,
        other => panic!("not a hello: {other:?}"),
    }
}

fn is_presence_of(f: &ServerFrame, user: i64, status: Status) -> bool {
    matches!(f, ServerFrame::Presence { user: u, presence } if *u == user && presence.status == status)
}

/// Frames `ws` (a socket of `watcher`) got until a new contact of the watcher came online:
/// that frame comes after every frame about earlier events.
async fn until_barrier(app: &TestApp, ws: &mut Ws, watcher: &User) -> Vec<ServerFrame> {
    // A change coalesced with one less than a second before it is published at the end of
    // that second (`presence::PRESENCE_EVERY`): wait that out, so that everything done
    // before the barrier is published before the marker's first (immediate) presence.
    tokio::time::sleep(
        messenger::server::presence::PRESENCE_EVERY + std::time::Duration::from_millis(100),
    )
    .await;
    let marker = app.guest().await;
    app.befriend(watcher, &marker).await;
    let _online = app.online(&marker).await;
    ws.frames_until(|f| is_presence_of(f, marker.me.id, Status::Online))
        .await
}

/// A frame that shows `user` as anything but offline.
fn shows_online(frames: &[ServerFrame], user: i64) -> Option<&ServerFrame> {
    frames.iter().find(|f| match f {
        ServerFrame::Presence { user: u, presence } => {
            *u == user
                && (presence.status != Status::Offline || !presence.personal_message.is_empty())
        }
        ServerFrame::Contact { contact } => {
            contact.user.id == user && contact.presence.status != Status::Offline
        }
        _ => false,
    })
}

async fn set_me(app: &TestApp, u: &User, body: Value) -> reqwest::Response {
    app.call(Method::PATCH, "/api/me", &u.token, Some(body))
        .await
}

async fn contacts(app: &TestApp, u: &User) -> Vec<Contact> {
    let res = app.call(Method::GET, "/api/contacts", &u.token, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    serde_json::from_value(body["contacts"].clone()).expect("a contact list")
}

/// Waits until the server counts `n` sockets of `user` (a closed socket is noticed
/// asynchronously).
async fn wait_sockets(app: &TestApp, user: &User, n: usize) {
    let deadline = std::time::Instant::now() + crate::helpers::WAIT;
    while app.state.presence.sockets_of(user.me.id) != n {
        assert!(
            std::time::Instant::now() < deadline,
            "socket count never reached {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Returns once the server has handled every frame `ws` sent before: frames of one socket
/// are handled in order, and a sync of a conversation the user is not in gets an error.
async fn handled(ws: &mut Ws) {
    ws.sync(i64::MAX, 0).await;
    ws.until(|f| {
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::NotMember,
                ..
            }
        )
    })
    .await;
}

fn find(list: &[Contact], user: &User) -> Option<Contact> {
    list.iter().find(|c| c.user.id == user.me.id).cloned()
}

#[tokio::test]
async fn a_request_reaches_the_other_side_live_or_at_next_sign_in_and_acceptance_shows_presence() {
    let app = spawn_app().await;
    let (a, b, c) = (app.guest().await, app.guest().await, app.guest().await);
    let mut wa = app.online(&a).await;
    let mut wb = app.online(&b).await;
    let res = app
        .post(
            "/api/contacts",
            Some(&a.token),
            json!({ "username": b.me.username }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let mine: Contact = res.json().await.unwrap();
    assert_eq!(mine.state, ContactState::Requested);
    // Until accepted, neither sees the other's presence.
    assert_eq!(mine.presence.status, Status::Offline);
    match wb.until(|f| matches!(f, ServerFrame::Contact { .. })).await {
        ServerFrame::Contact { contact } => {
            assert_eq!(contact.user.id, a.me.id);
            assert_eq!(contact.state, ContactState::Incoming);
            assert_eq!(contact.presence.status, Status::Offline);
        }
        _ => unreachable!(),
    }
    // C is offline when asked, and finds the request at sign-in.
    app.post(
        "/api/contacts",
        Some(&a.token),
        json!({ "username": c.me.username }),
    )
    .await;
    let mut wc = app.connect(&c).await;
    let list = hello_contacts(wc.hello().await);
    assert_eq!(
        find(&list, &a).map(|x| x.state),
        Some(ContactState::Incoming)
    );

    let res = app
        .post(
            &format!("/api/contacts/{}/accept", a.me.id),
            Some(&b.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let theirs: Contact = res.json().await.unwrap();
    assert_eq!(theirs.state, ContactState::Accepted);
    assert_eq!(theirs.presence.status, Status::Online);
    match wa
        .until(|f| matches!(f, ServerFrame::Contact { contact } if contact.user.id == b.me.id && contact.state == ContactState::Accepted))
        .await
    {
        ServerFrame::Contact { contact } => assert_eq!(contact.presence.status, Status::Online),
        _ => unreachable!(),
    }
    // Accepting twice, or a request that does not exist, is a clear 404.
    let res = app
        .post(
            &format!("/api/contacts/{}/accept", a.me.id),
            Some(&b.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    // Unknown users and oneself are refused.
    let res = app
        .post(
            "/api/contacts",
            Some(&a.token),
            json!({ "username": "nobody-here" }),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .post(
            "/api/contacts",
            Some(&a.token),
            json!({ "username": a.me.username }),
        )
        .await;
    assert_eq!(res.status(), 422);
    // C declines: both sides lose the entry.
    let res = app
        .post(
            &format!("/api/contacts/{}/decline", a.me.id),
            Some(&c.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    wa.until(|f| matches!(f, ServerFrame::ContactRemoved { user } if *user == c.me.id))
        .await;
    assert!(find(&contacts(&app, &a).await, &c).is_none());
}

#[tokio::test]
async fn presence_goes_to_accepted_contacts_only() {
    let app = spawn_app().await;
    let (a, b, x) = (app.guest().await, app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    // X has asked A, but A has not accepted: X must not see A.
    app.post(
        "/api/contacts",
        Some(&x.token),
        json!({ "username": a.me.username }),
    )
    .await;
    // X also shares a conversation with A.
    app.dm(&x, &a).await;
    let mut wb = app.online(&b).await;
    let mut wx = app.online(&x).await;
    let _wa = app.online(&a).await;
    wb.until(|f| is_presence_of(f, a.me.id, Status::Online))
        .await;
    assert_eq!(
        set_me(
            &app,
            &a,
            json!({ "status": "busy", "personal_message": "deadline" })
        )
        .await
        .status(),
        200
    );
    match wb.until(|f| is_presence_of(f, a.me.id, Status::Busy)).await {
        ServerFrame::Presence { presence, .. } => assert_eq!(presence.personal_message, "deadline"),
        _ => unreachable!(),
    }
    let frames = until_barrier(&app, &mut wx, &x).await;
    assert!(shows_online(&frames, a.me.id).is_none(), "{frames:?}");
    // And X's list shows A as offline with no personal message.
    let seen = find(&contacts(&app, &x).await, &a).unwrap();
    assert_eq!(seen.presence.status, Status::Offline);
    assert_eq!(seen.presence.personal_message, "");
}

#[tokio::test]
async fn appear_offline_never_leaks_through_sockets_tabs_idle_or_profile_changes() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    // A chooses Appear Offline before signing in (as on the sign-in window).
    assert_eq!(
        set_me(&app, &a, json!({ "status": "offline" }))
            .await
            .status(),
        200
    );
    let mut wb = app.online(&b).await;
    let mut wa1 = app.connect(&a).await;
    match wa1.hello().await {
        ServerFrame::Hello { status, .. } => assert_eq!(status, Status::Offline),
        _ => unreachable!(),
    }
    let mut wa2 = app.online(&a).await;
    wa2.send(json!({ "t": "idle", "idle": true })).await;
    wa2.send(json!({ "t": "idle", "idle": false })).await;
    handled(&mut wa2).await;
    set_me(
        &app,
        &a,
        json!({ "personal_message": "secret", "display_name": "Still Ann" }),
    )
    .await;
    drop(wa2);
    wait_sockets(&app, &a, 1).await;
    let frames = until_barrier(&app, &mut wb, &b).await;
    assert!(shows_online(&frames, a.me.id).is_none(), "{frames:?}");
    // A new socket of B, and the HTTP list, show A offline too.
    let mut wb2 = app.connect(&b).await;
    let seen = find(&hello_contacts(wb2.hello().await), &a).unwrap();
    assert_eq!(seen.presence.status, Status::Offline);
    assert_eq!(seen.presence.personal_message, "");
    assert_eq!(
        find(&contacts(&app, &b).await, &a).unwrap().presence.status,
        Status::Offline
    );

    // Choosing Online from a socket shows A, with the message; going back hides it again.
    wa1.send(json!({ "t": "set_status", "status": "online" }))
        .await;
    match wb
        .until(|f| is_presence_of(f, a.me.id, Status::Online))
        .await
    {
        ServerFrame::Presence { presence, .. } => {
            assert_eq!(presence.personal_message, "secret");
            assert_eq!(presence.display_name, "Still Ann");
        }
        _ => unreachable!(),
    }
    wa1.until(|f| {
        matches!(
            f,
            ServerFrame::MyStatus {
                status: Status::Online,
                ..
            }
        )
    })
    .await;
    wa1.send(json!({ "t": "set_status", "status": "offline" }))
        .await;
    match wb
        .until(|f| matches!(f, ServerFrame::Presence { user, .. } if *user == a.me.id))
        .await
    {
        ServerFrame::Presence { presence, .. } => {
            assert_eq!(presence.status, Status::Offline);
            assert_eq!(presence.personal_message, "");
        }
        _ => unreachable!(),
    }
    // Reconnecting while appearing offline stays invisible.
    drop(wa1);
    wait_sockets(&app, &a, 0).await;
    let _wa3 = app.online(&a).await;
    let frames = until_barrier(&app, &mut wb, &b).await;
    assert!(shows_online(&frames, a.me.id).is_none(), "{frames:?}");
}

#[tokio::test]
async fn online_while_any_socket_is_open_away_when_all_are_idle_offline_after_the_last() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    let mut wb = app.online(&b).await;
    let mut wa1 = app.online(&a).await;
    let mut wa2 = app.online(&a).await;
    wb.until(|f| is_presence_of(f, a.me.id, Status::Online))
        .await;
    wa1.send(json!({ "t": "idle", "idle": true })).await;
    wa2.send(json!({ "t": "idle", "idle": true })).await;
    wb.until(|f| is_presence_of(f, a.me.id, Status::Away)).await;
    wa2.send(json!({ "t": "idle", "idle": false })).await;
    wb.until(|f| is_presence_of(f, a.me.id, Status::Online))
        .await;
    // One tab closing changes nothing while another is open...
    drop(wa1);
    wait_sockets(&app, &a, 1).await;
    let frames = until_barrier(&app, &mut wb, &b).await;
    assert!(
        !frames
            .iter()
            .any(|f| is_presence_of(f, a.me.id, Status::Offline)),
        "{frames:?}"
    );
    // ...and the last one closing makes A offline.
    drop(wa2);
    wb.until(|f| is_presence_of(f, a.me.id, Status::Offline))
        .await;
}

#[tokio::test]
async fn after_a_restart_nobody_is_left_online() {
    crate::sqlite_only!();
    let mut app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    let mut wb = app.online(&b).await;
    let _wa = app.online(&a).await;
    wb.until(|f| is_presence_of(f, a.me.id, Status::Online))
        .await;
    let db = app.dir.path().join("messenger.db");
    app.stop().await;
    let app2 = spawn_app_with(|cfg| cfg.store.database = db.clone()).await;
    let mut wb = app2.connect(&b).await;
    let seen = find(&hello_contacts(wb.hello().await), &a).unwrap();
    assert_eq!(seen.state, ContactState::Accepted);
    assert_eq!(seen.presence.status, Status::Offline);
    // A coming back is seen live.
    let _wa = app2.online(&a).await;
    wb.until(|f| is_presence_of(f, a.me.id, Status::Online))
        .await;
}

#[tokio::test]
async fn a_blocked_user_sees_the_blocker_offline_cannot_message_or_ask_again() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    let conv = app.dm(&b, &a).await;
    let mut wb = app.online(&b).await;
    let mut wa = app.online(&a).await;
    wb.until(|f| is_presence_of(f, a.me.id, Status::Online))
        .await;

    let res = app
        .post(
            &format!("/api/contacts/{}/block", b.me.id),
            Some(&a.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.json::<Contact>().await.unwrap().blocked);
    match wb
        .until(|f| matches!(f, ServerFrame::Contact { contact } if contact.user.id == a.me.id))
        .await
    {
        ServerFrame::Contact { contact } => {
            assert_eq!(contact.presence.status, Status::Offline);
            assert!(!contact.blocked, "B has not blocked A");
        }
        _ => unreachable!(),
    }
    // A's changes no longer reach B.
    set_me(&app, &a, json!({ "status": "busy" })).await;
    let frames = until_barrier(&app, &mut wb, &b).await;
    assert!(shows_online(&frames, a.me.id).is_none(), "{frames:?}");
    // B cannot message A; nothing is stored.
    wb.send_msg(conv, "blocked-1", "hello?").await;
    match wb.until(|f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Undeliverable),
        _ => unreachable!(),
    }
    assert_eq!(app.message_count(Some(conv)).await, 0);
    // A still sees B (a block is one-way) and can still write to B.
    assert_eq!(
        find(&contacts(&app, &a).await, &b).unwrap().presence.status,
        Status::Online
    );

    // After A removes B, B asking again is stored but A never sees it while B is blocked.
    let res = app
        .call(
            Method::DELETE,
            &format!("/api/contacts/{}", b.me.id),
            &a.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .post(
            "/api/contacts",
            Some(&b.token),
            json!({ "username": a.me.username }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Contact>().await.unwrap().state,
        ContactState::Requested
    );
    let mine = find(&contacts(&app, &a).await, &b).unwrap();
    assert_eq!(mine.state, ContactState::None);
    assert!(mine.blocked);
    let res = app
        .post(
            &format!("/api/contacts/{}/accept", b.me.id),
            Some(&a.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    // Unblocking shows the waiting request; A cannot request a user A blocks.
    let res = app
        .post(
            &format!("/api/contacts/{}/unblock", b.me.id),
            Some(&a.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Contact>().await.unwrap().state,
        ContactState::Incoming
    );
    wa.until(|f| matches!(f, ServerFrame::Contact { contact } if contact.user.id == b.me.id && contact.state == ContactState::Incoming))
        .await;
    // Messages flow again.
    wb.send_msg(conv, "unblocked-1", "hello again").await;
    wb.until(|f| matches!(f, ServerFrame::Ack { .. })).await;
    assert_eq!(app.message_count(Some(conv)).await, 1);
}

#[tokio::test]
async fn contact_groups_can_be_created_renamed_filled_and_deleted() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    app.befriend(&a, &b).await;
    let mut wa = app.online(&a).await;
    let res = app
        .post("/api/groups", Some(&a.token), json!({ "name": " Work " }))
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    wa.until(
        |f| matches!(f, ServerFrame::Groups { groups } if groups.iter().any(|g| g.name == "Work")),
    )
    .await;
    let res = app
        .post("/api/groups", Some(&a.token), json!({ "name": "work" }))
        .await;
    assert_eq!(res.status(), 409, "names are unique without regard to case");
    let res = app
        .post("/api/groups", Some(&a.token), json!({ "name": "" }))
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .call(
            Method::PATCH,
            &format!("/api/groups/{id}"),
            &a.token,
            Some(json!({ "name": "Office" })),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .call(
            Method::PUT,
            &format!("/api/contacts/{}/group", b.me.id),
            &a.token,
            Some(json!({ "group": id })),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Contact>().await.unwrap().group, Some(id));
    // Someone else's group is not ours to use.
    let res = app
        .call(
            Method::PUT,
            &format!("/api/contacts/{}/group", a.me.id),
            &b.token,
            Some(json!({ "group": id })),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .call(Method::DELETE, &format!("/api/groups/{id}"), &a.token, None)
        .await;
    assert_eq!(res.status(), 204);
    wa.until(|f| matches!(f, ServerFrame::Contact { contact } if contact.user.id == b.me.id && contact.group.is_none()))
        .await;
    assert_eq!(find(&contacts(&app, &a).await, &b).unwrap().group, None);
}

#[tokio::test]
async fn bad_profile_values_get_clear_errors_and_change_nothing() {
    let app = spawn_app().await;
    let a = app.guest().await;
    for body in [
        json!({ "personal_message": "x".repeat(129) }),
        json!({ "personal_message": "two\nlines" }),
        json!({ "display_name": "   " }),
        json!({ "display_name": "y".repeat(65) }),
        json!({ "status": "invisible" }),
    ] {
        let res = set_me(&app, &a, body.clone()).await;
        assert!(
            res.status().is_client_error(),
            "{body} gave {}",
            res.status()
        );
    }
    let res = set_me(
        &app,
        &a,
        json!({ "personal_message": "  hi  ", "status": "out_to_lunch" }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["personal_message"], "hi");
    assert_eq!(me["status"], "out_to_lunch");
    assert_eq!(me["display_name"], a.me.display_name.as_str());
}

#[tokio::test]
async fn the_status_chosen_at_sign_in_applies_before_any_socket_and_appear_offline_does_not_leak() {
    let app = spawn_app().await;
    let _ = app.signup_cookie("alma", "correct horse battery").await;
    let sign_in = |status: &'static str| {
        app.post(
            "/api/token",
            None,
            json!({ "username": "alma", "password": "correct horse battery", "status": status }),
        )
    };
    // A status that is not in the list is refused with a clear message, and no session starts.
    let res = sign_in("invisible").await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("status"),
        "{body}"
    );

    let res = sign_in("offline").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let alma = User {
        token: body["token"].as_str().expect("token").to_owned(),
        me: serde_json::from_value(body["user"].clone()).expect("user"),
    };
    let watcher = app.guest().await;
    app.befriend(&watcher, &alma).await;
    let mut seen = app.online(&watcher).await;
    let mut own = app.connect(&alma).await;
    match own.hello().await {
        ServerFrame::Hello { status, .. } => assert_eq!(status, Status::Offline),
        other => panic!("not a hello: {other:?}"),
    }
    let frames = until_barrier(&app, &mut seen, &watcher).await;
    assert!(shows_online(&frames, alma.me.id).is_none(), "{frames:?}");
    let listed = contacts(&app, &watcher).await;
    let entry = listed
        .iter()
        .find(|c| c.user.id == alma.me.id)
        .expect("alma listed");
    assert_eq!(entry.presence.status, Status::Offline);

    // Signing in again as Busy (say, from another browser) changes it for every tab, and the
    // contact sees Busy; an empty choice keeps the last status.
    assert_eq!(sign_in("busy").await.status(), 200);
    seen.until(|f| is_presence_of(f, alma.me.id, Status::Busy))
        .await;
    own.until(|f| {
        matches!(
            f,
            ServerFrame::MyStatus {
                status: Status::Busy,
                ..
            }
        )
    })
    .await;
    assert_eq!(sign_in("").await.status(), 200);
    let listed = contacts(&app, &watcher).await;
    let entry = listed
        .iter()
        .find(|c| c.user.id == alma.me.id)
        .expect("alma listed");
    assert_eq!(entry.presence.status, Status::Busy);
}

#[tokio::test]
async fn changes_made_at_the_same_time_reach_contacts_as_stored() {
    let app = spawn_app().await;
    let (me, watcher) = (app.guest().await, app.guest().await);
    app.befriend(&me, &watcher).await;
    let _tab = app.online(&me).await;
    let mut seen = app.online(&watcher).await;
    let statuses = [
        Status::Busy,
        Status::Away,
        Status::OnThePhone,
        Status::OutToLunch,
    ];
    for round in 0..40 {
        let status = statuses[round % statuses.len()];
        let pm = format!("round {round}");
        // A status from one tab and a personal message from another, at the same time.
        let (a, b) = tokio::join!(
            set_me(&app, &me, json!({ "status": status })),
            set_me(&app, &me, json!({ "personal_message": pm })),
        );
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
        // Whichever the database applied last, both changes are stored; what the contact
        // is shown now must be exactly that.
        let listed = contacts(&app, &watcher).await;
        let entry = listed
            .iter()
            .find(|c| c.user.id == me.me.id)
            .expect("listed");
        assert_eq!(
            (
                entry.presence.status,
                entry.presence.personal_message.as_str()
            ),
            (status, pm.as_str()),
            "round {round}"
        );
    }
    // And the last presence frame the contact gets says the same. Changes within a second
    // of each other are coalesced (`presence::PRESENCE_EVERY`), so the last one may come up
    // to a second after other users' news: wait for it, then for quiet.
    let last = seen
        .until(|f| match f {
            ServerFrame::Presence { user, presence } => {
                *user == me.me.id
                    && presence.status == Status::OutToLunch
                    && presence.personal_message == "round 39"
            }
            _ => false,
        })
        .await;
    assert!(matches!(last, ServerFrame::Presence { .. }));
    while let Ok(event) =
        tokio::time::timeout(std::time::Duration::from_millis(1500), seen.next_event()).await
    {
        if let crate::helpers::Event::Frame(ServerFrame::Presence { user, presence }) = event {
            assert_ne!(user, me.me.id, "a later presence of me: {presence:?}");
        }
    }
}

/// Contact changes are read-then-write transactions on the shared pool while the writer
/// commits messages on its own connection. A transaction that read before the writer's
/// commit and wrote after it used to fail at once (SQLite's stale-snapshot `SQLITE_BUSY`,
/// which the busy timeout does not retry): a contact request came back as a 500 now and
/// then in the browser tests. Every change here must succeed while messages are committed.
#[tokio::test]
async fn contact_changes_succeed_while_messages_are_committed() {
    let app = spawn_app_with(|c| c.sockets.send_rate_per_second = 10_000).await;
    let (talker, listener) = (app.guest().await, app.guest().await);
    let (asker, other) = (app.guest().await, app.guest().await);
    let (conv, mut ws, _peer) = app.dm_live(&talker, &listener).await;

    let chatter = async {
        let mut acked = 0;
        for chunk in 0..40 {
            for i in 0..50 {
                ws.send_msg(conv, &format!("c{chunk}-{i}"), "busy").await;
            }
            for _ in 0..50 {
                match ws
                    .until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
                    .await
                {
                    ServerFrame::Ack { .. } => acked += 1,
                    other => panic!("a send failed: {other:?}"),
                }
            }
        }
        acked
    };
    let changes = async {
        let mut failures = Vec::new();
        for round in 0..150 {
            let asked = app
                .post(
                    "/api/contacts",
                    Some(&asker.token),
                    json!({ "username": other.me.username }),
                )
                .await;
            let grouped = app
                .call(
                    Method::POST,
                    "/api/groups",
                    &asker.token,
                    Some(json!({ "name": format!("g{round}") })),
                )
                .await;
            let group_status = grouped.status().as_u16();
            let group_id = grouped
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["id"].as_i64());
            let removed = app
                .call(
                    Method::DELETE,
                    &format!("/api/contacts/{}", other.me.id),
                    &asker.token,
                    None,
                )
                .await;
            for (what, status) in [
                ("request", asked.status().as_u16()),
                ("group", group_status),
                ("remove", removed.status().as_u16()),
            ] {
                if !(200..300).contains(&status) {
                    failures.push(format!("round {round}: {what} -> {status}"));
                }
            }
            if let Some(id) = group_id {
                let deleted = app
                    .call(
                        Method::DELETE,
                        &format!("/api/groups/{id}"),
                        &asker.token,
                        None,
                    )
                    .await;
                if deleted.status() != 204 {
                    failures.push(format!(
                        "round {round}: delete group -> {}",
                        deleted.status()
                    ));
                }
            }
        }
        failures
    };
    let (acked, failures) = tokio::join!(chatter, changes);
    assert_eq!(acked, 2000);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(app.message_count(Some(conv)).await, 2000);
}
