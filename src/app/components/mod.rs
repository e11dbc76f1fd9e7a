//! The island's parts: the user's card, the contact list, conversation windows, and the
//! toasts and dialogs. Each reads what it shows from the state and calls `actions` when the
//! user acts.

pub mod card;
pub mod contacts;
pub mod conversation;
pub mod dialogs;
pub mod files;
