//! The fan-out between nodes (`--nats nats://...`, issue 30): each node's hub, joined by NATS
//! core publish/subscribe. PostgreSQL is the log; NATS only carries what was committed to
//! the nodes whose clients want it, and losing a NATS message loses nothing.
//!
//! - After a commit, the committing node hands the messages to its own connections (as on
//!   one node) and publishes them on the conversation's subject, `<prefix>.c.<id>`; the
//!   payload is the serialised frames, so the other nodes send them without reading the
//!   database.
//! - A node subscribes to the subject of each conversation it has a connection in (the hub
//!   tells it of the first subscriber and the last one leaving, [`LocalHub::watch`]), so a
//!   message reaches only the nodes that have a member of its conversation online.
//! - A publish can be lost (NATS restarting, a node's outgoing queue full, a subscription not
//!   yet in place, the committing node killed between commit and publish). Every
//!   [`CHECK_EVERY`], a node asks the database which of its conversations have messages
//!   beyond the last one it handed to its connections ([`CatchUp`]) and hands them over: a
//!   lost publish delays a message by at most that long. The connections already fill gaps
//!   and skip what they sent (by sequence number), so messages arriving twice or out of
//!   order, by NATS and by the check, are sent once and in order.
//!
//! A typing indicator (never stored) travels the same way; a lost one is not made up for.

use super::{local::LocalHub, AckOut, Control, Delivery, Fanout, Frame, EPHEMERAL};
use crate::protocol::{MessageView, ServerFrame};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};
use tokio::sync::{mpsc, Notify};

/// How often a node checks the database for messages a lost publish did not bring.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often a node asks the database whether the sessions of its connections still stand:
/// a session ended on another node is ended here by its notice at once, and by this check
/// if the notice was lost. Every connected session in one query.
pub const SESSION_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Publishes waiting for NATS; past this (NATS down or slow) a publish is dropped and
/// counted, and the check brings its messages.
const OUTGOING: usize = 4096;

/// Most messages of one conversation the check hands over at once; a connection further
/// behind fills the rest from the store itself, or is asked to resync.
const CATCH_UP_LIMIT: u32 = 200;

/// What the check asks of the shared store.
#[async_trait]
pub trait CatchUp: Send + Sync {
    /// Of `(conversation, last number known)`, those whose last stored message is beyond
    /// it, with that last number.
    async fn newer(&self, known: &[(i64, i64)]) -> anyhow::Result<Vec<(i64, i64)>>;
    /// Messages of `conv` after `after`, oldest first, at most `limit`.
    async fn messages_after(
        &self,
        conv: i64,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<MessageView>>;
    /// Of `sessions`, those that were revoked or no longer exist (signed out, the account
    /// deleted). Expiry is not asked: each connection checks its own session's deadline.
    async fn ended_sessions(&self, sessions: &[i64]) -> anyhow::Result<Vec<i64>>;
}

/// One node's hub, joined to the others through NATS.
pub struct NatsHub {
    hub: Arc<LocalHub>,
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<(String, Bytes)>,
    prefix: String,
}

/// What the hub's watch, the publishing path and the node's tasks share.
#[derive(Default)]
struct Shared {
    /// Conversations with a subscriber on this node, each with the last number handed to
    /// the hub (`None`: not known yet; the next check finds it).
    known: Mutex<HashMap<i64, Option<i64>>>,
    /// Subscriptions to make (`true`) or end, since the subscriber task last looked.
    interest: Mutex<HashMap<i64, bool>>,
    wake: Notify,
    /// Publishes dropped because NATS did not take them.
    dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps: consistent even after a panic elsewhere.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn watched(&self, conv: i64, now: bool) {
        {
            let mut known = lock(&self.known);
            if now {
                known.entry(conv).or_insert(None);
            } else {
                known.remove(&conv);
            }
        }
        lock(&self.interest).insert(conv, now);
        self.wake.notify_one();
    }

