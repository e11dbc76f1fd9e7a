-- Accounts, sessions, conversations, members and messages: the core messenger.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT    NOT NULL,
    -- argon2id PHC string; NULL for guests, who cannot sign in again.
    password_hash TEXT,
    is_guest      INTEGER NOT NULL DEFAULT 0 CHECK (is_guest IN (0, 1)),
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id                  INTEGER PRIMARY KEY,
    -- SHA-256 of the 256-bit token; the token itself is never stored.
    token_hash          BLOB    NOT NULL UNIQUE,
    user_id             INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at          INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('dm', 'room')),
    title      TEXT,
    -- "lowid:highid" for one-to-one conversations: one per pair of users.
    dm_key     TEXT    UNIQUE,
    -- Highest sequence number given out; the next message gets last_seq + 1.
    last_seq   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    CHECK ((kind = 'dm') = (dm_key IS NOT NULL))
);

CREATE TABLE members (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, conversation_id);

CREATE TABLE messages (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    sender_id       INTEGER NOT NULL REFERENCES users(id),
    client_id       TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
-- A resend with the same client id in the same conversation is the same message.
CREATE UNIQUE INDEX messages_idempotency ON messages(conversation_id, sender_id, client_id);

-- The public rooms every installation starts with.
INSERT INTO conversations (kind, title, created_at) VALUES
    ('room', 'Lobby', 0),
    ('room', 'Retro Gaming', 0),
    ('room', 'Music Lounge', 0);
