//! AI contacts: persona bots that people add and chat with like anyone else.
//!
//! - The personas (`personas.rs`) are users of the store, created or updated at every start,
//!   always online with their own status, and they accept every contact request at once.
//! - Every committed text message reaches the dispatcher ([`run_dispatcher`]) from the
//!   writer. A bot answers every message of a one-to-one conversation with it, and an exact
//!   `@handle` mention in a group conversation (the first bot mentioned; one bot per
//!   message). Messages from bots never trigger a bot.
//! - An answer shows the bot's typing indicator while it is made, and is then an ordinary
//!   durable message from the bot, with a client id derived from the message it answers
//!   (answering twice stores it once).
//! - Where the words come from ([`Brain`]): the offline persona engine (`offline.rs`) by
//!   default; with a provider configured, a language model, behind a concurrency limit, a
//!   timeout and a circuit breaker that falls back to the offline engine. Per-user and global
//!   daily quotas are counted in the store, and an administrator's switch
//!   (`messenger bots off`) stops the bots without a restart. Each limit is told to the user
//!   by the persona, in character.

pub mod breaker;
pub mod offline;
pub mod personas;
pub mod provider;
#[cfg(any(test, feature = "test-support"))]
pub mod stand_in;

use super::{
    chat::{Author, Chat, MembersWatch},
    config::BotConfig,
    limits::stored::{Scope, StoredLimits},
    presence::PresenceHub,
    profile::pictures::version_of,
    store::{now_ms, BotStore, Content, ProfileStore, Quota, StoreError},
};
use crate::protocol::{
    Body, ClientId, ConversationKind, MessageKind, MessageView, UserSummary, MAX_BODY_CHARS,
    TYPING_REPEAT_MS,
};
use async_trait::async_trait;
use breaker::{Breaker, Permit, SystemClock};
use personas::Persona;
use provider::{OpenAiCompatible, Provider, ProviderError, Turn};
use rand::{rngs::StdRng, SeedableRng};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{mpsc, Semaphore};

/// Longest reply a bot sends, in characters (a chat line, not an essay).
pub const MAX_REPLY_CHARS: usize = 600;
/// Messages of the conversation a model sees before the one it answers.
pub const HISTORY_FOR_MODEL: u32 = 12;
/// How long a reply waits for a free provider slot before the persona says it is busy.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Where a reply's words came from, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// From the language model.
    Model(String),
    /// From the offline engine: no provider, or the breaker is open.
    Offline(String),
    /// The provider failed or took too long: an in-character note, then an offline answer.
    Fallback(String),
    /// Every provider slot was taken for too long.
    Busy(String),
}

impl Reply {
    pub fn text(&self) -> &str {
        match self {
            Reply::Model(t) | Reply::Offline(t) | Reply::Fallback(t) | Reply::Busy(t) => t,
        }
    }
}

/// Makes the words of a reply: the provider behind its limits, or the offline engine.
pub struct Brain {
    provider: Option<Arc<dyn Provider>>,
    pub breaker: Breaker,
    slots: Semaphore,
    timeout: Duration,
    /// Each bot's last reply per conversation, so the offline engine does not repeat it.
    last: Mutex<HashMap<(i64, i64), String>>,
    rng: Mutex<StdRng>,
}

impl Brain {
    /// Whether a language model is configured (else the offline engine answers).
    pub fn has_model(&self) -> bool {
        self.provider.is_some()
    }
}

