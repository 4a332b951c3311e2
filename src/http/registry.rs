//! The agent registry: register, heartbeat, update-card, discovery.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{
    authorize_blocking, authorize_workspace, bearer, hash_token, heartbeat_proof, Access,
    Credentials,
};
use super::body::{FieldLimit, Json, JsonBody, Query};
use super::openapi::{ErrorBody, StatusBody};
use super::workspace_id;
use crate::app::{ActAs, AppState};
use crate::commands::registry::{self as commands, Heartbeat, HeartbeatOutcome, Register};
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, FieldError};
use crate::error::{AppError, AppResult};
use crate::store::tokens;
use crate::store::workspaces::Workspace;
use crate::store::workspaces::{self as ws, HeartbeatColumns};

fn body_uuid(field: &str, raw: Option<&str>) -> Result<Uuid, FieldError> {
    raw.and_then(parse_uuid)
        .ok_or_else(|| FieldError::new(field, "must be a workspace UUID"))
}

/// 404 for an unknown workspace and 410 for a removed one, before any token check: a removed
/// workspace's tokens are revoked, and its agent must learn it is gone, not that it is
/// unauthorized.
async fn require_agent_workspace(state: &AppState, id: Uuid) -> AppResult<()> {
    state
        .read(move |c| commands::agent_workspace(c, id).map(|_| ()))
        .await
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(required = true, nullable = false, format = Uuid)]
    id: Option<String>,
    #[schema(
        required = true,
        nullable = false,
        pattern = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/.*)?$"
    )]
    url: Option<String>,
    #[schema(value_type = Object)]
    agent_card: Option<Value>,
}

impl JsonBody for RegisterBody {
    const LIMITS: &'static [FieldLimit] = &[
        ("id", limits::ID),
        ("url", limits::URL),
        ("agent_card", limits::AGENT_CARD),
    ];
}

fn parse_agent_url(raw: Option<&str>) -> Result<String, FieldError> {
    let invalid = || FieldError::new("url", "must be an http or https URL");
    let raw = raw
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(invalid)?;
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid());
    }
    Ok(raw.to_string())
}

#[utoipa::path(
    post,
    path = "/registry/register",
    tag = "registry",
    summary = "Register an agent; the first call returns its token (shown once)",
    request_body(content = RegisterBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"registered\", \"auth_token\"?}`", body = Object),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 409, description = "Conflict with the current state", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
#[tracing::instrument(skip_all)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<RegisterBody>,
) -> AppResult<HttpResponse> {
    let id = body_uuid("id", body.id.as_deref())?;
    let url = parse_agent_url(body.url.as_deref())?;
    let agent_card = body.agent_card.unwrap_or_else(|| json!({}));
    require_agent_workspace(&state, id).await?;

    // A token, when given, must be the admin's or this workspace's own. Without one, only open
    // mode lets a first registration mint the workspace's token: in token mode anyone who knew
    // the workspace's id could otherwise claim its agent (and with it its secrets and the chat
    // sent to it), so whoever provisions the agent registers it with an admin credential and
    // hands the agent the token.
    let person = super::principal::of_request(&req).filter(|p| p.is_authenticated_person());
    let authenticated = match bearer(&req) {
        _ if person.is_some() => true,
        None if super::auth::is_open(&state) => false,
        None => {
            return Err(AppError::Unauthorized(
                "missing workspace auth token (in token mode an agent's first registration \
                 needs an admin credential)"
                    .into(),
            ))
        }
        Some(token) => {
            let hash = hash_token(token);
            let owner = state
                .read(move |c| Ok(tokens::workspace_of(c, &hash)?))
                .await?;
            if owner != Some(id) {
                return Err(AppError::Unauthorized(
                    "invalid workspace auth token".into(),
                ));
            }
            true
        }
    };
    let input = Register {
        id,
        url: url.clone(),
        agent_card,
        authenticated,
    };
    let token = state
        .execute_as(ActAs::Agent(id), move |tx| commands::register(tx, input))
        .await?;
    state.liveness.arm(id, state.config.liveness_ttl).await;
    state.liveness.cache_url(id, &url).await;
    tracing::info!(workspace_id = %id, issued_token = token.is_some(), "agent registered");
    let mut answer = json!({ "status": "registered" });
    if let Some(token) = token {
        answer["auth_token"] = json!(token);
    }
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize, ToSchema)]
pub struct HeartbeatBody {
    #[schema(required = true, nullable = false, format = Uuid)]
    workspace_id: Option<String>,
    #[schema(minimum = 0, maximum = 1)]
    error_rate: Option<f64>,
    #[schema(max_length = 4096)]
    sample_error: Option<String>,
    #[schema(minimum = 0, maximum = 2147483647)]
    active_tasks: Option<i64>,
    #[schema(minimum = 0)]
    uptime_seconds: Option<i64>,
    #[schema(max_length = 4096)]
    current_task: Option<String>,
}

