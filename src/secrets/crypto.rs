//! Envelope encryption for workspace and global secrets.
//!
//! Every value gets its own random 256-bit data key; the value is encrypted under that key with
//! AES-256-GCM, and the data key is itself encrypted ("wrapped") under the master key from
//! `SECRETS_ENCRYPTION_KEY`. Rotating the master key therefore only re-wraps 60-byte data keys
//! ([`rewrap`]) and never touches or decrypts the values.
//!
//! Both layers carry associated data derived from the row's [`SecretBinding`] (scope, workspace,
//! key name), so a ciphertext or wrapped key copied into another row fails authentication instead
//! of decrypting as someone else's secret. The wrap layer also binds the master key id, so a row's
//! `key_id` column cannot be edited to point at a different master.
//!
//! Nothing in this module prints key material or plaintext: [`MasterKey`] and [`SecretValue`]
//! redact themselves in `Debug`, and [`CryptoError`] messages carry only ids and names.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// AES-256 key length, for both master and data keys.
const KEY_LEN: usize = 32;
/// AES-GCM's standard 96-bit nonce; random nonces are safe here because each data key encrypts
/// exactly one message, and master-key wraps stay far below the 2^32 random-nonce limit.
const NONCE_LEN: usize = 12;
/// AES-GCM authentication tag length.
const TAG_LEN: usize = 16;
/// A wrapped data key is always `nonce || encrypted key || tag`.
const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Domain-separation prefixes: the key id hash and the two AEAD layers each get their own, so a
/// byte string built for one purpose can never be valid for another.
const KEY_ID_DOMAIN: &[u8] = b"canopy/secrets/master-key-id/v1";
const VALUE_AD_DOMAIN: &[u8] = b"canopy/secrets/value/v1";
const WRAP_AD_DOMAIN: &[u8] = b"canopy/secrets/wrap/v1";

/// Errors from sealing, opening and re-wrapping secrets.
///
/// Messages name keys by id and variables by name only; they never include key bytes, the
/// offending environment value, or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The configured master key is not base64 of exactly 32 bytes.
    #[error("{name} must be base64 of 32 bytes")]
    InvalidMasterKey {
        /// The environment variable holding the bad key.
        name: String,
    },
    /// The row was wrapped by a master key that is in neither slot of the keyring.
    #[error(
        "secret was encrypted with master key id {key_id}, which is not configured \
         (set SECRETS_ENCRYPTION_KEY_PREVIOUS to finish a rotation)"
    )]
    UnknownKeyId {
        /// The 16-hex-digit id stored with the row ([`MasterKey::key_id`]).
        key_id: String,
    },
    /// Authentication failed: wrong master key, corrupted bytes, or a row moved to another binding.
    #[error(
        "secret could not be decrypted (wrong key, corrupted data, or value moved between rows)"
    )]
    Decrypt,
    /// The secret is not valid UTF-8 (only from [`SecretValue::expose_str`]).
    #[error("secret value is not valid UTF-8")]
    NotUtf8,
}

/// The 256-bit key that wraps every data key.
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
    id: String,
}

impl MasterKey {
    /// Builds a master key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(bytes)
            .finalize();
        // 64 bits of a hash identify a handful of configured keys without revealing anything
        // useful about them, and stay short enough to store on every row.
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self { bytes, id }
    }

    /// Parses base64 of 32 bytes, in the standard or URL-safe alphabet, padded or not.
    ///
    /// Surrounding whitespace is ignored because env files and secret stores often add a newline.
    pub fn from_base64(value: &str) -> Result<Self, CryptoError> {
        Self::parse(value, "master key")
    }

    /// Reads a master key from the environment variable `var`.
    ///
    /// Unset or blank means "no key" (`Ok(None)`), so the caller decides whether secrets are
    /// disabled; a present but malformed value is an error naming the variable, not its value.
    pub fn from_env(var: &str) -> Result<Option<Self>, CryptoError> {
        Self::from_env_value(var, std::env::var(var))
    }

    /// The decision half of [`MasterKey::from_env`], separate so tests need not mutate the
    /// process environment.
    fn from_env_value(
        var: &str,
        value: Result<String, std::env::VarError>,
    ) -> Result<Option<Self>, CryptoError> {
        match value {
            Ok(value) if !value.trim().is_empty() => Self::parse(&value, var).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(CryptoError::InvalidMasterKey {
                name: var.to_owned(),
            }),
        }
    }

    /// Stable short id of this key (16 hex chars), stored with each row it wraps.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    fn parse(value: &str, name: &str) -> Result<Self, CryptoError> {
        let value = value.trim();
        // Decode into a stack buffer (larger than needed so overlong input is detected as a length
        // mismatch) rather than a Vec, so no unwiped heap copy of the key is left behind.
        let mut buf = [0u8; 48];
        let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode_slice(value, &mut buf).ok());
        let result = match decoded {
            Some(KEY_LEN) => {
                let mut bytes = [0u8; KEY_LEN];
                bytes.copy_from_slice(&buf[..KEY_LEN]);
                Ok(Self::from_bytes(bytes))
            }
            _ => Err(CryptoError::InvalidMasterKey {
                name: name.to_owned(),
            }),
        };
        buf.zeroize();
        result
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.bytes))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// The current master key plus, during a rotation, the one it replaces.
#[derive(Debug)]
pub struct Keyring {
    /// Wraps all new secrets.
    pub current: MasterKey,
    /// Still accepted for reading rows not yet re-wrapped.
    pub previous: Option<MasterKey>,
}

