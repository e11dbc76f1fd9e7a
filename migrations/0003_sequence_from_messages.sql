-- A conversation's highest sequence number is read from its messages (one lookup in the
-- primary key), so the writer no longer updates a counter row per conversation per commit.
ALTER TABLE conversations DROP COLUMN last_seq;