impl JsonBody for HeartbeatBody {
    /// Agents send `null` for "no task" and "no error".
    const NULLABLE: &'static [&'static str] = &["sample_error", "current_task"];
    const LIMITS: &'static [FieldLimit] = &[
        ("workspace_id", limits::ID),
        ("sample_error", limits::HEARTBEAT_TEXT),
        ("current_task", limits::HEARTBEAT_TEXT),
    ];
}

impl TryFrom<HeartbeatBody> for Heartbeat {
    type Error = FieldError;

    fn try_from(body: HeartbeatBody) -> Result<Self, FieldError> {
        let error_rate = body.error_rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(FieldError::new(
                "error_rate",
                "must be a number from 0 to 1",
            ));
        }
        let active_tasks = body.active_tasks.unwrap_or(0);
        let active_tasks = i32::try_from(active_tasks)
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| FieldError::new("active_tasks", "must be a non-negative integer"))?;
        let uptime_seconds = body.uptime_seconds.unwrap_or(0);
        if uptime_seconds < 0 {
            return Err(FieldError::new(
                "uptime_seconds",
                "must be a non-negative integer",
            ));
        }
        Ok(Heartbeat {
            workspace_id: body_uuid("workspace_id", body.workspace_id.as_deref())?,
            columns: HeartbeatColumns {
                error_rate,
                sample_error: body.sample_error.unwrap_or_default(),
                active_tasks,
                uptime_seconds,
                current_task: body.current_task.unwrap_or_default(),
            },
        })
    }
}

#[utoipa::path(
    post,
    path = "/registry/heartbeat",
    tag = "registry",
    summary = "Heartbeat (every 30 s)",
    request_body(content = HeartbeatBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`", body = StatusBody),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
pub async fn heartbeat(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<HeartbeatBody>,
) -> AppResult<HttpResponse> {
    let beat = Heartbeat::try_from(body)?;
    let id = beat.workspace_id;
    let credentials = Credentials::from_request(&req, &state);
    let beat = std::sync::Arc::new(beat);
    // The common case — an agent proving itself with its token, whose status and task do not
    // change — is one row of a guarded multi-row UPDATE shared with the other heartbeats of
    // its batch (`store::batcher`); the token is usually known from memory, else it is looked
    // up on the batch's connection.
    let proof = heartbeat_proof(&state.clone().into_inner(), &credentials, id);
    let written = match proof {
        None => false,
        Some(proof) => {
            state
                .batcher
                .heartbeat(commands::quiet_beat(&beat), proof)
                .await
        }
    };
    if written {
        state.liveness.arm(id, state.config.liveness_ttl).await;
        return Ok(HttpResponse::Ok().json(json!({ "status": "ok" })));
    }
    // Otherwise one trip to the blocking pool, which does not retry the guarded UPDATE (the
    // row it reads decides): 404/410 before 401 (a removed workspace's token is revoked, and
    // its agent must learn it is gone), then the status machine.
    let quiet_beat = std::sync::Arc::clone(&beat);
    let outcome = state
        .read(move |c| {
            let authorized = authorize_blocking(c, &credentials, id, Access::Agent);
            let row = commands::agent_workspace(c, id)?;
            authorized?;
            commands::heartbeat_quiet(c, &row, &quiet_beat)
        })
        .await?;
    if let HeartbeatOutcome::NeedsEvents = outcome {
        state
            .execute_as(ActAs::Agent(id), move |tx| {
                commands::heartbeat_with_events(tx, &beat)
            })
            .await?;
    }
    state.liveness.arm(id, state.config.liveness_ttl).await;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateCardBody {
    #[schema(required = true, nullable = false, format = Uuid)]
    workspace_id: Option<String>,
    #[schema(required = true, nullable = false, value_type = Object)]
    agent_card: Option<Value>,
}

impl JsonBody for UpdateCardBody {
    const LIMITS: &'static [FieldLimit] = &[
        ("workspace_id", limits::ID),
        ("agent_card", limits::AGENT_CARD),
    ];
}

#[utoipa::path(
    post,
    path = "/registry/update-card",
    tag = "registry",
    summary = "Replace the agent's card",
    request_body(content = UpdateCardBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"updated\"}`", body = StatusBody),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
pub async fn update_card(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<UpdateCardBody>,
) -> AppResult<HttpResponse> {
    let id = body_uuid("workspace_id", body.workspace_id.as_deref())?;
    let card = body
        .agent_card
        .filter(|c| !c.is_null())
        .ok_or_else(|| FieldError::new("agent_card", "is required"))?;
    require_agent_workspace(&state, id).await?;
    authorize_workspace(&req, &state, id, Access::Write).await?;
    state
        .execute_as(ActAs::caller(&req, id), move |tx| {
            commands::update_card(tx, id, card)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "updated" })))
}

