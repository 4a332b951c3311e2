//! The agent registry: register, heartbeat, update-card, discovery.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{
    authorize_blocking, heartbeat_proof, Access, Credentials, OnBehalf, RegisterProof,
};
use super::body::{FieldLimit, Json, JsonBody, Query};
use super::openapi::{
    BodyRefused, DbDown, ErrorBody, InputRefused, NoWorkspace, PathRefused, StateConflict,
    StatusBody, TokenRefused, WorkspaceGone,
};
use super::workspace_id;
use crate::app::{ActAs, AppState};
use crate::commands::registry::{self as commands, Heartbeat, Register};
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, FieldError};
use crate::error::{AppError, AppResult};
use crate::queries::registry as queries;
use crate::store::workspaces::{HeartbeatColumns, Workspace};

fn body_uuid(field: &str, raw: Option<&str>) -> Result<Uuid, FieldError> {
    raw.and_then(parse_uuid)
        .ok_or_else(|| FieldError::new(field, "must be a workspace UUID"))
}

#[derive(Deserialize, ToSchema)]
/// The body of `POST /registry/register`: the workspace id, the agent's URL and its card.
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
        InputRefused, TokenRefused, NoWorkspace, StateConflict, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
#[tracing::instrument(skip_all)]
/// `POST /registry/register`: `{"status": "registered"}`, with `auth_token` (shown once) on
/// the first register. One batcher command: 404/410, then the token, then the registration.
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<RegisterBody>,
) -> AppResult<HttpResponse> {
    let id = body_uuid("id", body.id.as_deref())?;
    let url = parse_agent_url(body.url.as_deref())?;
    let agent_card = body.agent_card.unwrap_or_else(|| json!({}));
    let proof = RegisterProof::of_request(&req, &state);
    let registered_url = url.clone();
    // One command: 404/410 before any token check (a removed workspace's tokens are revoked,
    // and its agent must learn it is gone, not that it is unauthorized), then the credential.
    let token = state
        .execute_as(ActAs::Agent(id), move |tx| {
            commands::agent_workspace(tx.conn(), id)?;
            let authenticated = proof.check(tx.conn(), id)?;
            let input = Register {
                id,
                url: registered_url,
                agent_card,
                authenticated,
            };
            commands::register(tx, input)
        })
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
/// The body of `POST /registry/heartbeat`.
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
        InputRefused, TokenRefused, NoWorkspace, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
/// `POST /registry/heartbeat`: `{"status": "ok"}`, and the liveness TTL is re-armed.
pub async fn heartbeat(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<HeartbeatBody>,
) -> AppResult<HttpResponse> {
    let beat = Heartbeat::try_from(body)?;
    let id = beat.workspace_id;
    let credentials = Credentials::from_request(&req, &state);
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
    if !written {
        // Otherwise one batcher command, which does not retry the guarded UPDATE (the row it
        // reads under the stream lock decides): 404/410 before 401 (a removed workspace's
        // token is revoked, and its agent must learn it is gone), then the status machine.
        state
            .execute_as(ActAs::Agent(id), move |tx| {
                let authorized = authorize_blocking(tx.conn(), &credentials, id, Access::Agent);
                let row = commands::agent_workspace(tx.conn(), id)?;
                authorized?;
                commands::heartbeat(tx, &row, &beat)
            })
            .await?;
    }
    state.liveness.arm(id, state.config.liveness_ttl).await;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

#[derive(Deserialize, ToSchema)]
/// The body of `POST /registry/update-card`: the workspace id and the new card.
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
        InputRefused, TokenRefused, NoWorkspace, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
/// `POST /registry/update-card`: `{"status": "updated"}`. One batcher command: 404/410, then the
/// caller, then the card.
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
    OnBehalf::new(&req, &state, id)
        .execute_on_agent_workspace(Access::Write, move |tx| commands::update_card(tx, id, card))
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
        (status = 403, description = "Forbidden", body = ErrorBody),
        PathRefused, TokenRefused, NoWorkspace, DbDown,
    ),
    security(("workspace_token" = [], "workspace_id" = []), ("admin_token" = [], "workspace_id" = []), ("workspace_id" = [])),
)]
/// `GET /registry/discover/:id` with `X-Workspace-ID`: `{"id", "url", "name"}` of a workspace
/// the caller may talk to. 400 for a missing or bad header, 401, 404, then 403.
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
    let target_row = OnBehalf::new(&req, &state, caller)
        .read(Access::Agent, move |c| queries::discover(c, caller, target))
        .await?;
    Ok(HttpResponse::Ok().json(
        json!({ "id": target, "url": target_row.url.unwrap_or_default(), "name": target_row.name }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
/// `?q=`: a case-insensitive filter on name and role.
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
        PathRefused, TokenRefused, NoWorkspace, DbDown,
    ),
)]
/// `GET /registry/:id/peers`: siblings, children, then the parent, filtered by `q`.
pub async fn peers(query: Query<PeersQuery>, call: OnBehalf) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let needle = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    let peers = call
        .read(Access::Read, move |c| queries::peers(c, id))
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
/// The body of `POST /registry/check-access`: two workspace ids.
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
        InputRefused, BodyRefused, DbDown,
    ),
)]
/// `POST /registry/check-access` (public): `{"allowed": bool}` by the hierarchy.
pub async fn check_access(
    state: web::Data<AppState>,
    Json(body): Json<CheckAccessBody>,
) -> AppResult<HttpResponse> {
    let caller = body_uuid("caller_id", body.caller_id.as_deref())?;
    let target = body_uuid("target_id", body.target_id.as_deref())?;
    let allowed = state
        .read(move |c| queries::can_communicate(c, caller, target))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "allowed": allowed })))
}
