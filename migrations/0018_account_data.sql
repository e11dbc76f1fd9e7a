-- Account security and data protection (docs/SECURITY.md, docs/DATA.md).
--
-- What a user is shown of each of their sessions: the device (from the browser's
-- User-Agent, summarised), the address it signed in from, and when it was last used.
ALTER TABLE sessions ADD COLUMN device TEXT;
ALTER TABLE sessions ADD COLUMN address TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;

-- Retention: a conversation's own period in milliseconds (NULL: the server's), and the
-- watermark below which its messages have expired and are gone.
ALTER TABLE conversations ADD COLUMN retention_ms INTEGER;
ALTER TABLE conversations ADD COLUMN expired_before INTEGER NOT NULL DEFAULT 0;

-- Accounts being erased: the account is deleted at once, the text it wrote is emptied in
-- small batches afterwards; a row here until that is done (resumed after a restart).
CREATE TABLE erasures (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id),
    started_at INTEGER NOT NULL
);

-- A user's own entries of the audit log, for the export of their data.
CREATE INDEX audit_log_by_user ON audit_log(user_id, id);
