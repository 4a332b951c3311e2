//! Registry reads: discovery, access checks and peers, by the hierarchy.

use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::store::workspaces::{self as ws, Workspace, WorkspaceRow};
use crate::store::DbConnection;

/// Where `caller` may reach `target` (`GET /registry/discover/:id`): the target's live row.
/// 404 for a target that is unknown or removed, then 403 when the hierarchy forbids the two
/// to talk.
pub fn discover(conn: &mut DbConnection, caller: Uuid, target: Uuid) -> AppResult<WorkspaceRow> {
    let allowed = ws::parent_map(conn)?.can_communicate(caller, target);
    let row = ws::find_live_row(conn, target)?.ok_or_else(AppError::workspace_not_found)?;
    if !allowed {
        return Err(AppError::Forbidden("workspaces cannot communicate".into()));
    }
    Ok(row)
}

/// Whether two workspaces may talk, by the hierarchy (`POST /registry/check-access`).
pub fn can_communicate(conn: &mut DbConnection, caller: Uuid, target: Uuid) -> AppResult<bool> {
    Ok(ws::parent_map(conn)?.can_communicate(caller, target))
}

/// A live workspace's peers: its siblings, then its children (each oldest first), then its
/// parent. One read of the live workspaces. 404 for a workspace that is unknown or removed.
pub fn peers(conn: &mut DbConnection, id: Uuid) -> AppResult<Vec<Workspace>> {
    let all = ws::list_live(conn)?;
    let parent = all
        .iter()
        .find(|w| w.id == id)
        .ok_or_else(AppError::workspace_not_found)?
        .parent_id;
    let (mut siblings, mut children, mut above) = (Vec::new(), Vec::new(), Vec::new());
    for w in all.into_iter().filter(|w| w.id != id) {
        if w.parent_id == parent {
            siblings.push(w);
        } else if w.parent_id == Some(id) {
            children.push(w);
        } else if Some(w.id) == parent {
            above.push(w);
        }
    }
    siblings.extend(children);
    siblings.extend(above);
    Ok(siblings)
}
