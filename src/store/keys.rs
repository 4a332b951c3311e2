//! `api_keys` and `sessions`: people's credentials. Keys and session ids are stored only as hex
//! SHA-256 hashes; a key is shown once, when it is created.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::schema::{api_keys, sessions};
use super::sql_types::{DbTime, DbUuid};
use super::DbConnection;
use crate::domain::people::Role;

/// A key as `GET /keys` lists it (never the key itself).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = String, example = "editor")]
    pub role: Role,
    /// The key's first characters (`cnp_` and 4 more), to tell keys apart.
    pub prefix: String,
    /// Who created it: `admin` (the bootstrap token), `cli`, `local` (open mode) or a key id.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute per key and instance.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
struct ApiKeyRow {
    id: DbUuid,
    name: String,
    role: String,
    key_prefix: String,
    created_by: String,
    created_at: DbTime,
    expires_at: Option<DbTime>,
    last_used_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: r.id.0,
            name: r.name,
            // The CHECK constraint holds the column to the three names.
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            prefix: r.key_prefix,
            created_by: r.created_by,
            created_at: r.created_at.0,
            expires_at: r.expires_at.map(|t| t.0),
            last_used_at: r.last_used_at.map(|t| t.0),
            revoked_at: r.revoked_at.map(|t| t.0),
        }
    }
}

impl ApiKey {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A key about to be stored.
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub role: Role,
    pub key_hash: &'a str,
    pub key_prefix: &'a str,
    pub created_by: &'a str,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a key (its hash); returns it as `GET /keys` shows it.
pub fn insert(conn: &mut DbConnection, key: &NewApiKey<'_>) -> QueryResult<ApiKey> {
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(DbUuid(key.id)),
            api_keys::name.eq(key.name),
            api_keys::role.eq(key.role.as_str()),
            api_keys::key_hash.eq(key.key_hash),
            api_keys::key_prefix.eq(key.key_prefix),
            api_keys::created_by.eq(key.created_by),
            api_keys::created_at.eq(DbTime(key.created_at)),
            api_keys::expires_at.eq(key.expires_at.map(DbTime)),
        ))
        .execute(conn)?;
    find(conn, key.id)?.ok_or(diesel::result::Error::NotFound)
}

/// A key by id, live or not.
pub fn find(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::id.eq(DbUuid(id)))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?
        .map(ApiKey::from))
}

/// The key whose hash this is, live or not (the caller decides what a dead key means).
pub fn by_hash(conn: &mut DbConnection, key_hash: &str) -> QueryResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?
        .map(ApiKey::from))
}

/// Every key, newest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ApiKey>> {
    Ok(api_keys::table
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .select(ApiKeyRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ApiKey::from)
        .collect())
}

/// Revokes a key and ends its sessions. Returns the key as it is now, or `None` if there is no
/// such key; revoking a revoked key changes nothing.
pub fn revoke(
    conn: &mut DbConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<ApiKey>> {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(DbUuid(id)))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Some(DbTime(now))))
    .execute(conn)?;
    diesel::update(sessions::table.filter(sessions::key_id.eq(DbUuid(id))))
        .set(sessions::revoked.eq(true))
        .execute(conn)?;
    find(conn, id)
}

/// Records a key's use (`last_used_at`); callers throttle it.
pub fn touch(conn: &mut DbConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(api_keys::table.filter(api_keys::id.eq(DbUuid(id))))
        .set(api_keys::last_used_at.eq(Some(DbTime(now))))
        .execute(conn)
        .map(|_| ())
}

/// Stores a browser session (the hash of its id) made from `key_id`.
pub fn insert_session(
    conn: &mut DbConnection,
    id_hash: &str,
    key_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id_hash.eq(id_hash),
            sessions::key_id.eq(DbUuid(key_id)),
            sessions::created_at.eq(DbTime(now)),
            sessions::expires_at.eq(DbTime(expires_at)),
            sessions::revoked.eq(false),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The key behind a session that is neither revoked nor expired at `now`.
pub fn session_key(
    conn: &mut DbConnection,
    id_hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<ApiKey>> {
    let key_id: Option<DbUuid> = sessions::table
        .filter(sessions::id_hash.eq(id_hash))
        .filter(sessions::revoked.eq(false))
        .filter(sessions::expires_at.gt(DbTime(now)))
        .select(sessions::key_id)
        .first(conn)
        .optional()?;
    match key_id {
        Some(id) => find(conn, id.0),
        None => Ok(None),
    }
}

/// Signs a session out; returns how many rows changed (0 for an unknown session).
pub fn end_session(conn: &mut DbConnection, id_hash: &str) -> QueryResult<usize> {
    diesel::update(sessions::table.filter(sessions::id_hash.eq(id_hash)))
        .set(sessions::revoked.eq(true))
        .execute(conn)
}

/// Which of `ids` are revoked, expired at `now`, or gone.
pub fn dead_among(
    conn: &mut DbConnection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let db_ids: Vec<DbUuid> = ids.iter().copied().map(DbUuid).collect();
    let live: Vec<DbUuid> = api_keys::table
        .filter(api_keys::id.eq_any(db_ids))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(DbTime(now))),
        )
        .select(api_keys::id)
        .load(conn)?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !live.iter().any(|l| l.0 == *id))
        .collect())
}

/// Which of the session id hashes `hashes` are signed out, expired at `now`, or unknown.
pub fn dead_sessions_among(
    conn: &mut DbConnection,
    hashes: &[String],
    now: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let live: Vec<String> = sessions::table
        .filter(sessions::id_hash.eq_any(hashes))
        .filter(sessions::revoked.eq(false))
        .filter(sessions::expires_at.gt(DbTime(now)))
        .select(sessions::id_hash)
        .load(conn)?;
    Ok(hashes
        .iter()
        .filter(|h| !live.contains(h))
        .cloned()
        .collect())
}
