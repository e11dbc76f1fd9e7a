//! What the island shows, as plain data: the user's own card, the contact list, rooms and
//! conversations with their windows. [`crate::app::reducer`] changes it from server frames
//! and the user's actions; the views read it (`crate::app::state::Ui` holds it in a signal).
//! The derived views (the contact list's sections, the typing line) are pure functions here.
//!
//! The model is one signal, so every change notifies every view that reads it. What keeps a
//! frame from costing the whole page: the large lists (contacts, groups, rooms, each
//! window's lines and pending messages) are shared (`Arc`), so a view's memo of one clones a
//! pointer and compares pointers, and reruns what depends on it only when that list itself
//! changed. A change to a list goes through [`Arc::make_mut`] (or [`retain`], which leaves the
//! list alone when nothing goes).

use crate::protocol::{
    conversation_title, Contact, ContactGroup, ContactState, ConversationKind, ConversationSummary,
    MessageKind, MessageView, Presence, RoomSummary, Status, UserSummary,
};
use std::sync::Arc;

/// Keeps the entries of a shared list that `keep` accepts; the list is not copied (and stays
/// the same list for the views) when every entry stays.
pub fn retain<T: Clone>(list: &mut Arc<Vec<T>>, mut keep: impl FnMut(&T) -> bool) {
    if !list.iter().all(&mut keep) {
        Arc::make_mut(list).retain(keep);
    }
}

/// Messages of a conversation loaded when this page first sees it; older ones load on scroll.
pub const FIRST_LOAD: i64 = 30;

/// Everything frames change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub me: UserSummary,
    /// Set once the first `hello` of this page arrived: presence changes before it are the
    /// list being loaded, not news.
    pub ready: bool,
    /// The user's own status, display name, personal message and picture, as confirmed.
    pub status: Status,
    pub display_name: String,
    pub personal_message: String,
    pub picture: Option<String>,
    /// The contact list: contacts, requests both ways and blocked users.
    pub contacts: Arc<Vec<Contact>>,
    pub groups: Arc<Vec<ContactGroup>>,
    pub rooms: Arc<Vec<RoomSummary>>,
    /// How many public rooms exist (`rooms` may hold only some of them).
    pub rooms_total: i64,
    /// The conversations this user is in, in the order this page learnt of them.
    pub convs: Vec<ConvModel>,
    /// Ids of the open conversation windows, oldest first.
    pub open: Vec<i64>,
    /// Short-lived notifications ("… has just signed in"), oldest first.
    pub toasts: Vec<Toast>,
    /// A message for the user about something that failed.
    pub notice: Option<String>,
    /// Ids for toasts and typing entries.
    pub next_id: u64,
    /// The store's epoch, from `hello`: the sequence numbers this page holds are only
    /// comparable with the server's within it.
    pub epoch: Option<String>,
    /// Whether the tab is in the background (the page's `visibilitychange`).
    pub hidden: bool,
    /// Messages from others that arrived while the tab was in the background (the title
    /// counts them until the tab is seen again).
    pub unseen_while_hidden: u32,
}

impl Model {
    pub fn new(me: UserSummary) -> Self {
        Self {
            display_name: me.display_name.clone(),
            me,
            ready: false,
            status: Status::Online,
            personal_message: String::new(),
            picture: None,
            contacts: Arc::default(),
            groups: Arc::default(),
            rooms: Arc::default(),
            rooms_total: 0,
            convs: Vec::new(),
            open: Vec::new(),
            toasts: Vec::new(),
            notice: None,
            next_id: 0,
            epoch: None,
            hidden: false,
            unseen_while_hidden: 0,
        }
    }

    pub fn conv(&self, id: i64) -> Option<&ConvModel> {
        self.convs.iter().find(|c| c.id == id)
    }

    pub fn conv_mut(&mut self, id: i64) -> Option<&mut ConvModel> {
        self.convs.iter_mut().find(|c| c.id == id)
    }