    /// Notes that the hub was handed `conv`'s message `seq` (if this node still has a
    /// subscriber there). What is known only grows without a gap: a message that arrives
    /// after a lost one leaves the mark before the gap, and the next check brings the lost
    /// one (and again those after it, which connections skip).
    /// Notes that the hub was handed everything of `conv` up to `seq`.
    fn handed_up_to(&self, conv: i64, seq: i64) {
        if let Some(last) = lock(&self.known).get_mut(&conv) {
            if last.is_none_or(|l| l < seq) {
                *last = Some(seq);
            }
        }
    }

    fn handed(&self, conv: i64, seq: i64) {
        if let Some(last) = lock(&self.known).get_mut(&conv) {
            match last {
                None => *last = Some(seq),
                Some(l) if seq == *l + 1 => *l = seq,
                Some(_) => {}
            }
        }
    }
}

impl NatsHub {
    /// Joins `hub` to the other nodes through `client`, on subjects under `prefix` (the
    /// nodes of one installation share it). Starts the node's tasks on the current runtime:
    /// publishing, subscribing and the check; they end when the returned hub is dropped.
    pub fn start(
        hub: Arc<LocalHub>,
        client: async_nats::Client,
        prefix: &str,
        catch_up: Arc<dyn CatchUp>,
    ) -> Arc<Self> {
        let shared = Arc::new(Shared::default());
        let (outgoing, queue) = mpsc::channel(OUTGOING);
        let this = Arc::new(Self {
            hub: hub.clone(),
            shared: shared.clone(),
            outgoing,
            prefix: prefix.to_owned(),
        });
        tokio::spawn(send_out(client.clone(), queue));
        tokio::spawn(notices(
            Arc::downgrade(&this),
            client.clone(),
            format!("{prefix}.u"),
        ));
        tokio::spawn(subscribe(Arc::downgrade(&this), client.clone()));
        tokio::spawn(check(Arc::downgrade(&this), catch_up, client.statistics()));
        let watching = shared.clone();
        hub.watch(Arc::new(move |conv, now| watching.watched(conv, now)));
        this
    }

    /// The local hub (registrations and subscriptions of this node's connections).
    pub fn local(&self) -> &Arc<LocalHub> {
        &self.hub
    }

    /// Publishes NATS could not take (dropped; the check brought their messages).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn subject(&self, conv: i64) -> String {
        format!("{}.c.{conv}", self.prefix)
    }

    /// Hands messages that came from another node (or from the check) to this node's
    /// connections.
    fn arrived(&self, conv: i64, deliveries: Vec<(i64, Delivery)>) {
        for (_, d) in &deliveries {
            if d.seq != EPHEMERAL {
                self.shared.handed(conv, d.seq);
            }
        }
        self.hub.publish(deliveries, Vec::new());
    }
}

/// A notice for a user's connections on every node (`<prefix>.u`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct UserNotice {
    user: i64,
    notice: Notice,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Notice {
    Added(crate::protocol::ConversationSummary),
    Removed(i64),
    Frame(String),
    Close {
        code: u16,
        reason: String,
    },
    EndSession {
        session: i64,
        code: u16,
        reason: String,
    },
}

/// A close reason heard from another node, as one of this node's own (a close frame's
/// reason is a fixed text); one it does not know reads as the generic one.
fn known_reason(reason: &str) -> &'static str {
    const KNOWN: [&str; 7] = [
        "signed out",
        "signed out elsewhere",
        "signed out from another device",
        "signed out by an administrator",
        "account disabled",
        "account deleted",
        "server restarting",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == reason)
        .unwrap_or("session ended")
}

