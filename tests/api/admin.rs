//! The administration commands, run as the real binary against the database of a running
//! server.

use crate::helpers::spawn_app;
use messenger::protocol::ServerFrame;
use serde_json::json;
use std::process::{Command, Output};

fn messenger(db: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_messenger"))
        .env("MESSENGER_DATABASE", db)
        .env("RUST_LOG", "error")
        .args(args)
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn rooms_added_by_the_admin_command_appear_to_users_and_can_be_joined() {
    let app = spawn_app().await;
    let db = app.state.cfg.store.database.clone();
    let out = messenger(&db, &["rooms", "add", "Chess Club", "  Book Nook "]);
    assert!(out.status.success(), "{out:?}");
    let added: Vec<(i64, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (id, title) = l.split_once('\t').expect("id<TAB>title");
            (id.parse().unwrap(), title.to_owned())
        })
        .collect();
    assert_eq!(
        added.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["Chess Club", "Book Nook"]
    );
    let out = messenger(&db, &["rooms", "add", "--numbered", "3", "Load"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);

    // A user connecting now sees them, and can join one and talk in it.
    let a = app.guest().await;
    let mut ws = app.connect(&a).await;
    let ServerFrame::Hello { rooms, .. } = ws.hello().await else {
        unreachable!()
    };
    let titles: Vec<&str> = rooms.iter().map(|r| r.title.as_str()).collect();
    for t in [
        "Lobby",
        "Chess Club",
        "Book Nook",
        "Load 1",
        "Load 2",
        "Load 3",
    ] {
        assert!(titles.contains(&t), "{t} missing from {titles:?}");
    }
    let chess = added[0].0;
    let res = app
        .post(
            &format!("/api/rooms/{chess}/join"),
            Some(&a.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let out = messenger(&db, &["rooms", "list"]);
    assert!(out.status.success(), "{out:?}");
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.lines().any(|l| l == format!("{chess}\t1\tChess Club")),
        "{list}"
    );
}

#[tokio::test]
async fn bad_room_titles_are_refused_with_a_clear_error_and_nothing_is_added() {
    let app = spawn_app().await;
    let db = app.state.cfg.store.database.clone();
    let long = "x".repeat(65);
    for args in [
        vec!["rooms", "add", "   "],
        vec!["rooms", "add", long.as_str()],
        vec!["rooms", "add", "Fine", "bad\ttitle"],
        vec!["rooms", "add", "--numbered", "0", "Zero"],
    ] {
        let out = messenger(&db, &args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("room title") || err.contains("--numbered"),
            "{err}"
        );
    }
    let out = messenger(&db, &["rooms", "list"]);
    let list = String::from_utf8(out.stdout).unwrap();
    // Only the three rooms every installation starts with.
    assert_eq!(list.lines().count(), 3, "{list}");
}

async fn room_page(
    app: &crate::helpers::TestApp,
    token: &str,
    query: &str,
) -> messenger::protocol::RoomPage {
    let res = app
        .http
        .get(app.url(&format!("/api/rooms?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("directory");
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.expect("a room page")
}

#[tokio::test]
async fn hello_lists_a_bounded_set_of_rooms_and_the_directory_pages_through_all() {
    use messenger::protocol::HELLO_ROOMS_MAX;
    let app = spawn_app().await;
    let db = app.state.cfg.store.database.clone();
    let out = messenger(&db, &["rooms", "add", "--numbered", "120", "Hall"]);
    assert!(out.status.success(), "{out:?}");
    let a = app.guest().await;

    // Search: "Hall 11" matches Hall 11 and Hall 110 to 119.
    let found = room_page(&app, &a.token, "q=Hall%2011&limit=200").await;
    assert_eq!(found.rooms.len(), 11);
    let late = found
        .rooms
        .iter()
        .find(|r| r.title == "Hall 115")
        .expect("Hall 115")
        .id;
    let res = app
        .post(
            &format!("/api/rooms/{late}/join"),
            Some(&a.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);

    // The hello: the first rooms and the joined one, with the total.
    let mut ws = app.connect(&a).await;
    let ServerFrame::Hello {
        rooms, rooms_total, ..
    } = ws.hello().await
    else {
        unreachable!()
    };
    assert_eq!(rooms_total, 123);
    assert_eq!(rooms.len() as i64, HELLO_ROOMS_MAX + 1);
    assert!(rooms.iter().any(|r| r.id == late && r.joined));

    // The directory, page by page, has every room once, in order.
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let page = room_page(&app, &a.token, &format!("after={after}&limit=50")).await;
        assert!(page.rooms.len() <= 50);
        ids.extend(page.rooms.iter().map(|r| r.id));
        match page.rooms.last() {
            Some(last) if page.has_more => after = last.id,
            _ => break,
        }
    }
    assert_eq!(ids.len(), 123);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // Wildcards are searched for as themselves; limits are kept in range; long searches
    // are refused.
    assert!(room_page(&app, &a.token, "q=%25").await.rooms.is_empty());
    assert!(room_page(&app, &a.token, "q=_").await.rooms.is_empty());
    let one = room_page(&app, &a.token, "limit=0").await;
    assert_eq!((one.rooms.len(), one.has_more), (1, true));
    let res = app
        .http
        .get(app.url(&format!("/api/rooms?q={}", "x".repeat(65))))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("directory");
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn the_bots_switch_is_flipped_by_the_binary() {
    let app = spawn_app().await;
    let db = app.state.cfg.store.database.clone();
    let status = |db: &std::path::Path| {
        let out = messenger(db, &["bots", "status"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .expect("text")
            .trim()
            .to_owned()
    };
    assert_eq!(status(&db), "on");
    assert!(messenger(&db, &["bots", "off"]).status.success());
    assert_eq!(status(&db), "off");
    assert!(
        !messenger::server::store::BotStore::bots_enabled(&*app.state.store)
            .await
            .expect("read")
    );
    assert!(messenger(&db, &["bots", "on"]).status.success());
    assert_eq!(status(&db), "on");
}
