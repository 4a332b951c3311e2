//! State shared by the request tasks and the socket tasks: when each correlated event was sent,
//! the measurement window, each socket's progress, the delivered-latency histograms, and the
//! drag-preview lane ([`Previews`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
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

/// Latency histograms (microseconds) that many socket tasks record into at once.
struct Shards(Vec<Mutex<Histogram<u64>>>);

impl Shards {
    fn new() -> Shards {
        Shards(
            (0..SHARDS)
                .map(|_| Mutex::new(latency_histogram()))
                .collect(),
        )
    }

    fn record(&self, socket: usize, micros: &[u64]) {
        if micros.is_empty() {
            return;
        }
        let mut shard = self.0[socket % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for &m in micros {
            shard.saturating_record(m.clamp(1, MAX_LATENCY_MICROS));
        }
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = latency_histogram();
        for shard in &self.0 {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            all.add(&*shard).expect("same bounds");
        }
        all
    }
}

pub struct Shared {
    pub start: Instant,
    /// Counter → nanoseconds since `start` + 1 when its request was sent (0: not sent).
    sent_at: Box<[AtomicU64]>,
    measuring: AtomicBool,
    /// Counters in `[measure_from, measure_until)` were sent inside the measurement window.
    measure_from: AtomicU64,
    measure_until: AtomicU64,
    latency: Shards,
    /// The drag-preview lane (empty when the run has no draggers).
    pub previews: Previews,
    /// Each socket's newest seq (CLOSED once it closed).
    pub progress: Box<[AtomicI64]>,
    /// The counter of the final marker drag (0: none yet), and the seq it was delivered at.
    marker_counter: AtomicU64,
    marker_seq: AtomicI64,
}

impl Shared {
    /// `counters`: correlated events the run can send; `preview_counters`: drag frames its
    /// draggers can send.
    pub fn new(counters: u64, sockets: usize, preview_counters: u64) -> Shared {
        Shared {
            start: Instant::now(),
            sent_at: (0..=counters).map(|_| AtomicU64::new(0)).collect(),
            measuring: AtomicBool::new(false),
            measure_from: AtomicU64::new(u64::MAX),
            measure_until: AtomicU64::new(u64::MAX),
            latency: Shards::new(),
            previews: Previews::new(preview_counters),
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
        self.latency.record(socket, micros);
    }

    pub fn merged_latency(&self) -> Histogram<u64> {
        self.latency.merged()
    }

    /// Microseconds from a dragger sending preview `counter` to `now`, if it was sent inside the
    /// window; counts the delivery.
    pub fn preview_latency_micros(&self, counter: u64, now: Instant) -> Option<u64> {
        let sent = self
            .previews
            .sent_at
            .get(counter as usize)?
            .load(Ordering::Acquire);
        if sent == 0 {
            return None;
        }
        self.previews.received_by[counter as usize].fetch_add(1, Ordering::Relaxed);
        let now = now.saturating_duration_since(self.start).as_nanos() as u64;
        Some(now.saturating_sub(sent - 1) / 1000)
    }

    /// A dragger is about to send a drag frame: its counter (`None` once the lane's counters
    /// are used up), its send time recorded when the window is open.
    pub fn next_preview(&self, at: Instant) -> Option<u64> {
        let counter = self.previews.next.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = self.previews.sent_at.get(counter as usize)?;
        if self.is_measuring() {
            let nanos = at.saturating_duration_since(self.start).as_nanos() as u64;
            slot.store(nanos + 1, Ordering::Release);
        }
        Some(counter)
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

/// The drag-preview lane of a run (issue 15 item 4). Draggers send drag frames on their own
/// sockets with a counter in `x`; every other canvas times the preview (a DRAG_PREVIEWS entry) that carries it
/// back. Previews are volatile: the server keeps only the latest position per node per tick
/// and drops previews for a socket that falls behind, so nothing here fails a run.
pub struct Previews {
    /// Counter → nanoseconds since `Shared::start` + 1 when its frame was sent inside the
    /// measurement window (0: not sent, or sent outside it).
    sent_at: Box<[AtomicU64]>,
    /// Counter → canvases that received its preview.
    received_by: Box<[AtomicU32]>,
    /// The newest counter handed out.
    next: AtomicU64,
    /// Whether draggers send (from the start of the load to the end of the window).
    dragging: AtomicBool,
    latency: Shards,
    /// Drag frames the server answered with an error frame: its text → how many.
    refused: Mutex<BTreeMap<String, u64>>,
}

/// What the preview lane saw over the measurement window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreviewCounts {
    /// Drag frames sent inside the window.
    pub sent: u64,
    /// Of those, the ones at least one canvas received as a preview (the server sends
    /// only the latest position per node per tick, so the rest were superseded).
    pub published: u64,
    /// Previews received, over every measuring canvas.
    pub delivered: u64,
}

impl Previews {
    fn new(counters: u64) -> Previews {
        Previews {
            sent_at: (0..=counters).map(|_| AtomicU64::new(0)).collect(),
            received_by: (0..=counters).map(|_| AtomicU32::new(0)).collect(),
            next: AtomicU64::new(0),
            dragging: AtomicBool::new(false),
            latency: Shards::new(),
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn set_dragging(&self, on: bool) {
        self.dragging.store(on, Ordering::Release);
    }

    pub fn is_dragging(&self) -> bool {
        self.dragging.load(Ordering::Acquire)
    }

    pub fn record_latencies(&self, socket: usize, micros: &[u64]) {
        self.latency.record(socket, micros);
    }

    pub fn merged_latency(&self) -> Histogram<u64> {
        self.latency.merged()
    }

    /// A dragger's frame was answered with an error frame (`reason`: its text).
    pub fn refused(&self, reason: String) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Refusals by reason.
    pub fn refusals(&self) -> BTreeMap<String, u64> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sent, published and delivered over the window (read once the sockets have stopped).
    pub fn counts(&self) -> PreviewCounts {
        let mut counts = PreviewCounts::default();
        for (sent, received) in self.sent_at.iter().zip(self.received_by.iter()) {
            if sent.load(Ordering::Acquire) == 0 {
                continue;
            }
            let received = received.load(Ordering::Relaxed) as u64;
            counts.sent += 1;
            counts.published += u64::from(received > 0);
            counts.delivered += received;
        }
        counts
    }
}
