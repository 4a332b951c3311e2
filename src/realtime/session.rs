//! One task per WebSocket: it greets the client (CONNECTED, the resume replay), then selects
//! over inbound frames, a ping timer and the hub's close signal. Live frames do not pass
//! through it: the response body reads them from the hub (see `outbound`). Cleanup happens in
//! `Drop` (the hub registration).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{CloseCode, CloseReason as WsCloseReason};
use uuid::Uuid;

use super::frame::Frame;
use super::hub::{CloseReason, Hub, Registration, Subscriber};
use super::inbound::{ClientMessage, Inbound, InboundError};
use super::outbound::LiveGate;
use super::volatile::DragRate;
use crate::store::{events as stream, Store, StoreError};

/// How often the server pings a socket.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A socket that sent nothing (not even a pong) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Invalid client frames tolerated before the socket is closed as abusive.
const MAX_INVALID_FRAMES: u32 = 10;
const REPLAY_BATCH: i64 = 1000;
/// Close code for a subscriber whose queue filled up.
pub const SLOW_CONSUMER_CLOSE_CODE: u16 = 4008;
/// Close code for a socket whose API key (or the key behind its session) was revoked.
pub const REVOKED_CLOSE_CODE: u16 = 4001;

/// What every session of this instance shares.
pub struct SessionContext {
    /// Where the session registers for live events.
    pub hub: Arc<Hub>,
    /// For the resume replay.
    pub store: Store,
    /// This process, as CONNECTED names it.
    pub instance_id: String,
    /// The stream's epoch, as CONNECTED names it (a resume from another epoch resyncs).
    pub epoch: String,
    /// Who this socket's drag frames are from, when its principal may move workspaces (the
    /// role PATCH /workspaces/:id requires); `None`: drag frames are refused.
    pub drag_actor: Option<crate::domain::people::Actor>,
}

/// A client's resume position: `?since=<seq>&epoch=<epoch>` on the socket's URL.
pub struct Resume {
    /// The last seq the client applied.
    pub since: i64,
    /// The epoch that seq belongs to; required when `since` is above 0.
    pub epoch: Option<String>,
}

/// Runs a session to its end. Spawned on the worker that accepted the socket (the message
/// stream is not `Send`). `registration` was made before the response was built, so every
/// event after `registration.delivered` is in the live queue the response body reads.
pub async fn run(
    ctx: Arc<SessionContext>,
    subscriber: Subscriber,
    resume: Option<Resume>,
    registration: Registration,
    gate: Arc<LiveGate>,
    mut socket: actix_ws::Session,
    mut inbound: Inbound,
) {
    // Boxed: a task's allocation is as big as its largest state, and an idle socket holds its
    // task for hours in `serve`; the greeting's state (the resume replay and its store round
    // trips) then lives in a box of its own, freed once the greeting is sent.
    let greeting = Box::pin(greet(&ctx, subscriber, resume, &registration, &mut socket)).await;
    let close = match greeting {
        Some(last_sent) => {
            gate.open(last_sent);
            serve(&ctx, registration, &mut inbound, &mut socket).await
        }
        None => None,
    };
    gate.shut();
    let _ = socket.close(close).await;
}

/// Sends CONNECTED and, on a resume, the missed events or RESYNC_REQUIRED. Returns the seq the
/// client is current to, or `None` if the socket is gone.
async fn greet(
    ctx: &SessionContext,
    subscriber: Subscriber,
    resume: Option<Resume>,
    registration: &Registration,
    socket: &mut actix_ws::Session,
) -> Option<i64> {
    let connected = Frame::connected(registration.delivered, &ctx.instance_id, &ctx.epoch);
    socket.text(connected.text).await.ok()?;
    metrics::counter!("canopy_ws_frames_sent_total").increment(1);
    let Some(resume) = resume else {
        return Some(registration.delivered);
    };
    let resync = match replay(ctx, subscriber, &resume, registration, socket).await {
        Ok(ReplayOutcome::Replayed(up_to)) => return Some(up_to),
        Ok(ReplayOutcome::Resync(reason)) => reason,
        Err(ReplayError::Socket) => return None,
        Err(ReplayError::Store(e)) => {
            tracing::warn!(error = %e, "resume failed; asking the client to resync");
            "history unavailable"
        }
    };
    metrics::counter!("canopy_ws_resyncs_total").increment(1);
    socket
        .text(Frame::resync_required(resync).text)
        .await
        .ok()?;
    // The client reloads its state; live events continue after what the hub had delivered.
    Some(registration.delivered)
}