    pub fn is_open(&self, id: i64) -> bool {
        self.open.contains(&id)
    }

    /// A fresh id for a toast or a typing entry.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Adds or replaces a contact list entry; returns the entry it replaced (None: new).
    pub fn upsert_contact(&mut self, contact: Contact) -> Option<Contact> {
        let contacts = Arc::make_mut(&mut self.contacts);
        match contacts.iter_mut().find(|c| c.user.id == contact.user.id) {
            Some(c) => Some(std::mem::replace(c, contact)),
            None => {
                contacts.push(contact);
                None
            }
        }
    }

    /// Someone's display name changed: the conversations they are in take it (members,
    /// and the titles made of them: windows, their "To:" lines, the list).
    pub fn renamed(&mut self, user: i64, name: &str) {
        let me = self.me.id;
        for c in &mut self.convs {
            if c.kind == crate::protocol::ConversationKind::Room {
                continue;
            }
            let Some(member) = c.members.iter_mut().find(|u| u.id == user) else {
                continue;
            };
            if member.display_name != name {
                member.display_name = name.to_owned();
                c.title = conversation_title(&c.members, me);
            }
        }
    }

    /// A contact's new presence; returns the status it had before (None: not in the list).
    pub fn set_presence(&mut self, user: i64, presence: Presence) -> Option<Status> {
        let at = self.contacts.iter().position(|c| c.user.id == user)?;
        let c = &mut Arc::make_mut(&mut self.contacts)[at];
        let before = c.presence.status;
        c.presence = presence;
        Some(before)
    }
}

/// A committed message as a window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub seq: i64,
    pub from: i64,
    pub from_name: String,
    pub body: String,
    pub mine: bool,
    pub kind: MessageKind,
    /// When it was committed (milliseconds since the epoch).
    pub at: i64,
}

impl Line {
    pub fn from_view(m: &MessageView, me: i64) -> Self {
        Self {
            seq: m.seq,
            from: m.from,
            from_name: m.from_name.clone(),
            body: m.body.clone(),
            mine: m.from == me,
            kind: m.kind,
            at: m.at,
        }
    }
}

/// Lines from one sender within this long of each other go under one "X says:".
pub const GROUP_WITHIN_MS: i64 = 5 * 60 * 1000;

/// Which lines start a group under their own "X says:" (with its time): a text line whose
/// sender differs from the previous shown line's, or that came more than
/// [`GROUP_WITHIN_MS`] after it, or that follows a nudge or a join. Lines not shown
/// (deletions, deleted messages) neither start nor break a group.
pub fn group_starts(lines: &[Line]) -> Vec<bool> {
    let mut prev: Option<&Line> = None;
    lines
        .iter()
        .map(|l| {
            if matches!(l.kind, MessageKind::Delete | MessageKind::Deleted) {
                return false;
            }
            let starts = l.kind != MessageKind::Text
                || prev.is_none_or(|p| {
                    p.kind != MessageKind::Text || p.from != l.from || l.at - p.at > GROUP_WITHIN_MS
                });
            prev = Some(l);
            starts
        })
        .collect()
}

/// A message sent but not yet acknowledged (it is resent, with the same id, after reconnects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub client_id: String,
    pub body: String,
    /// Why the server refused it, if it did (it is then no longer resent).
    pub failed: Option<String>,
}

/// Someone writing in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typist {
    pub user: i64,
    pub name: String,
    /// What the timeout that clears the entry must still find (a repeat replaces it).
    pub token: u64,
}

/// A notification shown for a few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub id: u64,
    pub text: String,
    /// Whose picture shows beside it: the user and their picture's version.
    pub picture: Option<(i64, Option<String>)>,
}