impl NatsHub {
    fn tell_nodes(&self, user: i64, notice: Notice) {
        let Ok(bytes) = serde_json::to_vec(&UserNotice { user, notice }) else {
            tracing::error!("a user notice does not serialise");
            return;
        };
        if self
            .outgoing
            .try_send((format!("{}.u", self.prefix), Bytes::from(bytes)))
            .is_err()
        {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A notice another node sent, for this node's connections.
    fn noticed(&self, notice: UserNotice) {
        let user = notice.user;
        match notice.notice {
            Notice::Added(summary) => self
                .hub
                .notify_user(user, Control::Added(Box::new(summary))),
            Notice::Removed(conv) => self.hub.notify_user(user, Control::Removed(conv)),
            Notice::Frame(frame) => self
                .hub
                .notify_user(user, Control::Frame(Box::new(Frame::from(frame)))),
            Notice::Close { code, reason } => self.hub.notify_user(
                user,
                Control::Close {
                    code,
                    reason: known_reason(&reason),
                },
            ),
            Notice::EndSession {
                session,
                code,
                reason,
            } => self
                .hub
                .end_session(user, session, code, known_reason(&reason)),
        }
    }
}

/// Hands the notices other nodes send to this node's connections.
async fn notices(node: std::sync::Weak<NatsHub>, client: async_nats::Client, subject: String) {
    let mut subscription = loop {
        match client.subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "subscribing to user notices on NATS; trying again");
                tokio::time::sleep(CHECK_EVERY).await;
            }
        }
    };
    while let Some(message) = subscription.next().await {
        let Some(this) = node.upgrade() else { break };
        match serde_json::from_slice::<UserNotice>(&message.payload) {
            Ok(notice) => this.noticed(notice),
            Err(e) => tracing::warn!(error = %e, "a user notice that does not parse; ignored"),
        }
    }
}

impl Drop for NatsHub {
    fn drop(&mut self) {
        // The subscriber task waits for a change; this is its last, and it ends.
        self.shared.wake.notify_one();
    }
}

