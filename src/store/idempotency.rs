//! `idempotency_keys`: the first response to each (caller, Idempotency-Key), so a retry on any
//! instance gets it back instead of running the command again (`http::idempotency`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::idempotency_keys;
use super::sql_types::{DbJson, DbTime};
use super::DbConnection;

/// A key's row: `response` is `None` while the first request is still running.
#[derive(Clone, Debug)]
pub struct StoredKey {
    pub fingerprint: String,
    pub response: Option<StoredResponse>,
}

/// What the first request answered: its status, the headers worth repeating (name → value)
/// and the body bytes.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: Vec<u8>,
}

/// Claims a key for a request about to run: `true` if this call inserted the row (run the
/// request), `false` if it already exists (a retry, or a request racing this one). The primary
/// key decides between racing instances; nothing else has to be locked.
pub fn claim(
    conn: &mut DbConnection,
    scope: &str,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(scope),
            idempotency_keys::key.eq(key),
            idempotency_keys::fingerprint.eq(fingerprint),
            idempotency_keys::created_at.eq(DbTime(now)),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn find(conn: &mut DbConnection, scope: &str, key: &str) -> QueryResult<Option<StoredKey>> {
    let row = idempotency_keys::table
        .filter(idempotency_keys::scope.eq(scope))
        .filter(idempotency_keys::key.eq(key))
        .select((
            idempotency_keys::fingerprint,
            idempotency_keys::response_status,
            idempotency_keys::response_headers,
            idempotency_keys::response_body,
        ))
        .first::<(String, Option<i32>, Option<DbJson>, Option<Vec<u8>>)>(conn)
        .optional()?;
    Ok(row.map(|(fingerprint, status, headers, body)| StoredKey {
        fingerprint,
        response: status.map(|status| StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            headers: match headers {
                Some(DbJson(serde_json::Value::Object(map))) => map,
                _ => Default::default(),
            },
            body: body.unwrap_or_default(),
        }),
    }))
}

/// Stores the first request's response on its claimed row.
pub fn complete(
    conn: &mut DbConnection,
    scope: &str,
    key: &str,
    response: &StoredResponse,
) -> QueryResult<()> {
    diesel::update(
        idempotency_keys::table
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::key.eq(key)),
    )
    .set((
        idempotency_keys::response_status.eq(Some(i32::from(response.status))),
        idempotency_keys::response_headers.eq(Some(DbJson(serde_json::Value::Object(
            response.headers.clone(),
        )))),
        idempotency_keys::response_body.eq(Some(response.body.as_slice())),
    ))
    .execute(conn)
    .map(|_| ())
}

/// Gives a claim back (the request changed nothing and its answer should not be repeated): the
/// next request with the key runs afresh. Only an unanswered claim is deleted.
pub fn release(conn: &mut DbConnection, scope: &str, key: &str) -> QueryResult<()> {
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::key.eq(key))
            .filter(idempotency_keys::response_status.is_null()),
    )
    .execute(conn)
    .map(|_| ())
}

/// Deletes up to `batch` keys created before `cutoff`; returns how many went.
pub fn delete_older_than(
    conn: &mut DbConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    let doomed: Vec<(String, String)> = idempotency_keys::table
        .filter(idempotency_keys::created_at.lt(DbTime(cutoff)))
        .order(idempotency_keys::created_at.asc())
        .limit(batch)
        .select((idempotency_keys::scope, idempotency_keys::key))
        .load(conn)?;
    let mut deleted = 0;
    for (scope, key) in doomed {
        deleted += diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::scope.eq(scope))
                .filter(idempotency_keys::key.eq(key)),
        )
        .execute(conn)?;
    }
    Ok(deleted)
}