impl Brain {
    pub fn new(
        provider: Option<Arc<dyn Provider>>,
        breaker: Breaker,
        max_concurrent: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            provider,
            breaker,
            slots: Semaphore::new(max_concurrent.max(1)),
            timeout,
            last: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::from_entropy()),
        }
    }

    fn offline(&self, p: &Persona, conv: i64, bot: i64, said: &str) -> String {
        let previous = self.remembered(conv, bot);
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        offline::answer(p, said, previous.as_deref(), &mut *rng)
    }

    fn line(&self, lines: personas::Lines) -> String {
        use rand::seq::SliceRandom;
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        lines.choose(&mut *rng).copied().unwrap_or("...").to_owned()
    }

    fn remembered(&self, conv: i64, bot: i64) -> Option<String> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(conv, bot))
            .cloned()
    }

    fn remember(&self, conv: i64, bot: i64, text: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() > 10_000 {
            last.clear();
        }
        last.insert((conv, bot), text.to_owned());
    }

    /// The reply of persona `p` (user `bot`) in `conv` to `said`, with `turns` (the
    /// conversation as the model should see it).
    pub async fn reply(
        &self,
        p: &Persona,
        bot: i64,
        conv: i64,
        said: &str,
        turns: &[Turn],
    ) -> Reply {
        let reply = self.generate(p, bot, conv, said, turns).await;
        self.remember(conv, bot, reply.text());
        reply
    }

    async fn generate(
        &self,
        p: &Persona,
        bot: i64,
        conv: i64,
        said: &str,
        turns: &[Turn],
    ) -> Reply {
        let Some(provider) = &self.provider else {
            return Reply::Offline(self.offline(p, conv, bot, said));
        };
        let permit = self.breaker.permit();
        if permit == Permit::Fallback {
            return Reply::Offline(self.offline(p, conv, bot, said));
        }
        let slot = match tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            // A granted probe that is not made teaches nothing: the next caller may probe.
            _ => {
                if permit == Permit::Probe {
                    self.breaker.abandon_probe();
                }
                return Reply::Busy(self.line(p.busy));
            }
        };
        let result = tokio::time::timeout(self.timeout, provider.complete(turns))
            .await
            .unwrap_or(Err(ProviderError::Timeout));
        drop(slot);
        match result.map(|raw| clean(&raw, p)) {
            Ok(Some(text)) => {
                self.breaker.success();
                Reply::Model(text)
            }
            failed => {
                match failed {
                    Err(e) => {
                        tracing::warn!(error = %e, bot = p.handle, "the model failed; answering offline")
                    }
                    _ => tracing::warn!(
                        bot = p.handle,
                        "the model's answer was empty; answering offline"
                    ),
                }
                self.breaker.failure();
                let note = self.line(p.glitch);
                Reply::Fallback(format!("{note} {}", self.offline(p, conv, bot, said)))
            }
        }
    }
}

/// Cleans a model's answer for storing: no "<think>" block, no "Name:" prefix on its lines,
/// no control characters, at most [`MAX_REPLY_CHARS`] (cut at a sentence or word). None if
/// nothing is left.
pub fn clean(raw: &str, p: &Persona) -> Option<String> {
    let mut text = raw.to_owned();
    // Reasoning models may think out loud first.
    while let (Some(start), Some(end)) = (text.find("<think>"), text.find("</think>")) {
        if end < start {
            break;
        }
        text.replace_range(start..end + "</think>".len(), "");
    }
    // The persona's names as a model may put them: whole, by handle, or one word of it
    // ("Tina" for "Tamagotchi Tina").
    let mut names = vec![p.display_name, p.handle];
    names.extend(
        p.display_name
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.chars().count() >= 3),
    );
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut l = line.trim();
            loop {
                let bare = l.trim_start_matches(['*', '_', '"']);
                let stripped = names.iter().find_map(|n| {
                    let head = bare.get(..n.len())?;
                    if !head.eq_ignore_ascii_case(n) {
                        return None;
                    }
                    let rest = bare[n.len()..].trim_start_matches(['*', '_', '"']);
                    rest.strip_prefix(':').map(str::trim_start)
                });
                match stripped {
                    Some(rest) => l = rest,
                    None => break,
                }
            }
            l.chars().filter(|c| !c.is_control()).collect::<String>()
        })
        .collect();
    let mut out = String::new();
    let mut blank = 0;
    for l in lines {
        if l.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(l.trim_end());
    }
    let out = out.trim().to_owned();
    if out.is_empty() {
        return None;
    }
    let max = MAX_REPLY_CHARS.min(MAX_BODY_CHARS);
    if out.chars().count() <= max {
        return Some(out);
    }
    let cut: String = out.chars().take(max - 1).collect();
    let end = cut
        .rfind(['.', '!', '?'])
        .filter(|&i| i > max / 2)
        .map(|i| i + 1)
        .or_else(|| cut.rfind(char::is_whitespace))
        .unwrap_or(cut.len());
    Some(format!("{}…", cut[..end].trim_end()))
}

