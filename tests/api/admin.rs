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
    let db = app.dir.path().join("messenger.db");
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
    let db = app.dir.path().join("messenger.db");
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
