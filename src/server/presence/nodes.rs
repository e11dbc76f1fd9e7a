//! Presence across nodes (`--nats`, docs/SCALING.md). Each node owns the presence of its own
//! sockets and tells the others on one subject, `<prefix>.presence`:
//!
//! - a user's state on this node whenever it changes (sockets opened or closed, idle, status,
//!   name, personal message, picture), and relationship and group changes (each node then
//!   tells its own sockets) and blocks (each node mirrors them);
//! - a heartbeat every [`BEAT_EVERY`], and everything it holds every [`SNAPSHOT_EVERY`] (and
//!   soon after it hears a node it did not know), which makes up for a lost change;
//! - a node not heard for [`NODE_TIMEOUT`] is gone: its users are offline unless another node
//!   holds them, and come back when they reconnect anywhere.
//!
//! The other nodes' states are merged in [`PresenceHub::visible`]; Appear Offline and the
//! contact-only view hold because every node's publisher applies them to the merged state.

use super::{Event, NodeState, PresenceHub, Relay};
use futures::StreamExt;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    sync::{mpsc, Notify},
    time::Instant,
};

/// How often a node says it is alive.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);
/// A node not heard for this long is gone, and its users offline.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a node says everything it holds.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(10);
/// Messages waiting for NATS; past this they are dropped and counted (the next snapshot
/// makes up for states; a lost relationship change waits for the user's next reload).
const OUTGOING: usize = 4096;
/// Users in one part of a snapshot: about 150 bytes each, far below NATS's 1 MiB.
const SNAPSHOT_PART: usize = 1000;

/// One node's message.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Said {
    node: u64,
    what: What,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum What {
    Beat,
    State {
        user: i64,
        state: Option<NodeState>,
    },
    /// Part of everything the node holds (NATS takes at most 1 MiB in one message): the
    /// parts of one snapshot share `generation`, and the last one says so.
    All {
        generation: u64,
        states: Vec<(i64, NodeState)>,
        last: bool,
    },
    Event(Event),
    Blocked {
        blocker: i64,
        blocked: i64,
        on: bool,
    },
}

/// This node's part in presence across nodes.
pub struct Nodes {
    /// This node's id, random at each start.
    pub node: u64,
    dropped: AtomicU64,
}

