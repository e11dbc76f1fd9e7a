-- Guests are deleted with their data after a day without a session and when they sign out
-- (docs/SECURITY.md). What they wrote in conversations others still have stays there, as
-- the others' record, under a nameless tombstone of the account: `deleted_at` marks it.
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
