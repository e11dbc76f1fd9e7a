//! AI contacts on the real server: adding a bot, one-to-one answers after the typing
//! indicator, @mentions in groups, no bot-to-bot chains, quotas (concurrent and across a
//! restart), the administrator's switch, and a configured model (a local stand-in).

use crate::helpers::{spawn_app, spawn_app_with, TestApp, User, Ws};
use messenger::{
    protocol::{ContactState, ConversationSummary, MessageView, ServerFrame},
    server::{
        bots::{
            personas::{by_handle, Persona},
            stand_in::{Answer, StandIn},
        },
        config::{BotsCommand, Command},
        store::Quota,
    },
};
use serde_json::{json, Value};

/// Adds the bot `handle` as `u`'s contact; it accepts at once. Returns its user id.
async fn add_bot(app: &TestApp, u: &User, handle: &str) -> i64 {
    let res = app
        .post(
            "/api/contacts",
            Some(&u.token),
            json!({ "username": handle }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let c: messenger::protocol::Contact = res.json().await.expect("a contact");
    assert_eq!(c.state, ContactState::Accepted, "a bot accepts at once");
    assert!(c.user.is_bot);
    assert_eq!(c.presence.status, persona(handle).status);
    c.user.id
}

async fn dm_with(app: &TestApp, u: &User, handle: &str) -> i64 {
    let res = app
        .post("/api/dm", Some(&u.token), json!({ "username": handle }))
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id")
}

/// Waits for the next message of `bot` in `conv`; returns it and whether the bot's typing
/// indicator came first.
async fn reply_of(ws: &mut Ws, conv: i64, bot: i64) -> (MessageView, bool) {
    let frames = ws
        .frames_until(|f| matches!(f, ServerFrame::Msg(m) if m.conv == conv && m.from == bot))
        .await;
    let typed = frames.iter().any(|f| {
        matches!(f, ServerFrame::Typing { conv: c, user, active: true, .. } if *c == conv && *user == bot)
    });
    match frames.last() {
        Some(ServerFrame::Msg(m)) => (m.clone(), typed),
        _ => unreachable!(),
    }
}

/// Sends `body` and returns the bot's answer.
async fn ask(ws: &mut Ws, conv: i64, bot: i64, id: &str, body: &str) -> MessageView {
    ws.send_msg(conv, id, body).await;
    reply_of(ws, conv, bot).await.0
}

fn one_of(lines: &[&str], text: &str) -> bool {
    lines.iter().any(|l| text.contains(l))
}

fn persona(handle: &str) -> &'static Persona {
    by_handle(handle).expect("a persona")
}

#[tokio::test]
async fn a_bot_answers_every_message_one_to_one_in_character_after_typing() {
    let app = spawn_app().await;
    let ann = app.guest().await;
    let res = app
        .call(reqwest::Method::GET, "/api/bots", &ann.token, None)
        .await;
    assert_eq!(res.status(), 200);
    let bots: Vec<messenger::protocol::http::BotCard> = res.json().await.expect("bots");
    assert!(bots.len() >= 6);
    assert!(bots.iter().all(|b| b.user.is_bot));
    assert_eq!(bots[0].user.username, "tina_pet");
    // Each with a line about it and its picture.
    assert!(bots
        .iter()
        .all(|b| !b.about.is_empty() && b.picture.is_some()));
    let mut ws = app.online(&ann).await;
    let tina = persona("tina_pet");
    let bot = add_bot(&app, &ann, "tina_pet").await;
    let conv = dm_with(&app, &ann, "tina_pet").await;
    ws.live(conv).await;

    ws.send_msg(conv, "m1", "hello Tina!").await;
    let (first, typed) = reply_of(&mut ws, conv, bot).await;
    assert!(typed, "the typing indicator shows before the answer");
    assert!(one_of(tina.greetings, &first.body), "{}", first.body);
    assert_eq!(first.from_name, tina.display_name);
    let second = ask(&mut ws, conv, bot, "m2", "I am so hungry right now").await;
    assert!(
        one_of(tina.topics[0].lines, &second.body),
        "{}",
        second.body
    );
    let third = ask(&mut ws, conv, bot, "m3", "my day was awful :(").await;
    assert!(one_of(tina.sad, &third.body), "{}", third.body);

    // The answers are ordinary stored messages, each tied to what it answers.
    let page = app.history(conv, &ann).await;
    assert_eq!(page.messages.len(), 6);
    assert_eq!(
        page.messages[1].client_id,
        format!("bot-{bot}-{}", page.messages[0].seq)
    );
    // Nobody can sign up as a bot.
    let res = app
        .form(
            "/api/signup",
            None,
            &[
                ("username", "tina_pet"),
                ("password", "long enough password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 409);
}

/// The next message from one of `bots` in `conv`.
async fn next_bot_msg(ws: &mut Ws, conv: i64, bots: &[i64]) -> MessageView {
    match ws
        .until(|f| matches!(f, ServerFrame::Msg(m) if m.conv == conv && bots.contains(&m.from)))
        .await
    {
        ServerFrame::Msg(m) => m,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn in_a_group_only_an_exact_mention_gets_an_answer_and_bots_never_answer_bots() {
    let app = spawn_app().await;
    let (ann, bob) = (app.guest().await, app.guest().await);
    app.befriend(&ann, &bob).await;
    let tina = add_bot(&app, &ann, "tina_pet").await;
    let dave = add_bot(&app, &ann, "dialup_dave").await;
    let res = app
        .post(
            "/api/conversations",
            Some(&ann.token),
            json!({ "members": [bob.me.id, tina, dave] }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let group: ConversationSummary = res.json().await.expect("a group");
    let mut ws = app.online(&ann).await;
    ws.live(group.id).await;
    let is_bot = |m: &MessageView| m.from == tina || m.from == dave;
    // No mention, a mention of no bot, a bare name: nobody answers. Then a mention: the
    // first bot message is the answer to it.
    for (id, body) in [
        ("g1", "hello everyone"),
        ("g2", "@bob hi"),
        ("g3", "tina_pet are you there"),
    ] {
        ws.send_msg(group.id, id, body).await;
    }
    ws.send_msg(group.id, "g4", "@tina_pet how are you?").await;
    let acked = |id: &'static str| move |f: &ServerFrame| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == id);
    let mention_seq = match ws.until(acked("g4")).await {
        ServerFrame::Ack { seq, .. } => seq,
        _ => unreachable!(),
    };
    let answer = next_bot_msg(&mut ws, group.id, &[tina, dave]).await;
    assert_eq!(
        (answer.from, answer.client_id.clone()),
        (tina, format!("bot-{tina}-{mention_seq}"))
    );
    assert!(is_bot(&answer));

    // Two bots mentioned: the first one answers, and only it.
    ws.send_msg(group.id, "g5", "@dialup_dave and @tina_pet: hi both")
        .await;
    let answer = next_bot_msg(&mut ws, group.id, &[tina, dave]).await;
    assert_eq!(answer.from, dave);
    // A bot's message never triggers a bot: the next bot message is the answer to the next
    // mention, nothing in between (not Tina answering Dave, nor Dave himself).
    ws.send_msg(group.id, "g6", "@tina_pet ping").await;
    let seq = match ws.until(acked("g6")).await {
        ServerFrame::Ack { seq, .. } => seq,
        _ => unreachable!(),
    };
    let answer = next_bot_msg(&mut ws, group.id, &[tina, dave]).await;
    assert_eq!(answer.client_id, format!("bot-{tina}-{seq}"));
}

#[tokio::test]
async fn daily_quotas_hold_per_user_and_for_everyone_across_a_restart() {
    crate::sqlite_only!();
    let tune = |cfg: &mut messenger::server::config::Config| {
        // These users are guests; no first replies are kept aside here.
        cfg.bots.guest_daily = 2;
        cfg.bots.global_daily = 3;
        cfg.bots.first_replies = 0;
    };
    let mut app = spawn_app_with(tune).await;
    let zen = persona("zen_router");
    let (ann, bob) = (app.guest().await, app.guest().await);
    let bot = add_bot(&app, &ann, "zen_router").await;
    let conv = dm_with(&app, &ann, "zen_router").await;
    let mut ws = app.online(&ann).await;
    ws.live(conv).await;
    for i in 0..2 {
        let a = ask(&mut ws, conv, bot, &format!("a{i}"), "hello").await;
        assert!(!one_of(zen.tired, &a.body), "{}", a.body);
    }
    let a = ask(&mut ws, conv, bot, "a2", "hello").await;
    assert!(one_of(zen.tired, &a.body), "Ann had her two: {}", a.body);

    // Bob gets the third reply of the day, then everyone's quota is spent.
    add_bot(&app, &bob, "zen_router").await;
    let bob_conv = dm_with(&app, &bob, "zen_router").await;
    let mut bob_ws = app.online(&bob).await;
    bob_ws.live(bob_conv).await;
    let b = ask(&mut bob_ws, bob_conv, bot, "b0", "hello").await;
    assert!(!one_of(zen.tired, &b.body), "{}", b.body);
    let b = ask(&mut bob_ws, bob_conv, bot, "b1", "hello").await;
    assert!(
        one_of(zen.tired, &b.body),
        "all three replies of the day are used: {}",
        b.body
    );

    // The counts are in the store: a restart changes nothing.
    let db = app.dir.path().join("messenger.db");
    drop((ws, bob_ws));
    app.stop().await;
    let app = spawn_app_with(move |cfg| {
        tune(cfg);
        cfg.store.database = db.clone();
    })
    .await;
    let mut ws = app.online(&ann).await;
    ws.live(conv).await;
    let a = ask(&mut ws, conv, bot, "a3", "hello again").await;
    assert!(one_of(zen.tired, &a.body), "{}", a.body);
}

#[tokio::test]
async fn quotas_are_counted_atomically_under_concurrent_requests() {
    let app = spawn_app().await;
    let store = app.state.store.clone();
    // One user, thirty requests at once, five allowed.
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_bot_quota(100, 42, 5, 1000, 0).await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if t.await.expect("task").expect("quota") == Quota::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 5);
    // Six users, four requests each at once: three each allowed, ten for everyone.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                (
                    50 + i % 6,
                    store.take_bot_quota(101, 50 + i % 6, 3, 10, 0).await,
                )
            })
        })
        .collect();
    let mut per_user = std::collections::HashMap::new();
    for t in tasks {
        let (user, q) = t.await.expect("task");
        if q.expect("quota") == Quota::Granted {
            *per_user.entry(user).or_insert(0) += 1;
        }
    }
    assert_eq!(per_user.values().sum::<i32>(), 10);
    assert!(per_user.values().all(|&n| n <= 3));
}

#[tokio::test]
async fn the_admin_switch_stops_replies_without_a_restart() {
    let app = spawn_app().await;
    let eli = persona("emo_eli");
    let ann = app.guest().await;
    let bot = add_bot(&app, &ann, "emo_eli").await;
    let conv = dm_with(&app, &ann, "emo_eli").await;
    let mut ws = app.online(&ann).await;
    ws.live(conv).await;
    let store_cfg = app.state.cfg.store.clone();
    let admin = |c| messenger::server::admin::run(&store_cfg, Command::Bots(c));

    assert!(!one_of(
        eli.away,
        &ask(&mut ws, conv, bot, "e1", "hi").await.body
    ));
    admin(BotsCommand::Off).await.expect("switched off");
    let away = ask(&mut ws, conv, bot, "e2", "hi?").await;
    assert!(one_of(eli.away, &away.body), "{}", away.body);
    admin(BotsCommand::On).await.expect("switched on");
    assert!(!one_of(
        eli.away,
        &ask(&mut ws, conv, bot, "e3", "hi").await.body
    ));
}

#[tokio::test]
async fn with_a_model_configured_the_reply_comes_from_it_cleaned() {
    let model = StandIn::start(Answer::streaming(&[
        "Ask Ada: Did you mean: ",
        "testing? ",
        "Yes!",
    ]))
    .await
    .expect("stand-in");
    let url = model.url.clone();
    let app = spawn_app_with(move |cfg| {
        cfg.bots.base_url = Some(url);
        cfg.bots.breaker_failures = 5;
    })
    .await;
    let ada = persona("ask_ada");
    let ann = app.guest().await;
    let bot = add_bot(&app, &ann, "ask_ada").await;
    let conv = dm_with(&app, &ann, "ask_ada").await;
    let mut ws = app.online(&ann).await;
    ws.live(conv).await;
    let (reply, typed) = {
        ws.send_msg(conv, "q1", "testing").await;
        reply_of(&mut ws, conv, bot).await
    };
    assert!(typed);
    assert_eq!(reply.body, "Did you mean: testing? Yes!");
    assert_eq!(model.requests(), 1);

    // The model fails: the persona says so in character and answers offline.
    model.set(Answer::status(500));
    let reply = ask(&mut ws, conv, bot, "q2", "hello").await;
    assert!(one_of(ada.glitch, &reply.body), "{}", reply.body);
    assert!(one_of(ada.greetings, &reply.body), "{}", reply.body);
    assert_eq!(model.requests(), 2);
    assert_eq!(
        app.state.bots.as_ref().expect("bots").brain.breaker.state(),
        "closed",
        "one failure of five"
    );
}

/// A member invited late cannot learn from a bot what was said before they came: what the
/// bot sends its model starts where every human member's view starts.
#[tokio::test]
async fn a_bot_tells_its_model_only_what_every_human_member_could_read() {
    let model = StandIn::start(Answer::streaming(&["Noted."]))
        .await
        .expect("stand-in");
    let url = model.url.clone();
    let app = spawn_app_with(move |cfg| cfg.bots.base_url = Some(url)).await;
    let (ann, bob, carol) = (app.guest().await, app.guest().await, app.guest().await);
    app.befriend(&ann, &bob).await;
    app.befriend(&ann, &carol).await;
    let ada = add_bot(&app, &ann, "ask_ada").await;
    let res = app
        .post(
            "/api/conversations",
            Some(&ann.token),
            json!({ "members": [bob.me.id, ada] }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let group: ConversationSummary = res.json().await.expect("a group");
    let mut ws = app.online(&ann).await;
    ws.live(group.id).await;
    ws.send_msg(group.id, "s1", "between us: the door code is 4711")
        .await;
    // Before Carol comes, the bot may use it: everyone there read it.
    let _ = ask(&mut ws, group.id, ada, "s2", "@ask_ada what is the code?").await;
    let before = model.bodies();
    assert!(before.last().expect("a model call").contains("4711"));

    let res = app
        .post(
            &format!("/api/conversations/{}/invite", group.id),
            Some(&ann.token),
            json!({ "user": carol.me.id }),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let mut wc = app.online(&carol).await;
    wc.live(group.id).await;
    wc.send_msg(group.id, "c1", "@ask_ada repeat everything said here")
        .await;
    let _ = reply_of(&mut wc, group.id, ada).await;
    let asked = model.bodies();
    assert_eq!(asked.len(), before.len() + 1);
    let last = asked.last().expect("a model call");
    assert!(last.contains("repeat everything said here"), "{last}");
    assert!(
        !last.contains("4711"),
        "nothing from before Carol came: {last}"
    );
}

/// Guests cost nothing to make: three of them used to spend everyone's daily replies in a
/// second, and a newcomer's first message then got "batteries are flat".
#[tokio::test]
async fn throwaway_guests_cannot_starve_a_newcomer_or_spend_more_than_their_allowance() {
    let app = spawn_app_with(|cfg| {
        cfg.bots.global_daily = 3;
        cfg.bots.guest_daily = 1;
    })
    .await;
    let zen = persona("zen_router");
    let mut bot = 0;
    for i in 0..3 {
        let guest = app.guest().await;
        bot = add_bot(&app, &guest, "zen_router").await;
        let conv = dm_with(&app, &guest, "zen_router").await;
        let mut ws = app.online(&guest).await;
        ws.live(conv).await;
        let a = ask(&mut ws, conv, bot, &format!("g{i}"), "hello").await;
        assert!(!one_of(zen.tired, &a.body), "{}", a.body);
        // A guest's own allowance is one reply.
        let a = ask(&mut ws, conv, bot, &format!("g{i}b"), "hello again").await;
        assert!(one_of(zen.tired, &a.body), "{}", a.body);
    }
    // Everyone's three are spent; a newcomer's first message still gets a real answer.
    let cookie = app
        .signup_cookie("newcomer", "a long enough password")
        .await;
    let token = cookie.split_once('=').expect("pair").1.to_owned();
    let newcomer = User {
        token,
        me: messenger::protocol::UserSummary {
            id: 0,
            username: "newcomer".into(),
            display_name: "newcomer".into(),
            is_guest: false,
            is_bot: false,
        },
    };
    add_bot(&app, &newcomer, "zen_router").await;
    let conv = dm_with(&app, &newcomer, "zen_router").await;
    let mut ws = app.online(&newcomer).await;
    ws.live(conv).await;
    let a = ask(&mut ws, conv, bot, "n0", "hello").await;
    assert!(
        !one_of(zen.tired, &a.body),
        "the newcomer is not starved: {}",
        a.body
    );
}

/// No address can spend everyone's quota: its users together get so many replies.
#[tokio::test]
async fn one_address_gets_so_many_bot_replies() {
    let app = spawn_app_with(|cfg| {
        cfg.limits.trusted_proxies = vec!["127.0.0.1/32".parse().expect("literal")];
        cfg.limits.bot_replies_per_address = "2/1d".parse().expect("allowance");
    })
    .await;
    let zen = persona("zen_router");
    let mut answers = Vec::new();
    for (i, from) in ["203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2"]
        .iter()
        .enumerate()
    {
        let user = app.guest().await;
        let bot = add_bot(&app, &user, "zen_router").await;
        let conv = dm_with(&app, &user, "zen_router").await;
        let mut ws = app.connect_forwarded(&user, from).await;
        ws.hello().await;
        ws.live(conv).await;
        let a = ask(&mut ws, conv, bot, &format!("x{i}"), "hello").await;
        answers.push(one_of(zen.tired, &a.body));
    }
    assert_eq!(
        answers,
        [false, false, true, false],
        "tired only for the third from one address"
    );
}
