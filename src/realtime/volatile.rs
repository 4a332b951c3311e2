//! The volatile lane: drag previews beside the sequenced stream (DESIGN "Volatile messages").
//!
//! A canvas socket sends `{"type":"drag","workspace_id","x","y"}` while a person drags a node.
//! The instance that holds the socket keeps the latest position per node ([`DragTracker`]) and
//! publishes what moved as one [`VolatileBatch`] on the backplane's volatile channel (Redis
//! `<prefix>volatile:broadcast`, never `events:broadcast`) as soon as its publisher is free:
//! positions that arrive while a publish is in flight are coalesced into the next one, and no
//! timer holds them back.
//!
//! Every instance's Relay hands a batch to its Hub, which merges it into a [`PreviewOutbox`]
//! (latest position per node wins, from whichever instance) and, at most once per preview
//! tick ([`DEFAULT_PREVIEW_TICK`], `DRAG_PREVIEW_TICK_MS`), sends every canvas socket ONE
//! DRAG_PREVIEWS frame with all of that tick's previews and ended drags. The frame is encoded
//! once for all the sockets that get the same set; only the few sockets that dragged in the
//! tick get a copy without their own entries. A socket therefore gets at most one preview
//! frame per tick however many people drag on however many instances. The first preview after
//! a quiet tick goes out at once (the tick only spaces frames, it never delays the first).
//!
//! Each socket receives them through a small queue of its own, written only when no sequenced
//! frame is waiting, and dropped when full: previews have no seq, are not stored, not replayed,
//! and a slow canvas loses previews, never events.
//!
//! A drag ends silently when its node's WORKSPACE_LAYOUT_CHANGED (the drop's PATCH) or
//! WORKSPACE_REMOVED is delivered; otherwise — its socket closed, or no frame for
//! [`DRAG_IDLE_TIMEOUT`] — it ends with an `ended` entry, so other canvases put the node back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;
use uuid::Uuid;

use super::Hub;
use crate::domain::people::Actor;
use crate::events::Backplane;

/// The shortest time between two DRAG_PREVIEWS frames to one socket (about 30 per second),
/// unless `DRAG_PREVIEW_TICK_MS` says otherwise.
pub const DEFAULT_PREVIEW_TICK: Duration = Duration::from_millis(33);
/// How often an instance looks for drags that went idle (ended without a drop).
pub const DRAG_IDLE_CHECK: Duration = Duration::from_millis(100);
/// A drag with no frame for this long, and no drop, ends with an `ended` entry (DRAG_PREVIEWS).
pub const DRAG_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Drag frames one socket may send per second (a canvas sends about 30); more are dropped and
/// counted in `canopy_ws_drag_frames_dropped_total`.
pub const DRAG_FRAMES_PER_SECOND: u32 = 60;
/// Volatile frames a socket may have waiting; more are dropped (`canopy_ws_volatile_dropped_total`).
pub const VOLATILE_QUEUE_CAP: usize = 64;

/// The latest position of one dragged node, from one socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DragPreview {
    /// The dragged node.
    pub workspace_id: Uuid,
    /// Its horizontal position on the canvas, px (bounded like layout positions).
    pub x: f64,
    /// Its vertical position on the canvas, px.
    pub y: f64,
    /// The sending socket, within its hub: it does not get its own previews back.
    pub session: u64,
    /// Who drags: the person behind the socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// A drag that stopped without a drop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DragEnded {
    /// The node put back.
    pub workspace_id: Uuid,
    /// The socket whose drag it was, within its hub.
    pub session: u64,
    /// Who dragged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// One tick's volatile messages from one hub, as the backplane carries them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolatileBatch {
    /// The publishing hub (random per process), so a socket's own previews are not echoed.
    pub hub: Uuid,
    /// The latest position per dragged node this tick.
    pub previews: Vec<DragPreview>,
    /// Drags that stopped without a drop this tick.
    pub ended: Vec<DragEnded>,
}

impl VolatileBatch {
    /// Nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.previews.is_empty() && self.ended.is_empty()
    }
}

struct ActiveDrag {
    session: u64,
    last_frame: Instant,
    actor: Option<Actor>,
}

/// The drags of one instance's sockets: the latest position per node since the last tick, and
/// which nodes are being dragged by whom.
#[derive(Default)]
pub struct DragTracker {
    pending: HashMap<Uuid, DragPreview>,
    active: HashMap<Uuid, ActiveDrag>,
    ended: Vec<DragEnded>,
}

impl DragTracker {
    /// A drag frame: the node is at (x, y) now. Replaces any position not yet published.
    pub fn moved(
        &mut self,
        session: u64,
        workspace_id: Uuid,
        (x, y): (f64, f64),
        actor: Option<Actor>,
        now: Instant,
    ) {
        self.pending.insert(
            workspace_id,
            DragPreview {
                workspace_id,
                x,
                y,
                session,
                actor: actor.clone(),
            },
        );
        self.active.insert(
            workspace_id,
            ActiveDrag {
                session,
                last_frame: now,
                actor,
            },
        );
    }

