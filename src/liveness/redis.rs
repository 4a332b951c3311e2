//! Redis liveness: `SET ws:{id} online EX <ttl>` on register and every heartbeat (SET, not
//! EXPIRE, so a Redis restart or FLUSHALL re-arms on the next heartbeat), and key-expiry
//! notifications from `__keyevent@<db>__:expired`.
//!
//! Notifications need `notify-keyspace-events` to include `E` and `x`; the setting is lost when
//! Redis restarts, so it is re-applied on every reconnect. Managed Redis may refuse CONFIG: that
//! is a warning, and the database sweep still catches silent workspaces.

use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::Expiration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Expirations, LivenessStore, URL_CACHE_TTL};
use crate::events::redis::builder;

/// Deadlines as Redis keys `<prefix>ws:{id}` with a TTL; expirations come from Redis's
/// key-expiry notifications, so any instance's heartbeat re-arms the one deadline.
pub struct RedisLiveness {
    client: Client,
    subscriber: SubscriberClient,
    key_prefix: String,
}

impl RedisLiveness {
    /// Connects a client and a subscriber to `url`, subscribes to key-expiry notifications
    /// (enabling them if the server allows CONFIG SET) and starts the listener. Errors: Redis
    /// unreachable or refusing the subscription.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
    ) -> Result<(Arc<RedisLiveness>, Expirations), Error> {
        let builder = builder(url)?;
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        client.init().await?;
        subscriber.init().await?;
        let _resubscriber = subscriber.manage_subscriptions();
        let db = builder.get_config().and_then(|c| c.database).unwrap_or(0);
        subscriber
            .subscribe(format!("__keyevent@{db}__:expired"))
            .await?;
        enable_expiry_notifications(&client).await;

        let liveness = Arc::new(RedisLiveness {
            client,
            subscriber,
            key_prefix: key_prefix.to_string(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        liveness.spawn_listener(tx);
        Ok((liveness, rx))
    }

    fn key(&self, id: Uuid) -> String {
        format!("{}ws:{id}", self.key_prefix)
    }

    fn spawn_listener(&self, expired: mpsc::UnboundedSender<Uuid>) {
        let mut events = self.subscriber.keyspace_event_rx();
        let mut reconnects = self.subscriber.reconnect_rx();
        let client = self.client.clone();
        let prefix = format!("{}ws:", self.key_prefix);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(event) if event.operation == "expired" => {
                            let Some(key) = event.key.as_str().map(|k| k.to_string()) else { continue };
                            // `ws:{id}` only: `ws:{id}:url` and other deployments' keys are not ours.
                            let Some(id) = key.strip_prefix(&prefix).and_then(|rest| Uuid::parse_str(rest).ok()) else { continue };
                            if expired.send(id).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "liveness notifications lagged; the sweep covers them");
                        }
                        Err(RecvError::Closed) => return,
                    },
                    reconnect = reconnects.recv() => match reconnect {
                        Ok(_) => enable_expiry_notifications(&client).await,
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
    }

    /// Caches where an agent listens (`<prefix>ws:{id}:url`, [`URL_CACHE_TTL`]). Errors:
    /// Redis unreachable.
    pub async fn cache_url(&self, id: Uuid, url: &str) -> Result<(), Error> {
        let ttl = Some(Expiration::EX(URL_CACHE_TTL.as_secs() as i64));
        self.client
            .set::<(), _, _>(format!("{}:url", self.key(id)), url, ttl, None, false)
            .await
    }

    /// Closes both connections.
    pub async fn quit(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.client.quit().await;
    }
}

impl LivenessStore for RedisLiveness {
    /// `SET <key> online PX <ms>`: milliseconds, so a TTL of 1.5 s is not cut to 1 s.
    async fn arm(&self, id: Uuid, ttl: Duration) -> anyhow::Result<()> {
        let millis = ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
        self.client
            .set::<(), _, _>(
                self.key(id),
                "online",
                Some(Expiration::PX(millis)),
                None,
                false,
            )
            .await?;
        Ok(())
    }

    async fn disarm(&self, id: Uuid) -> anyhow::Result<()> {
        self.client
            .del::<(), _>(vec![self.key(id), format!("{}:url", self.key(id))])
            .await?;
        Ok(())
    }
}

/// Adds `E` (keyevent channel) and `x` (expired) to whatever the server already notifies.
async fn enable_expiry_notifications(client: &Client) {
    let current: Option<String> = client
        .config_get::<Vec<String>, _>("notify-keyspace-events")
        .await
        .ok()
        .and_then(|pair| pair.into_iter().nth(1));
    let mut flags = current.unwrap_or_default();
    for flag in ['E', 'x'] {
        // `A` is an alias that already includes `x`.
        let already = flags.contains(flag) || (flag == 'x' && flags.contains('A'));
        if !already {
            flags.push(flag);
        }
    }
    match client
        .config_set::<&str, String>("notify-keyspace-events", flags.clone())
        .await
    {
        Ok(()) => tracing::debug!(flags = %flags, "keyspace expiry notifications enabled"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot enable keyspace notifications (CONFIG refused?); relying on the database sweep")
        }
    }
}