/// Which bot, if any, answers `body` in a conversation of `kind` whose bots are `bots`
/// (user id and handle). Pure: the rules in one place.
pub fn pick_bot(
    kind: ConversationKind,
    sender_is_bot: bool,
    body: &str,
    bots: &[(i64, &str)],
) -> Option<i64> {
    if sender_is_bot {
        return None;
    }
    match kind {
        ConversationKind::Dm => bots.first().map(|b| b.0),
        ConversationKind::Room => None,
        ConversationKind::Group => mentions(body).into_iter().find_map(|m| {
            bots.iter()
                .find(|b| b.1.eq_ignore_ascii_case(m))
                .map(|b| b.0)
        }),
    }
}

/// The handles @mentioned in `body`, in order: `@` at the start or after a character that
/// cannot be part of a handle, then the handle's characters.
fn mentions(body: &str) -> Vec<&str> {
    let is_handle_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in body.char_indices() {
        if c == '@' && !prev.is_some_and(is_handle_char) {
            let rest = &body[i + 1..];
            let len = rest
                .find(|c: char| !is_handle_char(c))
                .unwrap_or(rest.len());
            let handle = rest[..len].trim_end_matches('.');
            if !handle.is_empty() {
                out.push(handle);
            }
        }
        prev = Some(c);
    }
    out
}

/// The bots of this server: who they are in the store, and the brain that answers.
pub struct Bots {
    pub cfg: BotConfig,
    store: Arc<dyn BotStore>,
    /// User id to persona.
    by_user: HashMap<i64, &'static Persona>,
    /// The version of each bot's picture.
    pictures: HashMap<i64, String>,
    pub brain: Brain,
    /// Every conversation with a bot in it: its kind and its bots. Read from the store at
    /// start, then kept up to date when a one-to-one conversation with a bot is created
    /// and when a bot joins or leaves a group.
    convs: Arc<Mutex<HashMap<i64, BotMembers>>>,
    /// Who writes from where: each user's address and whether they are a guest, noted when
    /// their socket opens (messages only come from sockets), for the quotas.
    senders: Mutex<HashMap<i64, Sender>>,
}

/// A user as the quotas see them.
#[derive(Debug, Clone, Copy)]
struct Sender {
    address: std::net::IpAddr,
    guest: bool,
    at: std::time::Instant,
}

/// A conversation's kind and the bots in it.
type BotMembers = (ConversationKind, Vec<i64>);

/// Tells the writer which text messages the dispatcher wants: those of conversations with
/// a bot. The others are not even copied for it.
pub type Interest = Arc<dyn Fn(i64) -> bool + Send + Sync>;

impl Bots {
    /// Notes where `user` writes from (their socket just opened).
    pub fn seen(&self, user: i64, address: std::net::IpAddr, guest: bool) {
        let now = std::time::Instant::now();
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders.insert(
            user,
            Sender {
                address: crate::server::limits::address_key(address),
                guest,
                at: now,
            },
        );
        // A day is longer than any session: older notes are of people long gone.
        if senders.len() > 100_000 {
            senders
                .retain(|_, s| now.duration_since(s.at) < std::time::Duration::from_secs(86_400));
        }
    }

    fn sender(&self, user: i64) -> Option<Sender> {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&user)
            .copied()
    }

    /// The writer's filter: whether a text message of `conv` may concern a bot.
    pub fn interest(&self) -> Interest {
        let convs = self.convs.clone();
        Arc::new(move |conv| {
            convs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&conv)
        })
    }

    /// The kind and bots of `conv`, if it has any.
    pub fn in_conversation(&self, conv: i64) -> Option<BotMembers> {
        self.convs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&conv)
            .cloned()
    }

    /// Reads the bots of `conv` from the store again (it was created, or its members
    /// changed).
    pub async fn refresh(&self, conv: i64) -> Result<(), StoreError> {
        let found = self.store.bots_in(conv).await?;
        let mut convs = self.convs.lock().unwrap_or_else(|e| e.into_inner());
        match found {
            Some((kind, ids)) if !ids.is_empty() => {
                convs.insert(conv, (kind, ids));
            }
            _ => {
                convs.remove(&conv);
            }
        }
        Ok(())
    }

    pub fn is_bot(&self, user: i64) -> bool {
        self.by_user.contains_key(&user)
    }

    pub fn persona(&self, user: i64) -> Option<&'static Persona> {
        self.by_user.get(&user).copied()
    }

    /// Every bot as users see it, in the personas' order.
    pub fn summaries(&self) -> Vec<crate::protocol::http::BotCard> {
        let mut out: Vec<_> = self
            .by_user
            .iter()
            .map(|(&id, p)| crate::protocol::http::BotCard {
                user: UserSummary {
                    id,
                    username: p.handle.to_owned(),
                    display_name: p.display_name.to_owned(),
                    is_guest: false,
                    is_bot: true,
                },
                about: p.about.to_owned(),
                picture: self.pictures.get(&id).cloned(),
            })
            .collect();
        out.sort_by_key(|b| {
            personas::ALL
                .iter()
                .position(|p| p.handle == b.user.username)
        });
        out
    }
}