    /// The node's authoritative position (or its removal) was delivered: the drag is over and
    /// needs no `ended` entry. A position not yet published goes too: sent after the drop, it
    /// would draw the node back at a stale spot on other canvases with no `ended` entry to follow.
    pub fn dropped(&mut self, workspace_id: Uuid) {
        self.active.remove(&workspace_id);
        self.pending.remove(&workspace_id);
    }

    /// A socket closed: its drags end now (with `ended` entries), and its unpublished positions go.
    pub fn session_closed(&mut self, session: u64) {
        self.pending.retain(|_, p| p.session != session);
        let ended: Vec<Uuid> = self
            .active
            .iter()
            .filter(|(_, drag)| drag.session == session)
            .map(|(ws, _)| *ws)
            .collect();
        for workspace_id in ended {
            if let Some(drag) = self.active.remove(&workspace_id) {
                self.ended.push(DragEnded {
                    workspace_id,
                    session,
                    actor: drag.actor,
                });
            }
        }
    }

    /// What to publish this tick: the latest positions, and the drags that ended (socket
    /// closed, or idle past [`DRAG_IDLE_TIMEOUT`] at `now`).
    pub fn tick(&mut self, hub: Uuid, now: Instant) -> VolatileBatch {
        let idle: Vec<Uuid> = self
            .active
            .iter()
            .filter(|(_, drag)| now.duration_since(drag.last_frame) >= DRAG_IDLE_TIMEOUT)
            .map(|(ws, _)| *ws)
            .collect();
        for workspace_id in idle {
            if let Some(drag) = self.active.remove(&workspace_id) {
                self.ended.push(DragEnded {
                    workspace_id,
                    session: drag.session,
                    actor: drag.actor,
                });
            }
        }
        VolatileBatch {
            hub,
            previews: self.pending.drain().map(|(_, p)| p).collect(),
            ended: std::mem::take(&mut self.ended),
        }
    }
}

/// Counts one socket's drag frames per one-second window.
pub struct DragRate {
    window_start: Instant,
    frames: u32,
}

impl DragRate {
    /// A fresh window starting at `now`.
    pub fn new(now: Instant) -> DragRate {
        DragRate {
            window_start: now,
            frames: 0,
        }
    }

    /// Whether one more frame fits in this second's budget.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.frames = 0;
        }
        self.frames += 1;
        self.frames <= DRAG_FRAMES_PER_SECOND
    }
}

/// Publishes this instance's drags until `shutdown` flips: as soon as a drag frame arrives
/// (positions that arrive during a publish go in the next one), and every [`DRAG_IDLE_CHECK`]
/// for drags that went idle. A failed publish loses those previews, which the next position
/// supersedes.
pub async fn run(hub: Arc<Hub>, backplane: Backplane, mut shutdown: watch::Receiver<bool>) {
    let mut idle_check = tokio::time::interval(DRAG_IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = hub.drags_waiting() => {}
            _ = idle_check.tick() => {}
            _ = shutdown.changed() => return,
        }
        let batch = hub.take_drags(Instant::now());
        if batch.is_empty() {
            continue;
        }
        if let Err(e) = backplane.publish_volatile(batch).await {
            metrics::counter!("canopy_volatile_publish_failures_total").increment(1);
            tracing::debug!(error = %e, "drag previews not published");
        }
    }
}

/// Where a preview came from: the hub (instance) and its socket there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The hub (instance) the socket belongs to.
    pub hub: Uuid,
    /// The socket within that hub.
    pub session: u64,
}

/// One entry of a DRAG_PREVIEWS frame, serialized once, with the socket it came from (which
/// does not get it back).
pub struct Entry {
    /// The socket the entry came from.
    pub origin: Origin,
    /// The entry's JSON object, as in the frame's `previews` or `ended` array.
    pub json: String,
}

/// What one preview tick sends: the latest position per node, and the drags that ended.
#[derive(Default)]
pub struct PreviewTick {
    /// DRAG_PREVIEWS' `previews` entries.
    pub previews: Vec<Entry>,
    /// DRAG_PREVIEWS' `ended` entries.
    pub ended: Vec<Entry>,
}

impl PreviewTick {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.previews.is_empty() && self.ended.is_empty()
    }
}

/// The receiving side: previews and ended drags relayed (from every instance) since this
/// hub's last DRAG_PREVIEWS frame. The latest position per node wins; an ended drag takes its
/// node's older position out, so a frame never shows a node after its drag ended.
#[derive(Default)]
pub struct PreviewOutbox {
    previews: HashMap<Uuid, (Origin, DragPreview)>,
    ended: Vec<(Origin, DragEnded)>,
}

