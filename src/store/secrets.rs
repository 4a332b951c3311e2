//! `workspace_secrets` and `global_secrets`: sealed values only (see `crate::secrets::crypto`).
//! Nothing here sees plaintext.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use super::schema::{global_secrets as globals, workspace_secrets as ws};
use super::sql_types::{DbTime, DbUuid};
use super::DbConnection;
use crate::secrets::crypto::SealedSecret;

/// A secret's name and timestamps: what the listing shows.
#[derive(Queryable, Clone, Debug)]
pub struct SecretMeta {
    pub key: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

/// A stored secret as sealed bytes.
#[derive(Queryable, Clone)]
pub struct SealedRow {
    pub id: DbUuid,
    /// Set for workspace secrets, `None` for globals.
    pub workspace_id: Option<DbUuid>,
    pub key: String,
    pub encrypted_value: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub key_id: String,
}

impl SealedRow {
    pub fn into_sealed(self) -> SealedSecret {
        SealedSecret {
            ciphertext: self.encrypted_value,
            wrapped_key: self.wrapped_key,
            key_id: self.key_id,
        }
    }
}

/// Ciphertexts are not secret, but there is nothing to gain from printing them either.
impl std::fmt::Debug for SealedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRow")
            .field("id", &self.id.0)
            .field("workspace_id", &self.workspace_id.map(|w| w.0))
            .field("key", &self.key)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

pub fn list_workspace(conn: &mut DbConnection, workspace_id: Uuid) -> QueryResult<Vec<SecretMeta>> {
    ws::table
        .filter(ws::workspace_id.eq(DbUuid(workspace_id)))
        .order(ws::key.asc())
        .select((ws::key, ws::created_at, ws::updated_at))
        .load(conn)
}

pub fn list_global(conn: &mut DbConnection) -> QueryResult<Vec<SecretMeta>> {
    globals::table
        .order(globals::key.asc())
        .select((globals::key, globals::created_at, globals::updated_at))
        .load(conn)
}

pub fn sealed_workspace(
    conn: &mut DbConnection,
    workspace_id: Uuid,
) -> QueryResult<Vec<SealedRow>> {
    ws::table
        .filter(ws::workspace_id.eq(DbUuid(workspace_id)))
        .order(ws::key.asc())
        .select((
            ws::id,
            ws::workspace_id.nullable(),
            ws::key,
            ws::encrypted_value,
            ws::wrapped_key,
            ws::key_id,
        ))
        .load(conn)
}

pub fn sealed_global(conn: &mut DbConnection) -> QueryResult<Vec<SealedRow>> {
    globals::table
        .order(globals::key.asc())
        .select((
            globals::id,
            None::<DbUuid>.into_sql::<diesel::sql_types::Nullable<super::sql_types::SqlUuid>>(),
            globals::key,
            globals::encrypted_value,
            globals::wrapped_key,
            globals::key_id,
        ))
        .load(conn)
}

/// Inserts or replaces a workspace secret. Call inside a write transaction: the insert runs in a
/// savepoint, so when a concurrent request inserted the same key first (PostgreSQL answers a
/// unique violation; SQLite's `BEGIN IMMEDIATE` never gets here) this one replaces it instead.
pub fn upsert_workspace(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    key: &str,
    sealed: &SealedSecret,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let update = |conn: &mut DbConnection| {
        diesel::update(
            ws::table
                .filter(ws::workspace_id.eq(DbUuid(workspace_id)))
                .filter(ws::key.eq(key)),
        )
        .set((
            ws::encrypted_value.eq(&sealed.ciphertext),
            ws::wrapped_key.eq(&sealed.wrapped_key),
            ws::key_id.eq(&sealed.key_id),
            ws::updated_at.eq(DbTime(now)),
        ))
        .execute(conn)
    };
    if update(conn)? > 0 {
        return Ok(());
    }
    let inserted = conn.transaction(|c| {
        diesel::insert_into(ws::table)
            .values((
                ws::id.eq(DbUuid(Uuid::new_v4())),
                ws::workspace_id.eq(DbUuid(workspace_id)),
                ws::key.eq(key),
                ws::encrypted_value.eq(&sealed.ciphertext),
                ws::wrapped_key.eq(&sealed.wrapped_key),
                ws::key_id.eq(&sealed.key_id),
                ws::created_at.eq(DbTime(now)),
                ws::updated_at.eq(DbTime(now)),
            ))
            .execute(c)
    });
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => update(conn).map(|_| ()),
        Err(e) => Err(e),
    }
}

