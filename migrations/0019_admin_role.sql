-- Administrators are a role of an account (`messenger admin grant USER` / `revoke`); a guest
-- can never hold it (the store refuses, and a guest's row never gets it).
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1));