impl Keyring {
    /// `current` wraps new secrets; `previous`, during a rotation, still opens old rows.
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The key that wrapped a row with this `key_id`, if it is configured.
    pub fn find(&self, key_id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|key| key.key_id() == key_id)
    }
}

/// Whether a secret belongs to one workspace or to the whole installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Belongs to one workspace and overrides a global secret of the same name for it.
    Workspace,
    /// Installation-wide: every workspace gets it unless it has its own of the same name.
    Global,
}

impl Scope {
    /// `"workspace"` or `"global"`: the JSON spelling, also bound into the ciphertext's
    /// associated data.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Workspace => "workspace",
            Scope::Global => "global",
        }
    }
}

/// Where a secret lives; used as associated data so its ciphertext only opens in that place.
///
/// Built through [`SecretBinding::workspace`] or [`SecretBinding::global`] so the scope and the
/// presence of a workspace id always agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretBinding {
    scope: Scope,
    workspace_id: Option<String>,
    key: String,
}

impl SecretBinding {
    /// A workspace secret. Pass the workspace id in one canonical form (e.g. a hyphenated,
    /// lowercase uuid) every time: a different spelling is a different binding and won't decrypt.
    pub fn workspace(workspace_id: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            scope: Scope::Workspace,
            workspace_id: Some(workspace_id.into()),
            key: key.into(),
        }
    }

    /// A global (installation-wide) secret.
    pub fn global(key: impl Into<String>) -> Self {
        Self {
            scope: Scope::Global,
            workspace_id: None,
            key: key.into(),
        }
    }

    /// Workspace or global.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The workspace id as given to [`SecretBinding::workspace`]; `None` for a global secret.
    pub fn workspace_id(&self) -> Option<&str> {
        self.workspace_id.as_deref()
    }

    /// The secret's name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Encodes the binding unambiguously: every field is length-prefixed, and the optional
    /// workspace id has an explicit presence byte, so no two bindings share an encoding.
    fn associated_data(&self, domain: &[u8], key_id: Option<&str>) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut out = Vec::new();
        field(&mut out, domain);
        field(&mut out, self.scope.as_str().as_bytes());
        match &self.workspace_id {
            Some(id) => {
                out.push(1);
                field(&mut out, id.as_bytes());
            }
            None => out.push(0),
        }
        field(&mut out, self.key.as_bytes());
        if let Some(key_id) = key_id {
            field(&mut out, key_id.as_bytes());
        }
        out
    }
}

/// What gets stored in a secrets row. None of it is sensitive without the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// `nonce || AES-256-GCM(data key, value)`.
    pub ciphertext: Vec<u8>,
    /// `nonce || AES-256-GCM(master key, data key)`.
    pub wrapped_key: Vec<u8>,
    /// [`MasterKey::key_id`] of the master that wrapped the data key.
    pub key_id: String,
}

