-- dualkey's first schema: releases, approvals and the hash-chained audit log.
-- Times are INTEGER milliseconds since the Unix epoch (UTC).
-- Never edit this file once shipped; add a new migration instead.

CREATE TABLE releases (
    -- Internal order for cursor pagination; never shown as an id.
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Public id (UUID, hyphenated).
    id                 TEXT    NOT NULL UNIQUE CHECK (length(id) = 36),
    -- MDE machine id: exactly 40 lower-case hex characters.
    machine_id         TEXT    NOT NULL CHECK (length(machine_id) = 40 AND machine_id NOT GLOB '*[^0-9a-f]*'),
    -- The requester's justification (1..1000 characters, checked in the application too).
    comment            TEXT    NOT NULL CHECK (length(comment) BETWEEN 1 AND 1000),
    ticket             TEXT,
    -- The state machine's values; see src/domain/status.rs for the legal moves.
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'dispatching', 'dispatched',
                                                          'succeeded', 'failed', 'rejected', 'cancelled', 'expired')),
    requested_by       TEXT    NOT NULL CHECK (length(requested_by) > 0),
    requested_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL CHECK (expires_at > requested_at),
    -- Distinct approvers (never the requester) needed to reach 'approved'.
    approvals_required INTEGER NOT NULL CHECK (approvals_required >= 1),
    approved_at        INTEGER,
    -- Who rejected or cancelled, when, and why; required for those final states.
    decided_by         TEXT,
    decided_at         INTEGER,
    decision_comment   TEXT,
    -- Filled by the worker.
    mde_action_id      TEXT,
    mde_action_status  TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error         TEXT,
    -- The worker's claim: who holds the job and until when (a lease, so a dead worker's job is reclaimed).
    lease_owner        TEXT,
    lease_expires_at   INTEGER,
    -- Earliest time the worker may try again (backoff).
    next_attempt_at    INTEGER,
    updated_at         INTEGER NOT NULL,
    -- An approved release records when it reached quorum.
    CHECK (status NOT IN ('approved', 'dispatching', 'dispatched', 'succeeded') OR approved_at IS NOT NULL),
    -- Rejections and cancellations always say who and when.
    CHECK (status NOT IN ('rejected', 'cancelled') OR (decided_by IS NOT NULL AND decided_at IS NOT NULL))
);

-- At most one open release per machine: a second request while one is in flight is refused.
CREATE UNIQUE INDEX releases_one_open_per_machine
    ON releases (machine_id)
    WHERE status IN ('pending', 'approved', 'dispatching', 'dispatched');

-- Listing filters and the sweeper.
CREATE INDEX releases_status_expires ON releases (status, expires_at);
CREATE INDEX releases_requested_by ON releases (requested_by, seq);
CREATE INDEX releases_machine ON releases (machine_id, seq);

CREATE TABLE approvals (
    release_id TEXT    NOT NULL REFERENCES releases (id),
    approver   TEXT    NOT NULL CHECK (length(approver) > 0),
    comment    TEXT,
    at         INTEGER NOT NULL,
    -- One approval per person per release.
    PRIMARY KEY (release_id, approver)
);

-- Defence in depth for the two-person rule: the database itself refuses an approval by the
-- requester, and any approval of a release that is not pending.
CREATE TRIGGER approvals_two_person_rule
BEFORE INSERT ON approvals
BEGIN
    SELECT RAISE(ABORT, 'self_approval_forbidden')
    WHERE NEW.approver = (SELECT requested_by FROM releases WHERE id = NEW.release_id);
    SELECT RAISE(ABORT, 'release_not_pending')
    WHERE (SELECT status FROM releases WHERE id = NEW.release_id) IS NOT 'pending';
END;

-- Approvals are evidence: never changed or removed.
CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals
BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END;
CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals
BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END;

CREATE TABLE audit_log (
    -- Dense sequence from 1; a gap means a deleted entry.
    seq        INTEGER PRIMARY KEY CHECK (seq >= 1),
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    release_id TEXT,
    machine_id TEXT,
    -- Canonical JSON (sorted keys, no whitespace).
    details    TEXT    NOT NULL,
    -- Hex SHA-256 of the previous entry (64 zeros for the first).
    prev_hash  TEXT    NOT NULL CHECK (length(prev_hash) = 64),
    -- Hex SHA-256 over prev_hash and this entry's canonical encoding.
    hash       TEXT    NOT NULL UNIQUE CHECK (length(hash) = 64)
);

CREATE INDEX audit_log_release ON audit_log (release_id, seq);

-- The audit log is append-only: the database refuses UPDATE and DELETE.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
