//! Workspace commands: create, patch, remove, pause and resume, each under the stream lock with
//! its events; version checks (`If-Match`) and the hierarchy's depth bound are enforced here.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::layout;
use crate::domain::events::{json_number, EventKind};
use crate::domain::hierarchy::MAX_HIERARCHY_DEPTH;
use crate::domain::status::WorkspaceStatus;
use crate::domain::validation::{RuntimeName, Tier, WorkspaceName, WorkspaceRole};
use crate::domain::versions::IfMatch;
use crate::error::{AppError, AppResult};
use crate::store::workspaces::{
    self as ws, DescriptionChanges, LayoutRow, NewWorkspace, WorkspaceRow,
};
use crate::store::{tokens, NewEvent, Tx};

/// A workspace to create (`POST /workspaces`), parsed at the boundary.
pub struct CreateWorkspace {
    /// Its name.
    pub name: WorkspaceName,
    /// What it does, in words.
    pub role: Option<WorkspaceRole>,
    /// Its tier.
    pub tier: Tier,
    /// The runtime its agent uses.
    pub runtime: Option<RuntimeName>,
    /// The model of an agent to assign with it.
    pub model: Option<String>,
    /// Its parent; `None`: a root.
    pub parent_id: Option<Uuid>,
    /// Where on the canvas (px); `None`: placed by the server.
    pub position: Option<(f64, f64)>,
}

fn parent_not_found() -> AppError {
    AppError::BadRequest("parent_id: parent workspace not found".into())
}

fn too_deep() -> AppError {
    AppError::BadRequest(format!(
        "parent_id: the hierarchy may be at most {MAX_HIERARCHY_DEPTH} levels deep"
    ))
}

/// Creates a workspace (provisioning) with its layout and WORKSPACE_PROVISIONING event; returns
/// its id. 400 naming `parent_id` for a parent that is not live, or one under which it would
/// sit deeper than the hierarchy's bound.
pub fn create(tx: &mut Tx<'_>, input: CreateWorkspace) -> AppResult<Uuid> {
    tx.lock_stream()?;
    if let Some(parent) = input.parent_id {
        ws::find_live_row(tx.conn(), parent)?.ok_or_else(parent_not_found)?;
        if ws::parent_map(tx.conn())?.too_deep_under(parent, None) {
            return Err(too_deep());
        }
    }
    let id = Uuid::new_v4();
    // A position a person chose is stored as given; otherwise the server places the card
    // beside its siblings, and areas that grow make room (README "Placement and Arrange"),
    // over the canvas as it was before this workspace, loaded once.
    let mut canvas = None;
    let (x, y) = match input.position {
        Some(position) => position,
        None => {
            let mut loaded = layout::load_canvas(tx)?;
            let position = loaded.place_new(id, input.parent_id);
            canvas = Some(loaded);
            position
        }
    };
    let now = Utc::now();
    let new = NewWorkspace {
        id,
        name: input.name.into_string(),
        role: input.role.map(WorkspaceRole::into_string),
        tier: input.tier.get(),
        runtime: input.runtime.map(RuntimeName::into_string),
        model: input.model,
        parent_id: input.parent_id,
    };
    ws::insert(tx.conn(), &new, now)?;
    ws::save_layout(
        tx.conn(),
        id,
        LayoutRow {
            x,
            y,
            collapsed: false,
        },
    )?;
    let (ex, ey) = event_position(tx, new.parent_id, x, y)?;
    tx.append(NewEvent::new(
        EventKind::WorkspaceProvisioning,
        id,
        provisioning_payload(&new.name, new.tier, &new.runtime, new.parent_id, ex, ey),
    ))?;
    if let Some(canvas) = &canvas {
        layout::write_moves(tx, canvas)?;
    }
    Ok(id)
}

