//! The Hub: per instance, session id → bounded queue + subscriber filter. Each event is
//! serialized once and the same bytes go to every session that may see it. A session whose
//! queue is full is closed as a slow consumer (it reconnects with `since` and loses nothing);
//! nothing is dropped silently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot, Notify};
use uuid::Uuid;

use super::frame::Frame;
use super::outbound::{LiveFrames, VolatileFrames};
use super::volatile::{DragTracker, PreviewOutbox, VolatileBatch, VOLATILE_QUEUE_CAP};
use crate::domain::events::EventKind;
use crate::domain::hierarchy::ParentMap;
use crate::store::LiveEvent;

/// Deliveries (one per relayed run of events, see [`Hub::deliver_batch`]) a session may have
/// queued before it counts as a slow consumer.
pub const SESSION_QUEUE_CAP: usize = 1024;

/// What a socket subscribes to: which events the hub sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscriber {
    /// A browser canvas: sees every event.
    Canvas,
    /// An agent's socket: sees events about workspaces it can communicate with.
    Workspace(Uuid),
}

/// Why the hub ends a session; each has its close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Its queue filled up (close code 4008).
    SlowConsumer,
    /// The server is shutting down (close code 1001).
    GoingAway,
    /// The credential the socket was opened with is no longer valid: its API key was revoked
    /// or expired, or its browser session ended (close code 4001).
    Revoked,
}

/// Whose a canvas socket is: the person who opened it, and the API key behind them (a key or
/// a session made from it), so revoking the key closes its sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOwner {
    /// The person (or key) the socket acts for.
    pub actor: crate::domain::people::Actor,
    /// The API key behind the socket, directly or through a browser session; `None` in open mode.
    pub key_id: Option<Uuid>,
    /// The hash of the browser session it was opened with (signing out closes it).
    pub session: Option<String>,
}

struct SessionEntry {
    queue: mpsc::Sender<Arc<Frame>>,
    /// Drag previews: a separate small queue, written only when it has room (see `volatile`).
    volatile: mpsc::Sender<Arc<Frame>>,
    subscriber: Subscriber,
    kill: Option<oneshot::Sender<CloseReason>>,
    owner: Option<SessionOwner>,
}

struct Inner {
    sessions: HashMap<u64, SessionEntry>,
    parents: ParentMap,
    /// The newest seq fanned out. A session registered now gets every event after it through
    /// its queue, so a resume replays `(since, delivered]` from the database and nothing else.
    delivered: i64,
    /// Set by `close_all`: a session registered afterwards is closed at once, for this reason.
    closing: Option<CloseReason>,
}

/// The per-instance fan-out: every socket's queue, the hierarchy that filters agents' sockets,
/// and the drag previews waiting for the next tick. Shared by the Relay (which alone delivers
/// events) and the sessions (which register and unregister).
pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    queue_capacity: usize,
    /// This hub among all instances' hubs, so a socket's own drag previews are not echoed.
    id: Uuid,
    /// Drags of this instance's sockets (its own lock: never taken with `inner` held).
    drags: Mutex<DragTracker>,
    /// Wakes the drag publisher (`volatile::run`): a drag frame arrived or a socket closed.
    drags_changed: Notify,
    /// Previews relayed (from every instance) and not yet sent to this hub's sockets (its own
    /// lock: taken before `inner`, never while holding it).
    outbox: Mutex<PreviewOutbox>,
    /// Wakes the preview sender (`volatile::deliver`): the outbox has something.
    previews_changed: Notify,
}

/// A session's place in the hub; unregisters itself when dropped.
pub struct Registration {
    /// The session's id within this hub.
    pub id: u64,
    /// The newest seq delivered before this session joined.
    pub delivered: i64,
    /// Fires when the hub ends the session (slow consumer, revoked key, shutdown).
    pub kill: oneshot::Receiver<CloseReason>,
    hub: Arc<Hub>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.hub.lock().sessions.remove(&self.id).is_some() {
            metrics::gauge!("canopy_ws_sessions_open").decrement(1.0);
        }
        self.hub.lock_drags().session_closed(self.id);
        // Its drags end now: the publisher sends their ended entries without waiting.
        self.hub.drags_changed.notify_one();
    }
}

