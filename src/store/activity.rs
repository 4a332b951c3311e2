//! `activity_logs`: operational activity, kept for the retention period.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::schema::activity_logs;
use super::sql_types::{DbJson, DbTime, DbUuid};
use super::DbConnection;

#[derive(Clone, Debug)]
pub struct NewActivity {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub activity_type: String,
    pub source_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub method: Option<String>,
    pub summary: Option<String>,
    pub request_body: Option<serde_json::Value>,
    pub response_body: Option<serde_json::Value>,
    pub metadata: Option<serde_json::Value>,
    pub duration_ms: Option<i32>,
    pub status: String,
    pub error_detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Stores a row; `actor` is who wrote it (the person on the canvas, or the agent).
pub fn insert(
    conn: &mut DbConnection,
    a: &NewActivity,
    actor: Option<&crate::domain::people::Actor>,
) -> QueryResult<()> {
    diesel::insert_into(activity_logs::table)
        .values((
            activity_logs::id.eq(DbUuid(a.id)),
            activity_logs::workspace_id.eq(DbUuid(a.workspace_id)),
            activity_logs::activity_type.eq(&a.activity_type),
            activity_logs::source_id.eq(a.source_id.map(DbUuid)),
            activity_logs::target_id.eq(a.target_id.map(DbUuid)),
            activity_logs::method.eq(&a.method),
            activity_logs::summary.eq(&a.summary),
            activity_logs::request_body.eq(a.request_body.clone().map(DbJson)),
            activity_logs::response_body.eq(a.response_body.clone().map(DbJson)),
            activity_logs::metadata.eq(a.metadata.clone().map(DbJson)),
            activity_logs::duration_ms.eq(a.duration_ms),
            activity_logs::status.eq(&a.status),
            activity_logs::error_detail.eq(&a.error_detail),
            activity_logs::created_at.eq(DbTime(a.created_at)),
            activity_logs::actor.eq(actor.map(|a| DbJson(a.to_json()))),
        ))
        .execute(conn)
        .map(|_| ())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = activity_logs)]
struct ActivityRow {
    id: DbUuid,
    workspace_id: DbUuid,
    activity_type: String,
    source_id: Option<DbUuid>,
    target_id: Option<DbUuid>,
    method: Option<String>,
    summary: Option<String>,
    request_body: Option<DbJson>,
    response_body: Option<DbJson>,
    metadata: Option<DbJson>,
    duration_ms: Option<i32>,
    status: String,
    error_detail: Option<String>,
    created_at: DbTime,
    actor: Option<DbJson>,
}

/// An activity row as the API shows it: bodies only when set.
#[derive(Serialize, Clone, Debug, utoipa::ToSchema)]
pub struct Activity {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub activity_type: String,
    pub source_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub method: Option<String>,
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<serde_json::Value>,
    pub metadata: Option<serde_json::Value>,
    pub duration_ms: Option<i32>,
    pub status: String,
    pub error_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Who wrote it: `{"type","id","name"}` (null for rows written before actors existed).
    pub actor: Option<crate::domain::people::Actor>,
}

pub struct ActivityFilter {
    pub activity_type: Option<String>,
    /// `Some(true)`: only rows with a source workspace (agent); `Some(false)`: only without
    /// (canvas).
    pub from_agent: Option<bool>,
    pub limit: i64,
}

/// A workspace's activity, newest first.
pub fn list(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    filter: &ActivityFilter,
) -> QueryResult<Vec<Activity>> {
    let mut query = activity_logs::table
        .filter(activity_logs::workspace_id.eq(DbUuid(workspace_id)))
        .order((activity_logs::created_at.desc(), activity_logs::id.desc()))
        .limit(filter.limit)
        .select(ActivityRow::as_select())
        .into_boxed();
    if let Some(t) = &filter.activity_type {
        query = query.filter(activity_logs::activity_type.eq(t.clone()));
    }
    match filter.from_agent {
        Some(true) => query = query.filter(activity_logs::source_id.is_not_null()),
        Some(false) => query = query.filter(activity_logs::source_id.is_null()),
        None => {}
    }
    Ok(query
        .load(conn)?
        .into_iter()
        .map(|r| Activity {
            id: r.id.0,
            workspace_id: r.workspace_id.0,
            activity_type: r.activity_type,
            source_id: r.source_id.map(|v| v.0),
            target_id: r.target_id.map(|v| v.0),
            method: r.method,
            summary: r.summary,
            request_body: r.request_body.map(|v| v.0),
            response_body: r.response_body.map(|v| v.0),
            metadata: r.metadata.map(|v| v.0),
            duration_ms: r.duration_ms,
            status: r.status,
            error_detail: r.error_detail,
            created_at: r.created_at.0,
            actor: r
                .actor
                .and_then(|a| crate::domain::people::Actor::from_json(&a.0)),
        })
        .collect())
}

/// Deletes one batch of rows older than `cutoff`; returns how many went (0 when done).
pub fn delete_older_than(
    conn: &mut DbConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    let doomed: Vec<DbUuid> = activity_logs::table
        .filter(activity_logs::created_at.lt(DbTime(cutoff)))
        .order(activity_logs::created_at.asc())
        .limit(batch)
        .select(activity_logs::id)
        .load(conn)?;
    if doomed.is_empty() {
        return Ok(0);
    }
    diesel::delete(activity_logs::table.filter(activity_logs::id.eq_any(doomed))).execute(conn)
}
