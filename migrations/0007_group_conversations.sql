-- Group conversations by invitation, with joins and leaves in their history.
--
-- Both `conversations.kind` and `messages.kind` are CHECK constraints, which SQLite cannot
-- change in place: the tables are rebuilt. `members` and `messages` refer to
-- `conversations` with ON DELETE CASCADE, and dropping the old table with foreign keys on
-- would first delete every member and message. Foreign keys can only be switched off
-- outside a transaction, and the migrator (sqlx 0.8) runs each file inside one; so this
-- file ends the migrator's transaction, does the rebuild in its own with foreign keys off,
-- checks the references, and opens a transaction again for the migrator to record the
-- migration in and commit. If the server stops between the two commits, the next start runs
-- this file again, which rebuilds the same tables once more and loses nothing (so it holds
-- nothing that cannot run twice: the new column of `members` is in the next file).
COMMIT;
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE conversations_new (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('dm', 'room', 'group')),
    title      TEXT,
    -- "lowid:highid" for one-to-one conversations: one per pair of users.
    dm_key     TEXT    UNIQUE,
    created_at INTEGER NOT NULL,
    CHECK ((kind = 'dm') = (dm_key IS NOT NULL))
);
INSERT INTO conversations_new (id, kind, title, dm_key, created_at)
    SELECT id, kind, title, dm_key, created_at FROM conversations;
DROP TABLE conversations;
ALTER TABLE conversations_new RENAME TO conversations;

CREATE TABLE messages_new (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    sender_id       INTEGER NOT NULL REFERENCES users(id),
    client_id       TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    kind            TEXT    NOT NULL DEFAULT 'text'
                    CHECK (kind IN ('text', 'nudge', 'delete', 'deleted', 'join', 'leave')),
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
INSERT INTO messages_new (conversation_id, seq, sender_id, client_id, body, created_at, kind)
    SELECT conversation_id, seq, sender_id, client_id, body, created_at, kind FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_idempotency ON messages(conversation_id, sender_id, client_id);

COMMIT;
PRAGMA foreign_keys = ON;
BEGIN;
