//! `workspaces` and their layout rows.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::schema::{canvas_layouts, workspaces};
use super::sql_types::{DbJson, DbTime, DbUuid};
use super::DbConnection;
use crate::domain::events::serialize_number;
use crate::domain::hierarchy::ParentMap;
use crate::domain::status::WorkspaceStatus;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = workspaces)]
pub struct WorkspaceRow {
    pub id: DbUuid,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub status: String,
    pub agent_card: Option<DbJson>,
    pub url: Option<String>,
    pub parent_id: Option<DbUuid>,
    pub forwarded_to: Option<DbUuid>,
    pub last_heartbeat_at: Option<DbTime>,
    pub last_error_rate: f64,
    pub last_sample_error: Option<String>,
    pub active_tasks: i32,
    pub uptime_seconds: i64,
    pub current_task: Option<String>,
    pub runtime: Option<String>,
    pub model: Option<String>,
    pub created_at: DbTime,
    pub updated_at: DbTime,
    pub version: i64,
}

impl WorkspaceRow {
    pub fn status(&self) -> WorkspaceStatus {
        WorkspaceStatus::parse(&self.status).unwrap_or(WorkspaceStatus::Failed)
    }

    pub fn parent(&self) -> Option<Uuid> {
        self.parent_id.map(|p| p.0)
    }
}

#[derive(Queryable, Selectable, Clone, Copy, Debug)]
#[diesel(table_name = canvas_layouts)]
pub struct LayoutRow {
    pub x: f64,
    pub y: f64,
    pub collapsed: bool,
}

/// The workspace object of the API (CONTRACT.md "Workspace object fields").
#[derive(Serialize, Clone, Debug, utoipa::ToSchema)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub status: String,
    pub agent_card: Option<serde_json::Value>,
    pub url: String,
    pub parent_id: Option<Uuid>,
    pub forwarded_to: Option<Uuid>,
    pub active_tasks: i32,
    pub last_error_rate: f64,
    pub last_sample_error: String,
    pub uptime_seconds: i64,
    pub current_task: String,
    pub runtime: Option<String>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "serialize_number")]
    pub x: f64,
    #[serde(serialize_with = "serialize_number")]
    pub y: f64,
    pub collapsed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// +1 with every change that is announced by an event about this workspace (each such
    /// event carries the new value as `payload.version`); `GET /workspaces/:id` also sends it
    /// as the strong `ETag` `"<version>"`, which `If-Match` on PATCH and DELETE compares.
    pub version: i64,
}

impl Workspace {
    fn from_rows(row: WorkspaceRow, layout: Option<LayoutRow>) -> Self {
        let layout = layout.unwrap_or(LayoutRow {
            x: 0.0,
            y: 0.0,
            collapsed: false,
        });
        Workspace {
            id: row.id.0,
            name: row.name,
            role: row.role,
            tier: row.tier,
            status: row.status,
            agent_card: row.agent_card.map(|c| c.0),
            url: row.url.unwrap_or_default(),
            parent_id: row.parent_id.map(|p| p.0),
            forwarded_to: row.forwarded_to.map(|p| p.0),
            active_tasks: row.active_tasks,
            last_error_rate: row.last_error_rate,
            last_sample_error: row.last_sample_error.unwrap_or_default(),
            uptime_seconds: row.uptime_seconds,
            current_task: row.current_task.unwrap_or_default(),
            runtime: row.runtime,
            last_heartbeat_at: row.last_heartbeat_at.map(|t| t.0),
            x: layout.x,
            y: layout.y,
            collapsed: layout.collapsed,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
            version: row.version,
        }
    }
}

pub struct NewWorkspace {
    pub id: Uuid,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub runtime: Option<String>,
    pub model: Option<String>,
    pub parent_id: Option<Uuid>,
}

