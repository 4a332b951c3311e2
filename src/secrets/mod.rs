//! Workspace and global secrets (DESIGN.md "Secrets").
//!
//! Values are sealed with envelope encryption ([`crypto`]) before they reach the store, and only
//! come back out through [`workspace_bundle`], which decrypts a workspace's whole set or nothing.
//! The HTTP API lists names and timestamps, never a value. Without a master key the service runs
//! with secret writes disabled: nothing is ever stored in plaintext.
//!
//! Values never appear in logs, errors, events or `Debug` output: plaintext travels as
//! [`SecretValue`] (which prints `[redacted]`), key material as [`MasterKey`] or [`KeyText`].

#![warn(missing_docs)]

pub mod crypto;
pub mod rotation;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::validation::FieldError;
use crate::error::AppError;
use crate::store::{secrets as rows, workspaces, Store, StoreError};
pub use crypto::{
    open, seal, CryptoError, Keyring, MasterKey, Scope, SealedSecret, SecretBinding, SecretValue,
};

/// Hex SHA-256 (64 lowercase hex digits) of a bearer credential — a workspace token, an API
/// key or a session id: the only form the store keeps. The credentials are 256-bit random
/// strings, so a plain digest (no salt, no stretching) is enough to make a stolen table useless.
pub fn hash_token(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets are equal, compared as fixed-length digests in constant time
/// (`subtle`), so neither the secret's length nor its first differing byte shows in the timing.
pub fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (da, db) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    subtle::ConstantTimeEq::ct_eq(da.as_slice(), db.as_slice()).into()
}

/// The variable holding the current master key.
pub const KEY_VAR: &str = "SECRETS_ENCRYPTION_KEY";
/// The variable holding the master key being rotated away from.
pub const PREVIOUS_KEY_VAR: &str = "SECRETS_ENCRYPTION_KEY_PREVIOUS";

/// The 503 body's message when no master key is configured.
pub const DISABLED_MESSAGE: &str =
    "secrets are disabled: set SECRETS_ENCRYPTION_KEY (base64 of 32 bytes)";

/// Longest secret name, in bytes (the name pattern is ASCII).
pub const MAX_KEY_BYTES: usize = 128;
/// Largest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A master key as read from the environment: base64 text that prints as `[redacted]`, so a
/// `Debug` of the configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyText(String);

impl KeyText {
    /// Wraps the variable's text as read (already trimmed by the configuration); not checked
    /// until [`KeyText::master_key`].
    pub fn new(text: impl Into<String>) -> Self {
        KeyText(text.into())
    }

    /// Parses the key; the error names `var`, never the value.
    pub fn master_key(&self, var: &str) -> Result<MasterKey, CryptoError> {
        MasterKey::from_base64(&self.0).map_err(|_| CryptoError::InvalidMasterKey {
            name: var.to_owned(),
        })
    }
}

impl Drop for KeyText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The secrets service: the keyring when a master key is configured, nothing otherwise.
#[derive(Debug)]
pub struct Secrets {
    keyring: Option<Keyring>,
}

impl Secrets {
    /// Builds the keyring from `SECRETS_ENCRYPTION_KEY` (and `_PREVIOUS` during a rotation).
    /// The previous key alone is a configuration error: it would only ever be used to read.
    pub fn from_config(config: &Config) -> Result<Secrets, CryptoError> {
        let current = config
            .secrets_encryption_key
            .as_ref()
            .map(|k| k.master_key(KEY_VAR))
            .transpose()?;
        let previous = config
            .secrets_encryption_key_previous
            .as_ref()
            .map(|k| k.master_key(PREVIOUS_KEY_VAR))
            .transpose()?;
        match (current, previous) {
            (Some(current), previous) => Ok(Secrets {
                keyring: Some(Keyring::new(current, previous)),
            }),
            (None, None) => Ok(Secrets { keyring: None }),
            (None, Some(_)) => Err(CryptoError::InvalidMasterKey {
                name: KEY_VAR.to_owned(),
            }),
        }
    }

    /// A service over a ready keyring (`None`: secret writes disabled); for tests and tools
    /// that build keys themselves instead of reading the configuration.
    pub fn with_keyring(keyring: Option<Keyring>) -> Secrets {
        Secrets { keyring }
    }

