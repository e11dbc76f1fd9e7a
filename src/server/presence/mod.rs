//! Presence, derived from live sockets only: a user is online while at least one of their
//! sockets is open, and offline once the last one closes (or is closed for missing
//! heartbeats). Nothing about it is stored, so a restart cannot leave ghosts: after one,
//! everyone is offline until their sockets come back.
//!
//! What contacts see goes through one task, [`run_publisher`], which handles events in order
//! and always publishes the state as it is when it handles them, so a burst of changes can
//! never leave a contact with an older state than the newest. "Appear Offline" is applied
//! in [`PresenceHub::visible`], the one place every outgoing presence comes from.
//!
//! With several nodes (docs/SCALING.md), each node owns the presence of its own sockets and
//! tells the others (`nodes.rs`): [`PresenceHub::visible`] merges what this node holds with
//! what the others said, and each node's publisher tells its own sockets.

pub mod nodes;

use super::{
    hub::{Control, Fanout},
    store::{ContactRow, ContactStore, Profile},
};
use crate::protocol::{Contact, ContactState, Presence, ServerFrame, Status};
use std::time::Duration;
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, RwLock},
};
use tokio::{sync::mpsc, time::Instant};

/// Something that may change what contacts see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// The user's own presence may have changed (socket, idle, status, name, message).
    Changed(i64),
    /// The relationship of these two users changed (request, accept, remove, block).
    Related(i64, i64),
    /// The user's contact groups changed.
    Groups(i64),
}

struct Online {
    /// Open sockets and whether each reports its user idle.
    sockets: Vec<(u64, bool)>,
    profile: Profile,
    /// When `profile` was set (ms): among nodes, the newest profile wins.
    at: i64,
}

impl Online {
    fn state(&self) -> NodeState {
        NodeState {
            profile: self.profile.clone(),
            all_idle: self.sockets.iter().all(|&(_, idle)| idle),
            at: self.at,
        }
    }
}

/// A user's presence as one node holds it (their sockets there): what nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeState {
    pub profile: Profile,
    /// Whether every socket of the user on that node reports them idle.
    pub all_idle: bool,
    /// When the profile was set there (ms since the epoch).
    pub at: i64,
}

/// What this node tells the others (`nodes.rs` sends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// The user's presence on this node (None: no socket here any more).
    State(i64, Option<NodeState>),
    /// A relationship or group change: each node tells its own sockets.
    Event(Event),
    /// A block or unblock the store committed: (blocker, blocked, on).
    Blocked(i64, i64, bool),
}

/// The merged presence of a user over the nodes that hold them: the newest profile, and
/// idle only if idle everywhere.
fn merge<'a>(states: impl Iterator<Item = NodeState> + 'a) -> Option<NodeState> {
    states.reduce(|a, b| {
        let all_idle = a.all_idle && b.all_idle;
        let mut newest = if b.at > a.at { b } else { a };
        newest.all_idle = all_idle;
        newest
    })
}

fn status_of(state: &NodeState) -> Status {
    match state.profile.status {
        // Online with every tab idle reads as Away; any other choice stands.
        Status::Online if state.all_idle => Status::Away,
        chosen => chosen,
    }
}

pub struct PresenceHub {
    online: Mutex<HashMap<i64, Online>>,
    /// What the other nodes hold: user to (node to state). Locked after `online`, never
    /// before.
    remote: Mutex<HashMap<i64, HashMap<u64, NodeState>>>,
    /// (blocker, blocked), mirrored from the store so a send can be checked without a query.
    blocks: RwLock<HashSet<(i64, i64)>>,
    events: mpsc::UnboundedSender<Event>,
    /// Tells the other nodes (set when the server runs on several).
    relay: std::sync::OnceLock<Arc<dyn Fn(Relay) + Send + Sync>>,
}

