//! What a page keeps across a reload, in the tab's session storage and per user: which
//! conversation windows are open (in order), where each was dragged and how large it was
//! made, and the drafts not sent yet. It stays in the browser, and ends with the tab.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a conversation window was moved (from where the layout puts it) and its size
/// (0: as the layout makes it), in CSS pixels.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// What is kept for one user.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub open: Vec<i64>,
    pub drafts: HashMap<i64, String>,
    pub geometry: HashMap<i64, Geometry>,
}

fn key(user: i64) -> String {
    format!("messenger.windows.{user}")
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// What this tab kept for `user` (nothing, if it kept nothing or cannot read it).
pub fn load(user: i64) -> Kept {
    storage()
        .and_then(|s| s.get_item(&key(user)).ok().flatten())
        .and_then(|text| serde_json::from_slice(text.as_bytes()).ok())
        .unwrap_or_default()
}

/// Keeps `kept` for `user` (drafts that are only blanks are left out).
pub fn save(user: i64, kept: &Kept) {
    let Some(storage) = storage() else {
        return;
    };
    let drafts = kept
        .drafts
        .iter()
        .filter(|(_, d)| !d.trim().is_empty())
        .map(|(c, d)| (*c, d.clone()))
        .collect();
    let trimmed = Kept {
        open: kept.open.clone(),
        drafts,
        geometry: kept.geometry.clone(),
    };
    if let Ok(text) = serde_json::to_string(&trimmed) {
        let _ = storage.set_item(&key(user), &text);
    }
}
