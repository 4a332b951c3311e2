//! `approval_requests`: what agents asked people, and what the people (or the clock) decided.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::schema::{approval_requests, workspaces};
use super::sql_types::{DbJson, DbTime, DbUuid};
use super::DbConnection;
use crate::domain::approvals::{ApprovalStatus, NewApproval};

/// An approval request as the API shows it.
#[derive(Serialize, Clone, Debug)]
pub struct Approval {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub task_id: Option<String>,
    pub action: String,
    pub reason: Option<String>,
    pub context: serde_json::Value,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A pending request across workspaces, with its workspace's name (`GET /approvals/pending`).
#[derive(Serialize, Clone, Debug)]
pub struct PendingApproval {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub task_id: Option<String>,
    pub action: String,
    pub reason: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = approval_requests)]
struct ApprovalRow {
    id: DbUuid,
    workspace_id: DbUuid,
    task_id: Option<String>,
    action: String,
    reason: Option<String>,
    context: DbJson,
    status: String,
    decided_by: Option<String>,
    decided_at: Option<DbTime>,
    created_at: DbTime,
    expires_at: DbTime,
}

impl From<ApprovalRow> for Approval {
    fn from(r: ApprovalRow) -> Approval {
        Approval {
            id: r.id.0,
            workspace_id: r.workspace_id.0,
            task_id: r.task_id,
            action: r.action,
            reason: r.reason,
            context: r.context.0,
            status: r.status,
            decided_by: r.decided_by,
            decided_at: r.decided_at.map(|t| t.0),
            created_at: r.created_at.0,
            expires_at: r.expires_at.0,
        }
    }
}

pub fn insert(
    conn: &mut DbConnection,
    id: Uuid,
    workspace_id: Uuid,
    new: &NewApproval,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(approval_requests::table)
        .values((
            approval_requests::id.eq(DbUuid(id)),
            approval_requests::workspace_id.eq(DbUuid(workspace_id)),
            approval_requests::task_id.eq(&new.task_id),
            approval_requests::action.eq(&new.action),
            approval_requests::reason.eq(&new.reason),
            approval_requests::context.eq(DbJson(new.context.clone())),
            approval_requests::status.eq(ApprovalStatus::Pending.as_str()),
            approval_requests::created_at.eq(DbTime(now)),
            approval_requests::expires_at.eq(DbTime(expires_at)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<Approval>> {
    Ok(approval_requests::table
        .filter(approval_requests::id.eq(DbUuid(id)))
        .select(ApprovalRow::as_select())
        .first(conn)
        .optional()?
        .map(Approval::from))
}

/// A workspace's requests, newest first.
pub fn list_for_workspace(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    limit: i64,
) -> QueryResult<Vec<Approval>> {
    Ok(approval_requests::table
        .filter(approval_requests::workspace_id.eq(DbUuid(workspace_id)))
        .order((
            approval_requests::created_at.desc(),
            approval_requests::id.desc(),
        ))
        .limit(limit)
        .select(ApprovalRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Approval::from)
        .collect())
}

/// Every live workspace's pending requests with the workspace's name, newest first.
pub fn list_pending(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<PendingApproval>> {
    let rows: Vec<(ApprovalRow, String)> = approval_requests::table
        .inner_join(workspaces::table)
        .filter(approval_requests::status.eq(ApprovalStatus::Pending.as_str()))
        .filter(workspaces::status.ne("removed"))
        .order((
            approval_requests::created_at.desc(),
            approval_requests::id.desc(),
        ))
        .limit(limit)
        .select((ApprovalRow::as_select(), workspaces::name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(r, workspace_name)| PendingApproval {
            id: r.id.0,
            workspace_id: r.workspace_id.0,
            workspace_name,
            task_id: r.task_id,
            action: r.action,
            reason: r.reason,
            status: r.status,
            created_at: r.created_at.0,
            expires_at: r.expires_at.0,
        })
        .collect())
}

/// Decides a pending request: the one guarded UPDATE that moves it out of `pending`. `true`
/// when this call decided it; `false` when it was not pending (already decided, or, with
/// `expired_before`, not yet due).
pub fn decide(
    conn: &mut DbConnection,
    id: Uuid,
    status: ApprovalStatus,
    decided_by: &str,
    now: DateTime<Utc>,
    expired_before: Option<DateTime<Utc>>,
) -> QueryResult<bool> {
    let pending = approval_requests::table
        .filter(approval_requests::id.eq(DbUuid(id)))
        .filter(approval_requests::status.eq(ApprovalStatus::Pending.as_str()));
    let values = (
        approval_requests::status.eq(status.as_str()),
        approval_requests::decided_by.eq(decided_by),
        approval_requests::decided_at.eq(DbTime(now)),
    );
    let changed = match expired_before {
        Some(t) => diesel::update(pending.filter(approval_requests::expires_at.le(DbTime(t))))
            .set(values)
            .execute(conn)?,
        None => diesel::update(pending).set(values).execute(conn)?,
    };
    Ok(changed == 1)
}

/// Pending requests whose time ran out, oldest deadline first (at most `limit`).
pub fn expired_pending(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    Ok(approval_requests::table
        .filter(approval_requests::status.eq(ApprovalStatus::Pending.as_str()))
        .filter(approval_requests::expires_at.le(DbTime(now)))
        .order(approval_requests::expires_at.asc())
        .limit(limit)
        .select(approval_requests::id)
        .load::<DbUuid>(conn)?
        .into_iter()
        .map(|id| id.0)
        .collect())
}
