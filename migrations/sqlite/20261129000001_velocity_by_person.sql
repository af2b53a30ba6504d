-- Velocity guards count a person's requests and approvals in the last hour, where look-alike
-- identities (`bob`, `BOB`, `bоb` with a Cyrillic о) are one person. That comparison (NFKC case
-- folding and Unicode confusable skeletons) is done in Rust, over each identity's count in the
-- window, so the window is read by time first: these indexes cover it (time, then identity), and
-- the GROUP BY returns one row per identity active in the hour, not one per event.
CREATE INDEX approvals_at_approver ON approvals (at, approver);
CREATE INDEX releases_requested_at_by ON releases (requested_at, requested_by);
