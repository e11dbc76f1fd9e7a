//! The single message writer: takes sends from every connection, commits them in groups
//! (one SQLite transaction, one fsync for many messages), then publishes each new message to
//! its conversation and only then acknowledges it to its sender.

use super::{
    hub::{Delivery, Hub},
    store::{self, now_ms},
};
use crate::protocol::{Body, ClientId, MessageKind, MessageView, ServerFrame};
use sqlx::{Connection, SqliteConnection};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::{mpsc, oneshot, watch};

/// A message to store.
#[derive(Debug)]
pub struct NewMessage {
    pub conv: i64,
    pub sender: i64,
    pub sender_name: String,
    pub client_id: ClientId,
    pub content: Content,
}

/// What a message holds.
#[derive(Debug)]
pub enum Content {
    Text(Body),
    Nudge,
    /// Deletes the message with this sequence number (the caller checked it is the sender's).
    Delete(i64),
    /// The sender joined a group conversation, invited by the one named here.
    Join(String),
    /// The sender left a group conversation.
    Leave,
}

impl Content {
    fn body(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Content::Text(b) => b.as_str().into(),
            Content::Nudge => "".into(),
            Content::Delete(seq) => seq.to_string().into(),
            Content::Join(inviter) => inviter.as_str().into(),
            Content::Leave => "".into(),
        }
    }
    fn kind(&self) -> MessageKind {
        match self {
            Content::Text(_) => MessageKind::Text,
            Content::Nudge => MessageKind::Nudge,
            Content::Delete(_) => MessageKind::Delete,
            Content::Join(_) => MessageKind::Join,
            Content::Leave => MessageKind::Leave,
        }
    }
}

/// Empties the messages the batch's `delete` messages name, in the batch's transaction, so
/// the deletion and its announcement commit together.
async fn apply_deletes(conn: &mut SqliteConnection, jobs: &[Job]) -> Result<(), sqlx::Error> {
    for job in jobs {
        if let Content::Delete(seq) = job.msg.content {
            sqlx::query(
                "UPDATE messages SET kind = 'deleted', body = ''
                 WHERE conversation_id = ? AND seq = ? AND sender_id = ? AND kind IN ('text', 'nudge')",
            )
            .bind(job.msg.conv)
            .bind(seq)
            .bind(job.msg.sender)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// The acknowledgement of a committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub conv: i64,
    pub client_id: String,
    pub seq: i64,
    pub at: i64,
}

/// The writer could not store a message (the database failed); the sender may retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the message could not be stored")]
pub struct WriteFailed;

type Reply = oneshot::Sender<Result<Ack, WriteFailed>>;

struct Job {
    msg: NewMessage,
    reply: Reply,
}

/// The handle connections use to submit sends.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Jobs waiting for the writer. Senders wait when it is full, which slows readers of sockets
/// instead of growing memory.
const QUEUE: usize = 4096;

impl Writer {
    /// Starts the writer task on its own connection. It ends, after committing everything
    /// already queued, when `stop` turns true or every `Writer` handle is dropped.
    pub fn spawn(
        conn: SqliteConnection,
        hub: Arc<Hub>,
        max_batch: usize,
        stop: watch::Receiver<bool>,
        observer: Option<Observer>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(run(conn, rx, hub, max_batch.max(1), stop, observer));
        (Self { tx }, handle)
    }

    /// Queues a message; the receiver resolves once it is committed (or failed).
    pub async fn submit(
        &self,
        msg: NewMessage,
    ) -> Result<oneshot::Receiver<Result<Ack, WriteFailed>>, WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { msg, reply })
            .await
            .map_err(|_| WriteFailed)?;
        Ok(rx)
    }
}

