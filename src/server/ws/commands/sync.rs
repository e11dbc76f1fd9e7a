//! `sync`: replays every stored message after `after` (and after where the user's view
//! starts), then `synced`, then the conversation is live on this connection. A cursor that
//! does not fit the stored history (taken under another epoch, or beyond the last message)
//! gets `reset` and the conversation's recent history instead: replaying after it would
//! skip messages that reuse the numbers the client already holds.

use super::Conn;
use crate::protocol::{ServerFrame, HISTORY_PAGE_MAX};
use crate::server::{hub::encode, ws::mailbox::Cursor};

pub(super) async fn apply(
    conn: &mut Conn,
    conv: i64,
    after: i64,
    epoch: Option<String>,
) -> anyhow::Result<()> {
    if !conn.is_member(conv) {
        return Ok(conn.not_member(conv, None).await?);
    }
    // Nothing from before the user was invited in.
    let floor = conn.joined.get(&conv).map_or(0, |j| j.floor);
    // Live messages wait in the mailbox from here: one committed after the store is read
    // below is sent after the replay.
    conn.set_cursor(conv, Cursor::Syncing, None);
    let mut after = after.max(floor);
    let other_epoch = epoch.is_some_and(|e| e != conn.state.store.epoch());
    let last = conn.state.chat.last_seq(conv).await?;
    if other_epoch || after > last {
        if !other_epoch {
            // The client holds messages this store does not: they were lost here, or the
            // client is wrong. Not a reason to change the epoch (any client could claim
            // any cursor), but an operator must hear of it.
            conn.state.store.count_regression();
            tracing::error!(
                user = conn.me().id,
                conv,
                cursor = after,
                last_seq = last,
                "a client's cursor is beyond the conversation's last message: messages it \
                 was sent are missing from the store (see docs/OPERATIONS.md); it gets the \
                 conversation afresh"
            );
        }
        after = floor.max(last - i64::from(HISTORY_PAGE_MAX));
        conn.mailbox
            .queue_text(encode(&ServerFrame::Reset { conv, after }).as_bytes());
    }
    let last = conn.replay(conv, after, i64::MAX).await?;
    let synced = encode(&ServerFrame::Synced {
        conv,
        last_seq: last,
    });
    conn.set_cursor(conv, Cursor::Live { last_sent: last }, Some(&synced));
    conn.settle().await?;
    Ok(())
}
