//! `idle`: this tab's user has been inactive (or is back); presence reads Away once every
//! tab of a user who chose Online is idle.

use super::Conn;

pub(super) fn apply(conn: &mut Conn, idle: bool) {
    conn.state.presence.set_idle(conn.me().id, conn.id, idle);
}