#[utoipa::path(
    get,
    path = "/registry/discover/{id}",
    tag = "registry",
    summary = "Find a workspace the caller may talk to",
    params(("id" = String, Path, format = Uuid, description = "Workspace id"), ("X-Workspace-ID" = String, Header, format = Uuid, description = "The calling workspace")),
    responses(
        (status = 200, description = "`{\"id\", \"url\", \"name\"}`", body = Object),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("workspace_token" = [], "workspace_id" = []), ("admin_token" = [], "workspace_id" = []), ("workspace_id" = [])),
)]
pub async fn discover(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let caller = req
        .headers()
        .get("X-Workspace-ID")
        .ok_or_else(|| AppError::BadRequest("X-Workspace-ID header is required".into()))?
        .to_str()
        .ok()
        .and_then(parse_uuid)
        .ok_or_else(AppError::invalid_workspace_id)?;
    let target = workspace_id(&path)?;
    authorize_workspace(&req, &state, caller, Access::Agent).await?;
    let (allowed, found) = state
        .read(move |c| {
            Ok((
                ws::parent_map(c)?.can_communicate(caller, target),
                ws::find_live_row(c, target)?,
            ))
        })
        .await?;
    let target_row = found.ok_or_else(AppError::workspace_not_found)?;
    if !allowed {
        return Err(AppError::Forbidden("workspaces cannot communicate".into()));
    }
    Ok(HttpResponse::Ok().json(
        json!({ "id": target, "url": target_row.url.unwrap_or_default(), "name": target_row.name }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeersQuery {
    q: Option<String>,
}

#[utoipa::path(
    get,
    path = "/registry/{id}/peers",
    tag = "registry",
    summary = "The workspace's siblings, children and parent",
    params(("id" = String, Path, format = Uuid, description = "Workspace id"), PeersQuery),
    responses(
        (status = 200, description = "The peers", body = Vec<Workspace>),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
pub async fn peers(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query<PeersQuery>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    authorize_workspace(&req, &state, id, Access::Read).await?;
    let needle = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    let peers = state
        .read(move |c| {
            if ws::find_live_row(c, id)?.is_none() {
                return Err(AppError::workspace_not_found());
            }
            let map = ws::parent_map(c)?;
            let parent = map.parent_of(id);
            let all = ws::list_live(c)?;
            // Siblings, then children, then the parent (list_live is oldest first).
            let siblings = all
                .iter()
                .filter(|w| w.id != id && w.parent_id == parent)
                .map(|w| w.id);
            let children = all.iter().filter(|w| w.parent_id == Some(id)).map(|w| w.id);
            let order: Vec<Uuid> = siblings.chain(children).chain(parent).collect();
            Ok::<_, AppError>(ws::find_many(c, &order)?)
        })
        .await?;
    let peers: Vec<_> = peers
        .into_iter()
        .filter(|w| match &needle {
            None => true,
            Some(q) => {
                w.name.to_lowercase().contains(q)
                    || w.role
                        .as_deref()
                        .is_some_and(|r| r.to_lowercase().contains(q))
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(peers))
}

#[derive(Deserialize, ToSchema)]
pub struct CheckAccessBody {
    #[schema(required = true, nullable = false, format = Uuid)]
    caller_id: Option<String>,
    #[schema(required = true, nullable = false, format = Uuid)]
    target_id: Option<String>,
}

impl JsonBody for CheckAccessBody {
    const LIMITS: &'static [FieldLimit] = &[("caller_id", limits::ID), ("target_id", limits::ID)];
}

#[utoipa::path(
    post,
    path = "/registry/check-access",
    tag = "registry",
    summary = "Whether two workspaces may communicate",
    request_body(content = CheckAccessBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"allowed\": bool}`", body = Object),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
)]
pub async fn check_access(
    state: web::Data<AppState>,
    Json(body): Json<CheckAccessBody>,
) -> AppResult<HttpResponse> {
    let caller = body_uuid("caller_id", body.caller_id.as_deref())?;
    let target = body_uuid("target_id", body.target_id.as_deref())?;
    let allowed = state
        .read(move |c| Ok(ws::parent_map(c)?.can_communicate(caller, target)))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "allowed": allowed })))
}
