//! Data protection: deleting an account (by its owner and by an admin), the export of a
//! user's data, retention, and the account's security (password, sessions).

use crate::delivery::ack_of;
use crate::helpers::*;
use messenger::protocol::{http::SessionView, HistoryPage, MessageKind, ServerFrame};
use messenger::server::config::{AdminCommand, Command, Switch};
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough password";

/// Sends as fast as the test can.
fn fast(c: &mut messenger::server::config::Config) {
    c.sockets.send_rate_per_second = 100_000;
    c.sockets.frame_rate_per_second = 100_000;
}

/// A member with a password, signed in with a bearer token from a named device.
async fn member(app: &TestApp, name: &str) -> User {
    app.signup_cookie(name, PASSWORD).await;
    sign_in(
        app,
        name,
        PASSWORD,
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    )
    .await
}

async fn sign_in(app: &TestApp, name: &str, password: &str, agent: &str) -> User {
    let res = app
        .http
        .post(app.url("/api/token"))
        .header("User-Agent", agent)
        .json(&json!({ "username": name, "password": password }))
        .send()
        .await
        .expect("token");
    assert_eq!(res.status(), 200, "{name} signs in");
    let body: Value = res.json().await.expect("json");
    User {
        token: body["token"].as_str().expect("token").to_owned(),
        me: serde_json::from_value(body["user"].clone()).expect("user"),
    }
}

