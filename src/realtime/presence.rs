//! Who is here: people with at least one canvas socket open, on any instance.
//!
//! Each instance counts its own canvas sockets per person. When a person's count goes from 0
//! to 1 (or 1 to 0) the instance records (or removes) them in the shared state and nudges every
//! instance over the control bus; every instance then re-reads the shared state, compares it
//! with what its canvases were told, and sends them PRESENCE_JOINED `{actor, since}` or
//! PRESENCE_LEFT `{actor}`. These frames are live-only: no seq, not stored, never replayed (a
//! canvas reads `GET /canvas/presence` when it connects).
//!
//! Shared state: in cluster mode one Redis key per person and instance,
//! `{prefix}presence:{instance}:{actor id}` = `{actor, since}`, set with a TTL of a third of
//! `PRESENCE_TTL_SECONDS` and re-set every eighth of it, so:
//! - an instance killed without a goodbye stops refreshing, its keys expire, and its people
//!   are declared gone within the TTL (key expiry, then [`grace`] without a refresh);
//! - a Redis flush is repaired by the next refresh, and the grace keeps canvases from seeing
//!   people leave and come back meanwhile.
//!
//! Embedded mode keeps the same logic in process (the shared state is this instance's count).
//!
//! Ordering: a socket reports itself opened only after it is registered in the hub, so the
//! PRESENCE_JOINED its opening causes reaches it too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fred::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::frame::Frame;
use super::Hub;
use crate::domain::people::Actor;
use crate::events::control::{ControlBus, ControlMessage};

/// How often an instance re-reads the shared state even without a nudge (expired keys of a
/// dead instance are noticed this way).
pub const PRESENCE_SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// One person here now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Present {
    /// The person (or key) with a canvas open.
    pub actor: Actor,
    /// When their first canvas socket (on any instance) opened.
    pub since: DateTime<Utc>,
}

enum Change {
    Opened(Actor),
    Closed(Actor),
}

/// Held by a canvas socket's task; dropping it reports the socket closed.
pub struct PresenceGuard {
    actor: Option<Actor>,
    changes: mpsc::UnboundedSender<Change>,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        if let Some(actor) = self.actor.take() {
            let _ = self.changes.send(Change::Closed(actor));
        }
    }
}

/// Who is here: the people with a canvas open on any instance, as PRESENCE frames tell every
/// canvas (README "Who is here").
pub struct Presence {
    changes: mpsc::UnboundedSender<Change>,
    /// What this instance's canvases were told, by actor id.
    view: Arc<Mutex<BTreeMap<String, Present>>>,
}

/// Timings derived from `PRESENCE_TTL_SECONDS`.
#[derive(Clone, Copy, Debug)]
struct Timings {
    refresh: Duration,
    key_ttl: Duration,
    grace: Duration,
}

impl Timings {
    fn of(ttl: Duration) -> Timings {
        Timings {
            refresh: (ttl / 8).max(Duration::from_millis(250)),
            key_ttl: (ttl / 3).max(Duration::from_secs(1)),
            grace: grace(ttl),
        }
    }
}

/// How long someone missing from the shared state (and not known to have left) is still shown:
/// longer than a refresh, so a flushed Redis is repaired before anyone seems to leave.
///
/// With keys living a third of the TTL and refreshed every eighth (half the grace, so a late
/// refresh on a busy machine still lands within it), a killed instance's people
/// are gone at most `ttl/3` (key expiry) + `ttl/4` (grace) + two scan intervals after it died:
/// within the TTL for any TTL of 5 s or more.
pub fn grace(ttl: Duration) -> Duration {
    ttl / 4
}

