//! The contact list: requests, acceptance, removal, blocking and contact groups. Every change
//! is stored first, then told to the open sockets of both sides through the presence
//! publisher, which always sends the state as it is when it handles the event.

use super::{
    error::{AppError, Result},
    presence::{Event, PresenceHub},
    store::{ContactStore, GroupChange, ProfileStore, Requested, UserStore},
    text,
};
use crate::protocol::{http::ContactList, Contact, ContactGroup, MAX_GROUPS, MAX_GROUP_NAME_CHARS};
use std::sync::Arc;

pub struct Contacts {
    pub store: Arc<dyn ContactStore>,
    pub users: Arc<dyn UserStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub presence: Arc<PresenceHub>,
}

impl Contacts {
    /// The contact list of `user` with the presence they may see.
    pub async fn list(&self, user: i64) -> Result<ContactList> {
        let rows = self.store.contacts_of(user).await?;
        Ok(ContactList {
            contacts: rows
                .into_iter()
                .map(|r| self.presence.contact_view(r))
                .collect(),
            groups: self.store.groups_of(user).await?,
        })
    }

    /// `owner`'s entry for `other`, or 404 when there is none.
    async fn view(&self, owner: i64, other: i64) -> Result<Contact> {
        self.store
            .contact_of(owner, other)
            .await?
            .map(|row| self.presence.contact_view(row))
            .ok_or_else(|| AppError::NotFound("That user is not in your contact list.".into()))
    }

    /// Asks a user to be a contact (or accepts, if they asked first). A request to someone
    /// who has blocked the asker is stored like any other but never shown to them: the asker
    /// cannot tell a block from an unanswered request.
    pub async fn add(&self, me: i64, username: &str) -> Result<Contact> {
        let username = username.trim();
        if username.is_empty() {
            return Err(AppError::Invalid(
                "Type the username of the person to add.".into(),
            ));
        }
        let other = self
            .users
            .user_by_username(username)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("There is no user called {username:?}.")))?
            .summary;
        if other.id == me {
            return Err(AppError::Invalid("You cannot add yourself.".into()));
        }
        if self.presence.blocked(me, other.id) {
            return Err(AppError::Conflict(format!(
                "You have blocked {}; unblock them first.",
                other.display_name
            )));
        }
        if self.store.request_contact(me, other.id).await? != Requested::Unchanged {
            // An AI contact says yes to everyone, at once.
            if other.is_bot {
                self.store.accept_contact(other.id, me).await?;
            }
            self.presence.emit(Event::Related(me, other.id));
        }
        self.view(me, other.id).await
    }

    /// Accepts the request of `other`: both are contacts now.
    pub async fn accept(&self, me: i64, other: i64) -> Result<Contact> {
        if self.presence.blocked(me, other) || !self.store.accept_contact(me, other).await? {
            return Err(AppError::NotFound(
                "There is no request from that user.".into(),
            ));
        }
        self.presence.emit(Event::Related(me, other));
        self.view(me, other).await
    }

    /// Declines the request of `other`.
    pub async fn decline(&self, me: i64, other: i64) -> Result<()> {
        if !self.store.remove_contact(me, other, true).await? {
            return Err(AppError::NotFound(
                "There is no request from that user.".into(),
            ));
        }
        self.presence.emit(Event::Related(me, other));
        Ok(())
    }

    /// Removes a contact (or withdraws a request) on both sides.
    pub async fn remove(&self, me: i64, other: i64) -> Result<()> {
        if !self.store.remove_contact(me, other, false).await? {
            return Err(AppError::NotFound(
                "That user is not in your contact list.".into(),
            ));
        }
        self.presence.emit(Event::Related(me, other));
        Ok(())
    }

    /// Blocks or unblocks `other`; the entry as it is now.
    pub async fn set_block(&self, me: i64, other: i64, on: bool) -> Result<Contact> {
        if other == me {
            return Err(AppError::Invalid("You cannot block yourself.".into()));
        }
        if self.profiles.profile(other).await?.is_none() {
            return Err(AppError::NotFound("There is no such user.".into()));
        }
        if self.store.set_block(me, other, on).await? {
            self.presence.set_blocked(me, other, on);
            self.presence.emit(Event::Related(me, other));
        }
        match self.store.contact_of(me, other).await? {
            Some(row) => Ok(self.presence.contact_view(row)),
            // Unblocked someone who was not a contact: nothing left to show.
            None => Err(AppError::NotFound(
                "That user is no longer in your contact list.".into(),
            )),
        }
    }

    /// Moves a contact into one of the user's groups (None: out of any group).
    pub async fn move_to_group(&self, me: i64, other: i64, group: Option<i64>) -> Result<Contact> {
        if !self.store.set_contact_group(me, other, group).await? {
            return Err(AppError::NotFound(
                "No such contact or group in your list.".into(),
            ));
        }
        self.presence.emit(Event::Related(me, other));
        self.view(me, other).await
    }

    pub async fn create_group(&self, me: i64, name: &str) -> Result<ContactGroup> {
        let name = text::line(name, "group name", MAX_GROUP_NAME_CHARS, false)?;
        let id = group_result(self.store.create_group(me, &name, MAX_GROUPS).await?, &name)?;
        self.presence.emit(Event::Groups(me));
        Ok(ContactGroup { id, name })
    }

    pub async fn rename_group(&self, me: i64, id: i64, name: &str) -> Result<ContactGroup> {
        let name = text::line(name, "group name", MAX_GROUP_NAME_CHARS, false)?;
        group_result(self.store.rename_group(me, id, &name).await?, &name)?;
        self.presence.emit(Event::Groups(me));
        Ok(ContactGroup { id, name })
    }

    /// Deletes a group; its contacts stay in the list, in no group.
    pub async fn delete_group(&self, me: i64, id: i64) -> Result<()> {
        if !self.store.delete_group(me, id).await? {
            return Err(AppError::NotFound("There is no such group.".into()));
        }
        self.presence.emit(Event::Groups(me));
        // The contacts that were in it are now in no group.
        for row in self.store.contacts_of(me).await? {
            if row.group.is_none() && row.state.is_some() {
                self.presence.emit(Event::Related(me, row.user.id));
            }
        }
        Ok(())
    }
}

fn group_result(change: GroupChange, name: &str) -> Result<i64> {
    match change {
        GroupChange::Done(id) => Ok(id),
        GroupChange::NameTaken => Err(AppError::Conflict(format!(
            "You already have a group called {name:?}."
        ))),
        GroupChange::NotFound => Err(AppError::NotFound("There is no such group.".into())),
        GroupChange::TooMany => Err(AppError::Conflict(format!(
            "You can have at most {MAX_GROUPS} groups."
        ))),
    }
}