    /// The keyring, or `None` when no master key is configured (reads of values impossible,
    /// listings of names still work).
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// The keyring, or the 503 every secret write answers while no master key is configured.
    pub fn require_keyring(&self) -> Result<&Keyring, AppError> {
        self.keyring
            .as_ref()
            .ok_or_else(|| AppError::Unavailable(DISABLED_MESSAGE.into()))
    }

    /// Says at start-up which mode secrets run in (key ids only, never key material).
    pub fn log_mode(&self) {
        match &self.keyring {
            Some(keyring) => tracing::info!(
                key_id = keyring.current.key_id(),
                previous_key_id = keyring.previous.as_ref().map(|k| k.key_id()),
                "secrets: envelope encryption on"
            ),
            None => tracing::warn!(
                "secrets: SECRETS_ENCRYPTION_KEY is not set; secret writes are disabled (503)"
            ),
        }
    }
}

/// A secret's name: `[A-Za-z_][A-Za-z0-9_]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretKey(String);

impl SecretKey {
    /// Checks a name against the pattern above. Errors: a [`FieldError`] on `key` when it is
    /// empty, longer than 128 characters, or has a character outside `[A-Za-z0-9_]` (or starts
    /// with a digit).
    pub fn parse(raw: &str) -> Result<SecretKey, FieldError> {
        let mut chars = raw.chars();
        let valid = match chars.next() {
            None => return Err(FieldError::new("key", "is required")),
            Some(first) => {
                (first.is_ascii_alphabetic() || first == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && raw.len() <= MAX_KEY_BYTES
            }
        };
        if !valid {
            return Err(FieldError::new(
                "key",
                "must match [A-Za-z_][A-Za-z0-9_]{0,127}",
            ));
        }
        Ok(SecretKey(raw.to_owned()))
    }

    /// The name as given (case is kept: `API_KEY` and `api_key` are two secrets).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a secret value (1 byte to 64 KiB) and takes ownership of it as a [`SecretValue`], so
/// from here on it is redacted in any output and wiped when dropped.
pub fn parse_value(raw: Option<String>) -> Result<SecretValue, FieldError> {
    let value = SecretValue::from(raw.ok_or_else(|| FieldError::new("value", "is required"))?);
    match value.expose().len() {
        0 => Err(FieldError::new("value", "must not be empty")),
        n if n > MAX_VALUE_BYTES => Err(FieldError::new(
            "value",
            format!("must be at most {MAX_VALUE_BYTES} bytes"),
        )),
        _ => Ok(value),
    }
}

/// One entry of a secrets listing: never a value.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, utoipa::ToSchema)]
pub struct SecretSummary {
    /// The secret's name ([`SecretKey`] rules).
    pub key: String,
    /// Always `true`: a listed secret has a stored (sealed) value; kept in the shape for the
    /// reference platform's clients, which read it.
    pub has_value: bool,
    /// Where the listed entry comes from: the workspace's own, or a global it does not
    /// override.
    pub scope: Scope,
    /// When the secret was first written (UTC).
    pub created_at: DateTime<Utc>,
    /// When its value was last replaced (UTC); equal to `created_at` if never.
    pub updated_at: DateTime<Utc>,
}

impl SecretSummary {
    fn new(meta: rows::SecretMeta, scope: Scope) -> Self {
        SecretSummary {
            key: meta.key,
            has_value: true,
            scope,
            created_at: meta.created_at.0,
            updated_at: meta.updated_at.0,
        }
    }
}

/// Global secrets only, sorted by key.
pub fn global_listing(globals: Vec<rows::SecretMeta>) -> Vec<SecretSummary> {
    merged_listing(Vec::new(), globals)
}

/// A workspace's secrets plus the globals it does not override, sorted by key (byte order, the
/// same on every backend).
pub fn merged_listing(
    workspace: Vec<rows::SecretMeta>,
    globals: Vec<rows::SecretMeta>,
) -> Vec<SecretSummary> {
    let mut merged = BTreeMap::new();
    for meta in globals {
        merged.insert(meta.key.clone(), SecretSummary::new(meta, Scope::Global));
    }
    for meta in workspace {
        merged.insert(meta.key.clone(), SecretSummary::new(meta, Scope::Workspace));
    }
    merged.into_values().collect()
}

/// A secret that could not be decrypted: where it lives and why, never its bytes.
#[derive(Debug)]
pub struct DecryptFailure {
    /// Whether the failing row is the workspace's own or a global one.
    pub scope: Scope,
    /// The secret's name.
    pub key: String,
    /// Why it did not open (unknown key id, failed authentication, …).
    pub error: CryptoError,
}

impl fmt::Display for DecryptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} secret {}: {}",
            self.scope.as_str(),
            self.key,
            self.error
        )
    }
}

