-- People: API keys with roles, browser sessions made from them, and who did what.
-- Keys and session ids are stored only as hex SHA-256 hashes.
CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    key_hash     TEXT NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    key_id     UUID NOT NULL REFERENCES api_keys(id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_key_idx ON sessions (key_id);

-- Who caused an event or an activity row: {"type","id","name"}; actor_id repeats the id for
-- filtering. Rows written before this migration have none.
ALTER TABLE live_events ADD COLUMN actor JSONB;
ALTER TABLE structure_events ADD COLUMN actor JSONB;
ALTER TABLE structure_events ADD COLUMN actor_id TEXT;
CREATE INDEX structure_events_actor_seq_idx ON structure_events (actor_id, seq DESC);
ALTER TABLE activity_logs ADD COLUMN actor JSONB;
