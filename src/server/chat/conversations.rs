//! Starting and finding conversations: one-to-one (one per pair), public rooms, and group
//! conversations by invitation; history pages.
//!
//! Joins and leaves of a group are messages of the conversation (kinds `join` and `leave`),
//! posted like any other, so every member sees them in order with the rest, live and in
//! history. Someone invited in sees the conversation from their arrival on.
//!
//! Who may be invited: an accepted contact of the inviter who has not blocked them and whom
//! they have not blocked. Inside a group a block does not silence anyone (everyone hears
//! everyone, as in a room); it only stops the two from inviting each other.

use super::{Author, Chat};
use crate::protocol::{
    ClientId, ContactState, ConversationKind, ConversationSummary, HistoryPage, RoomPage,
    RoomSummary, UserSummary, HISTORY_PAGE_MAX, MAX_GROUP_MEMBERS, ROOM_PAGE_MAX,
};
use crate::server::{
    error::{AppError, Result},
    hub::Control,
    store::{AddMember, Content},
};
use rand::Rng;

/// Most messages one history page holds when the caller does not say.
const HISTORY_PAGE_DEFAULT: u32 = 50;
/// Longest search of the room directory, in characters.
const ROOM_SEARCH_MAX: usize = 64;

impl Chat {
    /// Every conversation `user` belongs to (for `hello`).
    pub async fn conversations_of(&self, user: i64) -> Result<Vec<ConversationSummary>> {
        Ok(self.convs.conversations_for_user(user).await?)
    }

    /// The rooms `user` joined and the first others, and how many rooms exist (for `hello`).
    pub async fn rooms_for(&self, user: i64) -> Result<(Vec<RoomSummary>, i64)> {
        let rooms = self.convs.rooms_for_user(user).await?;
        Ok((rooms, self.convs.count_rooms().await?))
    }

    /// `conv` as `user` sees it; 404 if they are not in it.
    pub async fn summary_for(&self, conv: i64, user: i64) -> Result<ConversationSummary> {
        self.convs
            .conversation_for_member(conv, user)
            .await?
            .ok_or_else(|| AppError::NotFound("That conversation does not exist.".into()))
    }

