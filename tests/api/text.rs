//! Unicode hygiene: names and messages cannot hide, reorder or impersonate.

use crate::helpers::*;
use messenger::protocol::{ErrorCode, ServerFrame};
use reqwest::Method;
use serde_json::{json, Value};

async fn set_me(app: &TestApp, u: &User, body: Value) -> (u16, Value) {
    let res = app
        .call(Method::PATCH, "/api/me", &u.token, Some(body))
        .await;
    (res.status().as_u16(), res.json().await.expect("json"))
}

#[tokio::test]
async fn display_names_cannot_hide_reorder_or_pass_for_a_bot_or_another_user() {
    let app = spawn_app().await;
    app.signup_cookie("olga", "olga's password").await;
    let me = app.guest().await;
    for bad in [
        "evil\u{202E}gnp.exe",
        "a\u{2066}b\u{2069}",
        "Bo\u{200B}b",
        "\u{200B}\u{200B}",
        "\u{3164}",
        "Ask Ada",
        "ask  ada",
        "\u{0410}sk \u{0410}da", // Cyrillic А
        "olga",
        "OLGA",
        "\u{043E}lga",  // Cyrillic о
        "DiaI-Up Dave", // a capital I for the l
        "oIga",
        "\u{0301}\u{0301}",
    ] {
        let (status, body) = set_me(&app, &me, json!({ "display_name": bad })).await;
        assert_eq!(status, 422, "{bad:?}: {body}");
        assert_eq!(body["error"], "invalid", "{bad:?}");
    }
    // Composed on the way in; written as it was otherwise.
    let (status, body) = set_me(
        &app,
        &me,
        json!({ "display_name": "Zoe\u{0308} 👨\u{200D}👩" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["display_name"], "Zoë 👨\u{200D}👩");
    // A personal message cannot reorder either.
    let (status, _) = set_me(&app, &me, json!({ "personal_message": "hi \u{202E}olleh" })).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_user_may_keep_a_display_name_like_their_own_username() {
    let app = spawn_app().await;
    app.signup_cookie("petra", "petra's password").await;
    let res = app
        .http
        .post(app.url("/api/token"))
        .json(&json!({ "username": "petra", "password": "petra's password" }))
        .send()
        .await
        .expect("token");
    let token = res.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let res = app
        .call(
            Method::PATCH,
            "/api/me",
            &token,
            Some(json!({ "display_name": "Petra" })),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn messages_lose_reordering_controls_and_cannot_be_invisible() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;
    for (i, invisible) in ["\u{200B}", "\u{FEFF}", "\u{2060}\u{200B} ", "\u{202E}"]
        .iter()
        .enumerate()
    {
        wa.send_msg(conv, &format!("inv{i}"), invisible).await;
        match wa.next().await {
            ServerFrame::Error { code, .. } => {
                assert_eq!(code, ErrorCode::InvalidBody, "{invisible:?}")
            }
            f => panic!("expected invalid_body for {invisible:?}, got {f:?}"),
        }
    }
    wa.send_msg(conv, "ok", "pay \u{202E}321\u{202C} now").await;
    let got = wb.until(|f| matches!(f, ServerFrame::Msg(_))).await;
    match got {
        ServerFrame::Msg(m) => assert_eq!(m.body, "pay 321 now"),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn contact_group_names_cannot_reorder() {
    let app = spawn_app().await;
    let me = app.guest().await;
    let res = app
        .post(
            "/api/groups",
            Some(&me.token),
            json!({ "name": "\u{202E}krow" }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .post(
            "/api/groups",
            Some(&me.token),
            json!({ "name": "\u{200B}" }),
        )
        .await;
    assert_eq!(res.status(), 422);
}
