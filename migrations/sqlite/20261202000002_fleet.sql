-- One view of MDE: what dualkey remembers across restarts about the tenant's actions, and every
-- Unisolate that no release of dualkey's explains.

-- Small facts, one row each: `bypass_scan_from` (when this installation first looked at the
-- tenant's Unisolates, ms since the epoch) and `app_requestor` (how MDE names dualkey's app in
-- `requestor`, learned from the first action it created).
CREATE TABLE fleet_state (
    key   TEXT PRIMARY KEY CHECK (length(key) > 0),
    value TEXT NOT NULL
);

-- A release of a device from isolation that did not go through dualkey: recorded once per MDE
-- action (the unique key), answered as `[policy] on_bypass` said when it was detected.
CREATE TABLE bypasses (
    seq                      INTEGER PRIMARY KEY AUTOINCREMENT,
    id                       TEXT NOT NULL UNIQUE CHECK (length(id) > 0),
    mde_action_id            TEXT NOT NULL UNIQUE CHECK (length(mde_action_id) > 0),
    machine_id               TEXT NOT NULL,
    requestor                TEXT,
    requestor_comment        TEXT,
    -- MDE's creationDateTimeUtc as MDE wrote it, and its status when last seen.
    action_created           TEXT,
    action_status            TEXT,
    detected_at              INTEGER NOT NULL,
    response                 TEXT NOT NULL CHECK (response IN ('record', 'reisolate')),
    reisolation_action_id    TEXT,
    reisolation_attempts     INTEGER NOT NULL DEFAULT 0 CHECK (reisolation_attempts >= 0),
    reisolation_due_at       INTEGER,
    reisolation_finished_at  INTEGER,
    -- Why the re-isolation ended without one: the bypassing action never succeeded, or dualkey gave up.
    reisolation_outcome      TEXT,
    acknowledged_at          INTEGER,
    acknowledged_by          TEXT,
    CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
);

CREATE INDEX bypasses_open ON bypasses (seq) WHERE acknowledged_at IS NULL;
CREATE INDEX bypasses_reisolation_due ON bypasses (seq)
    WHERE response = 'reisolate' AND reisolation_finished_at IS NULL;

CREATE TRIGGER bypasses_never_deleted BEFORE DELETE ON bypasses
BEGIN
    SELECT RAISE(ABORT, 'bypasses are never deleted');
END;

CREATE TRIGGER bypasses_facts_never_change BEFORE UPDATE OF id, mde_action_id, machine_id, requestor,
    requestor_comment, action_created, detected_at, response ON bypasses
BEGIN
    SELECT RAISE(ABORT, 'a bypass''s facts never change');
END;
