//! Canvas sockets: one lightweight task each, reading frames until told to stop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::frames::{self, Frame, SeqCheck};
use super::shared::{Shared, CLOSED};
use super::target::Target;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on the handshake and on the wait for the CONNECTED frame.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Latency samples a socket keeps before flushing them into the shared histogram.
const LATENCY_BATCH: usize = 64;
/// Server frames are a few hundred bytes; the default 128 KiB read buffer per socket would
/// make the generator's own memory the story at 5,000 sockets.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// What one socket saw, returned when it stops.
#[derive(Debug, Default)]
pub struct SocketOutcome {
    pub check: SeqCheck,
    /// Stream frames received while the measurement window was open.
    pub measured_deliveries: u64,
    pub resyncs: u64,
    /// Why the socket ended before it was told to stop (a close code, an error).
    pub closed: Option<String>,
}

pub struct Socket {
    pub handle: JoinHandle<SocketOutcome>,
    stop: oneshot::Sender<()>,
}

impl Socket {
    /// Tells the task to stop (it is fine if it already ended).
    pub fn stop(self) -> JoinHandle<SocketOutcome> {
        let _ = self.stop.send(());
        self.handle
    }
}

pub struct Opened {
    pub sockets: Vec<Socket>,
    pub failures: Vec<String>,
}

/// Opens `count` sockets round-robin over `targets`, at most `concurrency` handshakes at a
/// time. Socket `i` reports its progress in `shared.progress[i]`.
pub async fn open_all(
    targets: &[Target],
    count: usize,
    admin_token: Option<&str>,
    concurrency: usize,
    shared: &Arc<Shared>,
) -> Opened {
    let results: Vec<Result<Socket, String>> = stream::iter(0..count)
        .map(|i| {
            let target = &targets[i % targets.len()];
            let shared = Arc::clone(shared);
            async move {
                match connect(target, admin_token).await {
                    // Reading starts at once: nothing queues up server-side while the rest
                    // connect.
                    Ok((ws, connected_seq)) => {
                        shared.progress[i].store(connected_seq, Ordering::Relaxed);
                        let (stop, stopped) = oneshot::channel();
                        let handle = tokio::spawn(read_loop(i, ws, connected_seq, shared, stopped));
                        Ok(Socket { handle, stop })
                    }
                    Err(e) => {
                        shared.progress[i].store(CLOSED, Ordering::Relaxed);
                        Err(e)
                    }
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(count);
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(e) => failures.push(e),
        }
    }
    Opened { sockets, failures }
}

/// Handshake, then the CONNECTED frame: the seq this socket's stream starts after.
async fn connect(target: &Target, admin_token: Option<&str>) -> Result<(Ws, i64), String> {
    let mut request = target
        .ws
        .as_str()
        .into_client_request()
        .map_err(|e| format!("ws request: {e}"))?;
    if let Some(token) = admin_token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| "admin token is not a valid header value".to_string())?;
        request.headers_mut().insert("Authorization", value);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let (mut ws, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await
    .map_err(|_| "ws connect: timed out".to_string())?
    .map_err(|e| format!("ws connect: {e}"))?;
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("ws connect: no CONNECTED frame".into()),
            Ok(Some(Ok(Message::Text(text)))) => {
                return frames::connected_seq(text.as_str())
                    .map(|seq| (ws, seq))
                    .ok_or_else(|| format!("ws connect: first frame is not CONNECTED: {text}"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(other))) => return Err(format!("ws connect: unexpected {other:?}")),
            Ok(Some(Err(e))) => return Err(format!("ws connect: {e}")),
            Ok(None) => return Err("ws connect: closed before CONNECTED".into()),
        }
    }
}

async fn read_loop(
    index: usize,
    mut ws: Ws,
    connected_seq: i64,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) -> SocketOutcome {
    let mut outcome = SocketOutcome {
        check: SeqCheck::starting_after(connected_seq),
        ..SocketOutcome::default()
    };
    let mut latencies = Vec::with_capacity(LATENCY_BATCH);
    let progress = &shared.progress[index];
    loop {
        let message = tokio::select! {
            biased;
            _ = &mut stop => break,
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                outcome.closed = Some(match frame {
                    Some(f) => format!("close {}", u16::from(f.code)),
                    None => "close (no code)".into(),
                });
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                outcome.closed = Some(format!("error: {e}"));
                break;
            }
            None => {
                outcome.closed = Some("eof".into());
                break;
            }
        };
        match frames::classify(text.as_str()) {
            Frame::Stream { seq, counter } => {
                let now = Instant::now();
                outcome.check.observe(seq);
                progress.store(outcome.check.last, Ordering::Relaxed);
                if shared.is_measuring() {
                    outcome.measured_deliveries += 1;
                }
                if let Some(counter) = counter {
                    shared.saw_counter(counter, seq);
                    if let Some(micros) = shared.latency_micros(counter, now) {
                        latencies.push(micros);
                        if latencies.len() == LATENCY_BATCH {
                            shared.record_latencies(index, &latencies);
                            latencies.clear();
                        }
                    }
                }
            }
            Frame::Resync => outcome.resyncs += 1,
            Frame::Other => {}
        }
    }
    shared.record_latencies(index, &latencies);
    if outcome.closed.is_some() {
        progress.store(CLOSED, Ordering::Relaxed);
    }
    outcome
}
