//! Canvas reads.

use crate::error::AppResult;
pub use crate::store::canvas::Viewport;
use crate::store::{canvas, DbConnection};

/// The shared viewport (the default, origin at zoom 1, until someone saves one).
pub fn viewport(conn: &mut DbConnection) -> AppResult<Viewport> {
    Ok(canvas::viewport(conn)?)
}