impl Hub {
    /// A hub with the default queue of [`SESSION_QUEUE_CAP`] deliveries per socket. `parents` is the
    /// hierarchy as of `delivered`, the newest seq already fanned out (the stream head at start).
    pub fn new(parents: ParentMap, delivered: i64) -> Arc<Hub> {
        Hub::with_capacity(parents, delivered, SESSION_QUEUE_CAP)
    }

    /// A hub whose sockets may have `queue_capacity` deliveries queued (`WS_QUEUE_CAPACITY`)
    /// before they are closed as slow consumers.
    pub fn with_capacity(parents: ParentMap, delivered: i64, queue_capacity: usize) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                sessions: HashMap::new(),
                parents,
                delivered,
                closing: None,
            }),
            next_id: AtomicU64::new(1),
            queue_capacity,
            id: Uuid::new_v4(),
            drags: Mutex::new(DragTracker::default()),
            drags_changed: Notify::new(),
            outbox: Mutex::new(PreviewOutbox::default()),
            previews_changed: Notify::new(),
        })
    }

    fn lock_outbox(&self) -> MutexGuard<'_, PreviewOutbox> {
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_drags(&self) -> MutexGuard<'_, DragTracker> {
        self.drags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters more than stopping delivery would.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a session. Every event delivered from now on reaches the returned queue, which the
    /// socket's response body reads (see `outbound`).
    pub fn register(self: &Arc<Self>, subscriber: Subscriber) -> (Registration, LiveFrames) {
        self.register_owned(subscriber, None)
    }

    /// [`Hub::register`] for a socket opened by a person (see [`SessionOwner`]).
    pub fn register_owned(
        self: &Arc<Self>,
        subscriber: Subscriber,
        owner: Option<SessionOwner>,
    ) -> (Registration, LiveFrames) {
        let (registration, live, _volatile) = self.register_socket(subscriber, owner);
        (registration, live)
    }

    /// [`Hub::register_owned`], with the socket's queue of drag previews as well: a socket's
    /// response body writes them when no live frame waits.
    pub fn register_socket(
        self: &Arc<Self>,
        subscriber: Subscriber,
        owner: Option<SessionOwner>,
    ) -> (Registration, LiveFrames, VolatileFrames) {
        let (queue, frames) = mpsc::channel(self.queue_capacity);
        let (volatile, volatile_frames) = mpsc::channel(VOLATILE_QUEUE_CAP);
        let (kill_tx, kill) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        // A socket that raced a shutdown is closed like the others, never left open.
        let kill_tx = match inner.closing {
            Some(reason) => {
                let _ = kill_tx.send(reason);
                None
            }
            None => Some(kill_tx),
        };
        inner.sessions.insert(
            id,
            SessionEntry {
                queue,
                volatile,
                subscriber,
                kill: kill_tx,
                owner,
            },
        );
        metrics::gauge!("canopy_ws_sessions_open").increment(1.0);
        let registration = Registration {
            id,
            delivered: inner.delivered,
            kill,
            hub: Arc::clone(self),
        };
        (registration, frames, volatile_frames)
    }

    /// The newest seq fanned out to this hub's sockets.
    pub fn delivered(&self) -> i64 {
        self.lock().delivered
    }

    /// Sockets registered with this hub now.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether `workspace_id` is a live workspace, as the stream delivered so far tells.
    pub fn knows_workspace(&self, workspace_id: Uuid) -> bool {
        self.lock().parents.contains(workspace_id)
    }

    /// Whether an event should reach a subscriber.
    pub fn may_see(&self, subscriber: Subscriber, event: &LiveEvent) -> bool {
        visible(&self.lock().parents, subscriber, event)
    }

    /// Fans one relayed event out (see [`Hub::deliver_batch`]).
    pub fn deliver(&self, event: &LiveEvent) {
        self.deliver_batch(std::slice::from_ref(event));
    }

    /// Fans relayed events out: consecutive seqs, in order, after [`Hub::delivered`]. Called by
    /// the Relay only. Each session gets the events it may see as one queue entry (one
    /// [`Frame::batch`]), so however many events one commit holds it never fills a healthy
    /// session's queue, and the whole run leaves in one write. Canvases share one batch;
    /// an agent's socket gets its own, of the events about workspaces it can reach, judged by
    /// the hierarchy as each event leaves it.
    pub fn deliver_batch(&self, events: &[LiveEvent]) {
        if events.is_empty() {
            return;
        }
        // Encoded before the lock is taken; canvases see every event.
        let frames: Vec<Arc<Frame>> = events.iter().map(|e| Arc::new(Frame::event(e))).collect();
        let every = Frame::batch(&frames);
        let kinds: Vec<Option<EventKind>> = events
            .iter()
            .map(|e| EventKind::parse(&e.event_type))
            .collect();
        let mut inner = self.lock();
        let Inner {
            sessions,
            parents,
            delivered,
            ..
        } = &mut *inner;
        // Agents' sockets, with the frames each may see: filtered event by event, because an
        // event can change what the ones after it reach.
        let mut filtered: Vec<(u64, Uuid, Vec<Arc<Frame>>)> = sessions
            .iter()
            .filter_map(|(id, entry)| match entry.subscriber {
                Subscriber::Workspace(me) if entry.kill.is_some() => Some((*id, me, Vec::new())),
                _ => None,
            })
            .collect();
        for ((event, kind), frame) in events.iter().zip(&kinds).zip(&frames) {
            if let (Some(kind), Some(ws)) = (*kind, event.workspace_id) {
                track_hierarchy_before(parents, kind, ws, &event.payload);
            }
            for (_, me, visible_frames) in &mut filtered {
                if visible(parents, Subscriber::Workspace(*me), event) {
                    visible_frames.push(Arc::clone(frame));
                }
            }
            if let (Some(EventKind::WorkspaceRemoved), Some(ws)) = (*kind, event.workspace_id) {
                parents.remove(ws);
            }
            *delivered = event.seq;
        }
        let mut own: HashMap<u64, Arc<Frame>> = filtered
            .into_iter()
            .filter(|(_, _, frames)| !frames.is_empty())
            .map(|(id, _, frames)| (id, Frame::batch(&frames)))
            .collect();
        let mut sent = 0u64;
        for (id, entry) in sessions.iter_mut() {
            if entry.kill.is_none() {
                continue;
            }
            let frame = match entry.subscriber {
                Subscriber::Canvas => Arc::clone(&every),
                Subscriber::Workspace(_) => match own.remove(id) {
                    Some(frame) => frame,
                    None => continue,
                },
            };
            match entry.queue.try_send(frame) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("canopy_ws_slow_consumer_closes_total").increment(1);
                    if let Some(kill) = entry.kill.take() {
                        let _ = kill.send(CloseReason::SlowConsumer);
                    }
                }
                // The session is ending; its registration drop removes the entry.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        metrics::counter!("canopy_ws_frames_queued_total").increment(sent);
        drop(inner);
        // The drop's PATCH (or a removal) ends a drag of this instance without an `ended` entry.
        for (event, kind) in events.iter().zip(&kinds) {
            if let (
                Some(EventKind::WorkspaceLayoutChanged | EventKind::WorkspaceRemoved),
                Some(ws),
            ) = (*kind, event.workspace_id)
            {
                self.lock_drags().dropped(ws);
                self.lock_outbox().dropped(ws);
            }
        }
    }

    /// A drag frame from one of this hub's sockets (already checked by the session).
    pub fn drag_moved(
        &self,
        session: u64,
        workspace_id: Uuid,
        position: (f64, f64),
        actor: Option<crate::domain::people::Actor>,
    ) {
        self.lock_drags().moved(
            session,
            workspace_id,
            position,
            actor,
            std::time::Instant::now(),
        );
        self.drags_changed.notify_one();
    }

    /// Resolves when a drag frame arrived (or a socket closed) since the last call.
    pub async fn drags_waiting(&self) {
        self.drags_changed.notified().await
    }

    /// The drag previews and ended drags to publish now (see `volatile::run`).
    pub fn take_drags(&self, now: std::time::Instant) -> VolatileBatch {
        self.lock_drags().tick(self.id, now)
    }

    /// A volatile batch (from any instance, through the Relay): merged into what this hub's
    /// canvas sockets get in their next DRAG_PREVIEWS frame (see [`Hub::flush_previews`]).
    pub fn deliver_volatile(&self, batch: &VolatileBatch) {
        if batch.is_empty() {
            return;
        }
        self.lock_outbox().merge(batch);
        self.previews_changed.notify_one();
    }

    /// Resolves when previews were relayed since the last call.
    pub async fn previews_waiting(&self) {
        self.previews_changed.notified().await
    }

    /// Sends the waiting previews as one DRAG_PREVIEWS frame to every canvas socket but their
    /// senders, into the socket's volatile queue. The frame is encoded once for every socket
    /// that gets all of the entries; a socket that sent some of them (at most one per dragging
    /// socket of this instance) gets a copy without its own. A full queue drops the frame:
    /// never a close, never in the way of a sequenced event. Returns whether anything was
    /// waiting.
    pub fn flush_previews(&self) -> bool {
        let tick = {
            let mut outbox = self.lock_outbox();
            if outbox.is_empty() {
                return false;
            }
            outbox.take()
        };
        // The sockets of this hub that sent entries, each with the frame it gets instead
        // (`None`: all the entries were its own). Encoded before the hub's lock is taken.
        let mut senders: HashMap<u64, Option<Arc<Frame>>> = HashMap::new();
        for entry in tick.previews.iter().chain(&tick.ended) {
            if entry.origin.hub == self.id {
                senders.entry(entry.origin.session).or_insert(None);
            }
        }
        for (session, frame) in senders.iter_mut() {
            let others = |e: &&super::volatile::Entry| {
                e.origin.hub != self.id || e.origin.session != *session
            };
            let previews = tick.previews.iter().filter(others).map(|e| e.json.as_str());
            let ended = tick.ended.iter().filter(others).map(|e| e.json.as_str());
            let (previews, ended): (Vec<_>, Vec<_>) = (previews.collect(), ended.collect());
            if !(previews.is_empty() && ended.is_empty()) {
                *frame = Some(Arc::new(Frame::drag_previews(
                    previews.into_iter(),
                    ended.into_iter(),
                )));
            }
        }
        let shared = Arc::new(Frame::drag_previews(
            tick.previews.iter().map(|e| e.json.as_str()),
            tick.ended.iter().map(|e| e.json.as_str()),
        ));
        let inner = self.lock();
        let (mut sent, mut dropped) = (0u64, 0u64);
        for (id, entry) in &inner.sessions {
            if entry.kill.is_none() || entry.subscriber != Subscriber::Canvas {
                continue;
            }
            let frame = match senders.get(id) {
                None => &shared,
                Some(Some(own)) => own,
                Some(None) => continue,
            };
            match entry.volatile.try_send(Arc::clone(frame)) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        drop(inner);
        metrics::counter!("canopy_ws_volatile_queued_total").increment(sent);
        metrics::counter!("canopy_ws_volatile_dropped_total").increment(dropped);
        true
    }

    /// Closes every socket opened with `key_id` (the key was revoked). Returns how many.
    pub fn close_key(&self, key_id: Uuid) -> usize {
        let mut closed = 0;
        for entry in self.lock().sessions.values_mut() {
            if entry.owner.as_ref().and_then(|o| o.key_id) == Some(key_id) {
                if let Some(kill) = entry.kill.take() {
                    let _ = kill.send(CloseReason::Revoked);
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Closes every socket opened with the browser session whose id hashes to `session`
    /// (signed out or expired). Returns how many.
    pub fn close_session(&self, session: &str) -> usize {
        let mut closed = 0;
        for entry in self.lock().sessions.values_mut() {
            if entry.owner.as_ref().and_then(|o| o.session.as_deref()) == Some(session) {
                if let Some(kill) = entry.kill.take() {
                    let _ = kill.send(CloseReason::Revoked);
                    closed += 1;
                }
            }
        }
        closed
    }

    /// The browser sessions (their id hashes) behind this instance's open sockets.
    pub fn owner_sessions(&self) -> Vec<String> {
        let mut sessions: Vec<String> = self
            .lock()
            .sessions
            .values()
            .filter_map(|e| e.owner.as_ref().and_then(|o| o.session.clone()))
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        sessions
    }

    /// The API keys behind this instance's open sockets.
    pub fn owner_keys(&self) -> Vec<Uuid> {
        let mut keys: Vec<Uuid> = self
            .lock()
            .sessions
            .values()
            .filter_map(|e| e.owner.as_ref().and_then(|o| o.key_id))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Sends a frame that is not part of the stream (no seq: presence) to every canvas
    /// socket. Such frames are volatile (DESIGN.md): a full queue drops this one rather than
    /// close the socket; that socket is closed as a slow consumer by the next stream event
    /// anyway, and re-reads `GET /canvas/presence` when it reconnects.
    pub fn broadcast_to_canvases(&self, frame: Frame) {
        let frame = Arc::new(frame);
        let mut dropped = 0u64;
        for entry in self.lock().sessions.values_mut() {
            if entry.subscriber != Subscriber::Canvas || entry.kill.is_none() {
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) =
                entry.queue.try_send(Arc::clone(&frame))
            {
                dropped += 1;
            }
        }
        metrics::counter!("canopy_ws_volatile_frames_dropped_total").increment(dropped);
    }

    /// Tells every session to reload (the relay could not recover a stretch of the stream).
    pub fn resync_all(&self, reason: &str, delivered: i64) {
        let frame = Arc::new(Frame::resync_required(reason));
        let mut inner = self.lock();
        inner.delivered = delivered;
        for entry in inner.sessions.values_mut() {
            metrics::counter!("canopy_ws_resyncs_total").increment(1);
            if entry.queue.try_send(Arc::clone(&frame)).is_err() {
                if let Some(kill) = entry.kill.take() {
                    let _ = kill.send(CloseReason::SlowConsumer);
                }
            }
        }
    }

    /// Closes every session (graceful shutdown): clients reconnect elsewhere with `since`.
    /// A session registered afterwards is closed as soon as it registers.
    pub fn close_all(&self, reason: CloseReason) {
        let mut inner = self.lock();
        inner.closing = Some(reason);
        for entry in inner.sessions.values_mut() {
            if let Some(kill) = entry.kill.take() {
                let _ = kill.send(reason);
            }
        }
    }
}

fn visible(parents: &ParentMap, subscriber: Subscriber, event: &LiveEvent) -> bool {
    match (subscriber, event.workspace_id) {
        (Subscriber::Canvas, _) | (_, None) => true,
        (Subscriber::Workspace(me), Some(about)) => parents.can_communicate(me, about),
    }
}

/// Keeps the in-memory hierarchy current from the stream itself, so filtering never queries
/// the database. Applied before fan-out: a workspace that was just created or moved is judged
/// by its new place.
fn track_hierarchy_before(
    parents: &mut ParentMap,
    kind: EventKind,
    ws: Uuid,
    payload: &serde_json::Value,
) {
    let parent_field = |name: &str| {
        payload
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
    };
    match kind {
        EventKind::WorkspaceProvisioning
            if payload.get("parent_id").is_some() || !parents.contains(ws) =>
        {
            parents.insert(ws, parent_field("parent_id"))
        }
        EventKind::WorkspaceMoved => parents.insert(ws, parent_field("new_parent_id")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn event(seq: i64, kind: EventKind, ws: Uuid, payload: serde_json::Value) -> LiveEvent {
        LiveEvent {
            seq,
            id: Uuid::new_v4(),
            event_type: kind.as_str().into(),
            workspace_id: Some(ws),
            payload,
            created_at: Utc::now(),
            actor: None,
        }
    }

    #[tokio::test]
    async fn full_queue_closes_the_session_instead_of_dropping() {
        let hub = Hub::with_capacity(ParentMap::new(), 0, 2);
        let (mut slow, _slow_frames) = hub.register(Subscriber::Canvas);
        let (_fast, mut fast) = hub.register(Subscriber::Canvas);
        let ws = Uuid::new_v4();
        for seq in 1..=3 {
            hub.deliver(&event(seq, EventKind::TaskUpdated, ws, json!({})));
            assert_eq!(fast.recv().await.unwrap().seq, Some(seq));
        }
        assert_eq!(slow.kill.try_recv().unwrap(), CloseReason::SlowConsumer);
        assert_eq!(hub.delivered(), 3);
    }

    #[tokio::test]
    async fn a_slow_canvas_loses_previews_never_events_and_is_not_closed_for_them() {
        use crate::realtime::volatile::{DragPreview, VolatileBatch, VOLATILE_QUEUE_CAP};
        let hub = Hub::with_capacity(ParentMap::new(), 0, 4);
        let (mut slow, mut live, mut volatile) = hub.register_socket(Subscriber::Canvas, None);
        let ws = Uuid::new_v4();
        for i in 0..VOLATILE_QUEUE_CAP * 3 {
            hub.deliver_volatile(&VolatileBatch {
                hub: Uuid::new_v4(),
                previews: vec![DragPreview {
                    workspace_id: ws,
                    x: i as f64,
                    y: 0.0,
                    session: 0,
                    actor: None,
                }],
                ended: vec![],
            });
            // One tick per batch: each becomes a frame of its own.
            assert!(hub.flush_previews());
        }
        assert!(
            slow.kill.try_recv().is_err(),
            "previews never close a socket"
        );
        for seq in 1..=4 {
            hub.deliver(&event(seq, EventKind::TaskUpdated, ws, json!({})));
        }
        assert!(slow.kill.try_recv().is_err(), "the event queue had room");
        for seq in 1..=4 {
            assert_eq!(live.recv().await.unwrap().seq, Some(seq));
        }
        let mut kept = 0;
        while let Ok(frame) = volatile.try_recv() {
            assert_eq!(frame.seq, None);
            kept += 1;
        }
        assert_eq!(kept, VOLATILE_QUEUE_CAP, "the rest were dropped");
    }

    fn preview(ws: Uuid, x: f64, session: u64) -> crate::realtime::volatile::DragPreview {
        crate::realtime::volatile::DragPreview {
            workspace_id: ws,
            x,
            y: 0.0,
            session,
            actor: None,
        }
    }

    fn payload(frame: &Frame) -> serde_json::Value {
        let value: serde_json::Value = serde_json::from_str(&frame.text).unwrap();
        assert_eq!(value["event"], "DRAG_PREVIEWS", "{value}");
        assert!(value.get("seq").is_none());
        value["payload"].clone()
    }

    /// `(workspace_id, x)` of each preview in a DRAG_PREVIEWS payload, sorted.
    fn positions(payload: &serde_json::Value) -> Vec<(String, f64)> {
        let mut all: Vec<(String, f64)> = payload["previews"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["workspace_id"].as_str().unwrap().to_string(),
                    p["x"].as_f64().unwrap(),
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    #[tokio::test]
    async fn one_tick_of_previews_from_every_instance_is_one_frame_with_the_latest_positions() {
        use crate::realtime::volatile::{DragEnded, VolatileBatch};
        let hub = Hub::new(ParentMap::new(), 0);
        let (_watcher, _live, mut watcher) = hub.register_socket(Subscriber::Canvas, None);
        let (_other, _other_live, mut other) = hub.register_socket(Subscriber::Canvas, None);
        let (_agent, _agent_live, mut agent) =
            hub.register_socket(Subscriber::Workspace(Uuid::new_v4()), None);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (elsewhere, also_elsewhere) = (Uuid::new_v4(), Uuid::new_v4());
        hub.deliver_volatile(&VolatileBatch {
            hub: elsewhere,
            previews: vec![preview(a, 1.0, 7), preview(c, 1.0, 8)],
            ended: vec![],
        });
        hub.deliver_volatile(&VolatileBatch {
            hub: also_elsewhere,
            previews: vec![preview(b, 1.0, 7)],
            ended: vec![],
        });
        hub.deliver_volatile(&VolatileBatch {
            hub: elsewhere,
            previews: vec![preview(a, 2.0, 7)],
            // c's drag stopped without a drop: its waiting position goes, the end stays.
            ended: vec![DragEnded {
                workspace_id: c,
                session: 8,
                actor: None,
            }],
        });
        assert!(watcher.try_recv().is_err(), "nothing before the tick");
        assert!(hub.flush_previews());
        let frame = watcher.try_recv().unwrap();
        let sent = payload(&frame);
        let mut expected = vec![(a.to_string(), 2.0), (b.to_string(), 1.0)];
        expected.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(positions(&sent), expected, "{sent}");
        assert_eq!(sent["ended"], json!([{ "workspace_id": c }]));
        assert!(watcher.try_recv().is_err(), "one frame per tick");
        let shared = other.try_recv().unwrap();
        assert!(Arc::ptr_eq(&frame, &shared), "encoded once for both");
        assert!(agent.try_recv().is_err(), "agents get no previews");
        assert!(!hub.flush_previews(), "nothing left");
    }

    #[tokio::test]
    async fn a_dragging_socket_gets_the_tick_without_its_own_previews() {
        use crate::realtime::volatile::VolatileBatch;
        let hub = Hub::new(ParentMap::new(), 0);
        let (dragger, _live, mut dragger_frames) = hub.register_socket(Subscriber::Canvas, None);
        let (lone, _lone_live, mut lone_frames) = hub.register_socket(Subscriber::Canvas, None);
        let (_watcher, _watcher_live, mut watcher) = hub.register_socket(Subscriber::Canvas, None);
        let (mine, theirs, lonely) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        hub.deliver_volatile(&VolatileBatch {
            hub: hub.id,
            previews: vec![
                preview(mine, 1.0, dragger.id),
                preview(lonely, 3.0, lone.id),
            ],
            ended: vec![],
        });
        hub.deliver_volatile(&VolatileBatch {
            hub: Uuid::new_v4(),
            // The same session number on another instance is another socket.
            previews: vec![preview(theirs, 2.0, dragger.id)],
            ended: vec![],
        });
        assert!(hub.flush_previews());
        assert_eq!(
            watcher
                .try_recv()
                .unwrap()
                .text
                .matches("workspace_id")
                .count(),
            4
        );
        let own = payload(&dragger_frames.try_recv().unwrap());
        let mut expected = vec![(theirs.to_string(), 2.0), (lonely.to_string(), 3.0)];
        expected.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(positions(&own), expected);
        let lone_sees = payload(&lone_frames.try_recv().unwrap());
        let mut expected = vec![(mine.to_string(), 1.0), (theirs.to_string(), 2.0)];
        expected.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(positions(&lone_sees), expected);

        // A tick made only of one socket's own previews sends that socket nothing.
        hub.deliver_volatile(&VolatileBatch {
            hub: hub.id,
            previews: vec![preview(mine, 5.0, dragger.id)],
            ended: vec![],
        });
        assert!(hub.flush_previews());
        assert!(dragger_frames.try_recv().is_err());
        assert_eq!(
            positions(&payload(&watcher.try_recv().unwrap())),
            [(mine.to_string(), 5.0)]
        );
    }

    #[tokio::test]
    async fn a_position_waiting_for_the_tick_is_not_sent_after_its_drop() {
        use crate::realtime::volatile::VolatileBatch;
        let hub = Hub::new(ParentMap::new(), 0);
        let (_watcher, mut live, mut watcher) = hub.register_socket(Subscriber::Canvas, None);
        let (dropped, dragged) = (Uuid::new_v4(), Uuid::new_v4());
        hub.deliver_volatile(&VolatileBatch {
            hub: Uuid::new_v4(),
            previews: vec![preview(dropped, 1.0, 1), preview(dragged, 1.0, 2)],
            ended: vec![],
        });
        hub.deliver(&event(
            1,
            EventKind::WorkspaceLayoutChanged,
            dropped,
            json!({"x": 9}),
        ));
        assert_eq!(
            live.try_recv().unwrap().seq,
            Some(1),
            "the event does not wait"
        );
        assert!(hub.flush_previews());
        assert_eq!(
            positions(&payload(&watcher.try_recv().unwrap())),
            [(dragged.to_string(), 1.0)]
        );
    }

    #[tokio::test]
    async fn volatile_frames_reach_canvases_only_and_never_close_a_full_one() {
        let hub = Hub::with_capacity(ParentMap::new(), 0, 1);
        let (mut full, _full_frames) = hub.register(Subscriber::Canvas);
        let (_agent, mut agent) = hub.register(Subscriber::Workspace(Uuid::new_v4()));
        hub.broadcast_to_canvases(Frame::transient("PRESENCE_JOINED", json!({})));
        hub.broadcast_to_canvases(Frame::transient("PRESENCE_LEFT", json!({})));
        assert!(
            full.kill.try_recv().is_err(),
            "a dropped volatile frame closes nothing"
        );
        assert!(agent.try_recv().is_err(), "agents get no presence");
    }

    #[tokio::test]
    async fn close_key_closes_only_that_keys_sockets() {
        let hub = Hub::new(ParentMap::new(), 0);
        let key = Uuid::new_v4();
        let owner = |key_id| {
            Some(SessionOwner {
                actor: crate::domain::people::Actor::user("x", "x"),
                key_id,
                session: None,
            })
        };
        let (mut revoked, _a) = hub.register_owned(Subscriber::Canvas, owner(Some(key)));
        let (mut other, _b) = hub.register_owned(Subscriber::Canvas, owner(Some(Uuid::new_v4())));
        assert_eq!(hub.owner_keys().len(), 2);
        assert_eq!(hub.close_key(key), 1);
        assert_eq!(revoked.kill.try_recv().unwrap(), CloseReason::Revoked);
        assert!(other.kill.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_session_registered_after_close_all_is_closed_at_once() {
        let hub = Hub::new(ParentMap::new(), 0);
        let (mut before, _frames) = hub.register(Subscriber::Canvas);
        hub.close_all(CloseReason::GoingAway);
        assert_eq!(before.kill.try_recv().unwrap(), CloseReason::GoingAway);
        let (mut late, _late_frames) = hub.register(Subscriber::Canvas);
        assert_eq!(late.kill.try_recv().unwrap(), CloseReason::GoingAway);
    }

    #[tokio::test]
    async fn workspace_subscribers_see_only_reachable_workspaces() {
        let (team_a, team_b, a1) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let root = Uuid::new_v4();
        let parents = ParentMap::from_pairs([
            (root, None),
            (team_a, Some(root)),
            (team_b, Some(root)),
            (a1, Some(team_a)),
        ]);
        let hub = Hub::new(parents, 0);
        let (_agent, mut agent) = hub.register(Subscriber::Workspace(a1));
        let b1 = Uuid::new_v4();
        hub.deliver(&event(
            1,
            EventKind::WorkspaceProvisioning,
            b1,
            json!({"parent_id": team_b}),
        ));
        hub.deliver(&event(2, EventKind::TaskUpdated, b1, json!({})));
        assert!(agent.try_recv().is_err(), "b1 is in another team");
        hub.deliver(&event(
            3,
            EventKind::WorkspaceMoved,
            b1,
            json!({"old_parent_id": team_b, "new_parent_id": team_a}),
        ));
        assert_eq!(agent.try_recv().unwrap().seq, Some(3));
        hub.deliver(&event(4, EventKind::TaskUpdated, b1, json!({})));
        assert_eq!(agent.try_recv().unwrap().seq, Some(4));
    }
}
