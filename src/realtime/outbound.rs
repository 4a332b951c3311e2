//! The write side of a socket. Live frames go from the hub's queue straight into the
//! connection's response body, already encoded as WebSocket frames by the hub (once per event,
//! shared by every socket). A delivery therefore wakes one task — the connection that writes
//! the socket — and frames that queue up together leave in one write.
//!
//! Everything else (CONNECTED, the resume replay, pongs, pings, errors, the close frame) is
//! sent by the session task through actix-ws, whose body this one wraps and always polls
//! first. A gate keeps live frames back until the session has sent CONNECTED and the replay,
//! and shuts them off before it sends a close frame, so the order on the wire is always:
//! CONNECTED, replay, live frames above the replayed seq, close.

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use super::frame::Frame;

/// Live frames for one session, as the hub queues them.
pub type LiveFrames = mpsc::Receiver<Arc<Frame>>;
/// Volatile frames (drag previews) for one session: written only when no live frame waits.
pub type VolatileFrames = mpsc::Receiver<Arc<Frame>>;

/// Frames written before the sent-frames counter is updated (it is a map lookup, too costly to
/// pay per frame at 200,000 frames/s).
const REPORT_EVERY: u64 = 256;

/// Whether live frames may flow, and above which seq. Opened once by the session after the
/// replay, shut when it closes the socket.
pub struct LiveGate {
    after: AtomicI64,
    waker: AtomicWaker,
}

/// The gate's value while live frames are held back.
const SHUT: i64 = i64::MIN;

impl LiveGate {
    /// A shut gate: live frames wait until [`LiveGate::open`].
    pub fn new() -> Arc<LiveGate> {
        Arc::new(LiveGate {
            after: AtomicI64::new(SHUT),
            waker: AtomicWaker::new(),
        })
    }

    /// Lets live frames through, skipping those at or below `after` (the replay sent them).
    /// Everything the session sent before this call is written first.
    pub fn open(&self, after: i64) {
        self.after.store(after.max(SHUT + 1), Ordering::Release);
        self.waker.wake();
    }

    /// Stops live frames for good: the session is about to send its close frame.
    pub fn shut(&self) {
        self.after.store(SHUT, Ordering::Release);
        self.waker.wake();
    }
}

/// The response body of a WebSocket: the session's frames (actix-ws), then live frames.
pub struct OutboundBody {
    control: BoxBody,
    live: LiveFrames,
    volatile: Option<VolatileFrames>,
    gate: Arc<LiveGate>,
    unreported: u64,
}

impl OutboundBody {
    /// The body of a socket: `control` is actix-ws's body (the session's own frames), `live`
    /// the queue the hub fills, `gate` the session's switch for live frames.
    pub fn new(control: BoxBody, live: LiveFrames, gate: Arc<LiveGate>) -> OutboundBody {
        OutboundBody {
            control,
            live,
            volatile: None,
            gate,
            unreported: 0,
        }
    }

    /// Also writes the socket's volatile frames, whenever no live frame is waiting.
    pub fn with_volatile(mut self, volatile: VolatileFrames) -> OutboundBody {
        self.volatile = Some(volatile);
        self
    }

    fn report(&mut self) {
        if self.unreported > 0 {
            metrics::counter!("canopy_ws_frames_sent_total").increment(self.unreported);
            self.unreported = 0;
        }
    }
}

impl Drop for OutboundBody {
    fn drop(&mut self) {
        self.report();
    }
}

impl MessageBody for OutboundBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        // Read the gate before polling the session's frames: whatever the session sent before
        // opening (or shutting) the gate is then already in its channel and goes out first.
        this.gate.waker.register(cx.waker());
        let after = this.gate.after.load(Ordering::Acquire);
        if let Poll::Ready(item) = Pin::new(&mut this.control).poll_next(cx) {
            // A chunk from the session goes out on its own; live frames are polled again only
            // after the gate is re-read, so none can follow a close frame.
            return Poll::Ready(item);
        }
        if after == SHUT {
            return Poll::Pending;
        }
        loop {
            match this.live.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    let Some(wire) = frame.wire_after(after) else {
                        continue;
                    };
                    this.unreported += frame.events().max(1) as u64;
                    if this.unreported >= REPORT_EVERY {
                        this.report();
                    }
                    return Poll::Ready(Some(Ok(wire)));
                }
                // The hub dropped this session; the session task is closing the socket.
                Poll::Ready(None) => return Poll::Pending,
                Poll::Pending => {
                    // Nothing sequenced is waiting: a drag preview may go now.
                    if let Some(Poll::Ready(Some(frame))) =
                        this.volatile.as_mut().map(|v| v.poll_recv(cx))
                    {
                        return Poll::Ready(Some(Ok(frame.wire.clone())));
                    }
                    this.report();
                    return Poll::Pending;
                }
            }
        }
    }
}