/// One conversation: its list entry and its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvModel {
    pub id: i64,
    pub kind: ConversationKind,
    /// The other member of a one-to-one conversation.
    pub peer: Option<i64>,
    pub title: String,
    /// Members of a one-to-one or group conversation, in order of arrival.
    pub members: Vec<UserSummary>,
    /// In a group this user was invited into, the history they may see starts after this.
    pub visible_after: i64,
    /// Committed messages, ordered by sequence number, without duplicates.
    pub lines: Arc<Vec<Line>>,
    pub pending: Arc<Vec<Pending>>,
    pub unread: u32,
    /// Highest sequence number received in order since the last `sync` (None: never synced).
    pub synced_upto: Option<i64>,
    /// Whether the server's history says older messages exist before the first line.
    pub has_more: bool,
    /// The server said messages below this sequence number expired (its retention).
    pub expired_before: i64,
    pub loading_older: bool,
    /// Members writing a message now.
    pub typing: Vec<Typist>,
    /// The highest sequence number this page knows of.
    pub latest: i64,
    /// The read mark the server had when this page learnt of the conversation (the marks
    /// this page sends are the network's bookkeeping, `state::Net`, not the model's).
    pub last_read: i64,
    /// Whether the window is shaking from a nudge right now.
    pub shaking: bool,
    /// Nudges this window has shaken for (kept, unlike the shaking, for anyone checking).
    pub nudges: u32,
    /// A note in the window about something refused (a nudge too soon, say).
    pub notice: Option<String>,
}

impl ConvModel {
    pub fn new(s: &ConversationSummary, me: i64) -> Self {
        Self {
            id: s.id,
            kind: s.kind,
            peer: match s.kind {
                ConversationKind::Dm => s.members.iter().find(|m| m.id != me).map(|m| m.id),
                ConversationKind::Room | ConversationKind::Group => None,
            },
            title: s.title.clone(),
            members: s.members.clone(),
            visible_after: s.visible_after,
            lines: Arc::default(),
            pending: Arc::default(),
            // Messages that arrived while the user was away count as unread from the start.
            unread: (s.last_seq - s.last_read).clamp(0, u32::MAX as i64) as u32,
            synced_upto: None,
            has_more: s.last_seq > s.visible_after,
            expired_before: 0,
            loading_older: false,
            typing: Vec::new(),
            latest: s.last_seq,
            last_read: s.last_read,
            shaking: false,
            nudges: 0,
            notice: None,
        }
    }

    /// Forgets the messages held (the server's history no longer matches them); what was
    /// not sent yet stays, to be sent again. The next messages are history being loaded.
    pub fn forget(&mut self) {
        self.lines = Arc::default();
        self.synced_upto = None;
        self.typing.clear();
        self.latest = 0;
        self.loading_older = false;
    }

    /// A join or leave line of a group: the member list and the title follow it.
    pub fn membership(&mut self, m: &MessageView, me: i64) {
        let changed = match m.kind {
            MessageKind::Join if !self.members.iter().any(|u| u.id == m.from) => {
                self.members.push(UserSummary {
                    id: m.from,
                    username: String::new(),
                    display_name: m.from_name.clone(),
                    is_guest: false,
                    is_bot: false,
                });
                true
            }
            MessageKind::Leave => {
                let before = self.members.len();
                self.members.retain(|u| u.id != m.from);
                self.members.len() != before
            }
            _ => false,
        };
        if changed {
            self.title = conversation_title(&self.members, me);
        }
    }

    /// Adds messages in sequence order, ignoring ones already present.
    pub fn insert(&mut self, new: impl IntoIterator<Item = Line>) {
        for line in new {
            if let Err(at) = self.lines.binary_search_by_key(&line.seq, |l| l.seq) {
                Arc::make_mut(&mut self.lines).insert(at, line);
            }
        }
    }

    /// Whether the main window lists it: not a one-to-one conversation the user cleared
    /// from their side, until a message newer than the clearing comes.
    pub fn listed(&self) -> bool {
        self.visible_after == 0
            || self.kind != ConversationKind::Dm
            || self.latest > self.visible_after
    }

