//! In-process deadlines for embedded mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::Expirations;

/// How often deadlines are checked: the granularity of an in-process expiry.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

pub struct MemoryLiveness {
    deadlines: Mutex<HashMap<Uuid, Instant>>,
}

impl MemoryLiveness {
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

    pub fn arm(&self, id: Uuid, ttl: Duration) {
        self.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Instant::now() + ttl);
    }

    pub fn disarm(&self, id: Uuid) {
        self.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}
