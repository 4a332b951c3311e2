//! `canopy secrets rotate-key`: re-wraps every data key under the current master key.
//!
//! Values are never decrypted: only the 60-byte wrapped data keys change ([`crypto::rewrap`]).
//! Work goes in batches, one transaction each, walking each table by id. Rows already on the
//! current key are never selected, so an interrupted rotation is finished by running it again.
//! A row that cannot be re-wrapped (its key is not configured, or it fails authentication) is
//! reported by name and left untouched; the rest of the rotation goes on.

use std::fmt;

use uuid::Uuid;

use super::crypto::{self, CryptoError, Keyring, Scope, SecretBinding};
use super::{Secrets, KEY_VAR, PREVIOUS_KEY_VAR};
use crate::config::Config;
use crate::store::{secrets as rows, Store, StoreError};

/// Rows re-wrapped per transaction.
pub const ROTATION_BATCH_SIZE: usize = 100;

/// Where a rotation stands: the table being walked and the last id seen in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The table being walked: workspace secrets, then global ones.
    pub scope: Scope,
    /// The last row id handled in that table; `None` starts at the beginning.
    pub after: Option<Uuid>,
}

impl Cursor {
    /// The beginning: workspace secrets first, then globals.
    pub fn start() -> Cursor {
        Cursor {
            scope: Scope::Workspace,
            after: None,
        }
    }
}

/// A row that could not be re-wrapped: where it lives and why (never any bytes of it).
#[derive(Debug)]
pub struct RotationFailure {
    /// Which table the row is in.
    pub scope: Scope,
    /// The owning workspace; `None` for a global secret.
    pub workspace_id: Option<Uuid>,
    /// The secret's name.
    pub key: String,
    /// Why it could not be re-wrapped: its key id is not configured, or authentication failed.
    pub error: CryptoError,
}

impl fmt::Display for RotationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.workspace_id {
            Some(ws) => write!(f, "workspace {ws} secret {}: {}", self.key, self.error),
            None => write!(f, "global secret {}: {}", self.key, self.error),
        }
    }
}

/// What one batch did.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Rows moved to the current master key in this batch.
    pub rewrapped: usize,
    /// Rows rewritten by someone else between read and update (they keep their new value).
    pub changed_concurrently: usize,
    /// Rows left untouched because they could not be re-wrapped.
    pub failed: Vec<RotationFailure>,
    /// Where the next batch starts; `None` when both tables have been walked.
    pub next: Option<Cursor>,
}

/// What a whole rotation did.
#[derive(Debug, Default)]
pub struct RotationReport {
    /// Transactions run (one per batch of at most [`ROTATION_BATCH_SIZE`] rows).
    pub batches: usize,
    /// Rows moved to the current master key, over all batches.
    pub rewrapped: usize,
    /// Rows rewritten by a concurrent write between read and update; they keep the value that
    /// write stored.
    pub changed_concurrently: usize,
    /// Every row that could not be re-wrapped; a non-empty list makes the command fail after
    /// finishing the rest.
    pub failed: Vec<RotationFailure>,
}

fn binding_of(row: &rows::SealedRow) -> SecretBinding {
    match row.workspace_id {
        Some(ws) => SecretBinding::workspace(ws.0.to_string(), row.key.clone()),
        None => SecretBinding::global(row.key.clone()),
    }
}