/// A decrypted secret. Its `Debug` and `Display` print `[redacted]`, so it can't leak through
/// logs or error chains by accident; reading it takes an explicit [`SecretValue::expose`].
#[derive(Clone)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// Takes ownership of plaintext bytes; they are wiped when the value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The plaintext bytes: the one deliberate way to read a value. Never log the result.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext as text. Errors: [`CryptoError::NotUtf8`] when the bytes are not UTF-8
    /// (the error does not say where, as that would reveal something of the value).
    pub fn expose_str(&self) -> Result<&str, CryptoError> {
        // The Utf8Error is dropped: its position detail says something about the value.
        std::str::from_utf8(&self.0).map_err(|_| CryptoError::NotUtf8)
    }
}

impl From<Vec<u8>> for SecretValue {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self(value.into_bytes())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Encrypts `plaintext` for the row described by `binding` under a fresh data key.
///
/// # Panics
///
/// Only if `plaintext` exceeds AES-GCM's per-message limit (about 64 GiB); callers cap secret
/// values far below that.
pub fn seal(master: &MasterKey, binding: &SecretBinding, plaintext: &[u8]) -> SealedSecret {
    let mut data_key = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut data_key);
    let sealed = seal_with_data_key(master, binding, &data_key, plaintext);
    data_key.zeroize();
    sealed
}

/// [`seal`] with a caller-chosen data key, so tests can check the key never reaches storage.
fn seal_with_data_key(
    master: &MasterKey,
    binding: &SecretBinding,
    data_key: &[u8; KEY_LEN],
    plaintext: &[u8],
) -> SealedSecret {
    let value_cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*data_key));
    let value_ad = binding.associated_data(VALUE_AD_DOMAIN, None);
    let ciphertext = encrypt(&value_cipher, &value_ad, plaintext)
        .expect("secret value exceeds the AES-GCM message limit");
    SealedSecret {
        ciphertext,
        wrapped_key: wrap(master, binding, data_key),
        key_id: master.key_id().to_owned(),
    }
}

/// Decrypts a stored secret, using whichever keyring entry wrapped it.
pub fn open(
    keyring: &Keyring,
    binding: &SecretBinding,
    sealed: &SealedSecret,
) -> Result<SecretValue, CryptoError> {
    let master = find_master(keyring, &sealed.key_id)?;
    let mut data_key = unwrap(master, binding, &sealed.wrapped_key)?;
    let value_cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(data_key));
    data_key.zeroize();
    let value_ad = binding.associated_data(VALUE_AD_DOMAIN, None);
    decrypt(&value_cipher, &value_ad, &sealed.ciphertext).map(SecretValue)
}

/// Re-wraps a row's data key under `new_master`, leaving the value ciphertext untouched.
///
/// The value is never decrypted. A row already wrapped by `new_master` is returned as is, so a
/// rotation that was interrupted can simply be run again. During rotation pass a keyring holding
/// the old key (typically `rewrap(&keyring, &keyring.current, ..)` with the old key as
/// `previous`).
pub fn rewrap(
    old: &Keyring,
    new_master: &MasterKey,
    binding: &SecretBinding,
    sealed: &SealedSecret,
) -> Result<SealedSecret, CryptoError> {
    if sealed.key_id == new_master.key_id() {
        return Ok(sealed.clone());
    }
    let old_master = find_master(old, &sealed.key_id)?;
    let mut data_key = unwrap(old_master, binding, &sealed.wrapped_key)?;
    let wrapped_key = wrap(new_master, binding, &data_key);
    data_key.zeroize();
    Ok(SealedSecret {
        ciphertext: sealed.ciphertext.clone(),
        wrapped_key,
        key_id: new_master.key_id().to_owned(),
    })
}

fn find_master<'a>(keyring: &'a Keyring, key_id: &str) -> Result<&'a MasterKey, CryptoError> {
    keyring
        .find(key_id)
        .ok_or_else(|| CryptoError::UnknownKeyId {
            key_id: key_id.to_owned(),
        })
}

/// Wraps a data key; the associated data includes the master's id, so the `key_id` column and
/// the wrapped key must stay together with the row they were made for.
fn wrap(master: &MasterKey, binding: &SecretBinding, data_key: &[u8; KEY_LEN]) -> Vec<u8> {
    let ad = binding.associated_data(WRAP_AD_DOMAIN, Some(master.key_id()));
    encrypt(&master.cipher(), &ad, data_key).expect("a 32-byte key is within AES-GCM limits")
}