/// Every file of the database (main, WAL), as bytes.
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["messenger.db", "messenger.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.dir.path().join(name)) {
            all.extend(bytes);
        }
    }
    all
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_deleted_account_leaves_tombstones_a_reserved_name_and_no_trace_of_its_text() {
    crate::sqlite_only!();
    // Plain bodies, so that the test can look for them in the files.
    let app = spawn_app_with(|c| c.store.encryption = Switch::Off).await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    app.befriend(&alice, &bob).await;
    let res = app
        .call(
            reqwest::Method::PATCH,
            "/api/me",
            &alice.token,
            Some(json!({ "personal_message": "QUOKKA-STATUS-LINE" })),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (conv, mut wa, mut wb) = app.dm_live(&alice, &bob).await;
    for i in 1..=3 {
        wa.send_msg(conv, &format!("a{i}"), &format!("ZEBRA-MARKER-{i}"))
            .await;
        ack_of(&mut wa, &format!("a{i}")).await;
    }
    wb.send_msg(conv, "b1", "bob keeps this").await;
    ack_of(&mut wb, "b1").await;
    // Written to the main file too, as an older database would hold it.
    app.state.store.checkpoint().await.expect("checkpoint");
    assert!(
        holds(&database_bytes(&app), "ZEBRA-MARKER-2"),
        "the marker is there first"
    );

    // A wrong password, or no confirmation, deletes nothing.
    let res = app
        .form(
            "/api/delete-account",
            Some(&alice.token),
            &[("password", "not the password"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .form(
            "/api/delete-account",
            Some(&alice.token),
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .form(
            "/api/delete-account",
            Some(&alice.token),
            &[("password", PASSWORD), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 204);

    // Her socket closes; bob's window is told, in order, after everything before.
    assert_eq!(wa.close_code().await, 4001);
    let erase = wb
        .until(|f| matches!(f, ServerFrame::Msg(m) if m.kind == MessageKind::Delete))
        .await;
    let ServerFrame::Msg(erase) = erase else {
        unreachable!()
    };
    assert_eq!((erase.seq, erase.body.as_str()), (5, "all"));
    assert_eq!(erase.from_name, "Deleted user");

    // Bob's history: gap-free, her lines emptied, his kept.
    let page = app.history(conv, &bob).await;
    let lines: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.seq, m.kind, m.body.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (1, MessageKind::Deleted, ""),
            (2, MessageKind::Deleted, ""),
            (3, MessageKind::Deleted, ""),
            (4, MessageKind::Text, "bob keeps this"),
            (5, MessageKind::Delete, "all"),
        ]
    );
    // Her token no longer works; her name can be neither used nor taken.
    let res = app
        .call(reqwest::Method::GET, "/api/session", &alice.token, None)
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .post(
            "/api/token",
            None,
            json!({ "username": "alice", "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .form(
            "/api/signup",
            None,
            &[("username", "Alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 409, "the username stays reserved");
    // Bob's list no longer has her.
    let contacts: Value = app
        .call(reqwest::Method::GET, "/api/contacts", &bob.token, None)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        !contacts.to_string().contains("alice"),
        "bob's list: {contacts}"
    );
    // The audit log says who deleted what.
    let mut db = app.db().await;
    let (actor, detail): (String, String) = sqlx::query_as(
        "SELECT actor, detail FROM audit_log WHERE event = 'account_deleted' AND user_id = $1",
    )
    .bind(alice.me.id)
    .fetch_one(&mut db)
    .await
    .expect("entry");
    assert_eq!(actor, format!("user:{}", alice.me.id));
    assert!(detail.contains("\"owner\""), "{detail}");
    drop(db);

    // No byte of her text or profile is left in the files once the WAL is checkpointed.
    app.state.store.checkpoint().await.expect("checkpoint");
    let bytes = database_bytes(&app);
    for marker in [
        "ZEBRA-MARKER-1",
        "ZEBRA-MARKER-2",
        "ZEBRA-MARKER-3",
        "QUOKKA-STATUS-LINE",
    ] {
        assert!(!holds(&bytes, marker), "{marker} is still in the files");
    }
    assert!(holds(&bytes, "bob keeps this"), "the search can find text");
}

#[tokio::test]
async fn an_admin_deletes_an_account_and_nobody_else_can() {
    let app = spawn_app().await;
    let root = member(&app, "root").await;
    let carol = member(&app, "carol").await;
    let dave = member(&app, "dave").await;
    let guest = app.guest().await;
    // The role is given on the command line (to a running server's database).
    let store_cfg = app.state.cfg.store.clone();
    let admin = |c| messenger::server::admin::run(&store_cfg, Command::Admin(c));
    admin(AdminCommand::Grant {
        user: "root".into(),
    })
    .await
    .expect("granted");
    let refused = admin(AdminCommand::Grant {
        user: guest.me.username.clone(),
    })
    .await
    .expect_err("a guest is never an admin");
    assert!(
        refused.to_string().contains("cannot be administrators"),
        "{refused}"
    );
    assert!(admin(AdminCommand::Grant {
        user: "nobody".into()
    })
    .await
    .is_err());
    let mut wc = app.online(&carol).await;
    let res = app
        .call(
            reqwest::Method::DELETE,
            "/api/admin/users/carol",
            &dave.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 403, "not an admin");
    let res = app
        .call(
            reqwest::Method::DELETE,
            "/api/admin/users/nobody",
            &root.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .call(
            reqwest::Method::DELETE,
            "/api/admin/users/carol",
            &root.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(wc.close_code().await, 4001);
    let res = app
        .call(
            reqwest::Method::DELETE,
            "/api/admin/users/carol",
            &root.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 404, "deleted once");
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE event = 'account_deleted' AND user_id = $1",
    )
    .bind(carol.me.id)
    .fetch_one(&mut app.db().await)
    .await
    .expect("entry");
    assert_eq!(actor, format!("user:{}", root.me.id));
    // Without the role, no more.
    admin(AdminCommand::Revoke {
        user: "root".into(),
    })
    .await
    .expect("revoked");
    let res = app
        .call(
            reqwest::Method::DELETE,
            "/api/admin/users/dave",
            &root.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_each_session_can_be_ended() {
    let app = spawn_app().await;
    let erin = member(&app, "erin").await;
    let phone = sign_in(
        &app,
        "erin",
        PASSWORD,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
    )
    .await;
    let tablet = sign_in(
        &app,
        "erin",
        PASSWORD,
        "Mozilla/5.0 (X11; Linux) Chrome/131.0",
    )
    .await;
    let mut on_phone = app.online(&phone).await;
    let mut on_tablet = app.online(&tablet).await;

    let list: Vec<SessionView> = app
        .call(reqwest::Method::GET, "/api/sessions", &erin.token, None)
        .await
        .json()
        .await
        .expect("sessions");
    let mut devices: Vec<_> = list
        .iter()
        .map(|s| (s.device.clone().unwrap_or_default(), s.current))
        .collect();
    devices.sort();
    assert_eq!(
        devices,
        [
            ("Chrome on Linux".to_owned(), false),
            ("Firefox on Linux".to_owned(), true),
            ("Safari on iOS".to_owned(), false),
            // The sign-up's own session, from a client that gave no User-Agent.
            ("Unknown device".to_owned(), false),
        ]
    );
    assert!(list
        .iter()
        .all(|s| s.address.as_deref() == Some("127.0.0.1")));

    // Ending the phone's session closes its socket; it is gone from the list.
    let phone_id = list
        .iter()
        .find(|s| s.device.as_deref() == Some("Safari on iOS"))
        .expect("phone")
        .id;
    let res = app
        .form(
            "/api/end-session",
            Some(&erin.token),
            &[("id", &phone_id.to_string())],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(on_phone.close_code().await, 4001);
    let res = app
        .form(
            "/api/end-session",
            Some(&erin.token),
            &[("id", &phone_id.to_string())],
        )
        .await;
    assert_eq!(res.status(), 404, "ended once");
    // Nobody ends another user's session.
    let frank = member(&app, "frank").await;
    let tablet_id = list
        .iter()
        .find(|s| s.device.as_deref() == Some("Chrome on Linux"))
        .expect("tablet")
        .id;
    let res = app
        .form(
            "/api/end-session",
            Some(&frank.token),
            &[("id", &tablet_id.to_string())],
        )
        .await;
    assert_eq!(res.status(), 404);

    // A wrong current password changes nothing; a short new one is refused.
    let res = app
        .form(
            "/api/change-password",
            Some(&erin.token),
            &[
                ("current_password", "wrong wrong"),
                ("new_password", "a new long password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .form(
            "/api/change-password",
            Some(&erin.token),
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .form(
            "/api/change-password",
            Some(&erin.token),
            &[
                ("current_password", PASSWORD),
                ("new_password", "a new long password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<usize>().await.expect("count"),
        2,
        "the tablet and the sign-up's"
    );
    assert_eq!(on_tablet.close_code().await, 4001);
    // This session goes on; the old password is refused, the new one works.
    let res = app
        .call(reqwest::Method::GET, "/api/session", &erin.token, None)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            "/api/token",
            None,
            json!({ "username": "erin", "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 401);
    sign_in(&app, "erin", "a new long password", "curl/8").await;
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM audit_log WHERE user_id = $1 ORDER BY id")
            .bind(erin.me.id)
            .fetch_all(&mut app.db().await)
            .await
            .expect("events");
    for event in [
        "session_revoked",
        "password_check_failed",
        "password_changed",
        "sessions_revoked",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

#[tokio::test]
async fn the_export_holds_everything_the_user_can_see_and_reads_back() {
    let app = spawn_app_with(fast).await;
    let gina = member(&app, "gina").await;
    let hank = member(&app, "hank").await;
    app.befriend(&gina, &hank).await;
    let (conv, mut wg, _wh) = app.dm_live(&gina, &hank).await;
    // More than one page of the export's reads (500).
    let total = 1203;
    for i in 1..=total {
        wg.send_msg(conv, &format!("g{i}"), &format!("line {i} \u{1F600}"))
            .await;
        if i % 50 == 0 || i == total {
            ack_of(&mut wg, &format!("g{i}")).await;
        }
    }
    let res = app
        .call(reqwest::Method::GET, "/api/me/export", &gina.token, None)
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("messenger-gina.json"));
    let doc: Value = res.json().await.expect("the export is one JSON document");
    assert_eq!(doc["format"], "messenger-export");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["account"]["username"], "gina");
    assert_eq!(doc["contacts"][0]["username"], "hank");
    assert_eq!(doc["contacts"][0]["relationship"], "contact");
    assert!(doc["sessions"].as_array().is_some_and(|s| !s.is_empty()));
    let convs = doc["conversations"].as_array().expect("conversations");
    let dm = convs
        .iter()
        .find(|c| c["id"] == conv)
        .expect("the conversation with hank");
    let messages = dm["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), total as usize);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["seq"], i as i64 + 1);
        assert_eq!(m["body"], format!("line {} \u{1F600}", i + 1));
    }
    let events: Vec<&str> = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(events.contains(&"sign_in"), "{events:?}");
    // Nobody else's export, and none without a session.
    let res = app
        .http
        .get(app.url("/api/me/export"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    let logged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE event = 'data_exported' AND user_id = $1",
    )
    .bind(gina.me.id)
    .fetch_one(&mut app.db().await)
    .await
    .expect("count");
    assert_eq!(logged, 1);
}

/// Sets the commit time of messages `from..=to` of `conv` to `at`.
async fn dated(app: &TestApp, conv: i64, from: i64, to: i64, at: i64) {
    sqlx::query(
        "UPDATE messages SET created_at = $1 WHERE conversation_id = $2 AND seq BETWEEN $3 AND $4",
    )
    .bind(at)
    .bind(conv)
    .bind(from)
    .bind(to)
    .execute(&mut app.db().await)
    .await
    .expect("dated");
}

#[tokio::test]
async fn retention_deletes_exactly_what_is_older_and_readers_are_told() {
    let day = 86_400_000;
    let app = spawn_app_with(|c| {
        fast(c);
        c.store.retention = Some(std::time::Duration::from_secs(30 * 86_400));
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    for i in 1..=1200 {
        wa.send_msg(conv, &format!("m{i}"), &format!("message {i}"))
            .await;
        if i % 50 == 0 {
            ack_of(&mut wa, &format!("m{i}")).await;
        }
    }
    let now = messenger::server::store::now_ms();
    // 1..=1100 are older than 30 days (by a minute); 1101..=1200 are 29 days old.
    dated(&app, conv, 1, 1100, now - 30 * day - 60_000).await;
    dated(&app, conv, 1101, 1200, now - 29 * day).await;
    let deleted = app.state.retention.run(now).await.expect("run");
    assert_eq!(deleted, 1100);
    assert_eq!(app.message_count(Some(conv)).await, 100);
    let page = app.history(conv, &b).await;
    assert_eq!(page.expired_before, 1101);
    let first = app
        .http
        .get(app.url(&format!("/api/history?conv={conv}&before=1101")))
        .bearer_auth(&b.token)
        .send()
        .await
        .expect("older");
    let first: HistoryPage = first.json().await.expect("page");
    assert!(first.messages.is_empty() && !first.has_more);
    assert_eq!(first.expired_before, 1101);
    // A resync from the start replays from the watermark, gap-free from there.
    let mut fresh = app.connect(&b).await;
    fresh.sync(conv, 0).await;
    let mut seqs = Vec::new();
    loop {
        match fresh.next().await {
            ServerFrame::Msg(m) if m.conv == conv => seqs.push(m.seq),
            ServerFrame::Synced { conv: c, .. } if c == conv => break,
            _ => {}
        }
    }
    assert_eq!(seqs, (1101..=1200).collect::<Vec<_>>());

    // A conversation's own, shorter period wins; the newest message, once expired, is
    // emptied and keeps the numbering.
    assert!(app
        .state
        .store
        .set_retention(conv, Some(day))
        .await
        .expect("set"));
    let deleted = app.state.retention.run(now).await.expect("run");
    assert_eq!(deleted, 100, "99 deleted and the last emptied");
    let page = app.history(conv, &b).await;
    let left: Vec<_> = page.messages.iter().map(|m| (m.seq, m.kind)).collect();
    assert_eq!(left, [(1200, MessageKind::Deleted)]);
    wa.send_msg(conv, "after", "a new message").await;
    assert_eq!(ack_of(&mut wa, "after").await, 1201);
    let logged: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'retention_run'")
            .fetch_one(&mut app.db().await)
            .await
            .expect("count");
    assert_eq!(logged, 2);
}

#[tokio::test]
async fn a_conversation_deleted_for_oneself_is_cleared_on_that_side_only() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    wa.send_msg(conv, "one", "before the clearing").await;
    assert_eq!(ack_of(&mut wa, "one").await, 1);
    let res = app
        .call(
            reqwest::Method::POST,
            &format!("/api/conversations/{conv}/forget"),
            &a.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["visible_after"], 1);
    assert!(
        app.history(conv, &a).await.messages.is_empty(),
        "cleared for a"
    );
    assert_eq!(app.history(conv, &b).await.messages.len(), 1, "b keeps it");
    // A new message shows from there on.
    wa.send_msg(conv, "two", "after the clearing").await;
    assert_eq!(ack_of(&mut wa, "two").await, 2);
    let page = app.history(conv, &a).await;
    let bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["after the clearing"]);
    // Someone else's conversation, and a room, cannot be.
    let c = app.guest().await;
    let res = app
        .call(
            reqwest::Method::POST,
            &format!("/api/conversations/{conv}/forget"),
            &c.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .call(
            reqwest::Method::POST,
            "/api/conversations/1/forget",
            &a.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn admins_disable_enable_and_sign_out_accounts_after_entering_their_password_again() {
    let app = spawn_app().await;
    let root = member(&app, "rootly").await;
    let kim = member(&app, "kim").await;
    let store_cfg = app.state.cfg.store.clone();
    messenger::server::admin::run(
        &store_cfg,
        Command::Admin(AdminCommand::Grant {
            user: "rootly".into(),
        }),
    )
    .await
    .expect("granted");
    let mut on_kim = app.online(&kim).await;
    let act = |action: &'static str| {
        let (app, token) = (&app, root.token.clone());
        async move {
            app.form(
                "/api/admin/user",
                Some(&token),
                &[("username", "kim"), ("action", action)],
            )
            .await
        }
    };
    // Not without the password entered again.
    assert_eq!(act("disable").await.status(), 403);
    let res = app
        .form(
            "/api/admin/reauth",
            Some(&root.token),
            &[("password", "wrong wrong")],
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .form(
            "/api/admin/reauth",
            Some(&root.token),
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 200);
    // A non-admin gets nowhere, whatever they type.
    let res = app
        .form(
            "/api/admin/reauth",
            Some(&kim.token),
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 403);
    let list: Vec<messenger::protocol::http::AccountView> = app
        .call(
            reqwest::Method::GET,
            "/api/admin/users?search=ki",
            &root.token,
            None,
        )
        .await
        .json()
        .await
        .expect("users");
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].username.as_str(), list[0].sessions), ("kim", 2));

    assert_eq!(act("disable").await.status(), 200);
    assert_eq!(on_kim.close_code().await, 4001);
    let res = app
        .post(
            "/api/token",
            None,
            json!({ "username": "kim", "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 403, "disabled: no sign-in");
    assert_eq!(act("enable").await.status(), 200);
    let again = sign_in(&app, "kim", PASSWORD, "curl/8").await;
    let mut on_kim = app.online(&again).await;
    assert_eq!(act("sign_out").await.status(), 200);
    assert_eq!(on_kim.close_code().await, 4001);
    let res = app
        .form(
            "/api/admin/user",
            Some(&root.token),
            &[("username", "nobody_at_all"), ("action", "disable")],
        )
        .await;
    assert_eq!(res.status(), 404);
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM audit_log WHERE user_id = $1 ORDER BY id")
            .bind(kim.me.id)
            .fetch_all(&mut app.db().await)
            .await
            .expect("events");
    for event in ["account_disabled", "account_enabled", "sessions_revoked"] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

#[tokio::test]
async fn admins_add_rename_archive_and_restore_rooms_and_members_follow_at_once() {
    use messenger::protocol::http::RoomAdminView;
    let app = spawn_app().await;
    let root = member(&app, "roomroot").await;
    let kim = member(&app, "kimroom").await;
    let store_cfg = app.state.cfg.store.clone();
    messenger::server::admin::run(
        &store_cfg,
        Command::Admin(AdminCommand::Grant {
            user: "roomroot".into(),
        }),
    )
    .await
    .expect("granted");
    let act = |fields: Vec<(&'static str, String)>| {
        let (app, token) = (&app, root.token.clone());
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.form("/api/admin/room", Some(&token), &fields)
                .await
                .status()
        }
    };
    let rooms = |search: &'static str| {
        let (app, token) = (&app, root.token.clone());
        async move {
            let res = app
                .call(
                    reqwest::Method::GET,
                    &format!("/api/admin/rooms?search={search}"),
                    &token,
                    None,
                )
                .await;
            assert_eq!(res.status(), 200);
            res.json::<Vec<RoomAdminView>>().await.expect("rooms")
        }
    };
    // Bad titles are refused with 422, and nothing is added.
    for bad in [
        String::new(),
        "   ".into(),
        "x".repeat(65),
        "a\u{202E}b".into(),
    ] {
        let status = act(vec![("action", "add".into()), ("title", bad.clone())]).await;
        assert_eq!(status, 422, "{bad:?}");
    }
    assert_eq!(
        act(vec![("action", "fly".into()), ("room", "1".into())]).await,
        422
    );
    assert_eq!(
        act(vec![("action", "add".into()), ("title", "  Chess ".into())]).await,
        200
    );
    let listed = rooms("Chess").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let chess = listed[0].clone();
    assert_eq!((chess.title.as_str(), chess.archived), ("Chess", false));

    // Kim joins and talks in it.
    let res = app
        .post(
            &format!("/api/rooms/{}/join", chess.id),
            Some(&kim.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let mut ws = app.online(&kim).await;
    ws.send_msg(chess.id, "r1", "opening move").await;
    assert!(ack_of(&mut ws, "r1").await > 0);

    // A new title reaches her at once.
    let rename = |title: &'static str| {
        vec![
            ("action", "rename".to_owned()),
            ("room", chess.id.to_string()),
            ("title", title.to_owned()),
        ]
    };
    assert_eq!(act(rename("\u{200B}")).await, 422);
    assert_eq!(act(rename("Chess Club")).await, 200);
    let frame = ws
        .until(|f| matches!(f, ServerFrame::Retitled { .. }))
        .await;
    assert_eq!(
        frame,
        ServerFrame::Retitled {
            conv: chess.id,
            title: "Chess Club".into()
        }
    );
    let nowhere = vec![
        ("action", "rename".to_owned()),
        ("room", "999999".to_owned()),
        ("title", "Ghost".to_owned()),
    ];
    assert_eq!(act(nowhere).await, 404);

    // Archiving asks for the password again.
    let archive = |action: &'static str| {
        vec![
            ("action", action.to_owned()),
            ("room", chess.id.to_string()),
        ]
    };
    assert_eq!(act(archive("archive")).await, 403);
    assert!(!rooms("Chess").await[0].archived);
    let res = app
        .form(
            "/api/admin/reauth",
            Some(&root.token),
            &[("password", PASSWORD), ("back", "rooms")],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(act(archive("archive")).await, 200);
    // It leaves her window and her socket: a send to it is refused.
    let frame = ws
        .until(|f| matches!(f, ServerFrame::ConvRemoved { .. }))
        .await;
    assert_eq!(frame, ServerFrame::ConvRemoved { conv: chess.id });
    ws.send_msg(chess.id, "r2", "still there?").await;
    match ws
        .until(|f| matches!(f, ServerFrame::Error { client_id: Some(c), .. } | ServerFrame::Ack { client_id: c, .. } if c == "r2"))
        .await
    {
        ServerFrame::Error { code, .. } => assert_eq!(code, messenger::protocol::ErrorCode::NotMember),
        other => panic!("a send to an archived room went through: {other:?}"),
    }
    // Nobody joins it; no list shows it; its history stays for its members.
    let other = app.guest().await;
    let res = app
        .post(
            &format!("/api/rooms/{}/join", chess.id),
            Some(&other.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let mut fresh = app.connect(&kim).await;
    let ServerFrame::Hello {
        rooms: hello_rooms,
        conversations,
        ..
    } = fresh.hello().await
    else {
        unreachable!()
    };
    assert!(hello_rooms.iter().all(|r| r.id != chess.id));
    assert!(conversations.iter().all(|c| c.id != chess.id));
    let directory = app
        .http
        .get(app.url("/api/rooms?q=Chess"))
        .bearer_auth(&other.token)
        .send()
        .await
        .expect("directory")
        .json::<messenger::protocol::RoomPage>()
        .await
        .expect("a page");
    assert!(directory.rooms.is_empty(), "{directory:?}");
    let page = app.history(chess.id, &kim).await;
    assert_eq!(page.messages.len(), 1);
    let listed = rooms("Chess").await;
    assert_eq!(
        (listed[0].archived, listed[0].messages, listed[0].members),
        (true, 1, 1)
    );

    // Restored, it comes back to her, and she can write again.
    assert_eq!(act(archive("restore")).await, 200);
    let frame = ws
        .until(|f| matches!(f, ServerFrame::ConvAdded { .. }))
        .await;
    let ServerFrame::ConvAdded { conversation } = frame else {
        unreachable!()
    };
    assert_eq!(
        (conversation.id, conversation.title.as_str()),
        (chess.id, "Chess Club")
    );
    ws.send_msg(chess.id, "r3", "back again").await;
    assert_eq!(ack_of(&mut ws, "r3").await, 2);

    // Each change is in the audit log; a non-admin changes nothing.
    let res = app
        .form(
            "/api/admin/room",
            Some(&kim.token),
            &[("action", "add"), ("title", "Mine")],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(rooms("Mine").await.is_empty());
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM audit_log WHERE event LIKE 'room_%' ORDER BY id")
            .fetch_all(&mut app.db().await)
            .await
            .expect("events");
    assert_eq!(
        events,
        [
            "room_added",
            "room_renamed",
            "room_archived",
            "room_restored"
        ]
    );
}
