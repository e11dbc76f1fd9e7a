-- The audit log (src/server/audit.rs): security-relevant events, append-only, each entry
-- carrying the SHA-256 of the one before, so an edited or removed entry breaks the chain
-- (`messenger audit verify` names the first broken one). No foreign keys: entries outlive
-- the accounts they are about.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    event     TEXT    NOT NULL,
    user_id   INTEGER,
    actor     TEXT    NOT NULL,
    address   TEXT,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
