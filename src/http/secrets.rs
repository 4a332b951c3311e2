//! Secrets: `/workspaces/:id/secrets` (workspace or admin) and `/settings/secrets` (admin).
//!
//! Values go in and are sealed before they reach the store; they never come out of the API.
//! Only ids and key names are logged.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::auth::{authorize_workspace, require_admin, Access};
use super::body::{FieldLimit, Json, JsonBody};
use super::workspace_id;
use crate::app::AppState;
use crate::commands::workspaces::require_live;
use crate::domain::validation::FieldError;
use crate::error::{AppError, AppResult};
use crate::secrets::{
    global_listing, merged_listing, parse_value, seal, SecretBinding, SecretKey, SecretValue,
};
use crate::store::{secrets as store, workspaces, StoreError};

/// The body of a secret write: `{"key","value"}`, or `{"value"}` under `/…/secrets/:key`.
/// No `Debug`: the value is a secret (and the body extractor's errors never quote input).
#[derive(Deserialize)]
pub struct SecretBody {
    key: Option<String>,
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

pub async fn list_global(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let globals = state
        .read(|c| Ok(store::list_global(c).map_err(StoreError::from)?))
        .await?;
    Ok(HttpResponse::Ok().json(global_listing(globals)))
}

pub async fn put_global(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let (key, value) = body.parse()?;
    save_global(&state, key, value).await
}

#[tracing::instrument(skip_all)]
pub async fn put_global_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(body): Json<SecretBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
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

#[tracing::instrument(skip_all)]
pub async fn delete_global(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
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
