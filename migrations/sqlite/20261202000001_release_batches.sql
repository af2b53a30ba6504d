-- Release batches: one request for many devices, decided as one. Each device of a batch is an
-- ordinary release (its own rule, slots, audit entries and worker job) that names its batch.

CREATE TABLE release_batches (
    -- Internal order for listing newest first; never shown as an id.
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Public id (UUID, hyphenated), what releases.batch_id points at.
    id           TEXT    NOT NULL UNIQUE CHECK (length(id) = 36),
    requested_by TEXT    NOT NULL CHECK (length(requested_by) > 0),
    requested_at INTEGER NOT NULL,
    -- The requester's justification, shared by every release of the batch.
    comment      TEXT    NOT NULL CHECK (length(comment) BETWEEN 1 AND 1000),
    ticket       TEXT,
    -- The selector the devices were chosen by ({"rbac_groups": [...], "tags": [...]}), or NULL
    -- for a batch of listed machine ids.
    selector     TEXT    CHECK (selector IS NULL OR (json_valid(selector) AND json_type(selector) = 'object')),
    -- The devices asked for that got no release, with why ([{"machine_id", "code", "message"}]).
    refused      TEXT    NOT NULL CHECK (json_valid(refused) AND json_type(refused) = 'array')
);

-- A batch is a record of what was asked: written once, never changed, never removed.
CREATE TRIGGER release_batches_no_update BEFORE UPDATE ON release_batches
BEGIN SELECT RAISE(ABORT, 'release_batches are append-only'); END;
CREATE TRIGGER release_batches_no_delete BEFORE DELETE ON release_batches
BEGIN SELECT RAISE(ABORT, 'release_batches are append-only'); END;

-- The batch a release was requested in; NULL for a release requested alone.
ALTER TABLE releases ADD COLUMN batch_id TEXT REFERENCES release_batches (id);

-- A release stays in the batch it was requested in.
CREATE TRIGGER releases_batch_id_fixed BEFORE UPDATE OF batch_id ON releases
WHEN OLD.batch_id IS NOT NEW.batch_id
BEGIN SELECT RAISE(ABORT, 'a release never changes batch'); END;

-- A batch's releases (its page, its decisions) and its approved ones in approval order (the
-- worker's turn of each batch).
CREATE INDEX releases_batch ON releases (batch_id, approved_at, seq) WHERE batch_id IS NOT NULL;
