//! What a page keeps across a reload, in the tab's session storage and per user: which
//! conversation windows are open (in order), where each was dragged and how large it was
//! made, and the drafts not sent yet. It stays in the browser, and ends with the tab.
//!
//! Plain strings, not JSON: serde's code for these types cost the islands' bundle more
//! than the few lines that read and write them here. `messenger.windows.<user>` holds the
//! open windows (`7,12`), `messenger.geometry.<user>` their places (`7:120:40:0:0;...`),
//! and each draft has a key of its own, `messenger.draft.<user>.<conversation>`, holding
//! its text as typed.

use std::collections::HashMap;

/// Where a conversation window was moved (from where the layout puts it) and its size
/// (0: as the layout makes it), in CSS pixels.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// What is kept for one user.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Kept {
    pub open: Vec<i64>,
    pub drafts: HashMap<i64, String>,
    pub geometry: HashMap<i64, Geometry>,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

fn draft_prefix(user: i64) -> String {
    format!("messenger.draft.{user}.")
}

/// What this tab kept for `user` (nothing, if it kept nothing or cannot read it).
pub fn load(user: i64) -> Kept {
    let mut kept = Kept::default();
    let Some(storage) = storage() else {
        return kept;
    };
    let get = |key: String| storage.get_item(&key).ok().flatten().unwrap_or_default();
    kept.open = get(format!("messenger.windows.{user}"))
        .split(',')
        .filter_map(|id| id.parse().ok())
        .collect();
    for entry in get(format!("messenger.geometry.{user}")).split(';') {
        let n: Vec<i64> = entry.split(':').filter_map(|v| v.parse().ok()).collect();
        if let [id, x, y, w, h] = n[..] {
            let g = Geometry {
                x: x as i32,
                y: y as i32,
                w: w as i32,
                h: h as i32,
            };
            kept.geometry.insert(id, g);
        }
    }
    let prefix = draft_prefix(user);
    let count = storage.length().unwrap_or(0);
    for i in 0..count {
        let Some(key) = storage.key(i).ok().flatten() else {
            continue;
        };
        if let Some(conv) = key.strip_prefix(&prefix).and_then(|c| c.parse().ok()) {
            kept.drafts.insert(conv, get(key));
        }
    }
    kept
}

/// Keeps `kept` for `user` (drafts that are only blanks are dropped).
pub fn save(user: i64, kept: &Kept) {
    let Some(storage) = storage() else {
        return;
    };
    let open: Vec<String> = kept.open.iter().map(i64::to_string).collect();
    let _ = storage.set_item(&format!("messenger.windows.{user}"), &open.join(","));
    let places: Vec<String> = kept
        .geometry
        .iter()
        .map(|(id, g)| format!("{id}:{}:{}:{}:{}", g.x, g.y, g.w, g.h))
        .collect();
    let _ = storage.set_item(&format!("messenger.geometry.{user}"), &places.join(";"));
    // Drafts: set the ones with text, remove the others this user had.
    let prefix = draft_prefix(user);
    let mut stale = Vec::new();
    for i in 0..storage.length().unwrap_or(0) {
        if let Some(key) = storage.key(i).ok().flatten() {
            if let Some(conv) = key
                .strip_prefix(&prefix)
                .and_then(|c| c.parse::<i64>().ok())
            {
                if kept.drafts.get(&conv).is_none_or(|d| d.trim().is_empty()) {
                    stale.push(key);
                }
            }
        }
    }
    for key in stale {
        let _ = storage.remove_item(&key);
    }
    for (conv, draft) in &kept.drafts {
        if !draft.trim().is_empty() {
            let _ = storage.set_item(&format!("{prefix}{conv}"), draft);
        }
    }
}