impl Nodes {
    /// Messages dropped because NATS did not take them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Joins `presence` to the other nodes through `client`, on `<prefix>.presence`; starts the
/// node's tasks on the current runtime.
pub fn start(presence: Arc<PresenceHub>, client: async_nats::Client, prefix: &str) -> Arc<Nodes> {
    let nodes = Arc::new(Nodes {
        node: rand::random::<u64>(),
        dropped: AtomicU64::new(0),
    });
    let subject = format!("{prefix}.presence");
    let (outgoing, queue) = mpsc::channel::<What>(OUTGOING);
    let relaying = nodes.clone();
    let out = outgoing.clone();
    presence.relay_to(Arc::new(move |relay| {
        let what = match relay {
            Relay::State(user, state) => What::State { user, state },
            Relay::Event(event) => What::Event(event),
            Relay::Blocked(blocker, blocked, on) => What::Blocked {
                blocker,
                blocked,
                on,
            },
        };
        if out.try_send(what).is_err() {
            relaying.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }));
    let snapshot_soon = Arc::new(Notify::new());
    tokio::spawn(send(client.clone(), subject.clone(), nodes.node, queue));
    tokio::spawn(beat(
        presence.clone(),
        outgoing,
        snapshot_soon.clone(),
        nodes.clone(),
    ));
    tokio::spawn(listen(presence, client, subject, nodes.node, snapshot_soon));
    nodes
}

/// Publishes what this node says, in order.
async fn send(
    client: async_nats::Client,
    subject: String,
    node: u64,
    mut queue: mpsc::Receiver<What>,
) {
    while let Some(what) = queue.recv().await {
        let said = Said { node, what };
        match serde_json::to_vec(&said) {
            Ok(bytes) => {
                if let Err(e) = client.publish(subject.clone(), bytes.into()).await {
                    tracing::warn!(error = %e, "publishing presence to NATS");
                }
            }
            Err(e) => tracing::error!(error = %e, "presence message does not serialise"),
        }
    }
}

/// The heartbeat, and the snapshot: on its period, or soon after a new node appears.
async fn beat(
    presence: Arc<PresenceHub>,
    outgoing: mpsc::Sender<What>,
    snapshot_soon: Arc<Notify>,
    nodes: Arc<Nodes>,
) {
    let mut beat = tokio::time::interval(BEAT_EVERY);
    let mut last_snapshot = Instant::now() - SNAPSHOT_EVERY;
    let mut generation = 0u64;
    loop {
        let asked = tokio::select! {
            _ = beat.tick() => false,
            () = snapshot_soon.notified() => true,
        };
        let mut said = Vec::new();
        if asked || last_snapshot.elapsed() >= SNAPSHOT_EVERY {
            last_snapshot = Instant::now();
            generation += 1;
            let states = presence.local_states();
            let parts = states.len().div_ceil(SNAPSHOT_PART).max(1);
            let mut chunks = states.chunks(SNAPSHOT_PART);
            for part in 0..parts {
                said.push(What::All {
                    generation,
                    states: chunks.next().map(<[_]>::to_vec).unwrap_or_default(),
                    last: part + 1 == parts,
                });
            }
        } else {
            said.push(What::Beat);
        }
        for what in said {
            if outgoing.try_send(what).is_err() {
                nodes.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Hears the other nodes, and forgets those that went quiet.
async fn listen(
    presence: Arc<PresenceHub>,
    client: async_nats::Client,
    subject: String,
    me: u64,
    snapshot_soon: Arc<Notify>,
) {
    let mut subscription = loop {
        match client.subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "subscribing to presence on NATS; trying again");
                tokio::time::sleep(BEAT_EVERY).await;
            }
        }
    };
    let mut heard: HashMap<u64, Instant> = HashMap::new();
    // Snapshots arriving in parts: per node, the generation and what came so far.
    let mut parts: HashMap<u64, (u64, Vec<(i64, NodeState)>)> = HashMap::new();
    let mut reap = tokio::time::interval(BEAT_EVERY);
    loop {
        let message = tokio::select! {
            message = subscription.next() => match message {
                Some(message) => message,
                None => return,
            },
            _ = reap.tick() => {
                let now = Instant::now();
                heard.retain(|node, at| {
                    let alive = now.duration_since(*at) < NODE_TIMEOUT;
                    if !alive {
                        tracing::warn!(node, "a node went quiet; its users are offline here");
                        presence.replace_node(*node, None);
                        parts.remove(node);
                    }
                    alive
                });
                continue;
            }
        };
        let said: Said = match serde_json::from_slice(&message.payload) {
            Ok(said) => said,
            Err(e) => {
                tracing::warn!(error = %e, "a presence message that does not parse; ignored");
                continue;
            }
        };
        if said.node == me {
            continue;
        }
        if heard.insert(said.node, Instant::now()).is_none() {
            // A node this one did not know: it learns this node's users at once.
            snapshot_soon.notify_one();
        }
        match said.what {
            What::Beat => {}
            What::State { user, state } => presence.set_remote(said.node, user, state),
            What::All {
                generation,
                states,
                last,
            } => {
                let part = parts.entry(said.node).or_insert((generation, Vec::new()));
                if part.0 != generation {
                    // A new snapshot began before the last one finished: start over.
                    *part = (generation, Vec::new());
                }
                part.1.extend(states);
                if last {
                    if let Some((_, all)) = parts.remove(&said.node) {
                        presence.replace_node(said.node, Some(all));
                    }
                }
            }
            What::Event(event) => presence.emit_here(event),
            What::Blocked {
                blocker,
                blocked,
                on,
            } => presence.set_blocked_here(blocker, blocked, on),
        }
    }
}