/// What committing one job produced.
enum Outcome {
    New(MessageView),
    Duplicate(Ack),
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    hub: Arc<Hub>,
    max_batch: usize,
    mut stop: watch::Receiver<bool>,
    observer: Option<Observer>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut seqs = Seqs::new();
    let mut stopping = false;
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut batch, max_batch) => n,
            _ = stop.wait_for(|s| *s), if !stopping => {
                // Refuse new sends; what is queued is still committed below.
                stopping = true;
                rx.close();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let outcomes = match commit_batch(&mut conn, &batch, &mut seqs).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) => {
                // One bad job must not fail its neighbours: retry each on its own, with
                // sequence numbers read afresh from the database.
                tracing::warn!(error = %e, size = batch.len(), "group commit failed; retrying one by one");
                seqs.clear();
                let mut each = Vec::with_capacity(batch.len());
                for job in &batch {
                    each.push(
                        commit_batch(&mut conn, std::slice::from_ref(job), &mut seqs)
                            .await
                            .map(|mut o| o.pop().expect("one outcome per job")),
                    );
                }
                each
            }
        };
        // Every new message is published before any acknowledgement leaves, all at once so
        // that each connection gets the commit's messages in one batch.
        let mut published = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            let ack = match outcome {
                Ok(Outcome::New(view)) => {
                    let ack = Ack {
                        conv: view.conv,
                        client_id: view.client_id.clone(),
                        seq: view.seq,
                        at: view.at,
                    };
                    if let Some(o) = &observer {
                        observe(o, &view);
                    }
                    published.extend(delivery(view));
                    Ok(ack)
                }
                Ok(Outcome::Duplicate(ack)) => Ok(ack),
                Err(e) => {
                    tracing::error!(error = %e, conv = job.msg.conv, "storing a message failed");
                    Err(WriteFailed)
                }
            };
            replies.push((job.reply, ack));
        }
        hub.publish_all(published);
        for (reply, ack) in replies {
            // The sender may have gone; the message is stored all the same.
            let _ = reply.send(ack);
        }
    }
    tracing::info!("message writer stopped");
}

/// Who else hears of committed messages (the bots' dispatcher): a queue, and which
/// conversations' text messages it wants.
pub type Observer = (
    mpsc::Sender<MessageView>,
    std::sync::Arc<dyn Fn(i64) -> bool + Send + Sync>,
);

/// Hands a committed message to the observer: every join and leave, and text messages of
/// the conversations it wants. Never waits: if the observer is that far behind, it misses
/// the message (and says so).
fn observe((queue, wants): &Observer, view: &MessageView) {
    let offered = match view.kind {
        MessageKind::Join | MessageKind::Leave => true,
        MessageKind::Text => wants(view.conv),
        _ => false,
    };
    if offered {
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(view.clone()) {
            tracing::warn!(
                conv = view.conv,
                seq = view.seq,
                "bot dispatcher behind; a message was not offered to the bots"
            );
        }
    }
}

/// The `msg` frame of a committed message, serialised once for every recipient.
fn delivery(view: MessageView) -> Option<(i64, Delivery)> {
    let conv = view.conv;
    let seq = view.seq;
    match serde_json::to_string(&ServerFrame::Msg(view)) {
        Ok(text) => Some((
            conv,
            Delivery {
                seq,
                frame: text.into(),
            },
        )),
        Err(e) => {
            tracing::error!(error = %e, "serialising a message frame");
            None
        }
    }
}

/// The last sequence number of each conversation the writer has touched. Only the writer
/// changes them, so after a commit this is the truth without asking the database.
type Seqs = HashMap<i64, i64>;

/// Most rows in one INSERT statement. Batches are cut into power-of-two chunks up to this
/// size, so a handful of distinct statements cover every batch size and stay prepared.
const ROWS_PER_INSERT: usize = 128;

/// The highest sequence number stored in `conv` (0: none). The primary key makes this one
/// index lookup; only the writer adds messages, so afterwards it keeps the number in memory.
async fn stored_last_seq(conn: &mut SqliteConnection, conv: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?")
        .bind(conv)
        .fetch_one(&mut *conn)
        .await
}

