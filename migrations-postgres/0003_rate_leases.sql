-- What the last lease from a bucket granted (limits/shared.rs): a lease is one statement
-- that refills the bucket, takes what it can and returns this, so that a node's lease costs
-- one round trip. Not read otherwise.
ALTER TABLE rate_limits ADD COLUMN last_lease INTEGER NOT NULL DEFAULT 0;
