//! Queries: the reads `http` answers with. Each is one function over a pooled connection that
//! turns "not there" into the API's error (404) and returns what the response shows; it runs
//! inside the request's one blocking trip (`AppState::read`, or `http::auth::OnBehalf::read`,
//! which checks the caller in the same trip). Nothing here writes; writes are `commands`.

#![warn(missing_docs)]

pub mod activity;
pub mod approvals;
pub mod canvas;
pub mod events;
pub mod keys;
pub mod registry;
pub mod secrets;
pub mod workspaces;
