//! Administration commands (`messenger rooms ...`): they open the database, act and exit.

use super::{
    config::{BotsCommand, Command, RoomsCommand},
    store::{sqlite::SqliteStore, BotStore, ConversationStore},
};
use anyhow::{bail, Result};
use std::path::Path;

/// Longest room title, in characters.
pub const MAX_ROOM_TITLE: usize = 64;

/// The titles `rooms add` creates: each title once, or `numbered` times with a number.
pub fn room_titles(titles: &[String], numbered: Option<u32>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for raw in titles {
        let title = crate::server::text::line(raw, "room title", MAX_ROOM_TITLE, false)
            .map_err(|e| anyhow::anyhow!("{} ({raw:?})", e.0))?;
        let title = title.as_str();
        match numbered {
            None => out.push(title.to_owned()),
            Some(0) => bail!("--numbered needs a count of at least 1"),
            Some(n) => out.extend((1..=n).map(|i| format!("{title} {i}"))),
        }
    }
    if let Some(long) = out.iter().find(|t| t.chars().count() > MAX_ROOM_TITLE) {
        bail!("room titles are at most {MAX_ROOM_TITLE} characters: {long:?}");
    }
    Ok(out)
}

/// Runs one administration command against the database at `database`.
pub async fn run(database: &Path, command: Command) -> Result<()> {
    let store = SqliteStore::open(database).await?;
    match command {
        Command::Rooms(RoomsCommand::List) => {
            for (id, members, title) in store.list_rooms().await? {
                println!("{id}\t{members}\t{title}");
            }
        }
        Command::Rooms(RoomsCommand::Add { titles, numbered }) => {
            let titles = room_titles(&titles, numbered)?;
            let ids = store.add_rooms(&titles).await?;
            for (id, title) in ids.iter().zip(&titles) {
                println!("{id}\t{title}");
            }
        }
        Command::Bots(BotsCommand::Off) => {
            store.set_bots_enabled(false).await?;
            println!("off: the bots stop answering now (a running server reads this per reply)");
        }
        Command::Bots(BotsCommand::On) => {
            store.set_bots_enabled(true).await?;
            println!("on");
        }
        Command::Bots(BotsCommand::Status) => {
            let on = store.bots_enabled().await?;
            println!("{}", if on { "on" } else { "off" });
        }
    }
    store.pool().close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn titles_are_trimmed_and_numbered() {
        assert_eq!(room_titles(&s(&[" Chess "]), None).unwrap(), ["Chess"]);
        assert_eq!(
            room_titles(&s(&["Load"]), Some(3)).unwrap(),
            ["Load 1", "Load 2", "Load 3"]
        );
    }

    #[test]
    fn bad_titles_are_refused() {
        assert!(room_titles(&s(&["  "]), None).is_err());
        assert!(room_titles(&s(&["a\nb"]), None).is_err());
        assert!(room_titles(&s(&[&"x".repeat(65)]), None).is_err());
        assert!(room_titles(&s(&[&"x".repeat(64)]), None).is_ok());
        // The number counts towards the limit.
        assert!(room_titles(&s(&[&"x".repeat(62)]), Some(100)).is_err());
        assert!(room_titles(&s(&["Load"]), Some(0)).is_err());
    }
}
