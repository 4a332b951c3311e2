//! `agents`: which model is assigned to which workspace, with history.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::agents;
use super::sql_types::{DbTime, DbUuid};
use super::DbConnection;

#[derive(Clone, Debug)]
pub struct ActiveAgent {
    pub id: Uuid,
    pub model: Option<String>,
}

pub fn active(conn: &mut DbConnection, workspace_id: Uuid) -> QueryResult<Option<ActiveAgent>> {
    Ok(agents::table
        .filter(agents::workspace_id.eq(DbUuid(workspace_id)))
        .filter(agents::status.eq("active"))
        .select((agents::id, agents::model))
        .first::<(DbUuid, Option<String>)>(conn)
        .optional()?
        .map(|(id, model)| ActiveAgent { id: id.0, model }))
}

/// Inserts an active agent. The partial unique index refuses a second active one for the same
/// workspace: callers map that unique violation to 409.
pub fn insert_active(
    conn: &mut DbConnection,
    id: Uuid,
    workspace_id: Uuid,
    model: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(agents::table)
        .values((
            agents::id.eq(DbUuid(id)),
            agents::workspace_id.eq(DbUuid(workspace_id)),
            agents::model.eq(model),
            agents::status.eq("active"),
            agents::created_at.eq(DbTime(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Ends an assignment (`status` is why: removed, replaced, moved).
pub fn retire(
    conn: &mut DbConnection,
    id: Uuid,
    status: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(agents::table.filter(agents::id.eq(DbUuid(id))))
        .set((
            agents::status.eq(status),
            agents::removed_at.eq(Some(DbTime(now))),
            agents::removal_reason.eq(Some(reason)),
        ))
        .execute(conn)
        .map(|_| ())
}