impl Fanout for NatsHub {
    /// This node's connections get the commit at once, as on one node; the other nodes get
    /// each conversation's messages in one NATS message.
    fn publish(&self, deliveries: Vec<(i64, Delivery)>, acks: Vec<AckOut>) {
        let mut payloads: HashMap<i64, Vec<u8>> = HashMap::new();
        for (conv, d) in &deliveries {
            let payload = payloads.entry(*conv).or_default();
            encode_line(payload, d);
            if d.seq != EPHEMERAL {
                self.shared.handed(*conv, d.seq);
            }
        }
        self.hub.publish(deliveries, acks);
        for (conv, payload) in payloads {
            if self
                .outgoing
                .try_send((self.subject(conv), Bytes::from(payload)))
                .is_err()
            {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The user's connections here get it at once; the other nodes' through `<prefix>.u`.
    fn notify_user(&self, user: i64, control: Control) {
        let notice = match &control {
            Control::Refresh => {
                self.hub.notify_user(user, control);
                return;
            }
            Control::Added(summary) => Notice::Added((**summary).clone()),
            Control::Removed(conv) => Notice::Removed(*conv),
            Control::Frame(frame) => Notice::Frame(frame.as_str().to_owned()),
            Control::Close { code, reason } => Notice::Close {
                code: *code,
                reason: (*reason).to_owned(),
            },
        };
        self.hub.notify_user(user, control);
        self.tell_nodes(user, notice);
    }

    fn end_session(&self, user: i64, session: i64, code: u16, reason: &'static str) {
        self.hub.end_session(user, session, code, reason);
        self.tell_nodes(
            user,
            Notice::EndSession {
                session,
                code,
                reason: reason.to_owned(),
            },
        );
    }

    fn connections_of(&self, user: i64) -> usize {
        self.hub.connections_of(user)
    }
}

/// One delivery as a line of the payload: its number, a space, its frame (JSON, which has
/// no raw line break).
fn encode_line(payload: &mut Vec<u8>, d: &Delivery) {
    payload.extend_from_slice(d.seq.to_string().as_bytes());
    payload.push(b' ');
    payload.extend_from_slice(d.frame.as_bytes());
    payload.push(b'\n');
}

/// A payload's deliveries; `None` if it is not one (nothing of it is delivered).
fn decode(conv: i64, payload: &[u8]) -> Option<Vec<(i64, Delivery)>> {
    let text = std::str::from_utf8(payload).ok()?;
    text.lines()
        .map(|line| {
            let (seq, frame) = line.split_once(' ')?;
            let seq = seq.parse::<i64>().ok().filter(|s| *s >= EPHEMERAL)?;
            Some((
                conv,
                Delivery {
                    seq,
                    frame: Frame::from(frame.to_owned()),
                },
            ))
        })
        .collect()
}

/// Publishes what the node committed, in order, as NATS takes it.
async fn send_out(client: async_nats::Client, mut queue: mpsc::Receiver<(String, Bytes)>) {
    while let Some((subject, payload)) = queue.recv().await {
        if let Err(e) = client.publish(subject, payload).await {
            tracing::debug!(error = %e, "publishing to NATS; the check brings the messages");
        }
    }
}

/// Keeps a NATS subscription for each conversation with a subscriber on this node.
async fn subscribe(node: std::sync::Weak<NatsHub>, client: async_nats::Client) {
    let mut readers: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let (changes, shared) = {
            let Some(this) = node.upgrade() else { break };
            let shared = this.shared.clone();
            let changes: Vec<(i64, bool)> = lock(&shared.interest).drain().collect();
            (changes, shared)
        };
        for (conv, now) in changes {
            if !now {
                // Ending the task drops its subscription, which unsubscribes.
                if let Some(reader) = readers.remove(&conv) {
                    reader.abort();
                }
                continue;
            }
            if readers.contains_key(&conv) {
                continue;
            }
            let Some(this) = node.upgrade() else { return };
            match client.subscribe(this.subject(conv)).await {
                Ok(subscription) => {
                    readers.insert(conv, tokio::spawn(read(node.clone(), conv, subscription)));
                }
                Err(e) => {
                    // Asked for again at the next change; meanwhile the check covers it.
                    tracing::warn!(error = %e, conv, "subscribing on NATS");
                    lock(&shared.interest).entry(conv).or_insert(true);
                }
            }
        }
        shared.wake.notified().await;
    }
    for reader in readers.into_values() {
        reader.abort();
    }
}

/// Hands what arrives on one conversation's subject to this node's connections.
async fn read(node: std::sync::Weak<NatsHub>, conv: i64, mut subscription: async_nats::Subscriber) {
    while let Some(message) = subscription.next().await {
        let Some(this) = node.upgrade() else { break };
        match decode(conv, &message.payload) {
            Some(deliveries) => this.arrived(conv, deliveries),
            None => tracing::warn!(conv, "a NATS message that is not deliveries; ignored"),
        }
    }
}

/// Every [`CHECK_EVERY`], brings what lost publishes did not; every
/// [`SESSION_CHECK_EVERY`], ends the connections of sessions that ended elsewhere.
async fn check(
    node: std::sync::Weak<NatsHub>,
    catch_up: Arc<dyn CatchUp>,
    nats: Arc<async_nats::Statistics>,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sessions_checked = tokio::time::Instant::now();
    // Connections to NATS so far (the first one counts): more than the check saw is a break
    // this node came back from, during which other nodes' notices for its users were lost
    // (even one that began and ended before the first check).
    let mut connects: u64 = 1;
    loop {
        tick.tick().await;
        let Some(this) = node.upgrade() else { break };
        let now = nats.connects.load(Ordering::Relaxed);
        if now > connects {
            connects = now;
            tracing::info!("NATS is back: this node's connections read their state afresh");
            tokio::spawn(refresh_all(this.hub.clone()));
        }
        if let Err(e) = this.catch_up_once(&*catch_up).await {
            tracing::warn!(error = %e, "checking the database for messages NATS did not bring");
        }
        if sessions_checked.elapsed() >= SESSION_CHECK_EVERY {
            sessions_checked = tokio::time::Instant::now();
            if let Err(e) = this.end_ended_sessions(&*catch_up).await {
                tracing::warn!(error = %e, "checking the sessions of this node's connections");
            }
        }
    }
}

/// Users asked to read their state afresh at once, before the next batch: a node's every
/// connection at once would ask the database for all of their states together.
const REFRESH_BATCH: usize = 500;

/// Tells every connection of this node to send its hello again, [`REFRESH_BATCH`] users
/// every 100 ms.
async fn refresh_all(hub: Arc<LocalHub>) {
    let mut users: Vec<i64> = hub.sessions().into_iter().map(|(user, _)| user).collect();
    users.dedup();
    for batch in users.chunks(REFRESH_BATCH) {
        for &user in batch {
            hub.notify_user(user, Control::Refresh);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl NatsHub {
    /// Closes this node's connections whose session was ended, whether or not the notice of
    /// it arrived (a lost one would leave them open until they reconnect).
    pub async fn end_ended_sessions(&self, catch_up: &dyn CatchUp) -> anyhow::Result<()> {
        let sessions = self.hub.sessions();
        if sessions.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = sessions.iter().map(|(_, s)| *s).collect();
        let ended: std::collections::HashSet<i64> =
            catch_up.ended_sessions(&ids).await?.into_iter().collect();
        for (user, session) in sessions {
            if ended.contains(&session) {
                let code = crate::protocol::close::SESSION_ENDED;
                self.hub.end_session(user, session, code, "session ended");
            }
        }
        Ok(())
    }

    /// One check: for each conversation with a subscriber here, what the database has beyond
    /// what the hub was handed. A conversation seen for the first time gets only its last
    /// message: a connection that lacks more fills the gap from the store itself.
    pub async fn catch_up_once(&self, catch_up: &dyn CatchUp) -> anyhow::Result<()> {
        let known: Vec<(i64, Option<i64>)> = lock(&self.shared.known)
            .iter()
            .map(|(c, s)| (*c, *s))
            .collect();
        if known.is_empty() {
            return Ok(());
        }
        let asked: Vec<(i64, i64)> = known.iter().map(|(c, s)| (*c, s.unwrap_or(-1))).collect();
        let first: HashMap<i64, Option<i64>> = known.into_iter().collect();
        for (conv, last) in catch_up.newer(&asked).await? {
            let after = match first.get(&conv).copied().flatten() {
                Some(seq) => seq,
                None if last == 0 => {
                    self.shared.handed(conv, 0);
                    continue;
                }
                None => last - 1,
            };
            let views = match catch_up.messages_after(conv, after, CATCH_UP_LIMIT).await {
                Ok(views) => views,
                Err(e) => {
                    // One conversation that cannot be read does not hold up the others.
                    tracing::warn!(error = %e, conv, "reading what NATS did not bring");
                    continue;
                }
            };
            let deliveries: Vec<(i64, Delivery)> = views
                .into_iter()
                .map(|view| {
                    let seq = view.seq;
                    let frame = super::encode(&ServerFrame::Msg(view));
                    (conv, Delivery { seq, frame })
                })
                .collect();
            if let Some((_, newest)) = deliveries.last() {
                let newest = newest.seq;
                self.arrived(conv, deliveries);
                // Everything up to it is in the database and was just handed over: the mark
                // moves there even if a number below was never seen (deleted by retention
                // meanwhile, or overtaken by newer messages arriving faster than a check).
                self.shared.handed_up_to(conv, newest);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_carries_numbers_and_frames_and_nothing_else_is_one() {
        let mut payload = Vec::new();
        for (seq, frame) in [(4, r#"{"t":"msg","body":"a b\nc"}"#), (0, "{}")] {
            let frame =
                serde_json::to_string(&serde_json::from_str::<serde_json::Value>(frame).unwrap())
                    .unwrap();
            encode_line(
                &mut payload,
                &Delivery {
                    seq,
                    frame: frame.into(),
                },
            );
        }
        let got = decode(9, &payload).expect("deliveries");
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1.seq), (9, 4));
        assert!(got[0].1.frame.as_str().contains(r#""a b\nc""#));
        assert_eq!(got[1].1.seq, EPHEMERAL);
        assert!(decode(9, b"x {}\n").is_none(), "a number is required");
        assert!(
            decode(9, b"-3 {}\n").is_none(),
            "acknowledgements never travel"
        );
        assert!(decode(9, b"4\n").is_none(), "a frame is required");
        assert!(decode(9, &[0xff, b' ']).is_none(), "text only");
    }
}
