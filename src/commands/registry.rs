//! Registry commands: register, heartbeat, update-card, and the liveness transitions. Each
//! status change writes the status and its event in one transaction, guarded in SQL so it
//! happens once however many instances observe the cause.

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::events::EventKind;
use crate::domain::status::{on_heartbeat, WorkspaceStatus};
use crate::error::{AppError, AppResult};
use crate::secrets::hash_token;
use crate::store::workspaces::{self as ws, HeartbeatColumns, QuietBeat, WorkspaceRow};
use crate::store::{tokens, DbConnection, NewEvent, Tx};

fn gone() -> AppError {
    AppError::GoneWith(json!({ "error": "workspace removed", "status": "removed" }))
}

/// The workspace row for an agent call: 404 unknown, 410 removed.
pub fn agent_workspace(conn: &mut DbConnection, id: Uuid) -> AppResult<WorkspaceRow> {
    let row = ws::find_row(conn, id)?.ok_or_else(AppError::workspace_not_found)?;
    if row.status() == WorkspaceStatus::Removed {
        return Err(gone());
    }
    Ok(row)
}

/// 32 random bytes, base64url: returned once, stored only as a SHA-256 hash.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An agent's register call, parsed at the boundary.
pub struct Register {
    /// The workspace the agent runs.
    pub id: Uuid,
    /// Where the agent answers A2A calls (http or https).
    pub url: String,
    /// The agent's card, as it sent it (`{}` when absent).
    pub agent_card: Value,
    /// Whether the caller proved itself with the workspace's token or the admin token.
    pub authenticated: bool,
}

/// Returns the new token when this register issued one.
pub fn register(tx: &mut Tx<'_>, input: Register) -> AppResult<Option<String>> {
    tx.lock_stream()?;
    let row = agent_workspace(tx.conn(), input.id)?;
    if row.status() == WorkspaceStatus::Paused {
        return Err(AppError::Conflict(
            "workspace is paused; resume it before registering".into(),
        ));
    }
    let now = Utc::now();
    // Checked under the stream lock: two first registers cannot both mint a token.
    let token = if tokens::has_live_token(tx.conn(), input.id)? {
        if !input.authenticated {
            return Err(AppError::Unauthorized(
                "missing workspace auth token".into(),
            ));
        }
        None
    } else {
        let token = new_token();
        tokens::insert(tx.conn(), input.id, &hash_token(&token), &token[..8], now)?;
        Some(token)
    };
    ws::mark_registered(tx.conn(), input.id, &input.url, &input.agent_card, now)?;
    tx.append(NewEvent::new(
        EventKind::WorkspaceOnline,
        input.id,
        json!({ "url": input.url, "agent_card": input.agent_card }),
    ))?;
    Ok(token)
}

/// A heartbeat, parsed at the boundary.
pub struct Heartbeat {
    /// The workspace the agent runs.
    pub workspace_id: Uuid,
    /// What it reports: error rate, tasks, uptime, current task.
    pub columns: HeartbeatColumns,
}

/// Statuses a heartbeat with this error rate leaves where they are.
pub fn quiet_statuses(error_rate: f64) -> Vec<WorkspaceStatus> {
    use WorkspaceStatus::*;
    [Provisioning, Online, Degraded, Offline, Failed, Paused]
        .into_iter()
        .filter(|s| on_heartbeat(*s, error_rate).is_none())
        .collect()
}

/// The batched path's form of a heartbeat (`store::batcher`): written only when it moves
/// neither the status nor the task.
pub fn quiet_beat(beat: &Heartbeat) -> QuietBeat {
    QuietBeat {
        workspace_id: beat.workspace_id,
        columns: beat.columns.clone(),
        quiet: quiet_statuses(beat.columns.error_rate),
    }
}

/// A heartbeat the batched quiet path did not take (a status or task change, or a caller it
/// could not prove), under the stream lock: records the columns, applies the status machine
/// to `row` (the workspace as read in this transaction, see [`agent_workspace`]) and appends
/// WORKSPACE_ONLINE / WORKSPACE_DEGRADED / TASK_UPDATED as they apply (none for a quiet one).
pub fn heartbeat(tx: &mut Tx<'_>, row: &WorkspaceRow, beat: &Heartbeat) -> AppResult<()> {
    tx.lock_stream()?;
    let id = beat.workspace_id;
    let status = row.status();
    let next = on_heartbeat(status, beat.columns.error_rate);
    if !ws::record_heartbeat(tx.conn(), id, &beat.columns, status, next, Utc::now())? {
        return Err(AppError::Internal(anyhow::anyhow!(
            "workspace status changed under the stream lock"
        )));
    }
    match next {
        Some(WorkspaceStatus::Online) => {
            tx.append(NewEvent::new(
                EventKind::WorkspaceOnline,
                id,
                json!({ "recovered_from": status.as_str() }),
            ))?;
        }
        Some(WorkspaceStatus::Degraded) => {
            tx.append(NewEvent::new(
                EventKind::WorkspaceDegraded,
                id,
                json!({ "error_rate": beat.columns.error_rate, "sample_error": beat.columns.sample_error }),
            ))?;
        }
        _ => {}
    }
    if row.current_task.as_deref().unwrap_or_default() != beat.columns.current_task {
        tx.append(NewEvent::new(
            EventKind::TaskUpdated,
            id,
            json!({ "current_task": beat.columns.current_task, "active_tasks": beat.columns.active_tasks }),
        ))?;
    }
    Ok(())
}

/// Replaces the agent's card (AGENT_CARD_UPDATED). 404 for an unknown workspace, 410 for a
/// removed one.
pub fn update_card(tx: &mut Tx<'_>, id: Uuid, agent_card: Value) -> AppResult<()> {
    tx.lock_stream()?;
    agent_workspace(tx.conn(), id)?;
    ws::set_agent_card(tx.conn(), id, &agent_card, Utc::now())?;
    tx.append(NewEvent::new(
        EventKind::AgentCardUpdated,
        id,
        json!({ "agent_card": agent_card }),
    ))?;
    Ok(())
}

/// Offline if still silent since `silent_since`; returns whether it happened.
pub fn mark_offline(tx: &mut Tx<'_>, id: Uuid, silent_since: DateTime<Utc>) -> AppResult<bool> {
    tx.lock_stream()?;
    if !ws::mark_offline_if_silent(tx.conn(), id, silent_since, Utc::now())? {
        return Ok(false);
    }
    tx.append(NewEvent::new(EventKind::WorkspaceOffline, id, json!({})))?;
    Ok(true)
}

/// Fails a workspace still provisioning since before `before` (no register within
/// `timeout_seconds` s), with WORKSPACE_PROVISION_FAILED; returns whether it happened.
pub fn fail_provisioning(
    tx: &mut Tx<'_>,
    id: Uuid,
    before: DateTime<Utc>,
    timeout_seconds: u64,
) -> AppResult<bool> {
    tx.lock_stream()?;
    if !ws::fail_if_still_provisioning(tx.conn(), id, before, Utc::now())? {
        return Ok(false);
    }
    tx.append(NewEvent::new(
        EventKind::WorkspaceProvisionFailed,
        id,
        json!({ "error": format!("no register within {timeout_seconds} s") }),
    ))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkspaceStatus::*;

    #[test]
    fn quiet_statuses_follow_the_status_machine() {
        assert_eq!(quiet_statuses(0.0), vec![Online, Failed, Paused]);
        assert_eq!(quiet_statuses(0.3), vec![Online, Degraded, Failed, Paused]);
        assert_eq!(quiet_statuses(0.7), vec![Degraded, Failed, Paused]);
    }
}
