//! State shared by the request tasks and the socket tasks: when each correlated event was sent,
//! the measurement window, each socket's progress, and the delivered-latency histograms.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to this (a delivery later than this is clamped).
pub const MAX_LATENCY_MICROS: u64 = 120_000_000;
/// Histogram shards: socket tasks flush batches into shard `socket % SHARDS`, so two runtime
/// threads rarely wait on the same lock.
const SHARDS: usize = 16;
/// `progress` of a socket that closed: the tail wait does not wait for it.
pub const CLOSED: i64 = i64::MAX;

pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("valid histogram bounds")
}

pub struct Shared {
    pub start: Instant,
    /// Counter → nanoseconds since `start` + 1 when its request was sent (0: not sent).
    sent_at: Box<[AtomicU64]>,
    measuring: AtomicBool,
    /// Counters in `[measure_from, measure_until)` were sent inside the measurement window.
    measure_from: AtomicU64,
    measure_until: AtomicU64,
    latency: Vec<Mutex<Histogram<u64>>>,
    /// Each socket's newest seq (CLOSED once it closed).
    pub progress: Box<[AtomicI64]>,
    /// The counter of the final marker drag (0: none yet), and the seq it was delivered at.
    marker_counter: AtomicU64,
    marker_seq: AtomicI64,
}

impl Shared {
    pub fn new(counters: u64, sockets: usize) -> Shared {
        Shared {
            start: Instant::now(),
            sent_at: (0..=counters).map(|_| AtomicU64::new(0)).collect(),
            measuring: AtomicBool::new(false),
            measure_from: AtomicU64::new(u64::MAX),
            measure_until: AtomicU64::new(u64::MAX),
            latency: (0..SHARDS)
                .map(|_| Mutex::new(latency_histogram()))
                .collect(),
            progress: (0..sockets).map(|_| AtomicI64::new(0)).collect(),
            marker_counter: AtomicU64::new(0),
            marker_seq: AtomicI64::new(0),
        }
    }

    pub fn mark_sent(&self, counter: u64, at: Instant) {
        if let Some(slot) = self.sent_at.get(counter as usize) {
            let nanos = at.saturating_duration_since(self.start).as_nanos() as u64;
            slot.store(nanos + 1, Ordering::Release);
        }
    }

    /// Microseconds from sending `counter` to `now`, if it was sent inside the window.
    pub fn latency_micros(&self, counter: u64, now: Instant) -> Option<u64> {
        if counter < self.measure_from.load(Ordering::Relaxed)
            || counter >= self.measure_until.load(Ordering::Relaxed)
        {
            return None;
        }
        let sent = self.sent_at.get(counter as usize)?.load(Ordering::Acquire);
        if sent == 0 {
            return None;
        }
        let now = now.saturating_duration_since(self.start).as_nanos() as u64;
        Some(now.saturating_sub(sent - 1) / 1000)
    }

    pub fn begin_measuring(&self, first_counter: u64) {
        self.measure_from.store(first_counter, Ordering::Relaxed);
        self.measuring.store(true, Ordering::Release);
    }

    pub fn end_measuring(&self, end_counter: u64) {
        self.measure_until.store(end_counter, Ordering::Relaxed);
        self.measuring.store(false, Ordering::Release);
    }

    pub fn is_measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    pub fn record_latencies(&self, socket: usize, micros: &[u64]) {
        if micros.is_empty() {
            return;
        }
        let mut shard = self.latency[socket % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for &m in micros {
            shard.saturating_record(m.clamp(1, MAX_LATENCY_MICROS));
        }
    }

    pub fn merged_latency(&self) -> Histogram<u64> {
        let mut all = latency_histogram();
        for shard in &self.latency {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            all.add(&*shard).expect("same bounds");
        }
        all
    }

    pub fn set_marker(&self, counter: u64) {
        self.marker_counter.store(counter, Ordering::Release);
    }

    /// Called by sockets for each own event: records the marker's seq the first time.
    pub fn saw_counter(&self, counter: u64, seq: i64) {
        if counter == self.marker_counter.load(Ordering::Acquire) {
            let _ = self
                .marker_seq
                .compare_exchange(0, seq, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    pub fn marker_seq(&self) -> Option<i64> {
        Some(self.marker_seq.load(Ordering::Acquire)).filter(|s| *s > 0)
    }

    /// The newest seq any open socket has reached.
    pub fn max_progress(&self) -> i64 {
        self.progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .filter(|p| *p != CLOSED)
            .max()
            .unwrap_or(0)
    }

    /// Open sockets that have not reached `seq` yet.
    pub fn behind(&self, seq: i64) -> usize {
        self.progress
            .iter()
            .filter(|p| p.load(Ordering::Relaxed) < seq)
            .count()
    }
}
