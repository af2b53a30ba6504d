-- The web console's sign-ins and sessions. Server-side state, so signing out (or an idle or
-- maximum lifetime passing) ends a session for good: a copied cookie is worth nothing after.

-- A sign-in under way: created when the console sends a browser to the identity provider and
-- consumed (deleted) when the provider sends it back to /ui/callback, at most once.
CREATE TABLE console_logins (
    -- SHA-256 (hex) of the OAuth `state` sent to the provider; the state itself is not stored.
    state_hash   TEXT PRIMARY KEY CHECK (length(state_hash) = 64),
    -- SHA-256 (hex) of the `dualkey_login` cookie of the browser that started it: a callback from
    -- another browser (login CSRF, a leaked URL) does not match.
    binding_hash TEXT NOT NULL CHECK (length(binding_hash) = 64),
    -- The ID token must echo it.
    nonce        TEXT NOT NULL CHECK (length(nonce) >= 32),
    -- PKCE code_verifier (RFC 7636), sent with the code exchange.
    verifier     TEXT NOT NULL CHECK (length(verifier) BETWEEN 43 AND 128),
    -- A /ui/ path to come back to.
    return_to    TEXT NOT NULL CHECK (substr(return_to, 1, 4) = '/ui/'),
    -- 1 when this is a step-up sign-in for a decision (prompt=login, max_age).
    reauth       INTEGER NOT NULL CHECK (reauth IN (0, 1)),
    -- ms since the epoch; a sign-in older than ten minutes is refused and swept.
    created_at   INTEGER NOT NULL
);

CREATE TABLE console_sessions (
    -- SHA-256 (hex) of the session cookie's value: reading the database gives no usable cookie.
    id_hash       TEXT PRIMARY KEY CHECK (length(id_hash) = 64),
    -- The person, exactly as the API would name them (auth.principal_claim of the ID token).
    principal     TEXT NOT NULL CHECK (length(principal) > 0),
    -- upn / preferred_username and display name, for showing and isolator matching.
    upn           TEXT,
    name          TEXT,
    -- JSON array of the app roles in the ID token at sign-in.
    roles         TEXT NOT NULL CHECK (json_valid(roles) AND json_type(roles) = 'array'),
    -- The token every state-changing form carries (CSRF), bound to this session.
    csrf_token    TEXT NOT NULL CHECK (length(csrf_token) >= 32),
    -- When dualkey signed the person in, and when the provider authenticated them (auth_time,
    -- else the sign-in time): decisions need a recent auth_time (console.reauth_for_decision).
    signed_in_at  INTEGER NOT NULL,
    auth_time     INTEGER NOT NULL,
    -- JSON array of the ID token's `amr` (how the person authenticated), when the provider gave one.
    amr           TEXT CHECK (amr IS NULL OR (json_valid(amr) AND json_type(amr) = 'array')),
    -- Last request seen (console.session_idle counts from here), and the hard end (session_max).
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL CHECK (expires_at > signed_in_at),
    -- Set by sign-out (or a newer sign-in replacing this one); an ended session never revives.
    ended_at      INTEGER
);

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
