-- What replicas share besides the releases: who runs each periodic job, and the MDE budget.

-- One row per periodic job (expiry sweep, checkpoints, bypass scan, notification delivery,
-- audit forwarding): the replica that runs it until `expires_at` (ms since the epoch). A
-- replica that dies stops renewing; another takes the row once it lapsed.
CREATE TABLE job_leases (
    job         TEXT    NOT NULL PRIMARY KEY CHECK (length(job) BETWEEN 1 AND 64),
    holder      TEXT    NOT NULL CHECK (length(holder) BETWEEN 1 AND 128),
    expires_at  INTEGER NOT NULL
);

-- Every MDE call any replica made in the last hour, per API: the tenant's one budget
-- (100 a minute, 1,500 an hour per API). Rows older than an hour are pruned.
CREATE TABLE mde_calls (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    api  TEXT    NOT NULL CHECK (length(api) BETWEEN 1 AND 64),
    at   INTEGER NOT NULL
);
CREATE INDEX mde_calls_api_at ON mde_calls (api, at);

-- An API paused for every replica until `until` (ms), after MDE answered 429 with Retry-After.
CREATE TABLE mde_pauses (
    api    TEXT    NOT NULL PRIMARY KEY CHECK (length(api) BETWEEN 1 AND 64),
    until  INTEGER NOT NULL
);
