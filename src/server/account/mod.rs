//! What a user's account holds, and its end: deleting an account (by its owner with the
//! password, by an admin, or a guest by the clean-up) and erasing what it wrote; and the
//! export of everything the server holds about a user (`export.rs`).
//!
//! Deleting is done in two steps. First, in one transaction (`AccountStore::delete_account`),
//! the account's sessions end and its profile, picture, contacts, requests, blocks,
//! groups and memberships go; its row stays, named "Deleted user", so the username is
//! never taken again. Then the text it wrote in every conversation that outlives it is
//! emptied in small batches (the message writer never waits long), and one `delete` line
//! with the body `all` goes through the message log into each of those conversations: it
//! empties what was committed meanwhile, and tells every member's window to show
//! "message deleted" where that person's lines were. The sequence numbers stay gap-free.
//! An erasure a stop interrupts is finished at the next start.

pub mod export;

use super::{
    audit::{Audit, NewEntry},
    chat::{Author, Chat},
    error::Result,
    hub::Fanout,
    presence::{Event, PresenceHub},
    store::{
        account::{AccountStore, Deleted},
        now_ms, Content,
    },
};
use crate::protocol::{close, ClientId};
use rand::Rng;
use std::sync::Arc;

pub use super::store::sqlite::account::DELETED_NAME;

/// Messages emptied per transaction while erasing an account's text.
const ERASE_BATCH: i64 = 500;

/// Who deleted an account, for the audit log.
#[derive(Debug, Clone)]
pub enum DeletedBy {
    /// Its owner, from this address.
    Owner(Option<String>),
    /// An admin (their user id; None: the command line).
    Admin(Option<i64>),
    /// The server: a guest's session ended, or it was idle too long.
    Server(&'static str),
}

pub struct Erasure {
    store: Arc<dyn AccountStore>,
    chat: Arc<Chat>,
    fanout: Arc<dyn Fanout>,
    presence: Arc<PresenceHub>,
    audit: Arc<Audit>,
}

impl Erasure {
    pub fn new(
        store: Arc<dyn AccountStore>,
        chat: Arc<Chat>,
        fanout: Arc<dyn Fanout>,
        presence: Arc<PresenceHub>,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            store,
            chat,
            fanout,
            presence,
            audit,
        }
    }

    /// Deletes the account `user` and erases what it wrote; false if there is no such live
    /// account. Its sockets close with "session ended" at once; the erasure of its text is
    /// done before this returns.
    pub async fn delete(&self, user: i64, by: DeletedBy) -> Result<bool> {
        let Some(Deleted {
            told,
            wrote_in,
            sessions,
        }) = self.store.delete_account(user, now_ms()).await?
        else {
            return Ok(false);
        };
        for session in sessions {
            self.fanout
                .end_session(user, session, close::SESSION_ENDED, "account deleted");
        }
        for owner in told {
            self.presence.emit(Event::Related(user, owner));
        }
        let (actor, address, how) = match &by {
            DeletedBy::Owner(address) => (format!("user:{user}"), address.clone(), "owner"),
            DeletedBy::Admin(Some(admin)) => (format!("user:{admin}"), None, "admin"),
            DeletedBy::Admin(None) => ("admin".to_owned(), None, "admin"),
            DeletedBy::Server(why) => ("server".to_owned(), None, *why),
        };
        self.audit
            .record(NewEntry {
                event: "account_deleted",
                user: Some(user),
                actor,
                address,
                detail: serde_json::json!({ "by": how, "conversations": wrote_in.len() }),
            })
            .await;
        tracing::info!(user, by = how, "account deleted");
        self.erase(user, &wrote_in).await?;
        Ok(true)
    }

    /// Empties what `user` wrote in `convs`, then posts each conversation's erasure line.
    async fn erase(&self, user: i64, convs: &[i64]) -> Result<()> {
        for &conv in convs {
            while self.store.erase_some(conv, user, ERASE_BATCH).await? == ERASE_BATCH as u64 {
                // Other writers get the lock between batches.
                tokio::task::yield_now().await;
            }
            let nonce: u64 = rand::thread_rng().gen();
            let client_id = ClientId::parse(&format!("erase-{nonce:016x}"))
                .map_err(|e| anyhow::anyhow!(e.0))?;
            let author = Author {
                id: user,
                name: DELETED_NAME,
                dm_peer: None,
            };
            self.chat
                .post_and_wait(author, conv, client_id, Content::EraseAll)
                .await
                .map_err(|r| anyhow::anyhow!("an erasure line was refused: {r:?}"))?;
        }
        self.store.finish_erasure(user).await?;
        // The files it shared go with their messages, now rather than at the next pass.
        self.chat.file_deleted.notify_one();
        Ok(())
    }

    /// Finishes the erasures a stop interrupted (at start).
    pub async fn resume(&self) -> Result<usize> {
        let unfinished = self.store.unfinished_erasures().await?;
        for (user, convs) in &unfinished {
            tracing::info!(
                user,
                conversations = convs.len(),
                "finishing an account's erasure"
            );
            self.erase(*user, convs).await?;
        }
        Ok(unfinished.len())
    }
}