impl PresenceHub {
    pub fn new(blocks: Vec<(i64, i64)>) -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let hub = Self {
            online: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            blocks: RwLock::new(blocks.into_iter().collect()),
            events,
            relay: std::sync::OnceLock::new(),
        };
        (hub, rx)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Online>> {
        self.online
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remote(&self) -> MutexGuard<'_, HashMap<i64, HashMap<u64, NodeState>>> {
        self.remote
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Something changed here: this node's publisher hears it, and so do the other nodes.
    pub fn emit(&self, event: Event) {
        self.emit_here(event);
        if let Some(relay) = self.relay.get() {
            match event {
                // Read and handed on under the lock, so two changes of one user reach the
                // other nodes in the order they happened (the relay only queues).
                Event::Changed(user) => {
                    let online = self.lock();
                    relay(Relay::State(user, online.get(&user).map(Online::state)));
                }
                other => relay(Relay::Event(other)),
            }
        }
    }

    /// Only this node's publisher hears it (what another node told).
    pub fn emit_here(&self, event: Event) {
        // The publisher lives as long as the server; after it stops nobody needs the event.
        let _ = self.events.send(event);
    }

    /// Sets who tells the other nodes (once).
    pub fn relay_to(&self, relay: Arc<dyn Fn(Relay) + Send + Sync>) {
        let _ = self.relay.set(relay);
    }

    /// The user's presence as this node holds it.
    pub fn local_state(&self, user: i64) -> Option<NodeState> {
        self.lock().get(&user).map(Online::state)
    }

    /// Every user with a socket on this node, as this node holds them.
    pub fn local_states(&self) -> Vec<(i64, NodeState)> {
        self.lock()
            .iter()
            .map(|(user, o)| (*user, o.state()))
            .collect()
    }

    /// What `node` says of `user` (None: no socket there); contacts hear if it changes
    /// what they see.
    pub fn set_remote(&self, node: u64, user: i64, state: Option<NodeState>) {
        if let Some(state) = &state {
            self.adopt(user, state);
        }
        let changed = {
            let mut remote = self.remote();
            let nodes = remote.entry(user).or_default();
            let changed = match state {
                Some(state) => nodes.insert(node, state.clone()) != Some(state),
                None => nodes.remove(&node).is_some(),
            };
            if nodes.is_empty() {
                remote.remove(&user);
            }
            changed
        };
        if changed {
            self.emit_here(Event::Changed(user));
        }
    }

    /// Everything `node` holds, replacing what it said before (None: the node is gone, and
    /// its users are offline unless another node holds them).
    pub fn replace_node(&self, node: u64, states: Option<Vec<(i64, NodeState)>>) {
        let fresh: HashMap<i64, NodeState> = states.unwrap_or_default().into_iter().collect();
        // Before the other nodes' map is locked: `online` is never locked after it.
        for (user, state) in &fresh {
            self.adopt(*user, state);
        }
        let mut changed = Vec::new();
        {
            let mut remote = self.remote();
            remote.retain(|user, nodes| {
                if !fresh.contains_key(user) && nodes.remove(&node).is_some() {
                    changed.push(*user);
                }
                !nodes.is_empty()
            });
            for (user, state) in fresh {
                let nodes = remote.entry(user).or_default();
                if nodes.insert(node, state.clone()) != Some(state) {
                    changed.push(user);
                }
            }
        }
        for user in changed {
            self.emit_here(Event::Changed(user));
        }
    }

    /// A profile set on another node after the one this node holds becomes this node's
    /// too: otherwise, once the other node's sockets close, an older profile (Online where the
    /// user chose Appear Offline) would show again.
    fn adopt(&self, user: i64, state: &NodeState) {
        if let Some(entry) = self.lock().get_mut(&user) {
            if state.at > entry.at {
                entry.profile = state.profile.clone();
                entry.at = state.at;
            }
        }
    }

    /// How many nodes `user` has a socket on, this one counted (the others as their
    /// heartbeats last said): each node's share of the user's frame rate.
    pub fn nodes_of(&self, user: i64) -> usize {
        1 + self.remote().get(&user).map_or(0, HashMap::len)
    }

    /// The user's presence over every node.
    fn merged(&self, user: i64) -> Option<NodeState> {
        let here = self.lock().get(&user).map(Online::state);
        let there: Vec<NodeState> = self
            .remote()
            .get(&user)
            .map(|nodes| nodes.values().cloned().collect())
            .unwrap_or_default();
        merge(here.into_iter().chain(there))
    }

    /// A socket of `user` opened.
    pub fn connect(&self, user: i64, conn: u64, profile: Profile) {
        {
            let mut online = self.lock();
            let entry = online.entry(user).or_insert_with(|| Online {
                sockets: Vec::new(),
                profile: profile.clone(),
                at: 0,
            });
            entry.profile = profile;
            entry.at = super::store::now_ms();
            entry.sockets.push((conn, false));
        }
        self.emit(Event::Changed(user));
    }

    /// A socket of `user` closed.
    pub fn disconnect(&self, user: i64, conn: u64) {
        {
            let mut online = self.lock();
            if let Some(entry) = online.get_mut(&user) {
                entry.sockets.retain(|&(c, _)| c != conn);
                if entry.sockets.is_empty() {
                    online.remove(&user);
                }
            }
        }
        self.emit(Event::Changed(user));
    }

    /// A socket reports its user idle or back (a report that changes nothing is dropped).
    pub fn set_idle(&self, user: i64, conn: u64, idle: bool) {
        {
            let mut online = self.lock();
            let Some(entry) = online.get_mut(&user) else {
                return;
            };
            let mut changed = false;
            for s in entry.sockets.iter_mut().filter(|s| s.0 == conn) {
                changed |= s.1 != idle;
                s.1 = idle;
            }
            if !changed {
                return;
            }
        }
        self.emit(Event::Changed(user));
    }

    /// The user's profile changed (already stored).
    pub fn set_profile(&self, user: i64, profile: Profile) {
        if let Some(entry) = self.lock().get_mut(&user) {
            entry.profile = profile;
            entry.at = super::store::now_ms();
        }
        self.emit(Event::Changed(user));
    }

    /// What contacts allowed to see `user` see now; None while the user is offline or
    /// appears offline.
    pub fn visible(&self, user: i64) -> Option<Presence> {
        let state = self.merged(user)?;
        match status_of(&state) {
            Status::Offline => None,
            status => Some(Presence {
                status,
                display_name: state.profile.display_name,
                personal_message: state.profile.personal_message,
                picture: state.profile.picture,
            }),
        }
    }

    /// The user's current display name and whether they chose Appear Offline (None: no
    /// socket open).
    pub fn own_view(&self, user: i64) -> Option<(String, bool)> {
        let online = self.lock();
        let entry = online.get(&user)?;
        Some((
            entry.profile.display_name.clone(),
            entry.profile.status == Status::Offline,
        ))
    }

    /// Whether the user has a socket open on any node.
    pub fn is_online(&self, user: i64) -> bool {
        self.lock().contains_key(&user) || self.remote().contains_key(&user)
    }

    /// Open sockets of `user` that presence counts.
    pub fn sockets_of(&self, user: i64) -> usize {
        self.lock().get(&user).map_or(0, |o| o.sockets.len())
    }

    pub fn blocked(&self, blocker: i64, blocked: i64) -> bool {
        self.blocks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&(blocker, blocked))
    }

