-- Rooms the admin console archived (src/app/pages/admin.rs, /admin/rooms): out of every
-- list and closed to joins and sends, their history kept; an administrator may restore
-- them. NULL: the room is open.
ALTER TABLE conversations ADD COLUMN archived_at INTEGER;
