//! API key reads.

use crate::error::AppResult;
pub use crate::store::keys::ApiKey;
use crate::store::{keys, DbConnection};

/// Every API key, newest first, without the keys themselves.
pub fn list(conn: &mut DbConnection) -> AppResult<Vec<ApiKey>> {
    Ok(keys::list(conn)?)
}
