//! Group conversations by invitation: invite from a one-to-one conversation, a three-way
//! conversation, joins and leaves seen by every member, leaving, who may be invited, the
//! member limit, and what someone invited late may read.

use crate::helpers::{spawn_app, TestApp, User, Ws};
use messenger::protocol::{
    ConversationKind, ConversationSummary, ErrorCode, MessageKind, MessageView, ServerFrame,
    MAX_GROUP_MEMBERS,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn invite(app: &TestApp, by: &User, conv: i64, who: &User) -> reqwest::Response {
    app.post(
        &format!("/api/conversations/{conv}/invite"),
        Some(&by.token),
        json!({ "user": who.me.id }),
    )
    .await
}

async fn invited(app: &TestApp, by: &User, conv: i64, who: &User) -> ConversationSummary {
    let res = invite(app, by, conv, who).await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    res.json().await.expect("a conversation")
}

/// The request fails with `status` and a message that contains `says`.
async fn refused(res: reqwest::Response, status: u16, says: &str) {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.expect("a JSON error");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

async fn start(app: &TestApp, by: &User, members: &[&User]) -> reqwest::Response {
    let ids: Vec<i64> = members.iter().map(|u| u.me.id).collect();
    app.post(
        "/api/conversations",
        Some(&by.token),
        json!({ "members": ids }),
    )
    .await
}

fn added(f: &ServerFrame, conv: i64) -> bool {
    matches!(f, ServerFrame::ConvAdded { conversation } if conversation.id == conv)
}

/// The next stored message of `conv` on `ws`.
async fn next_msg(ws: &mut Ws, conv: i64) -> MessageView {
    match ws
        .until(|f| matches!(f, ServerFrame::Msg(m) if m.conv == conv))
        .await
    {
        ServerFrame::Msg(m) => m,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn inviting_from_a_one_to_one_conversation_starts_a_three_way_conversation() {
    let app = spawn_app().await;
    let (ann, bob, cat) = (app.guest().await, app.guest().await, app.guest().await);
    app.befriend(&ann, &bob).await;
    app.befriend(&ann, &cat).await;
    let (dm, mut ann_ws, mut bob_ws) = app.dm_live(&ann, &bob).await;
    let mut cat_ws = app.online(&cat).await;

    let group = invited(&app, &ann, dm, &cat).await;
    assert_eq!(group.kind, ConversationKind::Group);
    assert_ne!(group.id, dm, "the one-to-one conversation stays as it was");
    let mut ids: Vec<i64> = group.members.iter().map(|m| m.id).collect();
    ids.sort();
    let mut want = vec![ann.me.id, bob.me.id, cat.me.id];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        group.title,
        format!("{} and {}", bob.me.display_name, cat.me.display_name)
    );

    // Everyone's tabs learn of it, titled for them.
    for (ws, me) in [
        (&mut ann_ws, &ann),
        (&mut bob_ws, &bob),
        (&mut cat_ws, &cat),
    ] {
        match ws.until(|f| added(f, group.id)).await {
            ServerFrame::ConvAdded { conversation } => {
                assert_eq!(conversation.kind, ConversationKind::Group);
                assert!(!conversation.title.contains(&me.me.display_name));
            }
            _ => unreachable!(),
        }
        ws.live(group.id).await;
    }

    // A three-way conversation: each message reaches both others.
    ann_ws.send_msg(group.id, "a1", "hello both").await;
    bob_ws.send_msg(group.id, "b1", "hi ann").await;
    cat_ws.send_msg(group.id, "c1", "hey there").await;
    for ws in [&mut ann_ws, &mut bob_ws, &mut cat_ws] {
        let mut bodies = Vec::new();
        while bodies.len() < 3 {
            let m = next_msg(ws, group.id).await;
            if m.kind == MessageKind::Text {
                bodies.push(m.body);
            }
        }
        bodies.sort();
        assert_eq!(bodies, ["hello both", "hey there", "hi ann"]);
    }

    // Cat leaves: the others see it, Cat's tabs forget the conversation.
    let res = app
        .post(
            &format!("/api/conversations/{}/leave", group.id),
            Some(&cat.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    for ws in [&mut ann_ws, &mut bob_ws] {
        let m = next_msg(ws, group.id).await;
        assert_eq!((m.kind, m.from), (MessageKind::Leave, cat.me.id));
    }
    cat_ws
        .until(|f| matches!(f, ServerFrame::ConvRemoved { conv } if *conv == group.id))
        .await;
    cat_ws.send_msg(group.id, "c2", "still here?").await;
    match cat_ws
        .until(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NotMember),
        _ => unreachable!(),
    }
    let res = app
        .call(
            Method::GET,
            &format!("/api/history?conv={}", group.id),
            &cat.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 403);

    // The history keeps the joins and the leave in order, with the messages.
    let page = app.history(group.id, &ann).await;
    let kinds: Vec<(MessageKind, i64)> = page.messages.iter().map(|m| (m.kind, m.from)).collect();
    assert_eq!(kinds[0], (MessageKind::Join, bob.me.id));
    assert_eq!(kinds[1], (MessageKind::Join, cat.me.id));
    assert_eq!(
        page.messages[0].body, ann.me.display_name,
        "who invited them"
    );
    assert_eq!(kinds.last(), Some(&(MessageKind::Leave, cat.me.id)));
    assert_eq!(kinds.len(), 6);
    // After a reconnect the conversation is still there, without Cat.
    let mut again = app.connect(&ann).await;
    match again.hello().await {
        ServerFrame::Hello { conversations, .. } => {
            let g = conversations
                .iter()
                .find(|c| c.id == group.id)
                .expect("still a member");
            assert_eq!(g.members.len(), 2);
            assert_eq!(g.title, bob.me.display_name);
        }
        other => panic!("not a hello: {other:?}"),
    }
}

#[tokio::test]
async fn who_may_be_invited_and_the_member_limit() {
    let app = spawn_app().await;
    let ann = app.guest().await;
    let mut friends = Vec::new();
    for _ in 0..MAX_GROUP_MEMBERS {
        let f = app.guest().await;
        app.befriend(&ann, &f).await;
        friends.push(f);
    }
    let stranger = app.guest().await;

    // Too many at once: the creator plus 20 is 21.
    let everyone: Vec<&User> = friends.iter().collect();
    refused(
        start(&app, &ann, &everyone).await,
        409,
        "at most 20 members",
    )
    .await;
    refused(start(&app, &ann, &[]).await, 422, "at least one contact").await;
    refused(
        start(&app, &ann, &[&stranger]).await,
        422,
        "from your contact list",
    )
    .await;

    // Exactly 20 members is fine.
    let res = start(&app, &ann, &everyone[..MAX_GROUP_MEMBERS - 1]).await;
    assert_eq!(res.status(), 201);
    let group: ConversationSummary = res.json().await.expect("a conversation");
    assert_eq!(group.members.len(), MAX_GROUP_MEMBERS);
    let last = &friends[MAX_GROUP_MEMBERS - 1];
    refused(
        invite(&app, &ann, group.id, last).await,
        409,
        "at most 20 members",
    )
    .await;
    // Someone leaves; now there is room.
    let res = app
        .post(
            &format!("/api/conversations/{}/leave", group.id),
            Some(&friends[0].token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    invited(&app, &ann, group.id, last).await;
    refused(
        invite(&app, &ann, group.id, last).await,
        409,
        "already in this conversation",
    )
    .await;

    // Only members invite, and only their own contacts who have not blocked them.
    refused(
        invite(&app, &stranger, group.id, &friends[0]).await,
        403,
        "not in that conversation",
    )
    .await;
    refused(
        invite(&app, &friends[1], group.id, &stranger).await,
        422,
        "from your contact list",
    )
    .await;
    let res = app
        .post(
            &format!("/api/contacts/{}/block", ann.me.id),
            Some(&friends[0].token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    refused(
        invite(&app, &ann, group.id, &friends[0]).await,
        409,
        "could not be invited",
    )
    .await;
    let res = app
        .post(
            &format!("/api/contacts/{}/block", friends[2].me.id),
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    refused(
        start(&app, &ann, &[&friends[2]]).await,
        409,
        "unblock them first",
    )
    .await;

    // Rooms are not invited into, one-to-one conversations are not left.
    let dm = app.dm(&ann, &friends[3]).await;
    refused(
        app.post(
            &format!("/api/conversations/{dm}/leave"),
            Some(&ann.token),
            json!({}),
        )
        .await,
        422,
        "Only group conversations",
    )
    .await;
    let res = app
        .post("/api/rooms/1/join", Some(&ann.token), json!({}))
        .await;
    assert_eq!(res.status(), 200);
    refused(
        invite(&app, &ann, 1, &friends[3]).await,
        422,
        "Rooms are public",
    )
    .await;
    // Leaving twice: the second time they are not in it.
    refused(
        app.post(
            &format!("/api/conversations/{}/leave", group.id),
            Some(&friends[0].token),
            json!({}),
        )
        .await,
        403,
        "not in that conversation",
    )
    .await;
}

#[tokio::test]
async fn someone_invited_later_reads_from_their_arrival_on() {
    let app = spawn_app().await;
    let (ann, bob, cat) = (app.guest().await, app.guest().await, app.guest().await);
    app.befriend(&ann, &bob).await;
    app.befriend(&ann, &cat).await;
    let res = start(&app, &ann, &[&bob]).await;
    assert_eq!(res.status(), 201);
    let group: ConversationSummary = res.json().await.expect("a conversation");
    let mut ann_ws = app.online(&ann).await;
    ann_ws.live(group.id).await;
    for i in 0..3 {
        ann_ws
            .send_msg(group.id, &format!("early{i}"), "before Cat came")
            .await;
        ann_ws
            .until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if *client_id == format!("early{i}")))
            .await;
    }
    // Bob's join, then three messages.
    let before = 4;

    let mut cat_ws = app.online(&cat).await;
    let summary = invited(&app, &ann, group.id, &cat).await;
    assert_eq!(summary.id, group.id);
    let mine = match cat_ws.until(|f| added(f, group.id)).await {
        ServerFrame::ConvAdded { conversation } => conversation,
        _ => unreachable!(),
    };
    assert_eq!(mine.visible_after, before);
    assert_eq!(mine.members.len(), 3);
    // Asking for everything gets only what came after the invitation: the join line first.
    cat_ws.sync(group.id, 0).await;
    let first = next_msg(&mut cat_ws, group.id).await;
    assert_eq!(
        (first.seq, first.kind, first.from),
        (before + 1, MessageKind::Join, cat.me.id)
    );
    ann_ws.send_msg(group.id, "late", "welcome Cat").await;
    let m = next_msg(&mut cat_ws, group.id).await;
    assert_eq!(m.body, "welcome Cat");
    let page = app.history(group.id, &cat).await;
    assert!(!page.has_more);
    assert!(page.messages.iter().all(|m| m.seq > before));
    assert_eq!(page.messages.len(), 2);
    // Those who were there keep everything.
    assert_eq!(app.history(group.id, &ann).await.messages.len(), 6);
}