/// Why [`workspace_bundle`] returned no secrets.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// No live workspace has this id (never created, or removed).
    #[error("workspace not found")]
    WorkspaceNotFound,
    /// The database could not be read (busy, down, or a query failed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// At least one value failed to decrypt; the whole bundle is refused.
    #[error("{} secret(s) could not be decrypted: {}", .0.len(), list(.0))]
    Undecryptable(Vec<DecryptFailure>),
}

fn list(failures: &[DecryptFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A workspace's decrypted secrets (its own merged over the globals it does not override),
/// sorted by key — for handing to an agent at bootstrap.
///
/// All or nothing: if any value that belongs in the bundle fails to decrypt (wrong master key,
/// corrupted or swapped rows), the error lists every such key and no value is returned. A global
/// that the workspace overrides is not part of the bundle and is not decrypted.
pub async fn workspace_bundle(
    store: &Store,
    keyring: &Keyring,
    workspace_id: Uuid,
) -> Result<Vec<(String, SecretValue)>, BundleError> {
    let (own, globals) = store
        .run(move |c| {
            if workspaces::find_live_row(c, workspace_id)
                .map_err(StoreError::from)?
                .is_none()
            {
                return Err(BundleError::WorkspaceNotFound);
            }
            let own = rows::sealed_workspace(c, workspace_id).map_err(StoreError::from)?;
            let globals = rows::sealed_global(c).map_err(StoreError::from)?;
            Ok((own, globals))
        })
        .await?;

    let workspace = workspace_id.to_string();
    let mut effective = BTreeMap::new();
    for row in globals {
        let binding = SecretBinding::global(row.key.clone());
        effective.insert(row.key.clone(), (binding, row));
    }
    for row in own {
        let binding = SecretBinding::workspace(workspace.clone(), row.key.clone());
        effective.insert(row.key.clone(), (binding, row));
    }

    let mut bundle = Vec::with_capacity(effective.len());
    let mut failures = Vec::new();
    for (key, (binding, row)) in effective {
        match open(keyring, &binding, &row.into_sealed()) {
            Ok(value) => bundle.push((key, value)),
            Err(error) => failures.push(DecryptFailure {
                scope: binding.scope(),
                key,
                error,
            }),
        }
    }
    if !failures.is_empty() {
        // `bundle` is dropped here: every value already decrypted is wiped, none is returned.
        return Err(BundleError::Undecryptable(failures));
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        for ok in ["A", "_", "a1", "OPENAI_API_KEY", &"K".repeat(128)] {
            assert!(SecretKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "é", "A.B", &"K".repeat(129)] {
            let err = SecretKey::parse(bad).unwrap_err();
            assert_eq!(err.field, "key", "{bad}");
        }
    }

    #[test]
    fn values() {
        assert!(parse_value(Some("x".into())).is_ok());
        assert!(parse_value(Some("x".repeat(MAX_VALUE_BYTES))).is_ok());
        for bad in [
            None,
            Some(String::new()),
            Some("x".repeat(MAX_VALUE_BYTES + 1)),
        ] {
            assert_eq!(parse_value(bad).unwrap_err().field, "value");
        }
    }

    #[test]
    fn key_text_is_redacted() {
        assert_eq!(format!("{:?}", KeyText::new("c2VjcmV0")), "[redacted]");
        let err = KeyText::new("c2VjcmV0").master_key(KEY_VAR).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SECRETS_ENCRYPTION_KEY must be base64 of 32 bytes"
        );
    }
}
