//! The island's reactive state: the link to the server, conversations and their windows.

use crate::protocol::{
    conversation_title, Contact, ContactGroup, ContactState, ConversationKind, ConversationSummary,
    MessageKind, MessageView, Presence, RoomSummary, Status, UserSummary,
};
use leptos::prelude::*;
use std::collections::HashSet;

/// The state of the live connection, as the main window shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Online,
    /// Disconnected; the next attempt is in this many seconds.
    Retrying(u32),
    /// The session ended; the user must sign in again.
    Ended,
}

/// A committed message as a window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub seq: i64,
    pub from_name: String,
    pub body: String,
    pub mine: bool,
    pub kind: MessageKind,
}

impl Line {
    pub fn from_view(m: &MessageView, me: i64) -> Self {
        Self {
            seq: m.seq,
            from_name: m.from_name.clone(),
            body: m.body.clone(),
            mine: m.from == me,
            kind: m.kind,
        }
    }
}

/// A message sent but not yet acknowledged (it is resent, with the same id, after reconnects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub client_id: String,
    pub body: String,
    /// Why the server refused it, if it did (it is then no longer resent).
    pub failed: Option<String>,
}

/// One conversation: its list entry and its window.
#[derive(Debug, Clone, Copy)]
pub struct Conv {
    pub id: i64,
    pub kind: ConversationKind,
    /// The other member of a one-to-one conversation.
    pub peer: Option<i64>,
    pub title: RwSignal<String>,
    /// Members of a one-to-one or group conversation, in order of arrival.
    pub members: RwSignal<Vec<UserSummary>>,
    /// In a group this user was invited into, the history they may see starts after this.
    pub visible_after: i64,
    /// Committed messages, ordered by sequence number, without duplicates.
    pub lines: RwSignal<Vec<Line>>,
    pub pending: RwSignal<Vec<Pending>>,
    pub draft: RwSignal<String>,
    pub unread: RwSignal<u32>,
    pub loading_older: RwSignal<bool>,
    /// Highest sequence number received in order since the last `sync` (None: never synced).
    pub synced_upto: StoredValue<Option<i64>>,
    /// Whether the server's history says older messages exist before the first line.
    pub has_more: RwSignal<bool>,
    /// Members writing a message now: user id, name, and a token that the timeout which
    /// clears the entry must still find (a repeat replaces it).
    pub typing: RwSignal<Vec<Typist>>,
    /// The highest sequence number this page knows of, and whether a `read` frame for it is
    /// already scheduled.
    pub latest: StoredValue<i64>,
    pub read_scheduled: StoredValue<bool>,
    /// The last read mark this page sent.
    pub read_sent: StoredValue<i64>,
    /// Whether the window is shaking from a nudge right now.
    pub shaking: RwSignal<bool>,
    /// Nudges this window has shaken for (kept, unlike the shaking, for anyone checking).
    pub nudges: RwSignal<u32>,
    /// A note in the window about something refused (a nudge too soon, say).
    pub notice: RwSignal<Option<String>>,
}

/// Someone writing in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typist {
    pub user: i64,
    pub name: String,
    pub token: u64,
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

impl Conv {
    pub fn new(s: &ConversationSummary, me: i64) -> Self {
        Self {
            id: s.id,
            kind: s.kind,
            peer: match s.kind {
                ConversationKind::Dm => s.members.iter().find(|m| m.id != me).map(|m| m.id),
                ConversationKind::Room | ConversationKind::Group => None,
            },
            title: RwSignal::new(s.title.clone()),
            members: RwSignal::new(s.members.clone()),
            visible_after: s.visible_after,
            lines: RwSignal::new(Vec::new()),
            pending: RwSignal::new(Vec::new()),
            draft: RwSignal::new(String::new()),
            // Messages that arrived while the user was away count as unread from the start.
            unread: RwSignal::new((s.last_seq - s.last_read).clamp(0, u32::MAX as i64) as u32),
            loading_older: RwSignal::new(false),
            synced_upto: StoredValue::new(None),
            has_more: RwSignal::new(s.last_seq > s.visible_after),
            typing: RwSignal::new(Vec::new()),
            latest: StoredValue::new(s.last_seq),
            read_scheduled: StoredValue::new(false),
            read_sent: StoredValue::new(s.last_read),
            shaking: RwSignal::new(false),
            nudges: RwSignal::new(0),
            notice: RwSignal::new(None),
        }
    }

    /// A join or leave line of a group: the member list and the title follow it.
    pub fn membership(&self, m: &MessageView, me: i64) {
        let changed = match m.kind {
            MessageKind::Join => {
                let mut added = false;
                self.members.update(|list| {
                    if !list.iter().any(|u| u.id == m.from) {
                        list.push(UserSummary {
                            id: m.from,
                            username: String::new(),
                            display_name: m.from_name.clone(),
                            is_guest: false,
                            is_bot: false,
                        });
                        added = true;
                    }
                });
                added
            }
            MessageKind::Leave => {
                let mut removed = false;
                self.members.update(|list| {
                    let before = list.len();
                    list.retain(|u| u.id != m.from);
                    removed = list.len() != before;
                });
                removed
            }
            _ => false,
        };
        if changed {
            self.title
                .set(self.members.with_untracked(|l| conversation_title(l, me)));
        }
    }

