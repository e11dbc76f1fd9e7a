//! The message log on PostgreSQL: each node's group commit into the shared database. It
//! implements [`MessageLog`] as the SQLite writer does, with the same promises: a message is
//! acknowledged only after PostgreSQL committed it; numbers are gap-free per conversation and
//! given in commit order; a resend with the same client id gets the first acknowledgement.
//!
//! One transaction per group of sends, whichever node they reached:
//! 1. resends are found by the idempotency index (client id, conversation, sender), read
//!    just before the transaction;
//! 2. each conversation's row is locked (in id order, so that two nodes never wait for each
//!    other in a circle) and its `last_seq` raised by its number of new messages, which gives
//!    the group its numbers (one statement);
//! 3. the messages are inserted in one statement (arrays, `unnest`), bodies sealed when
//!    encryption at rest is on;
//! 4. deletions the group carries are applied; then COMMIT.
//!
//! A second node committing to the same conversation waits for the first one's row lock, so
//! its numbers follow and are visible after the first one's. A conflict with another node
//! (the same resend reaching two nodes at once, a deadlock PostgreSQL broke) rolls back and
//! retries the group; a bad row (a conversation or sender that does not exist) fails its own
//! send, not its neighbours'; PostgreSQL unreachable fails every send of the group with an
//! error that asks the client to send again, never with an acknowledgement.
//!
//! NOTIFY is not used: it takes a database-wide lock at commit. Other nodes hear of commits
//! through the fan-out (`hub/nats.rs`).

use super::PgStore;
use crate::server::{
    hub::Fanout,
    metrics::Metrics,
    store::{
        commits::{engine_failed, settle, view_of, Cmd, Job, Outcome, Publisher},
        now_ms,
        vault::{Sealer, Vault},
        Ack, Content, MessageLog, NewMessage, Observer, Reply, WriteFailed,
    },
};
use async_trait::async_trait;
use sqlx::PgPool;
use std::{
    collections::{BTreeMap, HashMap},
    sync::{mpsc::TrySendError, Arc},
    time::Instant,
};
use tokio::sync::{mpsc, watch};

/// Sends waiting for the log; senders wait when it is full (back-pressure, as on SQLite).
const QUEUE: usize = 4096;

/// How often a group is tried again after a conflict with another node's transaction.
const ATTEMPTS: usize = 5;

/// The handle the log is appended through.
#[derive(Clone)]
pub struct PgLog {
    tx: mpsc::Sender<Cmd>,
}

impl PgLog {
    /// Starts the log on a task of the current runtime, with its publisher thread. It ends,
    /// after committing everything already queued, when `stop` turns true or every handle
    /// is dropped.
    pub fn spawn(
        store: &PgStore,
        fanout: Arc<dyn Fanout>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        mut stop: watch::Receiver<bool>,
        observer: Option<Observer>,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let weak = tx.downgrade();
        tokio::spawn(async move {
            if stop.wait_for(|s| *s).await.is_ok() {
                if let Some(tx) = weak.upgrade() {
                    let _ = tx.send(Cmd::Stop).await;
                }
            }
        });
        let publisher = Publisher::start(fanout, metrics.clone())?;
        let log = Committer {
            pool: store.pool().clone(),
            vault: store.vault(),
            metrics,
            observer,
            key_recorded: None,
        };
        let handle = tokio::spawn(async move {
            use futures::FutureExt;
            let run = std::panic::AssertUnwindSafe(log.run(rx, publisher, max_batch.max(1)));
            if run.catch_unwind().await.is_err() {
                // As on SQLite: a log that panicked would answer every send with a resend
                // request for ever; the process ends instead and clients go to another node.
                engine_failed("message log");
            }
        });
        Ok((Self { tx }, handle))
    }
}

#[async_trait]
impl MessageLog for PgLog {
    async fn append(&self, msg: NewMessage, reply: Reply) -> Result<(), WriteFailed> {
        self.tx
            .send(Cmd::Send(Job { msg, reply }))
            .await
            .map_err(|_| WriteFailed::Internal)
    }

    fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    fn running(&self) -> bool {
        !self.tx.is_closed()
    }
}

struct Committer {
    pool: PgPool,
    vault: Arc<Vault>,
    metrics: Arc<Metrics>,
    observer: Option<Observer>,
    /// The key recorded in `keys_used` (bodies are sealed with a key only once it is).
    key_recorded: Option<String>,
}

