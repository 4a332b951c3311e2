//! Backplane: publish(events) on one instance, receive them on every instance.
//!
//! Delivery is at-most-once on purpose: the Relay treats anything missing as a gap and reads it
//! from `live_events`, so the backplane only has to be fast, not reliable.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::redis::RedisBackplane;
use crate::realtime::volatile::VolatileBatch;
use crate::store::LiveEvent;

/// What a backplane hands to the Relay.
#[derive(Debug)]
pub enum BackplaneSignal {
    /// Committed events, in the order one publisher sent them.
    Events(Vec<LiveEvent>),
    /// Messages may have been lost (subscriber lagged or reconnected): check the stream head.
    PossibleGap,
    /// Drag previews and ended drags: no seq, straight to the Hub, never a gap to fill.
    Volatile(VolatileBatch),
}

pub type SignalSender = mpsc::UnboundedSender<BackplaneSignal>;
pub type SignalReceiver = mpsc::UnboundedReceiver<BackplaneSignal>;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("backplane publish failed: {0}")]
    Redis(String),
    #[error("relay is not running")]
    RelayGone,
}

#[derive(Clone)]
pub enum Backplane {
    /// One process: publishing is handing the events to this instance's Relay.
    Local(SignalSender),
    Redis(Arc<RedisBackplane>),
}

impl Backplane {
    pub fn name(&self) -> &'static str {
        match self {
            Backplane::Local(_) => "local",
            Backplane::Redis(_) => "redis",
        }
    }

    /// Sends committed events to every instance. Callers publish after commit only; a failure
    /// loses nothing (the events are committed and every Relay's head check finds them), so
    /// it is logged, not returned to the client.
    pub async fn publish(&self, events: Vec<LiveEvent>) -> Result<(), PublishError> {
        if events.is_empty() {
            return Ok(());
        }
        match self {
            Backplane::Local(tx) => tx
                .send(BackplaneSignal::Events(events))
                .map_err(|_| PublishError::RelayGone),
            Backplane::Redis(redis) => redis.publish(&events).await,
        }
    }

    /// Sends volatile messages to every instance (including this one), on a channel of their
    /// own: in cluster mode Redis `<prefix>volatile:broadcast`, never `events:broadcast`.
    /// At most once, like all pub/sub; nothing is stored or retried.
    pub async fn publish_volatile(&self, batch: VolatileBatch) -> Result<(), PublishError> {
        match self {
            Backplane::Local(tx) => tx
                .send(BackplaneSignal::Volatile(batch))
                .map_err(|_| PublishError::RelayGone),
            Backplane::Redis(redis) => redis.publish_volatile(&batch).await,
        }
    }

    /// Closes the Redis connections (graceful shutdown).
    pub async fn quit(&self) {
        if let Backplane::Redis(redis) = self {
            redis.quit().await;
        }
    }

    /// Whether the backplane is currently connected (for /health).
    pub fn is_connected(&self) -> bool {
        match self {
            Backplane::Local(tx) => !tx.is_closed(),
            Backplane::Redis(redis) => redis.is_connected(),
        }
    }
}
