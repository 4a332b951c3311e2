//! Activity: `GET`/`POST /workspaces/:id/activity` and `POST /workspaces/:id/notify` (a workspace's
//! agent, or a person). The caller is checked inside the request's one database trip (`OnBehalf`).

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Access, OnBehalf};
use super::body::{FieldLimit, Json, JsonBody, Query};
use super::openapi::{
    BodyRefused, DbDown, ErrorBody, NoWorkspace, PathRefused, StatusBody, TokenRefused,
    WorkspaceGone,
};
use crate::commands::activity::{self as commands, LogActivity, Notify};
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, ActivityType, ActivityTypeFilter, FieldError};
use crate::error::{AppError, AppResult};
use crate::queries::activity::{self as queries, Activity, ActivityFilter};

/// Rows listed when `?limit=` is absent.
pub const DEFAULT_ACTIVITY_LIMIT: i64 = 100;
/// Most rows one list returns (a larger `limit` is cut to this).
pub const MAX_ACTIVITY_LIMIT: i64 = 500;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
/// `GET /workspaces/:id/activity` filters: `type`, `source` (`canvas` or `agent`), `limit`.
pub struct ListQuery {
    #[param(value_type = Option<ActivityType>)]
    #[serde(rename = "type")]
    activity_type: Option<String>,
    #[param(pattern = "^(canvas|agent)$")]
    source: Option<String>,
    #[param(minimum = 1)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/workspaces/{id}/activity",
    tag = "activity",
    summary = "The workspace's activity, newest first",
    params(("id" = String, Path, format = Uuid, description = "Workspace id"), ListQuery),
    responses(
        (status = 200, description = "The activity rows", body = Vec<Activity>),
        PathRefused, TokenRefused, NoWorkspace, DbDown,
    ),
)]
/// `GET /workspaces/:id/activity`: the rows, newest first. 401 before 400, then 404.
pub async fn list(query: Query<ListQuery>, call: OnBehalf) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let filter = list_filter(&query);
    let rows = call
        .read(Access::Read, move |c| queries::list(c, id, &filter?))
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// The query's filter: 400 naming the parameter for a bad `type`, `source` or `limit`.
fn list_filter(query: &ListQuery) -> AppResult<ActivityFilter> {
    let activity_type = query
        .activity_type
        .as_deref()
        .map(|t| ActivityTypeFilter::parse("type", t))
        .transpose()?;
    let from_agent = match query.source.as_deref() {
        None => None,
        Some("agent") => Some(true),
        Some("canvas") => Some(false),
        Some(_) => {
            return Err(AppError::BadRequest(
                "source: must be canvas or agent".into(),
            ))
        }
    };
    let limit = match query.limit {
        None => DEFAULT_ACTIVITY_LIMIT,
        Some(n) if n >= 1 => n.min(MAX_ACTIVITY_LIMIT),
        Some(_) => {
            return Err(AppError::BadRequest(
                "limit: must be a positive integer".into(),
            ))
        }
    };
    Ok(ActivityFilter {
        activity_type: activity_type.map(|t| t.as_str().to_string()),
        from_agent,
        limit,
    })
}

#[derive(Deserialize, ToSchema)]
/// The body of `POST /workspaces/:id/activity`.
pub struct LogBody {
    #[schema(required = true, nullable = false, value_type = ActivityType)]
    activity_type: Option<String>,
    method: Option<String>,
    summary: Option<String>,
    #[schema(format = Uuid)]
    source_id: Option<String>,
    #[schema(format = Uuid)]
    target_id: Option<String>,
    status: Option<String>,
    error_detail: Option<String>,
    #[schema(minimum = 0, maximum = 2147483647)]
    duration_ms: Option<i64>,
    request_body: Option<Value>,
    response_body: Option<Value>,
    metadata: Option<Value>,
}

impl JsonBody for LogBody {
    const NULLABLE: &'static [&'static str] = &[
        "method",
        "summary",
        "source_id",
        "target_id",
        "status",
        "error_detail",
        "duration_ms",
        "request_body",
        "response_body",
        "metadata",
    ];
    const LIMITS: &'static [FieldLimit] = &[
        ("activity_type", limits::WORD),
        ("method", limits::WORD),
        ("summary", limits::SUMMARY),
        ("source_id", limits::ID),
        ("target_id", limits::ID),
        ("status", limits::WORD),
        ("error_detail", limits::ERROR_DETAIL),
        ("request_body", limits::ACTIVITY_BODY),
        ("response_body", limits::ACTIVITY_BODY),
        ("metadata", limits::METADATA),
    ];
}

fn optional_uuid(field: &str, raw: Option<&str>) -> Result<Option<uuid::Uuid>, FieldError> {
    raw.map(|r| parse_uuid(r).ok_or_else(|| FieldError::new(field, "must be a UUID")))
        .transpose()
}

#[utoipa::path(
    post,
    path = "/workspaces/{id}/activity",
    tag = "activity",
    summary = "Log an activity (an agent reporting)",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    request_body(content = LogBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"logged\", \"id\"}`", body = Object),
        (status = 403, description = "Forbidden", body = ErrorBody),
        PathRefused, TokenRefused, NoWorkspace, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