impl Presence {
    /// Starts this instance's presence task. `redis`: the command client and key prefix in
    /// cluster mode.
    pub fn start(
        hub: Arc<Hub>,
        control: Arc<ControlBus>,
        instance_id: String,
        ttl: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Presence> {
        let (changes, rx) = mpsc::unbounded_channel();
        let view = Arc::new(Mutex::new(BTreeMap::new()));
        let task = Task {
            hub,
            control,
            instance_id,
            timings: Timings::of(ttl),
            local: HashMap::new(),
            view: Arc::clone(&view),
            missing: HashMap::new(),
            departed: HashSet::new(),
        };
        tokio::spawn(task.run(rx, shutdown));
        Arc::new(Presence { changes, view })
    }

    /// A canvas socket of `actor` opened (call after it is registered in the hub).
    pub fn opened(&self, actor: Actor) -> PresenceGuard {
        let _ = self.changes.send(Change::Opened(actor.clone()));
        PresenceGuard {
            actor: Some(actor),
            changes: self.changes.clone(),
        }
    }

    /// Who is here, as this instance's canvases were last told, longest present first.
    pub fn list(&self) -> Vec<Present> {
        let mut all: Vec<Present> = lock(&self.view).values().cloned().collect();
        all.sort_by(|a, b| a.since.cmp(&b.since).then(a.actor.id.cmp(&b.actor.id)));
        all
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Local {
    actor: Actor,
    since: DateTime<Utc>,
    sockets: usize,
}

struct Task {
    hub: Arc<Hub>,
    control: Arc<ControlBus>,
    instance_id: String,
    timings: Timings,
    /// This instance's people and their socket counts.
    local: HashMap<String, Local>,
    view: Arc<Mutex<BTreeMap<String, Present>>>,
    /// People in the view but missing from the shared state, since when.
    missing: HashMap<String, Instant>,
    /// People an instance said have left (their last socket there closed).
    departed: HashSet<String>,
}

impl Task {
    async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<Change>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut nudges = self.control.subscribe();
        let mut scan = tokio::time::interval(PRESENCE_SCAN_INTERVAL);
        let mut refresh = tokio::time::interval(self.timings.refresh);
        for tick in [&mut scan, &mut refresh] {
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(change) => self.apply(change).await,
                    None => return,
                },
                nudge = nudges.recv() => match nudge {
                    Ok(ControlMessage::PresenceChanged { actor_id, left }) => {
                        if left {
                            self.departed.insert(actor_id);
                        }
                        self.rescan().await;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.rescan().await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = scan.tick() => self.rescan().await,
                _ = refresh.tick() => self.write_all().await,
                _ = shutdown.changed() => {
                    // A clean stop says goodbye at once instead of waiting for the TTL.
                    let ids: Vec<String> = self.local.keys().cloned().collect();
                    for id in ids {
                        self.remove(&id).await;
                        self.control
                            .publish(ControlMessage::PresenceChanged { actor_id: id, left: true })
                            .await;
                    }
                    return;
                }
            }
        }
    }

    async fn apply(&mut self, change: Change) {
        match change {
            Change::Opened(actor) => {
                let id = actor.id.clone();
                let entry = self.local.entry(id.clone()).or_insert_with(|| Local {
                    actor,
                    since: Utc::now(),
                    sockets: 0,
                });
                entry.sockets += 1;
                if entry.sockets == 1 {
                    let present = Present {
                        actor: entry.actor.clone(),
                        since: entry.since,
                    };
                    self.write(&present).await;
                    self.control
                        .publish(ControlMessage::PresenceChanged {
                            actor_id: id,
                            left: false,
                        })
                        .await;
                }
            }
            Change::Closed(actor) => {
                let Some(entry) = self.local.get_mut(&actor.id) else {
                    return;
                };
                entry.sockets -= 1;
                if entry.sockets == 0 {
                    self.local.remove(&actor.id);
                    self.remove(&actor.id).await;
                    self.control
                        .publish(ControlMessage::PresenceChanged {
                            actor_id: actor.id,
                            left: true,
                        })
                        .await;
                }
            }
        }
    }

    fn key(&self, prefix: &str, actor_id: &str) -> String {
        format!("{prefix}presence:{}:{actor_id}", self.instance_id)
    }

    async fn write(&self, present: &Present) {
        let Some((client, prefix)) = self.control.redis_client() else {
            return;
        };
        let value = serde_json::to_string(present).expect("presence serializes");
        let ttl = self.timings.key_ttl.as_millis() as i64;
        let result: Result<(), Error> = client
            .set(
                self.key(prefix, &present.actor.id),
                value,
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "presence not recorded in Redis; the next refresh retries");
        }
    }

    async fn write_all(&self) {
        let all: Vec<Present> = self
            .local
            .values()
            .map(|l| Present {
                actor: l.actor.clone(),
                since: l.since,
            })
            .collect();
        for present in &all {
            self.write(present).await;
        }
    }

    async fn remove(&self, actor_id: &str) {
        let Some((client, prefix)) = self.control.redis_client() else {
            return;
        };
        let result: Result<i64, Error> = client.del(self.key(prefix, actor_id)).await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "presence not removed from Redis; it expires");
        }
    }

    /// Everyone in the shared state (this instance's people always count, whatever Redis
    /// says), the earliest `since` per person. `None`: the shared state cannot be read now.
    async fn shared(&self) -> Option<HashMap<String, Present>> {
        let mut people: HashMap<String, Present> = HashMap::new();
        let mut add = |p: Present| {
            people
                .entry(p.actor.id.clone())
                .and_modify(|known| known.since = known.since.min(p.since))
                .or_insert(p);
        };
        for local in self.local.values() {
            add(Present {
                actor: local.actor.clone(),
                since: local.since,
            });
        }
        if let Some((client, prefix)) = self.control.redis_client() {
            let pattern = format!("{prefix}presence:*");
            let mut cursor = "0".to_string();
            loop {
                let page: Result<(String, Vec<String>), Error> = client
                    .scan_page(cursor, pattern.as_str(), Some(1000), None)
                    .await;
                let (next, keys) = match page {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, "presence: cannot read Redis");
                        return None;
                    }
                };
                if !keys.is_empty() {
                    let values: Result<Vec<Option<String>>, Error> = if keys.len() == 1 {
                        client
                            .get::<Option<String>, _>(keys[0].as_str())
                            .await
                            .map(|v| vec![v])
                    } else {
                        client.mget(keys).await
                    };
                    match values {
                        Ok(values) => values
                            .into_iter()
                            .flatten()
                            .filter_map(|v| serde_json::from_str::<Present>(&v).ok())
                            .for_each(&mut add),
                        Err(e) => {
                            tracing::warn!(error = %e, "presence: cannot read Redis");
                            return None;
                        }
                    }
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Some(people)
    }

    /// Compares the shared state with what canvases were told, and tells them the difference.
    async fn rescan(&mut self) {
        let Some(current) = self.shared().await else {
            self.departed.clear();
            return;
        };
        let now = Instant::now();
        let mut frames = Vec::new();
        {
            let mut view = lock(&self.view);
            for (id, present) in &current {
                self.missing.remove(id);
                if !view.contains_key(id) {
                    frames.push(Frame::transient(
                        "PRESENCE_JOINED",
                        json!({ "actor": present.actor, "since": present.since }),
                    ));
                    view.insert(id.clone(), present.clone());
                }
            }
            let gone: Vec<String> = view
                .keys()
                .filter(|id| !current.contains_key(*id))
                .cloned()
                .collect();
            for id in gone {
                let first_missed = *self.missing.entry(id.clone()).or_insert(now);
                if self.departed.contains(&id)
                    || now.duration_since(first_missed) >= self.timings.grace
                {
                    if let Some(present) = view.remove(&id) {
                        frames.push(Frame::transient(
                            "PRESENCE_LEFT",
                            json!({ "actor": present.actor }),
                        ));
                    }
                    self.missing.remove(&id);
                }
            }
        }
        self.departed.clear();
        for frame in frames {
            self.hub.broadcast_to_canvases(frame);
        }
    }
}
