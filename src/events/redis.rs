//! RedisBackplane: one client publishes, a separate subscriber client receives (a subscribed
//! connection cannot run commands). Both reconnect forever; messages lost meanwhile are gaps the
//! Relay fills from the database.

use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;

use super::backplane::{BackplaneSignal, PublishError, SignalSender};
use crate::store::LiveEvent;

/// Request paths must not stall on a dead Redis: a publish that takes longer fails, and the
/// Relays' head check delivers the events instead.
pub const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// fred's receive channels are tokio broadcasts; a bigger buffer makes `Lagged` rarer (it is
/// still handled as a gap).
const BROADCAST_CAPACITY: usize = 4096;

/// A client builder with the settings every Canopy Redis connection uses.
pub fn builder(url: &str) -> Result<Builder, Error> {
    let config = Config::from_url(url)?;
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|p| {
            p.default_command_timeout = REDIS_COMMAND_TIMEOUT;
            p.broadcast_channel_capacity = BROADCAST_CAPACITY;
        })
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            c.max_command_attempts = 1;
        })
        // max_attempts 0: keep reconnecting forever, backing off to 2 s.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
    Ok(builder)
}

pub struct RedisBackplane {
    publisher: Client,
    subscriber: SubscriberClient,
    channel: String,
    /// Drag previews (`realtime::volatile`): lossy, unsequenced, kept off `channel`.
    volatile_channel: String,
}

impl RedisBackplane {
    /// Connects both clients and starts forwarding received events to `relay`.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        relay: SignalSender,
    ) -> Result<Arc<Self>, Error> {
        let builder = builder(url)?;
        let publisher = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        publisher.init().await?;
        subscriber.init().await?;
        // Re-subscribes after every reconnect (Redis restart, CLIENT KILL).
        let _resubscriber = subscriber.manage_subscriptions();
        let channel = format!("{key_prefix}events:broadcast");
        subscriber.subscribe(channel.as_str()).await?;
        let volatile_channel = format!("{key_prefix}volatile:broadcast");
        subscriber.subscribe(volatile_channel.as_str()).await?;

        let backplane = Arc::new(RedisBackplane {
            publisher,
            subscriber,
            channel,
            volatile_channel,
        });
        backplane.spawn_forwarder(relay);
        Ok(backplane)
    }

    fn spawn_forwarder(&self, relay: SignalSender) {
        let mut messages = self.subscriber.message_rx();
        let mut reconnects = self.subscriber.reconnect_rx();
        let channel = self.channel.clone();
        let volatile_channel = self.volatile_channel.clone();
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) if *message.channel == *channel => {
                            match message.value.as_string().map(|s| serde_json::from_str::<Vec<LiveEvent>>(&s)) {
                                Some(Ok(events)) => BackplaneSignal::Events(events),
                                _ => {
                                    tracing::warn!(channel = %channel, "undecodable backplane message; checking the stream head");
                                    BackplaneSignal::PossibleGap
                                }
                            }
                        }
                        Ok(message) if *message.channel == *volatile_channel => {
                            match message.value.as_string().map(|s| serde_json::from_str(&s)) {
                                Some(Ok(batch)) => BackplaneSignal::Volatile(batch),
                                // Lossy by design: an undecodable preview is just not shown.
                                _ => continue,
                            }
                        }
                        Ok(_) => continue,
                        Err(RecvError::Lagged(missed)) => {
                            metrics::counter!("canopy_backplane_lagged_total").increment(missed);
                            tracing::warn!(missed, "backplane receiver lagged; filling from the database");
                            BackplaneSignal::PossibleGap
                        }
                        Err(RecvError::Closed) => return,
                    },
                    reconnect = reconnects.recv() => match reconnect {
                        Ok(server) => {
                            tracing::info!(%server, "backplane subscriber reconnected; checking for missed events");
                            BackplaneSignal::PossibleGap
                        }
                        Err(RecvError::Lagged(_)) => BackplaneSignal::PossibleGap,
                        Err(RecvError::Closed) => return,
                    },
                };
                if relay.send(signal).is_err() {
                    return; // the relay stopped: this instance is shutting down
                }
            }
        });
    }

    pub async fn publish(&self, events: &[LiveEvent]) -> Result<(), PublishError> {
        let body = serde_json::to_string(events).map_err(|e| PublishError::Redis(e.to_string()))?;
        self.publisher
            .publish::<i64, _, _>(self.channel.as_str(), body)
            .await
            .map(|_| ())
            .map_err(|e| PublishError::Redis(e.to_string()))
    }

    pub async fn publish_volatile(
        &self,
        batch: &crate::realtime::volatile::VolatileBatch,
    ) -> Result<(), PublishError> {
        let body = serde_json::to_string(batch).map_err(|e| PublishError::Redis(e.to_string()))?;
        self.publisher
            .publish::<i64, _, _>(self.volatile_channel.as_str(), body)
            .await
            .map(|_| ())
            .map_err(|e| PublishError::Redis(e.to_string()))
    }

    pub fn is_connected(&self) -> bool {
        self.publisher.is_connected() && self.subscriber.is_connected()
    }

    pub async fn quit(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.publisher.quit().await;
    }
}
