use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::require_admin;
use super::body::{FieldLimit, Json, JsonBody};
use super::workspace_id;
use crate::app::AppState;
use crate::commands::agents as commands;
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, FieldError, ModelName};
use crate::error::AppResult;

#[derive(Deserialize)]
pub struct ModelBody {
    model: Option<String>,
}

impl JsonBody for ModelBody {
    const LIMITS: &'static [FieldLimit] = &[("model", ModelName::MAX_BYTES)];
}

fn model(body: ModelBody) -> Result<ModelName, FieldError> {
    ModelName::parse(body.model.as_deref().unwrap_or_default())
}

pub async fn assign(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<ModelBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let model = model(body)?;
    let agent = state
        .execute(move |tx| commands::assign(tx, id, model))
        .await?;
    Ok(HttpResponse::Created().json(json!({ "agent_id": agent.id, "model": agent.model })))
}

pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<ModelBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let model = model(body)?;
    let r = state
        .execute(move |tx| commands::replace(tx, id, model))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "replaced", "agent_id": r.agent.id, "model": r.agent.model, "old_model": r.old_model })))
}

pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let agent = state.execute(move |tx| commands::remove(tx, id)).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "status": "removed", "agent_id": agent.id, "model": agent.model })))
}

#[derive(Deserialize)]
pub struct MoveBody {
    target_workspace_id: Option<String>,
}

impl JsonBody for MoveBody {
    const LIMITS: &'static [FieldLimit] = &[("target_workspace_id", limits::ID)];
}

pub async fn move_agent(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<MoveBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let id = workspace_id(&path)?;
    let target = body
        .target_workspace_id
        .as_deref()
        .and_then(parse_uuid)
        .ok_or_else(|| FieldError::new("target_workspace_id", "must be a workspace UUID"))?;
    let agent = state
        .execute(move |tx| commands::move_agent(tx, id, target))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "moved", "agent_id": agent.id, "model": agent.model, "target_workspace_id": target })))
}