    /// Mirrors a block or unblock that the store has committed (and tells the other nodes).
    pub fn set_blocked(&self, blocker: i64, blocked: i64, on: bool) {
        self.set_blocked_here(blocker, blocked, on);
        if let Some(relay) = self.relay.get() {
            relay(Relay::Blocked(blocker, blocked, on));
        }
    }

    /// Mirrors a block or unblock another node's store committed.
    pub fn set_blocked_here(&self, blocker: i64, blocked: i64, on: bool) {
        let mut blocks = self
            .blocks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if on {
            blocks.insert((blocker, blocked));
        } else {
            blocks.remove(&(blocker, blocked));
        }
    }

    /// An entry of a contact list, with the presence its owner may see.
    pub fn contact_view(&self, row: ContactRow) -> Contact {
        let may_see = row.state == Some(ContactState::Accepted) && !row.blocked_me;
        let presence = may_see
            .then(|| self.visible(row.user.id))
            .flatten()
            .unwrap_or_else(|| offline(&row.user.display_name));
        Contact {
            user: row.user,
            state: row.state.unwrap_or(ContactState::None),
            blocked: row.blocked,
            group: row.group,
            presence,
        }
    }
}

/// Offline, as everyone who may not see more sees a user: the name, no personal message,
/// the default picture.
pub fn offline(display_name: &str) -> Presence {
    Presence {
        status: Status::Offline,
        display_name: display_name.to_owned(),
        personal_message: String::new(),
        picture: None,
    }
}

