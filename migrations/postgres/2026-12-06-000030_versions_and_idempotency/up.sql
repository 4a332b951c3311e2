-- Workspace versions: +1 with every change that appends an event about the workspace, in the
-- same transaction (under the stream lock), so `If-Match` compares against what events say.
ALTER TABLE workspaces ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): one row per (caller, key). The
-- row is claimed by an INSERT before the request runs, so the primary key is what makes a
-- concurrent retry on any instance wait instead of running the command a second time.
-- `response_status` is NULL while the first request is in flight.
CREATE TABLE idempotency_keys (
    scope            TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    response_status  INTEGER,
    response_headers JSONB,
    response_body    BYTEA,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
