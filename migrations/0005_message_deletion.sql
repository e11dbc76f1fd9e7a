-- Deleting your own message: the message's row stays (its sequence number keeps the
-- conversation gap-free) with kind 'deleted' and an empty body, and a new message of kind
-- 'delete', whose body is the deleted message's sequence number, tells every member in order.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE messages_new (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    sender_id       INTEGER NOT NULL REFERENCES users(id),
    client_id       TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    kind            TEXT    NOT NULL DEFAULT 'text'
                    CHECK (kind IN ('text', 'nudge', 'delete', 'deleted')),
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
INSERT INTO messages_new (conversation_id, seq, sender_id, client_id, body, created_at, kind)
    SELECT conversation_id, seq, sender_id, client_id, body, created_at, kind FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_idempotency ON messages(conversation_id, sender_id, client_id);
