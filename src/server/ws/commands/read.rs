//! `read`: the user has seen a conversation up to `seq`; all their tabs hear of it.

use super::Conn;

pub(super) async fn apply(conn: &mut Conn, conv: i64, seq: i64) -> anyhow::Result<()> {
    if !conn.is_member(conv) {
        return Ok(conn.not_member(conv, None).await?);
    }
    conn.state.chat.read(conn.me().id, conv, seq).await?;
    Ok(())
}
