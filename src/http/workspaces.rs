use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::require_admin;
use super::body::{double_option, FieldLimit, Json, JsonBody, Query};
use super::workspace_id;
use crate::app::AppState;
use crate::commands::workspaces::{self as commands, CreateWorkspace, WorkspacePatch};
use crate::domain::ids::parse_uuid;
use crate::domain::status::WorkspaceStatus;
use crate::domain::validation::{
    limits, parse_coordinate, FieldError, ModelName, RuntimeName, Tier, WorkspaceName,
    WorkspaceRole,
};
use crate::error::{AppError, AppResult};
use crate::store::{events as stream, workspaces as ws};

#[derive(Deserialize)]
pub struct CanvasPosition {
    x: f64,
    y: f64,
}

#[derive(Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    role: Option<String>,
    tier: Option<i64>,
    runtime: Option<String>,
    model: Option<String>,
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
                        parse_coordinate("canvas.x", c.x)?,
                        parse_coordinate("canvas.y", c.y)?,
                    ))
                })
                .transpose()?,
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<CreateBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let input = CreateWorkspace::try_from(body)?;
    let id = state.execute(move |tx| commands::create(tx, input)).await?;
    tracing::info!(workspace_id = %id, "workspace created");
    Ok(HttpResponse::Created()
        .json(json!({ "id": id, "status": WorkspaceStatus::Provisioning.as_str() })))
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let all = state.read(|c| Ok(ws::list_live(c)?)).await?;
    Ok(HttpResponse::Ok().json(all))
}

pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let (workspace, last_event) = state
        .read(move |c| {
            let Some(workspace) = ws::find(c, id)? else {
                return Err(AppError::workspace_not_found());
            };
            let last = if workspace.status == WorkspaceStatus::Removed.as_str() {
                stream::last_structure_event(c, id)?
            } else {
                None
            };
            Ok((workspace, last))
        })
        .await?;
    if workspace.status != WorkspaceStatus::Removed.as_str() {
        return Ok(HttpResponse::Ok().json(workspace));
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

#[derive(Deserialize)]
pub struct PatchBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    role: Option<Option<String>>,
    tier: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    runtime: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    parent_id: Option<Option<String>>,
    collapsed: Option<bool>,
    x: Option<f64>,
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
            (Some(x), Some(y)) => Some((parse_coordinate("x", x)?, parse_coordinate("y", y)?)),
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

#[tracing::instrument(skip_all, fields(workspace_id = %path))]
pub async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<PatchBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let patch = WorkspacePatch::try_from(body)?;
    state
        .execute(move |tx| commands::patch(tx, id, patch))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "updated" })))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    confirm: Option<String>,
}

#[tracing::instrument(skip_all, fields(workspace_id = %path))]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query<DeleteQuery>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let confirmed = matches!(query.confirm.as_deref(), Some("true") | Some("1"));
    let removal = state
        .execute(move |tx| commands::delete(tx, id, confirmed))
        .await?;
    state.liveness_disarm(&removal.removed).await;
    tracing::info!(workspace_id = %id, cascade_deleted = removal.cascade_deleted(), "workspace removed");
    Ok(HttpResponse::Ok()
        .json(json!({ "status": "removed", "cascade_deleted": removal.cascade_deleted() })))
}

pub async fn pause(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let paused = state.execute(move |tx| commands::pause(tx, id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "paused", "paused_count": paused })))
}

pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let resumed = state.execute(move |tx| commands::resume(tx, id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "provisioning", "resumed_count": resumed })))
}
