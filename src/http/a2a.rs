//! `POST /workspaces/:id/a2a`: the A2A proxy. Forwards a JSON-RPC 2.0 request to the
//! workspace's registered URL and answers with the agent's answer. The canvas chat talks to
//! agents through it, and agents talk to each other through it.
//!
//! Callers: the canvas (admin access) without `X-Workspace-ID`; an agent with `X-Workspace-ID`
//! and its token (401 otherwise), whose call must pass the hierarchy rule (403 otherwise).
//! Errors: 400 not JSON-RPC, 404 unknown workspace, 410 removed, 503 paused / not online / no
//! URL, 502 agent unreachable or misbehaving (refused address, redirect, not JSON, HTTP error,
//! answer too large), 504 no answer within the timeout. Every call that reaches the agent step
//! is recorded after it returns (`a2a_receive` on the target, `a2a_send` on a calling
//! workspace) in one transaction with its ACTIVITY_LOGGED events.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::{authorize_blocking, require_person, Access, Credentials};
use super::body::{FieldLimit, Json, JsonBody};
use super::workspace_id;
use crate::a2a::{AgentAnswer, CallError};
use crate::app::{ActAs, AppState};
use crate::commands::a2a::{self as commands, Exchange, Outcome};
use crate::domain::a2a::{rpc_error_message, RpcRequest};
use crate::domain::ids::parse_uuid;
use crate::domain::people::Role;
use crate::domain::status::WorkspaceStatus;
use crate::error::{AppError, AppResult};
use crate::store::workspaces as ws;

/// Largest request or response body kept in `activity_logs`, in bytes of JSON; a larger one is
/// stored as `{"truncated":true,"bytes":N}`.
pub const LOGGED_BODY_MAX_BYTES: usize = 1024 * 1024;

/// Longest `error_detail` stored, in bytes.
const ERROR_DETAIL_MAX_BYTES: usize = 1000;

/// The per-request timeout: `X-Timeout` in whole seconds (as in the reference; `0` means the
/// longest allowed), capped by `A2A_MAX_TIMEOUT_SECONDS`; the configured default without it.
fn timeout(req: &HttpRequest, state: &AppState) -> AppResult<Duration> {
    let a2a = &state.config.a2a;
    let Some(raw) = req.headers().get("X-Timeout") else {
        return Ok(a2a.timeout);
    };
    let seconds = raw
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            AppError::BadRequest("X-Timeout: must be a whole number of seconds".into())
        })?;
    Ok(match seconds {
        0 => a2a.max_timeout,
        n => Duration::from_secs(n).min(a2a.max_timeout),
    })
}

/// Who is calling: `None` for the canvas.
fn caller_header(req: &HttpRequest) -> AppResult<Option<Uuid>> {
    req.headers()
        .get("X-Workspace-ID")
        .map(|raw| {
            raw.to_str()
                .ok()
                .and_then(parse_uuid)
                .ok_or_else(AppError::invalid_workspace_id)
        })
        .transpose()
}

fn bounded_for_log(value: Value) -> Value {
    let bytes = value.to_string().len();
    if bytes > LOGGED_BODY_MAX_BYTES {
        json!({ "truncated": true, "bytes": bytes })
    } else {
        value
    }
}

fn detail(text: &str) -> String {
    crate::domain::validation::truncate_utf8(text, ERROR_DETAIL_MAX_BYTES).to_string()
}

/// A JSON-RPC request as the caller sent it: any object (the whole body is bounded by the
/// 1 MiB body cap); its shape is checked by `RpcRequest::parse`.
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub struct RpcBody(Value);

impl JsonBody for RpcBody {
    const LIMITS: &'static [FieldLimit] = &[];
}

