//! Retention: activity rows older than ACTIVITY_RETENTION_DAYS, and live events older than
//! LIVE_EVENTS_RETENTION (keeping at least the newest 10,000), deleted in batches by the one
//! instance holding the `retention` lease, with Idempotency-Keys older than
//! `IDEMPOTENCY_KEY_TTL` (24 h). `structure_events` are never touched.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::leases::Lease;
use crate::app::AppState;
use crate::http::idempotency::IDEMPOTENCY_KEY_TTL;
use crate::store::{activity, events as stream, idempotency, Store, StoreError};

/// Rows deleted per statement (and per blocking call where the job loops), so a large
/// backlog never holds a connection or a lock for long.
pub const DELETE_BATCH: i64 = 1000;
/// Live events kept however old they are, so a client that was briefly away can still resume
/// from the stream on a quiet deployment.
pub const LIVE_EVENTS_KEEP_NEWEST: i64 = 10_000;
/// live_events are pruned more often than activity: the window is minutes, not days.
const LIVE_EVENTS_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Rows deleted by one retention pass, per table (logged when not all zero).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// `activity` rows older than the activity retention (0 when activity was not due).
    pub activity_deleted: usize,
    /// `live_events` rows older than the live-events retention.
    pub live_events_deleted: usize,
    /// Stored Idempotency-Key answers older than `IDEMPOTENCY_KEY_TTL`.
    pub idempotency_keys_deleted: usize,
}

/// The retention loop: every 60 s it takes or renews the `retention` lease (TTL 180 s) and,
/// while holding it, runs [`run_once`], including activity only once per
/// `ACTIVITY_CLEANUP_INTERVAL_HOURS` (the first pass at start-up). Failures are logged and
/// retried next tick; returns when `shutdown` changes, releasing the lease.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let lease_ttl = LIVE_EVENTS_PRUNE_INTERVAL * 3;
    let lease = Lease::new("retention", &state.config.instance_id, lease_ttl);
    let activity_every = state.config.activity_cleanup_interval;
    let mut last_activity_run: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(LIVE_EVENTS_PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                lease.release(&state.store).await;
                return;
            }
        }
        match lease.acquire(&state.store).await {
            Ok(Some(_token)) => {}
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "retention lease check failed");
                continue;
            }
        }
        let activity_due = last_activity_run.is_none_or(|t| t.elapsed() >= activity_every);
        let retention = if activity_due {
            Some(state.config.activity_retention)
        } else {
            None
        };
        match run_once(&state.store, retention, state.config.live_events_retention).await {
            Ok(report) => {
                if activity_due {
                    last_activity_run = Some(tokio::time::Instant::now());
                }
                if report != RetentionReport::default() {
                    tracing::info!(
                        activity_deleted = report.activity_deleted,
                        live_events_deleted = report.live_events_deleted,
                        idempotency_keys_deleted = report.idempotency_keys_deleted,
                        "retention pass"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
    }
}

/// One retention pass. `activity_retention: None` skips activity (not due yet);
/// `live_events_retention` is the age past which live events go (keeping the newest
/// [`LIVE_EVENTS_KEEP_NEWEST`]). Errors: the first store failure; batches already deleted stay
/// deleted.
pub async fn run_once(
    store: &Store,
    activity_retention: Option<Duration>,
    live_events_retention: Duration,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    if let Some(retention) = activity_retention {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(7));
        // One batch per blocking call: a large backlog never holds a connection for long.
        loop {
            let deleted = store
                .run(move |c| {
                    activity::delete_older_than(c, cutoff, DELETE_BATCH).map_err(StoreError::from)
                })
                .await?;
            report.activity_deleted += deleted;
            if deleted < DELETE_BATCH as usize {
                break;
            }
        }
    }
    let cutoff = Utc::now()
        - chrono::Duration::from_std(live_events_retention)
            .unwrap_or(chrono::Duration::minutes(15));
    report.live_events_deleted = store
        .run(move |c| {
            stream::prune_live_events(c, cutoff, LIVE_EVENTS_KEEP_NEWEST, DELETE_BATCH)
                .map_err(StoreError::from)
        })
        .await?;
    report.idempotency_keys_deleted = prune_idempotency_keys(store, Utc::now()).await?;
    Ok(report)
}

/// Deletes Idempotency-Keys created more than `IDEMPOTENCY_KEY_TTL` before `now`, one batch
/// per blocking call; returns how many went.
pub async fn prune_idempotency_keys(
    store: &Store,
    now: chrono::DateTime<Utc>,
) -> Result<usize, StoreError> {
    let cutoff =
        now - chrono::Duration::from_std(IDEMPOTENCY_KEY_TTL).unwrap_or(chrono::Duration::days(1));
    let mut total = 0;
    loop {
        let deleted = store
            .run(move |c| {
                idempotency::delete_older_than(c, cutoff, DELETE_BATCH).map_err(StoreError::from)
            })
            .await?;
        total += deleted;
        if deleted < DELETE_BATCH as usize {
            return Ok(total);
        }
    }
}
