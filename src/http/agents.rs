//! Agent assignment: `POST`/`PATCH`/`DELETE /workspaces/:id/agent` and `POST /workspaces/:id/agent/move`
//! (people only).

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::body::{FieldLimit, Json, JsonBody};
use super::openapi::{
    BodyRefused, DbDown, NoWorkspace, PathRefused, StateConflict, TokenRefused, WorkspaceGone,
};
use super::principal::AsPerson;
use super::WorkspacePath;
use crate::commands::agents as commands;
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, FieldError, ModelName};
use crate::error::AppResult;

#[derive(Deserialize, ToSchema)]
/// `{"model"}`: the model an agent runs (1 to 100 bytes).
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
        PathRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
/// `POST /workspaces/:id/agent`: 201 `{"agent_id", "model"}`.
pub async fn assign(
    person: AsPerson,
    Json(body): Json<ModelBody>,
    WorkspacePath(id): WorkspacePath,
) -> AppResult<HttpResponse> {
    let model = model(body)?;
    let agent = person
        .execute(move |tx| commands::assign(tx, id, model))
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
        PathRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
/// `PATCH /workspaces/:id/agent`: `{"status": "replaced", "agent_id", "model", "old_model"}`.
pub async fn replace(
    person: AsPerson,
    Json(body): Json<ModelBody>,
    WorkspacePath(id): WorkspacePath,
) -> AppResult<HttpResponse> {
    let model = model(body)?;
    let r = person
        .execute(move |tx| commands::replace(tx, id, model))
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
        PathRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, DbDown,
    ),
)]
/// `DELETE /workspaces/:id/agent`: `{"status": "removed", "agent_id", "model"}`.
pub async fn remove(person: AsPerson, WorkspacePath(id): WorkspacePath) -> AppResult<HttpResponse> {
    let agent = person.execute(move |tx| commands::remove(tx, id)).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "status": "removed", "agent_id": agent.id, "model": agent.model })))
}

#[derive(Deserialize, ToSchema)]
/// `{"target_workspace_id"}`: where the agent goes.
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
        PathRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
/// `POST /workspaces/:id/agent/move`: `{"status": "moved", "agent_id", "model",
/// "target_workspace_id"}`.
pub async fn move_agent(
    person: AsPerson,
    Json(body): Json<MoveBody>,
    WorkspacePath(id): WorkspacePath,
) -> AppResult<HttpResponse> {
    let target = body
        .target_workspace_id
        .as_deref()
        .and_then(parse_uuid)
        .ok_or_else(|| FieldError::new("target_workspace_id", "must be a workspace UUID"))?;
    let agent = person
        .execute(move |tx| commands::move_agent(tx, id, target))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "moved", "agent_id": agent.id, "model": agent.model, "target_workspace_id": target })))
}
