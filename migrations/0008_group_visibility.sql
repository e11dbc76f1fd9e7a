-- What a member of a group conversation may see starts after this sequence number: the last
-- one when they were invited (people invited in do not read what was said before). 0 for
-- one-to-one conversations and rooms.
ALTER TABLE members ADD COLUMN visible_after INTEGER NOT NULL DEFAULT 0;
