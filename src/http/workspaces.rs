//! Workspaces: create, list, read, patch (with `If-Match`), remove, pause and resume.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::body::{double_option, FieldLimit, Json, JsonBody, Query};
use super::openapi::{
    BodyRefused, DbDown, ErrorBody, InputRefused, NoWorkspace, PathRefused, StateConflict,
    TokenRefused, WorkspaceGone,
};
use super::principal::AsPerson;
use super::WorkspacePath;
use crate::app::AppState;
use crate::commands::workspaces::{self as commands, CreateWorkspace, WorkspacePatch};
use crate::domain::ids::parse_uuid;
use crate::domain::status::WorkspaceStatus;
use crate::domain::validation::{
    limits, parse_position, FieldError, ModelName, RuntimeName, Tier, WorkspaceName, WorkspaceRole,
};
use crate::domain::versions::{etag, IfMatch};
use crate::error::{AppError, AppResult};
use crate::queries::workspaces as queries;
use crate::store::workspaces::Workspace;

#[derive(Deserialize, ToSchema)]
/// A position on the canvas, in px.
pub struct CanvasPosition {
    #[schema(minimum = -10000000, maximum = 10000000)]
    x: f64,
    #[schema(minimum = -10000000, maximum = 10000000)]
    y: f64,
}

#[derive(Deserialize, ToSchema)]
/// The body of `POST /workspaces`.
pub struct CreateBody {
    #[schema(required = true, nullable = false, min_length = 1, max_length = 255)]
    name: Option<String>,
    #[schema(max_length = 1000)]
    role: Option<String>,
    #[schema(minimum = 1, maximum = 4)]
    tier: Option<i64>,
    #[schema(max_length = 100)]
    runtime: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    model: Option<String>,
    #[schema(format = Uuid)]
    parent_id: Option<String>,
    canvas: Option<CanvasPosition>,
}

impl JsonBody for CreateBody {
    const NULLABLE: &'static [&'static str] = &["role", "runtime", "model", "parent_id"];
    const LIMITS: &'static [FieldLimit] = &[
        ("name", WorkspaceName::MAX_BYTES),
        ("role", WorkspaceRole::MAX_BYTES),
        ("runtime", RuntimeName::MAX_BYTES),
        ("model", ModelName::MAX_BYTES),
        ("parent_id", limits::ID),
        ("canvas", limits::POSITION),
    ];
}

fn parse_parent(raw: &str) -> Result<uuid::Uuid, FieldError> {
    parse_uuid(raw).ok_or_else(|| FieldError::new("parent_id", "must be a workspace UUID"))
}

impl TryFrom<CreateBody> for CreateWorkspace {
    type Error = FieldError;

    fn try_from(body: CreateBody) -> Result<Self, FieldError> {
        Ok(CreateWorkspace {
            name: WorkspaceName::parse(body.name.as_deref().unwrap_or_default())?,
            role: body.role.as_deref().map(WorkspaceRole::parse).transpose()?,
            tier: body
                .tier
                .map(Tier::parse)
                .transpose()?
                .unwrap_or(Tier::DEFAULT),
            runtime: body
                .runtime
                .as_deref()
                .map(RuntimeName::parse)
                .transpose()?,
            model: body
                .model
                .as_deref()
                .map(ModelName::parse)
                .transpose()?
                .map(ModelName::into_string),
            parent_id: body.parent_id.as_deref().map(parse_parent).transpose()?,
            position: body
                .canvas
                .map(|c| {
                    Ok::<_, FieldError>((
                        parse_position("canvas.x", c.x)?,
                        parse_position("canvas.y", c.y)?,
                    ))
                })
                .transpose()?,
        })
    }
}

#[utoipa::path(
    post,
    path = "/workspaces",
    tag = "workspaces",
    summary = "Create a workspace (status provisioning)",
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: `{\"id\", \"status\": \"provisioning\"}`", body = Object),
        InputRefused, TokenRefused, NoWorkspace, BodyRefused, DbDown,
    ),
)]
#[tracing::instrument(skip_all)]
/// `POST /workspaces`: 201 `{"id", "status": "provisioning"}`.
pub async fn create(person: AsPerson, Json(body): Json<CreateBody>) -> AppResult<HttpResponse> {
    let input = CreateWorkspace::try_from(body)?;
    let id = person
        .execute(move |tx| commands::create(tx, input))
        .await?;
    tracing::info!(workspace_id = %id, "workspace created");
    Ok(HttpResponse::Created()
        .json(json!({ "id": id, "status": WorkspaceStatus::Provisioning.as_str() })))
}

#[utoipa::path(
    get,
    path = "/workspaces",
    tag = "workspaces",
    summary = "All live workspaces, oldest first, layout inlined",
    responses(
        (status = 200, description = "The workspaces", body = Vec<Workspace>),
        TokenRefused, DbDown,
    ),
)]
/// `GET /workspaces`: every live workspace, oldest first, layout inlined.
pub async fn list(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let all = state.read(queries::list_live).await?;
    Ok(HttpResponse::Ok().json(all))
}