impl PreviewOutbox {
    /// Adds one instance's batch. A batch's ended drags are older than its previews (a
    /// tracker forgets a drag when it ends it, so a preview of the same node in the same batch
    /// is a newer drag), and a frame lists ended drags for the page to apply first.
    pub fn merge(&mut self, batch: &VolatileBatch) {
        for ended in &batch.ended {
            let origin = Origin {
                hub: batch.hub,
                session: ended.session,
            };
            if matches!(self.previews.get(&ended.workspace_id), Some((o, _)) if *o == origin) {
                self.previews.remove(&ended.workspace_id);
            }
            self.ended.push((origin, ended.clone()));
        }
        for preview in &batch.previews {
            let origin = Origin {
                hub: batch.hub,
                session: preview.session,
            };
            self.previews
                .insert(preview.workspace_id, (origin, preview.clone()));
        }
    }

    /// The node's layout event (its drop) or removal was delivered: a position still waiting
    /// here was sent before it and would draw the node at a stale spot.
    pub fn dropped(&mut self, workspace_id: Uuid) {
        self.previews.remove(&workspace_id);
    }

    /// Nothing waits for the next tick.
    pub fn is_empty(&self) -> bool {
        self.previews.is_empty() && self.ended.is_empty()
    }

    /// Takes everything waiting, each entry serialized once.
    pub fn take(&mut self) -> PreviewTick {
        PreviewTick {
            previews: self
                .previews
                .drain()
                .map(|(_, (origin, p))| Entry {
                    origin,
                    json: super::frame::preview_entry(&p),
                })
                .collect(),
            ended: self
                .ended
                .drain(..)
                .map(|(origin, e)| Entry {
                    origin,
                    json: super::frame::ended_entry(&e),
                })
                .collect(),
        }
    }
}

/// Sends this hub's waiting previews to its canvas sockets until `shutdown` flips: at once
/// when the last frame went out at least `tick` ago, otherwise when `tick` has passed since
/// it, so each socket gets at most one DRAG_PREVIEWS frame per `tick`.
pub async fn deliver(hub: Arc<Hub>, tick: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut last_sent: Option<TokioInstant> = None;
    loop {
        tokio::select! {
            _ = hub.previews_waiting() => {}
            _ = shutdown.changed() => return,
        }
        if let Some(due) = last_sent.map(|t| t + tick) {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.changed() => return,
            }
        }
        if hub.flush_previews() {
            last_sent = Some(TokioInstant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_position_per_node_wins_within_a_tick() {
        let mut drags = DragTracker::default();
        let (hub, ws, t0) = (Uuid::new_v4(), Uuid::new_v4(), Instant::now());
        drags.moved(1, ws, (1.0, 1.0), None, t0);
        drags.moved(1, ws, (2.0, 3.0), None, t0);
        let batch = drags.tick(hub, t0);
        assert_eq!(batch.previews.len(), 1);
        assert_eq!((batch.previews[0].x, batch.previews[0].y), (2.0, 3.0));
        assert!(drags.tick(hub, t0).is_empty(), "nothing new, nothing sent");
    }

    #[test]
    fn a_drag_ends_on_idle_or_close_but_not_after_a_drop() {
        let mut drags = DragTracker::default();
        let (hub, a, b, c) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let t0 = Instant::now();
        drags.moved(1, a, (0.0, 0.0), None, t0);
        drags.moved(1, b, (0.0, 0.0), None, t0);
        drags.moved(2, c, (0.0, 0.0), None, t0);
        drags.tick(hub, t0);
        drags.dropped(b);
        drags.session_closed(2);
        let now = drags.tick(hub, t0 + Duration::from_millis(100));
        assert_eq!(
            now.ended.iter().map(|e| e.workspace_id).collect::<Vec<_>>(),
            [c]
        );
        let later = drags.tick(hub, t0 + DRAG_IDLE_TIMEOUT);
        assert_eq!(
            later
                .ended
                .iter()
                .map(|e| e.workspace_id)
                .collect::<Vec<_>>(),
            [a]
        );
        assert!(drags.tick(hub, t0 + DRAG_IDLE_TIMEOUT * 2).is_empty());
    }

    #[test]
    fn a_position_queued_before_the_drop_is_not_published_after_it() {
        let mut drags = DragTracker::default();
        let (hub, ws, t0) = (Uuid::new_v4(), Uuid::new_v4(), Instant::now());
        drags.moved(1, ws, (5.0, 5.0), None, t0);
        drags.dropped(ws);
        assert!(drags.tick(hub, t0).is_empty(), "no preview after the drop");
    }

    #[test]
    fn the_rate_resets_every_second() {
        let t0 = Instant::now();
        let mut rate = DragRate::new(t0);
        assert!((0..DRAG_FRAMES_PER_SECOND).all(|_| rate.allow(t0)));
        assert!(!rate.allow(t0));
        assert!(rate.allow(t0 + Duration::from_secs(1)));
    }
}
