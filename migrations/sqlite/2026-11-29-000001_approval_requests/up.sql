-- Approval requests: an agent asks a person before it acts. Decided exactly once: the status
-- leaves 'pending' by one guarded UPDATE, and a decided row always has its decider and time.
-- Timestamps are RFC 3339 UTC text with fixed microseconds, so text order is time order.
CREATE TABLE approval_requests (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    task_id      TEXT,
    action       TEXT NOT NULL,
    reason       TEXT,
    context      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'denied')),
    decided_by   TEXT,
    decided_at   TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    CHECK ((status = 'pending') = (decided_at IS NULL AND decided_by IS NULL))
);
CREATE INDEX approval_requests_workspace_created_idx ON approval_requests (workspace_id, created_at DESC);
CREATE INDEX approval_requests_pending_expiry_idx ON approval_requests (expires_at) WHERE status = 'pending';
