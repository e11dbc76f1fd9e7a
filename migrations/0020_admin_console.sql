-- The admin console (src/app/pages/admin.rs): an administrator may disable an account (it
-- cannot sign in, its sessions end) and enable it again; and destructive actions need the
-- administrator's password entered again within ten minutes, noted on their session.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
ALTER TABLE sessions ADD COLUMN reauth_at INTEGER;