fn unwrap(
    master: &MasterKey,
    binding: &SecretBinding,
    wrapped: &[u8],
) -> Result<[u8; KEY_LEN], CryptoError> {
    // A wrapped key has exactly one valid length; rejecting others early keeps errors uniform.
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(CryptoError::Decrypt);
    }
    let ad = binding.associated_data(WRAP_AD_DOMAIN, Some(master.key_id()));
    let mut plain = decrypt(&master.cipher(), &ad, wrapped)?;
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&plain);
    plain.zeroize();
    Ok(key)
}

/// Returns `nonce || ciphertext-with-tag` under a fresh random nonce.
fn encrypt(cipher: &Aes256Gcm, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher.encrypt(
        &Nonce::from(nonce),
        Payload {
            msg: plaintext,
            aad: ad,
        },
    )?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Inverse of [`encrypt`]; any malformed or unauthentic input is [`CryptoError::Decrypt`].
fn decrypt(cipher: &Aes256Gcm, ad: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, body) = data.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: body, aad: ad })
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; KEY_LEN])
    }

    fn ring(current: u8) -> Keyring {
        Keyring::new(key(current), None)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn ws(key: &str) -> SecretBinding {
        SecretBinding::workspace("7f1c2a9e-0000-4000-8000-000000000001", key)
    }

    #[test]
    fn round_trip() {
        let keyring = ring(1);
        let binding = ws("API_TOKEN");
        let sealed = seal(&keyring.current, &binding, b"hunter2");
        assert_eq!(sealed.key_id, keyring.current.key_id());
        let value = open(&keyring, &binding, &sealed).unwrap();
        assert_eq!(value.expose(), b"hunter2");
        assert_eq!(value.expose_str().unwrap(), "hunter2");
    }

    #[test]
    fn round_trip_global_and_binary() {
        let keyring = ring(1);
        let binding = SecretBinding::global("BLOB");
        let bytes: Vec<u8> = (0..=255).collect();
        let sealed = seal(&keyring.current, &binding, &bytes);
        let value = open(&keyring, &binding, &sealed).unwrap();
        assert_eq!(value.expose(), bytes.as_slice());
        assert!(matches!(value.expose_str(), Err(CryptoError::NotUtf8)));
    }

    #[test]
    fn fresh_nonce_and_key_per_seal() {
        let master = key(1);
        let a = seal(&master, &ws("K"), b"same value");
        let b = seal(&master, &ws("K"), b"same value");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_ne!(a.wrapped_key, b.wrapped_key);
    }

    #[test]
    fn stored_bytes_hold_neither_plaintext_nor_data_key() {
        let master = key(1);
        let data_key = [0xA5u8; KEY_LEN];
        let plaintext = b"correct horse battery staple";
        let sealed = seal_with_data_key(&master, &ws("K"), &data_key, plaintext);
        for stored in [&sealed.ciphertext, &sealed.wrapped_key] {
            assert!(!contains(stored, plaintext));
            assert!(!contains(stored, &data_key));
        }
        assert_eq!(sealed.wrapped_key.len(), WRAPPED_KEY_LEN);
        let value = open(&Keyring::new(master, None), &ws("K"), &sealed).unwrap();
        assert_eq!(value.expose(), plaintext);
    }

    #[test]
    fn swapped_rows_fail_to_decrypt() {
        let keyring = ring(1);
        let (a, b) = (ws("A"), ws("B"));
        let sealed_a = seal(&keyring.current, &a, b"value a");
        let sealed_b = seal(&keyring.current, &b, b"value b");

        // Whole row moved to another binding.
        assert!(matches!(
            open(&keyring, &b, &sealed_a),
            Err(CryptoError::Decrypt)
        ));
        // Only the value ciphertexts swapped.
        let mixed = SealedSecret {
            ciphertext: sealed_b.ciphertext.clone(),
            ..sealed_a.clone()
        };
        assert!(matches!(
            open(&keyring, &a, &mixed),
            Err(CryptoError::Decrypt)
        ));
        // Only the wrapped keys swapped.
        let mixed = SealedSecret {
            wrapped_key: sealed_b.wrapped_key.clone(),
            ..sealed_a.clone()
        };
        assert!(matches!(
            open(&keyring, &a, &mixed),
            Err(CryptoError::Decrypt)
        ));
        // Same key name in a different workspace, and workspace vs global.
        let other_ws = SecretBinding::workspace("other", "A");
        assert!(open(&keyring, &other_ws, &sealed_a).is_err());
        let global = SecretBinding::global("A");
        let sealed_global = seal(&keyring.current, &global, b"g");
        assert!(open(&keyring, &a, &sealed_global).is_err());
    }

    #[test]
    fn binding_encoding_is_unambiguous() {
        let ad = |b: SecretBinding| b.associated_data(VALUE_AD_DOMAIN, None);
        assert_ne!(
            ad(SecretBinding::workspace("ab", "c")),
            ad(SecretBinding::workspace("a", "bc"))
        );
        assert_ne!(
            ad(SecretBinding::workspace("", "k")),
            ad(SecretBinding::global("k"))
        );
        let keyring = ring(1);
        let sealed = seal(&keyring.current, &SecretBinding::workspace("ab", "c"), b"v");
        assert!(matches!(
            open(&keyring, &SecretBinding::workspace("a", "bc"), &sealed),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn wrong_master_key_is_reported() {
        let sealed = seal(&key(1), &ws("K"), b"v");
        match open(&ring(2), &ws("K"), &sealed) {
            Err(CryptoError::UnknownKeyId { key_id }) => assert_eq!(key_id, sealed.key_id),
            other => panic!("expected UnknownKeyId, got {other:?}"),
        }
        // Even if the key_id column is forged to match, authentication still fails.
        let forged = SealedSecret {
            key_id: key(2).key_id().to_owned(),
            ..sealed
        };
        assert!(matches!(
            open(&ring(2), &ws("K"), &forged),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn corrupt_or_short_input_is_an_error_not_a_panic() {
        let keyring = ring(1);
        let binding = ws("K");
        let sealed = seal(&keyring.current, &binding, b"value");
        let variants = [
            (Vec::new(), sealed.wrapped_key.clone()),
            (sealed.ciphertext[..5].to_vec(), sealed.wrapped_key.clone()),
            (sealed.ciphertext.clone(), Vec::new()),
            (sealed.ciphertext.clone(), sealed.wrapped_key[..20].to_vec()),
            (
                sealed.ciphertext.clone(),
                [&sealed.wrapped_key[..], &[0]].concat(),
            ),
        ];
        for (ciphertext, wrapped_key) in variants {
            let broken = SealedSecret {
                ciphertext,
                wrapped_key,
                key_id: sealed.key_id.clone(),
            };
            assert!(matches!(
                open(&keyring, &binding, &broken),
                Err(CryptoError::Decrypt)
            ));
        }
        // A single flipped bit anywhere in either stored blob is detected.
        for i in 0..sealed.ciphertext.len() {
            let mut broken = sealed.clone();
            broken.ciphertext[i] ^= 1;
            assert!(open(&keyring, &binding, &broken).is_err());
        }
        for i in 0..sealed.wrapped_key.len() {
            let mut broken = sealed.clone();
            broken.wrapped_key[i] ^= 1;
            assert!(open(&keyring, &binding, &broken).is_err());
        }
    }

    #[test]
    fn rewrap_moves_row_to_new_key() {
        let binding = ws("K");
        let old_only = ring(1);
        let sealed = seal(&old_only.current, &binding, b"rotate me");

        let rotation = Keyring::new(key(2), Some(key(1)));
        let rewrapped = rewrap(&rotation, &rotation.current, &binding, &sealed).unwrap();
        assert_eq!(rewrapped.key_id, key(2).key_id());
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert_ne!(rewrapped.wrapped_key, sealed.wrapped_key);

        let new_only = ring(2);
        let value = open(&new_only, &binding, &rewrapped).unwrap();
        assert_eq!(value.expose(), b"rotate me");
        // The old key alone no longer opens the rewrapped row; the rotation keyring opens both.
        assert!(open(&old_only, &binding, &rewrapped).is_err());
        assert!(open(&rotation, &binding, &rewrapped).is_ok());
        assert!(open(&rotation, &binding, &sealed).is_ok());
    }

    #[test]
    fn rewrap_is_idempotent() {
        let binding = ws("K");
        let sealed = seal(&key(1), &binding, b"v");
        let rotation = Keyring::new(key(2), Some(key(1)));
        let once = rewrap(&rotation, &rotation.current, &binding, &sealed).unwrap();
        let twice = rewrap(&rotation, &rotation.current, &binding, &once).unwrap();
        assert_eq!(once, twice);
        // Rerunning after the old key has been removed still succeeds for finished rows.
        let thrice = rewrap(&ring(2), &key(2), &binding, &once).unwrap();
        assert_eq!(once, thrice);
    }

    #[test]
    fn rewrap_checks_the_binding() {
        let sealed = seal(&key(1), &ws("A"), b"v");
        let rotation = Keyring::new(key(2), Some(key(1)));
        assert!(matches!(
            rewrap(&rotation, &rotation.current, &ws("B"), &sealed),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            rewrap(&ring(3), &key(2), &ws("A"), &sealed),
            Err(CryptoError::UnknownKeyId { .. })
        ));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let value = SecretValue::from("hunter2".to_owned());
        assert_eq!(format!("{value:?}"), "[redacted]");
        assert_eq!(format!("{value}"), "[redacted]");

        let id = key(0xAB).key_id().to_owned();
        let shown = format!("{:?}", Keyring::new(key(0xAB), None));
        assert_eq!(
            shown,
            format!("Keyring {{ current: MasterKey {{ id: \"{id}\" }}, previous: None }}")
        );
    }

    #[test]
    fn key_id_is_stable_short_and_distinct() {
        let a = key(1);
        assert_eq!(a.key_id(), key(1).key_id());
        assert_eq!(a.key_id().len(), 16);
        assert!(a.key_id().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.key_id(), key(2).key_id());
        let keyring = Keyring::new(key(2), Some(key(1)));
        assert_eq!(keyring.find(a.key_id()).unwrap().key_id(), a.key_id());
        assert!(keyring.find("0000000000000000").is_none());
    }

    #[test]
    fn master_key_accepts_all_base64_flavours() {
        // Bytes chosen so the encodings use '+' / '/' (standard) vs '-' / '_' (URL-safe).
        let bytes: [u8; KEY_LEN] = std::array::from_fn(|i| 0xF8 | (i as u8 & 7));
        let expected = MasterKey::from_bytes(bytes);
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let encoded = format!("  {}\n", engine.encode(bytes));
            let parsed = MasterKey::from_base64(&encoded).unwrap();
            assert_eq!(parsed.key_id(), expected.key_id());
        }
    }

    #[test]
    fn master_key_rejects_bad_input_without_echoing_it() {
        let cases = [
            String::new(),
            "not base64!!".to_owned(),
            STANDARD.encode([7u8; 31]),
            STANDARD.encode([7u8; 33]),
            STANDARD.encode([7u8; 64]),
            format!("{}===", STANDARD_NO_PAD.encode([7u8; KEY_LEN])),
        ];
        for case in cases {
            let err = MasterKey::from_base64(&case).unwrap_err();
            let message = err.to_string();
            assert_eq!(message, "master key must be base64 of 32 bytes");
            assert!(case.is_empty() || !message.contains(&case));
        }
    }

    #[test]
    fn master_key_from_env() {
        use std::env::VarError;
        let var = "SECRETS_ENCRYPTION_KEY";
        let good = Ok(STANDARD.encode([9u8; KEY_LEN]));
        let parsed = MasterKey::from_env_value(var, good).unwrap().unwrap();
        assert_eq!(parsed.key_id(), key(9).key_id());

        let err = MasterKey::from_env_value(var, Ok("c2VjcmV0".into())).unwrap_err();
        assert_eq!(err.to_string(), format!("{var} must be base64 of 32 bytes"));
        assert!(!err.to_string().contains("c2VjcmV0"));

        assert!(MasterKey::from_env_value(var, Err(VarError::NotPresent))
            .unwrap()
            .is_none());
        assert!(MasterKey::from_env_value(var, Ok("  ".into()))
            .unwrap()
            .is_none());
        // The real lookup path, on a variable nobody sets.
        assert!(MasterKey::from_env("CANOPY_CRYPTO_TEST_UNSET_VARIABLE")
            .unwrap()
            .is_none());
    }

    #[test]
    fn error_messages_carry_no_secrets() {
        let sealed = seal(&key(1), &ws("K"), b"topsecret");
        let err = open(&ring(2), &ws("K"), &sealed).unwrap_err();
        assert!(err.to_string().contains(&sealed.key_id));
        let err = open(&ring(1), &ws("J"), &sealed).unwrap_err().to_string();
        assert!(!err.contains("topsecret"));
    }
}
