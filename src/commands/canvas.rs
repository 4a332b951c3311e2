//! The shared canvas viewport (one row; saving it appends no event).

use chrono::Utc;

use crate::error::AppResult;
use crate::store::canvas::{self, Viewport};
use crate::store::Tx;

/// The viewport is per-canvas view state, not part of the stream: no event.
pub fn save_viewport(tx: &mut Tx<'_>, viewport: Viewport) -> AppResult<()> {
    canvas::save_viewport(tx.conn(), viewport, Utc::now())?;
    Ok(())
}
