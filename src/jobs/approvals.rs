//! Approval expiry: the one instance holding the `approvals` lease denies pending requests
//! whose deadline passed (`decided_by: "expired"`), each with its APPROVAL_DECIDED event.
//! Never a side effect of a read: `GET /approvals/pending` only reads.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::leases::Lease;
use crate::app::AppState;
use crate::commands::approvals as commands;
use crate::error::AppError;
use crate::store::approvals as store;

/// Requests expired per blocking read; the next tick takes the rest.
const EXPIRY_BATCH: i64 = 500;

/// The approval-expiry loop: every `APPROVAL_SWEEP_INTERVAL_SECONDS` it takes or renews the
/// `approvals` lease (TTL three intervals, at least 5 s) and, while holding it, runs
/// [`expire_due`]. Failures are logged and retried on the next tick; returns when `shutdown`
/// changes, releasing the lease if held.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let every = state.config.approval_sweep_interval;
    let lease = Lease::new(
        "approvals",
        &state.config.instance_id,
        (every * 3).max(Duration::from_secs(5)),
    );
    let mut holding = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                if holding {
                    lease.release(&state.store).await;
                }
                return;
            }
        }
        holding = match lease.acquire(&state.store).await {
            Ok(token) => token.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "approvals lease check failed");
                false
            }
        };
        if holding {
            match expire_due(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "approval requests expired"),
                Err(e) => {
                    tracing::warn!(error = %e, "approval expiry failed; the next tick retries")
                }
            }
        }
    }
}

/// Denies every pending request past its deadline; returns how many this call decided (a
/// request decided meanwhile by a person is left as it is).
pub async fn expire_due(state: &AppState) -> Result<usize, AppError> {
    let now = Utc::now();
    let due = state
        .read(move |c| Ok(store::expired_pending(c, now, EXPIRY_BATCH)?))
        .await?;
    let mut expired = 0;
    for id in due {
        if state
            .execute_as(
                crate::app::ActAs::Actor(crate::domain::people::Actor::system("approvals")),
                move |tx| commands::expire(tx, id, Utc::now()),
            )
            .await?
        {
            tracing::info!(approval_id = %id, "approval request expired");
            expired += 1;
        }
    }
    Ok(expired)
}
