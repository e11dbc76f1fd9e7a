-- The same `messages` table, with two constraints written so that the message writer's
-- multi-row INSERT costs less, and checks as much:
--
-- * `kind IN (...)` with more than two values is checked by SQLite through a temporary
--   table, filled again for every row inserted; the same test as a chain of `=` is a few
--   comparisons.
-- * The foreign keys are checked when the transaction commits (DEFERRABLE INITIALLY
--   DEFERRED) instead of at each statement. A multi-row INSERT whose constraints could stop
--   it half-way makes SQLite copy every page it changes to a statement journal first, so
--   that the statement alone can be undone. The writer never needs that: any failure rolls
--   back its whole transaction and retries each message alone (src/server/writer.rs), so its
--   INSERT says OR FAIL for the other constraints, and a message referring to a missing
--   conversation or user still fails, at COMMIT, alone. ON DELETE CASCADE acts at once, as
--   before.
--
-- SQLite cannot change constraints in place: the table is rebuilt, as in 0007 (see there for
-- why this file ends the migrator's transaction and opens one again). Running it twice
-- rebuilds the same table twice and loses nothing.
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
                           OR kind = 'deleted' OR kind = 'join' OR kind = 'leave'),
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