#[async_trait]
impl MembersWatch for Bots {
    async fn members_changed(&self, conv: i64) -> Result<(), StoreError> {
        self.refresh(conv).await
    }
}

/// Creates or updates every persona's account and picture, and brings them online. Returns
/// the bots, with the brain `cfg` asks for.
pub async fn start(
    store: Arc<dyn BotStore>,
    profiles: &dyn ProfileStore,
    presence: &PresenceHub,
    cfg: BotConfig,
) -> anyhow::Result<Bots> {
    let mut by_user = HashMap::new();
    let mut pictures = HashMap::new();
    for p in personas::ALL {
        let Some(id) = store
            .upsert_bot(p.handle, p.display_name, p.personal_message, p.status)
            .await?
        else {
            tracing::warn!(
                handle = p.handle,
                "a person has this bot's username; the bot is left out"
            );
            continue;
        };
        let png = tokio::task::spawn_blocking(move || draw_picture(p)).await??;
        let version = version_of(&png);
        let current = profiles.picture(id).await?.map(|(v, _)| v);
        if current.as_deref() != Some(version.as_str()) {
            profiles.set_picture(id, Some((&version, &png))).await?;
        }
        pictures.insert(id, version);
        if let Some(profile) = profiles.profile(id).await? {
            // A bot is online for good: one pretend socket that never closes.
            presence.connect(id, u64::MAX - id as u64, profile);
        }
        by_user.insert(id, p);
    }
    let provider: Option<Arc<dyn Provider>> = cfg.provider_url().map(|url| {
        Arc::new(OpenAiCompatible::new(
            url,
            &cfg.model,
            cfg.api_key.clone(),
            cfg.max_tokens,
        )) as Arc<dyn Provider>
    });
    let brain = Brain::new(
        provider,
        Breaker::new(
            cfg.breaker_failures,
            cfg.breaker_cooldown(),
            Arc::new(SystemClock::default()),
        ),
        cfg.max_concurrent,
        cfg.timeout(),
    );
    tracing::info!(
        bots = by_user.len(),
        provider = cfg.provider_url().unwrap_or("offline engine"),
        "AI contacts ready"
    );
    let mut convs: HashMap<i64, BotMembers> = HashMap::new();
    for (conv, kind, bot) in store.bot_conversations().await? {
        convs
            .entry(conv)
            .or_insert_with(|| (kind, Vec::new()))
            .1
            .push(bot);
    }
    Ok(Bots {
        cfg,
        store,
        by_user,
        pictures,
        brain,
        convs: Arc::new(Mutex::new(convs)),
        senders: Mutex::new(HashMap::new()),
    })
}

