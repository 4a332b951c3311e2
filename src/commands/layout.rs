//! Placement and Arrange against the database (README "Placement and Arrange"): the canvas is
//! loaded once per command, the rules of `domain::layout` run over it in memory, and every
//! workspace that moved gets its layout row and its WORKSPACE_LAYOUT_CHANGED in the command's
//! transaction.

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::events::{json_number, serialize_number, EventKind};
use crate::domain::hierarchy::MAX_HIERARCHY_DEPTH;
use crate::domain::layout::{Canvas, Node, TooDeep};
use crate::error::{AppError, AppResult};
use crate::store::workspaces::{self as ws, LayoutRow};
use crate::store::{NewEvent, Tx};

/// A workspace an operation moved, at its new absolute position (px).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Moved {
    /// The workspace.
    pub id: Uuid,
    #[serde(serialize_with = "serialize_number")]
    /// Its new absolute x (px).
    pub x: f64,
    #[serde(serialize_with = "serialize_number")]
    /// Its new absolute y (px).
    pub y: f64,
}

/// The payload of WORKSPACE_LAYOUT_CHANGED (CONTRACT.md "Events").
pub fn layout_changed_payload(layout: LayoutRow) -> Value {
    json!({ "x": json_number(layout.x), "y": json_number(layout.y), "collapsed": layout.collapsed })
}

/// Every live workspace and its layout, in one query; a workspace without a layout row is at
/// (0, 0), expanded, as `GET /workspaces` shows it.
pub fn load_canvas(tx: &mut Tx<'_>) -> AppResult<Canvas> {
    let rows = ws::canvas_nodes(tx.conn())?;
    Ok(Canvas::new(rows.into_iter().map(|(id, parent, layout)| {
        let layout = layout.unwrap_or(LayoutRow {
            x: 0.0,
            y: 0.0,
            collapsed: false,
        });
        (
            id,
            Node {
                parent,
                x: layout.x,
                y: layout.y,
                collapsed: layout.collapsed,
            },
        )
    })))
}

/// Stores the new position of every workspace of `canvas` that moved since it was loaded and
/// appends its WORKSPACE_LAYOUT_CHANGED, oldest workspace first.
pub fn write_moves(tx: &mut Tx<'_>, canvas: &Canvas) -> AppResult<Vec<Moved>> {
    let moved = canvas.moved();
    let mut out = Vec::with_capacity(moved.len());
    for (id, x, y) in moved {
        let collapsed = canvas.node(id).is_some_and(|n| n.collapsed);
        let layout = LayoutRow { x, y, collapsed };
        ws::save_layout(tx.conn(), id, layout)?;
        tx.append(NewEvent::new(
            EventKind::WorkspaceLayoutChanged,
            id,
            layout_changed_payload(layout),
        ))?;
        out.push(Moved { id, x, y });
    }
    Ok(out)
}

/// `POST /canvas/arrange`: lays out the tree under `root` (`None`: every tree) as a tidy org
/// chart and makes room around it, in one transaction under the stream lock, so the
/// WORKSPACE_LAYOUT_CHANGED of every moved workspace commits together with contiguous seqs.
/// Returns the moved workspaces (none moved: no event). 404 naming `root_id` when it is not a
/// live workspace; 422 naming `root_id` (the root of the tree) when a tree to lay out is
/// deeper than [`MAX_HIERARCHY_DEPTH`] (rows made before the bound), nothing moved.
pub fn arrange(tx: &mut Tx<'_>, root: Option<Uuid>) -> AppResult<Vec<Moved>> {
    tx.lock_stream()?;
    if let Some(root) = root {
        if ws::find_live_row(tx.conn(), root)?.is_none() {
            return Err(AppError::WithBody {
                status: actix_web::http::StatusCode::NOT_FOUND,
                body: json!({
                    "error": format!("root_id: workspace {root} not found"),
                    "root_id": root,
                }),
            });
        }
    }
    let mut canvas = load_canvas(tx)?;
    if let Err(TooDeep { root, levels }) = canvas.arrange(root) {
        return Err(AppError::WithBody {
            status: actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "error": format!(
                    "root_id: the tree under {root} has {levels} levels, more than the \
                     {MAX_HIERARCHY_DEPTH} Arrange lays out; move part of it up first"
                ),
                "root_id": root,
            }),
        });
    }
    write_moves(tx, &canvas)
}
