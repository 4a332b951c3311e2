//! The sequenced stream (`live_events`), the permanent log (`structure_events`) and the stream's
//! identity (`stream_meta`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schema::{live_events, stream_meta, structure_events};
use super::sql_types::{DbJson, DbTime, DbUuid};
use super::DbConnection;
use crate::domain::events::EventKind;
use crate::domain::people::Actor;

/// An event about to be appended.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub kind: EventKind,
    pub workspace_id: Option<Uuid>,
    pub payload: serde_json::Value,
    /// For agent events, kept in `structure_events.agent_id`.
    pub agent_id: Option<Uuid>,
    /// For events that point at a second workspace (AGENT_MOVED), kept in `target_id`.
    pub target_id: Option<Uuid>,
}

impl NewEvent {
    pub fn new(kind: EventKind, workspace_id: Uuid, payload: serde_json::Value) -> Self {
        NewEvent {
            kind,
            workspace_id: Some(workspace_id),
            payload,
            agent_id: None,
            target_id: None,
        }
    }

    pub fn with_agent(mut self, agent_id: Uuid) -> Self {
        self.agent_id = Some(agent_id);
        self
    }

    pub fn with_target(mut self, target_id: Uuid) -> Self {
        self.target_id = Some(target_id);
        self
    }
}

/// A committed event with its position in the stream. This is what the Backplane carries and
/// the Relay orders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub seq: i64,
    pub id: Uuid,
    pub event_type: String,
    pub workspace_id: Option<Uuid>,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Who caused it (`None` only for events stored before actors existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = live_events)]
struct LiveEventRow {
    seq: i64,
    id: DbUuid,
    event_type: String,
    workspace_id: Option<DbUuid>,
    payload: DbJson,
    created_at: DbTime,
    actor: Option<DbJson>,
}

impl From<LiveEventRow> for LiveEvent {
    fn from(row: LiveEventRow) -> Self {
        LiveEvent {
            seq: row.seq,
            id: row.id.0,
            event_type: row.event_type,
            workspace_id: row.workspace_id.map(|w| w.0),
            payload: row.payload.0,
            created_at: row.created_at.0,
            actor: row.actor.and_then(|a| Actor::from_json(&a.0)),
        }
    }
}

/// Appends one event. The caller holds the stream lock (see `Tx::lock_stream`).
pub(super) fn append(
    conn: &mut DbConnection,
    event: NewEvent,
    actor: &Actor,
) -> QueryResult<LiveEvent> {
    let actor_json = actor.to_json();
    let seq: i64 = diesel::update(stream_meta::table.filter(stream_meta::id.eq(1)))
        .set(stream_meta::last_seq.eq(stream_meta::last_seq + 1))
        .returning(stream_meta::last_seq)
        .get_result(conn)?;
    let id = Uuid::new_v4();
    let created_at = Utc::now();
    diesel::insert_into(live_events::table)
        .values((
            live_events::seq.eq(seq),
            live_events::id.eq(DbUuid(id)),
            live_events::event_type.eq(event.kind.as_str()),
            live_events::workspace_id.eq(event.workspace_id.map(DbUuid)),
            live_events::payload.eq(DbJson(event.payload.clone())),
            live_events::created_at.eq(DbTime(created_at)),
            live_events::actor.eq(Some(DbJson(actor_json.clone()))),
        ))
        .execute(conn)?;
    if event.kind.is_structural() {
        diesel::insert_into(structure_events::table)
            .values((
                structure_events::id.eq(DbUuid(id)),
                structure_events::seq.eq(seq),
                structure_events::event_type.eq(event.kind.as_str()),
                structure_events::workspace_id.eq(event.workspace_id.map(DbUuid)),
                structure_events::agent_id.eq(event.agent_id.map(DbUuid)),
                structure_events::target_id.eq(event.target_id.map(DbUuid)),
                structure_events::payload.eq(DbJson(event.payload.clone())),
                structure_events::created_at.eq(DbTime(created_at)),
                structure_events::actor.eq(Some(DbJson(actor_json))),
                structure_events::actor_id.eq(Some(actor.id.as_str())),
            ))
            .execute(conn)?;
    }
    Ok(LiveEvent {
        seq,
        id,
        event_type: event.kind.as_str().to_string(),
        workspace_id: event.workspace_id,
        payload: event.payload,
        created_at,
        actor: Some(actor.clone()),
    })
}

/// The stream's identity and its newest committed seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHead {
    pub epoch: String,
    pub last_seq: i64,
}