#[utoipa::path(
    get,
    path = "/workspaces/{id}",
    tag = "workspaces",
    summary = "One workspace",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    responses(
        (status = 200, description = "The workspace; `ETag` is its version as a strong entity tag (`\"7\"`)", body = Workspace),
        (status = 301, description = "Removed and replaced: `Location` and `forwarded_to` name the new one", body = ErrorBody),
        (status = 410, description = "Removed: the body carries its last event", body = ErrorBody),
        PathRefused, TokenRefused, NoWorkspace, DbDown,
    ),
)]
/// `GET /workspaces/:id`: the workspace with its version as `ETag`; 301 to its replacement or
/// 410 with its last event when removed; 404 when unknown.
pub async fn get(
    state: web::Data<AppState>,
    WorkspacePath(id): WorkspacePath,
) -> AppResult<HttpResponse> {
    let (workspace, last_event) = state.read(move |c| queries::with_last_event(c, id)).await?;
    if workspace.status != WorkspaceStatus::Removed.as_str() {
        return Ok(HttpResponse::Ok()
            .insert_header((header::ETAG, etag(workspace.version)))
            .json(workspace));
    }
    // A removed workspace: forward if it was replaced, otherwise say it is gone for good.
    if let Some(forwarded_to) = workspace.forwarded_to {
        return Err(AppError::MovedPermanently(format!(
            "/workspaces/{forwarded_to}"
        )));
    }
    Err(AppError::WithBody {
        status: actix_web::http::StatusCode::GONE,
        body: json!({ "error": "workspace removed", "id": id, "status": "removed", "last_event": last_event }),
    })
}

#[derive(Deserialize, ToSchema)]
/// The body of `PATCH /workspaces/:id`: the fields to change (`null` clears a nullable one).
pub struct PatchBody {
    #[schema(nullable = false, min_length = 1, max_length = 255)]
    name: Option<String>,
    #[schema(max_length = 1000)]
    #[serde(default, deserialize_with = "double_option")]
    role: Option<Option<String>>,
    #[schema(nullable = false, minimum = 1, maximum = 4)]
    tier: Option<i64>,
    #[schema(max_length = 100)]
    #[serde(default, deserialize_with = "double_option")]
    runtime: Option<Option<String>>,
    #[schema(format = Uuid)]
    #[serde(default, deserialize_with = "double_option")]
    parent_id: Option<Option<String>>,
    #[schema(nullable = false)]
    collapsed: Option<bool>,
    #[schema(nullable = false, minimum = -10000000, maximum = 10000000)]
    x: Option<f64>,
    #[schema(nullable = false, minimum = -10000000, maximum = 10000000)]
    y: Option<f64>,
}

impl JsonBody for PatchBody {
    /// `null` clears a role or runtime, and un-nests (`parent_id`).
    const NULLABLE: &'static [&'static str] = &["role", "runtime", "parent_id"];
    const LIMITS: &'static [FieldLimit] = &[
        ("name", WorkspaceName::MAX_BYTES),
        ("role", WorkspaceRole::MAX_BYTES),
        ("runtime", RuntimeName::MAX_BYTES),
        ("parent_id", limits::ID),
    ];
}

impl TryFrom<PatchBody> for WorkspacePatch {
    type Error = FieldError;

    fn try_from(body: PatchBody) -> Result<Self, FieldError> {
        let position = match (body.x, body.y) {
            (Some(x), Some(y)) => Some((parse_position("x", x)?, parse_position("y", y)?)),
            (None, None) => None,
            _ => return Err(FieldError::new("x", "x and y must be given together")),
        };
        Ok(WorkspacePatch {
            name: body.name.as_deref().map(WorkspaceName::parse).transpose()?,
            role: body
                .role
                .map(|r| r.as_deref().map(WorkspaceRole::parse).transpose())
                .transpose()?,
            tier: body.tier.map(Tier::parse).transpose()?,
            runtime: body
                .runtime
                .map(|r| r.as_deref().map(RuntimeName::parse).transpose())
                .transpose()?,
            parent_id: body
                .parent_id
                .map(|p| p.as_deref().map(parse_parent).transpose())
                .transpose()?,
            position,
            collapsed: body.collapsed,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/workspaces/{id}",
    tag = "workspaces",
    summary = "Change any of name, role, tier, runtime, parent_id, collapsed, x+y (all or nothing)",
    params(
        ("id" = String, Path, format = Uuid, description = "Workspace id"),
        ("If-Match" = Option<String>, Header, description = "`*` or entity tags from `ETag`: apply only if the workspace is still at that version (else 412)"),
    ),
    request_body(content = PatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"updated\", \"version\": n}`; `ETag` is the new version", body = Object),
        (status = 412, description = "`If-Match` is stale: `{\"error\", \"version\", \"workspace\"}` with the current state, `ETag` its version", body = ErrorBody),
        PathRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %id))]
/// `PATCH /workspaces/:id` (optionally `If-Match`): `{"status": "updated", "version"}` with the
/// new `ETag`; 412 with the current state when `If-Match` is stale.
pub async fn patch(
    req: HttpRequest,
    person: AsPerson,
    Json(body): Json<PatchBody>,
    WorkspacePath(id): WorkspacePath,
) -> AppResult<HttpResponse> {
    let patch = WorkspacePatch::try_from(body)?;
    let if_match = if_match(&req)?;
    let version = person
        .execute(move |tx| commands::patch(tx, id, patch, if_match))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(version)))
        .json(json!({ "status": "updated", "version": version })))
}

