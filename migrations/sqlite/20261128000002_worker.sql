-- The release worker: when a release was handed to MDE and when it finished, and an index for
-- the claim query (due jobs by status and time).

-- When MDE accepted the unisolate (201) or dualkey adopted the action it had already created.
ALTER TABLE releases ADD COLUMN dispatched_at INTEGER;
-- When the release reached succeeded or failed.
ALTER TABLE releases ADD COLUMN finished_at INTEGER;

-- Claims look for due approved/dispatched releases and expired leases on dispatching ones.
CREATE INDEX releases_claim ON releases (status, next_attempt_at);
