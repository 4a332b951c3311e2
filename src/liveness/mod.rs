//! Liveness: register and every heartbeat arm a deadline; a workspace whose deadline passes is
//! reported on `expirations`. The lease holder turns expirations into offline transitions
//! (jobs::liveness), and a database sweep covers for lost notifications.

#![warn(missing_docs)]

pub mod memory;
pub mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

pub use memory::MemoryLiveness;
pub use redis::RedisLiveness;

/// How long the registered URL is cached in Redis (`ws:{id}:url`).
pub const URL_CACHE_TTL: Duration = Duration::from_secs(300);

/// Where a liveness store reports the workspaces whose deadline passed, once each.
pub type Expirations = mpsc::UnboundedReceiver<Uuid>;

/// The liveness seam: one deadline per workspace, reported on [`Expirations`] when it passes.
/// [`MemoryLiveness`] (embedded mode) and [`RedisLiveness`] (cluster mode) both implement it and
/// both pass the one contract in `tests/api/seams.rs`:
/// - a deadline armed with `ttl` is reported no earlier than `ttl` after arming and soon after
///   it passes (the memory store checks every 100 ms; Redis expires keys within about a second);
/// - arming again replaces the deadline (a heartbeat pushes it back);
/// - a disarmed deadline is never reported; other workspaces' deadlines are unaffected.
///
/// Errors are the store's connection errors; the memory store never fails.
pub trait LivenessStore: Send + Sync + 'static {
    /// Arms or re-arms `id`'s deadline at now + `ttl` (millisecond precision).
    fn arm(&self, id: Uuid, ttl: Duration) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Removes `id`'s deadline (and anything cached for it); it will not be reported.
    fn disarm(&self, id: Uuid) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The application's handle on its liveness store: dispatches to the configured
/// [`LivenessStore`] and logs, rather than returns, its failures.
#[derive(Clone)]
pub enum Liveness {
    /// Embedded mode: in-process deadlines.
    Memory(Arc<MemoryLiveness>),
    /// Cluster mode: Redis keys with a TTL and key-expiry notifications.
    Redis(Arc<RedisLiveness>),
}

impl Liveness {
    /// (Re-)arms the deadline. Failures are logged, not returned: the database sweep still
    /// marks a silent workspace offline, so liveness degrades gracefully when Redis is down.
    pub async fn arm(&self, id: Uuid, ttl: Duration) {
        match self {
            Liveness::Memory(m) => m.arm_now(id, ttl),
            Liveness::Redis(r) => {
                if let Err(e) = LivenessStore::arm(r.as_ref(), id, ttl).await {
                    tracing::warn!(workspace_id = %id, error = %e, "could not arm liveness key; the sweep covers it");
                }
            }
        }
    }

    /// Removes the deadline (a workspace deleted or paused). Failures are logged.
    pub async fn disarm(&self, id: Uuid) {
        match self {
            Liveness::Memory(m) => m.disarm_now(id),
            Liveness::Redis(r) => {
                if let Err(e) = LivenessStore::disarm(r.as_ref(), id).await {
                    tracing::warn!(workspace_id = %id, error = %e, "could not disarm liveness key");
                }
            }
        }
    }

    /// Closes the Redis connections (graceful shutdown).
    pub async fn quit(&self) {
        if let Liveness::Redis(r) = self {
            r.quit().await;
        }
    }

    /// Remembers where an agent listens (cluster mode only; the database has it too).
    pub async fn cache_url(&self, id: Uuid, url: &str) {
        if let Liveness::Redis(r) = self {
            if let Err(e) = r.cache_url(id, url).await {
                tracing::warn!(workspace_id = %id, error = %e, "could not cache agent url");
            }
        }
    }
}
