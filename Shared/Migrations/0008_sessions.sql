-- Sessions (refresh-token families) move from Redis to PostgreSQL: a login must work while
-- Redis is down, and sessions must survive a Redis restart (docs/reliability.md).
--
-- A session is one login on one device; its refresh tokens rotate on every use. Only the
-- SHA-256 of a token is stored. A used token stays (used_at set) until its session is gone, so
-- presenting it again is recognised as reuse and ends the session. Expired sessions are
-- deleted with their tokens by aira-auth (hourly, `AIRA_SESSION_PURGE_INTERVAL`).
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    ip           text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    digest     text COLLATE "C" PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
