//! Activity commands: an agent's log line and a message to the people on the canvas, each an
//! activity row with its ACTIVITY_LOGGED event.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::workspaces::require_live;
use crate::domain::events::EventKind;
use crate::domain::validation::{truncate_utf8, ActivityType};
use crate::error::AppResult;
use crate::store::activity::{self, NewActivity};
use crate::store::{NewEvent, Tx};

/// Longest summary stored for a notify message (the full text is in `response_body`).
pub const NOTIFY_SUMMARY_BYTES: usize = 200;

/// An agent's activity line (`POST /workspaces/:id/activity`), parsed at the boundary.
pub struct LogActivity {
    /// What kind of activity (`a2a_send`, `task_update`, …).
    pub activity_type: ActivityType,
    /// The workspace it comes from (the path's, when given).
    pub source_id: Option<Uuid>,
    /// The workspace it concerns, if another.
    pub target_id: Option<Uuid>,
    /// The A2A method, for calls.
    pub method: Option<String>,
    /// One line for people.
    pub summary: Option<String>,
    /// `ok` unless the agent says otherwise.
    pub status: String,
    /// Why it failed, when it did.
    pub error_detail: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<i32>,
    /// What was sent (bounded at the boundary).
    pub request_body: Option<Value>,
    /// What came back (bounded at the boundary).
    pub response_body: Option<Value>,
    /// Anything else the agent keeps with it.
    pub metadata: Option<Value>,
}

/// Stores an activity row on a live workspace with its ACTIVITY_LOGGED event; returns the
/// row's id. 404 for a workspace that is unknown or removed.
pub fn log(tx: &mut Tx<'_>, workspace_id: Uuid, input: LogActivity) -> AppResult<Uuid> {
    tx.lock_stream()?;
    require_live(tx, workspace_id)?;
    let row = NewActivity {
        id: Uuid::new_v4(),
        workspace_id,
        activity_type: input.activity_type.as_str().to_string(),
        source_id: input.source_id,
        target_id: input.target_id,
        method: input.method,
        summary: input.summary,
        request_body: input.request_body,
        response_body: input.response_body,
        metadata: input.metadata,
        duration_ms: input.duration_ms,
        status: input.status,
        error_detail: input.error_detail,
        created_at: Utc::now(),
    };
    append_activity(tx, &row)?;
    Ok(row.id)
}

/// Inserts an activity row and appends its ACTIVITY_LOGGED event, in the caller's transaction
/// (which holds the stream lock).
pub(crate) fn append_activity(tx: &mut Tx<'_>, row: &NewActivity) -> AppResult<()> {
    let actor = tx.actor().clone();
    activity::insert(tx.conn(), row, Some(&actor))?;
    tx.append(NewEvent::new(
        EventKind::ActivityLogged,
        row.workspace_id,
        json!({
            "id": row.id,
            "activity_type": row.activity_type,
            "method": row.method,
            "summary": row.summary,
            "status": row.status,
            "source_id": row.source_id,
            "target_id": row.target_id,
            "duration_ms": row.duration_ms,
        }),
    ))?;
    Ok(())
}

/// A message to the people watching the canvas (`POST /workspaces/:id/notify`).
pub struct Notify {
    /// The text, non-blank.
    pub message: String,
    /// Already validated: objects with `uri`, `name`, optional `mimeType` and `size`.
    pub attachments: Vec<Value>,
}

/// Stores the message as an `a2a_receive` row addressed to the canvas and appends
/// AGENT_MESSAGE (the row itself announces nothing). 404 for a workspace that is unknown or removed.
pub fn notify(tx: &mut Tx<'_>, workspace_id: Uuid, input: Notify) -> AppResult<()> {
    tx.lock_stream()?;
    let workspace = require_live(tx, workspace_id)?;
    let parts: Vec<Value> = input
        .attachments
        .iter()
        .map(|file| json!({ "kind": "file", "file": file }))
        .collect();
    let row = NewActivity {
        id: Uuid::new_v4(),
        workspace_id,
        activity_type: ActivityType::A2aReceive.as_str().to_string(),
        // Addressed to the people on the canvas: stored the way the reference stores it, with
        // no source workspace, so the chat history loader
        // (`?type=a2a_receive&source=canvas`, i.e. `source_id IS NULL`) finds it.
        source_id: None,
        target_id: None,
        method: Some("notify".into()),
        summary: Some(truncate_utf8(&input.message, NOTIFY_SUMMARY_BYTES).to_string()),
        request_body: None,
        response_body: Some(json!({ "result": input.message, "parts": parts })),
        metadata: None,
        duration_ms: None,
        status: "ok".into(),
        error_detail: None,
        created_at: Utc::now(),
    };
    let actor = tx.actor().clone();
    activity::insert(tx.conn(), &row, Some(&actor))?;
    let mut payload =
        json!({ "message": input.message, "workspace_id": workspace_id, "name": workspace.name });
    if !input.attachments.is_empty() {
        payload["attachments"] = Value::Array(input.attachments);
    }
    tx.append(NewEvent::new(
        EventKind::AgentMessage,
        workspace_id,
        payload,
    ))?;
    Ok(())
}
