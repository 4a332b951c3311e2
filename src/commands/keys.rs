//! API keys: issued by an admin (the API or the CLI), shown once, stored as a hash; revoking
//! one also ends its sessions.

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::people::Role;
use crate::domain::validation::KeyName;
use crate::secrets::hash_token;
use crate::store::keys::{self, ApiKey, NewApiKey};
use crate::store::DbConnection;

/// API keys carry this prefix, so a key is told from a workspace token without a lookup.
pub const KEY_PREFIX: &str = "cnp_";

/// `cnp_` and 32 random bytes in base64url (256 bits of entropy).
pub fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What creating a key answers: the stored key and, this once, the key itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    /// The stored key (never its secret).
    pub stored: ApiKey,
    /// The key: shown only in this answer.
    pub key: String,
}

/// A key to issue, parsed at the boundary.
pub struct CreateKey {
    /// A name for people.
    pub name: KeyName,
    /// What the key may do.
    pub role: Role,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who creates it (`admin`, `cli`, `local`, or a key id).
    pub created_by: String,
}

/// Issues a key: generates it, stores its hash and prefix, returns it this once.
pub fn create(conn: &mut DbConnection, input: CreateKey) -> diesel::QueryResult<IssuedKey> {
    let key = new_key();
    let hash = hash_token(&key);
    let prefix: String = key.chars().take(KEY_PREFIX.len() + 4).collect();
    let stored = keys::insert(
        conn,
        &NewApiKey {
            id: Uuid::new_v4(),
            name: input.name.as_str(),
            role: input.role,
            key_hash: &hash,
            key_prefix: &prefix,
            created_by: &input.created_by,
            created_at: Utc::now(),
            expires_at: input.expires_at,
        },
    )?;
    Ok(IssuedKey { stored, key })
}

/// Revokes a key now, ending its sessions, in one write transaction: the key with
/// `revoked_at`, or 404 `key not found`. (Closing its sockets is the caller's, after the
/// commit.)
pub fn revoke(conn: &mut DbConnection, id: Uuid) -> crate::error::AppResult<ApiKey> {
    let (key, _) = crate::store::with_write_transaction(conn, |tx| {
        Ok::<_, crate::error::AppError>(keys::revoke(tx.conn(), id, Utc::now())?)
    })?;
    key.ok_or_else(|| crate::error::AppError::NotFound("key not found".into()))
}

/// `canopy keys …`: manage keys from the command line (whoever can run the binary against the
/// database is trusted: this is how the first admin key of a fresh database is made).
pub mod cli {
    use super::*;
    use crate::config::Config;
    use crate::events::control::{ControlBus, ControlMessage};
    use crate::store::Store;

    fn store(config: &Config) -> anyhow::Result<Store> {
        let store = Store::open(config.database_url.clone(), 1);
        store.migrate_blocking()?;
        Ok(store)
    }

    /// Issues a key and prints it (the only time it is shown) with its id.
    pub fn create(
        config: &Config,
        name: &str,
        role: &str,
        expires_at: Option<&str>,
    ) -> anyhow::Result<()> {
        let name = KeyName::parse(name).map_err(|e| anyhow::anyhow!("--name: {}", e.reason))?;
        let role = Role::parse(role)
            .ok_or_else(|| anyhow::anyhow!("--role: must be viewer, editor or admin"))?;
        let expires_at = expires_at
            .map(|raw| {
                DateTime::parse_from_rfc3339(raw)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| anyhow::anyhow!("--expires-at: must be an RFC 3339 time"))
            })
            .transpose()?;
        // The API's rule too (`POST /keys`): a key born expired is a mistake, not a key.
        if expires_at.is_some_and(|t| t <= Utc::now()) {
            anyhow::bail!("--expires-at: must be in the future");
        }
        let store = store(config)?;
        let mut conn = store.checkout()?;
        let issued = super::create(
            &mut conn,
            CreateKey {
                name,
                role,
                expires_at,
                created_by: "cli".into(),
            },
        )?;
        println!("{}", issued.key);
        eprintln!(
            "key {} ({}, {}): shown once, keep it now",
            issued.stored.id,
            issued.stored.name,
            issued.stored.role.as_str()
        );
        Ok(())
    }

    /// Prints every key, one line each: id, role, name, state.
    pub fn list(config: &Config) -> anyhow::Result<()> {
        let store = store(config)?;
        let mut conn = store.checkout()?;
        let now = Utc::now();
        for key in keys::list(&mut conn)? {
            let state = match (key.revoked_at, key.expires_at) {
                (Some(at), _) => format!("revoked {}", at.to_rfc3339()),
                (None, Some(at)) if at <= now => format!("expired {}", at.to_rfc3339()),
                (None, Some(at)) => format!("expires {}", at.to_rfc3339()),
                (None, None) => "live".into(),
            };
            println!(
                "{}\t{}\t{}\t{}\t{}",
                key.id,
                key.role.as_str(),
                key.prefix,
                key.name,
                state
            );
        }
        Ok(())
    }

    /// Revokes a key (and its sessions). In cluster mode every instance is told to close its
    /// sockets; an embedded server refuses its next request, and its open sockets close when
    /// revoked through the API (`DELETE /keys/:id`).
    pub fn revoke(config: &Config, id: &str) -> anyhow::Result<()> {
        let id: Uuid = id
            .parse()
            .map_err(|_| anyhow::anyhow!("not a key id: {id}"))?;
        let store = store(config)?;
        let mut conn = store.checkout()?;
        let (key, _) = crate::store::with_write_transaction(&mut conn, |tx| {
            keys::revoke(tx.conn(), id, Utc::now()).map_err(crate::store::StoreError::from)
        })?;
        let key = key.ok_or_else(|| anyhow::anyhow!("no key {id}"))?;
        if let Some(url) = &config.redis_url {
            let prefix = config.redis_key_prefix.clone();
            let url = url.clone();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async move {
                    let bus = ControlBus::connect(&url, &prefix).await?;
                    bus.publish(ControlMessage::KeyRevoked { key_id: id }).await;
                    bus.quit().await;
                    Ok::<_, anyhow::Error>(())
                })?;
        }
        eprintln!("key {} ({}) revoked", key.id, key.name);
        Ok(())
    }
}
