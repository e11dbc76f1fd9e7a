-- Messages of kind 'file' (a shared file, src/server/media): the kind's CHECK takes the new
-- value. SQLite cannot change a constraint in place, so the table is rebuilt as in 0011
-- (same columns, same constraints written as a chain of `=`, same index; see 0007 for why
-- this file ends the migrator's transaction and opens one again).
COMMIT;
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE messages_new (
    conversation_id INTEGER NOT NULL
                    REFERENCES conversations(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    seq             INTEGER NOT NULL,
    sender_id       INTEGER NOT NULL REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    client_id       TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    kind            TEXT    NOT NULL DEFAULT 'text'
                    CHECK (kind = 'text' OR kind = 'nudge' OR kind = 'delete'
                           OR kind = 'deleted' OR kind = 'join' OR kind = 'leave'
                           OR kind = 'file'),
    key_id          TEXT,
    sealed          BLOB,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
INSERT INTO messages_new (conversation_id, seq, sender_id, client_id, body, created_at, kind,
                          key_id, sealed)
    SELECT conversation_id, seq, sender_id, client_id, body, created_at, kind, key_id, sealed
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_idempotency ON messages(client_id, conversation_id, sender_id);

COMMIT;
PRAGMA foreign_keys = ON;
BEGIN;
