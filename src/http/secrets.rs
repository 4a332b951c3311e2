//! Secrets: `/workspaces/:id/secrets` (workspace or admin) and `/settings/secrets` (admin).
//!
//! Values go in and are sealed before they reach the store; they never come out of the API.
//! Only ids and key names are logged.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{authorize_workspace, Access};
use super::body::{FieldLimit, Json, JsonBody};
use super::openapi::{ErrorBody, StatusBody};
use super::workspace_id;
use crate::app::AppState;
use crate::commands::workspaces::require_live;
use crate::domain::validation::FieldError;
use crate::error::{AppError, AppResult};
use crate::secrets::SecretSummary;
use crate::secrets::{
    global_listing, merged_listing, parse_value, seal, SecretBinding, SecretKey, SecretValue,
};
use crate::store::{secrets as store, workspaces, StoreError};

/// The body of a secret write: `{"key","value"}`, or `{"value"}` under `/…/secrets/:key`.
/// No `Debug`: the value is a secret (and the body extractor's errors never quote input).
#[derive(Deserialize, ToSchema)]
pub struct SecretBody {
    /// Under `/…/secrets/:key` optional (must match the path).
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    key: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 65536)]
    value: Option<String>,
}

impl JsonBody for SecretBody {
    /// `key` is bounded by its pattern (`SecretKey`: at most 128 bytes).
    const LIMITS: &'static [FieldLimit] = &[("value", crate::secrets::MAX_VALUE_BYTES)];
}

impl SecretBody {
    /// For the collection routes: the key comes from the body.
    fn parse(self) -> Result<(SecretKey, SecretValue), FieldError> {
        let key = SecretKey::parse(self.key.as_deref().unwrap_or_default())?;
        Ok((key, parse_value(self.value)?))
    }

    /// For `/…/secrets/:key`: the key comes from the path; one in the body must match it.
    fn parse_for(self, path_key: &str) -> Result<(SecretKey, SecretValue), FieldError> {
        let key = SecretKey::parse(path_key)?;
        if self.key.as_deref().is_some_and(|k| k != key.as_str()) {
            return Err(FieldError::new("key", "does not match the key in the path"));
        }
        Ok((key, parse_value(self.value)?))
    }
}

fn secret_not_found() -> AppError {
    AppError::NotFound("secret not found".into())
}

fn saved(key: &SecretKey) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "saved", "key": key.as_str() }))
}

fn deleted() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "deleted" }))
}

// --- Workspace secrets ---

#[utoipa::path(
    get,
    path = "/workspaces/{id}/secrets",
    tag = "secrets",
    summary = "The workspace's secret names, global ones merged in (never values)",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    responses(
        (status = 200, description = "Secret names", body = Vec<SecretSummary>),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %path))]
pub async fn list_workspace(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    authorize_workspace(&req, &state, id, Access::Read).await?;
    let (own, globals) = state
        .read(move |c| {
            if workspaces::find_live_row(c, id)?.is_none() {
                return Err(AppError::workspace_not_found());
            }
            Ok((store::list_workspace(c, id)?, store::list_global(c)?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(merged_listing(own, globals)))
}

#[utoipa::path(
    method(post, put),
    path = "/workspaces/{id}/secrets",
    tag = "secrets",
    summary = "Save a workspace secret",
    params(("id" = String, Path, format = Uuid, description = "Workspace id")),
    request_body(content = SecretBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"saved\", \"key\"}`", body = Object),
        (status = 503, description = "Database unavailable, or secrets disabled (no SECRETS_ENCRYPTION_KEY)", body = ErrorBody),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %path))]
pub async fn put_workspace(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    authorize_workspace(&req, &state, id, Access::Write).await?;
    let (key, value) = body.parse()?;
    save_workspace(&state, id, key, value).await
}

#[utoipa::path(
    put,
    path = "/workspaces/{id}/secrets/{key}",
    tag = "secrets",
    summary = "Save a workspace secret by name",
    params(("id" = String, Path, format = Uuid, description = "Workspace id"), ("key" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$", description = "Secret name")),
    request_body(content = SecretBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"saved\", \"key\"}`", body = Object),
        (status = 503, description = "Database unavailable, or secrets disabled (no SECRETS_ENCRYPTION_KEY)", body = ErrorBody),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Workspace not found", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %path.0))]
pub async fn put_workspace_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path.0)?;
    authorize_workspace(&req, &state, id, Access::Write).await?;
    let (key, value) = body.parse_for(&path.1)?;
    save_workspace(&state, id, key, value).await
}

