-- Contacts, blocks, contact groups and each user's chosen presence: the "notification
-- server" half of Messenger. Who is online is not stored: it is derived from live sockets.

-- The status the user chose; 'offline' is "Appear Offline". It applies to every tab and to
-- the next sign-in.
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'online'
    CHECK (status IN ('online', 'busy', 'be_right_back', 'away', 'on_the_phone', 'out_to_lunch', 'offline'));
ALTER TABLE users ADD COLUMN personal_message TEXT NOT NULL DEFAULT '';

-- Categories a user sorts their contacts into.
CREATE TABLE contact_groups (
    id         INTEGER PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (owner_id, name COLLATE NOCASE)
);

-- One row per side of a relationship, always in pairs: when A asks B, (A, B, 'requested')
-- and (B, A, 'incoming'); when B accepts, both become 'accepted'. Removing deletes both.
CREATE TABLE contacts (
    owner_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state      TEXT    NOT NULL CHECK (state IN ('requested', 'incoming', 'accepted')),
    group_id   INTEGER REFERENCES contact_groups(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner_id, contact_id),
    CHECK (owner_id <> contact_id)
) WITHOUT ROWID;
CREATE INDEX contacts_by_contact ON contacts(contact_id, owner_id);

-- A blocked user sees the blocker as offline, cannot message them in a one-to-one
-- conversation and cannot ask them again. One-way: the blocker still sees the other.
CREATE TABLE blocks (
    blocker_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
) WITHOUT ROWID;
CREATE INDEX blocks_by_blocked ON blocks(blocked_id, blocker_id);
