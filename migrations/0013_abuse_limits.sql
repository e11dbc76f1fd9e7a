-- Token buckets for the limits that must hold across restarts (docs/SECURITY.md): failed
-- sign-ins per address and per account, accounts and guests created per address, bot
-- replies per address. `scope` names the limit, `key` what it counts (an address, a
-- username); each row keeps its own rate so that full buckets can be forgotten by one
-- statement whatever their limit.
CREATE TABLE rate_limits (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    -- Tokens left at `updated_at` (ms since the epoch).
    tokens REAL NOT NULL,
    updated_at INTEGER NOT NULL,
    burst REAL NOT NULL,
    -- Tokens regained per millisecond.
    per_ms REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

-- Proof-of-work challenges already used, by their signature, until they expire: a solved
-- challenge opens one door once, even across a restart.
CREATE TABLE spent_challenges (
    id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