/// The live part of a session: live frames flow through the response body on their own; this
/// task answers the client, pings it, and ends the session on a close, a timeout or the hub's
/// signal.
async fn serve(
    ctx: &SessionContext,
    mut registration: Registration,
    inbound: &mut Inbound,
    socket: &mut actix_ws::Session,
) -> Option<WsCloseReason> {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = Instant::now();
    let mut invalid_frames = 0u32;
    let mut drag_rate = DragRate::new(last_heard);
    loop {
        tokio::select! {
            reason = &mut registration.kill => {
                return Some(match reason {
                    Ok(CloseReason::SlowConsumer) => WsCloseReason {
                        code: CloseCode::Other(SLOW_CONSUMER_CLOSE_CODE),
                        description: Some("slow consumer".into()),
                    },
                    Ok(CloseReason::Revoked) => WsCloseReason {
                        code: CloseCode::Other(REVOKED_CLOSE_CODE),
                        description: Some("key revoked".into()),
                    },
                    Ok(CloseReason::GoingAway) | Err(_) => WsCloseReason {
                        code: CloseCode::Away,
                        description: Some("server shutting down".into()),
                    },
                });
            }
            message = inbound.recv() => {
                last_heard = Instant::now();
                match message {
                    None | Some(Ok(ClientMessage::Close(_))) => return None,
                    Some(Ok(ClientMessage::Ping(bytes))) => {
                        if socket.pong(&bytes).await.is_err() {
                            return None;
                        }
                    }
                    Some(Ok(ClientMessage::Pong(_))) => {}
                    Some(Ok(message)) => {
                        let refused = match message {
                            ClientMessage::Text(text) => match client_message(&text) {
                                Ok(ClientRequest::Ping) => {
                                    if socket.text(r#"{"type":"pong"}"#).await.is_err() {
                                        return None;
                                    }
                                    None
                                }
                                Ok(ClientRequest::Drag { workspace_id, x, y }) => {
                                    drag(ctx, &registration, &mut drag_rate, last_heard, workspace_id, (x, y))
                                        .err()
                                }
                                Err(error) => Some(error),
                            },
                            _ => Some("binary frames are not supported"),
                        };
                        if let Some(error) = refused {
                            invalid_frames += 1;
                            if invalid_frames > MAX_INVALID_FRAMES {
                                return Some(policy_close("too many invalid frames"));
                            }
                            if socket.text(error_frame(error)).await.is_err() {
                                return None;
                            }
                        }
                    }
                    // The connection is gone under the payload: no close frame can reach it.
                    Some(Err(InboundError::Transport)) => return None,
                    // Too big (1009), a protocol violation (1002) or bad UTF-8 (1007).
                    Some(Err(error)) => {
                        tracing::debug!(%error, "websocket client frame refused");
                        return Some(WsCloseReason {
                            code: error.close_code(),
                            description: Some(error.to_string()),
                        });
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    return Some(policy_close("idle timeout"));
                }
                if socket.ping(b"").await.is_err() {
                    return None;
                }
            }
        }
    }
}

fn policy_close(description: &str) -> WsCloseReason {
    WsCloseReason {
        code: CloseCode::Policy,
        description: Some(description.into()),
    }
}

fn error_frame(message: &str) -> String {
    serde_json::json!({ "type": "error", "error": message }).to_string()
}

/// A drag frame from this socket: handed to the hub (at most [`DragRate`]'s frames a second;
/// the rest are dropped, not refused), or why it is refused.
fn drag(
    ctx: &SessionContext,
    registration: &Registration,
    rate: &mut DragRate,
    now: Instant,
    workspace_id: Uuid,
    position: (f64, f64),
) -> Result<(), &'static str> {
    let Some(actor) = ctx.drag_actor.clone() else {
        return Err(
            "drag: only a canvas of someone who may move workspaces (editor) may send drag frames",
        );
    };
    // The hub's hierarchy holds every live workspace (kept from the stream, no query): a drag
    // of any other id would reach every canvas for nothing.
    if !ctx.hub.knows_workspace(workspace_id) {
        return Err("drag: workspace_id is not a live workspace");
    }
    if rate.allow(now) {
        metrics::counter!("canopy_ws_drag_frames_total").increment(1);
        ctx.hub
            .drag_moved(registration.id, workspace_id, position, Some(actor));
    } else {
        metrics::counter!("canopy_ws_drag_frames_dropped_total").increment(1);
    }
    Ok(())
}

