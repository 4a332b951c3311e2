//! Approvals: an agent asks a person before it acts (`POST /workspaces/:id/approvals`), the
//! canvas lists what waits (`GET /approvals/pending`, polled by the reference canvas every
//! 10 s) and a person decides (`POST /workspaces/:id/approvals/:approval_id/decide`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::openapi::{DbDown, ErrorBody, InputRefused, NoWorkspace, TokenRefused, WorkspaceGone};
use serde_json::{json, Value};

use super::auth::{Access, OnBehalf};
use super::body::{FieldLimit, Json, JsonBody, Query};
use super::principal::Principal;
use super::workspace_id;
use crate::app::{ActAs, AppState};
use crate::commands::approvals as commands;
use crate::domain::approvals::{self, parse_decided_by, Decision, NewApproval};
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, FieldError};
use crate::error::{AppError, AppResult};
use crate::queries::approvals as queries;

/// Requests listed when `?limit=` is absent.
pub const DEFAULT_APPROVALS_LIMIT: i64 = 50;
/// Most requests one list returns.
pub const MAX_APPROVALS_LIMIT: i64 = 500;

#[derive(Deserialize, ToSchema)]
/// The body of `POST /workspaces/:id/approvals`: what the agent wants to do and why.
pub struct CreateBody {
    #[schema(required = true, nullable = false, min_length = 1)]
    action: Option<String>,
    reason: Option<String>,
    task_id: Option<String>,
    context: Option<Value>,
}

impl JsonBody for CreateBody {
    const NULLABLE: &'static [&'static str] = &["reason", "task_id", "context"];
    const LIMITS: &'static [FieldLimit] = &[
        ("action", approvals::ACTION_MAX_BYTES),
        ("reason", approvals::REASON_MAX_BYTES),
        ("task_id", approvals::TASK_ID_MAX_BYTES),
        ("context", approvals::CONTEXT_MAX_BYTES),
    ];
}

/// `POST /workspaces/:id/approvals` (the workspace's agent or the admin) → 201
/// `{"approval_id","status":"pending"}`.
#[utoipa::path(
    post,
    path = "/workspaces/{id}/approvals",
    tag = "approvals",
    summary = "Ask a person before acting",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`{\"approval_id\", \"status\": \"pending\"}`", body = Object),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        InputRefused, TokenRefused, NoWorkspace, WorkspaceGone, DbDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %call.workspace))]
pub async fn create(Json(body): Json<CreateBody>, call: OnBehalf) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let new = NewApproval::parse(body.action, body.reason, body.task_id, body.context);
    let timeout = call.state().config.approval_timeout;
    let approval_id = call
        .execute(Access::Write, move |tx| {
            commands::request(tx, id, new?, timeout)
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({ "approval_id": approval_id, "status": "pending" })))
}

#[derive(Deserialize, IntoParams)]
/// `?limit=`: how many requests to list.
pub struct ListQuery {
    limit: Option<i64>,
}

/// `?limit=`, at most [`MAX_APPROVALS_LIMIT`]; `default` when absent.
fn limit(query: &ListQuery, default: i64) -> Result<i64, FieldError> {
    match query.limit {
        None => Ok(default),
        Some(n) if n >= 1 => Ok(n.min(MAX_APPROVALS_LIMIT)),
        Some(_) => Err(FieldError::new("limit", "must be a positive integer")),
    }
}

/// `GET /workspaces/:id/approvals`: the workspace's requests, newest first.
#[utoipa::path(
    get,
    path = "/workspaces/{id}/approvals",
    tag = "approvals",
    summary = "The workspace's approval requests, newest first",
    params(("id" = String, Path, format = Uuid, description = "Workspace id"), ListQuery),
    responses(
        (status = 200, description = "The requests", body = Vec<Object>),
        InputRefused, TokenRefused, NoWorkspace, DbDown,
    ),
)]
pub async fn list(query: Query<ListQuery>, call: OnBehalf) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let limit = limit(&query, DEFAULT_APPROVALS_LIMIT);
    let rows = call
        .read(Access::Read, move |c| {
            queries::list_for_workspace(c, id, limit?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// `GET /approvals/pending` (viewer): every live workspace's pending requests with the
/// workspace's name, newest first. Reading never decides anything: expiry is the lease
/// holder's job.
#[utoipa::path(
    get,
    path = "/approvals/pending",
    tag = "approvals",
    summary = "Every workspace's pending requests, with the workspace name",
    params(ListQuery),
    responses(
        (status = 200, description = "The pending requests", body = Vec<Object>),
        InputRefused, TokenRefused, DbDown,
    ),
)]
pub async fn list_pending(
    state: web::Data<AppState>,
    query: Query<ListQuery>,
) -> AppResult<HttpResponse> {
    // The inbox shows every pending request, not the first page of them: the reference canvas
    // asks without a limit.
    let limit = limit(&query, MAX_APPROVALS_LIMIT)?;
    let rows = state.read(move |c| queries::list_pending(c, limit)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Deserialize, ToSchema)]
/// The body of a decision: `approved` or `denied`, and optionally who decided.
pub struct DecideBody {
    #[schema(required = true, nullable = false, pattern = "^(approved|denied)$")]
    decision: Option<String>,
    decided_by: Option<String>,
}

impl JsonBody for DecideBody {
    const NULLABLE: &'static [&'static str] = &["decided_by"];
    const LIMITS: &'static [FieldLimit] = &[
        ("decision", limits::WORD),
        ("decided_by", approvals::DECIDED_BY_MAX_BYTES),
    ];
}

/// `POST /workspaces/:id/approvals/:approval_id/decide` (editor: a person on the canvas) →
/// 200 `{"status":<decision>,"approval_id"}`; 409 with the first decision if it was decided
/// already; 404 for an unknown request or one of another workspace.
#[utoipa::path(
    post,
    path = "/workspaces/{id}/approvals/{approval_id}/decide",
    tag = "approvals",
    summary = "Decide a pending request, exactly once",
    params(
        ("id" = String, Path, format = Uuid, description = "Workspace id"),
        ("approval_id" = String, Path, format = Uuid, description = "Approval request id"),
    ),
    request_body(content = DecideBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\", \"approval_id\", \"decided_by\", \"decided_at\"}`", body = Object),
        (status = 404, description = "Request or workspace not found", body = ErrorBody),
        (status = 409, description = "Already decided: the first decision", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        InputRefused, TokenRefused, DbDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %path.0, approval_id = %path.1))]
pub async fn decide(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Json(body): Json<DecideBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path.0)?;
    let approval_id =
        parse_uuid(&path.1).ok_or_else(|| AppError::BadRequest("invalid approval ID".into()))?;
    let decision = Decision::parse(body.decision.as_deref().unwrap_or_default())?;
    let decided_by = parse_decided_by(body.decided_by)?;
    let decided = state
        .execute_as(ActAs::Actor(principal.actor()), move |tx| {
            commands::decide(tx, id, approval_id, decision, decided_by)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": decided.status,
        "approval_id": decided.id,
        "decided_by": decided.decided_by,
        "decided_at": decided.decided_at,
    })))
}
