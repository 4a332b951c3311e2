//! Liveness: register and every heartbeat arm a deadline; a workspace whose deadline passes is
//! reported on `expirations`. The lease holder turns expirations into offline transitions
//! (jobs::liveness), and a database sweep covers for lost notifications.

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

pub use memory::MemoryLiveness;
pub use redis::RedisLiveness;

/// How long the registered URL is cached in Redis (`ws:{id}:url`).
pub const URL_CACHE_TTL: Duration = Duration::from_secs(300);

pub type Expirations = mpsc::UnboundedReceiver<Uuid>;

#[derive(Clone)]
pub enum Liveness {
    Memory(Arc<MemoryLiveness>),
    Redis(Arc<RedisLiveness>),
}

impl Liveness {
    /// (Re-)arms the deadline. Failures are logged, not returned: the database sweep still
    /// marks a silent workspace offline, so liveness degrades gracefully when Redis is down.
    pub async fn arm(&self, id: Uuid, ttl: Duration) {
        match self {
            Liveness::Memory(m) => m.arm(id, ttl),
            Liveness::Redis(r) => {
                if let Err(e) = r.arm(id, ttl).await {
                    tracing::warn!(workspace_id = %id, error = %e, "could not arm liveness key; the sweep covers it");
                }
            }
        }
    }

    pub async fn disarm(&self, id: Uuid) {
        match self {
            Liveness::Memory(m) => m.disarm(id),
            Liveness::Redis(r) => {
                if let Err(e) = r.disarm(id).await {
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