/// What a client text frame asks for.
#[derive(Debug, PartialEq)]
enum ClientRequest {
    /// `{"type":"ping"}`: answered with `{"type":"pong"}`.
    Ping,
    /// `{"type":"drag","workspace_id","x","y"}`: a node is being dragged (`volatile`); no
    /// answer.
    Drag { workspace_id: Uuid, x: f64, y: f64 },
}

/// Parses a client text frame, or says why it is invalid.
fn client_message(text: &str) -> Result<ClientRequest, &'static str> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "frame is not valid JSON")?;
    match value.get("type").and_then(|t| t.as_str()) {
        Some("ping") => Ok(ClientRequest::Ping),
        Some("drag") => {
            let workspace_id = value
                .get("workspace_id")
                .and_then(|v| v.as_str())
                .and_then(crate::domain::ids::parse_uuid)
                .ok_or("drag: workspace_id must be a workspace UUID")?;
            // The bound a PATCH's x/y has: what a drag previews, a drop must be able to save.
            let coordinate = |name: &str| {
                value
                    .get(name)
                    .and_then(|v| v.as_f64())
                    .and_then(|v| crate::domain::validation::parse_position(name, v).ok())
            };
            match (coordinate("x"), coordinate("y")) {
                (Some(x), Some(y)) => Ok(ClientRequest::Drag { workspace_id, x, y }),
                _ => Err("drag: x and y must be numbers between -10000000 and 10000000"),
            }
        }
        Some(_) => Err("unknown message type"),
        None => Err("frame has no type"),
    }
}

enum ReplayOutcome {
    Replayed(i64),
    Resync(&'static str),
}

enum ReplayError {
    Socket,
    Store(StoreError),
}

/// Sends every event in `(since, delivered]` the subscriber may see, oldest first.
async fn replay(
    ctx: &SessionContext,
    subscriber: Subscriber,
    resume: &Resume,
    registration: &Registration,
    socket: &mut actix_ws::Session,
) -> Result<ReplayOutcome, ReplayError> {
    // A seq means nothing without its stream: `since` past 0 must say which stream it counts
    // in, or a client that saw another database's seq 5 would take this one's 6 as its next.
    match resume.epoch.as_deref() {
        Some(epoch) if epoch != ctx.epoch => return Ok(ReplayOutcome::Resync("epoch changed")),
        None if resume.since > 0 => return Ok(ReplayOutcome::Resync("epoch required to resume")),
        _ => {}
    }
    let (head, oldest) = ctx
        .store
        .run(|c| Ok::<_, StoreError>((stream::stream_head(c)?, stream::oldest_live_seq(c)?)))
        .await
        .map_err(ReplayError::Store)?;
    if resume.since > head.last_seq || resume.since < 0 {
        return Ok(ReplayOutcome::Resync(
            "since is not a position in this stream",
        ));
    }
    let first_kept = oldest.unwrap_or(head.last_seq + 1);
    if resume.since + 1 < first_kept {
        return Ok(ReplayOutcome::Resync(
            "since is older than the retained stream",
        ));
    }
    let up_to = registration.delivered;
    let mut after = resume.since;
    while after < up_to {
        let batch = ctx
            .store
            .run(move |c| {
                stream::live_events_between(c, after, Some(up_to), REPLAY_BATCH)
                    .map_err(StoreError::from)
            })
            .await
            .map_err(ReplayError::Store)?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for event in batch.iter().filter(|e| ctx.hub.may_see(subscriber, e)) {
            socket
                .text(Frame::event(event).text)
                .await
                .map_err(|_| ReplayError::Socket)?;
            metrics::counter!("canopy_ws_frames_sent_total").increment(1);
        }
    }
    // A client that is ahead of this instance (it came from a faster one) skips what it has.
    Ok(ReplayOutcome::Replayed(up_to.max(resume.since)))
}
