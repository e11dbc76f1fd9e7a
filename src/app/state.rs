//! The island's reactive state: the link to the server, conversations and their windows.

use crate::protocol::{
    ConversationKind, ConversationSummary, MessageView, RoomSummary, UserSummary,
};
use leptos::prelude::*;

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
}

impl Line {
    pub fn from_view(m: &MessageView, me: i64) -> Self {
        Self {
            seq: m.seq,
            from_name: m.from_name.clone(),
            body: m.body.clone(),
            mine: m.from == me,
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
    pub title: RwSignal<String>,
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
}

impl Conv {
    pub fn new(s: &ConversationSummary) -> Self {
        Self {
            id: s.id,
            kind: s.kind,
            title: RwSignal::new(s.title.clone()),
            lines: RwSignal::new(Vec::new()),
            pending: RwSignal::new(Vec::new()),
            draft: RwSignal::new(String::new()),
            unread: RwSignal::new(0),
            loading_older: RwSignal::new(false),
            synced_upto: StoredValue::new(None),
            has_more: RwSignal::new(s.last_seq > 0),
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
    /// Ids of the open conversation windows, oldest first.
    pub open: RwSignal<Vec<i64>>,
    /// A message for the user about something that failed.
    pub notice: RwSignal<Option<String>>,
}

impl Ui {
    pub fn new(me: UserSummary) -> Self {
        Self {
            me: StoredValue::new(me),
            link: RwSignal::new(Link::Connecting),
            convs: RwSignal::new(Vec::new()),
            rooms: RwSignal::new(Vec::new()),
            open: RwSignal::new(Vec::new()),
            notice: RwSignal::new(None),
        }
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
    }

    pub fn close_window(&self, id: i64) {
        self.open.update(|open| open.retain(|o| *o != id));
    }
}
