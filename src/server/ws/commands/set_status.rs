//! `set_status`: the status for every tab of this user and their next sign-in (changes
//! faster than one a second are coalesced; the last one wins).

use super::Conn;
use crate::protocol::Status;

pub(super) async fn apply(conn: &mut Conn, status: Status) -> anyhow::Result<()> {
    conn.slide_session().await?;
    conn.state
        .profiles
        .choose_status(conn.me().id, status)
        .await
        .map_err(|e| anyhow::anyhow!("setting the status: {e}"))?;
    Ok(())
}