/// The position a WORKSPACE_PROVISIONING event carries: absolute for a root; for a child,
/// relative to its parent's stored (absolute) position, the convention of the reference
/// platform, whose canvas nests a child it learns of live inside its parent's coordinate space.
/// `GET /workspaces` keeps absolute positions.
fn event_position(
    tx: &mut Tx<'_>,
    parent_id: Option<Uuid>,
    x: f64,
    y: f64,
) -> AppResult<(f64, f64)> {
    let Some(parent) = parent_id else {
        return Ok((x, y));
    };
    let origin = ws::find_layout(tx.conn(), parent)?.map_or((0.0, 0.0), |l| (l.x, l.y));
    Ok((x - origin.0, y - origin.1))
}

fn provisioning_payload(
    name: &str,
    tier: i32,
    runtime: &Option<String>,
    parent_id: Option<Uuid>,
    x: f64,
    y: f64,
) -> Value {
    json!({
        "name": name,
        "tier": tier,
        "runtime": runtime,
        "parent_id": parent_id,
        "x": json_number(x),
        "y": json_number(y),
    })
}

/// A parsed PATCH: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Default)]
pub struct WorkspacePatch {
    /// A new name.
    pub name: Option<WorkspaceName>,
    /// A new role, or `Some(None)` to clear it.
    pub role: Option<Option<WorkspaceRole>>,
    /// A new tier.
    pub tier: Option<Tier>,
    /// A new runtime, or `Some(None)` to clear it.
    pub runtime: Option<Option<RuntimeName>>,
    /// A new parent, or `Some(None)` to make it a root.
    pub parent_id: Option<Option<Uuid>>,
    /// A new position on the canvas (px).
    pub position: Option<(f64, f64)>,
    /// Whether its children are folded away on the canvas.
    pub collapsed: Option<bool>,
}

/// Refuses the command with 412 unless `if_match` holds for the row's version. Callers hold
/// the stream lock, under which every version bump happens, so the version compared here is the
/// one the command's own changes build on: compare and write are atomic.
fn check_if_match(
    tx: &mut Tx<'_>,
    row: &WorkspaceRow,
    if_match: Option<&IfMatch>,
) -> AppResult<()> {
    match if_match {
        Some(condition) if !condition.holds(row.version) => {
            let current = ws::find(tx.conn(), row.id.0)?;
            Err(AppError::PreconditionFailed {
                version: row.version,
                current: serde_json::to_value(current).map_err(|e| AppError::Internal(e.into()))?,
            })
        }
        _ => Ok(()),
    }
}