pub fn insert(conn: &mut DbConnection, ws: &NewWorkspace, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::insert_into(workspaces::table)
        .values((
            workspaces::id.eq(DbUuid(ws.id)),
            workspaces::name.eq(&ws.name),
            workspaces::role.eq(&ws.role),
            workspaces::tier.eq(ws.tier),
            workspaces::status.eq(WorkspaceStatus::Provisioning.as_str()),
            workspaces::runtime.eq(&ws.runtime),
            workspaces::model.eq(&ws.model),
            workspaces::parent_id.eq(ws.parent_id.map(DbUuid)),
            workspaces::created_at.eq(DbTime(now)),
            workspaces::updated_at.eq(DbTime(now)),
            // The creation event bumps it to 1, like every other announced change.
            workspaces::version.eq(0_i64),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Adds one to the workspace's version and returns the new value (`None`: no such row). Runs
/// only under the stream lock (from `Tx::append`), so versions change in commit order and a
/// version read under that lock cannot move before the transaction commits.
pub fn bump_version(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<i64>> {
    diesel::update(workspaces::table.filter(workspaces::id.eq(DbUuid(id))))
        .set(workspaces::version.eq(workspaces::version + 1_i64))
        .returning(workspaces::version)
        .get_result(conn)
        .optional()
}

/// The workspace's current version (`None`: no such row).
pub fn version(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<i64>> {
    workspaces::table
        .filter(workspaces::id.eq(DbUuid(id)))
        .select(workspaces::version)
        .first(conn)
        .optional()
}

pub fn find_row(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<WorkspaceRow>> {
    workspaces::table
        .filter(workspaces::id.eq(DbUuid(id)))
        .select(WorkspaceRow::as_select())
        .first(conn)
        .optional()
}

/// A workspace that exists and is not removed.
pub fn find_live_row(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<WorkspaceRow>> {
    Ok(find_row(conn, id)?.filter(|w| w.status() != WorkspaceStatus::Removed))
}

pub fn find(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<Workspace>> {
    let found = workspaces::table
        .left_join(canvas_layouts::table)
        .filter(workspaces::id.eq(DbUuid(id)))
        .select((WorkspaceRow::as_select(), Option::<LayoutRow>::as_select()))
        .first::<(WorkspaceRow, Option<LayoutRow>)>(conn)
        .optional()?;
    Ok(found.map(|(row, layout)| Workspace::from_rows(row, layout)))
}

/// Every workspace that is not removed, oldest first.
pub fn list_live(conn: &mut DbConnection) -> QueryResult<Vec<Workspace>> {
    let rows = workspaces::table
        .left_join(canvas_layouts::table)
        .filter(workspaces::status.ne(WorkspaceStatus::Removed.as_str()))
        .order((workspaces::created_at.asc(), workspaces::id.asc()))
        .select((WorkspaceRow::as_select(), Option::<LayoutRow>::as_select()))
        .load::<(WorkspaceRow, Option<LayoutRow>)>(conn)?;
    Ok(rows
        .into_iter()
        .map(|(row, layout)| Workspace::from_rows(row, layout))
        .collect())
}

/// Child → parent for every live workspace: the hierarchy rules run over this in memory.
pub fn parent_map(conn: &mut DbConnection) -> QueryResult<ParentMap> {
    let pairs = workspaces::table
        .filter(workspaces::status.ne(WorkspaceStatus::Removed.as_str()))
        .select((workspaces::id, workspaces::parent_id))
        .load::<(DbUuid, Option<DbUuid>)>(conn)?;
    Ok(ParentMap::from_pairs(
        pairs.into_iter().map(|(id, p)| (id.0, p.map(|p| p.0))),
    ))
}

/// Live direct children, oldest first.
pub fn live_children(conn: &mut DbConnection, id: Uuid) -> QueryResult<Vec<(Uuid, String)>> {
    Ok(workspaces::table
        .filter(workspaces::parent_id.eq(DbUuid(id)))
        .filter(workspaces::status.ne(WorkspaceStatus::Removed.as_str()))
        .order(workspaces::created_at.asc())
        .select((workspaces::id, workspaces::name))
        .load::<(DbUuid, String)>(conn)?
        .into_iter()
        .map(|(id, name)| (id.0, name))
        .collect())
}

/// `id` and all its live descendants, parents before children.
pub fn live_subtree(conn: &mut DbConnection, id: Uuid) -> QueryResult<Vec<WorkspaceRow>> {
    let mut out = Vec::new();
    let Some(root) = find_live_row(conn, id)? else {
        return Ok(out);
    };
    out.push(root);
    let mut next = 0;
    while next < out.len() {
        let parent = out[next].id;
        let children = workspaces::table
            .filter(workspaces::parent_id.eq(parent))
            .filter(workspaces::status.ne(WorkspaceStatus::Removed.as_str()))
            .order(workspaces::created_at.asc())
            .select(WorkspaceRow::as_select())
            .load(conn)?;
        out.extend(children);
        next += 1;
    }
    Ok(out)
}

pub fn set_status(
    conn: &mut DbConnection,
    id: Uuid,
    status: WorkspaceStatus,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(workspaces::table.filter(workspaces::id.eq(DbUuid(id))))
        .set((
            workspaces::status.eq(status.as_str()),
            workspaces::updated_at.eq(DbTime(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Moves `id` to `to` only if its status is one of `from`. Returns whether it moved: the
/// guard in SQL is what makes N instances observing one cause produce one transition.
pub fn transition_status(
    conn: &mut DbConnection,
    id: Uuid,
    from: &[WorkspaceStatus],
    to: WorkspaceStatus,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let changed = diesel::update(
        workspaces::table
            .filter(workspaces::id.eq(DbUuid(id)))
            .filter(workspaces::status.eq_any(from)),
    )
    .set((
        workspaces::status.eq(to.as_str()),
        workspaces::updated_at.eq(DbTime(now)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

#[derive(Default)]
pub struct DescriptionChanges {
    pub name: Option<String>,
    pub role: Option<Option<String>>,
    pub tier: Option<i32>,
    pub runtime: Option<Option<String>>,
}

#[derive(AsChangeset)]
#[diesel(table_name = workspaces)]
struct DescriptionChangeset {
    name: Option<String>,
    role: Option<Option<String>>,
    tier: Option<i32>,
    runtime: Option<Option<String>>,
    updated_at: DbTime,
}

pub fn update_description(
    conn: &mut DbConnection,
    id: Uuid,
    changes: DescriptionChanges,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(workspaces::table.filter(workspaces::id.eq(DbUuid(id))))
        .set(DescriptionChangeset {
            name: changes.name,
            role: changes.role,
            tier: changes.tier,
            runtime: changes.runtime,
            updated_at: DbTime(now),
        })
        .execute(conn)
        .map(|_| ())
}

pub fn set_parent(
    conn: &mut DbConnection,
    id: Uuid,
    parent: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(workspaces::table.filter(workspaces::id.eq(DbUuid(id))))
        .set((
            workspaces::parent_id.eq(parent.map(DbUuid)),
            workspaces::updated_at.eq(DbTime(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn find_layout(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<LayoutRow>> {
    canvas_layouts::table
        .filter(canvas_layouts::workspace_id.eq(DbUuid(id)))
        .select(LayoutRow::as_select())
        .first(conn)
        .optional()
}

/// Writes the layout row. Upserts do not compile on the shared connection type, so this is an
/// update-then-insert; callers hold the write lock (BEGIN IMMEDIATE / stream lock), so no other
/// writer can slip in between.
pub fn save_layout(conn: &mut DbConnection, id: Uuid, layout: LayoutRow) -> QueryResult<()> {
    let updated =
        diesel::update(canvas_layouts::table.filter(canvas_layouts::workspace_id.eq(DbUuid(id))))
            .set((
                canvas_layouts::x.eq(layout.x),
                canvas_layouts::y.eq(layout.y),
                canvas_layouts::collapsed.eq(layout.collapsed),
            ))
            .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(canvas_layouts::table)
            .values((
                canvas_layouts::workspace_id.eq(DbUuid(id)),
                canvas_layouts::x.eq(layout.x),
                canvas_layouts::y.eq(layout.y),
                canvas_layouts::collapsed.eq(layout.collapsed),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete_layout(conn: &mut DbConnection, id: Uuid) -> QueryResult<()> {
    diesel::delete(canvas_layouts::table.filter(canvas_layouts::workspace_id.eq(DbUuid(id))))
        .execute(conn)
        .map(|_| ())
}

/// The columns a heartbeat overwrites.
#[derive(Clone, Debug)]
pub struct HeartbeatColumns {
    pub error_rate: f64,
    pub sample_error: String,
    pub active_tasks: i32,
    pub uptime_seconds: i64,
    pub current_task: String,
}

/// Writes a heartbeat if the workspace is still in `expected` status (and moves it to
/// `next`, when given). Returns false when the status changed underneath: the caller retries
/// on the serialized path.
pub fn record_heartbeat(
    conn: &mut DbConnection,
    id: Uuid,
    beat: &HeartbeatColumns,
    expected: WorkspaceStatus,
    next: Option<WorkspaceStatus>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let target = workspaces::table
        .filter(workspaces::id.eq(DbUuid(id)))
        .filter(workspaces::status.eq(expected.as_str()));
    let columns = (
        workspaces::last_error_rate.eq(beat.error_rate),
        workspaces::last_sample_error.eq(Some(beat.sample_error.as_str())),
        workspaces::active_tasks.eq(beat.active_tasks),
        workspaces::uptime_seconds.eq(beat.uptime_seconds),
        workspaces::current_task.eq(Some(beat.current_task.as_str())),
        workspaces::last_heartbeat_at.eq(Some(DbTime(now))),
    );
    let changed = match next {
        None => diesel::update(target).set(columns).execute(conn)?,
        Some(status) => diesel::update(target)
            .set((
                columns,
                workspaces::status.eq(status.as_str()),
                workspaces::updated_at.eq(DbTime(now)),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Register: online, with the agent's URL and card, counted as a heartbeat.
pub fn mark_registered(
    conn: &mut DbConnection,
    id: Uuid,
    url: &str,
    agent_card: &serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(workspaces::table.filter(workspaces::id.eq(DbUuid(id))))
        .set((
            workspaces::status.eq(WorkspaceStatus::Online.as_str()),
            workspaces::url.eq(Some(url)),
            workspaces::agent_card.eq(Some(DbJson(agent_card.clone()))),
            workspaces::last_heartbeat_at.eq(Some(DbTime(now))),
            workspaces::updated_at.eq(DbTime(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn set_agent_card(
    conn: &mut DbConnection,
    id: Uuid,
    agent_card: &serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(workspaces::table.filter(workspaces::id.eq(DbUuid(id))))
        .set((
            workspaces::agent_card.eq(Some(DbJson(agent_card.clone()))),
            workspaces::updated_at.eq(DbTime(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

const LIVE_STATUSES: [&str; 2] = ["online", "degraded"];

/// Online or degraded workspaces not heard from since `silent_since`.
pub fn silent_workspaces(
    conn: &mut DbConnection,
    silent_since: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    Ok(workspaces::table
        .filter(workspaces::status.eq_any(LIVE_STATUSES))
        .filter(
            workspaces::last_heartbeat_at
                .is_null()
                .or(workspaces::last_heartbeat_at.lt(DbTime(silent_since))),
        )
        .select(workspaces::id)
        .load::<DbUuid>(conn)?
        .into_iter()
        .map(|id| id.0)
        .collect())
}

/// The guarded offline transition: only from online/degraded, and only if still silent. Any
/// number of instances observing one expiry produce one change.
pub fn mark_offline_if_silent(
    conn: &mut DbConnection,
    id: Uuid,
    silent_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let changed = diesel::update(
        workspaces::table
            .filter(workspaces::id.eq(DbUuid(id)))
            .filter(workspaces::status.eq_any(LIVE_STATUSES))
            .filter(
                workspaces::last_heartbeat_at
                    .is_null()
                    .or(workspaces::last_heartbeat_at.lt(DbTime(silent_since))),
            ),
    )
    .set((
        workspaces::status.eq(WorkspaceStatus::Offline.as_str()),
        workspaces::updated_at.eq(DbTime(now)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Provisioning workspaces whose status has not changed since `before` (never registered).
pub fn stale_provisioning(
    conn: &mut DbConnection,
    before: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    Ok(workspaces::table
        .filter(workspaces::status.eq(WorkspaceStatus::Provisioning.as_str()))
        .filter(workspaces::updated_at.lt(DbTime(before)))
        .select(workspaces::id)
        .load::<DbUuid>(conn)?
        .into_iter()
        .map(|id| id.0)
        .collect())
}

pub fn fail_if_still_provisioning(
    conn: &mut DbConnection,
    id: Uuid,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let changed = diesel::update(
        workspaces::table
            .filter(workspaces::id.eq(DbUuid(id)))
            .filter(workspaces::status.eq(WorkspaceStatus::Provisioning.as_str()))
            .filter(workspaces::updated_at.lt(DbTime(before))),
    )
    .set((
        workspaces::status.eq(WorkspaceStatus::Failed.as_str()),
        workspaces::updated_at.eq(DbTime(now)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Live workspaces by id, in the order given (unknown ids skipped).
pub fn find_many(conn: &mut DbConnection, ids: &[Uuid]) -> QueryResult<Vec<Workspace>> {
    let wanted: Vec<DbUuid> = ids.iter().copied().map(DbUuid).collect();
    let rows = workspaces::table
        .left_join(canvas_layouts::table)
        .filter(workspaces::id.eq_any(wanted))
        .filter(workspaces::status.ne(WorkspaceStatus::Removed.as_str()))
        .select((WorkspaceRow::as_select(), Option::<LayoutRow>::as_select()))
        .load::<(WorkspaceRow, Option<LayoutRow>)>(conn)?;
    let mut by_id: std::collections::HashMap<Uuid, Workspace> = rows
        .into_iter()
        .map(|(row, layout)| (row.id.0, Workspace::from_rows(row, layout)))
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// A heartbeat to write only if it changes nothing anyone watches (see
/// [`record_quiet_heartbeats`]).
#[derive(Clone, Debug)]
pub struct QuietBeat {
    pub workspace_id: Uuid,
    pub columns: HeartbeatColumns,
    /// The statuses this heartbeat leaves where they are (at most four: online, degraded,
    /// failed, paused); in any other status it would move the workspace, so it is not written.
    pub quiet: Vec<WorkspaceStatus>,
}

/// Rows of one [`record_quiet_heartbeats`] statement come in these sizes (the batch is padded
/// to the next one by repeating its last row), so the statement's text takes one of nine
/// shapes and each connection prepares it once per shape. The batcher's batches are at most
/// 256.
const HEARTBEAT_ROWS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/// Bind parameters per row: id, error rate, sample error, active tasks, uptime, task, and the
/// four quiet statuses.
const HEARTBEAT_ROW_PARAMS: usize = 10;

#[derive(QueryableByName)]
struct WrittenId {
    #[diesel(sql_type = super::sql_types::SqlUuid)]
    id: DbUuid,
}

/// The batched quiet heartbeat: ONE statement for many agents,
/// `WITH v(…) AS (VALUES (…), …) UPDATE workspaces SET … FROM v WHERE id = v.workspace AND
/// status IN (v's quiet statuses) AND COALESCE(current_task, '') = v.task RETURNING id`.
/// Each row is written only if its workspace is in one of its `quiet` statuses and its task is
/// unchanged (an empty task matches none); the rest are left untouched for the caller's full
/// path. Returns the ids written. `beats` must name distinct workspaces (a workspace named
/// twice is written with one of its rows) and hold at most 256.
///
/// Runs in autocommit: one round trip, no transaction, no stream lock (it appends no event).
/// PostgreSQL and SQLite (3.33+: `UPDATE … FROM`; 3.35+: `RETURNING`) take the same text but
/// for the placeholders.
pub fn record_quiet_heartbeats(
    conn: &mut DbConnection,
    beats: &[&QuietBeat],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    let Some(&last) = beats.last() else {
        return Ok(Vec::new());
    };
    let rows = HEARTBEAT_ROWS
        .iter()
        .copied()
        .find(|n| *n >= beats.len())
        .ok_or_else(|| {
            diesel::result::Error::QueryBuilderError("over 256 heartbeats in one batch".into())
        })?;
    // Padding repeats the last row: the same values for the same workspace, written once.
    let padded = beats
        .iter()
        .copied()
        .chain(std::iter::repeat(last))
        .take(rows);
    macro_rules! run {
        ($conn:expr, $backend:ty, $placeholder:expr) => {{
            let sql = quiet_heartbeats_sql(rows, $placeholder);
            let mut query = diesel::sql_query(sql).into_boxed::<$backend>();
            for beat in padded {
                let cols = &beat.columns;
                let status = |i: usize| {
                    beat.quiet
                        .get(i)
                        .or(beat.quiet.last())
                        .map(|s| s.as_str())
                        // No quiet status: a value no row has, so nothing is written.
                        .unwrap_or("")
                };
                query = query
                    .bind::<super::sql_types::SqlUuid, _>(DbUuid(beat.workspace_id))
                    .bind::<diesel::sql_types::Double, _>(cols.error_rate)
                    .bind::<diesel::sql_types::Text, _>(cols.sample_error.clone())
                    .bind::<diesel::sql_types::Integer, _>(cols.active_tasks)
                    .bind::<diesel::sql_types::BigInt, _>(cols.uptime_seconds)
                    .bind::<diesel::sql_types::Text, _>(cols.current_task.clone())
                    .bind::<diesel::sql_types::Text, _>(status(0))
                    .bind::<diesel::sql_types::Text, _>(status(1))
                    .bind::<diesel::sql_types::Text, _>(status(2))
                    .bind::<diesel::sql_types::Text, _>(status(3));
            }
            query
                .bind::<super::sql_types::SqlTimestamp, _>(DbTime(now))
                .load::<WrittenId>($conn)?
        }};
    }
    let written = match conn {
        DbConnection::Postgres(c) => run!(c, diesel::pg::Pg, |n: usize| format!("${n}")),
        DbConnection::Sqlite(c) => run!(c, diesel::sqlite::Sqlite, |_: usize| "?".to_string()),
    };
    Ok(written.into_iter().map(|w| w.id.0).collect())
}

/// The text of [`record_quiet_heartbeats`] for `rows` rows; `placeholder(n)` is the n-th
/// (1-based) bind parameter.
fn quiet_heartbeats_sql(rows: usize, placeholder: impl Fn(usize) -> String) -> String {
    use std::fmt::Write;
    let mut sql = String::from(
        "WITH v (workspace, error_rate, sample_error, active_tasks, uptime_seconds, task, s0, s1, s2, s3) AS (VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for param in 0..HEARTBEAT_ROW_PARAMS {
            if param > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholder(row * HEARTBEAT_ROW_PARAMS + param + 1));
        }
        sql.push(')');
    }
    let now = placeholder(rows * HEARTBEAT_ROW_PARAMS + 1);
    let _ = write!(
        sql,
        ") UPDATE workspaces SET last_error_rate = v.error_rate, \
         last_sample_error = v.sample_error, active_tasks = v.active_tasks, \
         uptime_seconds = v.uptime_seconds, last_heartbeat_at = {now} \
         FROM v WHERE workspaces.id = v.workspace \
         AND workspaces.status IN (v.s0, v.s1, v.s2, v.s3) \
         AND COALESCE(workspaces.current_task, '') = v.task \
         RETURNING id"
    );
    sql
}

/// A workspace on the canvas: its id, its parent, and its layout row if it has one.
pub type CanvasNodeRow = (Uuid, Option<Uuid>, Option<LayoutRow>);

/// Every live workspace with its parent and layout, oldest first: the canvas the placement
/// and arrange rules run over, loaded in one query per command.
pub fn canvas_nodes(conn: &mut DbConnection) -> QueryResult<Vec<CanvasNodeRow>> {
    let rows = workspaces::table
        .left_join(canvas_layouts::table)
        .filter(workspaces::status.ne(WorkspaceStatus::Removed.as_str()))
        .order((workspaces::created_at.asc(), workspaces::id.asc()))
        .select((
            workspaces::id,
            workspaces::parent_id,
            Option::<LayoutRow>::as_select(),
        ))
        .load::<(DbUuid, Option<DbUuid>, Option<LayoutRow>)>(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, parent, layout)| (id.0, parent.map(|p| p.0), layout))
        .collect())
}
