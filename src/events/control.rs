//! The control bus: small messages every instance must act on that are not stream events — a
//! revoked key (close its sockets) and a presence change (re-read who is here). Redis pub/sub
//! on `{prefix}control:revocations` and `{prefix}control:presence` in cluster mode, an
//! in-process broadcast in embedded mode. At-most-once like the backplane; presence is
//! repaired by its periodic refresh.

use std::sync::Arc;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Messages a slow reader may fall behind by before it sees `Lagged`.
const CONTROL_CAPACITY: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlMessage {
    /// An API key was revoked: close the sockets it (or a session made from it) opened.
    KeyRevoked { key_id: Uuid },
    /// A browser session ended (signed out): close the sockets it opened. Carries the hash
    /// of the session id, never the id.
    SessionEnded { session: String },
    /// Someone's canvas sockets on some instance went from none to some (`left: false`) or
    /// from some to none (`left: true`).
    PresenceChanged { actor_id: String, left: bool },
}

impl ControlMessage {
    fn channel_suffix(&self) -> &'static str {
        match self {
            ControlMessage::KeyRevoked { .. } | ControlMessage::SessionEnded { .. } => {
                "control:revocations"
            }
            ControlMessage::PresenceChanged { .. } => "control:presence",
        }
    }
}

struct RedisControl {
    publisher: Client,
    subscriber: SubscriberClient,
    prefix: String,
}

/// Publishes control messages to every instance and hands each instance what anyone published.
pub struct ControlBus {
    redis: Option<RedisControl>,
    incoming: broadcast::Sender<ControlMessage>,
}

impl ControlBus {
    /// In-process only (embedded mode).
    pub fn local() -> Arc<ControlBus> {
        Arc::new(ControlBus {
            redis: None,
            incoming: broadcast::channel(CONTROL_CAPACITY).0,
        })
    }

    /// Over Redis: connects a publisher and a subscriber (re-subscribing after reconnects).
    pub async fn connect(url: &str, prefix: &str) -> Result<Arc<ControlBus>, Error> {
        let builder = super::redis::builder(url)?;
        let publisher = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        publisher.init().await?;
        subscriber.init().await?;
        let _resubscriber = subscriber.manage_subscriptions();
        let channels = [
            format!("{prefix}control:revocations"),
            format!("{prefix}control:presence"),
        ];
        subscriber.subscribe(channels.to_vec()).await?;
        let (incoming, _) = broadcast::channel(CONTROL_CAPACITY);
        let mut messages = subscriber.message_rx();
        let forward = incoming.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) if channels.iter().any(|c| **c == *message.channel) => {
                        match message
                            .value
                            .as_string()
                            .and_then(|s| serde_json::from_str::<ControlMessage>(&s).ok())
                        {
                            Some(decoded) => {
                                let _ = forward.send(decoded);
                            }
                            None => tracing::warn!("undecodable control message"),
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "control bus lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Arc::new(ControlBus {
            redis: Some(RedisControl {
                publisher,
                subscriber,
                prefix: prefix.to_string(),
            }),
            incoming,
        }))
    }

    /// Sends to every instance, this one included. A failure is logged: revocation still
    /// holds for HTTP (the database says so), and presence repairs itself on its next refresh.
    pub async fn publish(&self, message: ControlMessage) {
        match &self.redis {
            None => {
                let _ = self.incoming.send(message);
            }
            Some(redis) => {
                let channel = format!("{}{}", redis.prefix, message.channel_suffix());
                let body = serde_json::to_string(&message).expect("a control message serializes");
                if let Err(e) = redis.publisher.publish::<i64, _, _>(channel, body).await {
                    tracing::warn!(error = %e, "control message not published");
                }
            }
        }
    }

    /// Every message published from now on, by any instance.
    pub fn subscribe(&self) -> broadcast::Receiver<ControlMessage> {
        self.incoming.subscribe()
    }

    /// The command client, in cluster mode (presence keeps its keys with it).
    pub fn redis_client(&self) -> Option<(&Client, &str)> {
        self.redis
            .as_ref()
            .map(|r| (&r.publisher, r.prefix.as_str()))
    }

    pub async fn quit(&self) {
        if let Some(redis) = &self.redis {
            let _ = redis.subscriber.quit().await;
            let _ = redis.publisher.quit().await;
        }
    }
}
