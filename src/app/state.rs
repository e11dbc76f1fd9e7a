//! The island's reactive state: the [`Model`] that frames change, in one signal, and what
//! only the page itself knows (the link to the server, drafts, folded sections, open
//! menus, the sound switch, the network's own bookkeeping).

use super::model::Model;
use crate::protocol::{Contact, ContactGroup, Presence, UserSummary};
use futures_channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

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

/// What the main window's icon bar opens: one small panel at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    AddContact,
    AddBot,
    NewGroup,
}

/// Everything the island shows. `Copy`: every component and callback holds it.
#[derive(Clone, Copy)]
pub struct Ui {
    pub me: StoredValue<UserSummary>,
    pub model: RwSignal<Model>,
    /// The model's contact list and contact groups, as memos: views of them rerun when the
    /// list changes, not on every frame (the lists are shared, so comparing is a pointer).
    pub contacts: Memo<Arc<Vec<Contact>>>,
    pub groups: Memo<Arc<Vec<ContactGroup>>>,
    pub link: RwSignal<Link>,
    /// What the user is typing in each conversation (kept when a window closes).
    pub drafts: RwSignal<HashMap<i64, String>>,
    /// The AI contacts anyone can add (loaded when asked for).
    pub bots: RwSignal<Vec<crate::protocol::http::BotCard>>,
    /// Sections of the contact list the user folded away (by their key).
    pub collapsed: RwSignal<HashSet<String>>,
    /// The contact (or group, as a negative id) whose action menu is open.
    pub menu: RwSignal<Option<i64>>,
    /// The icon bar's open panel, if any.
    pub panel: RwSignal<Option<Panel>>,
    /// What is typed in the search box over the list.
    pub query: RwSignal<String>,
    /// Whether sounds are off (kept in the browser's local storage).
    pub muted: RwSignal<bool>,
    /// Why the last sign-in again failed, shown in the session-ended dialog only.
    pub resume_error: RwSignal<Option<String>>,
    /// Where each conversation window was dragged and how large it was made.
    pub geometry: RwSignal<HashMap<i64, crate::app::keep::Geometry>>,
    /// The network's own state (socket, timers, throttles); browser values, never sent.
    pub net: StoredValue<Net, LocalStorage>,
}

/// The network's bookkeeping for this page (`net/` keeps it up to date).
#[derive(Default)]
pub struct Net {
    /// The open connection's way out, if there is one.
    pub socket: Option<SocketHandle>,
    /// Consecutive failed connection attempts, for the backoff.
    pub attempt: u32,
    /// Bumped by each scheduled reconnect and by "Retry now": a timer whose token is no
    /// longer the current one does nothing.
    pub retry_token: u32,
    /// Whether the user did something since the last session refresh.
    pub active: bool,
    /// When the user last did something here (milliseconds since the epoch).
    pub last_activity: f64,
    /// Whether this tab told the server its user is idle.
    pub idle: bool,
    /// When this tab last sent "typing" per conversation (ms since the epoch), and a counter
    /// bumped on every keystroke so that only the last one's timer sends "stopped".
    pub typing_sent: HashMap<i64, f64>,
    pub keystrokes: u64,
    /// Set once the network started (once per page).
    pub started: bool,
    /// The read marks this page sent, per conversation (`net::mark_read`).
    pub reads: HashMap<i64, ReadMark>,
}

/// The last read mark this page sent in a conversation, and whether the next one is
/// already scheduled (at most one per conversation per second).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadMark {
    pub sent: i64,
    pub scheduled: bool,
}

impl Net {
    /// The read mark of a conversation; `server_had` (the mark the server gave when this
    /// page learnt of it) until this page sent one.
    pub fn read_mark(&mut self, conv: i64, server_had: i64) -> &mut ReadMark {
        self.reads.entry(conv).or_insert(ReadMark {
            sent: server_had,
            scheduled: false,
        })
    }
}

/// The way out to the open socket (the task that owns it reads this channel), and whether
/// `hello` has come: only then is it open for the page's frames.
pub struct SocketHandle {
    pub out: UnboundedSender<String>,
    pub ready: bool,
}

impl Ui {
    pub fn new(me: UserSummary) -> Self {
        let model = RwSignal::new(Model::new(me.clone()));
        Self {
            model,
            contacts: Memo::new(move |_| model.with(|m| Arc::clone(&m.contacts))),
            groups: Memo::new(move |_| model.with(|m| Arc::clone(&m.groups))),
            me: StoredValue::new(me),
            link: RwSignal::new(Link::Connecting),
            drafts: RwSignal::new(HashMap::new()),
            bots: RwSignal::new(Vec::new()),
            collapsed: RwSignal::new(HashSet::new()),
            menu: RwSignal::new(None),
            panel: RwSignal::new(None),
            query: RwSignal::new(String::new()),
            muted: RwSignal::new(false),
            resume_error: RwSignal::new(None),
            geometry: RwSignal::new(HashMap::new()),
            net: StoredValue::new_local(Default::default()),
        }
    }

    /// A user's presence as this user sees it (None for anyone not in the contact list);
    /// tracked through [`Ui::contacts`] only.
    pub fn presence_of(&self, user: i64) -> Option<Presence> {
        self.contacts.with(|cs| {
            cs.iter()
                .find(|c| c.user.id == user)
                .map(|c| c.presence.clone())
        })
    }

    /// The draft of a conversation.
    pub fn draft(&self, conv: i64) -> String {
        self.drafts
            .with(|d| d.get(&conv).cloned().unwrap_or_default())
    }

    pub fn set_draft(&self, conv: i64, text: String) {
        self.drafts.update(|d| {
            d.insert(conv, text);
        });
    }
}
