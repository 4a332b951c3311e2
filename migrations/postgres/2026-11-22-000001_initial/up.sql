-- Canopy schema, PostgreSQL dialect. The SQLite tree has the same tables with TEXT in place of
-- uuid / jsonb / timestamptz.

CREATE TABLE workspaces (
    id                UUID PRIMARY KEY,
    name              TEXT NOT NULL,
    role              TEXT,
    tier              INTEGER NOT NULL DEFAULT 3,
    status            TEXT NOT NULL DEFAULT 'provisioning'
                      CHECK (status IN ('provisioning','online','degraded','offline','failed','paused','removed')),
    source_bundle_id  TEXT,
    agent_card        JSONB,
    url               TEXT,
    parent_id         UUID REFERENCES workspaces(id),
    forwarded_to      UUID REFERENCES workspaces(id),
    last_heartbeat_at TIMESTAMPTZ,
    last_error_rate   DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_sample_error TEXT,
    active_tasks      INTEGER NOT NULL DEFAULT 0,
    uptime_seconds    BIGINT NOT NULL DEFAULT 0,
    current_task      TEXT,
    runtime           TEXT,
    model             TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX workspaces_parent_id_idx ON workspaces (parent_id);
CREATE INDEX workspaces_status_idx ON workspaces (status);

CREATE TABLE agents (
    id             UUID PRIMARY KEY,
    workspace_id   UUID NOT NULL REFERENCES workspaces(id),
    model          TEXT,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','removed','moved','replaced')),
    removed_at     TIMESTAMPTZ,
    removal_reason TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);
-- The one-active-agent rule lives in the database, so concurrent assignments cannot both win.
CREATE UNIQUE INDEX agents_one_active_per_workspace ON agents (workspace_id) WHERE status = 'active';

CREATE TABLE workspace_secrets (
    id              UUID PRIMARY KEY,
    workspace_id    UUID NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    encrypted_value BYTEA NOT NULL,
    wrapped_key     BYTEA NOT NULL,
    key_id          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (workspace_id, key)
);

CREATE TABLE global_secrets (
    id              UUID PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    encrypted_value BYTEA NOT NULL,
    wrapped_key     BYTEA NOT NULL,
    key_id          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE canvas_layouts (
    workspace_id UUID PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    x            DOUBLE PRECISION NOT NULL DEFAULT 0,
    y            DOUBLE PRECISION NOT NULL DEFAULT 0,
    collapsed    BOOLEAN NOT NULL DEFAULT false
);

-- Single row: the canvas viewport is global, as in the reference platform.
CREATE TABLE canvas_viewport (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    x        DOUBLE PRECISION NOT NULL DEFAULT 0,
    y        DOUBLE PRECISION NOT NULL DEFAULT 0,
    zoom     DOUBLE PRECISION NOT NULL DEFAULT 1,
    saved_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE structure_events (
    id           UUID PRIMARY KEY,
    seq          BIGINT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    workspace_id UUID,
    agent_id     UUID,
    target_id    UUID,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX structure_events_workspace_seq_idx ON structure_events (workspace_id, seq DESC);

CREATE FUNCTION structure_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'structure_events is append-only: % is not allowed', TG_OP;
END
$$;
CREATE TRIGGER structure_events_no_update_delete
    BEFORE UPDATE OR DELETE ON structure_events
    FOR EACH ROW EXECUTE FUNCTION structure_events_append_only();
CREATE TRIGGER structure_events_no_truncate
    BEFORE TRUNCATE ON structure_events
    FOR EACH STATEMENT EXECUTE FUNCTION structure_events_append_only();

CREATE TABLE activity_logs (
    id            UUID PRIMARY KEY,
    workspace_id  UUID NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    activity_type TEXT NOT NULL,
    source_id     UUID,
    target_id     UUID,
    method        TEXT,
    summary       TEXT,
    request_body  JSONB,
    response_body JSONB,
    metadata      JSONB,
    duration_ms   INTEGER,
    status        TEXT NOT NULL DEFAULT 'ok',
    error_detail  TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX activity_logs_workspace_type_created_idx ON activity_logs (workspace_id, activity_type, created_at DESC);
CREATE INDEX activity_logs_workspace_created_idx ON activity_logs (workspace_id, created_at DESC);
CREATE INDEX activity_logs_created_idx ON activity_logs (created_at);

CREATE TABLE workspace_auth_tokens (
    id           UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces(id),
    token_hash   TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX workspace_auth_tokens_live_idx ON workspace_auth_tokens (workspace_id) WHERE revoked_at IS NULL;

-- The sequenced event stream every instance relays from. seq is assigned under the stream lock.
CREATE TABLE live_events (
    seq          BIGINT PRIMARY KEY,
    id           UUID NOT NULL,
    event_type   TEXT NOT NULL,
    workspace_id UUID,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX live_events_created_idx ON live_events (created_at);

CREATE TABLE leader_leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    fencing_token BIGINT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

-- One row: the stream's epoch (a new database is a new stream) and the last seq handed out.
CREATE TABLE stream_meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    epoch    TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0
);
INSERT INTO stream_meta (id, epoch, last_seq) VALUES (1, gen_random_uuid()::text, 0);