/// Draws a persona's 96 x 96 picture: a two-colour background, a figure, its emblem.
pub fn draw_picture(p: &Persona) -> anyhow::Result<Vec<u8>> {
    use image::{ImageFormat, Rgba, RgbaImage};
    let size = crate::protocol::PICTURE_SIZE;
    let [top, bottom, figure] = p.colors;
    let mix = |a: u8, b: u8, t: f32| (a as f32 + (b as f32 - a as f32) * t) as u8;
    let img = RgbaImage::from_fn(size, size, |x, y| {
        let (fx, fy) = (x as f32 / size as f32, y as f32 / size as f32);
        let t = fy;
        let mut px = [
            mix(top[0], bottom[0], t),
            mix(top[1], bottom[1], t),
            mix(top[2], bottom[2], t),
        ];
        // Head and shoulders.
        let head = (fx - 0.5).powi(2) + (fy - 0.40).powi(2) < 0.17f32.powi(2);
        let body =
            (fx - 0.5).powi(2) / 0.36f32.powi(2) + (fy - 1.05).powi(2) / 0.38f32.powi(2) < 1.0;
        if head || body {
            px = figure;
        }
        // The emblem, top right.
        let (ex, ey) = ((fx - 0.80) * 10.0, (fy - 0.18) * 10.0);
        let emblem = match p.emblem {
            personas::Emblem::Heart => {
                let (a, b) = (ex, -ey + 0.3);
                (a * a + b * b - 1.0).powi(3) - a * a * b.powi(3) < 0.0
            }
            personas::Emblem::Wave => (ey - (ex * 2.0).sin() * 0.6).abs() < 0.35 && ex.abs() < 1.4,
            personas::Emblem::Star => {
                let r = (ex * ex + ey * ey).sqrt();
                let a = ey.atan2(ex);
                r < 0.6 + 0.5 * (a * 5.0).cos().abs()
            }
            personas::Emblem::Cross => {
                (ex.abs() < 0.3 && ey.abs() < 1.1) || (ey.abs() < 0.3 && ex.abs() < 1.1)
            }
            personas::Emblem::Question => {
                let r = (ex * ex + (ey + 0.3).powi(2)).sqrt();
                ((0.45..0.8).contains(&r) && (ey < 0.0 || ex > 0.0))
                    || (ex.abs() < 0.2 && (0.9..1.3).contains(&ey))
            }
            personas::Emblem::Moon => {
                ex * ex + ey * ey < 1.0 && (ex - 0.45).powi(2) + (ey + 0.2).powi(2) > 0.7
            }
            personas::Emblem::Ring => (0.6..1.0).contains(&(ex * ex + ey * ey).sqrt()),
        };
        if emblem {
            px = figure;
        }
        Rgba([px[0], px[1], px[2], 255])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(png)
}

/// What a reply needs besides the bots: the conversations (to read and to post) and the
/// bots' profiles (their names as they are now).
#[derive(Clone)]
pub struct Replier {
    pub bots: Arc<Bots>,
    /// Replies are counted by outcome.
    pub metrics: Arc<crate::server::metrics::Metrics>,
    /// Each reply is an `ai_invocation` event.
    pub analytics: crate::server::analytics::Analytics,
    pub chat: Arc<Chat>,
    pub profiles: Arc<dyn ProfileStore>,
    /// Bot replies per address.
    pub limits: Arc<StoredLimits>,
}

/// Reads committed messages from the log and starts a reply where a bot is triggered.
/// Conversations without bots cost one lookup in [`Bots::convs`] and nothing else.
pub async fn run_dispatcher(r: Replier, mut rx: mpsc::Receiver<MessageView>) {
    while let Some(m) = rx.recv().await {
        let bots = &r.bots;
        if matches!(m.kind, MessageKind::Join | MessageKind::Leave) {
            // A bot arriving in or leaving a group: read its bots again.
            if bots.is_bot(m.from) {
                if let Err(e) = bots.refresh(m.conv).await {
                    tracing::error!(error = %e, conv = m.conv, "reading a conversation's bots");
                }
            }
            continue;
        }
        if m.kind != MessageKind::Text {
            continue;
        }
        let Some((kind, ids)) = bots.in_conversation(m.conv) else {
            continue;
        };
        let handles: Vec<(i64, &str)> = ids
            .iter()
            .filter_map(|id| bots.persona(*id).map(|p| (*id, p.handle)))
            .collect();
        if let Some(bot) = pick_bot(kind, bots.is_bot(m.from), &m.body, &handles) {
            tokio::spawn(respond(r.clone(), bot, m));
        }
    }
}

/// The answer of `bot` to `m`: the checks, the typing indicator, the words, the message.
async fn respond(r: Replier, bot: i64, m: MessageView) {
    if let Err(e) = try_respond(&r, bot, &m).await {
        tracing::error!(error = %e, bot, conv = m.conv, "a bot could not answer");
        typing(&r, bot, m.conv, false);
    }
}

async fn try_respond(r: &Replier, bot: i64, m: &MessageView) -> anyhow::Result<()> {
    let bots = &r.bots;
    let Some(p) = bots.persona(bot) else {
        return Ok(());
    };
    let (text, outcome) = if !bots.store.bots_enabled().await? {
        (bots.brain.line(p.away), "away")
    } else {
        match take_quota(r, m.from).await? {
            Quota::Granted => {
                typing(r, bot, m.conv, true);
                let beat = tokio::spawn(keep_typing(r.clone(), bot, m.conv));
                let started = std::time::Instant::now();
                let reply = think(r, p, bot, m).await;
                beat.abort();
                let (text, outcome) = reply?;
                let provider = if bots.brain.provider.is_some() {
                    "model"
                } else {
                    "none"
                };
                r.analytics.record(
                    crate::server::analytics::Event::new("ai_invocation")
                        .d1(p.handle)
                        .d2(provider)
                        .d3(outcome)
                        .n1(started.elapsed().as_secs_f64() * 1000.0)
                        .n2(text.chars().count() as f64),
                );
                (text, outcome)
            }
            Quota::UserSpent | Quota::AllSpent => {
                r.analytics.record(
                    crate::server::analytics::Event::new("ai_invocation")
                        .d1(p.handle)
                        .d2("none")
                        .d3("quota"),
                );
                (bots.brain.line(p.tired), "quota")
            }
        }
    };
    r.metrics
        .bot_replies
        .get_or_create(&crate::server::metrics::WhatLabels { what: outcome })
        .inc();
    let body = Body::parse(&text).map_err(|e| anyhow::anyhow!(e.0))?;
    let client_id =
        ClientId::parse(&format!("bot-{}-{}", bot, m.seq)).map_err(|e| anyhow::anyhow!(e.0))?;
    let name = r
        .profiles
        .profile(bot)
        .await?
        .map_or_else(|| p.display_name.to_owned(), |pr| pr.display_name);
    let author = Author {
        id: bot,
        name: &name,
        dm_peer: None,
    };
    r.chat
        .post_and_wait(author, m.conv, client_id, Content::Text(body))
        .await
        .map_err(|e| anyhow::anyhow!("the reply could not be stored: {e:?}"))?;
    Ok(())
}

/// Counts one reply for `user`: against their address's allowance (a stored bucket), then
/// their own daily quota (a guest's is smaller; someone never seen on a socket counts as a
/// guest) and everyone's. An address whose allowance is spent gets no more replies, so no
/// address can spend everyone's quota; a user's first replies of the day are granted even
/// when everyone's is spent.
async fn take_quota(r: &Replier, user: i64) -> anyhow::Result<Quota> {
    let bots = &r.bots;
    let sender = bots.sender(user);
    let address = sender.map(|s| s.address.to_string());
    if let Some(address) = &address {
        if r.limits.take(Scope::BotAddress, address).await?.is_err() {
            return Ok(Quota::AllSpent);
        }
    }
    let guest = sender.is_none_or(|s| s.guest);
    let user_limit = if guest {
        bots.cfg.guest_daily
    } else {
        bots.cfg.user_daily
    };
    let day = now_ms().div_euclid(86_400_000);
    let quota = bots
        .store
        .take_bot_quota(
            day,
            user,
            user_limit,
            bots.cfg.global_daily,
            bots.cfg.first_replies,
        )
        .await?;
    if quota != Quota::Granted {
        if let Some(address) = &address {
            r.limits.give_back(Scope::BotAddress, address).await?;
        }
    }
    Ok(quota)
}

/// The words of the answer, from the model or the offline engine.
/// The reply's words, and where they came from (`model`, `offline`, `fallback`, `busy`).
async fn think(
    r: &Replier,
    p: &Persona,
    bot: i64,
    m: &MessageView,
) -> anyhow::Result<(String, &'static str)> {
    let bots = &r.bots;
    let history = r
        .chat
        .context_for_bot(bot, m.conv, m.seq + 1, HISTORY_FOR_MODEL)
        .await?;
    let mut turns = vec![Turn {
        role: "system",
        content: format!(
            "You are {} in a 2000s-style instant messenger chat. {} Stay in character. Answer in one to three short chat lines, plain text, without your name in front.",
            p.display_name, p.character
        ),
    }];
    for h in history.iter().filter(|h| h.kind == MessageKind::Text) {
        turns.push(if h.from == bot {
            Turn {
                role: "assistant",
                content: h.body.clone(),
            }
        } else {
            Turn {
                role: "user",
                content: format!("{}: {}", h.from_name, h.body),
            }
        });
    }
    let delay = bots.cfg.offline_delay();
    if bots.brain.provider.is_none() && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reply = bots.brain.reply(p, bot, m.conv, &m.body, &turns).await;
    if !matches!(reply, Reply::Model(_) | Reply::Offline(_)) {
        tracing::info!(
            bot = p.handle,
            ?reply,
            breaker = bots.brain.breaker.state(),
            "bot answered without the model"
        );
    }
    let outcome = match &reply {
        Reply::Model(_) => "model",
        Reply::Offline(_) => "offline",
        Reply::Fallback(_) => "fallback",
        Reply::Busy(_) => "busy",
    };
    Ok((reply.text().to_owned(), outcome))
}

/// Repeats the bot's typing indicator while it works.
async fn keep_typing(r: Replier, bot: i64, conv: i64) {
    let mut every = tokio::time::interval(Duration::from_millis(TYPING_REPEAT_MS));
    every.tick().await;
    loop {
        every.tick().await;
        typing(&r, bot, conv, true);
    }
}

fn typing(r: &Replier, bot: i64, conv: i64, active: bool) {
    let name = r.bots.persona(bot).map_or("", |p| p.display_name);
    r.chat.typing(conv, bot, name.to_owned(), active);
}

#[cfg(test)]
mod tests {
    use super::*;
    use breaker::tests::ManualClock;
    use stand_in::{Answer, StandIn};

    #[test]
    fn who_answers_what() {
        use ConversationKind::{Dm, Group, Room};
        let bots = [(10, "tina_pet"), (11, "dialup_dave")];
        // One-to-one: every message, from a person.
        assert_eq!(pick_bot(Dm, false, "anything at all", &bots[..1]), Some(10));
        // Bots never answer bots, nor themselves.
        assert_eq!(pick_bot(Dm, true, "hello", &bots[..1]), None);
        assert_eq!(pick_bot(Group, true, "@tina_pet hi", &bots), None);
        // Groups: an exact @mention, the first one mentioned.
        assert_eq!(pick_bot(Group, false, "hi all", &bots), None);
        assert_eq!(pick_bot(Group, false, "tina_pet, hi", &bots), None);
        assert_eq!(pick_bot(Group, false, "hey @Tina_Pet!", &bots), Some(10));
        assert_eq!(
            pick_bot(Group, false, "@dialup_dave and @tina_pet", &bots),
            Some(11)
        );
        assert_eq!(pick_bot(Group, false, "ask @tina_pet.", &bots), Some(10));
        assert_eq!(pick_bot(Group, false, "@tina_petx hi", &bots), None);
        assert_eq!(pick_bot(Group, false, "@tina hi", &bots), None);
        assert_eq!(pick_bot(Group, false, "mail me: ann@tina_pet", &bots), None);
        assert_eq!(
            pick_bot(Group, false, "@nobody then @tina_pet", &bots),
            Some(10)
        );
        // Rooms have no bots.
        assert_eq!(pick_bot(Room, false, "@tina_pet", &bots), None);
    }

    #[test]
    fn replies_are_cleaned_of_names_thinking_and_length() {
        let tina = personas::by_handle("tina_pet").unwrap();
        assert_eq!(
            clean("Tamagotchi Tina: hi there!", tina).as_deref(),
            Some("hi there!")
        );
        assert_eq!(clean("**tina_pet**: hey", tina).as_deref(), Some("hey"));
        assert_eq!(
            clean(
                "<think>be nice</think>\n\nTina: yo\n\n\n\nsecond line",
                tina
            )
            .as_deref(),
            Some("yo\n\nsecond line")
        );
        assert_eq!(clean("  \n <think>only thoughts</think> ", tina), None);
        // Someone else's name stays: only the persona's own is a prefix to drop.
        assert_eq!(clean("Dave: hi", tina).as_deref(), Some("Dave: hi"));
        let long = "This is a sentence. ".repeat(60);
        let cut = clean(&long, tina).unwrap();
        assert!(cut.chars().count() <= MAX_REPLY_CHARS);
        assert!(cut.ends_with(".…"), "{cut}");
        let words = "word ".repeat(300);
        assert!(clean(&words, tina).unwrap().ends_with("word…"));
    }

    fn brain_for(url: &str, clock: Arc<ManualClock>, timeout: Duration) -> Brain {
        let provider = Arc::new(OpenAiCompatible::new(url, "m", None, 50));
        Brain::new(
            Some(provider),
            Breaker::new(3, Duration::from_secs(30), clock),
            2,
            timeout,
        )
    }

    fn say() -> Vec<Turn> {
        vec![Turn {
            role: "user",
            content: "Ann: hi".into(),
        }]
    }

    #[tokio::test]
    async fn the_breaker_opens_falls_back_probes_and_closes() {
        let tina = personas::by_handle("tina_pet").unwrap();
        let model = StandIn::start(Answer::status(500)).await.unwrap();
        let clock = Arc::new(ManualClock::default());
        let brain = brain_for(&model.url, clock.clone(), Duration::from_secs(5));

        // Three failures: each answered offline, with the persona's note about it.
        for _ in 0..3 {
            let r = brain.reply(tina, 1, 7, "hi", &say()).await;
            assert!(matches!(r, Reply::Fallback(_)), "{r:?}");
            assert!(tina.glitch.iter().any(|g| r.text().starts_with(g)));
        }
        assert_eq!(brain.breaker.state(), "open");
        assert_eq!(model.requests(), 3);
        // Open: the offline engine answers and the model is not asked.
        let r = brain.reply(tina, 1, 7, "hi", &say()).await;
        assert!(matches!(r, Reply::Offline(_)), "{r:?}");
        assert_eq!(model.requests(), 3);

        // The model recovers; after the cooldown one probe goes through and closes it.
        model.set(Answer::streaming(&["Tamagotchi Tina: ", "hi!! ^_^"]));
        clock.advance(Duration::from_secs(29));
        assert!(matches!(
            brain.reply(tina, 1, 7, "hi", &say()).await,
            Reply::Offline(_)
        ));
        clock.advance(Duration::from_secs(1));
        let r = brain.reply(tina, 1, 7, "hi", &say()).await;
        assert_eq!(r, Reply::Model("hi!! ^_^".into()));
        assert_eq!(brain.breaker.state(), "closed");
        assert_eq!(model.requests(), 4);
    }

    #[tokio::test]
    async fn a_model_that_takes_too_long_is_cut_off_and_counted_as_a_failure() {
        let dave = personas::by_handle("dialup_dave").unwrap();
        let mut slow = Answer::streaming(&["too late"]);
        slow.pause = Duration::from_secs(30);
        let model = StandIn::start(slow).await.unwrap();
        let brain = brain_for(
            &model.url,
            Arc::new(ManualClock::default()),
            Duration::from_millis(300),
        );
        let r = brain.reply(dave, 2, 8, "are you there?", &say()).await;
        assert!(matches!(r, Reply::Fallback(_)), "{r:?}");
        assert!(dave.glitch.iter().any(|g| r.text().starts_with(g)));
        assert_eq!(brain.breaker.state(), "closed", "one failure of three");
    }

    #[tokio::test]
    async fn without_a_provider_the_offline_engine_answers_in_character() {
        let brain = Brain::new(
            None,
            Breaker::new(3, Duration::from_secs(30), Arc::new(ManualClock::default())),
            1,
            Duration::from_secs(1),
        );
        let eli = personas::by_handle("emo_eli").unwrap();
        let first = brain.reply(eli, 3, 9, "hello", &[]).await;
        assert!(matches!(first, Reply::Offline(_)));
        assert!(eli.greetings.iter().any(|g| first.text().contains(g)));
        let second = brain.reply(eli, 3, 9, "hello", &[]).await;
        assert_ne!(first, second, "it varies its answers");
    }

    #[test]
    fn every_persona_has_its_own_picture() {
        let mut seen = std::collections::HashSet::new();
        for p in personas::ALL {
            let png = draw_picture(p).unwrap();
            let img = image::load_from_memory(&png).unwrap();
            assert_eq!(img.width(), crate::protocol::PICTURE_SIZE);
            assert!(seen.insert(png), "{} looks like another persona", p.handle);
        }
    }
}
