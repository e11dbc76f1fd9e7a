-- Files and photos shared in conversations (src/server/media). A shared file is a message of
-- kind 'file' (its body names the file); this row says where its bytes are. The row is
-- written before the message is posted, with the message's client id, so an upload whose
-- message never committed (or was deleted, expired or erased since) is found and its
-- objects collected (`media::collect`).
CREATE TABLE files (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    uploader_id     INTEGER NOT NULL,
    client_id       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    mime            TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    -- The objects: the file as sent; for pictures, a copy for viewing and a thumbnail
    -- (made by the server, metadata stripped).
    object          TEXT    NOT NULL,
    view_object     TEXT,
    view_size       INTEGER,
    thumb_object    TEXT,
    thumb_size      INTEGER,
    width           INTEGER,
    height          INTEGER,
    -- The key that sealed them (NULL: stored plain).
    key_id          TEXT,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX files_by_message ON files(conversation_id, uploader_id, client_id);
CREATE INDEX files_by_uploader ON files(uploader_id);
