-- A break-glass release that dualkey isolated again gets its own final status, `reisolated`,
-- and re-isolation keeps its own attempt count and backoff instead of borrowing the lease.
--
-- SQLite cannot change a CHECK constraint, so `releases` is rebuilt. `approvals` references it
-- and its trigger reads it, so it is set aside and rebuilt too (dropping the child first keeps
-- every foreign key satisfied at every step, inside the migration's transaction). Every
-- column, constraint, index and trigger of migrations 1 to 4 is restated here.

CREATE TEMP TABLE approvals_copy AS SELECT release_id, approver, comment, at, roles FROM approvals;
CREATE TEMP TABLE releases_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'releases';
-- Dropping a table drops its triggers first, so the append-only triggers do not fire here.
DROP TABLE approvals;

CREATE TABLE releases_new (
    -- Internal order for cursor pagination; never shown as an id.
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Public id (UUID, hyphenated).
    id                 TEXT    NOT NULL UNIQUE CHECK (length(id) = 36),
    -- MDE machine id: exactly 40 lower-case hex characters.
    machine_id         TEXT    NOT NULL CHECK (length(machine_id) = 40 AND machine_id NOT GLOB '*[^0-9a-f]*'),
    -- The requester's justification (1..1000 characters, checked in the application too).
    comment            TEXT    NOT NULL CHECK (length(comment) BETWEEN 1 AND 1000),
    ticket             TEXT,
    -- The state machine's values; see src/domain/transition.rs for the legal moves.
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'dispatching', 'dispatched',
                                                          'succeeded', 'failed', 'rejected', 'cancelled', 'expired',
                                                          'reisolated')),
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
    -- Earliest time the worker may try again (backoff), or poll again.
    next_attempt_at    INTEGER,
    updated_at         INTEGER NOT NULL,
    -- When MDE accepted the unisolate (201) or dualkey adopted the action it had already created.
    dispatched_at      INTEGER,
    -- When the release reached succeeded or failed.
    finished_at        INTEGER,
    -- The rule that applied (its name), the policy's hash, and the rule itself as JSON, so a
    -- release keeps the rule it was requested under even after the policy changes.
    policy_rule        TEXT,
    policy_hash        TEXT,
    policy_applied     TEXT,
    -- The device as MDE described it at request time (JSON), and who isolated it.
    device             TEXT,
    isolated_by        TEXT,
    -- 1 for a break-glass release.
    break_glass        INTEGER NOT NULL DEFAULT 0 CHECK (break_glass IN (0, 1)),
    -- Deadline for ratification (ms); set for break-glass releases only.
    ratify_by          INTEGER,
    ratified_by        TEXT,
    ratified_at        INTEGER,
    -- The Isolate action dualkey created when ratification did not come in time.
    reisolation_action_id TEXT,
    reisolated_at      INTEGER,
    -- Failed attempts to isolate the device again, the earliest time of the next one, and when
    -- dualkey gave up (attempts exhausted; audited).
    reisolation_attempts INTEGER NOT NULL DEFAULT 0 CHECK (reisolation_attempts >= 0),
    reisolation_due_at INTEGER,
    reisolation_abandoned_at INTEGER,
    -- An approved release records when it reached quorum.
    CHECK (status NOT IN ('approved', 'dispatching', 'dispatched', 'succeeded', 'reisolated') OR approved_at IS NOT NULL),
    -- Rejections and cancellations always say who and when.
    CHECK (status NOT IN ('rejected', 'cancelled') OR (decided_by IS NOT NULL AND decided_at IS NOT NULL)),
    -- Only a break-glass release is re-isolated, and it always names the Isolate action.
    CHECK (status <> 'reisolated' OR (break_glass = 1 AND reisolation_action_id IS NOT NULL AND reisolated_at IS NOT NULL))
);

INSERT INTO releases_new (
    seq, id, machine_id, comment, ticket, status, requested_by, requested_at, expires_at, approvals_required,
    approved_at, decided_by, decided_at, decision_comment, mde_action_id, mde_action_status, attempts, last_error,
    lease_owner, lease_expires_at, next_attempt_at, updated_at, dispatched_at, finished_at, policy_rule, policy_hash,
    policy_applied, device, isolated_by, break_glass, ratify_by, ratified_by, ratified_at, reisolation_action_id,
    reisolated_at, reisolation_due_at)