impl Committer {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>, publisher: Publisher, max_batch: usize) {
        let mut cmds = Vec::with_capacity(max_batch);
        let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
        let Publisher { queue, thread } = publisher;
        loop {
            // Whatever queued up while the previous commit ran is the next commit.
            if rx.recv_many(&mut cmds, max_batch).await == 0 {
                break;
            }
            for cmd in cmds.drain(..) {
                match cmd {
                    Cmd::Send(job) => batch.push(job),
                    Cmd::Stop => rx.close(),
                }
            }
            if batch.is_empty() {
                continue;
            }
            let mut sealer = self.sealer().await;
            let started = Instant::now();
            let outcomes = commit_group(&self.pool, &batch, sealer.as_mut()).await;
            let committed = settle(
                batch.drain(..),
                outcomes,
                self.observer.as_ref(),
                &self.metrics,
                started.elapsed(),
            );
            // The publisher is at most two commits behind; past that the log waits for it,
            // off the runtime's threads.
            let handed = match queue.try_send(committed) {
                Ok(()) => true,
                Err(TrySendError::Full(committed)) => {
                    let queue = queue.clone();
                    tokio::task::spawn_blocking(move || queue.send(committed).is_ok())
                        .await
                        .unwrap_or(false)
                }
                Err(TrySendError::Disconnected(_)) => false,
            };
            if !handed {
                tracing::error!("the publisher thread ended; the message log stops");
                break;
            }
        }
        // Everything committed is published before the log counts as stopped.
        drop(queue);
        let joined = tokio::task::spawn_blocking(move || thread.join().is_ok()).await;
        if !matches!(joined, Ok(true)) {
            engine_failed("publisher");
        }
        tracing::info!("message log (PostgreSQL) stopped");
    }

    /// The sealer for this commit's bodies, once its key is recorded as used (durably,
    /// before the first row sealed with it); none while encryption at rest is off.
    async fn sealer(&mut self) -> Option<Sealer> {
        let active = self.vault.active_key()?;
        if self.key_recorded.as_deref() != Some(active.as_str()) {
            let recorded = sqlx::query(
                "INSERT INTO keys_used (key_id, first_used_at) VALUES ($1, $2)
                 ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(&active)
            .bind(now_ms())
            .execute(&self.pool)
            .await;
            match recorded {
                Ok(_) => self.key_recorded = Some(active),
                Err(e) => {
                    // Stored plain this time; sealed once the key is recorded.
                    tracing::error!(error = %e, "recording the key in use");
                    return None;
                }
            }
        }
        self.vault.sealer()
    }
}

/// What a failed transaction means for its group.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Another node's transaction got in the way (a unique key it committed meanwhile, a
    /// deadlock PostgreSQL broke, a serialization failure): try the group again.
    Conflict,
    /// A row was refused (a missing conversation or sender, a broken check): each send of
    /// the group is tried on its own, so that only the bad one fails.
    BadRow,
    /// PostgreSQL could not be reached or is shutting down: every send of the group fails,
    /// and the client sends it again.
    Unavailable,
}

fn failure(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // unique_violation, serialization_failure, deadlock_detected
            Some("23505" | "40001" | "40P01") => Failure::Conflict,
            // Classes 23 (integrity) and 22 (data): this group's rows.
            Some(code) if code.starts_with("23") || code.starts_with("22") => Failure::BadRow,
            // Shutting down (57P01-57P03), connection exceptions (08), and anything else
            // from the server itself.
            _ => Failure::Unavailable,
        },
        _ => Failure::Unavailable,
    }
}

/// Commits a group, retrying conflicts with other nodes; splits it when a row is bad.
async fn commit_group(
    pool: &PgPool,
    jobs: &[Job],
    mut sealer: Option<&mut Sealer>,
) -> Vec<Result<Outcome, WriteFailed>> {
    match commit_retrying(pool, jobs, sealer.as_deref_mut()).await {
        Ok(outcomes) => outcomes,
        Err(e) if failure(&e) == Failure::BadRow && jobs.len() > 1 => {
            tracing::warn!(error = %e, size = jobs.len(), "group commit refused a row; committing one by one");
            let mut each = Vec::with_capacity(jobs.len());
            for job in jobs {
                let one =
                    commit_retrying(pool, std::slice::from_ref(job), sealer.as_deref_mut()).await;
                each.push(match one {
                    Ok(mut outcome) => outcome.pop().expect("one outcome per job"),
                    Err(e) => {
                        tracing::error!(error = %e, conv = job.msg.conv, "storing a message failed");
                        Err(WriteFailed::Internal)
                    }
                });
            }
            each
        }
        Err(e) => {
            tracing::error!(error = %e, size = jobs.len(), "group commit failed; the senders are asked to send again");
            jobs.iter().map(|_| Err(WriteFailed::Internal)).collect()
        }
    }
}

