//! Secret listings: names and times only, never values.

use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::secrets::{global_listing, merged_listing, SecretSummary};
use crate::store::{secrets as store, workspaces as ws, DbConnection};

/// A live workspace's secret names with the global ones it does not override, sorted by key.
/// 404 for a workspace that is unknown or removed.
pub fn list_workspace(conn: &mut DbConnection, id: Uuid) -> AppResult<Vec<SecretSummary>> {
    if ws::find_live_row(conn, id)?.is_none() {
        return Err(AppError::workspace_not_found());
    }
    Ok(merged_listing(
        store::list_workspace(conn, id)?,
        store::list_global(conn)?,
    ))
}

/// Every global secret's name, sorted by key.
pub fn list_global(conn: &mut DbConnection) -> AppResult<Vec<SecretSummary>> {
    Ok(global_listing(store::list_global(conn)?))
}
