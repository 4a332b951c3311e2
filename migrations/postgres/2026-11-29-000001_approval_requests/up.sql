-- Approval requests: an agent asks a person before it acts. Decided exactly once: the status
-- leaves 'pending' by one guarded UPDATE, and a decided row always has its decider and time.
CREATE TABLE approval_requests (
    id           UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    task_id      TEXT,
    action       TEXT NOT NULL,
    reason       TEXT,
    context      JSONB NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'denied')),
    decided_by   TEXT,
    decided_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    CHECK ((status = 'pending') = (decided_at IS NULL AND decided_by IS NULL))
);
CREATE INDEX approval_requests_workspace_created_idx ON approval_requests (workspace_id, created_at DESC);
CREATE INDEX approval_requests_pending_expiry_idx ON approval_requests (expires_at) WHERE status = 'pending';
