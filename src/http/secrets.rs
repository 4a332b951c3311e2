//! Secrets: `/workspaces/:id/secrets` (workspace or admin) and `/settings/secrets` (admin).
//!
//! Values go in and are sealed before they reach the store; they never come out of the API.
//! Only ids and key names are logged.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Access, OnBehalf};
use super::body::{FieldLimit, Json, JsonBody};
use super::openapi::{
    BodyRefused, DbDown, ErrorBody, InputRefused, NoWorkspace, PathRefused, SecretsDown,
    StatusBody, TokenRefused, WorkspaceGone,
};
use crate::app::AppState;
use crate::commands::secrets as commands;
use crate::domain::validation::FieldError;
use crate::error::AppResult;
use crate::queries::secrets as queries;
use crate::secrets::SecretSummary;
use crate::secrets::{parse_value, seal, SealedSecret, SecretBinding, SecretKey, SecretValue};

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
        PathRefused, TokenRefused, NoWorkspace, DbDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %call.workspace))]
/// `GET /workspaces/:id/secrets`: secret names (never values), the global ones merged in.
pub async fn list_workspace(call: OnBehalf) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let listing = call
        .read(Access::Read, move |c| queries::list_workspace(c, id))
        .await?;
    Ok(HttpResponse::Ok().json(listing))
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
        PathRefused, TokenRefused, NoWorkspace, WorkspaceGone, BodyRefused, SecretsDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %call.workspace))]
/// `POST`/`PUT /workspaces/:id/secrets` with `{"key", "value"}`: `{"status": "saved", "key"}`.
pub async fn put_workspace(
    Json(body): Json<SecretBody>,
    call: OnBehalf,
) -> AppResult<HttpResponse> {
    save_workspace(call, body.parse()).await
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
        PathRefused, TokenRefused, NoWorkspace, WorkspaceGone, BodyRefused, SecretsDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %call.workspace))]
/// `PUT /workspaces/:id/secrets/:key` with `{"value"}`: `{"status": "saved", "key"}`.
pub async fn put_workspace_key(
    path: web::Path<(String, String)>,
    Json(body): Json<SecretBody>,
    call: OnBehalf,
) -> AppResult<HttpResponse> {
    save_workspace(call, body.parse_for(&path.1)).await
}

/// A secret ready to store: its name, and its value sealed (off the database thread) under
/// the current master key, whose id is logged.
struct ReadySecret {
    key: SecretKey,
    sealed: SealedSecret,
    key_id: String,
}

/// Seals a parsed secret for the binding `bind` gives its key. Errors, in this order: the
/// parse's 400, then 503 when secrets are disabled (no `SECRETS_ENCRYPTION_KEY`).
fn seal_parsed(
    state: &AppState,
    parsed: Result<(SecretKey, SecretValue), FieldError>,
    bind: impl FnOnce(&SecretKey) -> SecretBinding,
) -> AppResult<ReadySecret> {
    let (key, value) = parsed?;
    let keyring = state.secrets.require_keyring()?;
    let sealed = seal(&keyring.current, &bind(&key), value.expose());
    Ok(ReadySecret {
        key,
        sealed,
        key_id: keyring.current.key_id().to_string(),
    })
}

/// Seals and saves a workspace secret in one batcher command that checks the caller first (a
/// caller without access hears 401 before any verdict on its input).
async fn save_workspace(
    call: OnBehalf,
    parsed: Result<(SecretKey, SecretValue), FieldError>,
) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let ready = seal_parsed(call.state(), parsed, |key| {
        SecretBinding::workspace(id.to_string(), key.as_str())
    });
    let ready = call
        .execute(Access::Write, move |tx| {
            let ready = ready?;
            commands::save_workspace(tx, id, &ready.key, &ready.sealed)?;
            Ok(ready)
        })
        .await?;
    tracing::info!(workspace_id = %id, key = ready.key.as_str(), key_id = ready.key_id, "secret saved");
    Ok(saved(&ready.key))
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
        PathRefused, TokenRefused, WorkspaceGone, DbDown,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %call.workspace))]
/// `DELETE /workspaces/:id/secrets/:key`: `{"status": "deleted"}`; 404 for an unknown secret.
pub async fn delete_workspace(
    path: web::Path<(String, String)>,
    call: OnBehalf,
) -> AppResult<HttpResponse> {
    let id = call.workspace;
    let key = SecretKey::parse(&path.1);
    let key = call
        .execute(Access::Write, move |tx| {
            let key = key?;
            commands::delete_workspace(tx, id, &key)?;
            Ok(key)
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
        TokenRefused, DbDown,
    ),
)]
/// `GET /settings/secrets`: global secret names (never values).
pub async fn list_global(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let listing = state.read(queries::list_global).await?;
    Ok(HttpResponse::Ok().json(listing))
}

#[utoipa::path(
    method(post, put),
    path = "/settings/secrets",
    tag = "secrets",
    summary = "Save a global secret",
    request_body(content = SecretBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"saved\", \"key\"}`", body = Object),
        InputRefused, TokenRefused, BodyRefused, SecretsDown,
    ),
)]
/// `POST`/`PUT /settings/secrets` with `{"key", "value"}`: `{"status": "saved", "key"}`.
pub async fn put_global(
    state: web::Data<AppState>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    save_global(&state, body.parse()).await
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
        InputRefused, TokenRefused, BodyRefused, SecretsDown,
    ),
)]
#[tracing::instrument(skip_all)]
/// `PUT /settings/secrets/:key` with `{"value"}`: `{"status": "saved", "key"}`.
pub async fn put_global_key(
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    save_global(&state, body.parse_for(&path)).await
}

/// Seals and saves a global secret (the route's requirement already admitted the caller).
async fn save_global(
    state: &AppState,
    parsed: Result<(SecretKey, SecretValue), FieldError>,
) -> AppResult<HttpResponse> {
    let ready = seal_parsed(state, parsed, |key| SecretBinding::global(key.as_str()))?;
    let ready = state
        .execute(move |tx| {
            commands::save_global(tx, &ready.key, &ready.sealed)?;
            Ok(ready)
        })
        .await?;
    tracing::info!(
        key = ready.key.as_str(),
        key_id = ready.key_id,
        "global secret saved"
    );
    Ok(saved(&ready.key))
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
        InputRefused, TokenRefused, DbDown,
    ),
)]
#[tracing::instrument(skip_all)]
/// `DELETE /settings/secrets/:key`: `{"status": "deleted"}`; 404 for an unknown secret.
pub async fn delete_global(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let key = SecretKey::parse(&path)?;
    let key = state
        .execute(move |tx| {
            commands::delete_global(tx, &key)?;
            Ok(key)
        })
        .await?;
    tracing::info!(key = key.as_str(), "global secret deleted");
    Ok(deleted())
}