/// Applies a PATCH and returns the workspace's version after it (unchanged when nothing
/// changed). With `if_match`, only if it holds for the current version (else 412); without
/// it, the last writer wins.
pub fn patch(
    tx: &mut Tx<'_>,
    id: Uuid,
    patch: WorkspacePatch,
    if_match: Option<IfMatch>,
) -> AppResult<i64> {
    tx.lock_stream()?;
    let row = ws::find_live_row(tx.conn(), id)?.ok_or_else(AppError::workspace_not_found)?;
    check_if_match(tx, &row, if_match.as_ref())?;
    let now = Utc::now();

    // Description: only fields that actually change are written and reported.
    let mut changes = DescriptionChanges::default();
    let mut changed = serde_json::Map::new();
    if let Some(name) = patch.name.map(WorkspaceName::into_string) {
        if name != row.name {
            changed.insert("name".into(), json!(name));
            changes.name = Some(name);
        }
    }
    if let Some(role) = patch.role.map(|r| r.map(WorkspaceRole::into_string)) {
        if role != row.role {
            changed.insert("role".into(), json!(role));
            changes.role = Some(role);
        }
    }
    if let Some(tier) = patch.tier.map(Tier::get) {
        if tier != row.tier {
            changed.insert("tier".into(), json!(tier));
            changes.tier = Some(tier);
        }
    }
    if let Some(runtime) = patch.runtime.map(|r| r.map(RuntimeName::into_string)) {
        if runtime != row.runtime {
            changed.insert("runtime".into(), json!(runtime));
            changes.runtime = Some(runtime);
        }
    }
    if !changed.is_empty() {
        ws::update_description(tx.conn(), id, changes, now)?;
        tx.append(NewEvent::new(
            EventKind::WorkspaceUpdated,
            id,
            Value::Object(changed),
        ))?;
    }

    // Whether the workspace was placed in a new parent, its layout then written and announced.
    let mut placed = false;
    if let Some(new_parent) = patch.parent_id {
        let old_parent = row.parent();
        if new_parent != old_parent {
            if let Some(parent) = new_parent {
                ws::find_live_row(tx.conn(), parent)?.ok_or_else(parent_not_found)?;
                let parents = ws::parent_map(tx.conn())?;
                if parents.would_cycle(id, parent) {
                    return Err(AppError::Conflict(
                        "cannot move a workspace under itself or one of its descendants".into(),
                    ));
                }
                if parents.too_deep_under(parent, Some(id)) {
                    return Err(too_deep());
                }
            }
            // Without a position, the workspace (and its subtree) moves into its new
            // parent's area beside its siblings; loaded before the parent changes.
            let mut canvas = match patch.position {
                Some(_) => None,
                None => Some(layout::load_canvas(tx)?),
            };
            ws::set_parent(tx.conn(), id, new_parent, now)?;
            tx.append(NewEvent::new(
                EventKind::WorkspaceMoved,
                id,
                json!({ "old_parent_id": old_parent, "new_parent_id": new_parent }),
            ))?;
            if let Some(canvas) = canvas.as_mut() {
                // A collapse in the same PATCH is placed as such, and announced with the move:
                // one WORKSPACE_LAYOUT_CHANGED for the workspace, not two.
                if let Some(collapsed) = patch.collapsed {
                    canvas.set_collapsed(id, collapsed);
                }
                canvas.reparent(id, new_parent);
                placed = layout::write_moves(tx, canvas)?
                    .iter()
                    .any(|moved| moved.id == id);
            }
        }
    }

    // Expanded where it is: its children's areas come back, and neighbours in the way make
    // room (their WORKSPACE_LAYOUT_CHANGED in this commit), as for placement.
    if patch.collapsed == Some(false)
        && patch.position.is_none()
        && !placed
        && ws::find_layout(tx.conn(), id)?.is_some_and(|l| l.collapsed)
    {
        let mut canvas = layout::load_canvas(tx)?;
        canvas.expand(id);
        layout::write_moves(tx, &canvas)?;
    }

    if patch.position.is_some() || (patch.collapsed.is_some() && !placed) {
        let current = ws::find_layout(tx.conn(), id)?.unwrap_or(LayoutRow {
            x: 0.0,
            y: 0.0,
            collapsed: false,
        });
        let (x, y) = patch.position.unwrap_or((current.x, current.y));
        let layout = LayoutRow {
            x,
            y,
            collapsed: patch.collapsed.unwrap_or(current.collapsed),
        };
        ws::save_layout(tx.conn(), id, layout)?;
        tx.append(NewEvent::new(
            EventKind::WorkspaceLayoutChanged,
            id,
            layout::layout_changed_payload(layout),
        ))?;
    }
    Ok(ws::version(tx.conn(), id)?.unwrap_or(row.version))
}

/// What a removal removed.
pub struct Removal {
    /// Every workspace removed, root first.
    pub removed: Vec<Uuid>,
}

impl Removal {
    /// How many descendants went with the workspace.
    pub fn cascade_deleted(&self) -> usize {
        self.removed.len().saturating_sub(1)
    }
}

