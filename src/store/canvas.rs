//! The canvas viewport (one row).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::canvas_viewport;
use super::sql_types::DbTime;
use super::DbConnection;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Viewport {
    pub x: f64,
    pub y: f64,
    pub zoom: f64,
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport {
            x: 0.0,
            y: 0.0,
            zoom: 1.0,
        }
    }
}

pub fn viewport(conn: &mut DbConnection) -> QueryResult<Viewport> {
    Ok(canvas_viewport::table
        .filter(canvas_viewport::id.eq(1))
        .select((
            canvas_viewport::x,
            canvas_viewport::y,
            canvas_viewport::zoom,
        ))
        .first::<(f64, f64, f64)>(conn)
        .optional()?
        .map(|(x, y, zoom)| Viewport { x, y, zoom })
        .unwrap_or_default())
}

/// Update-then-insert inside the caller's write transaction (see `workspaces::save_layout`).
pub fn save_viewport(conn: &mut DbConnection, v: Viewport, now: DateTime<Utc>) -> QueryResult<()> {
    let updated = diesel::update(canvas_viewport::table.filter(canvas_viewport::id.eq(1)))
        .set((
            canvas_viewport::x.eq(v.x),
            canvas_viewport::y.eq(v.y),
            canvas_viewport::zoom.eq(v.zoom),
            canvas_viewport::saved_at.eq(DbTime(now)),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(canvas_viewport::table)
            .values((
                canvas_viewport::id.eq(1),
                canvas_viewport::x.eq(v.x),
                canvas_viewport::y.eq(v.y),
                canvas_viewport::zoom.eq(v.zoom),
                canvas_viewport::saved_at.eq(DbTime(now)),
            ))
            .execute(conn)?;
    }
    Ok(())
}
