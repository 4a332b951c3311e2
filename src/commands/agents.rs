//! Agent assignment: which model works in a workspace. At most one active agent per workspace
//! (a partial unique index backs the check); each change appends its AGENT_* event.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::workspaces::require_live;
use crate::domain::events::EventKind;
use crate::domain::validation::ModelName;
use crate::error::{AppError, AppResult};
use crate::store::agents::{self, ActiveAgent};
use crate::store::{NewEvent, StoreError, Tx};

fn already_assigned() -> AppError {
    AppError::Conflict("workspace already has an active agent".into())
}

fn no_active_agent() -> AppError {
    AppError::NotFound("workspace has no active agent".into())
}

/// Inserts the active agent; the partial unique index is the final word when two requests
/// race past the check.
fn insert_active(
    tx: &mut Tx<'_>,
    agent_id: Uuid,
    workspace_id: Uuid,
    model: Option<&str>,
) -> AppResult<()> {
    agents::insert_active(tx.conn(), agent_id, workspace_id, model, Utc::now()).map_err(|e| {
        let e = StoreError::from(e);
        if e.is_unique_violation() {
            already_assigned()
        } else {
            e.into()
        }
    })
}

/// Assigns an agent running `model` to a live workspace (AGENT_ASSIGNED). 404 for a workspace
/// that is unknown or removed, 409 when it already has an active agent.
pub fn assign(tx: &mut Tx<'_>, workspace_id: Uuid, model: ModelName) -> AppResult<ActiveAgent> {
    tx.lock_stream()?;
    require_live(tx, workspace_id)?;
    if agents::active(tx.conn(), workspace_id)?.is_some() {
        return Err(already_assigned());
    }
    let agent = ActiveAgent {
        id: Uuid::new_v4(),
        model: Some(model.into_string()),
    };
    insert_active(tx, agent.id, workspace_id, agent.model.as_deref())?;
    tx.append(
        NewEvent::new(
            EventKind::AgentAssigned,
            workspace_id,
            json!({ "agent_id": agent.id, "model": agent.model }),
        )
        .with_agent(agent.id),
    )?;
    Ok(agent)
}

/// What a replacement did.
pub struct Replacement {
    /// The new active agent.
    pub agent: ActiveAgent,
    /// The model of the agent it replaced.
    pub old_model: Option<String>,
}

/// Retires the workspace's active agent and assigns a new one running `model`
/// (AGENT_REPLACED). 404 for a workspace that is not live or has no active agent.
pub fn replace(tx: &mut Tx<'_>, workspace_id: Uuid, model: ModelName) -> AppResult<Replacement> {
    tx.lock_stream()?;
    require_live(tx, workspace_id)?;
    let old = agents::active(tx.conn(), workspace_id)?.ok_or_else(no_active_agent)?;
    agents::retire(tx.conn(), old.id, "replaced", "replaced", Utc::now())?;
    let agent = ActiveAgent {
        id: Uuid::new_v4(),
        model: Some(model.into_string()),
    };
    insert_active(tx, agent.id, workspace_id, agent.model.as_deref())?;
    tx.append(
        NewEvent::new(
            EventKind::AgentReplaced,
            workspace_id,
            json!({ "agent_id": agent.id, "model": agent.model, "old_model": old.model }),
        )
        .with_agent(agent.id),
    )?;
    Ok(Replacement {
        agent,
        old_model: old.model,
    })
}

/// Retires the workspace's active agent (AGENT_REMOVED); returns it. 404 for a workspace that
/// is not live or has no active agent.
pub fn remove(tx: &mut Tx<'_>, workspace_id: Uuid) -> AppResult<ActiveAgent> {
    tx.lock_stream()?;
    require_live(tx, workspace_id)?;
    let agent = agents::active(tx.conn(), workspace_id)?.ok_or_else(no_active_agent)?;
    agents::retire(
        tx.conn(),
        agent.id,
        "removed",
        "removed by admin",
        Utc::now(),
    )?;
    tx.append(
        NewEvent::new(
            EventKind::AgentRemoved,
            workspace_id,
            json!({ "agent_id": agent.id, "model": agent.model }),
        )
        .with_agent(agent.id),
    )?;
    Ok(agent)
}

/// Moves the active agent of `source` to `target`, keeping its model; returns the new
/// assignment. 400 when they are the same workspace, 404 when either is not live or `source`
/// has no agent, 409 when `target` already has one.
pub fn move_agent(tx: &mut Tx<'_>, source: Uuid, target: Uuid) -> AppResult<ActiveAgent> {
    tx.lock_stream()?;
    if source == target {
        return Err(AppError::BadRequest(
            "target_workspace_id: must differ from the source workspace".into(),
        ));
    }
    require_live(tx, source)?;
    require_live(tx, target)
        .map_err(|_| AppError::NotFound("target workspace not found".into()))?;
    let agent = agents::active(tx.conn(), source)?.ok_or_else(no_active_agent)?;
    if agents::active(tx.conn(), target)?.is_some() {
        return Err(AppError::Conflict(
            "target workspace already has an active agent".into(),
        ));
    }
    // The assignment on the source ends; a new one starts on the target with the same model.
    agents::retire(
        tx.conn(),
        agent.id,
        "moved",
        &format!("moved to {target}"),
        Utc::now(),
    )?;
    let moved = ActiveAgent {
        id: Uuid::new_v4(),
        model: agent.model.clone(),
    };
    insert_active(tx, moved.id, target, moved.model.as_deref())?;
    tx.append(
        NewEvent::new(
            EventKind::AgentMoved,
            source,
            json!({ "agent_id": agent.id, "model": agent.model, "target_workspace_id": target }),
        )
        .with_agent(agent.id)
        .with_target(target),
    )?;
    tx.append(
        NewEvent::new(
            EventKind::AgentMoved,
            target,
            json!({ "agent_id": moved.id, "model": moved.model, "source_workspace_id": source }),
        )
        .with_agent(moved.id)
        .with_target(source),
    )?;
    Ok(moved)
}
