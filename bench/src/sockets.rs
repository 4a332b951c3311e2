//! Canvas sockets: one lightweight task each, reading frames until told to stop. With
//! `resume` on (the failover scenario), a socket whose connection ends reconnects to the next
//! instance with `?since=<last seq>&epoch=<epoch>`, as the canvas page does, and keeps checking
//! one continuous seq sequence across the two connections.
//!
//! With [`Drags`], the first sockets are draggers: each sends drag frames for a workspace of
//! its own at a fixed rate, as a person dragging a node does, and every other socket times the
//! previews (DRAG_PREVIEWS entries) that carry them back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

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
/// How long a dropped socket keeps trying to resume before it counts as closed.
const RESUME_DEADLINE: Duration = Duration::from_secs(30);
/// Pause after a failed resume attempt, times the attempt number (at most `RESUME_PAUSE_MAX`).
/// The first attempt goes at once: a storm of immediate reconnects is the harsh case.
const RESUME_PAUSE: Duration = Duration::from_millis(50);
const RESUME_PAUSE_MAX: Duration = Duration::from_millis(500);

/// What one socket saw, returned when it stops.
#[derive(Debug, Default)]
pub struct SocketOutcome {
    pub check: SeqCheck,
    /// Stream frames received while the measurement window was open.
    pub measured_deliveries: u64,
    pub resyncs: u64,
    /// Why the socket ended before it was told to stop (a close code, an error).
    pub closed: Option<String>,
    /// Connections of this socket that ended and were resumed on another instance.
    pub resumes: u64,
    /// Connection attempts that failed while resuming.
    pub resume_failures: u64,
    /// When the last resume's CONNECTED frame arrived.
    pub resumed_at: Option<Instant>,
}

