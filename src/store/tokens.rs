//! `workspace_auth_tokens`: only SHA-256 hashes are stored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::workspace_auth_tokens as tokens;
use super::sql_types::{DbTime, DbUuid};
use super::DbConnection;

pub fn insert(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    token_hash: &str,
    token_prefix: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(tokens::table)
        .values((
            tokens::id.eq(DbUuid(Uuid::new_v4())),
            tokens::workspace_id.eq(DbUuid(workspace_id)),
            tokens::token_hash.eq(token_hash),
            tokens::token_prefix.eq(token_prefix),
            tokens::created_at.eq(DbTime(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn has_live_token(conn: &mut DbConnection, workspace_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        tokens::table
            .filter(tokens::workspace_id.eq(DbUuid(workspace_id)))
            .filter(tokens::revoked_at.is_null()),
    ))
    .get_result(conn)
}

/// The workspace a live token belongs to.
pub fn workspace_of(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<Uuid>> {
    Ok(tokens::table
        .filter(tokens::token_hash.eq(token_hash))
        .filter(tokens::revoked_at.is_null())
        .select(tokens::workspace_id)
        .first::<DbUuid>(conn)
        .optional()?
        .map(|w| w.0))
}

pub fn revoke_all(
    conn: &mut DbConnection,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        tokens::table
            .filter(tokens::workspace_id.eq(DbUuid(workspace_id)))
            .filter(tokens::revoked_at.is_null()),
    )
    .set(tokens::revoked_at.eq(Some(DbTime(now))))
    .execute(conn)
}