/// Commits a batch in one transaction. The common case, every message new, takes one
/// multi-row INSERT per chunk; if any row turns out to be a resend (the idempotency index
/// skipped it), the transaction is rolled back and the batch is written message by message,
/// so that a resend never leaves a gap in the sequence numbers.
///
/// Kept as several sqlx commands on purpose: sending the whole commit as one multi-statement
/// command made each commit faster, hence smaller, and the server spent more CPU per message
/// (docs/BENCHMARKS.md, ninth round). A commit's cost is mostly the pages it writes, so its
/// size matters more than its round trips.
async fn commit_batch(
    conn: &mut SqliteConnection,
    jobs: &[Job],
    seqs: &mut Seqs,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let now = now_ms();
    let mut tx = conn.begin_with(store::BEGIN_WRITE).await?;
    let mut next: Seqs = HashMap::new();
    let mut assigned = Vec::with_capacity(jobs.len());
    for job in jobs {
        let conv = job.msg.conv;
        let last = match next.get(&conv).or_else(|| seqs.get(&conv)) {
            Some(last) => *last,
            None => stored_last_seq(&mut tx, conv).await?,
        };
        next.insert(conv, last + 1);
        assigned.push(last + 1);
    }
    let mut inserted = 0u64;
    let mut start = 0;
    while start < jobs.len() {
        let left = jobs.len() - start;
        let size = if left >= ROWS_PER_INSERT {
            ROWS_PER_INSERT
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        let rows = (start..start + size).map(|i| (&jobs[i].msg, assigned[i]));
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_id, body, created_at, kind) ",
        );
        insert.push_values(rows, |mut row, (msg, seq)| {
            row.push_bind(msg.conv)
                .push_bind(seq)
                .push_bind(msg.sender)
                .push_bind(msg.client_id.as_str())
                .push_bind(msg.content.body().into_owned())
                .push_bind(now)
                .push_bind(msg.content.kind().as_str());
        });
        insert.push(" ON CONFLICT (conversation_id, sender_id, client_id) DO NOTHING");
        inserted += insert.build().execute(&mut *tx).await?.rows_affected();
        start += size;
    }
    if inserted as usize != jobs.len() {
        tx.rollback().await?;
        return commit_each(conn, jobs, seqs, now).await;
    }
    apply_deletes(&mut tx, jobs).await?;
    tx.commit().await?;
    seqs.extend(next);
    Ok(jobs
        .iter()
        .zip(assigned)
        .map(|(job, seq)| Outcome::New(view_of(&job.msg, seq, now)))
        .collect())
}

/// Commits a batch in one transaction, one statement per message: a resend gets the
/// acknowledgement of the stored message and takes no sequence number.
async fn commit_each(
    conn: &mut SqliteConnection,
    jobs: &[Job],
    seqs: &mut Seqs,
    now: i64,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = conn.begin_with(store::BEGIN_WRITE).await?;
    let mut batch: Seqs = HashMap::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let conv = job.msg.conv;
        let last = match batch.get(&conv).or_else(|| seqs.get(&conv)) {
            Some(last) => *last,
            None => stored_last_seq(&mut tx, conv).await?,
        };
        let outcome = write_one(&mut tx, &job.msg, last + 1, now).await?;
        batch.insert(
            conv,
            if matches!(outcome, Outcome::New(_)) {
                last + 1
            } else {
                last
            },
        );
        outcomes.push(outcome);
    }
    apply_deletes(&mut tx, jobs).await?;
    tx.commit().await?;
    seqs.extend(batch);
    Ok(outcomes)
}

fn view_of(msg: &NewMessage, seq: i64, now: i64) -> MessageView {
    MessageView {
        conv: msg.conv,
        seq,
        from: msg.sender,
        from_name: msg.sender_name.clone(),
        client_id: msg.client_id.as_str().to_owned(),
        body: msg.content.body().into_owned(),
        at: now,
        kind: msg.content.kind(),
    }
}

/// Inserts one message as `seq`, unless its client id was already stored (then returns the
/// stored acknowledgement; `seq` stays free for the next message).
async fn write_one(
    conn: &mut SqliteConnection,
    msg: &NewMessage,
    seq: i64,
    now: i64,
) -> Result<Outcome, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO messages (conversation_id, seq, sender_id, client_id, body, created_at, kind)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (conversation_id, sender_id, client_id) DO NOTHING",
    )
    .bind(msg.conv)
    .bind(seq)
    .bind(msg.sender)
    .bind(msg.client_id.as_str())
    .bind(msg.content.body().into_owned())
    .bind(now)
    .bind(msg.content.kind().as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        let (seq, at): (i64, i64) = sqlx::query_as(
            "SELECT seq, created_at FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_id = ?",
        )
        .bind(msg.conv)
        .bind(msg.sender)
        .bind(msg.client_id.as_str())
        .fetch_one(&mut *conn)
        .await?;
        return Ok(Outcome::Duplicate(Ack {
            conv: msg.conv,
            client_id: msg.client_id.as_str().to_owned(),
            seq,
            at,
        }));
    }
    Ok(Outcome::New(view_of(msg, seq, now)))
}
