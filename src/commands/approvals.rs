//! Approval requests: asked by an agent (or the admin), decided exactly once by a person or by
//! expiry. Each change and its event commit together (DESIGN.md invariant 1).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::workspaces::require_live;
use crate::domain::approvals::{ApprovalStatus, Decision, NewApproval, EXPIRED_DECIDER};
use crate::domain::events::EventKind;
use crate::error::{AppError, AppResult};
use crate::store::approvals::{self as store, Approval};
use crate::store::{NewEvent, Tx};

/// Stores a pending request that expires after `timeout`; emits APPROVAL_REQUESTED on the
/// workspace and, when it has a parent, APPROVAL_ESCALATED on the parent (the reference's
/// auto-escalation). Returns the request's id.
pub fn request(
    tx: &mut Tx<'_>,
    workspace_id: Uuid,
    new: NewApproval,
    timeout: Duration,
) -> AppResult<Uuid> {
    tx.lock_stream()?;
    let workspace = require_live(tx, workspace_id)?;
    let id = Uuid::new_v4();
    let now = Utc::now();
    let expires_at =
        now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::days(3650));
    store::insert(tx.conn(), id, workspace_id, &new, now, expires_at)?;
    tx.append(NewEvent::new(
        EventKind::ApprovalRequested,
        workspace_id,
        json!({
            "approval_id": id,
            "action": new.action,
            "reason": new.reason,
            "task_id": new.task_id,
            "workspace_name": workspace.name,
            "expires_at": expires_at,
        }),
    ))?;
    if let Some(parent) = workspace.parent() {
        tx.append(NewEvent::new(
            EventKind::ApprovalEscalated,
            parent,
            json!({
                "approval_id": id,
                "from_workspace_id": workspace_id,
                "action": new.action,
                "reason": new.reason,
            }),
        ))?;
    }
    Ok(id)
}

fn not_found() -> AppError {
    AppError::NotFound("approval not found".into())
}

/// 409 with the first decision, for a second (or concurrent) one.
fn already_decided(first: &Approval) -> AppError {
    AppError::ConflictWith(json!({
        "error": "approval already decided",
        "approval_id": first.id,
        "status": first.status,
        "decided_by": first.decided_by,
        "decided_at": first.decided_at,
    }))
}

/// A person's decision on one of `workspace_id`'s requests. Exactly one decision wins: the
/// guarded UPDATE runs under the stream lock, so a concurrent second decision (on any
/// instance) finds the row decided and gets 409 with the first decision.
pub fn decide(
    tx: &mut Tx<'_>,
    workspace_id: Uuid,
    approval_id: Uuid,
    decision: Decision,
    decided_by: String,
) -> AppResult<Approval> {
    tx.lock_stream()?;
    // A removed workspace's requests are history: nobody acts on its behalf any more.
    super::workspaces::require_live(tx, workspace_id)?;
    let found = store::find(tx.conn(), approval_id)?
        .filter(|a| a.workspace_id == workspace_id)
        .ok_or_else(not_found)?;
    let now = Utc::now();
    if !store::decide(
        tx.conn(),
        approval_id,
        decision.status(),
        &decided_by,
        now,
        None,
    )? {
        return Err(already_decided(&found));
    }
    tx.append(decided_event(
        workspace_id,
        approval_id,
        decision.status(),
        &decided_by,
        now,
    ))?;
    store::find(tx.conn(), approval_id)?.ok_or_else(not_found)
}

/// Denies a pending request whose deadline passed, as `decided_by: "expired"`, with its
/// event. `false` when it was already decided (or is not due): nothing changes.
pub fn expire(tx: &mut Tx<'_>, approval_id: Uuid, now: DateTime<Utc>) -> AppResult<bool> {
    tx.lock_stream()?;
    let Some(found) = store::find(tx.conn(), approval_id)? else {
        return Ok(false);
    };
    if !store::decide(
        tx.conn(),
        approval_id,
        ApprovalStatus::Denied,
        EXPIRED_DECIDER,
        now,
        Some(now),
    )? {
        return Ok(false);
    }
    tx.append(decided_event(
        found.workspace_id,
        approval_id,
        ApprovalStatus::Denied,
        EXPIRED_DECIDER,
        now,
    ))?;
    Ok(true)
}

fn decided_event(
    workspace_id: Uuid,
    approval_id: Uuid,
    status: ApprovalStatus,
    decided_by: &str,
    decided_at: DateTime<Utc>,
) -> NewEvent {
    NewEvent::new(
        EventKind::ApprovalDecided,
        workspace_id,
        json!({
            "approval_id": approval_id,
            "decision": status.as_str(),
            "decided_by": decided_by,
            "decided_at": decided_at,
        }),
    )
}
