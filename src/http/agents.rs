use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::body::{FieldLimit, Json, JsonBody};
use super::openapi::ErrorBody;
use super::principal::Principal;
use super::workspace_id;
use crate::app::{ActAs, AppState};
use crate::commands::agents as commands;
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, FieldError, ModelName};
use crate::error::AppResult;

#[derive(Deserialize, ToSchema)]
pub struct ModelBody {
    #[schema(required = true, nullable = false, min_length = 1, max_length = 100)]
    model: Option<String>,
}

impl JsonBody for ModelBody {
    const LIMITS: &'static [FieldLimit] = &[("model", ModelName::MAX_BYTES)];
}

fn model(body: ModelBody) -> Result<ModelName, FieldError> {
    ModelName::parse(body.model.as_deref().unwrap_or_default())
}

#[utoipa::path(
    post,
    path = "/workspaces/{id}/agent",
    tag = "agents",
    summary = "Assign an agent (a model) to the workspace",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    request_body(content = ModelBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`{\"agent_id\", \"model\"}`", body = Object),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 409, description = "Conflict with the current state", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
pub async fn assign(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<ModelBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    let model = model(body)?;
    let agent = state
        .execute_as(ActAs::Actor(principal.actor()), move |tx| {
            commands::assign(tx, id, model)
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({ "agent_id": agent.id, "model": agent.model })))
}

#[utoipa::path(
    patch,
    path = "/workspaces/{id}/agent",
    tag = "agents",
    summary = "Replace the workspace's agent",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    request_body(content = ModelBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"replaced\", \"agent_id\", \"model\", \"old_model\"}`", body = Object),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 409, description = "Conflict with the current state", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
pub async fn replace(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<ModelBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    let model = model(body)?;
    let r = state
        .execute_as(ActAs::Actor(principal.actor()), move |tx| {
            commands::replace(tx, id, model)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "replaced", "agent_id": r.agent.id, "model": r.agent.model, "old_model": r.old_model })))
}

#[utoipa::path(
    delete,
    path = "/workspaces/{id}/agent",
    tag = "agents",
    summary = "Remove the workspace's agent",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    responses(
        (status = 200, description = "`{\"status\": \"removed\", \"agent_id\", \"model\"}`", body = Object),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 409, description = "Conflict with the current state", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
pub async fn remove(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    let agent = state
        .execute_as(ActAs::Actor(principal.actor()), move |tx| {
            commands::remove(tx, id)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "status": "removed", "agent_id": agent.id, "model": agent.model })))
}

#[derive(Deserialize, ToSchema)]
pub struct MoveBody {
    #[schema(required = true, nullable = false, format = Uuid)]
    target_workspace_id: Option<String>,
}

impl JsonBody for MoveBody {
    const LIMITS: &'static [FieldLimit] = &[("target_workspace_id", limits::ID)];
}

#[utoipa::path(
    post,
    path = "/workspaces/{id}/agent/move",
    tag = "agents",
    summary = "Move the workspace's agent to another workspace",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    request_body(content = MoveBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"moved\", \"agent_id\", \"model\", \"target_workspace_id\"}`", body = Object),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 409, description = "Conflict with the current state", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
pub async fn move_agent(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<MoveBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    let target = body
        .target_workspace_id
        .as_deref()
        .and_then(parse_uuid)
        .ok_or_else(|| FieldError::new("target_workspace_id", "must be a workspace UUID"))?;
    let agent = state
        .execute_as(ActAs::Actor(principal.actor()), move |tx| {
            commands::move_agent(tx, id, target)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "moved", "agent_id": agent.id, "model": agent.model, "target_workspace_id": target })))
}
