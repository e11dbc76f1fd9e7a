//! Administration commands (`messenger rooms ...`): they open the database, act and exit.

use super::{
    audit::{self, Audit, NewEntry, Verdict},
    config::{
        AdminCommand, AuditCommand, BotsCommand, Command, KeysCommand, RetentionCommand,
        RoomsCommand, StoreConfig,
    },
    store::{
        postgres::PgStore,
        sqlite::SqliteStore,
        vault::{default_ring_path, RingFile},
        Database,
    },
};
use anyhow::{bail, Result};
use std::{path::Path, sync::Arc};

/// The key ring file, read.
fn read_ring(path: &Path) -> Result<RingFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the key ring {}: {e}", path.display()))?;
    RingFile::parse(&text)
}

pub use crate::protocol::MAX_ROOM_TITLE;

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

/// Runs one administration command against the database `--database` names (a SQLite file,
/// or PostgreSQL), with its key ring (`--key-file`, or beside the database).
pub async fn run(cfg: &StoreConfig, command: Command) -> Result<()> {
    let ring_path = cfg
        .key_file
        .clone()
        .unwrap_or_else(|| default_ring_path(&cfg.files_base()));
    if let Command::Keys(KeysCommand::Init) = command {
        if ring_path.exists() {
            bail!("the key ring {} exists already", ring_path.display());
        }
        let ring = RingFile::fresh();
        ring.write(&ring_path)?;
        println!(
            "made {} with key {} (back it up apart from the database)",
            ring_path.display(),
            ring.active
        );
        return Ok(());
    }
    // The SQLite store when it is one (a backup is SQLite's own), and the database as the
    // server sees it for everything else.
    let (sqlite, store): (Option<SqliteStore>, Arc<dyn Database>) = match cfg.postgres() {
        Some(url) => (None, Arc::new(PgStore::connect_unchecked(url).await?)),
        None => {
            let sqlite = SqliteStore::open(&cfg.database).await?;
            (Some(sqlite.clone()), Arc::new(sqlite))
        }
    };
    let audit = Audit::new(store.clone(), None)?;
    let admin = |event: &'static str, detail: serde_json::Value| NewEntry {
        event,
        user: None,
        actor: "admin".into(),
        address: None,
        detail,
    };
    match command {
        Command::Audit(AuditCommand::Verify) => match audit::verify(&*store).await? {
            Verdict::Holds(n) => println!(
                "the audit log holds: {n} {}, each following the one before",
                if n == 1 { "entry" } else { "entries" }
            ),
            Verdict::BrokenAt(id) => bail!(
                "the audit log is broken at entry {id}: it does not follow from the one before (edited, inserted or removed)"
            ),
        },
        Command::Audit(AuditCommand::Export { since }) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let mut after = 0;
            loop {
                let page = store.entries_after(after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for e in page.iter().filter(|e| since.is_none_or(|s| e.at >= s)) {
                    writeln!(out, "{}", serde_json::to_string(e)?)?;
                }
            }
        }
        Command::Backup { file } => {
            if file.exists() {
                bail!("{} exists already; choose a new file", file.display());
            }
            let started = std::time::Instant::now();
            let Some(sqlite) = &sqlite else {
                bail!(
                    "`backup` copies a SQLite database; back PostgreSQL up with its own tools \
                     (pg_dump, or continuous archiving), with the key ring beside"
                );
            };
            sqlite.backup_to(&file).await?;
            audit
                .record(admin("backup", serde_json::json!({ "file": file.display().to_string() })))
                .await;
            println!(
                "backed up {} to {} in {:.1} s (message bodies stay sealed: keep the key ring {} with it)",
                cfg.database.display(),
                file.display(),
                started.elapsed().as_secs_f64(),
                ring_path.display()
            );
        }
        Command::Keys(KeysCommand::Init) => unreachable!("handled above"),
        Command::Keys(KeysCommand::Rotate) => {
            let mut ring = read_ring(&ring_path)?;
            let id = ring.add_active();
            ring.write(&ring_path)?;
            audit
                .record(admin("key_rotated", serde_json::json!({ "key": id })))
                .await;
            println!(
                "{id} is the active key; a running server takes it within seconds and re-encrypts \
                 older messages in the background (`messenger keys status` shows how far)"
            );
        }
        Command::Keys(KeysCommand::Status) => {
            let ring = read_ring(&ring_path)?;
            let rows = store.rows_per_key().await?;
            println!("key ring: {}", ring_path.display());
            for id in ring.keys.keys() {
                let n = rows
                    .iter()
                    .find(|(k, _)| k.as_deref() == Some(id))
                    .map_or(0, |(_, n)| *n);
                let active = if *id == ring.active { " (active)" } else { "" };
                println!("{id}{active}\t{n} messages");
            }
            if let Some((_, n)) = rows.iter().find(|(k, _)| k.is_none()) {
                println!("plain\t{n} messages (sealed by a running server in the background)");
            }
        }
        Command::Keys(KeysCommand::Retire { id }) => {
            let mut ring = read_ring(&ring_path)?;
            if !ring.keys.contains_key(&id) {
                bail!("there is no key {id} in {}", ring_path.display());
            }
            if ring.active == id {
                bail!("{id} is the active key: rotate first");
            }
            let rows = store.rows_per_key().await?;
            if let Some((_, n)) = rows.iter().find(|(k, _)| k.as_deref() == Some(id.as_str())) {
                bail!(
                    "{id} still seals {n} messages; a running server re-encrypts them in the \
                     background (see `messenger keys status`), then retire it"
                );
            }
            let files = store.files_sealed_with(&id).await?;
            if files > 0 {
                bail!(
                    "{id} still seals {files} shared files, which are not re-encrypted in place; \
                     keep it in the ring until they are deleted or expire"
                );
            }
            ring.keys.remove(&id);
            ring.write(&ring_path)?;
            store.forget_key(&id).await?;
            audit
                .record(admin("key_retired", serde_json::json!({ "key": id })))
                .await;
            println!("{id} retired");
        }
        Command::Admin(AdminCommand::List) => {
            for name in store.admins().await? {
                println!("{name}");
            }
        }
        Command::Admin(AdminCommand::Grant { user }) => set_admin(&*store, &audit, &user, true).await?,
        Command::Admin(AdminCommand::Revoke { user }) => {
            set_admin(&*store, &audit, &user, false).await?
        }
        Command::Retention(RetentionCommand::Set {
            conversation,
            period,
        }) => {
            let ms = match period.trim() {
                "off" => None,
                p => {
                    let d = super::limits::stored::period(p).map_err(|e| anyhow::anyhow!(e))?;
                    if d.is_zero() {
                        bail!("a retention period is at least one second (or `off`)");
                    }
                    Some(d.as_millis() as i64)
                }
            };
            if !store.set_retention(conversation, ms).await? {
                bail!("there is no conversation {conversation}");
            }
            audit
                .record(admin(
                    "retention_set",
                    serde_json::json!({ "conversation": conversation, "retention_ms": ms }),
                ))
                .await;
            match ms {
                Some(_) => println!(
                    "conversation {conversation} keeps messages for {period}; a running server deletes older ones at its next retention run"
                ),
                None => println!("conversation {conversation} follows the server's retention"),
            }
        }
        Command::Rooms(RoomsCommand::List) => {
            for r in store.list_rooms("", i64::MAX).await? {
                let (id, members, title) = (r.id, r.members, r.title);
                let archived = if r.archived { "\tarchived" } else { "" };
                println!("{id}\t{members}\t{title}{archived}");
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
    if let Some(sqlite) = sqlite {
        sqlite.pool().close().await;
    }
    Ok(())
}

/// Grants or revokes the admin role, and records it.
async fn set_admin(store: &dyn Database, audit: &Audit, user: &str, grant: bool) -> Result<()> {
    match store.set_admin(user.trim(), grant).await? {
        None => bail!("there is no account {user}"),
        Some(false) => bail!("{user} is a guest or an AI contact: they cannot be administrators"),
        Some(true) => {}
    }
    audit
        .record(NewEntry {
            event: if grant {
                "admin_granted"
            } else {
                "admin_revoked"
            },
            user: None,
            actor: "admin".into(),
            address: None,
            detail: serde_json::json!({ "username": user }),
        })
        .await;
    println!(
        "{user} {} (their open sessions see it at once)",
        if grant {
            "is an administrator now"
        } else {
            "is no longer an administrator"
        }
    );
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
