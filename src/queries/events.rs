//! Reads of the event stream: the structural log and the stream's head.

use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::store::events as stream;
pub use crate::store::events::StructureEvent;
use crate::store::{workspaces as ws, DbConnection};

/// A page of the structural log, newest first: at most `limit` events with a seq below
/// `before_seq` (when given), of `workspace` and caused by the actor `actor_id` (when given).
/// 404 for a workspace that never existed; a removed one keeps its history.
pub fn structure_events(
    conn: &mut DbConnection,
    workspace: Option<Uuid>,
    actor_id: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> AppResult<Vec<StructureEvent>> {
    if let Some(id) = workspace {
        if ws::find_row(conn, id)?.is_none() {
            return Err(AppError::workspace_not_found());
        }
    }
    Ok(stream::structure_events_by(
        conn, workspace, actor_id, before_seq, limit,
    )?)
}

/// The newest seq committed to the stream (0 for an empty stream).
pub fn head_seq(conn: &mut DbConnection) -> AppResult<i64> {
    Ok(stream::stream_head(conn)?.last_seq)
}
