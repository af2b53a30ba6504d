-- Evidence an auditor can check off the host (issue 11): every audit entry is a leaf of an
-- RFC 6962 Merkle tree, signed tree heads (checkpoints) are stored, the policy documents
-- decisions were made under are kept, and off-host forwarders keep a cursor each.

-- The seq of the previous entry about the same release (NULL for a release's first entry and
-- for entries about no release), so a release's entries form a chain of their own. Part of an
-- entry's leaf data; the hash chain itself is unchanged.
ALTER TABLE audit_log ADD COLUMN release_prev_seq INTEGER CHECK (release_prev_seq IS NULL OR release_prev_seq >= 1);

-- The one time the append-only trail is written to: filling the new column of existing entries.
DROP TRIGGER audit_log_no_update;
UPDATE audit_log
SET release_prev_seq = (
    SELECT MAX(p.seq) FROM audit_log p WHERE p.release_id = audit_log.release_id AND p.seq < audit_log.seq
)
WHERE release_id IS NOT NULL;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The tree: one hash per complete perfect subtree. Node (level, idx) is the Merkle tree hash of
-- leaves [idx * 2^level, (idx + 1) * 2^level); level 0 holds the leaf hashes, leaf idx = seq - 1.
-- About two rows per entry; every root and proof is computed from O(log n) of them. The rows of
-- entries that existed before this migration are written by dualkey when it migrates (SQLite
-- has no SHA-256), in the same run.
CREATE TABLE audit_tree (
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 62),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    -- 32 raw bytes of SHA-256.
    hash  BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;

-- Signed tree heads: a C2SP tlog-checkpoint note for the tree of `size` entries, each also
-- recorded in the trail as a `checkpoint` entry (at seq `recorded_seq` = size + 1).
CREATE TABLE audit_checkpoints (
    size         INTEGER PRIMARY KEY CHECK (size >= 1),
    -- 32 raw bytes: the tree's root hash at `size`.
    root         BLOB    NOT NULL CHECK (length(root) = 32),
    -- The whole signed note as served.
    note         TEXT    NOT NULL CHECK (length(note) > 0),
    key_name     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    recorded_seq INTEGER NOT NULL UNIQUE CHECK (recorded_seq = size + 1)
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;

-- Every validated policy dualkey has put in force, as the canonical JSON its hash is taken over,
-- so evidence can carry the policy a release was decided under (the trail holds only its hash).
CREATE TABLE policy_documents (
    hash        TEXT    PRIMARY KEY CHECK (length(hash) = 64),
    document    TEXT    NOT NULL CHECK (json_valid(document)),
    recorded_at INTEGER NOT NULL
);

-- Off-host copies of the trail ([[audit.forward]]): how far each forwarder is known delivered.
CREATE TABLE audit_forwarders (
    name          TEXT    PRIMARY KEY CHECK (length(name) > 0),
    -- Every entry up to this seq is known delivered (0: none yet).
    delivered_seq INTEGER NOT NULL DEFAULT 0 CHECK (delivered_seq >= 0),
    last_error    TEXT,
    last_error_at INTEGER,
    updated_at    INTEGER NOT NULL
);
