-- One row the daemon rewrites to learn whether storage takes writes again after a write failed
-- with a storage error (disk full, I/O error, read-only): its probe commits here, so a healthy
-- disk is seen within seconds without touching releases or the audit chain.
CREATE TABLE write_probe (
    -- A single row: the probe overwrites it instead of growing the table.
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    -- When the last probe wrote it (ms since the epoch).
    probed_at INTEGER NOT NULL
);