    /// Finds or starts the one-to-one conversation of `me` with `username`; when it is new,
    /// both users' open connections learn of it.
    pub async fn open_dm(&self, me: &UserSummary, username: &str) -> Result<ConversationSummary> {
        let username = username.trim();
        let other = self
            .contacts_user(username)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("There is no user called {username:?}.")))?;
        if other.id == me.id {
            return Err(AppError::Invalid(
                "That is you; pick someone else to talk to.".into(),
            ));
        }
        let (conv, created) = self.convs.get_or_create_dm(me.id, other.id).await?;
        if created && other.is_bot {
            if let Some(watch) = &self.watch {
                watch.members_changed(conv).await?;
            }
        }
        let mine = self.summary_for(conv, me.id).await?;
        if created {
            self.fanout
                .notify_user(me.id, Control::Added(Box::new(mine.clone())));
            let theirs = self.summary_for(conv, other.id).await?;
            self.fanout
                .notify_user(other.id, Control::Added(Box::new(theirs)));
        }
        Ok(mine)
    }

    async fn contacts_user(&self, username: &str) -> Result<Option<UserSummary>> {
        Ok(self
            .users
            .user_by_username(username)
            .await?
            .map(|row| row.summary))
    }

    /// Joins a public room; the user's open connections learn of it.
    /// Who is in a room, for one of its members (others get 404, as for its messages).
    pub async fn room_members(
        &self,
        me: &UserSummary,
        room: i64,
    ) -> Result<crate::protocol::http::RoomMembers> {
        let is_room = matches!(
            self.convs.conversation_kind(room).await?,
            Some((ConversationKind::Room, _))
        );
        if !is_room || self.convs.member_view(room, me.id).await?.is_none() {
            return Err(AppError::NotFound("You are not in that room.".into()));
        }
        let shown = crate::protocol::http::ROOM_MEMBERS_SHOWN;
        let (count, members) = self.convs.members_page(room, shown).await?;
        Ok(crate::protocol::http::RoomMembers { count, members })
    }

    pub async fn join_room(&self, me: &UserSummary, room: i64) -> Result<ConversationSummary> {
        match self.convs.join_room(room, me.id).await? {
            None => Err(AppError::NotFound(
                "There is no such room (or it was archived).".into(),
            )),
            Some(newly) => {
                let summary = self.summary_for(room, me.id).await?;
                if newly {
                    self.fanout
                        .notify_user(me.id, Control::Added(Box::new(summary.clone())));
                }
                Ok(summary)
            }
        }
    }

    /// A page of the room directory: rooms with ids above `after` whose title contains
    /// `search`.
    pub async fn room_page(
        &self,
        me: i64,
        after: i64,
        search: &str,
        limit: Option<i64>,
    ) -> Result<RoomPage> {
        let limit = limit.unwrap_or(100).clamp(1, ROOM_PAGE_MAX);
        let search = search.trim();
        if search.chars().count() > ROOM_SEARCH_MAX {
            return Err(AppError::Invalid(format!(
                "Search for at most {ROOM_SEARCH_MAX} characters of a room's title."
            )));
        }
        let (rooms, has_more) = self.convs.room_page(me, after, search, limit).await?;
        Ok(RoomPage { rooms, has_more })
    }

    /// One page of a conversation's history before `before` (or the newest), members only,
    /// from where their view starts.
    pub async fn history_page(
        &self,
        user: i64,
        conv: i64,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<HistoryPage> {
        let Some(floor) = self.convs.member_view(conv, user).await? else {
            return Err(AppError::Forbidden(
                "You are not in that conversation.".into(),
            ));
        };
        let limit = limit
            .unwrap_or(HISTORY_PAGE_DEFAULT)
            .clamp(1, HISTORY_PAGE_MAX);
        let expired_before = self.convs.expired_before(conv).await?;
        let (messages, has_more) = self
            .messages
            .messages_before(conv, floor.max(expired_before - 1), before, limit)
            .await?;
        Ok(HistoryPage {
            messages,
            has_more,
            expired_before,
        })
    }

    /// What an AI contact may pass to its model: the newest messages before `before` that
    /// the bot can read and that every human member can read too, since all of them read
    /// its answer (a late invitee must not learn from the bot what was said before them).
    pub async fn context_for_bot(
        &self,
        bot: i64,
        conv: i64,
        before: i64,
        limit: u32,
    ) -> Result<Vec<crate::protocol::MessageView>> {
        let Some(own) = self.convs.member_view(conv, bot).await? else {
            return Err(AppError::Forbidden(
                "You are not in that conversation.".into(),
            ));
        };
        let floor = own.max(self.convs.shared_view(conv).await?);
        let (messages, _) = self
            .messages
            .messages_before(conv, floor, Some(before), limit)
            .await?;
        Ok(messages)
    }

    /// Starts a group conversation of `me` and `others` (1 to [`MAX_GROUP_MEMBERS`] - 1 of
    /// their contacts); everyone's open tabs learn of it, and it opens with a join line for
    /// each invited member.
    pub async fn start_group(
        &self,
        me: &UserSummary,
        others: &[i64],
    ) -> Result<ConversationSummary> {
        let mut invited: Vec<i64> = Vec::with_capacity(others.len());
        for &o in others {
            if o != me.id && !invited.contains(&o) {
                invited.push(o);
            }
        }
        if invited.is_empty() {
            return Err(AppError::Invalid(
                "Choose at least one contact to invite.".into(),
            ));
        }
        if invited.len() + 1 > MAX_GROUP_MEMBERS {
            return Err(AppError::Conflict(format!(
                "A group conversation can have at most {MAX_GROUP_MEMBERS} members."
            )));
        }
        let mut guests = Vec::with_capacity(invited.len());
        for &user in &invited {
            guests.push(self.invitable(me.id, user).await?);
        }
        let mut members = vec![me.id];
        members.extend(&invited);
        let conv = self.convs.create_group_conversation(&members).await?;
        for &user in &members {
            self.announce_added(conv, user).await?;
        }
        for guest in &guests {
            self.joined(conv, guest, &me.display_name).await?;
        }
        self.summary_for(conv, me.id).await
    }

    /// Invites `user` into `conv`. In a group it adds them; in a one-to-one conversation it
    /// starts a new group of its two members and `user` (the one-to-one conversation stays as
    /// it is). Returns the group as the inviter sees it.
    pub async fn invite(
        &self,
        me: &UserSummary,
        conv: i64,
        user: i64,
    ) -> Result<ConversationSummary> {
        let not_member = || AppError::Forbidden("You are not in that conversation.".into());
        self.convs
            .member_view(conv, me.id)
            .await?
            .ok_or_else(not_member)?;
        let (kind, _) = self
            .convs
            .conversation_kind(conv)
            .await?
            .ok_or_else(not_member)?;
        match kind {
            ConversationKind::Room => Err(AppError::Invalid(
                "Rooms are public: tell them the room's name instead.".into(),
            )),
            ConversationKind::Dm => {
                let summary = self.summary_for(conv, me.id).await?;
                let mut others: Vec<i64> = summary
                    .members
                    .iter()
                    .map(|m| m.id)
                    .filter(|&id| id != me.id)
                    .collect();
                if others.contains(&user) {
                    return Err(AppError::Conflict(
                        "They are already in this conversation.".into(),
                    ));
                }
                others.push(user);
                self.start_group(me, &others).await
            }
            ConversationKind::Group => {
                let guest = self.invitable(me.id, user).await?;
                match self
                    .convs
                    .add_group_member(conv, user, MAX_GROUP_MEMBERS)
                    .await?
                {
                    AddMember::Added => {}
                    AddMember::AlreadyMember => {
                        return Err(AppError::Conflict(format!(
                            "{} is already in this conversation.",
                            guest.display_name
                        )))
                    }
                    AddMember::Full => {
                        return Err(AppError::Conflict(format!(
                            "A group conversation can have at most {MAX_GROUP_MEMBERS} members."
                        )))
                    }
                    AddMember::NotAGroup => return Err(not_member()),
                }
                self.announce_added(conv, user).await?;
                self.joined(conv, &guest, &me.display_name).await?;
                self.summary_for(conv, me.id).await
            }
        }
    }

    /// Takes `me` out of a group conversation: the others see "<name> has left", and every
    /// tab of `me` forgets the conversation.
    pub async fn leave(&self, me: &UserSummary, conv: i64) -> Result<()> {
        let not_member = || AppError::Forbidden("You are not in that conversation.".into());
        self.convs
            .member_view(conv, me.id)
            .await?
            .ok_or_else(not_member)?;
        match self.convs.conversation_kind(conv).await? {
            Some((ConversationKind::Group, _)) => {}
            Some(_) => {
                return Err(AppError::Invalid(
                    "Only group conversations can be left; close the window instead.".into(),
                ))
            }
            None => return Err(not_member()),
        }
        let name = self.current_name(me).await?;
        // The line first, while they are still a member; then they are out.
        self.system_line(conv, me.id, &name, "leave", Content::Leave)
            .await?;
        self.convs.remove_member(conv, me.id).await?;
        self.fanout.notify_user(me.id, Control::Removed(conv));
        tracing::info!(user = me.id, conv, "left a group conversation");
        Ok(())
    }

    /// Removes a conversation from `me`'s list: a group is left (as `leave`); a one-to-one
    /// conversation is cleared on their side only (what was said before stays the other
    /// person's), and comes back when a new message does. Where their view now starts
    /// (0 for a group, which they are out of).
    pub async fn forget(&self, me: &UserSummary, conv: i64) -> Result<i64> {
        match self.convs.conversation_kind(conv).await? {
            Some((ConversationKind::Group, _)) => {
                self.leave(me, conv).await?;
                Ok(0)
            }
            Some((ConversationKind::Dm, _)) => {
                let after = self.convs.forget_dm(conv, me.id).await?.ok_or_else(|| {
                    AppError::Forbidden("You are not in that conversation.".into())
                })?;
                tracing::info!(user = me.id, conv, "cleared a conversation for themselves");
                Ok(after)
            }
            Some((ConversationKind::Room, _)) => Err(AppError::Invalid(
                "A room stays in the list of rooms; close its window instead.".into(),
            )),
            None => Err(AppError::Forbidden(
                "You are not in that conversation.".into(),
            )),
        }
    }

    /// The user `user` as `inviter` may invite them, or why not.
    async fn invitable(&self, inviter: i64, user: i64) -> Result<UserSummary> {
        match self.contacts.contact_of(inviter, user).await? {
            Some(r) if r.blocked => Err(AppError::Conflict(format!(
                "You have blocked {}; unblock them first.",
                r.user.display_name
            ))),
            // A block is not told apart from anything else that keeps someone out.
            Some(r) if r.state == Some(ContactState::Accepted) && !r.blocked_me => Ok(r.user),
            Some(r) if r.state == Some(ContactState::Accepted) => Err(AppError::Conflict(format!(
                "{} could not be invited.",
                r.user.display_name
            ))),
            _ => Err(AppError::Invalid(
                "You can only invite people from your contact list.".into(),
            )),
        }
    }

    /// Tells every open tab of `user` about the conversation (they subscribe to it).
    async fn announce_added(&self, conv: i64, user: i64) -> Result<()> {
        let summary = self.summary_for(conv, user).await?;
        self.fanout
            .notify_user(user, Control::Added(Box::new(summary)));
        Ok(())
    }

    /// Posts "<guest> has joined the conversation" (invited by `inviter`).
    async fn joined(&self, conv: i64, guest: &UserSummary, inviter: &str) -> Result<()> {
        if guest.is_bot {
            // Before anything is said after the invitation, the bots know they are here.
            if let Some(watch) = &self.watch {
                watch.members_changed(conv).await?;
            }
        }
        let name = self.current_name(guest).await?;
        self.system_line(
            conv,
            guest.id,
            &name,
            "join",
            Content::Join(inviter.to_owned()),
        )
        .await
    }

    /// The user's display name as it is now (the session's copy may be older).
    async fn current_name(&self, user: &UserSummary) -> Result<String> {
        Ok(self
            .profiles
            .profile(user.id)
            .await?
            .map_or_else(|| user.display_name.clone(), |p| p.display_name))
    }

    /// Posts a membership line and waits until it is committed.
    async fn system_line(
        &self,
        conv: i64,
        sender: i64,
        name: &str,
        tag: &str,
        content: Content,
    ) -> Result<()> {
        let nonce: u64 = rand::thread_rng().gen();
        let client_id = ClientId::parse(&format!("{tag}-{nonce:016x}"))
            .map_err(|e| AppError::Internal(anyhow::anyhow!(e.0)))?;
        let author = Author {
            id: sender,
            name,
            dm_peer: None,
        };
        self.post_and_wait(author, conv, client_id, content)
            .await
            .map_err(|r| {
                AppError::Internal(anyhow::anyhow!("a membership line was refused: {r:?}"))
            })?;
        Ok(())
    }
}