    /// Whether the window shows the conversation's first message (nothing older to load).
    pub fn at_start(&self) -> bool {
        self.lines
            .first()
            .is_some_and(|f| f.seq == self.visible_after + 1)
            || (!self.has_more && (self.lines.is_empty() || self.expired_before > 0))
    }
}

/// "Ann is writing a message…", "Ann and Bob are writing…", "3 people are writing…".
pub fn typing_text(typists: &[Typist]) -> Option<String> {
    match typists {
        [] => None,
        [one] => Some(format!("{} is writing a message…", one.name)),
        [a, b] => Some(format!("{} and {} are writing…", a.name, b.name)),
        more => Some(format!("{} people are writing…", more.len())),
    }
}

/// What kind of entries a section of the contact list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Requests to this user, to accept, decline or block.
    Incoming,
    /// Accepted contacts (a contact group, or the Online / Offline sections).
    Contacts,
    /// Requests this user sent that are not answered yet.
    Requested,
    /// Users this user blocked who are not contacts.
    Blocked,
}

/// One collapsible section of the contact list, with its entries in display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Stable across updates, for folding.
    pub key: String,
    pub kind: SectionKind,
    /// The contact group this section shows, if it is one.
    pub group: Option<i64>,
    pub name: String,
    /// Entries online (not Offline) and in all.
    pub online: usize,
    pub total: usize,
    pub entries: Vec<Contact>,
}

impl Section {
    /// The heading: "Friends (2/5)" for a contact group, "Online (3)" for the others.
    pub fn title(&self) -> String {
        match (self.kind, self.group) {
            (SectionKind::Contacts, Some(_)) => {
                format!("{} ({}/{})", self.name, self.online, self.total)
            }
            _ => format!("{} ({})", self.name, self.total),
        }
    }
}

/// Whether a contact shows as online (any status but Offline).
pub fn is_online(c: &Contact) -> bool {
    c.presence.status != Status::Offline
}

/// The name to show for a contact: the name they chose, as far as this user may see it.
pub fn shown_name(c: &Contact) -> &str {
    if c.presence.display_name.is_empty() {
        &c.user.display_name
    } else {
        &c.presence.display_name
    }
}

