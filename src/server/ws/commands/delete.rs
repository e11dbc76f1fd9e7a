//! `delete`: deletes one of the user's own messages for every member (chat checks that it is
//! theirs and deletable).

use super::{post, Conn};
use crate::server::store::Content;

pub(super) async fn apply(
    conn: &mut Conn,
    conv: i64,
    client_id: String,
    seq: i64,
) -> anyhow::Result<()> {
    post(conn, conv, client_id, Content::Delete(seq)).await
}