/// [`upsert_workspace`] for a global secret.
pub fn upsert_global(
    conn: &mut DbConnection,
    key: &str,
    sealed: &SealedSecret,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let update = |conn: &mut DbConnection| {
        diesel::update(globals::table.filter(globals::key.eq(key)))
            .set((
                globals::encrypted_value.eq(&sealed.ciphertext),
                globals::wrapped_key.eq(&sealed.wrapped_key),
                globals::key_id.eq(&sealed.key_id),
                globals::updated_at.eq(DbTime(now)),
            ))
            .execute(conn)
    };
    if update(conn)? > 0 {
        return Ok(());
    }
    let inserted = conn.transaction(|c| {
        diesel::insert_into(globals::table)
            .values((
                globals::id.eq(DbUuid(Uuid::new_v4())),
                globals::key.eq(key),
                globals::encrypted_value.eq(&sealed.ciphertext),
                globals::wrapped_key.eq(&sealed.wrapped_key),
                globals::key_id.eq(&sealed.key_id),
                globals::created_at.eq(DbTime(now)),
                globals::updated_at.eq(DbTime(now)),
            ))
            .execute(c)
    });
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => update(conn).map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Deletes a workspace secret; whether it existed.
pub fn delete_workspace(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    key: &str,
) -> QueryResult<bool> {
    diesel::delete(
        ws::table
            .filter(ws::workspace_id.eq(DbUuid(workspace_id)))
            .filter(ws::key.eq(key)),
    )
    .execute(conn)
    .map(|n| n > 0)
}

/// Deletes a global secret; whether it existed.
pub fn delete_global(conn: &mut DbConnection, key: &str) -> QueryResult<bool> {
    diesel::delete(globals::table.filter(globals::key.eq(key)))
        .execute(conn)
        .map(|n| n > 0)
}

/// Up to `limit` workspace secrets not wrapped by `key_id`, after `after` in id order (a keyset
/// cursor: the rotation walks each table once, even past rows it cannot re-wrap).
pub fn pending_workspace(
    conn: &mut DbConnection,
    key_id: &str,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<SealedRow>> {
    let mut query = ws::table
        .filter(ws::key_id.ne(key_id))
        .order(ws::id.asc())
        .limit(limit)
        .select((
            ws::id,
            ws::workspace_id.nullable(),
            ws::key,
            ws::encrypted_value,
            ws::wrapped_key,
            ws::key_id,
        ))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(ws::id.gt(DbUuid(after)));
    }
    query.load(conn)
}

/// [`pending_workspace`] for global secrets.
pub fn pending_global(
    conn: &mut DbConnection,
    key_id: &str,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<SealedRow>> {
    let mut query = globals::table
        .filter(globals::key_id.ne(key_id))
        .order(globals::id.asc())
        .limit(limit)
        .select((
            globals::id,
            None::<DbUuid>.into_sql::<diesel::sql_types::Nullable<super::sql_types::SqlUuid>>(),
            globals::key,
            globals::encrypted_value,
            globals::wrapped_key,
            globals::key_id,
        ))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(globals::id.gt(DbUuid(after)));
    }
    query.load(conn)
}

/// Replaces a row's wrapped data key, only if the row still holds `old_wrapped_key`: a value
/// rewritten since it was read keeps its new data key (re-wrapping the old one would orphan the
/// new ciphertext). Returns whether the row was updated.
pub fn set_wrapped_key(
    conn: &mut DbConnection,
    row: &SealedRow,
    old_wrapped_key: &[u8],
    wrapped_key: &[u8],
    key_id: &str,
) -> QueryResult<bool> {
    let updated = match row.workspace_id {
        Some(_) => diesel::update(
            ws::table
                .filter(ws::id.eq(row.id))
                .filter(ws::wrapped_key.eq(old_wrapped_key)),
        )
        .set((ws::wrapped_key.eq(wrapped_key), ws::key_id.eq(key_id)))
        .execute(conn)?,
        None => diesel::update(
            globals::table
                .filter(globals::id.eq(row.id))
                .filter(globals::wrapped_key.eq(old_wrapped_key)),
        )
        .set((
            globals::wrapped_key.eq(wrapped_key),
            globals::key_id.eq(key_id),
        ))
        .execute(conn)?,
    };
    Ok(updated > 0)
}