/// Splits the contact list into its sections, as the main window shows them: requests to
/// answer first, then each contact group (by name, with online/total counts), then the
/// contacts in no group as "Online" and "Offline", then sent requests, then blocked users
/// who are not contacts. Sections with nothing in them are left out, except contact groups
/// (an empty group is still somewhere to move contacts to). Within a section, online
/// entries come first, then by name.
pub fn sections(contacts: &[Contact], groups: &[ContactGroup]) -> Vec<Section> {
    /// A name in lower case, to sort by. In the browser JavaScript's `toLowerCase` does it:
    /// Rust's `str::to_lowercase` brings ~15 KB of Unicode tables into the islands' bundle.
    fn lower(name: &str) -> String {
        #[cfg(any(feature = "hydrate", feature = "csr"))]
        return String::from(js_sys::JsString::from(name).to_lower_case());
        #[cfg(not(any(feature = "hydrate", feature = "csr")))]
        return name.to_lowercase();
    }
    fn section(
        key: String,
        kind: SectionKind,
        group: Option<i64>,
        name: &str,
        mut entries: Vec<Contact>,
    ) -> Section {
        entries.sort_by_cached_key(|c| (!is_online(c), lower(shown_name(c)), c.user.id));
        Section {
            key,
            kind,
            group,
            name: name.to_owned(),
            online: entries.iter().filter(|c| is_online(c)).count(),
            total: entries.len(),
            entries,
        }
    }
    let pick = |f: &dyn Fn(&Contact) -> bool| -> Vec<Contact> {
        contacts.iter().filter(|c| f(c)).cloned().collect()
    };
    let accepted = |c: &Contact| c.state == ContactState::Accepted;
    let known_group = |c: &Contact| c.group.is_some_and(|g| groups.iter().any(|x| x.id == g));
    let mut out = Vec::new();
    let incoming = pick(&|c| c.state == ContactState::Incoming && !c.blocked);
    if !incoming.is_empty() {
        out.push(section(
            "requests".into(),
            SectionKind::Incoming,
            None,
            "Requests",
            incoming,
        ));
    }
    let mut sorted: Vec<&ContactGroup> = groups.iter().collect();
    sorted.sort_by_cached_key(|g| (lower(&g.name), g.id));
    for g in sorted {
        let members = pick(&|c| accepted(c) && c.group == Some(g.id));
        out.push(section(
            format!("group-{}", g.id),
            SectionKind::Contacts,
            Some(g.id),
            &g.name,
            members,
        ));
    }
    // AI contacts have a section of their own (unless put in a group).
    let bots = pick(&|c| accepted(c) && !known_group(c) && c.user.is_bot);
    if !bots.is_empty() {
        out.push(section(
            "bots".into(),
            SectionKind::Contacts,
            None,
            "AI contacts",
            bots,
        ));
    }
    let accepted = |c: &Contact| accepted(c) && !c.user.is_bot;
    let online = pick(&|c| accepted(c) && !known_group(c) && is_online(c));
    if !online.is_empty() {
        out.push(section(
            "online".into(),
            SectionKind::Contacts,
            None,
            "Online",
            online,
        ));
    }
    let offline = pick(&|c| accepted(c) && !known_group(c) && !is_online(c));
    if !offline.is_empty() {
        out.push(section(
            "offline".into(),
            SectionKind::Contacts,
            None,
            "Offline",
            offline,
        ));
    }
    let requested = pick(&|c| c.state == ContactState::Requested);
    if !requested.is_empty() {
        out.push(section(
            "requested".into(),
            SectionKind::Requested,
            None,
            "Waiting for an answer",
            requested,
        ));
    }
    let blocked =
        pick(&|c| c.blocked && matches!(c.state, ContactState::None | ContactState::Incoming));
    if !blocked.is_empty() {
        out.push(section(
            "blocked".into(),
            SectionKind::Blocked,
            None,
            "Blocked",
            blocked,
        ));
    }
    out
}

#[cfg(test)]
mod tests {

    fn line(seq: i64, from: i64, at: i64, kind: MessageKind) -> Line {
        Line {
            seq,
            from,
            from_name: format!("user {from}"),
            body: "hi".into(),
            mine: from == 1,
            kind,
            at,
        }
    }

    #[test]
    fn lines_group_by_sender_and_time_and_nudges_stand_alone() {
        use MessageKind::*;
        let min = 60_000;
        let lines = [
            line(1, 1, 0, Text),
            line(2, 1, min, Text),
            line(3, 2, 2 * min, Text),
            line(4, 2, 3 * min, Deleted),
            line(5, 2, 4 * min, Text),
            line(6, 2, 4 * min, Nudge),
            line(7, 2, 5 * min, Text),
            line(8, 2, 11 * min, Text),
        ];
        assert_eq!(
            group_starts(&lines),
            [true, false, true, false, false, true, true, true]
        );
    }

    use super::*;

    fn contact(
        id: i64,
        name: &str,
        state: ContactState,
        status: Status,
        group: Option<i64>,
    ) -> Contact {
        Contact {
            user: UserSummary {
                id,
                username: name.to_lowercase(),
                display_name: name.to_owned(),
                is_guest: false,
                is_bot: false,
            },
            state,
            blocked: false,
            group,
            presence: Presence {
                status,
                display_name: name.to_owned(),
                personal_message: String::new(),
                picture: None,
            },
        }
    }

    fn names(s: &Section) -> Vec<&str> {
        s.entries.iter().map(shown_name).collect()
    }