/// Re-wraps up to `limit` rows from `from` onward, in one transaction, to `keyring.current`.
pub fn rotate_batch(
    store: &Store,
    keyring: &Keyring,
    from: Cursor,
    limit: usize,
) -> Result<BatchOutcome, StoreError> {
    let limit = limit.max(1);
    let new_key = &keyring.current;
    let (outcome, _events) = store.transact_blocking(|tx| {
        let conn = tx.conn();
        let batch = match from.scope {
            Scope::Workspace => {
                rows::pending_workspace(conn, new_key.key_id(), from.after, limit as i64)?
            }
            Scope::Global => {
                rows::pending_global(conn, new_key.key_id(), from.after, limit as i64)?
            }
        };
        let mut outcome = BatchOutcome {
            rewrapped: 0,
            changed_concurrently: 0,
            failed: Vec::new(),
            next: None,
        };
        for row in &batch {
            let binding = binding_of(row);
            let sealed = crypto::SealedSecret {
                ciphertext: row.encrypted_value.clone(),
                wrapped_key: row.wrapped_key.clone(),
                key_id: row.key_id.clone(),
            };
            match crypto::rewrap(keyring, new_key, &binding, &sealed) {
                Ok(rewrapped) => {
                    if rows::set_wrapped_key(
                        conn,
                        row,
                        &row.wrapped_key,
                        &rewrapped.wrapped_key,
                        &rewrapped.key_id,
                    )? {
                        outcome.rewrapped += 1;
                    } else {
                        outcome.changed_concurrently += 1;
                    }
                }
                Err(error) => outcome.failed.push(RotationFailure {
                    scope: binding.scope(),
                    workspace_id: row.workspace_id.map(|w| w.0),
                    key: row.key.clone(),
                    error,
                }),
            }
        }
        outcome.next = match (batch.last(), from.scope) {
            (Some(last), scope) if batch.len() == limit => Some(Cursor {
                scope,
                after: Some(last.id.0),
            }),
            (_, Scope::Workspace) => Some(Cursor {
                scope: Scope::Global,
                after: None,
            }),
            (_, Scope::Global) => None,
        };
        Ok::<_, StoreError>(outcome)
    })?;
    Ok(outcome)
}

/// Runs batches until every row not on `keyring.current` has been visited.
pub fn rotate_all(
    store: &Store,
    keyring: &Keyring,
    batch_size: usize,
) -> Result<RotationReport, StoreError> {
    let mut report = RotationReport::default();
    let mut cursor = Some(Cursor::start());
    while let Some(from) = cursor {
        let batch = rotate_batch(store, keyring, from, batch_size)?;
        report.batches += 1;
        report.rewrapped += batch.rewrapped;
        report.changed_concurrently += batch.changed_concurrently;
        if batch.rewrapped > 0 || !batch.failed.is_empty() {
            tracing::info!(
                scope = from.scope.as_str(),
                rewrapped = batch.rewrapped,
                failed = batch.failed.len(),
                total_rewrapped = report.rewrapped,
                "secrets: batch committed"
            );
        }
        for failure in &batch.failed {
            tracing::error!(
                scope = failure.scope.as_str(),
                workspace_id = failure.workspace_id.map(|w| w.to_string()),
                key = %failure.key,
                error = %failure.error,
                "secrets: cannot re-wrap"
            );
        }
        report.failed.extend(batch.failed);
        cursor = batch.next;
    }
    Ok(report)
}

/// The `canopy secrets rotate-key` command.
pub fn rotate_key_command(config: &Config, batch_size: usize) -> anyhow::Result<()> {
    let secrets = Secrets::from_config(config)?;
    let Some(keyring) = secrets.keyring() else {
        anyhow::bail!("{KEY_VAR} must be set to the new master key (base64 of 32 bytes)");
    };
    match &keyring.previous {
        Some(previous) => tracing::info!(
            key_id = keyring.current.key_id(),
            previous_key_id = previous.key_id(),
            "secrets: rotating to the current key"
        ),
        None => tracing::warn!(
            key_id = keyring.current.key_id(),
            "secrets: {PREVIOUS_KEY_VAR} is not set; rows wrapped by any other key will be \
             reported, not re-wrapped"
        ),
    }
    let store = Store::open(config.database_url.clone(), 2);
    store.migrate_blocking()?;
    let report = rotate_all(&store, keyring, batch_size)?;
    tracing::info!(
        key_id = keyring.current.key_id(),
        rewrapped = report.rewrapped,
        changed_concurrently = report.changed_concurrently,
        failed = report.failed.len(),
        batches = report.batches,
        "secrets: rotation finished"
    );
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} secret(s) could not be re-wrapped ({} were); check {PREVIOUS_KEY_VAR} and run \
             the rotation again",
            report.failed.len(),
            report.rewrapped
        );
    }
    println!(
        "rewrapped {} secret(s) to key {}",
        report.rewrapped,
        keyring.current.key_id()
    );
    Ok(())
}