/// The request's `If-Match` precondition (RFC 9110 §13.1.1), several field lines joined as one
/// list; 400 naming the header when it is neither `*` nor a list of entity tags.
fn if_match(req: &HttpRequest) -> AppResult<Option<IfMatch>> {
    let mut lines = req.headers().get_all(header::IF_MATCH).peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let joined = lines
        .map(|v| v.to_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .map(|v| v.join(","));
    joined
        .as_deref()
        .and_then(IfMatch::parse)
        .map(Some)
        .ok_or_else(|| {
            AppError::BadRequest(
                "If-Match: must be \"*\" or a list of entity tags such as \"7\"".into(),
            )
        })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
/// `?confirm=true`: also remove the descendants.
pub struct DeleteQuery {
    #[param(pattern = "^(true|false|1|0)$")]
    confirm: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/workspaces/{id}",
    tag = "workspaces",
    summary = "Remove a workspace (and, with confirm, its descendants)",
    params(
        DeleteQuery,
        ("id" = String, Path, format = Uuid, description = "Workspace id"),
        ("If-Match" = Option<String>, Header, description = "`*` or entity tags from `ETag`: remove only if the workspace is still at that version (else 412)"),
    ),
    responses(
        (status = 200, description = "`{\"status\": \"removed\", \"cascade_deleted\": n}`", body = Object),
        (status = 412, description = "`If-Match` is stale: `{\"error\", \"version\", \"workspace\"}` with the current state, `ETag` its version", body = ErrorBody),
        (status = 409, description = "`confirmation_required`: it has children and `confirm` was not given", body = ErrorBody),
        PathRefused, TokenRefused, NoWorkspace, WorkspaceGone, DbDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %id))]
/// `DELETE /workspaces/:id`: `{"status": "removed", "cascade_deleted"}`; 409
/// `confirmation_required` for a workspace with children and no `confirm`.
pub async fn delete(
    req: HttpRequest,
    person: AsPerson,
    query: Query<DeleteQuery>,
    WorkspacePath(id): WorkspacePath,
) -> AppResult<HttpResponse> {
    let confirmed = matches!(query.confirm.as_deref(), Some("true") | Some("1"));
    let if_match = if_match(&req)?;
    let removal = person
        .execute(move |tx| commands::delete(tx, id, confirmed, if_match))
        .await?;
    person.state().liveness_disarm(&removal.removed).await;
    tracing::info!(workspace_id = %id, cascade_deleted = removal.cascade_deleted(), "workspace removed");
    Ok(HttpResponse::Ok()
        .json(json!({ "status": "removed", "cascade_deleted": removal.cascade_deleted() })))
}

#[utoipa::path(
    post,
    path = "/workspaces/{id}/pause",
    tag = "workspaces",
    summary = "Pause a workspace and its descendants",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    responses(
        (status = 200, description = "`{\"status\": \"paused\", \"paused_count\": n}`", body = Object),
        PathRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, DbDown,
    ),
)]
/// `POST /workspaces/:id/pause`: `{"status": "paused", "paused_count"}`.
pub async fn pause(person: AsPerson, WorkspacePath(id): WorkspacePath) -> AppResult<HttpResponse> {
    let paused = person.execute(move |tx| commands::pause(tx, id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "paused", "paused_count": paused })))
}

#[utoipa::path(
    post,
    path = "/workspaces/{id}/resume",
    tag = "workspaces",
    summary = "Resume a paused workspace and its descendants",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    responses(
        (status = 200, description = "`{\"status\": \"provisioning\", \"resumed_count\": n}`", body = Object),
        PathRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, DbDown,
    ),
)]
/// `POST /workspaces/:id/resume`: `{"status": "provisioning", "resumed_count"}`.
pub async fn resume(person: AsPerson, WorkspacePath(id): WorkspacePath) -> AppResult<HttpResponse> {
    let resumed = person.execute(move |tx| commands::resume(tx, id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "provisioning", "resumed_count": resumed })))
}
