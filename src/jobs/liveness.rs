//! Liveness transitions, on the one instance holding the `liveness` lease: expirations become
//! offline transitions, and a periodic sweep of the database catches what notifications missed
//! (they are at-most-once) and fails workspaces that never registered.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use super::leases::Lease;
use crate::app::AppState;
use crate::commands::registry;
use crate::error::AppError;
use crate::liveness::Expirations;
use crate::store::workspaces as ws;

/// The liveness loop: every `LIVENESS_SWEEP_INTERVAL_SECONDS` it takes or renews the `liveness`
/// lease (TTL three intervals, at least 5 s) and, while holding it, runs [`sweep`]; in between
/// it turns each workspace id arriving on `expirations` into an offline transition. An
/// instance without the lease drains expirations and ignores them. Failures are logged (the
/// next sweep retries); returns when `shutdown` changes or `expirations` closes.
pub async fn run(
    state: Arc<AppState>,
    mut expirations: Expirations,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = state.config.liveness_sweep_interval;
    let lease = Lease::new(
        "liveness",
        &state.config.instance_id,
        (every * 3).max(Duration::from_secs(5)),
    );
    let mut holding = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                holding = match lease.acquire(&state.store).await {
                    Ok(token) => token.is_some(),
                    Err(e) => {
                        tracing::warn!(error = %e, "liveness lease check failed");
                        false
                    }
                };
                if holding {
                    if let Err(e) = sweep(&state).await {
                        tracing::warn!(error = %e, "liveness sweep failed");
                    }
                }
            }
            expired = expirations.recv() => {
                let Some(id) = expired else { return };
                if holding {
                    if let Err(e) = expire(&state, id).await {
                        tracing::warn!(workspace_id = %id, error = %e, "offline transition failed; the sweep retries");
                    }
                }
            }
            _ = shutdown.changed() => {
                if holding {
                    lease.release(&state.store).await;
                }
                return;
            }
        }
    }
}

/// A deadline passed. The guard requires silence for half the TTL, so a notification that
/// raced a fresh heartbeat (which re-armed the key) changes nothing.
async fn expire(state: &AppState, id: Uuid) -> Result<(), AppError> {
    let silent_since =
        Utc::now() - chrono::Duration::from_std(state.config.liveness_ttl / 2).unwrap_or_default();
    if state
        .execute_as(liveness_actor(), move |tx| {
            registry::mark_offline(tx, id, silent_since)
        })
        .await?
    {
        tracing::info!(workspace_id = %id, "workspace offline (liveness expired)");
    }
    Ok(())
}

/// Events of the liveness sweep and expiry name Canopy's `liveness` job as their actor.
fn liveness_actor() -> crate::app::ActAs {
    crate::app::ActAs::Actor(crate::domain::people::Actor::system("liveness"))
}

/// One database sweep: marks offline every online workspace with no heartbeat within
/// `LIVENESS_TTL_SECONDS`, and fails every workspace still provisioning
/// `PROVISION_TIMEOUT_SECONDS` after creation, each in its own command with its event (actor:
/// the `liveness` system job). Errors: the first store or command failure; transitions already
/// committed stay.
pub async fn sweep(state: &AppState) -> Result<(), AppError> {
    let silent_since =
        Utc::now() - chrono::Duration::from_std(state.config.liveness_ttl).unwrap_or_default();
    for id in state
        .read(move |c| Ok(ws::silent_workspaces(c, silent_since)?))
        .await?
    {
        if state
            .execute_as(liveness_actor(), move |tx| {
                registry::mark_offline(tx, id, silent_since)
            })
            .await?
        {
            tracing::info!(workspace_id = %id, "workspace offline (sweep: no heartbeat within the TTL)");
        }
    }
    let timeout = state.config.provision_timeout;
    let before = Utc::now() - chrono::Duration::from_std(timeout).unwrap_or_default();
    for id in state
        .read(move |c| Ok(ws::stale_provisioning(c, before)?))
        .await?
    {
        if state
            .execute_as(liveness_actor(), move |tx| {
                registry::fail_provisioning(tx, id, before, timeout.as_secs())
            })
            .await?
        {
            tracing::warn!(workspace_id = %id, "workspace failed: never registered");
        }
    }
    Ok(())
}