    #[test]
    fn ai_contacts_have_a_section_of_their_own_unless_put_in_a_group() {
        let groups = vec![ContactGroup {
            id: 4,
            name: "Fun".into(),
        }];
        let mut tina = contact(1, "Tina", ContactState::Accepted, Status::Online, None);
        tina.user.is_bot = true;
        let mut dave = contact(2, "Dave", ContactState::Accepted, Status::Busy, Some(4));
        dave.user.is_bot = true;
        let ann = contact(3, "Ann", ContactState::Accepted, Status::Online, None);
        let s = sections(&[tina, dave, ann], &groups);
        let titles: Vec<String> = s.iter().map(Section::title).collect();
        assert_eq!(titles, ["Fun (1/1)", "AI contacts (1)", "Online (1)"]);
        assert_eq!(names(&s[1]), ["Tina"]);
        assert_eq!(names(&s[2]), ["Ann"]);
    }

    #[test]
    fn the_list_has_requests_then_groups_then_online_and_offline() {
        use ContactState::{Accepted, Incoming, Requested};
        let groups = vec![
            ContactGroup {
                id: 7,
                name: "Work".into(),
            },
            ContactGroup {
                id: 3,
                name: "family".into(),
            },
            ContactGroup {
                id: 9,
                name: "Empty".into(),
            },
        ];
        let mut blocked_stranger = contact(8, "Mallory", ContactState::None, Status::Offline, None);
        blocked_stranger.blocked = true;
        let mut blocked_asker = contact(10, "Trent", Incoming, Status::Offline, None);
        blocked_asker.blocked = true;
        let list = vec![
            contact(1, "Zoe", Accepted, Status::Offline, None),
            contact(2, "ann", Accepted, Status::Busy, None),
            contact(3, "Bob", Accepted, Status::Online, Some(7)),
            contact(4, "Al", Accepted, Status::Offline, Some(7)),
            contact(5, "Cy", Accepted, Status::Away, Some(7)),
            contact(6, "Dee", Incoming, Status::Offline, None),
            contact(7, "Eve", Requested, Status::Offline, None),
            // In a group that no longer exists: shown as in no group.
            contact(11, "Gus", Accepted, Status::Online, Some(42)),
            blocked_stranger,
            blocked_asker,
        ];
        let s = sections(&list, &groups);
        let titles: Vec<String> = s.iter().map(Section::title).collect();
        assert_eq!(
            titles,
            [
                "Requests (1)",
                "Empty (0/0)",
                "family (0/0)",
                "Work (2/3)",
                "Online (2)",
                "Offline (1)",
                "Waiting for an answer (1)",
                "Blocked (2)",
            ]
        );
        assert_eq!(
            names(&s[3]),
            ["Bob", "Cy", "Al"],
            "online first, then by name"
        );
        assert_eq!(names(&s[4]), ["ann", "Gus"]);
        assert_eq!(names(&s[7]), ["Mallory", "Trent"]);
        assert_eq!(s[3].group, Some(7));
        assert_eq!(s[0].kind, SectionKind::Incoming);
    }

    #[test]
    fn the_typing_line_names_one_or_two_and_counts_more() {
        let t = |name: &str| Typist {
            user: 0,
            name: name.into(),
            token: 0,
        };
        assert_eq!(typing_text(&[]), None);
        assert_eq!(
            typing_text(&[t("Ann")]).as_deref(),
            Some("Ann is writing a message…")
        );
        assert_eq!(
            typing_text(&[t("Ann"), t("Bob")]).as_deref(),
            Some("Ann and Bob are writing…")
        );
        assert_eq!(
            typing_text(&[t("Ann"), t("Bob"), t("Cy")]).as_deref(),
            Some("3 people are writing…")
        );
    }

    #[test]
    fn an_empty_list_has_no_sections() {
        assert!(sections(&[], &[]).is_empty());
    }
}