    /// Adds messages in sequence order, ignoring ones already present.
    pub fn insert(&self, new: impl IntoIterator<Item = Line>) {
        self.lines.update(|lines| {
            for line in new {
                if let Err(at) = lines.binary_search_by_key(&line.seq, |l| l.seq) {
                    lines.insert(at, line);
                }
            }
        });
    }
}

/// Everything the island shows.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub me: StoredValue<UserSummary>,
    pub link: RwSignal<Link>,
    pub convs: RwSignal<Vec<Conv>>,
    pub rooms: RwSignal<Vec<RoomSummary>>,
    /// How many public rooms exist (`rooms` may hold only some of them).
    pub rooms_total: RwSignal<i64>,
    /// Ids of the open conversation windows, oldest first.
    pub open: RwSignal<Vec<i64>>,
    /// A message for the user about something that failed.
    pub notice: RwSignal<Option<String>>,
    /// The user's own status, display name and personal message, as last confirmed.
    pub status: RwSignal<Status>,
    pub display_name: RwSignal<String>,
    pub personal_message: RwSignal<String>,
    /// The version of the user's display picture (None: the default picture).
    pub picture: RwSignal<Option<String>>,
    /// The AI contacts anyone can add.
    pub bots: RwSignal<Vec<UserSummary>>,
    /// The contact list: contacts, requests both ways and blocked users.
    pub contacts: RwSignal<Vec<Contact>>,
    pub groups: RwSignal<Vec<ContactGroup>>,
    /// Sections of the contact list the user folded away (by [`Section::key`]).
    pub collapsed: RwSignal<HashSet<String>>,
    /// The contact (or group, as a negative id) whose action menu is open.
    pub menu: RwSignal<Option<i64>>,
    /// Short-lived notifications ("… has just signed in"), oldest first.
    pub toasts: RwSignal<Vec<Toast>>,
    /// Whether sounds are off (kept in the browser's local storage).
    pub muted: RwSignal<bool>,
    /// Called when a window shows a conversation's latest messages (the client tells the
    /// server, throttled); a no-op on the server side.
    pub on_read: fn(i64),
    /// Set once the first `hello` of this page arrived: presence changes before it are the
    /// list being loaded, not news.
    pub ready: StoredValue<bool>,
}

/// A notification shown for a few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub id: u64,
    pub text: String,
}

impl Ui {
    pub fn new(me: UserSummary, on_read: fn(i64)) -> Self {
        Self {
            link: RwSignal::new(Link::Connecting),
            convs: RwSignal::new(Vec::new()),
            rooms: RwSignal::new(Vec::new()),
            rooms_total: RwSignal::new(0),
            open: RwSignal::new(Vec::new()),
            notice: RwSignal::new(None),
            status: RwSignal::new(Status::Online),
            display_name: RwSignal::new(me.display_name.clone()),
            personal_message: RwSignal::new(String::new()),
            picture: RwSignal::new(None),
            bots: RwSignal::new(Vec::new()),
            contacts: RwSignal::new(Vec::new()),
            groups: RwSignal::new(Vec::new()),
            collapsed: RwSignal::new(HashSet::new()),
            menu: RwSignal::new(None),
            toasts: RwSignal::new(Vec::new()),
            muted: RwSignal::new(false),
            ready: StoredValue::new(false),
            on_read,
            me: StoredValue::new(me),
        }
    }

    /// Adds or replaces a contact list entry; returns the entry it replaced (None: new).
    pub fn upsert_contact(&self, contact: Contact) -> Option<Contact> {
        let mut before = None;
        self.contacts.update(
            |list| match list.iter_mut().find(|c| c.user.id == contact.user.id) {
                Some(c) => before = Some(std::mem::replace(c, contact)),
                None => list.push(contact),
            },
        );
        before
    }

    pub fn remove_contact(&self, user: i64) {
        self.contacts
            .update(|list| list.retain(|c| c.user.id != user));
    }

    /// A contact's new presence; returns the status it had before (None: not in the list).
    pub fn set_presence(&self, user: i64, presence: Presence) -> Option<Status> {
        let mut before = None;
        self.contacts.update(|list| {
            if let Some(c) = list.iter_mut().find(|c| c.user.id == user) {
                before = Some(c.presence.status);
                c.presence = presence;
            }
        });
        before
    }

    /// The presence of a user as this user sees it (Offline for anyone not a contact).
    pub fn presence_of(&self, user: i64) -> Option<Presence> {
        self.contacts.with(|list| {
            list.iter()
                .find(|c| c.user.id == user)
                .map(|c| c.presence.clone())
        })
    }

    pub fn conv(&self, id: i64) -> Option<Conv> {
        self.convs
            .with_untracked(|cs| cs.iter().find(|c| c.id == id).copied())
    }

    /// Opens (or brings forward) a conversation's window and clears its unread count.
    pub fn open_window(&self, id: i64) {
        self.open.update(|open| {
            if !open.contains(&id) {
                open.push(id);
            }
        });
        if let Some(c) = self.conv(id) {
            c.unread.set(0);
        }
        (self.on_read)(id);
    }

    pub fn close_window(&self, id: i64) {
        self.open.update(|open| open.retain(|o| *o != id));
    }
}

/// What the user can do to an entry of the contact list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactAction {
    Accept,
    Decline,
    Block,
    Unblock,
    Remove,
}

/// A change to the user's own card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeChange {
    Status(Status),
    DisplayName(String),
    PersonalMessage(String),
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
