//! `sync`: replays every stored message after `after` (and after where the user's view
//! starts), then `synced`, then the conversation is live on this connection.

use super::Conn;
use crate::protocol::ServerFrame;
use crate::server::{hub::encode, ws::mailbox::Cursor};

pub(super) async fn apply(conn: &mut Conn, conv: i64, after: i64) -> anyhow::Result<()> {
    if !conn.is_member(conv) {
        return Ok(conn.not_member(conv, None).await?);
    }
    // Nothing from before the user was invited in.
    let floor = conn.joined.get(&conv).map_or(0, |j| j.floor);
    // Live messages wait in the mailbox from here: one committed after the store is read
    // below is sent after the replay.
    conn.set_cursor(conv, Cursor::Syncing, None);
    let last = conn.replay(conv, after.max(floor), i64::MAX).await?;
    let synced = encode(&ServerFrame::Synced {
        conv,
        last_seq: last,
    });
    conn.set_cursor(conv, Cursor::Live { last_sent: last }, Some(&synced));
    conn.mailbox.flush().await?;
    Ok(())
}
