//! Group conversations by invitation: start one with some contacts, invite more (a
//! one-to-one conversation grows into a new group with the two of you and the guest), leave.
//!
//! Joins and leaves are messages of the conversation (kinds `join` and `leave`), committed by
//! the writer like any other, so every member sees them in order with the rest, live and in
//! history. Someone invited in sees the conversation from their arrival on.
//!
//! Who may be invited: an accepted contact of the inviter who has not blocked them and whom
//! they have not blocked. Inside a group a block does not silence anyone (everyone hears
//! everyone, as in a room); it only stops the two from inviting each other.

use super::{
    api::summary_for,
    error::{AppError, Result},
    hub::Control,
    state::AppState,
    store::{self, AddMember},
    writer::{Content, NewMessage},
};
use crate::protocol::{
    ClientId, ContactState, ConversationKind, ConversationSummary, UserSummary, MAX_GROUP_MEMBERS,
};
use rand::Rng;

/// Starts a group conversation of `me` and `others` (1 to [`MAX_GROUP_MEMBERS`] - 1 of
/// their contacts); everyone's open tabs learn of it, and it opens with a join line for each
/// invited member.
pub async fn start_group(
    state: &AppState,
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
        guests.push(invitable(state, me.id, user).await?);
    }
    let mut members = vec![me.id];
    members.extend(&invited);
    let conv = store::create_group_conversation(state.store.pool(), &members).await?;
    for &user in &members {
        announce_added(state, conv, user).await?;
    }
    for guest in &guests {
        joined(state, conv, guest, &me.display_name).await?;
    }
    summary_for(state, conv, me.id).await
}

/// Invites `user` into `conv`. In a group it adds them; in a one-to-one conversation it
/// starts a new group of its two members and `user` (the one-to-one conversation stays as
/// it is). Returns the group as the inviter sees it.
pub async fn invite(
    state: &AppState,
    me: &UserSummary,
    conv: i64,
    user: i64,
) -> Result<ConversationSummary> {
    let pool = state.store.pool();
    let not_member = || AppError::Forbidden("You are not in that conversation.".into());
    store::member_view(pool, conv, me.id)
        .await?
        .ok_or_else(not_member)?;
    let (kind, _) = store::conversation_kind(pool, conv)
        .await?
        .ok_or_else(not_member)?;
    match kind {
        ConversationKind::Room => Err(AppError::Invalid(
            "Rooms are public: tell them the room's name instead.".into(),
        )),
        ConversationKind::Dm => {
            let summary = summary_for(state, conv, me.id).await?;
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
            start_group(state, me, &others).await
        }
        ConversationKind::Group => {
            let guest = invitable(state, me.id, user).await?;
            match store::add_group_member(pool, conv, user, MAX_GROUP_MEMBERS).await? {
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
            announce_added(state, conv, user).await?;
            joined(state, conv, &guest, &me.display_name).await?;
            summary_for(state, conv, me.id).await
        }
    }
}

/// Takes `me` out of a group conversation: the others see "<name> has left", and every tab
/// of `me` forgets the conversation.
pub async fn leave(state: &AppState, me: &UserSummary, conv: i64) -> Result<()> {
    let pool = state.store.pool();
    let not_member = || AppError::Forbidden("You are not in that conversation.".into());
    store::member_view(pool, conv, me.id)
        .await?
        .ok_or_else(not_member)?;
    match store::conversation_kind(pool, conv).await? {
        Some((ConversationKind::Group, _)) => {}
        Some(_) => {
            return Err(AppError::Invalid(
                "Only group conversations can be left; close the window instead.".into(),
            ))
        }
        None => return Err(not_member()),
    }
    let name = current_name(state, me).await?;
    // The line first, while they are still a member; then they are out.
    commit(state, conv, me.id, name, "leave", Content::Leave).await?;
    store::remove_member(pool, conv, me.id).await?;
    state.hub.notify_user(me.id, Control::Removed(conv));
    tracing::info!(user = me.id, conv, "left a group conversation");
    Ok(())
}

/// The user `user` as `inviter` may invite them, or why not.
async fn invitable(state: &AppState, inviter: i64, user: i64) -> Result<UserSummary> {
    let row = store::contact_of(state.store.pool(), inviter, user).await?;
    match row {
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
async fn announce_added(state: &AppState, conv: i64, user: i64) -> Result<()> {
    let summary = summary_for(state, conv, user).await?;
    state
        .hub
        .notify_user(user, Control::Added(Box::new(summary)));
    Ok(())
}

/// Commits "<guest> has joined the conversation" (invited by `inviter`).
async fn joined(state: &AppState, conv: i64, guest: &UserSummary, inviter: &str) -> Result<()> {
    if guest.is_bot {
        // Before anything is said after the invitation, the bots know they are here.
        if let Some(bots) = state.bots.as_ref() {
            bots.refresh(state.store.pool(), conv).await?;
        }
    }
    let name = current_name(state, guest).await?;
    commit(
        state,
        conv,
        guest.id,
        name,
        "join",
        Content::Join(inviter.to_owned()),
    )
    .await
}

/// The user's display name as it is now (the session's copy may be older).
async fn current_name(state: &AppState, user: &UserSummary) -> Result<String> {
    Ok(store::profile(state.store.pool(), user.id)
        .await?
        .map_or_else(|| user.display_name.clone(), |p| p.display_name))
}

/// Hands a membership line to the writer and waits until it is committed.
async fn commit(
    state: &AppState,
    conv: i64,
    sender: i64,
    sender_name: String,
    tag: &str,
    content: Content,
) -> Result<()> {
    let nonce: u64 = rand::thread_rng().gen();
    let client_id = ClientId::parse(&format!("{tag}-{nonce:016x}"))
        .map_err(|e| AppError::Internal(anyhow::anyhow!(e.0)))?;
    let msg = NewMessage {
        conv,
        sender,
        sender_name,
        client_id,
        content,
    };
    let failed = || AppError::Internal(anyhow::anyhow!("the writer refused a membership line"));
    let rx = state.writer.submit(msg).await.map_err(|_| failed())?;
    rx.await.map_err(|_| failed())?.map_err(|_| failed())?;
    Ok(())
}
