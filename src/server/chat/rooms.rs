//! Public rooms as administrators keep them (the admin console's rooms page): adding,
//! retitling, archiving and restoring. Members who are online learn of a change at once:
//! a new title reaches their windows and lists, an archived room leaves them (their sockets
//! stop taking sends to it: a socket sends only to conversations it holds), a restored one
//! comes back. An archived room keeps its history; nobody can join it or write in it.

use super::Chat;
use crate::protocol::{ServerFrame, MAX_ROOM_TITLE};
use crate::server::{
    error::{AppError, Result},
    hub::Control,
    store::RoomListing,
};

/// Most rooms the console lists at once.
pub const ROOM_LIST_MAX: i64 = 200;

impl Chat {
    /// Rooms whose title contains `search` (archived ones too), by id.
    pub async fn rooms_for_admin(&self, search: &str) -> Result<Vec<RoomListing>> {
        Ok(self.convs.list_rooms(search.trim(), ROOM_LIST_MAX).await?)
    }

    /// Adds a public room; its id and title (trimmed, 1 to 64 characters).
    pub async fn add_room(&self, title: &str) -> Result<(i64, String)> {
        let title = room_title(title)?;
        let id = self
            .convs
            .add_rooms(std::slice::from_ref(&title))
            .await?
            .first()
            .copied()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no room was added")))?;
        tracing::info!(room = id, "room added");
        Ok((id, title))
    }

    /// Retitles a public room; its members online see the new title at once.
    pub async fn rename_room(&self, room: i64, title: &str) -> Result<String> {
        let title = room_title(title)?;
        let members = self
            .convs
            .rename_room(room, &title)
            .await?
            .ok_or_else(no_room)?;
        let frame = ServerFrame::Retitled {
            conv: room,
            title: title.clone(),
        };
        for user in members {
            self.fanout.notify_user(user, Control::frame(&frame));
        }
        tracing::info!(room, "room retitled");
        Ok(title)
    }

    /// Archives a room (`archived`) or restores it. Archived, it leaves every list and its
    /// members' open windows; restored, it comes back to them as it was.
    pub async fn archive_room(&self, room: i64, archived: bool) -> Result<()> {
        let members = self
            .convs
            .set_room_archived(room, archived)
            .await?
            .ok_or_else(no_room)?;
        for user in members {
            if archived {
                self.fanout.notify_user(user, Control::Removed(room));
            } else if let Some(summary) = self.convs.conversation_for_member(room, user).await? {
                self.fanout
                    .notify_user(user, Control::Added(Box::new(summary)));
            }
        }
        tracing::info!(room, archived, "room archived or restored");
        Ok(())
    }
}

fn no_room() -> AppError {
    AppError::NotFound("There is no such room.".into())
}

/// One room title, checked as `messenger rooms add` checks it.
fn room_title(raw: &str) -> Result<String> {
    crate::server::text::line(raw, "room title", MAX_ROOM_TITLE, false)
        .map_err(|e| AppError::Invalid(e.0))
}
