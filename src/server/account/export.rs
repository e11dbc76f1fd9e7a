//! The export of everything the server holds about a user, as one JSON document
//! (`docs/DATA.md` describes it field by field): the account and profile with its picture,
//! the contact list with groups and blocks, the live sessions, every conversation the user
//! is in with the messages they can see, and the audit log's entries about them.
//!
//! It is written as it is read, a page of messages at a time, into a channel of a few
//! chunks that the HTTP body drains: a long history never sits in memory, and a slow
//! reader slows the export instead of growing it.

use crate::protocol::{ContactState, MessageView};
use crate::server::store::{
    account::AccountStore, now_ms, ContactStore, ConversationStore, MessageStore, ProfileStore,
    StoreError,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The archive's format name and version (`docs/DATA.md`).
pub const FORMAT: &str = "messenger-export";
pub const VERSION: u32 = 1;

/// Messages read per page.
const PAGE: u32 = 500;
/// Chunks waiting for the reader.
const CHUNKS: usize = 4;
/// Bytes gathered before a chunk is handed over.
const CHUNK_BYTES: usize = 64 * 1024;

/// Where the export reads from.
#[derive(Clone)]
pub struct Sources {
    pub accounts: Arc<dyn AccountStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub contacts: Arc<dyn ContactStore>,
    pub convs: Arc<dyn ConversationStore>,
    pub messages: Arc<dyn MessageStore>,
}

/// The user the export is of.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: i64,
    pub username: String,
    pub is_guest: bool,
}

/// Starts writing the export of `who`; its chunks arrive on the receiver. A failure half-way
/// ends the stream with an error (the download is then cut short, never silently whole).
pub fn start(sources: Sources, who: Subject) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(CHUNKS);
    tokio::spawn(async move {
        let mut out = Out {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx: tx.clone(),
        };
        if let Err(e) = write(&sources, &who, &mut out).await {
            tracing::error!(user = who.id, error = %e, "writing an export");
            let _ = tx
                .send(Err(std::io::Error::other("the export failed half-way")))
                .await;
            return;
        }
        let _ = out.flush().await;
    });
    rx
}

struct Out {
    buf: Vec<u8>,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

/// The reader went away: stop writing.
#[derive(Debug)]
struct Gone;

impl Out {
    async fn raw(&mut self, s: &str) -> Result<(), Gone> {
        self.buf.extend_from_slice(s.as_bytes());
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }
    async fn value(&mut self, v: &impl serde::Serialize) -> Result<(), Gone> {
        serde_json::to_writer(&mut self.buf, v).map_err(|_| Gone)?;
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx.send(Ok(chunk)).await.map_err(|_| Gone)
    }
}

#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the reader went away")]
    Gone,
}

impl From<Gone> for Failed {
    fn from(_: Gone) -> Self {
        Failed::Gone
    }
}

fn state_name(state: Option<ContactState>) -> &'static str {
    match state {
        Some(ContactState::Accepted) => "contact",
        Some(ContactState::Requested) => "request_sent",
        Some(ContactState::Incoming) => "request_received",
        Some(ContactState::None) | None => "none",
    }
}

fn message(m: &MessageView) -> Value {
    json!({
        "seq": m.seq,
        "from": m.from,
        "from_name": m.from_name,
        "kind": m.kind.as_str(),
        "body": m.body,
        "at": m.at,
    })
}

async fn write(src: &Sources, who: &Subject, out: &mut Out) -> Result<(), Failed> {
    let profile = src.profiles.profile(who.id).await?;
    let picture = src.profiles.picture(who.id).await?;
    let head = json!({
        "format": FORMAT,
        "version": VERSION,
        "exported_at": now_ms(),
        "account": {
            "id": who.id,
            "username": who.username,
            "is_guest": who.is_guest,
            "display_name": profile.as_ref().map(|p| p.display_name.clone()),
            "personal_message": profile.as_ref().map(|p| p.personal_message.clone()),
            "status": profile.as_ref().map(|p| p.status.as_str()),
            "picture": picture.map(|(version, png)| json!({
                "version": version,
                "content_type": "image/png",
                "base64": STANDARD.encode(png),
            })),
        },
    });
    // The head object without its closing brace; the rest follows as more fields.
    let head = head.to_string();
    out.raw(&head[..head.len() - 1]).await?;

    let contacts = src.contacts.contacts_of(who.id).await?;
    let contacts: Vec<Value> = contacts
        .iter()
        .map(|c| {
            json!({
                "username": c.user.username,
                "display_name": c.user.display_name,
                "relationship": state_name(c.state),
                "group": c.group,
                "blocked": c.blocked,
                "is_bot": c.user.is_bot,
            })
        })
        .collect();
    out.raw(",\"contacts\":").await?;
    out.value(&contacts).await?;

    let sessions = src.accounts.live_sessions(who.id, now_ms()).await?;
    out.raw(",\"sessions\":").await?;
    out.value(&sessions).await?;

    out.raw(",\"conversations\":[").await?;
    let convs = src.convs.conversations_for_user(who.id).await?;
    for (i, c) in convs.iter().enumerate() {
        let members: Vec<&str> = c.members.iter().map(|m| m.username.as_str()).collect();
        let head = json!({
            "id": c.id,
            "kind": c.kind,
            "title": c.title,
            "members": members,
            "visible_after": c.visible_after,
        })
        .to_string();
        if i > 0 {
            out.raw(",").await?;
        }
        out.raw(&head[..head.len() - 1]).await?;
        out.raw(",\"messages\":[").await?;
        let mut after = c.visible_after;
        let mut first = true;
        loop {
            let page = src.messages.messages_after(c.id, after, PAGE).await?;
            for m in &page {
                if !first {
                    out.raw(",").await?;
                }
                first = false;
                out.value(&message(m)).await?;
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = last.seq,
                _ => break,
            }
        }
        out.raw("]}").await?;
    }
    out.raw("]").await?;

    out.raw(",\"events\":[").await?;
    let mut after = 0;
    let mut first = true;
    loop {
        let page = src
            .accounts
            .audit_of(who.id, after, i64::from(PAGE))
            .await?;
        for e in &page {
            if !first {
                out.raw(",").await?;
            }
            first = false;
            let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
            out.value(&json!({
                "at": e.at,
                "event": e.event,
                "actor": e.actor,
                "address": e.address,
                "detail": detail,
            }))
            .await?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.id,
            _ => break,
        }
    }
    out.raw("]}").await?;
    Ok(())
}
