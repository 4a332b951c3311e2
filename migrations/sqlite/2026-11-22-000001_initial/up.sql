-- Canopy schema, SQLite dialect: uuid, jsonb and timestamptz columns are TEXT (timestamps as
-- RFC 3339 UTC with fixed microseconds, so text order is time order).

CREATE TABLE workspaces (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    role              TEXT,
    tier              INTEGER NOT NULL DEFAULT 3,
    status            TEXT NOT NULL DEFAULT 'provisioning'
                      CHECK (status IN ('provisioning','online','degraded','offline','failed','paused','removed')),
    source_bundle_id  TEXT,
    agent_card        TEXT,
    url               TEXT,
    parent_id         TEXT REFERENCES workspaces(id),
    forwarded_to      TEXT REFERENCES workspaces(id),
    last_heartbeat_at TEXT,
    last_error_rate   REAL NOT NULL DEFAULT 0,
    last_sample_error TEXT,
    active_tasks      INTEGER NOT NULL DEFAULT 0,
    uptime_seconds    INTEGER NOT NULL DEFAULT 0,
    current_task      TEXT,
    runtime           TEXT,
    model             TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX workspaces_parent_id_idx ON workspaces (parent_id);
CREATE INDEX workspaces_status_idx ON workspaces (status);

CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id),
    model          TEXT,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','removed','moved','replaced')),
    removed_at     TEXT,
    removal_reason TEXT,
    created_at     TEXT NOT NULL
);
-- The one-active-agent rule lives in the database, so concurrent assignments cannot both win.
CREATE UNIQUE INDEX agents_one_active_per_workspace ON agents (workspace_id) WHERE status = 'active';

CREATE TABLE workspace_secrets (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    encrypted_value BLOB NOT NULL,
    wrapped_key     BLOB NOT NULL,
    key_id          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (workspace_id, key)
);

CREATE TABLE global_secrets (
    id              TEXT PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    encrypted_value BLOB NOT NULL,
    wrapped_key     BLOB NOT NULL,
    key_id          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE canvas_layouts (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    x            REAL NOT NULL DEFAULT 0,
    y            REAL NOT NULL DEFAULT 0,
    collapsed    BOOLEAN NOT NULL DEFAULT 0
);

-- Single row: the canvas viewport is global, as in the reference platform.
CREATE TABLE canvas_viewport (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    x        REAL NOT NULL DEFAULT 0,
    y        REAL NOT NULL DEFAULT 0,
    zoom     REAL NOT NULL DEFAULT 1,
    saved_at TEXT NOT NULL
);

CREATE TABLE structure_events (
    id           TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    workspace_id TEXT,
    agent_id     TEXT,
    target_id    TEXT,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX structure_events_workspace_seq_idx ON structure_events (workspace_id, seq DESC);

CREATE TRIGGER structure_events_no_update
    BEFORE UPDATE ON structure_events
    BEGIN SELECT RAISE(ABORT, 'structure_events is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER structure_events_no_delete
    BEFORE DELETE ON structure_events
    BEGIN SELECT RAISE(ABORT, 'structure_events is append-only: DELETE is not allowed'); END;

CREATE TABLE activity_logs (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    activity_type TEXT NOT NULL,
    source_id     TEXT,
    target_id     TEXT,
    method        TEXT,
    summary       TEXT,
    request_body  TEXT,
    response_body TEXT,
    metadata      TEXT,
    duration_ms   INTEGER,
    status        TEXT NOT NULL DEFAULT 'ok',
    error_detail  TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX activity_logs_workspace_type_created_idx ON activity_logs (workspace_id, activity_type, created_at DESC);
CREATE INDEX activity_logs_workspace_created_idx ON activity_logs (workspace_id, created_at DESC);
CREATE INDEX activity_logs_created_idx ON activity_logs (created_at);

CREATE TABLE workspace_auth_tokens (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    token_hash   TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX workspace_auth_tokens_live_idx ON workspace_auth_tokens (workspace_id) WHERE revoked_at IS NULL;

-- The sequenced event stream every instance relays from. seq is assigned under the stream lock.
CREATE TABLE live_events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    workspace_id TEXT,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX live_events_created_idx ON live_events (created_at);

CREATE TABLE leader_leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    expires_at    TEXT NOT NULL
);

-- One row: the stream's epoch (a new database is a new stream) and the last seq handed out.
CREATE TABLE stream_meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    epoch    TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0
);
INSERT INTO stream_meta (id, epoch, last_seq) VALUES (1, lower(hex(randomblob(16))), 0);