/// What the presence publisher uses: who may see whom, and the way to their sockets.
pub struct Publisher {
    pub presence: Arc<PresenceHub>,
    pub contacts: Arc<dyn ContactStore>,
    pub fanout: Arc<dyn Fanout>,
}

/// Least time between two presence frames about one user: changes that come faster are
/// coalesced, and the state as it is at the end of the interval is what contacts see (the
/// last status wins). A user toggling their status in a loop costs each contact one frame
/// per interval.
pub const PRESENCE_EVERY: Duration = Duration::from_secs(1);

/// Handles presence events in order until the server stops.
pub async fn run_publisher(p: Publisher, mut events: mpsc::UnboundedReceiver<Event>) {
    // What each user's viewers were last told, so an unchanged state is not sent again.
    let mut last: HashMap<i64, Presence> = HashMap::new();
    // When each user's presence was last published (kept for one interval), and the users
    // whose change waits for their interval to end.
    let mut published: HashMap<i64, Instant> = HashMap::new();
    let mut waiting: HashMap<i64, Instant> = HashMap::new();
    loop {
        let next_due = waiting.values().min().copied();
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
            () = sleep_until_some(next_due) => {
                let now = Instant::now();
                let due: Vec<i64> = waiting
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(user, _)| *user)
                    .collect();
                for user in due {
                    waiting.remove(&user);
                    published.insert(user, now);
                    let event = Event::Changed(user);
                    if let Err(e) = publish(&p, &mut last, event).await {
                        tracing::error!(?event, error = %e, "publishing presence failed");
                    }
                }
                continue;
            }
        };
        if let Event::Changed(user) = event {
            let now = Instant::now();
            if waiting.contains_key(&user) {
                continue; // already due; it will publish the state as it is then
            }
            if let Some(at) = published.get(&user) {
                if now.duration_since(*at) < PRESENCE_EVERY {
                    waiting.insert(user, *at + PRESENCE_EVERY);
                    continue;
                }
            }
            published.insert(user, now);
            if published.len() > 4096 {
                published.retain(|_, at| now.duration_since(*at) < PRESENCE_EVERY);
            }
        }
        if let Err(e) = publish(&p, &mut last, event).await {
            tracing::error!(?event, error = %e, "publishing presence failed");
        }
    }
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn publish(
    p: &Publisher,
    last: &mut HashMap<i64, Presence>,
    event: Event,
) -> anyhow::Result<()> {
    match event {
        Event::Changed(user) => {
            let now = match p.presence.visible(user) {
                Some(p) => p,
                None => {
                    let name = match last.get(&user) {
                        Some(p) => p.display_name.clone(),
                        // Offline before and after: nothing to tell.
                        None => return Ok(()),
                    };
                    offline(&name)
                }
            };
            if last.get(&user) == Some(&now) {
                return Ok(());
            }
            if now.status == Status::Offline {
                last.remove(&user);
            } else {
                last.insert(user, now.clone());
            }
            let frame = Control::frame(&ServerFrame::Presence {
                user,
                presence: now,
            });
            for viewer in p.contacts.presence_viewers(user).await? {
                if p.fanout.connections_of(viewer) > 0 {
                    p.fanout.notify_user(viewer, frame.clone());
                }
            }
        }
        Event::Related(a, b) => {
            for (owner, other) in [(a, b), (b, a)] {
                if p.fanout.connections_of(owner) == 0 {
                    continue;
                }
                let frame = match p.contacts.contact_of(owner, other).await? {
                    Some(row) => ServerFrame::Contact {
                        contact: p.presence.contact_view(row),
                    },
                    None => ServerFrame::ContactRemoved { user: other },
                };
                p.fanout.notify_user(owner, Control::frame(&frame));
            }
        }
        Event::Groups(owner) => {
            if p.fanout.connections_of(owner) > 0 {
                let groups = p.contacts.groups_of(owner).await?;
                p.fanout
                    .notify_user(owner, Control::frame(&ServerFrame::Groups { groups }));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(status: Status) -> Profile {
        Profile {
            status,
            personal_message: "hi".into(),
            display_name: "Ann".into(),
            picture: None,
        }
    }

    #[test]
    fn online_while_any_socket_is_open_and_offline_after_the_last() {
        let (hub, mut rx) = PresenceHub::new(Vec::new());
        hub.connect(1, 10, profile(Status::Online));
        hub.connect(1, 11, profile(Status::Online));
        hub.disconnect(1, 10);
        assert_eq!(hub.visible(1).map(|p| p.status), Some(Status::Online));
        hub.disconnect(1, 11);
        assert_eq!(hub.visible(1), None);
        assert!(!hub.is_online(1));
        // Every change was announced.
        let mut n = 0;
        while let Ok(Event::Changed(1)) = rx.try_recv() {
            n += 1;
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn away_when_every_tab_is_idle_and_only_for_a_chosen_online() {
        let (hub, _rx) = PresenceHub::new(Vec::new());
        hub.connect(1, 10, profile(Status::Online));
        hub.connect(1, 11, profile(Status::Online));
        hub.set_idle(1, 10, true);
        assert_eq!(hub.visible(1).unwrap().status, Status::Online);
        hub.set_idle(1, 11, true);
        assert_eq!(hub.visible(1).unwrap().status, Status::Away);
        hub.set_idle(1, 11, false);
        assert_eq!(hub.visible(1).unwrap().status, Status::Online);
        hub.set_profile(1, profile(Status::Busy));
        hub.set_idle(1, 11, true);
        assert_eq!(hub.visible(1).unwrap().status, Status::Busy);
    }

    #[test]
    fn appear_offline_is_invisible_whatever_the_sockets_do() {
        let (hub, _rx) = PresenceHub::new(Vec::new());
        hub.connect(1, 10, profile(Status::Offline));
        assert_eq!(hub.visible(1), None);
        hub.connect(1, 11, profile(Status::Offline));
        hub.set_idle(1, 11, true);
        hub.set_idle(1, 11, false);
        assert_eq!(hub.visible(1), None);
        assert!(hub.is_online(1));
    }

    fn state(status: Status, all_idle: bool, at: i64) -> NodeState {
        NodeState {
            profile: Profile {
                status,
                ..profile(status)
            },
            all_idle,
            at,
        }
    }

    #[test]
    fn other_nodes_merge_newest_profile_wins_idle_only_if_idle_everywhere() {
        let (hub, mut rx) = PresenceHub::new(Vec::new());
        // Only on node 7: seen as it says.
        hub.set_remote(7, 1, Some(state(Status::Busy, false, 10)));
        assert_eq!(hub.visible(1).map(|p| p.status), Some(Status::Busy));
        assert!(hub.is_online(1));
        assert_eq!(rx.try_recv(), Ok(Event::Changed(1)), "contacts hear of it");
        // The same said again changes nothing and is not announced.
        hub.set_remote(7, 1, Some(state(Status::Busy, false, 10)));
        assert!(rx.try_recv().is_err());
        // A newer profile on another node wins; Away only when idle on both.
        hub.set_remote(8, 1, Some(state(Status::Online, true, 20)));
        assert_eq!(hub.visible(1).map(|p| p.status), Some(Status::Online));
        hub.set_remote(7, 1, Some(state(Status::Online, true, 5)));
        assert_eq!(hub.visible(1).map(|p| p.status), Some(Status::Away));
        // Appear Offline, chosen last on one node, hides the user everywhere.
        hub.set_remote(7, 1, Some(state(Status::Offline, false, 30)));
        assert_eq!(hub.visible(1), None);
        assert!(hub.is_online(1), "online, appearing offline");
    }

    #[test]
    fn a_node_that_goes_takes_its_users_offline_unless_another_holds_them() {
        let (hub, mut rx) = PresenceHub::new(Vec::new());
        hub.replace_node(
            7,
            Some(vec![
                (1, state(Status::Online, false, 1)),
                (2, state(Status::Online, false, 1)),
            ]),
        );
        hub.set_remote(8, 2, Some(state(Status::Online, false, 1)));
        while rx.try_recv().is_ok() {}
        hub.replace_node(7, None);
        assert_eq!(hub.visible(1), None, "only node 7 held user 1");
        assert!(!hub.is_online(1));
        assert!(hub.visible(2).is_some(), "node 8 still holds user 2");
        let heard: HashSet<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(
            heard,
            HashSet::from([Event::Changed(1), Event::Changed(2)]),
            "both users' views are checked again"
        );
        // A snapshot replaces what the node said before.
        hub.replace_node(8, Some(vec![(3, state(Status::Away, false, 1))]));
        assert!(hub.visible(2).is_none() && hub.visible(3).is_some());
    }

    #[test]
    fn local_changes_are_relayed_to_the_other_nodes_and_theirs_are_not() {
        let (hub, _rx) = PresenceHub::new(Vec::new());
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        hub.relay_to(Arc::new(move |r| sink.lock().unwrap().push(r)));
        hub.connect(1, 10, profile(Status::Online));
        hub.set_blocked(1, 2, true);
        hub.emit(Event::Groups(1));
        hub.set_remote(7, 3, Some(state(Status::Online, false, 1)));
        hub.set_blocked_here(4, 5, true);
        hub.emit_here(Event::Groups(4));
        let told = told.lock().unwrap().clone();
        assert!(
            matches!(&told[0], Relay::State(1, Some(s)) if s.profile.status == Status::Online && !s.all_idle)
        );
        assert_eq!(
            told[1..],
            [Relay::Blocked(1, 2, true), Relay::Event(Event::Groups(1))]
        );
        assert!(hub.blocked(4, 5), "another node's block is mirrored");
    }

    #[test]
    fn a_profile_chosen_on_another_node_outlives_that_nodes_sockets() {
        let (hub, _rx) = PresenceHub::new(Vec::new());
        // A tab here connected first; the user then chose Appear Offline in a tab on node 7.
        hub.connect(1, 10, profile(Status::Online));
        let later = crate::server::store::now_ms() + 1_000;
        hub.set_remote(7, 1, Some(state(Status::Offline, false, later)));
        assert_eq!(hub.visible(1), None);
        // That tab closes: the choice still holds here, not the profile this tab began with.
        hub.set_remote(7, 1, None);
        assert_eq!(hub.visible(1), None, "still appearing offline");
        assert_eq!(hub.own_view(1).map(|(_, hidden)| hidden), Some(true));
    }
}
