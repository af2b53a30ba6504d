-- Release policy: what each release was decided under, and what each approver held.

-- The rule that applied (its name), the policy's hash, and the rule itself as JSON
-- ({"name","deny","slots":[{"role","count"}],"request_ttl_ms","approval_ttl_ms","exclude_isolator"}),
-- so a release keeps the rule it was requested under even after the policy changes.
ALTER TABLE releases ADD COLUMN policy_rule TEXT;
ALTER TABLE releases ADD COLUMN policy_hash TEXT;
ALTER TABLE releases ADD COLUMN policy_applied TEXT;
-- The device as MDE described it at request time (JSON), and who isolated it (the requestor of
-- its latest Isolate action), for rules and for explaining decisions later.
ALTER TABLE releases ADD COLUMN device TEXT;
ALTER TABLE releases ADD COLUMN isolated_by TEXT;

-- The approver's roles when they approved (JSON array): slots are filled by role.
ALTER TABLE approvals ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';

-- Velocity guards count a person's requests and approvals in the last hour.
CREATE INDEX approvals_approver_at ON approvals (approver, at);
CREATE INDEX releases_requested_by_at ON releases (requested_by, requested_at);