async fn save_workspace(
    state: &AppState,
    id: Uuid,
    key: SecretKey,
    value: SecretValue,
) -> AppResult<HttpResponse> {
    let keyring = state.secrets.require_keyring()?;
    let binding = SecretBinding::workspace(id.to_string(), key.as_str());
    let sealed = seal(&keyring.current, &binding, value.expose());
    drop(value);
    let name = key.clone();
    state
        .execute(move |tx| {
            require_live(tx, id)?;
            store::upsert_workspace(tx.conn(), id, name.as_str(), &sealed, Utc::now())?;
            Ok(())
        })
        .await?;
    tracing::info!(workspace_id = %id, key = key.as_str(), key_id = keyring.current.key_id(), "secret saved");
    Ok(saved(&key))
}

#[utoipa::path(
    delete,
    path = "/workspaces/{id}/secrets/{key}",
    tag = "secrets",
    summary = "Delete a workspace secret",
    params(("id" = String, Path, format = Uuid, description = "Workspace id"), ("key" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$", description = "Secret name")),
    responses(
        (status = 200, description = "`{\"status\": \"deleted\"}`", body = StatusBody),
        (status = 404, description = "Workspace or secret not found", body = ErrorBody),
        (status = 400, description = "Invalid input (a path id that is not a UUID, a field breaking its rule)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 410, description = "The workspace was removed", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [])),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %path.0))]
pub async fn delete_workspace(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path.0)?;
    authorize_workspace(&req, &state, id, Access::Write).await?;
    let key = SecretKey::parse(&path.1)?;
    let name = key.clone();
    state
        .execute(move |tx| {
            require_live(tx, id)?;
            if !store::delete_workspace(tx.conn(), id, name.as_str())? {
                return Err(secret_not_found());
            }
            Ok(())
        })
        .await?;
    tracing::info!(workspace_id = %id, key = key.as_str(), "secret deleted");
    Ok(deleted())
}

// --- Global secrets ---

#[utoipa::path(
    get,
    path = "/settings/secrets",
    tag = "secrets",
    summary = "Global secret names (never values)",
    responses(
        (status = 200, description = "Secret names", body = Vec<SecretSummary>),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
pub async fn list_global(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let globals = state
        .read(|c| Ok(store::list_global(c).map_err(StoreError::from)?))
        .await?;
    Ok(HttpResponse::Ok().json(global_listing(globals)))
}

#[utoipa::path(
    method(post, put),
    path = "/settings/secrets",
    tag = "secrets",
    summary = "Save a global secret",
    request_body(content = SecretBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"saved\", \"key\"}`", body = Object),
        (status = 503, description = "Database unavailable, or secrets disabled (no SECRETS_ENCRYPTION_KEY)", body = ErrorBody),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
pub async fn put_global(
    state: web::Data<AppState>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    let (key, value) = body.parse()?;
    save_global(&state, key, value).await
}

#[utoipa::path(
    put,
    path = "/settings/secrets/{key}",
    tag = "secrets",
    summary = "Save a global secret by name",
    params(("key" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$", description = "Secret name")),
    request_body(content = SecretBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"saved\", \"key\"}`", body = Object),
        (status = 503, description = "Database unavailable, or secrets disabled (no SECRETS_ENCRYPTION_KEY)", body = ErrorBody),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or a field over its limit", body = ErrorBody),
        (status = 415, description = "Body not sent as `Content-Type: application/json`", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
#[tracing::instrument(skip_all)]
pub async fn put_global_key(
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    let (key, value) = body.parse_for(&path)?;
    save_global(&state, key, value).await
}

async fn save_global(
    state: &AppState,
    key: SecretKey,
    value: SecretValue,
) -> AppResult<HttpResponse> {
    let keyring = state.secrets.require_keyring()?;
    let binding = SecretBinding::global(key.as_str());
    let sealed = seal(&keyring.current, &binding, value.expose());
    drop(value);
    let name = key.clone();
    state
        .execute(move |tx| {
            store::upsert_global(tx.conn(), name.as_str(), &sealed, Utc::now())?;
            Ok(())
        })
        .await?;
    tracing::info!(
        key = key.as_str(),
        key_id = keyring.current.key_id(),
        "global secret saved"
    );
    Ok(saved(&key))
}

#[utoipa::path(
    delete,
    path = "/settings/secrets/{key}",
    tag = "secrets",
    summary = "Delete a global secret",
    params(("key" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$", description = "Secret name")),
    responses(
        (status = 200, description = "`{\"status\": \"deleted\"}`", body = StatusBody),
        (status = 404, description = "Secret not found", body = ErrorBody),
        (status = 400, description = "Invalid input; the message names the field and the rule", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("admin_token" = [])),
)]
#[tracing::instrument(skip_all)]
pub async fn delete_global(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let key = SecretKey::parse(&path)?;
    let name = key.clone();
    state
        .execute(move |tx| {
            if !store::delete_global(tx.conn(), name.as_str())? {
                return Err(secret_not_found());
            }
            Ok(())
        })
        .await?;
    tracing::info!(key = key.as_str(), "global secret deleted");
    Ok(deleted())
}
