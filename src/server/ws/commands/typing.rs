//! `typing`: "<name> is writing a message…", passed on to the conversation's live members
//! (never stored): at most one "typing" per second per conversation from this connection, a
//! "stopped" only after a "typing", nothing while the user appears offline, and nothing
//! through a block.

use super::Conn;
use tokio::time::Instant;

/// Least time between two "typing" frames passed on per connection and conversation.
const TYPING_MIN_GAP: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) async fn apply(conn: &mut Conn, conv: i64, active: bool) -> anyhow::Result<()> {
    if !conn.is_member(conv) {
        return Ok(conn.not_member(conv, None).await?);
    }
    let now = Instant::now();
    let last = conn.joined.get(&conv).and_then(|j| j.typing_sent);
    let pass = match (active, last) {
        (true, Some(at)) => now.duration_since(at) >= TYPING_MIN_GAP,
        (true, None) => true,
        (false, last) => last.is_some(),
    };
    let me = conn.me().id;
    let blocked = conn
        .dm_peer(conv)
        .is_some_and(|peer| conn.state.presence.blocked(peer, me));
    // Someone appearing offline shows no sign of life until they send something.
    let Some((name, hidden)) = conn.state.presence.own_view(me) else {
        return Ok(());
    };
    if !pass || blocked || hidden {
        return Ok(());
    }
    if let Some(j) = conn.joined.get_mut(&conv) {
        j.typing_sent = active.then_some(now);
    }
    conn.state.chat.typing(conv, me, name, active);
    Ok(())
}
