//! Guests are deleted with their data when they sign out and after a time without a session.

use crate::helpers::*;
use messenger::protocol::{MessageKind, ServerFrame};
use serde_json::json;

async fn count(app: &TestApp, sql: &str, user: i64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(user)
        .fetch_one(&mut app.db().await)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_guest_who_signs_out_is_deleted_and_their_contacts_see_them_go() {
    let app = spawn_app().await;
    let (guest, friend) = (app.guest().await, app.guest().await);
    app.befriend(&guest, &friend).await;
    let res = app
        .post("/api/groups", Some(&guest.token), json!({ "name": "Pals" }))
        .await;
    assert_eq!(res.status(), 201);
    let (conv, mut wg, mut wf) = app.dm_live(&guest, &friend).await;
    wg.send_msg(conv, "m1", "see you").await;
    wf.until(|f| matches!(f, ServerFrame::Msg(_))).await;
    // A conversation only the guest (and a bot) are in.
    let res = app
        .post(
            "/api/contacts",
            Some(&guest.token),
            json!({ "username": "zen_router" }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            "/api/dm",
            Some(&guest.token),
            json!({ "username": "zen_router" }),
        )
        .await;
    let bot_dm = res.json::<serde_json::Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");

    let res = app
        .http
        .post(app.url("/api/signout"))
        .bearer_auth(&guest.token)
        .send()
        .await
        .expect("sign out");
    assert_eq!(res.status(), 204);
    // The friend is told the contact is gone.
    wf.until(|f| matches!(f, ServerFrame::ContactRemoved { user } if *user == guest.me.id))
        .await;
    let id = guest.me.id;
    for (what, sql) in [
        (
            "sessions",
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
        ),
        (
            "contacts",
            "SELECT COUNT(*) FROM contacts WHERE owner_id = $1 OR contact_id = $1",
        ),
        (
            "groups",
            "SELECT COUNT(*) FROM contact_groups WHERE owner_id = $1",
        ),
        (
            "memberships",
            "SELECT COUNT(*) FROM members WHERE user_id = $1",
        ),
    ] {
        assert_eq!(count(&app, sql, id).await, 0, "{what}");
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM conversations WHERE id = $1",
            bot_dm
        )
        .await,
        0,
        "the conversation with the bot is gone"
    );
    // What the guest said to the friend is erased: a tombstone keeps its number, and the
    // erasure line that told the friend's window follows it.
    let page = app.history(conv, &friend).await;
    let kinds: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.kind, m.body.as_str(), m.from_name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (MessageKind::Deleted, "", "Deleted user"),
            (MessageKind::Delete, "all", "Deleted user"),
        ]
    );
    let (username, password): (String, Option<String>) =
        sqlx::query_as("SELECT username, password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&mut app.db().await)
            .await
            .expect("tombstone");
    assert_eq!(username, guest.me.username, "the name stays taken");
    assert!(password.is_none());
    // A guest who said nothing leaves nothing at all.
    let quiet = app.guest().await;
    let res = app
        .http
        .post(app.url("/api/signout"))
        .bearer_auth(&quiet.token)
        .send()
        .await
        .expect("sign out");
    assert_eq!(res.status(), 204);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE id = $1",
            quiet.me.id
        )
        .await,
        0
    );
}

#[tokio::test]
async fn guests_without_a_session_for_the_idle_time_are_deleted_and_others_kept() {
    let app = spawn_app_with(|c| c.sessions.guest_idle_hours = 0).await;
    let gone = app.guest().await;
    let kept = app.guest().await;
    // The first guest came a second ago and their session has ended (as an idle one does).
    let mut db = app.db().await;
    let second_ago = messenger::server::store::now_ms() - 1000;
    sqlx::query("UPDATE sessions SET idle_expires_at = $1 WHERE user_id = $2")
        .bind(second_ago)
        .bind(gone.me.id)
        .execute(&mut db)
        .await
        .expect("update");
    sqlx::query("UPDATE users SET created_at = $1 WHERE id = $2")
        .bind(second_ago)
        .bind(gone.me.id)
        .execute(&mut db)
        .await
        .expect("update");
    let member = app.signup_cookie("stays", "a long enough password").await;
    assert!(!member.is_empty());
    let deleted = app.state.auth.forget_idle_guests().await.expect("sweep");
    assert_eq!(deleted, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM users WHERE id = $1", gone.me.id).await,
        0
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM users WHERE id = $1", kept.me.id).await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE username = 'stays' AND $1 > 0",
            1
        )
        .await,
        1,
        "accounts are never swept"
    );
}
