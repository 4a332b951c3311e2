//! Workspace reads.

use uuid::Uuid;

use crate::domain::status::WorkspaceStatus;
use crate::error::{AppError, AppResult};
use crate::store::events::{self as stream, StructureEvent};
use crate::store::workspaces::{self as ws, Workspace, WorkspaceRow};
use crate::store::DbConnection;

/// The row of a workspace that exists and is not removed; 404 otherwise.
pub fn live_row(conn: &mut DbConnection, id: Uuid) -> AppResult<WorkspaceRow> {
    ws::find_live_row(conn, id)?.ok_or_else(AppError::workspace_not_found)
}

/// Every live workspace with its layout, oldest first.
pub fn list_live(conn: &mut DbConnection) -> AppResult<Vec<Workspace>> {
    Ok(ws::list_live(conn)?)
}

/// A workspace in any status, with its newest structural event when it is removed (what a 410
/// carries); 404 for one that never existed.
pub fn with_last_event(
    conn: &mut DbConnection,
    id: Uuid,
) -> AppResult<(Workspace, Option<StructureEvent>)> {
    let workspace = ws::find(conn, id)?.ok_or_else(AppError::workspace_not_found)?;
    let last = if workspace.status == WorkspaceStatus::Removed.as_str() {
        stream::last_structure_event(conn, id)?
    } else {
        None
    };
    Ok((workspace, last))
}
