//! Activity reads.

use uuid::Uuid;

use crate::error::{AppError, AppResult};
pub use crate::store::activity::{Activity, ActivityFilter};
use crate::store::{activity, workspaces as ws, DbConnection};

/// The workspace's activity, newest first, as `filter` narrows it. 404 for a workspace that
/// never existed; a removed one still lists its history.
pub fn list(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    filter: &ActivityFilter,
) -> AppResult<Vec<Activity>> {
    if ws::find_row(conn, workspace_id)?.is_none() {
        return Err(AppError::workspace_not_found());
    }
    Ok(activity::list(conn, workspace_id, filter)?)
}
