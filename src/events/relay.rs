//! The Relay: the only way into the Hub (invariant 3). It delivers seq n only after n-1
//! (invariant 4). Events that arrive ahead of a missing seq wait briefly in `pending`: usually
//! the missing one is a publish that lost a race with the next and arrives within a millisecond.
//! If it has not arrived after `GAP_GRACE` — a lost pub/sub message, an instance that died
//! between commit and publish — the gap is filled by reading `live_events`. Duplicates are
//! dropped, and a head check about once a second catches a lost tail.
//!
//! Filling is always possible: seq is assigned under the stream lock, so when seq n has
//! committed every seq below it has committed too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::backplane::{BackplaneSignal, SignalReceiver};
use crate::realtime::Hub;
use crate::store::{events as stream, LiveEvent, Store, StoreError};

pub const HEAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long events wait behind a missing seq before the gap is read from the database.
pub const GAP_GRACE: Duration = Duration::from_millis(5);
/// More events than this waiting behind a gap: stop waiting and fill now.
const MAX_PENDING: usize = 10_000;
const FILL_BATCH: i64 = 1000;

pub struct Relay {
    store: Store,
    hub: Arc<Hub>,
    delivered: i64,
    /// Events received ahead of `delivered + 1`, by seq.
    pending: BTreeMap<i64, LiveEvent>,
    /// When the current gap was first seen.
    gap_seen_at: Option<Instant>,
}

impl Relay {
    pub fn new(store: Store, hub: Arc<Hub>) -> Relay {
        let delivered = hub.delivered();
        Relay {
            store,
            hub,
            delivered,
            pending: BTreeMap::new(),
            gap_seen_at: None,
        }
    }

    /// Runs until the backplane closes or `shutdown` flips.
    pub async fn run(mut self, mut signals: SignalReceiver, mut shutdown: watch::Receiver<bool>) {
        let mut head_check = tokio::time::interval(HEAD_CHECK_INTERVAL);
        head_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let gap_deadline = self.gap_seen_at.map(|t| t + GAP_GRACE);
            tokio::select! {
                signal = signals.recv() => match signal {
                    Some(BackplaneSignal::Events(events)) => self.accept(events).await,
                    Some(BackplaneSignal::PossibleGap) => self.catch_up().await,
                    // Unsequenced: no ordering, no gap; straight to the sockets.
                    Some(BackplaneSignal::Volatile(batch)) => self.hub.deliver_volatile(&batch),
                    None => return,
                },
                _ = sleep_until_some(gap_deadline) => self.fill_gap().await,
                _ = head_check.tick() => self.catch_up().await,
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn accept(&mut self, events: Vec<LiveEvent>) {
        for event in events {
            if event.seq <= self.delivered || self.pending.contains_key(&event.seq) {
                metrics::counter!("canopy_relay_duplicates_dropped_total").increment(1);
                continue;
            }
            self.pending.insert(event.seq, event);
        }
        self.drain();
        if self.pending.len() > MAX_PENDING {
            self.fill_gap().await;
        }
    }

    /// Delivers the pending events that are next in line, and notes whether a gap remains.
    fn drain(&mut self) {
        let mut ready = Vec::new();
        while let Some(event) = self
            .pending
            .remove(&(self.delivered + 1 + ready.len() as i64))
        {
            ready.push(event);
        }
        self.deliver(&ready);
        self.gap_seen_at = match (self.pending.is_empty(), self.gap_seen_at) {
            (true, _) => None,
            (false, Some(seen)) => Some(seen),
            (false, None) => Some(Instant::now()),
        };
    }

    /// The grace period passed and the gap is still there: read it from the database.
    async fn fill_gap(&mut self) {
        let Some(&first_pending) = self.pending.keys().next() else {
            self.gap_seen_at = None;
            return;
        };
        if let Err(e) = self.fill_until(first_pending - 1).await {
            tracing::warn!(error = %e, missing_from = self.delivered + 1, "gap fill failed; retrying");
            // Try again after another grace period rather than spinning on a failing database.
            self.gap_seen_at = Some(Instant::now());
            return;
        }
        self.drain();
    }

    async fn catch_up(&mut self) {
        let store = self.store.clone();
        let head = match store
            .run(|c| stream::stream_head(c).map_err(StoreError::from))
            .await
        {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(error = %e, "stream head check failed");
                return;
            }
        };
        if head.last_seq > self.delivered {
            if let Err(e) = self.fill_until(head.last_seq).await {
                tracing::warn!(error = %e, "catching up from the database failed");
            }
            self.drain();
        }
    }

    /// Delivers `(delivered, up_to]` from `live_events`; anything pending in that range was
    /// received twice and is dropped.
    async fn fill_until(&mut self, up_to: i64) -> Result<(), StoreError> {
        while self.delivered < up_to {
            let after = self.delivered;
            let batch = self
                .store
                .run(move |c| {
                    stream::live_events_between(c, after, Some(up_to), FILL_BATCH)
                        .map_err(StoreError::from)
                })
                .await?;
            let Some(first) = batch.first() else {
                // Nothing committed in that range (yet): the head check tries again.
                return Ok(());
            };
            metrics::counter!("canopy_relay_gap_fills_total").increment(1);
            if first.seq != after + 1 {
                // Pruned before we could relay it: every session must reload.
                tracing::error!(
                    missing_from = after + 1,
                    resumes_at = first.seq,
                    "relay fell behind the retained stream"
                );
                self.hub.resync_all(
                    "events were pruned before this instance relayed them",
                    first.seq - 1,
                );
                self.delivered = first.seq - 1;
            }
            self.deliver(&batch);
            metrics::counter!("canopy_relay_gap_filled_events_total").increment(batch.len() as u64);
        }
        let delivered = self.delivered;
        let before = self.pending.len();
        self.pending.retain(|seq, _| *seq > delivered);
        let dropped = before - self.pending.len();
        if dropped > 0 {
            metrics::counter!("canopy_relay_duplicates_dropped_total").increment(dropped as u64);
        }
        Ok(())
    }

    /// Hands the hub a run of events that continues the stream (`delivered + 1`, `+ 2`, …):
    /// one call, so each socket gets the run as one queue entry.
    fn deliver(&mut self, events: &[LiveEvent]) {
        let Some(last) = events.last() else {
            return;
        };
        debug_assert!(events
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == self.delivered + 1 + i as i64));
        self.hub.deliver_batch(events);
        self.delivered = last.seq;
        metrics::counter!("canopy_relay_events_relayed_total").increment(events.len() as u64);
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
