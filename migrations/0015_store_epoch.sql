-- The store's epoch and its count of message commits (src/server/store/sqlite/guard.rs).
-- The epoch is a random id made with the database and changed whenever the store finds that
-- it lost acknowledged messages; clients keep it with their cursors and resync from the
-- start when it changes. Every commit of the message writer adds one to message_commits;
-- the count is also written to a high-water file beside the database, outside the WAL.
CREATE TABLE store_epoch (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    epoch           TEXT    NOT NULL,
    message_commits INTEGER NOT NULL DEFAULT 0
);
INSERT INTO store_epoch (id, epoch) VALUES (1, lower(hex(randomblob(16))));
