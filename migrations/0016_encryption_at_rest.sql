-- Encryption at rest (src/server/store/vault.rs). A sealed message keeps an empty body and
-- carries the id of the key it was sealed with and its nonce-then-ciphertext; a plain one
-- (written with --encryption off, or before this migration) has neither.
ALTER TABLE messages ADD COLUMN key_id TEXT;
ALTER TABLE messages ADD COLUMN sealed BLOB;
-- Every key the database has used: a key ring lacking one of them is refused at start.
-- A key leaves this table when it is retired (no row uses it any more).
CREATE TABLE keys_used (
    key_id        TEXT    PRIMARY KEY,
    first_used_at INTEGER NOT NULL
);