/// `POST /workspaces/:id/activity`: `{"status": "logged", "id"}`. 401 before any verdict on the
/// body's fields, then 404/410.
pub async fn log(Json(body): Json<LogBody>, call: OnBehalf) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let input = log_input(id, body);
    let activity_id = call
        .execute(Access::Write, move |tx| commands::log(tx, id, input?))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "logged", "id": activity_id })))
}

/// The body as a command's input: 400 naming the field, 403 for a `source_id` that is not
/// the workspace `id` in the path.
fn log_input(id: uuid::Uuid, body: LogBody) -> AppResult<LogActivity> {
    let activity_type = ActivityType::parse(
        "activity_type",
        body.activity_type.as_deref().unwrap_or_default(),
    )?;
    let source_id = optional_uuid("source_id", body.source_id.as_deref())?;
    if source_id.is_some_and(|s| s != id) {
        return Err(AppError::Forbidden(
            "source_id must match the workspace in the path".into(),
        ));
    }
    let duration_ms = body
        .duration_ms
        .map(|d| {
            i32::try_from(d).ok().filter(|d| *d >= 0).ok_or_else(|| {
                FieldError::new("duration_ms", "must be a non-negative 32-bit integer")
            })
        })
        .transpose()?;
    Ok(LogActivity {
        activity_type,
        source_id,
        target_id: optional_uuid("target_id", body.target_id.as_deref())?,
        method: body.method,
        summary: body.summary,
        status: body
            .status
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "ok".into()),
        error_detail: body.error_detail,
        duration_ms,
        request_body: body.request_body,
        response_body: body.response_body,
        metadata: body.metadata,
    })
}

#[derive(Deserialize, ToSchema)]
/// The body of `POST /workspaces/:id/notify`: a message and optional file attachments.
pub struct NotifyBody {
    #[schema(required = true, nullable = false, min_length = 1)]
    message: Option<String>,
    #[schema(value_type = Vec<Attachment>)]
    #[serde(default)]
    attachments: Vec<Value>,
}

impl JsonBody for NotifyBody {
    const LIMITS: &'static [FieldLimit] = &[
        ("message", limits::MESSAGE),
        ("attachments", limits::ATTACHMENTS),
    ];
}

/// A file sent with a notification (read from the JSON by hand, see `parse_attachments`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Attachment {
    #[schema(min_length = 1)]
    uri: String,
    #[schema(min_length = 1)]
    name: String,
    #[schema(rename = "mimeType")]
    mime_type: Option<String>,
    #[schema(minimum = 0)]
    size: Option<u64>,
}

/// Each attachment: `{uri, name, mimeType?, size?}`; errors name `attachment[i]`.
fn parse_attachments(raw: Vec<Value>) -> Result<Vec<Value>, FieldError> {
    if raw.len() > limits::ATTACHMENT_COUNT {
        return Err(FieldError::new(
            "attachments",
            format!("must hold at most {} files", limits::ATTACHMENT_COUNT),
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("attachment[{i}]");
            let obj = a
                .as_object()
                .ok_or_else(|| FieldError::new(&field, "must be an object"))?;
            let text = |key: &str| {
                obj.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            };
            let uri = text("uri").ok_or_else(|| FieldError::new(&field, "uri is required"))?;
            let name = text("name").ok_or_else(|| FieldError::new(&field, "name is required"))?;
            let mut file = json!({ "uri": uri, "name": name });
            match obj.get("mimeType") {
                None | Some(Value::Null) => {}
                Some(Value::String(m)) => file["mimeType"] = json!(m),
                Some(_) => return Err(FieldError::new(&field, "mimeType must be a string")),
            }
            match obj.get("size") {
                None | Some(Value::Null) => {}
                Some(v) if v.as_u64().is_some() => file["size"] = v.clone(),
                Some(_) => {
                    return Err(FieldError::new(
                        &field,
                        "size must be a non-negative integer",
                    ))
                }
            }
            Ok(file)
        })
        .collect()
}

/// The body as a command's input: 400 naming the field.
fn notify_input(body: NotifyBody) -> Result<Notify, FieldError> {
    let message = body
        .message
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| FieldError::new("message", "is required"))?;
    Ok(Notify {
        message,
        attachments: parse_attachments(body.attachments)?,
    })
}

#[utoipa::path(
    post,
    path = "/workspaces/{id}/notify",
    tag = "activity",
    summary = "Message the people watching the canvas",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    request_body(content = NotifyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"sent\"}`", body = StatusBody),
        PathRefused, TokenRefused, NoWorkspace, WorkspaceGone, BodyRefused, DbDown,
    ),
)]
/// `POST /workspaces/:id/notify`: `{"status": "sent"}`; the canvas gets AGENT_MESSAGE.
pub async fn notify(Json(body): Json<NotifyBody>, call: OnBehalf) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let input = notify_input(body);
    call.execute(Access::Write, move |tx| commands::notify(tx, id, input?))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "sent" })))
}