#[utoipa::path(
    post,
    path = "/workspaces/{id}/a2a",
    tag = "a2a",
    summary = "Forward a JSON-RPC 2.0 A2A request to the workspace's agent and return its answer",
    params(
        ("id" = String, Path, format = Uuid, description = "Target workspace id"),
        ("X-Timeout" = Option<u64>, Header, description = "Seconds to wait for the agent (0: the configured maximum)"),
    ),
    request_body(content = Object, content_type = "application/json", description = "A JSON-RPC 2.0 request (`jsonrpc`, `method`, `params`, `id`), or the canvas's bare `{method, params}`"),
    responses(
        (status = 200, description = "The agent's JSON-RPC answer", body = Object),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = super::openapi::ErrorBody),
        (status = 403, description = "The hierarchy forbids this caller", body = super::openapi::ErrorBody),
        (status = 404, description = "Workspace not found", body = super::openapi::ErrorBody),
        (status = 410, description = "The workspace was removed", body = super::openapi::ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = super::openapi::ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = super::openapi::ErrorBody),
        (status = 502, description = "The agent is unreachable or failed", body = super::openapi::ErrorBody),
        (status = 503, description = "Paused, offline or no URL; or the database is unavailable", body = super::openapi::ErrorBody),
        (status = 504, description = "The agent did not answer in time", body = super::openapi::ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [], "workspace_id" = [])),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %path))]
/// `POST /workspaces/:id/a2a`: relays a JSON-RPC call to the workspace's agent and answers
/// with its reply; records the exchange as activity. With `X-Workspace-ID` the caller is that
/// workspace (its token); without, a person. Errors: see the route's `responses`.
pub async fn proxy(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(RpcBody(body)): Json<RpcBody>,
) -> AppResult<HttpResponse> {
    let target = workspace_id(&path)?;
    let caller = caller_header(&req)?;
    let act_as = match caller {
        Some(workspace) => {
            // Calling as a workspace takes its token, or the admin role: an editor's or a
            // viewer's key is not a workspace's token (it would make them any agent).
            let person = super::principal::of_request(&req).filter(|p| p.is_authenticated_person());
            if person.is_some_and(|p| !p.role.is_some_and(|r| r.covers(Role::Admin))) {
                return Err(AppError::Forbidden(
                    "forbidden: calling as a workspace (X-Workspace-ID) takes its token or the \
                     admin role"
                        .into(),
                ));
            }
            ActAs::Agent(workspace)
        }
        None => ActAs::Actor(require_person(&req, &state)?.actor()),
    };
    let wait = timeout(&req, &state)?;
    let rpc = RpcRequest::parse(body, || Uuid::new_v4().to_string())?;

    // Who may call, and where the target is: one trip to the blocking pool.
    let credentials = Credentials::from_request(&req, &state);
    let url = state
        .read(move |c| {
            if let Some(caller) = caller {
                authorize_blocking(c, &credentials, caller, Access::Agent)?;
                if ws::find_live_row(c, caller)?.is_none() {
                    return Err(AppError::Forbidden("caller workspace not found".into()));
                }
            }
            let row = ws::find_row(c, target)?.ok_or_else(AppError::workspace_not_found)?;
            if let Some(caller) = caller {
                if caller != target && !ws::parent_map(c)?.can_communicate(caller, target) {
                    return Err(AppError::Forbidden(
                        "access denied: workspaces cannot communicate per hierarchy rules".into(),
                    ));
                }
            }
            match row.status() {
                WorkspaceStatus::Removed => {
                    return Err(AppError::WithBody {
                        status: StatusCode::GONE,
                        body: json!({ "error": "workspace removed", "id": target }),
                    })
                }
                WorkspaceStatus::Online | WorkspaceStatus::Degraded => {}
                other => {
                    return Err(AppError::WithBody {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        body: json!({ "error": format!("workspace is {other}"), "status": other.as_str() }),
                    })
                }
            }
            row.url
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| AppError::WithBody {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: json!({ "error": "workspace has no URL", "status": row.status }),
                })
        })
        .await?;

    let payload = web::Bytes::from(rpc.envelope.to_string());
    let started = Instant::now();
    let result = state.a2a.call(&url, payload, wait).await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);

    let (response, exchange_outcome) = answer(result);
    let exchange = Exchange {
        caller,
        target,
        method: rpc.method.clone(),
        request_body: bounded_for_log(rpc.envelope),
        response_body: exchange_outcome.response_body.map(bounded_for_log),
        outcome: exchange_outcome.outcome,
        error_detail: exchange_outcome.error_detail.map(|d| detail(&d)),
        duration_ms,
    };
    tracing::info!(
        target_id = %target,
        caller_id = ?caller,
        method = %rpc.method,
        status = exchange.outcome.as_str(),
        duration_ms,
        "a2a call"
    );
    state
        .execute_as(act_as, move |tx| commands::record(tx, exchange))
        .await?;
    response
}