async fn commit_retrying(
    pool: &PgPool,
    jobs: &[Job],
    mut sealer: Option<&mut Sealer>,
) -> Result<Vec<Result<Outcome, WriteFailed>>, sqlx::Error> {
    let mut attempt = 1;
    loop {
        match commit(pool, jobs, sealer.as_deref_mut()).await {
            Err(e) if failure(&e) == Failure::Conflict && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "group commit met another node's; again");
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// Who a send is, for the idempotency index.
type Key<'a> = (&'a str, i64, i64);

fn key(msg: &NewMessage) -> Key<'_> {
    (msg.client_id.as_str(), msg.conv, msg.sender)
}

/// What a send of the group becomes, before its numbers are known.
enum Plan {
    /// A new message, the `n`th new one of its conversation in this group (from 0).
    New(i64),
    /// A resend of a stored message.
    Stored(Ack),
    /// A resend of the group's own send at this index.
    SameAs(usize),
}

/// One transaction for the whole group (see the module's text).
async fn commit(
    pool: &PgPool,
    jobs: &[Job],
    mut sealer: Option<&mut Sealer>,
) -> Result<Vec<Result<Outcome, WriteFailed>>, sqlx::Error> {
    let now = now_ms();

    // 1. Resends of stored messages, before the transaction (no lock is held while it
    //    runs): a resend stored by another node after this read meets the unique index at
    //    the insert, and the group is tried again, when this read finds it.
    let mut client_ids = Vec::with_capacity(jobs.len());
    let mut convs = Vec::with_capacity(jobs.len());
    let mut senders = Vec::with_capacity(jobs.len());
    for job in jobs {
        client_ids.push(job.msg.client_id.as_str());
        convs.push(job.msg.conv);
        senders.push(job.msg.sender);
    }
    let stored: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT m.client_id, m.conversation_id, m.sender_id, m.seq, m.created_at
         FROM unnest($1::text[], $2::int8[], $3::int8[]) AS k(client_id, conversation_id, sender_id)
         JOIN messages m USING (client_id, conversation_id, sender_id)",
    )
    .bind(&client_ids)
    .bind(&convs)
    .bind(&senders)
    .fetch_all(pool)
    .await?;
    let stored: HashMap<Key<'_>, (i64, i64)> = stored
        .iter()
        .map(|(c, conv, sender, seq, at)| ((c.as_str(), *conv, *sender), (*seq, *at)))
        .collect();

    // 2. Each conversation's count of new messages, and what every send becomes.
    let mut first: HashMap<Key<'_>, usize> = HashMap::new();
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    let mut plans = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let k = key(&job.msg);
        plans.push(if let Some(&(seq, at)) = stored.get(&k) {
            Plan::Stored(Ack {
                conv: job.msg.conv,
                client_id: job.msg.client_id.as_str().to_owned(),
                seq,
                at,
            })
        } else if let Some(&earlier) = first.get(&k) {
            Plan::SameAs(earlier)
        } else {
            first.insert(k, i);
            let n = counts.entry(job.msg.conv).or_default();
            *n += 1;
            Plan::New(*n - 1)
        });
    }

    let mut tx = pool.begin().await?;

    // 3. The numbers: each conversation's row locked in id order, then raised, in one
    //    statement. The materialised CTE takes the locks in the order it returns its rows;
    //    the UPDATE only touches rows it already returned (the semi-join), so every lock
    //    this transaction waits for is taken in id order, whatever plan joins the two.
    let mut starts: HashMap<i64, i64> = HashMap::new();
    if !counts.is_empty() {
        let (ids, ns): (Vec<i64>, Vec<i64>) = counts.iter().map(|(c, n)| (*c, *n)).unzip();
        let raised: Vec<(i64, i64)> = sqlx::query_as(
            "WITH locked AS MATERIALIZED (
                 SELECT id FROM conversations WHERE id = ANY($1::int8[]) ORDER BY id FOR UPDATE
             )
             UPDATE conversations c SET last_seq = c.last_seq + k.n
             FROM unnest($1::int8[], $2::int8[]) AS k(id, n)
             WHERE c.id = k.id AND c.id IN (SELECT id FROM locked)
             RETURNING c.id, c.last_seq",
        )
        .bind(&ids)
        .bind(&ns)
        .fetch_all(&mut *tx)
        .await?;
        for (conv, last) in raised {
            starts.insert(conv, last - counts[&conv] + 1);
        }
    }

    // 4. The new rows, in one statement.
    let mut rows = Rows::default();
    let mut outcomes: Vec<Result<Outcome, WriteFailed>> = Vec::with_capacity(jobs.len());
    for (job, plan) in jobs.iter().zip(&plans) {
        outcomes.push(match plan {
            Plan::New(n) => match starts.get(&job.msg.conv) {
                Some(start) => {
                    let seq = start + n;
                    rows.push(&job.msg, seq, now, sealer.as_deref_mut());
                    Ok(Outcome::New(view_of(&job.msg, seq, now)))
                }
                // No such conversation: this send alone fails.
                None => Err(WriteFailed::Internal),
            },
            Plan::Stored(ack) => Ok(Outcome::Duplicate(ack.clone())),
            Plan::SameAs(earlier) => match &outcomes[*earlier] {
                Ok(Outcome::New(view)) => Ok(Outcome::Duplicate(Ack {
                    conv: view.conv,
                    client_id: view.client_id.clone(),
                    seq: view.seq,
                    at: view.at,
                })),
                Ok(Outcome::Duplicate(ack)) => Ok(Outcome::Duplicate(ack.clone())),
                Err(failed) => Err(*failed),
            },
        });
    }
    if !rows.is_empty() {
        sqlx::query(
            "INSERT INTO messages
                 (conversation_id, seq, sender_id, client_id, body, created_at, kind, key_id, sealed)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[],
                                  $6::int8[], $7::text[], $8::text[], $9::bytea[])",
        )
        .bind(&rows.convs)
        .bind(&rows.seqs)
        .bind(&rows.senders)
        .bind(&rows.client_ids)
        .bind(&rows.bodies)
        .bind(&rows.ats)
        .bind(&rows.kinds)
        .bind(&rows.key_ids)
        .bind(&rows.sealed)
        .execute(&mut *tx)
        .await?;
    }

    // 5. Deletions, with the messages that announce them.
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        if !matches!(outcome, Ok(Outcome::New(_))) {
            continue;
        }
        match job.msg.content {
            Content::Delete(seq) => {
                sqlx::query(
                    "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
                     WHERE conversation_id = $1 AND seq = $2 AND sender_id = $3
                       AND kind IN ('text', 'nudge', 'file')",
                )
                .bind(job.msg.conv)
                .bind(seq)
                .bind(job.msg.sender)
                .execute(&mut *tx)
                .await?;
            }
            Content::EraseAll => {
                sqlx::query(
                    "UPDATE messages SET kind = 'deleted', body = '', key_id = NULL, sealed = NULL
                     WHERE conversation_id = $1 AND sender_id = $2
                       AND kind IN ('text', 'nudge', 'file')",
                )
                .bind(job.msg.conv)
                .bind(job.msg.sender)
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The columns of the group's new rows, as arrays for `unnest`.
#[derive(Default)]
struct Rows {
    convs: Vec<i64>,
    seqs: Vec<i64>,
    senders: Vec<i64>,
    client_ids: Vec<String>,
    bodies: Vec<String>,
    ats: Vec<i64>,
    kinds: Vec<&'static str>,
    key_ids: Vec<Option<String>>,
    sealed: Vec<Option<Vec<u8>>>,
}

impl Rows {
    fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// One message as `seq`; with a `sealer`, its body sealed for its place (the plain
    /// column stays empty).
    fn push(&mut self, msg: &NewMessage, seq: i64, now: i64, sealer: Option<&mut Sealer>) {
        let body = msg.content.body();
        let sealed = sealer
            .filter(|_| !body.is_empty())
            .and_then(|s| s.seal(msg.conv, seq, body.as_bytes()))
            .map(|(key_id, bytes)| (key_id.to_owned(), bytes.to_vec()));
        self.convs.push(msg.conv);
        self.seqs.push(seq);
        self.senders.push(msg.sender);
        self.client_ids.push(msg.client_id.as_str().to_owned());
        self.ats.push(now);
        self.kinds.push(msg.content.kind().as_str());
        match sealed {
            Some((key_id, bytes)) => {
                self.bodies.push(String::new());
                self.key_ids.push(Some(key_id));
                self.sealed.push(Some(bytes));
            }
            None => {
                self.bodies.push(body.into_owned());
                self.key_ids.push(None);
                self.sealed.push(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_retried_bad_rows_split_and_the_rest_is_unavailable() {
        assert_eq!(failure(&sqlx::Error::PoolTimedOut), Failure::Unavailable);
        assert_eq!(
            failure(&sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            ))),
            Failure::Unavailable
        );
    }
}
