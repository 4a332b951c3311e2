//! One task per WebSocket, owning the socket: it selects over inbound frames, its hub queue, a
//! ping timer and the hub's close signal. Cleanup happens in `Drop` (the hub registration).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, CloseCode, CloseReason as WsCloseReason};

use super::frame::Frame;
use super::hub::{CloseReason, Hub, Registration, Subscriber};
use crate::store::{events as stream, Store, StoreError};

pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A socket that sent nothing (not even a pong) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest client frame accepted.
pub const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;
/// Invalid client frames tolerated before the socket is closed as abusive.
const MAX_INVALID_FRAMES: u32 = 10;
const REPLAY_BATCH: i64 = 1000;
/// Frames written per wake-up of a session before it yields to other sockets.
const MAX_BURST: usize = 64;
/// Close code for a subscriber whose queue filled up.
pub const SLOW_CONSUMER_CLOSE_CODE: u16 = 4008;

pub struct SessionContext {
    pub hub: Arc<Hub>,
    pub store: Store,
    pub instance_id: String,
    pub epoch: String,
}

pub struct Resume {
    pub since: i64,
    pub epoch: Option<String>,
}

/// Runs a session to its end. Spawned on the worker that accepted the socket (the message
/// stream is not `Send`).
pub async fn run(
    ctx: Arc<SessionContext>,
    subscriber: Subscriber,
    resume: Option<Resume>,
    mut socket: actix_ws::Session,
    stream: actix_ws::MessageStream,
) {
    let mut inbound = stream
        .max_frame_size(MAX_CLIENT_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_CLIENT_FRAME_BYTES);
    // Register before reading history: everything after `delivered` reaches the queue, so the
    // replay below only needs `(since, delivered]`.
    let mut registration = ctx.hub.register(subscriber);
    let mut last_sent = registration.delivered;

    if socket
        .text(
            Frame::connected(registration.delivered, &ctx.instance_id, &ctx.epoch)
                .text
                .clone(),
        )
        .await
        .is_err()
    {
        return;
    }
    if let Some(resume) = resume {
        match replay(&ctx, subscriber, &resume, &registration, &mut socket).await {
            Ok(ReplayOutcome::Replayed(up_to)) => last_sent = up_to,
            Ok(ReplayOutcome::Resync(reason)) => {
                metrics::counter!("canopy_ws_resyncs_total").increment(1);
                if socket
                    .text(Frame::resync_required(reason).text.clone())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(ReplayError::Socket) => return,
            Err(ReplayError::Store(e)) => {
                tracing::warn!(error = %e, "resume failed; asking the client to resync");
                if socket
                    .text(Frame::resync_required("history unavailable").text.clone())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    let close = live_loop(&mut registration, &mut inbound, &mut socket, last_sent).await;
    let _ = socket.close(close).await;
}

async fn live_loop(
    registration: &mut Registration,
    inbound: &mut actix_ws::AggregatedMessageStream,
    socket: &mut actix_ws::Session,
    mut last_sent: i64,
) -> Option<WsCloseReason> {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = Instant::now();
    let mut invalid_frames = 0u32;
    loop {
        tokio::select! {
            frame = registration.frames.recv() => {
                // Drain a burst without yielding: actix-ws buffers the frames and the connection
                // writes them with one syscall instead of one per frame.
                let mut next = Some(frame?);
                let (mut taken, mut sent) = (0, 0u64);
                while let Some(frame) = next.take() {
                    // Frames the replay already covered are skipped.
                    if !matches!(frame.seq, Some(seq) if seq <= last_sent) {
                        if socket.text(frame.text.clone()).await.is_err() {
                            return None;
                        }
                        sent += 1;
                        if let Some(seq) = frame.seq {
                            last_sent = seq;
                        }
                    }
                    taken += 1;
                    if taken < MAX_BURST {
                        next = registration.frames.try_recv().ok();
                    }
                }
                metrics::counter!("canopy_ws_frames_sent_total").increment(sent);
            }
            reason = &mut registration.kill => {
                return Some(match reason {
                    Ok(CloseReason::SlowConsumer) => WsCloseReason {
                        code: CloseCode::Other(SLOW_CONSUMER_CLOSE_CODE),
                        description: Some("slow consumer".into()),
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
                    None | Some(Ok(AggregatedMessage::Close(_))) => return None,
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if socket.pong(&bytes).await.is_err() {
                            return None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Text(text))) => match client_reply(&text) {
                        Ok(reply) => {
                            if socket.text(reply).await.is_err() {
                                return None;
                            }
                        }
                        Err(error) => {
                            invalid_frames += 1;
                            if invalid_frames > MAX_INVALID_FRAMES {
                                return Some(policy_close("too many invalid frames"));
                            }
                            if socket.text(error_frame(error)).await.is_err() {
                                return None;
                            }
                        }
                    },
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        invalid_frames += 1;
                        if invalid_frames > MAX_INVALID_FRAMES {
                            return Some(policy_close("too many invalid frames"));
                        }
                        if socket.text(error_frame("binary frames are not supported")).await.is_err() {
                            return None;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "websocket protocol error");
                        return Some(WsCloseReason { code: CloseCode::Size, description: Some("frame too large or malformed".into()) });
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

/// The answer to a client text frame, or why it is invalid.
fn client_reply(text: &str) -> Result<String, &'static str> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "frame is not valid JSON")?;
    match value.get("type").and_then(|t| t.as_str()) {
        Some("ping") => Ok(r#"{"type":"pong"}"#.to_string()),
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
    if resume.epoch.as_deref().is_some_and(|e| e != ctx.epoch) {
        return Ok(ReplayOutcome::Resync("epoch changed"));
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