struct Recorded {
    response_body: Option<Value>,
    outcome: Outcome,
    error_detail: Option<String>,
}

fn bad_gateway(error: &str, extra: Value) -> AppError {
    let mut body = json!({ "error": error });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    AppError::WithBody {
        status: StatusCode::BAD_GATEWAY,
        body,
    }
}

/// The answer to the caller and what is recorded, from the call's result.
fn answer(result: Result<AgentAnswer, CallError>) -> (AppResult<HttpResponse>, Recorded) {
    let failed = |response: AppError, outcome: Outcome, detail: String| {
        (
            Err(response),
            Recorded {
                response_body: None,
                outcome,
                error_detail: Some(detail),
            },
        )
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(CallError::Timeout(limit)) => {
            let message = format!("workspace agent did not answer within {}s", limit.as_secs());
            return failed(
                AppError::WithBody {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    body: json!({ "error": message }),
                },
                Outcome::Timeout,
                message,
            );
        }
        Err(CallError::Unreachable(cause)) => {
            return failed(
                bad_gateway("failed to reach workspace agent", json!({})),
                Outcome::Error,
                cause,
            )
        }
        Err(other) => {
            let message = other.to_string();
            return failed(bad_gateway(&message, json!({})), Outcome::Error, message);
        }
    };
    let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
    // The answer is stored with the call: like a request body, it may hold no U+0000, which
    // PostgreSQL cannot store (and SQLite would), so both backends refuse it alike.
    if let Some(path) = parsed
        .as_ref()
        .and_then(|v| super::body::find_nul(v, String::new()))
    {
        let message = format!("workspace agent answered with the character U+0000 (at {path})");
        return failed(
            bad_gateway(&message, json!({ "agent_status": answer.status })),
            Outcome::Error,
            message,
        );
    }
    if !(200..300).contains(&answer.status) {
        let agent_error = parsed.as_ref().and_then(|v| v.get("error")).map(|e| {
            e.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string())
        });
        let message = format!("workspace agent answered HTTP {}", answer.status);
        let detail = match &agent_error {
            Some(e) => format!("{message}: {e}"),
            None => message.clone(),
        };
        return (
            Err(bad_gateway(
                &message,
                json!({ "agent_status": answer.status, "agent_error": agent_error }),
            )),
            Recorded {
                response_body: parsed,
                outcome: Outcome::Error,
                error_detail: Some(detail),
            },
        );
    }
    let Some(value) = parsed else {
        let message = "workspace agent answered with a body that is not JSON".to_string();
        return failed(
            bad_gateway(&message, json!({ "agent_status": answer.status })),
            Outcome::Error,
            message,
        );
    };
    let rpc_error = rpc_error_message(&value);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (
        Ok(HttpResponse::build(status)
            .content_type("application/json")
            .body(answer.body)),
        Recorded {
            response_body: Some(value),
            outcome: if rpc_error.is_some() {
                Outcome::Error
            } else {
                Outcome::Ok
            },
            error_detail: rpc_error,
        },
    )
}
