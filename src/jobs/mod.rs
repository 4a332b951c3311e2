//! Singleton background jobs, each guarded by a lease so exactly one instance runs it.

pub mod approvals;
pub mod leases;
pub mod liveness;
pub mod retention;

use std::sync::Arc;

use tokio::sync::watch;

use crate::app::AppState;
use crate::liveness::Expirations;

pub fn spawn_all(state: Arc<AppState>, expirations: Expirations, shutdown: watch::Receiver<bool>) {
    tokio::spawn(retention::run(Arc::clone(&state), shutdown.clone()));
    tokio::spawn(approvals::run(Arc::clone(&state), shutdown.clone()));
    tokio::spawn(liveness::run(state, expirations, shutdown));
}
