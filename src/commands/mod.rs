//! Commands: domain rules applied in one write transaction that changes the projection and
//! appends the events describing the change. Each takes parsed input (the boundary already
//! validated it) and runs inside `AppState::execute`, which publishes what committed.

#![warn(missing_docs)]

pub mod a2a;
pub mod activity;
pub mod agents;
pub mod approvals;
pub mod canvas;
pub mod keys;
pub mod layout;
pub mod registry;
pub mod secrets;
pub mod workspaces;
