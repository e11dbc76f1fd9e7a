//! `send`: a text message (made clean first: `server::text`).

use super::{post, Conn};
use crate::protocol::ErrorCode;
use crate::server::{store::Content, text};

pub(super) async fn apply(
    conn: &mut Conn,
    conv: i64,
    client_id: String,
    body: String,
) -> anyhow::Result<()> {
    match text::body(&body) {
        Ok(body) => post(conn, conv, client_id, Content::Text(body)).await,
        Err(e) => {
            let code = ErrorCode::InvalidBody;
            Ok(conn.refuse(code, &e.0, Some(conv), Some(client_id)).await?)
        }
    }
}
