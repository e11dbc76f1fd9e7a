-- Every connection's hello counts the public rooms and lists the first ones; with many
-- one-to-one and group conversations that would scan the whole table without this index.
CREATE INDEX conversations_by_kind ON conversations(kind, id);
