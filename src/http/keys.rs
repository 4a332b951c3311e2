//! `/keys`: API keys for people (admin only). A key is shown once, in the answer to its
//! creation; revoking it ends its sessions and closes its sockets on every instance.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::{FieldLimit, Json, JsonBody};
use super::openapi::{BodyRefused, DbDown, ErrorBody, InputRefused};
use super::principal::Principal;
use crate::app::AppState;
use crate::commands::keys::{self as commands, CreateKey, IssuedKey};
use crate::domain::people::Role;
use crate::domain::validation::{FieldError, KeyName};
use crate::error::{AppError, AppResult};
use crate::events::control::ControlMessage;
use crate::queries::keys::ApiKey;

#[derive(Deserialize, ToSchema)]
/// The body of `POST /keys`: a name, a role and an optional expiry.
pub struct CreateKeyBody {
    /// Whose key it is ("Ada", "CI"): one line, at most 255 bytes.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 255)]
    name: Option<String>,
    #[schema(required = true, nullable = false, pattern = "^(viewer|editor|admin)$")]
    role: Option<String>,
    /// RFC 3339 time after which the key stops working; absent or null: never.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

impl JsonBody for CreateKeyBody {
    const NULLABLE: &'static [&'static str] = &["expires_at"];
    const LIMITS: &'static [FieldLimit] = &[
        ("name", KeyName::MAX_BYTES),
        ("role", 16),
        ("expires_at", 64),
    ];
}

fn parse_create(body: CreateKeyBody, created_by: String) -> Result<CreateKey, FieldError> {
    let name = KeyName::parse(body.name.as_deref().unwrap_or_default())?;
    let role = match body.role.as_deref() {
        None => return Err(FieldError::new("role", "is required")),
        Some(raw) => Role::parse(raw)
            .ok_or_else(|| FieldError::new("role", "must be viewer, editor or admin"))?,
    };
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| FieldError::new("expires_at", "must be an RFC 3339 time"))
        })
        .transpose()?;
    if expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(FieldError::new("expires_at", "must be in the future"));
    }
    Ok(CreateKey {
        name,
        role,
        expires_at,
        created_by,
    })
}

#[utoipa::path(
    post,
    path = "/keys",
    tag = "people",
    summary = "Issue an API key (admin); the key is in this answer only",
    request_body(content = CreateKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`{\"id\",\"key\",\"name\",\"role\",\"prefix\",\"created_by\",\"created_at\",\"expires_at\",…}`", body = IssuedKey),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller's role is not admin", body = ErrorBody),
        InputRefused, BodyRefused, DbDown,
    ),
    security(("admin_token" = [])),
)]
#[tracing::instrument(skip_all)]
/// `POST /keys`: 201 with the key, shown this once.
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    Json(body): Json<CreateKeyBody>,
) -> AppResult<HttpResponse> {
    let input = parse_create(body, principal.id.clone())?;
    let issued = state.read(move |c| Ok(commands::create(c, input)?)).await?;
    tracing::info!(key_id = %issued.stored.id, role = issued.stored.role.as_str(), "API key issued");
    Ok(HttpResponse::Created().json(issued))
}

#[utoipa::path(
    get,
    path = "/keys",
    tag = "people",
    summary = "Every API key, newest first, without the keys themselves (admin)",
    responses(
        (status = 200, description = "The keys", body = Vec<ApiKey>),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller's role is not admin", body = ErrorBody),
        DbDown,
    ),
    security(("admin_token" = [])),
)]
/// `GET /keys`: every key, newest first, never the keys themselves.
pub async fn list(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let all = state.read(crate::queries::keys::list).await?;
    Ok(HttpResponse::Ok().json(all))
}

#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "people",
    summary = "Revoke an API key (admin): its sessions end, its sockets close with 4001 on every instance",
    params(("id" = String, Path, format = Uuid, description = "Key id")),
    responses(
        (status = 200, description = "The key, with `revoked_at`", body = ApiKey),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller's role is not admin", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        DbDown,
    ),
    security(("admin_token" = [])),
)]
#[tracing::instrument(skip_all, fields(key_id = %path))]
/// `DELETE /keys/:id`: the key with `revoked_at`; its sessions end and its sockets close on
/// every instance. 400 for an id that is not a UUID, 404 for an unknown key.
pub async fn revoke(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = crate::domain::ids::parse_uuid(&path)
        .ok_or_else(|| AppError::BadRequest("id: must be a key UUID".into()))?;
    let key = state.read(move |c| commands::revoke(c, id)).await?;
    // Committed: every instance closes the key's sockets; HTTP already refuses it.
    state
        .control
        .publish(ControlMessage::KeyRevoked { key_id: id })
        .await;
    tracing::info!(key_id = %id, "API key revoked");
    Ok(HttpResponse::Ok().json(key))
}