/// Removes a workspace (and, `confirmed`, its descendants). With `if_match`, only if it holds
/// for the workspace's current version (else 412); descendants are not compared.
pub fn delete(
    tx: &mut Tx<'_>,
    id: Uuid,
    confirmed: bool,
    if_match: Option<IfMatch>,
) -> AppResult<Removal> {
    tx.lock_stream()?;
    let row = ws::find_live_row(tx.conn(), id)?.ok_or_else(AppError::workspace_not_found)?;
    check_if_match(tx, &row, if_match.as_ref())?;
    let children = ws::live_children(tx.conn(), id)?;
    if !children.is_empty() && !confirmed {
        let listed: Vec<Value> = children
            .iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect();
        return Err(AppError::ConflictWith(json!({
                "status": "confirmation_required",
                "error": "workspace has children; repeat with ?confirm=true to delete them too",
                "children": listed,
                "children_count": children.len(),
        })));
    }
    let subtree = ws::live_subtree(tx.conn(), id)?;
    let now = Utc::now();
    let cascade_deleted = subtree.len() - 1;
    // Deepest first, so no event ever describes a child of something already gone; the root's
    // event comes last and carries the count.
    for row in subtree.iter().rev() {
        let ws_id = row.id.0;
        ws::set_status(tx.conn(), ws_id, WorkspaceStatus::Removed, now)?;
        ws::delete_layout(tx.conn(), ws_id)?;
        tokens::revoke_all(tx.conn(), ws_id, now)?;
        let payload = if ws_id == id {
            json!({ "cascade_deleted": cascade_deleted })
        } else {
            json!({})
        };
        tx.append(NewEvent::new(EventKind::WorkspaceRemoved, ws_id, payload))?;
    }
    Ok(Removal {
        removed: subtree.iter().map(|r| r.id.0).collect(),
    })
}

/// Pauses a live workspace and its live descendants (WORKSPACE_PAUSED each); returns how many
/// changed (those already paused are left). 404 for a workspace that is not live.
pub fn pause(tx: &mut Tx<'_>, id: Uuid) -> AppResult<usize> {
    tx.lock_stream()?;
    ws::find_live_row(tx.conn(), id)?.ok_or_else(AppError::workspace_not_found)?;
    let now = Utc::now();
    let mut paused = 0;
    for row in ws::live_subtree(tx.conn(), id)? {
        if row.status() == WorkspaceStatus::Paused {
            continue;
        }
        ws::set_status(tx.conn(), row.id.0, WorkspaceStatus::Paused, now)?;
        tx.append(NewEvent::new(
            EventKind::WorkspacePaused,
            row.id.0,
            json!({ "name": row.name }),
        ))?;
        paused += 1;
    }
    Ok(paused)
}

/// Resumes the paused workspaces of a live subtree: they provision again
/// (WORKSPACE_PROVISIONING each); returns how many. 404 for a workspace that is not live.
pub fn resume(tx: &mut Tx<'_>, id: Uuid) -> AppResult<usize> {
    tx.lock_stream()?;
    ws::find_live_row(tx.conn(), id)?.ok_or_else(AppError::workspace_not_found)?;
    let now = Utc::now();
    let mut resumed = 0;
    for row in ws::live_subtree(tx.conn(), id)? {
        if row.status() != WorkspaceStatus::Paused {
            continue;
        }
        ws::set_status(tx.conn(), row.id.0, WorkspaceStatus::Provisioning, now)?;
        let layout = ws::find_layout(tx.conn(), row.id.0)?.unwrap_or(LayoutRow {
            x: 0.0,
            y: 0.0,
            collapsed: false,
        });
        let (x, y) = event_position(tx, row.parent(), layout.x, layout.y)?;
        tx.append(NewEvent::new(
            EventKind::WorkspaceProvisioning,
            row.id.0,
            provisioning_payload(&row.name, row.tier, &row.runtime, row.parent(), x, y),
        ))?;
        resumed += 1;
    }
    Ok(resumed)
}

/// The live workspace row or 404 (for commands in other modules).
pub fn require_live(tx: &mut Tx<'_>, id: Uuid) -> AppResult<WorkspaceRow> {
    crate::queries::workspaces::live_row(tx.conn(), id)
}