pub fn stream_head(conn: &mut DbConnection) -> QueryResult<StreamHead> {
    let (epoch, last_seq) = stream_meta::table
        .filter(stream_meta::id.eq(1))
        .select((stream_meta::epoch, stream_meta::last_seq))
        .first::<(String, i64)>(conn)?;
    Ok(StreamHead { epoch, last_seq })
}

/// Events with `after < seq <= up_to`, oldest first, at most `limit`.
pub fn live_events_between(
    conn: &mut DbConnection,
    after: i64,
    up_to: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<LiveEvent>> {
    let mut query = live_events::table
        .filter(live_events::seq.gt(after))
        .order(live_events::seq.asc())
        .limit(limit)
        .select(LiveEventRow::as_select())
        .into_boxed();
    if let Some(up_to) = up_to {
        query = query.filter(live_events::seq.le(up_to));
    }
    Ok(query.load(conn)?.into_iter().map(LiveEvent::from).collect())
}

/// The oldest seq still kept in `live_events` (None when the stream is empty).
pub fn oldest_live_seq(conn: &mut DbConnection) -> QueryResult<Option<i64>> {
    live_events::table
        .select(diesel::dsl::min(live_events::seq))
        .first(conn)
}

/// Deletes live events older than `cutoff`, keeping at least the newest `keep_newest`, in
/// batches of `batch`. Returns how many rows went.
pub fn prune_live_events(
    conn: &mut DbConnection,
    cutoff: DateTime<Utc>,
    keep_newest: i64,
    batch: i64,
) -> QueryResult<usize> {
    let head = stream_head(conn)?;
    let floor = head.last_seq - keep_newest; // seqs <= floor are outside the kept tail
    let mut total = 0;
    loop {
        let doomed: Vec<i64> = live_events::table
            .filter(live_events::seq.le(floor))
            .filter(live_events::created_at.lt(DbTime(cutoff)))
            .order(live_events::seq.asc())
            .limit(batch)
            .select(live_events::seq)
            .load(conn)?;
        if doomed.is_empty() {
            return Ok(total);
        }
        total += diesel::delete(live_events::table.filter(live_events::seq.eq_any(&doomed)))
            .execute(conn)?;
    }
}

/// A row of the permanent log, as `GET /events` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StructureEvent {
    pub id: Uuid,
    pub seq: i64,
    pub event_type: String,
    pub workspace_id: Option<Uuid>,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Who caused it: `{"type":"user"|"agent"|"system","id","name"}` (null for events stored
    /// before actors existed).
    pub actor: Option<Actor>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = structure_events)]
struct StructureEventRow {
    id: DbUuid,
    seq: i64,
    event_type: String,
    workspace_id: Option<DbUuid>,
    payload: DbJson,
    created_at: DbTime,
    actor: Option<DbJson>,
}

/// Structural events, newest first, optionally for one workspace, one actor (its id) and
/// before a seq.
pub fn structure_events_page(
    conn: &mut DbConnection,
    workspace: Option<Uuid>,
    before_seq: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<StructureEvent>> {
    structure_events_by(conn, workspace, None, before_seq, limit)
}

/// [`structure_events_page`] with an actor filter.
pub fn structure_events_by(
    conn: &mut DbConnection,
    workspace: Option<Uuid>,
    actor_id: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<StructureEvent>> {
    let mut query = structure_events::table
        .order(structure_events::seq.desc())
        .limit(limit)
        .select(StructureEventRow::as_select())
        .into_boxed();
    if let Some(ws) = workspace {
        query = query.filter(structure_events::workspace_id.eq(DbUuid(ws)));
    }
    if let Some(before) = before_seq {
        query = query.filter(structure_events::seq.lt(before));
    }
    if let Some(actor_id) = actor_id {
        query = query.filter(structure_events::actor_id.eq(actor_id.to_string()));
    }
    Ok(query
        .load(conn)?
        .into_iter()
        .map(|r| StructureEvent {
            id: r.id.0,
            seq: r.seq,
            event_type: r.event_type,
            workspace_id: r.workspace_id.map(|w| w.0),
            payload: r.payload.0,
            created_at: r.created_at.0,
            actor: r.actor.and_then(|a| Actor::from_json(&a.0)),
        })
        .collect())
}

/// The newest structural event of a workspace (the "last event" a 410 answer carries).
pub fn last_structure_event(
    conn: &mut DbConnection,
    workspace: Uuid,
) -> QueryResult<Option<StructureEvent>> {
    Ok(structure_events_page(conn, Some(workspace), None, 1)?
        .into_iter()
        .next())
}
