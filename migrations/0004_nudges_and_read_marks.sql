-- Nudges are stored in a conversation's history like messages, with an empty body.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'nudge'));

-- How far each member has read each conversation (a sequence number), for unread counts
-- that survive sign-out and follow the user across tabs and devices.
ALTER TABLE members ADD COLUMN last_read INTEGER NOT NULL DEFAULT 0;
