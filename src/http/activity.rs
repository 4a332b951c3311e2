use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authorize_workspace, Access};
use super::body::{FieldLimit, Json, JsonBody, Query};
use super::workspace_id;
use crate::app::AppState;
use crate::commands::activity::{self as commands, LogActivity, Notify};
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, ActivityType, ActivityTypeFilter, FieldError};
use crate::error::{AppError, AppResult};
use crate::store::activity::{self, ActivityFilter};

pub const DEFAULT_ACTIVITY_LIMIT: i64 = 100;
pub const MAX_ACTIVITY_LIMIT: i64 = 500;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    activity_type: Option<String>,
    source: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    authorize_workspace(&req, &state, id, Access::Read).await?;
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
    let filter = ActivityFilter {
        activity_type: activity_type.map(|t| t.as_str().to_string()),
        from_agent,
        limit,
    };
    let rows = state
        .read(move |c| {
            if crate::store::workspaces::find_row(c, id)?.is_none() {
                return Err(AppError::workspace_not_found());
            }
            Ok(activity::list(c, id, &filter)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Deserialize)]
pub struct LogBody {
    activity_type: Option<String>,
    method: Option<String>,
    summary: Option<String>,
    source_id: Option<String>,
    target_id: Option<String>,
    status: Option<String>,
    error_detail: Option<String>,
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

pub async fn log(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<LogBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    authorize_workspace(&req, &state, id, Access::Write).await?;
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
    let input = LogActivity {
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
    };
    let activity_id = state
        .execute(move |tx| commands::log(tx, id, input))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "logged", "id": activity_id })))
}

#[derive(Deserialize)]
pub struct NotifyBody {
    message: Option<String>,
    #[serde(default)]
    attachments: Vec<Value>,
}

impl JsonBody for NotifyBody {
    const LIMITS: &'static [FieldLimit] = &[
        ("message", limits::MESSAGE),
        ("attachments", limits::ATTACHMENTS),
    ];
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

pub async fn notify(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<NotifyBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    authorize_workspace(&req, &state, id, Access::Write).await?;
    let message = body
        .message
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| FieldError::new("message", "is required"))?;
    let input = Notify {
        message,
        attachments: parse_attachments(body.attachments)?,
    };
    state
        .execute(move |tx| commands::notify(tx, id, input))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "sent" })))
}
