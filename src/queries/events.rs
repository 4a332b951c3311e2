//! Reads of the event stream: the structural log and the stream's head.

use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::store::events as stream;
pub use crate::store::events::StructureEvent;
use crate::store::{workspaces as ws, DbConnection};

/// Which page of the structural log to read: newest first, at most `limit` events, with a seq
/// below `before_seq` and of `workspace` and `actor_id` when those are given.
pub struct Page<'a> {
    /// Only this workspace's events.
    pub workspace: Option<Uuid>,
    /// Only events this actor caused (its id: a key id, `admin`, a workspace id, a job).
    pub actor_id: Option<&'a str>,
    /// Only events older than this seq (exclusive).
    pub before_seq: Option<i64>,
    /// At most this many events.
    pub limit: i64,
}

/// The events of `page`. 404 for a workspace that never existed; a removed one keeps its
/// history.
pub fn structure_events(conn: &mut DbConnection, page: Page<'_>) -> AppResult<Vec<StructureEvent>> {
    if let Some(id) = page.workspace {
        if ws::find_row(conn, id)?.is_none() {
            return Err(AppError::workspace_not_found());
        }
    }
    let Page {
        workspace,
        actor_id,
        before_seq,
        limit,
    } = page;
    Ok(stream::structure_events_by(
        conn, workspace, actor_id, before_seq, limit,
    )?)
}

/// The newest seq committed to the stream (0 for an empty stream).
pub fn head_seq(conn: &mut DbConnection) -> AppResult<i64> {
    Ok(stream::stream_head(conn)?.last_seq)
}