pub struct Socket {
    /// Its position among the sockets opened (draggers first).
    pub index: usize,
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

/// Where a socket connects, and whether it resumes on another instance when dropped.
#[derive(Clone)]
pub struct Dialer {
    pub targets: Arc<[Target]>,
    pub admin_token: Option<String>,
    /// Reconnect with `?since=&epoch=` when a connection ends (instead of counting it closed).
    pub resume: bool,
}

/// Who drags: socket `i` for `i < workspaces.len()` drags `workspaces[i]`, one frame every
/// `period` while `Previews::is_dragging`.
#[derive(Clone)]
pub struct Drags {
    pub workspaces: Arc<[Uuid]>,
    pub period: Duration,
    /// Where the draggers' tasks run. On the shared runtime a woken dragger waits behind every
    /// busy socket task, and under saturation it sent a third of its frames: the people who
    /// drag are on other machines, so their pace must not depend on the watchers' load.
    pub runtime: Option<tokio::runtime::Handle>,
}

/// A current-thread runtime on a thread of its own, for the draggers; it ends when dropped.
pub struct DragRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl DragRuntime {
    pub fn start() -> std::io::Result<DragRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("draggers".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(DragRuntime {
            handle,
            stop: Some(stop),
        })
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

impl Drop for DragRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens `count` sockets round-robin over the dialer's targets, at most `concurrency`
/// handshakes at a time. Socket `i` reports its progress in `shared.progress[i]`.
pub async fn open_all(
    dialer: &Dialer,
    count: usize,
    concurrency: usize,
    drags: &Drags,
    shared: &Arc<Shared>,
) -> Opened {
    let results: Vec<Result<Socket, String>> = stream::iter(0..count)
        .map(|i| {
            let on = i % dialer.targets.len();
            let shared = Arc::clone(shared);
            let dialer = dialer.clone();
            let runtime = drags.runtime.clone();
            let role = match drags.workspaces.get(i) {
                Some(workspace) => Role::Dragger {
                    workspace: *workspace,
                    period: drags.period,
                },
                None => Role::Watcher,
            };
            async move {
                match connect(&dialer.targets[on], dialer.admin_token.as_deref(), None).await {
                    // Reading starts at once: nothing queues up server-side while the rest
                    // connect.
                    Ok((ws, connected_seq, epoch)) => {
                        shared.progress[i].store(connected_seq, Ordering::Relaxed);
                        let (stop, stopped) = oneshot::channel();
                        let link = Link {
                            ws,
                            on,
                            epoch,
                            dialer,
                        };
                        let task = read_loop(i, link, role, connected_seq, shared, stopped);
                        let handle = match (role, &runtime) {
                            (Role::Dragger { .. }, Some(runtime)) => runtime.spawn(task),
                            _ => tokio::spawn(task),
                        };
                        Ok(Socket {
                            index: i,
                            handle,
                            stop,
                        })
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

/// Handshake, then the CONNECTED frame: the seq this socket's stream starts after, and the
/// stream's epoch. `resume` is `(since, epoch)` of a reconnect.
async fn connect(
    target: &Target,
    admin_token: Option<&str>,
    resume: Option<(i64, &str)>,
) -> Result<(Ws, i64, String), String> {
    let url = match resume {
        None => target.ws.clone(),
        Some((since, epoch)) => {
            let epoch: String = url::form_urlencoded::byte_serialize(epoch.as_bytes()).collect();
            format!("{}?since={since}&epoch={epoch}", target.ws)
        }
    };
    let mut request = url
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
                return frames::connected(text.as_str())
                    .map(|(seq, epoch)| (ws, seq, epoch))
                    .ok_or_else(|| format!("ws connect: first frame is not CONNECTED: {text}"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(other))) => return Err(format!("ws connect: unexpected {other:?}")),
            Ok(Some(Err(e))) => return Err(format!("ws connect: {e}")),
            Ok(None) => return Err("ws connect: closed before CONNECTED".into()),
        }
    }
}

/// One socket's current connection: the instance it is on and the stream's epoch.
struct Link {
    ws: Ws,
    on: usize,
    epoch: String,
    dialer: Dialer,
}

enum Resumed {
    Yes,
    /// Told to stop while resuming.
    Stopped,
    /// Gave up at the deadline; the last error.
    No(String),
}

/// Reconnects to the next instances in turn with `?since=<last>&epoch=`, until one answers
/// with CONNECTED, the deadline passes, or the socket is told to stop. The replayed events
/// then arrive on the new connection and go through the same seq check.
async fn resume(
    link: &mut Link,
    last: i64,
    outcome: &mut SocketOutcome,
    stop: &mut oneshot::Receiver<()>,
) -> Resumed {
    let deadline = Instant::now() + RESUME_DEADLINE;
    let count = link.dialer.targets.len();
    let mut attempt = 0u32;
    loop {
        let on = (link.on + 1 + attempt as usize) % count;
        let target = &link.dialer.targets[on];
        let token = link.dialer.admin_token.as_deref();
        let tried = tokio::select! {
            biased;
            _ = &mut *stop => return Resumed::Stopped,
            tried = connect(target, token, Some((last, &link.epoch))) => tried,
        };
        match tried {
            Ok((ws, _, epoch)) => {
                outcome.resumes += 1;
                outcome.resumed_at = Some(Instant::now());
                link.ws = ws;
                link.on = on;
                link.epoch = epoch;
                return Resumed::Yes;
            }
            Err(e) => {
                outcome.resume_failures += 1;
                attempt += 1;
                let pause = (RESUME_PAUSE * attempt).min(RESUME_PAUSE_MAX);
                if Instant::now() + pause >= deadline {
                    return Resumed::No(format!("resume failed: {e}"));
                }
                tokio::select! {
                    biased;
                    _ = &mut *stop => return Resumed::Stopped,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// What a socket does besides checking the stream.
#[derive(Clone, Copy)]
enum Role {
    /// Sends a drag frame for `workspace` every `period` (and ignores other draggers'
    /// previews).
    Dragger { workspace: Uuid, period: Duration },
    /// Times the draggers' previews.
    Watcher,
}

/// Resolves at a dragger's next tick; never for a socket that does not (or no longer) drag.
async fn next_drag(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn read_loop(
    index: usize,
    mut link: Link,
    role: Role,
    connected_seq: i64,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) -> SocketOutcome {
    let mut outcome = SocketOutcome {
        check: SeqCheck::starting_after(connected_seq),
        ..SocketOutcome::default()
    };
    let mut latencies = Vec::with_capacity(LATENCY_BATCH);
    let mut preview_latencies = Vec::new();
    let progress = &shared.progress[index];
    let mut drag_ticks = match role {
        Role::Dragger { period, .. } => {
            let mut ticks = tokio::time::interval(period);
            // A late tick is not made up with a burst: a pointer moves at its own pace.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            Some(ticks)
        }
        Role::Watcher => None,
    };
    loop {
        let message = tokio::select! {
            biased;
            _ = &mut stop => break,
            // Before the read: under load a socket always has a frame to read, and the drag
            // must still go out on time.
            _ = next_drag(&mut drag_ticks) => {
                if let (Role::Dragger { workspace, .. }, true) =
                    (role, shared.previews.is_dragging())
                {
                    if let Some(counter) = shared.next_preview(Instant::now()) {
                        let frame = frames::drag_frame(&workspace, counter);
                        // A failed send means the connection is gone: the read says how.
                        let _ = link.ws.send(Message::text(frame)).await;
                    }
                }
                continue;
            }
            message = link.ws.next() => message,
        };
        let ended = match message {
            Some(Ok(Message::Text(text))) => Ok(text),
            Some(Ok(Message::Close(frame))) => Err(match frame {
                Some(f) => format!("close {}", u16::from(f.code)),
                None => "close (no code)".into(),
            }),
            Some(Ok(_)) => continue,
            Some(Err(e)) => Err(format!("error: {e}")),
            None => Err("eof".into()),
        };
        let text = match ended {
            Ok(text) => text,
            Err(why) if !link.dialer.resume => {
                outcome.closed = Some(why);
                break;
            }
            Err(_) => match resume(&mut link, outcome.check.last, &mut outcome, &mut stop).await {
                Resumed::Yes => continue,
                Resumed::Stopped => break,
                Resumed::No(why) => {
                    outcome.closed = Some(why);
                    break;
                }
            },
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
            Frame::Preview {
                counter: Some(counter),
            } if matches!(role, Role::Watcher) => {
                if let Some(micros) = shared.preview_latency_micros(counter, Instant::now()) {
                    preview_latencies.push(micros);
                    if preview_latencies.len() == LATENCY_BATCH {
                        shared.previews.record_latencies(index, &preview_latencies);
                        preview_latencies.clear();
                    }
                }
            }
            Frame::Preview { .. } => {}
            Frame::Previews if matches!(role, Role::Watcher) => {
                let now = Instant::now();
                frames::preview_counters(text.as_str(), |counter| {
                    if let Some(micros) = shared.preview_latency_micros(counter, now) {
                        preview_latencies.push(micros);
                    }
                });
                if preview_latencies.len() >= LATENCY_BATCH {
                    shared.previews.record_latencies(index, &preview_latencies);
                    preview_latencies.clear();
                }
            }
            Frame::Previews => {}
            Frame::Other if drag_ticks.is_some() && frames::is_error(text.as_str()) => {
                // Only drag frames are sent, so this refuses one: the page stops dragging on
                // that socket, and so does the generator.
                shared.previews.refused(text.to_string());
                drag_ticks = None;
            }
            Frame::Other => {}
        }
    }
    shared.record_latencies(index, &latencies);
    shared.previews.record_latencies(index, &preview_latencies);
    if outcome.closed.is_some() {
        progress.store(CLOSED, Ordering::Relaxed);
    }
    outcome
}
