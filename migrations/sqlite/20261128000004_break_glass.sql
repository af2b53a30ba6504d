-- Break-glass: a holder of the break-glass role releases a device alone; a distinct approver
-- must ratify it within the policy's ratify_within, or dualkey isolates the device again.

-- 1 for a break-glass release.
ALTER TABLE releases ADD COLUMN break_glass INTEGER NOT NULL DEFAULT 0 CHECK (break_glass IN (0, 1));
-- Deadline for ratification (ms); set for break-glass releases only.
ALTER TABLE releases ADD COLUMN ratify_by INTEGER;
ALTER TABLE releases ADD COLUMN ratified_by TEXT;
ALTER TABLE releases ADD COLUMN ratified_at INTEGER;
-- The Isolate action dualkey created when ratification did not come in time.
ALTER TABLE releases ADD COLUMN reisolation_action_id TEXT;
ALTER TABLE releases ADD COLUMN reisolated_at INTEGER;

-- A break-glass release is born approved and always carries its deadline.
CREATE TRIGGER releases_break_glass_deadline BEFORE INSERT ON releases
WHEN NEW.break_glass = 1 AND NEW.ratify_by IS NULL
BEGIN SELECT RAISE(ABORT, 'break-glass release without a ratification deadline'); END;

-- The two-person rule, now also admitting the ratification of a break-glass release (an
-- approval after the fact), which is never by its requester either.
DROP TRIGGER approvals_two_person_rule;
CREATE TRIGGER approvals_two_person_rule
BEFORE INSERT ON approvals
BEGIN
    SELECT RAISE(ABORT, 'self_approval_forbidden')
    WHERE NEW.approver = (SELECT requested_by FROM releases WHERE id = NEW.release_id);
    SELECT RAISE(ABORT, 'release_not_pending')
    WHERE (SELECT status FROM releases WHERE id = NEW.release_id) IS NOT 'pending'
      AND (SELECT break_glass FROM releases WHERE id = NEW.release_id) IS NOT 1;
END;

CREATE INDEX releases_ratify ON releases (break_glass, ratify_by) WHERE break_glass = 1;
