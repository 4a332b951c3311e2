//! Singleton background jobs, each guarded by a lease so exactly one instance runs it.

#![warn(missing_docs)]

pub mod approvals;
pub mod leases;
pub mod liveness;
pub mod retention;

use std::sync::Arc;

use tokio::sync::watch;

use crate::app::AppState;
use crate::liveness::Expirations;

/// Starts the retention, approval-expiry and liveness jobs on the current tokio runtime. Every
/// instance runs all three loops; each does its work only while it holds that job's lease.
/// `expirations` feeds the liveness job; when `shutdown` changes, each loop releases its lease
/// (if held) and ends.
pub fn spawn_all(state: Arc<AppState>, expirations: Expirations, shutdown: watch::Receiver<bool>) {
    tokio::spawn(retention::run(Arc::clone(&state), shutdown.clone()));
    tokio::spawn(approvals::run(Arc::clone(&state), shutdown.clone()));
    tokio::spawn(liveness::run(state, expirations, shutdown));
}