SELECT
    seq, id, machine_id, comment, ticket,
    -- Releases re-isolated before this status existed get it now.
    CASE WHEN reisolation_action_id IS NOT NULL THEN 'reisolated' ELSE status END,
    requested_by, requested_at, expires_at, approvals_required,
    approved_at, decided_by, decided_at, decision_comment, mde_action_id, mde_action_status, attempts, last_error,
    lease_owner,
    -- Before this migration a failed re-isolation parked its retry time in a lease without an
    -- owner (nothing else leaves one): it moves to reisolation_due_at.
    CASE WHEN lease_owner IS NULL THEN NULL ELSE lease_expires_at END,
    next_attempt_at, updated_at, dispatched_at, finished_at, policy_rule, policy_hash,
    policy_applied, device, isolated_by, break_glass, ratify_by, ratified_by, ratified_at, reisolation_action_id,
    reisolated_at,
    CASE WHEN break_glass = 1 AND lease_owner IS NULL AND reisolation_action_id IS NULL THEN lease_expires_at END
FROM releases;

DROP TABLE releases;
ALTER TABLE releases_new RENAME TO releases;

-- Keep AUTOINCREMENT's promise: a seq is never handed out twice, even across the rebuild.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'releases', seq FROM releases_sequence
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'releases');
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq FROM releases_sequence), 0)) WHERE name = 'releases';
DROP TABLE releases_sequence;

-- At most one open release per machine: a second request while one is in flight is refused.
CREATE UNIQUE INDEX releases_one_open_per_machine
    ON releases (machine_id)
    WHERE status IN ('pending', 'approved', 'dispatching', 'dispatched');
-- Listing filters and the sweeper.
CREATE INDEX releases_status_expires ON releases (status, expires_at);
CREATE INDEX releases_requested_by ON releases (requested_by, seq);
CREATE INDEX releases_machine ON releases (machine_id, seq);
-- Claims look for due approved/dispatched releases and expired leases on dispatching ones.
CREATE INDEX releases_claim ON releases (status, next_attempt_at);
-- Velocity guards count a person's requests in the last hour.
CREATE INDEX releases_requested_by_at ON releases (requested_by, requested_at);
-- Unratified break-glass releases, for re-isolation.
CREATE INDEX releases_ratify ON releases (break_glass, ratify_by) WHERE break_glass = 1;

-- A break-glass release is born approved and always carries its deadline.
CREATE TRIGGER releases_break_glass_deadline BEFORE INSERT ON releases
WHEN NEW.break_glass = 1 AND NEW.ratify_by IS NULL
BEGIN SELECT RAISE(ABORT, 'break-glass release without a ratification deadline'); END;

CREATE TABLE approvals (
    release_id TEXT    NOT NULL REFERENCES releases (id),
    approver   TEXT    NOT NULL CHECK (length(approver) > 0),
    comment    TEXT,
    at         INTEGER NOT NULL,
    -- The approver's roles when they approved (JSON array): slots are filled by role.
    roles      TEXT    NOT NULL DEFAULT '[]',
    -- One approval per person per release.
    PRIMARY KEY (release_id, approver)
);
INSERT INTO approvals (release_id, approver, comment, at, roles)
SELECT release_id, approver, comment, at, roles FROM approvals_copy;
DROP TABLE approvals_copy;

-- Velocity guards count a person's approvals in the last hour.
CREATE INDEX approvals_approver_at ON approvals (approver, at);

-- Defence in depth for the two-person rule: the database itself refuses an approval by the
-- requester, and any approval of a release that is not pending, except the ratification of a
-- break-glass release (an approval after the fact), which is never by its requester either.
-- Created after the copy above, which restores approvals of releases that are no longer pending.
CREATE TRIGGER approvals_two_person_rule
BEFORE INSERT ON approvals
BEGIN
    SELECT RAISE(ABORT, 'self_approval_forbidden')
    WHERE NEW.approver = (SELECT requested_by FROM releases WHERE id = NEW.release_id);
    SELECT RAISE(ABORT, 'release_not_pending')
    WHERE (SELECT status FROM releases WHERE id = NEW.release_id) IS NOT 'pending'
      AND (SELECT break_glass FROM releases WHERE id = NEW.release_id) IS NOT 1;
END;

-- Approvals are evidence: never changed or removed.
CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals
BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END;
CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals
BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END;
