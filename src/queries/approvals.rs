//! Approval request reads.

use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::store::approvals::{self as store, Approval, PendingApproval};
use crate::store::{workspaces as ws, DbConnection};

/// A workspace's requests, newest first, at most `limit`. 404 for a workspace that never
/// existed; a removed one still lists its history.
pub fn list_for_workspace(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    limit: i64,
) -> AppResult<Vec<Approval>> {
    if ws::find_row(conn, workspace_id)?.is_none() {
        return Err(AppError::workspace_not_found());
    }
    Ok(store::list_for_workspace(conn, workspace_id, limit)?)
}

/// Every live workspace's pending requests with the workspace's name, newest first, at most
/// `limit`.
pub fn list_pending(conn: &mut DbConnection, limit: i64) -> AppResult<Vec<PendingApproval>> {
    Ok(store::list_pending(conn, limit)?)
}
