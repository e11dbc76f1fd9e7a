-- Display pictures: one per user, stored as the server re-encoded it (a small square PNG,
-- never the uploaded file). `version` changes with the bytes, so clients cache by it.
CREATE TABLE pictures (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    version    TEXT    NOT NULL,
    png        BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);
