-- AI contacts: persona bots are users that never sign in (no password), marked here. The
-- server creates and updates them at every start from the personas in its code.
ALTER TABLE users ADD COLUMN is_bot INTEGER NOT NULL DEFAULT 0 CHECK (is_bot IN (0, 1));

-- Bot replies counted per day (days since the Unix epoch, UTC) and per user; user 0 holds
-- the total for everyone. Counted in the same transaction as the check, so a quota holds
-- under concurrent requests and across restarts.
CREATE TABLE bot_usage (
    day     INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    replies INTEGER NOT NULL,
    PRIMARY KEY (day, user_id)
) WITHOUT ROWID;

-- Switches an administrator flips while the server runs (`messenger bots off`).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
