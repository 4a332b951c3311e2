//! Gives the memory of closed sockets back to the operating system.
//!
//! A socket's buffers and task are small heap blocks (glibc's malloc, the Rust default on
//! Linux). When thousands of sockets close, their blocks are freed but glibc keeps the pages:
//! they sit between blocks still in use, in the arenas of the worker threads that allocated
//! them, and glibc returns memory on its own only from the top of an arena. Measured before
//! this module (issue 16): 5,000 idle sockets took RSS from ~30 MB to ~105 MB, and 30 s after
//! they all closed it was still ~105 MB. `malloc_trim(0)` walks every arena and hands each free
//! page back (`MADV_DONTNEED`), wherever it lies.
//!
//! It is called only after a wave of closes has ended: when the instance has at least
//! [`TRIM_AFTER_CLOSED`] fewer sockets than at its peak since the last trim, and none closed
//! during the last [`SETTLED_CHECKS`] checks (a closed socket's connection lingers for the
//! disconnect timeout before its buffers are freed). A trim takes a few milliseconds on a
//! blocking thread; at most one runs per check.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Hub;

/// How often the socket count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Sockets that must have closed since the peak before a trim is worth its cost.
pub const TRIM_AFTER_CLOSED: usize = 256;
/// Checks in a row without a close before trimming.
const SETTLED_CHECKS: u32 = 2;

/// Watches `hub`'s socket count and trims the allocator after a wave of closes, until
/// `shutdown` changes.
pub async fn run(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waves = Waves::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if waves.observe(hub.session_count()) {
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

/// The decision, apart from the clock and the allocator.
#[derive(Default, Debug)]
struct Waves {
    /// Most sockets seen since the last trim.
    peak: usize,
    /// The count at the previous check.
    last: usize,
    /// Checks in a row without a close.
    settled: u32,
}

impl Waves {
    /// Takes the current socket count; returns whether to trim now.
    fn observe(&mut self, sockets: usize) -> bool {
        let closing = sockets < self.last;
        self.last = sockets;
        self.peak = self.peak.max(sockets);
        if closing {
            self.settled = 0;
            return false;
        }
        self.settled = self.settled.saturating_add(1);
        if self.settled >= SETTLED_CHECKS && self.peak - sockets >= TRIM_AFTER_CLOSED {
            self.peak = sockets;
            return true;
        }
        false
    }
}

/// Returns every free page of every malloc arena to the operating system.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only walks and trims the allocator's own free lists, under its
        // arena locks; it has no preconditions.
        let released = unsafe { libc::malloc_trim(0) };
        metrics::counter!("canopy_malloc_trims_total").increment(1);
        tracing::debug!(
            released = released == 1,
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "freed memory of closed sockets returned to the system"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_a_wave_of_closes_has_settled() {
        let mut w = Waves::default();
        // Sockets open: nothing to give back.
        for n in [0, 1000, 3000, 5000, 5000, 5000] {
            assert!(!w.observe(n), "{n} open");
        }
        // Closing: not while it goes on.
        for n in [4000, 2000, 100, 0] {
            assert!(!w.observe(n), "still closing at {n}");
        }
        assert!(!w.observe(0), "one quiet check is not enough");
        assert!(w.observe(0), "settled: trim");
        assert!(!w.observe(0), "once per wave");
        assert!(!w.observe(0));
    }

    #[test]
    fn a_few_closes_do_not_trim() {
        let mut w = Waves::default();
        for n in [300, 300, 100, 100, 100, 100] {
            assert!(!w.observe(n));
        }
        // …but they add up to a wave once it has settled: 300 → 40 is 260 closed.
        assert!(!w.observe(40), "closing");
        assert!(!w.observe(40), "one quiet check");
        assert!(w.observe(40), "settled: trim");
    }
}
