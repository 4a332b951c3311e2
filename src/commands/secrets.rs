//! Secret writes. Values arrive sealed (`secrets::seal`, done by the caller off
//! the database thread) and never leave as plaintext. Secret writes append no events.

use chrono::Utc;
use uuid::Uuid;

use super::workspaces::require_live;
use crate::error::{AppError, AppResult};
use crate::secrets::{SealedSecret, SecretKey};
use crate::store::{secrets as store, Tx};

fn secret_not_found() -> AppError {
    AppError::NotFound("secret not found".into())
}

/// Saves (inserts or replaces) a live workspace's secret. 404 for an unknown workspace, or
/// one removed meanwhile.
pub fn save_workspace(
    tx: &mut Tx<'_>,
    id: Uuid,
    key: &SecretKey,
    sealed: &SealedSecret,
) -> AppResult<()> {
    require_live(tx, id)?;
    store::upsert_workspace(tx.conn(), id, key.as_str(), sealed, Utc::now())?;
    Ok(())
}

/// Deletes a live workspace's secret. 404 for an unknown workspace or secret.
pub fn delete_workspace(tx: &mut Tx<'_>, id: Uuid, key: &SecretKey) -> AppResult<()> {
    require_live(tx, id)?;
    if !store::delete_workspace(tx.conn(), id, key.as_str())? {
        return Err(secret_not_found());
    }
    Ok(())
}

/// Saves (inserts or replaces) a global secret.
pub fn save_global(tx: &mut Tx<'_>, key: &SecretKey, sealed: &SealedSecret) -> AppResult<()> {
    store::upsert_global(tx.conn(), key.as_str(), sealed, Utc::now())?;
    Ok(())
}

/// Deletes a global secret. 404 when there is none by that name.
pub fn delete_global(tx: &mut Tx<'_>, key: &SecretKey) -> AppResult<()> {
    if !store::delete_global(tx.conn(), key.as_str())? {
        return Err(secret_not_found());
    }
    Ok(())
}
