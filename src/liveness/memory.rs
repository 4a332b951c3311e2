//! In-process deadlines for embedded mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Expirations, LivenessStore};

/// How often deadlines are checked: the granularity of an in-process expiry.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Deadlines in a map, checked every 100 ms (`CHECK_INTERVAL`) by a task that holds only a weak
/// reference (it ends when the store is dropped or nobody reads the expirations).
pub struct MemoryLiveness {
    deadlines: Mutex<HashMap<Uuid, Instant>>,
}

impl MemoryLiveness {
    /// Starts the checking task (on the current tokio runtime) and returns the store with the
    /// receiver of its expirations.
    pub fn start() -> (Arc<MemoryLiveness>, Expirations) {
        let liveness = Arc::new(MemoryLiveness {
            deadlines: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let weak = Arc::downgrade(&liveness);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_INTERVAL);
            loop {
                tick.tick().await;
                let Some(liveness) = weak.upgrade() else {
                    return;
                };
                let now = Instant::now();
                let expired: Vec<Uuid> = {
                    let mut deadlines =
                        liveness.deadlines.lock().unwrap_or_else(|p| p.into_inner());
                    let expired: Vec<Uuid> = deadlines
                        .iter()
                        .filter(|(_, d)| **d <= now)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in &expired {
                        deadlines.remove(id);
                    }
                    expired
                };
                for id in expired {
                    if tx.send(id).is_err() {
                        return;
                    }
                }
            }
        });
        (liveness, rx)
    }

    /// [`LivenessStore::arm`], without the future: it cannot fail or wait.
    pub fn arm_now(&self, id: Uuid, ttl: Duration) {
        self.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Instant::now() + ttl);
    }

    /// [`LivenessStore::disarm`], without the future.
    pub fn disarm_now(&self, id: Uuid) {
        self.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

impl LivenessStore for MemoryLiveness {
    async fn arm(&self, id: Uuid, ttl: Duration) -> anyhow::Result<()> {
        self.arm_now(id, ttl);
        Ok(())
    }

    async fn disarm(&self, id: Uuid) -> anyhow::Result<()> {
        self.disarm_now(id);
        Ok(())
    }
}
