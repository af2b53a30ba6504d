-- Notifications: one row per message (an event for one channel), written in the transaction of
-- the change it reports, so a committed change always has its messages and a rolled-back one
-- never does. The delivery task sends each channel's messages in `seq` order.
CREATE TABLE notify_outbox (
    -- Creation order: a channel's messages are sent in this order.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The message id: the webhook-id of every attempt, the id in the API and the audit trail.
    id              TEXT NOT NULL UNIQUE CHECK (length(id) > 0),
    -- A [[notify.channels]] name (the URL itself, a secret, is never stored).
    channel         TEXT NOT NULL CHECK (length(channel) > 0),
    event           TEXT NOT NULL CHECK (length(event) > 0),
    release_id      TEXT,
    -- The message's data as sent: {"release": <view at the time of the event>, "url": ...}.
    data            TEXT NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
    -- When the event happened (ms since the epoch); max_age counts from here.
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- No attempt before this (backoff, Retry-After).
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    -- Set once, with the status that ends the message.
    finished_at     INTEGER,
    CHECK ((status = 'pending') = (finished_at IS NULL))
);

-- The head of each channel's queue.
CREATE INDEX notify_outbox_pending ON notify_outbox (channel, seq) WHERE status = 'pending';
CREATE INDEX notify_outbox_by_status ON notify_outbox (status, seq);
