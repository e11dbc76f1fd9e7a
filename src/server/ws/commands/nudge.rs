//! `nudge`: shakes the others' windows; stored like a message, at most one per user and
//! conversation per `NUDGE_EVERY` (chat applies the limit).

use super::{post, Conn};
use crate::server::store::Content;

pub(super) async fn apply(conn: &mut Conn, conv: i64, client_id: String) -> anyhow::Result<()> {
    post(conn, conv, client_id, Content::Nudge).await
}
