//! The load generator behind `canopy-bench` (issue 8): canvas sockets on one or more running
//! instances, a paced mix of drags, heartbeats and activity posts, and per delivered event the
//! time from its request being sent to its frame arriving, with every socket's seq sequence
//! checked for gaps, duplicates and disorder.
//!
//! A run, start to end (every step is bounded in count and time):
//! 1. create `workspaces` workspaces, register the first `agents` of them as agents;
//! 2. open `clients` canvas sockets round-robin over the instances; each reads its CONNECTED
//!    frame, whose seq is where its stream starts;
//! 3. offer `rate` requests/s in the `mix` for `warmup`, then for `duration` (measured);
//! 4. wait for requests in flight, send one last "marker" drag, and wait (at most `tail_wait`)
//!    until every socket has reached the marker's seq: a socket that has not lost the rest.
//!
//! With `kill` set (the failover scenario), step 3 sends SIGKILL to one instance partway
//! through the measured window; requests stop going to it just before, and its sockets resume
//! on the next instance with `?since=&epoch=`. The report adds how long until every one of
//! them had resumed, and the usual checks cover the stream across the two connections.
//!
//! With `draggers` set (issue 15 item 4), the first `draggers` sockets also send drag frames at
//! `drag_hz` from the start of the load to the end of the window, each for a workspace of its
//! own, and every other socket times the previews (entries of DRAG_PREVIEWS frames): the report's `previews`. They are
//! volatile (coalesced per server tick, dropped for a socket that falls behind), so their loss
//! is counted and never fails the run; the stream checks stay as strict as without them.
//!
//! Drags carry a counter in `x` (with `y` = [`frames::DRAG_MARKER_Y`]), activity posts in their
//! summary, so a frame is matched to the moment its request was sent without any per-event
//! lookup structure beyond one slot per counter. Drag frames carry a counter of their own the
//! same way.

mod frames;
mod load;
mod page;
mod procfs;
mod report;
mod shared;
mod sockets;
mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use load::{Kind, Mix, CUT_BY_KILL};
pub use page::{run_page, PageConfig, PageReport};
pub use report::{FailoverReport, KindReport, Percentiles, PreviewReport, ProcessReport, Report};
pub use target::Target;

use load::{Api, Driver, Plan};
use shared::Shared;

pub const MAX_CLIENTS: usize = 5000;
pub const MAX_DURATION: Duration = Duration::from_secs(300);
pub const MAX_WARMUP: Duration = Duration::from_secs(60);
pub const MAX_RATE: f64 = 20_000.0;
pub const MAX_WORKSPACES: usize = 10_000;
pub const MAX_IN_FLIGHT: usize = 4096;
pub const MAX_TAIL_WAIT: Duration = Duration::from_secs(60);
pub const MAX_DRAGGERS: usize = 100;
/// Longest wait after the sockets close before the last RSS reading.
pub const MAX_AFTER_CLOSE: Duration = Duration::from_secs(120);
/// Drag frames per second per socket at most: the server takes 60 a second from a socket and
/// drops the rest.
pub const MAX_DRAG_HZ: f64 = 60.0;
/// How long the sockets keep reading after the draggers stop, so the last previews (up to one
/// server tick, 33 ms, plus the Redis hop) are counted as delivered rather than lost.
const PREVIEW_SETTLE: Duration = Duration::from_millis(250);
/// The server's counter of drag-preview frames dropped on a full volatile queue.
const VOLATILE_DROPPED: &str = "canopy_ws_volatile_dropped_total";
/// Pause between the last socket connecting and the "sockets open" RSS reading.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("setup failed: {0}")]
    Setup(String),
}

/// What to run. `BenchConfig::new` gives the defaults of `canopy-bench`.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Instance base URLs, e.g. `http://127.0.0.1:8080` (loopback only).
    pub urls: Vec<String>,
    /// Canvas sockets, spread round-robin over `urls`.
    pub clients: usize,
    /// Requests per second offered (0: none, e.g. to measure idle memory).
    pub rate: f64,
    pub duration: Duration,
    /// Load offered before the measured `duration`, not counted.
    pub warmup: Duration,
    pub workspaces: usize,
    /// Registered agents that heartbeat (the first `agents` workspaces).
    pub agents: usize,
    pub mix: Mix,
    pub admin_token: Option<String>,
    /// Server processes whose RSS and CPU are reported.
    pub pids: Vec<u32>,
    pub max_in_flight: usize,
    /// How long the end of the run waits for sockets to receive the last event.
    pub tail_wait: Duration,
    /// WebSocket handshakes in progress at once while connecting.
    pub connect_concurrency: usize,
    /// Kill one instance during the measured window (the failover scenario).
    pub kill: Option<Kill>,
    /// Canvas sockets (the first ones) that drag a node each; 0: no drag frames.
    pub draggers: usize,
    /// Drag frames per second per dragger.
    pub drag_hz: f64,
    /// How long after every socket has closed the servers' RSS is read once more
    /// (`rss_kib_after_close`): whether the memory the sockets held is given back. Zero: not
    /// read.
    pub after_close: Duration,
}

/// Which instance the failover scenario kills, and when.
#[derive(Clone)]
pub struct Kill {
    /// Index into `urls` (and `pids`: the process that is sent SIGKILL).
    pub instance: usize,
    /// Time into the measured window.
    pub after: Duration,
    /// Takes the instance down instead of SIGKILL to its pid: for an instance that is not a
    /// process of its own (the in-process servers of the tests).
    pub by: Option<KillHook>,
}

/// Takes an instance down; `Err` says why it could not.
pub type KillHook = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

impl std::fmt::Debug for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kill")
            .field("instance", &self.instance)
            .field("after", &self.after)
            .field("by", &self.by.as_ref().map(|_| "hook"))
            .finish()
    }
}

impl BenchConfig {
    pub fn new(urls: Vec<String>) -> BenchConfig {
        BenchConfig {
            urls,
            clients: 1000,
            rate: 200.0,
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            workspaces: 50,
            agents: 0,
            mix: Mix::default(),
            admin_token: None,
            pids: Vec::new(),
            max_in_flight: 256,
            tail_wait: Duration::from_secs(5),
            connect_concurrency: 64,
            kill: None,
            draggers: 0,
            drag_hz: 30.0,
            after_close: Duration::ZERO,
        }
    }

    /// Checks every bound; returns the parsed targets.
    pub fn validate(&self) -> Result<Vec<Target>, BenchError> {
        let usage = |m: String| Err(BenchError::Usage(m));
        if self.urls.is_empty() {
            return usage("give at least one --url".into());
        }
        let targets = self
            .urls
            .iter()
            .map(|u| Target::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        if self.clients > MAX_CLIENTS {
            return usage(format!("--clients is at most {MAX_CLIENTS}"));
        }
        if !(self.rate.is_finite() && (0.0..=MAX_RATE).contains(&self.rate)) {
            return usage(format!("--rate must be in 0..={MAX_RATE}"));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return usage(format!(
                "--duration must be in 1..={} seconds",
                MAX_DURATION.as_secs()
            ));
        }
        if self.warmup > MAX_WARMUP {
            return usage(format!(
                "--warmup is at most {} seconds",
                MAX_WARMUP.as_secs()
            ));
        }
        if self.workspaces == 0 || self.workspaces > MAX_WORKSPACES {
            return usage(format!("--workspaces must be in 1..={MAX_WORKSPACES}"));
        }
        if self.agents > MAX_WORKSPACES {
            return usage(format!("--agents is at most {MAX_WORKSPACES}"));
        }
        if self.mix.total() == 0 {
            return usage("--mix needs a positive weight".into());
        }
        if self.mix.heartbeat > 0 && self.agents == 0 {
            return usage("--mix has heartbeats: give --agents (heartbeating agents)".into());
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_IN_FLIGHT {
            return usage(format!("--max-in-flight must be in 1..={MAX_IN_FLIGHT}"));
        }
        if self.after_close > MAX_AFTER_CLOSE {
            return usage(format!(
                "--after-close is at most {} seconds",
                MAX_AFTER_CLOSE.as_secs()
            ));
        }
        if self.tail_wait > MAX_TAIL_WAIT {
            return usage(format!(
                "the tail wait is at most {} seconds",
                MAX_TAIL_WAIT.as_secs()
            ));
        }
        if let Some(kill) = &self.kill {
            if self.urls.len() < 2 {
                return usage("killing an instance needs at least two --url".into());
            }
            if kill.by.is_none() && self.pids.len() != self.urls.len() {
                return usage("killing an instance needs one --pid per --url, in order".into());
            }
            if kill.instance >= self.urls.len() {
                return usage(format!("--kill-instance must be below {}", self.urls.len()));
            }
            if kill.after >= self.duration {
                return usage("--kill-after must fall inside --duration".into());
            }
        }
        if self.draggers > MAX_DRAGGERS {
            return usage(format!("--draggers is at most {MAX_DRAGGERS}"));
        }
        if self.draggers > 0 && self.draggers >= self.clients {
            return usage("--draggers must leave canvases to watch: give more --clients".into());
        }
        if !(self.drag_hz.is_finite() && self.drag_hz > 0.0 && self.drag_hz <= MAX_DRAG_HZ) {
            return usage(format!(
                "--drag-hz must be above 0 and at most {MAX_DRAG_HZ}"
            ));
        }
        if let Some(token) = &self.admin_token {
            if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
                return usage("--admin-token must be a non-empty token without spaces".into());
            }
        }
        Ok(targets)
    }

    fn max_events(&self) -> u64 {
        (self.rate * (self.warmup + self.duration).as_secs_f64()).ceil() as u64
    }

    /// Drag frames the draggers can send (a second to spare: the load runs a little long).
    fn max_previews(&self) -> u64 {
        let seconds = (self.warmup + self.duration).as_secs_f64() + 1.0;
        (self.draggers as f64 * self.drag_hz * seconds).ceil() as u64
    }
}

/// Prints progress to stderr (stdout carries only the JSON report).
fn progress(message: std::fmt::Arguments<'_>) {
    eprintln!("canopy-bench: {message}");
}

struct CpuReading {
    servers: Vec<Option<f64>>,
    bench: Option<f64>,
    machine: Option<(u64, u64)>,
}

fn cpu_now(pids: &[u32]) -> CpuReading {
    CpuReading {
        servers: pids.iter().map(|p| procfs::cpu_seconds(Some(*p))).collect(),
        bench: procfs::cpu_seconds(None),
        machine: procfs::machine_ticks(),
    }
}

fn cpu_pct(before: Option<f64>, after: Option<f64>, wall: Duration) -> Option<f64> {
    let used = after? - before?;
    let secs = wall.as_secs_f64();
    (secs > 0.0).then(|| (used / secs * 1000.0).round() / 10.0)
}

/// Sends SIGKILL to `pid` (an instance this run was given with `--pid`).
async fn sigkill(pid: u32) -> Result<(), String> {
    let status = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await
        .map_err(|e| format!("kill -KILL {pid}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("kill -KILL {pid}: {status}"))
}

/// Runs one benchmark against running instances. Returns the report whatever the stream
/// looked like; an `Err` means the run could not be set up.
pub async fn run(config: BenchConfig) -> Result<Report, BenchError> {
    let targets = config.validate()?;
    let api = Arc::new(Api::new(
        targets.clone(),
        config.admin_token.clone(),
        config.max_in_flight,
    )?);

    let workspaces = config.workspaces.max(config.agents);
    let plan = Arc::new(
        Plan::set_up(
            &api,
            workspaces,
            config.agents,
            config.draggers,
            &config.mix,
        )
        .await?,
    );
    progress(format_args!(
        "{workspaces} workspaces created, {} agents registered",
        config.agents
    ));

    let max_events = config.max_events();
    let shared = Arc::new(Shared::new(
        max_events + 1,
        config.clients,
        config.max_previews(),
    ));
    let rss_before: Vec<Option<u64>> = config.pids.iter().map(|p| procfs::rss_kib(*p)).collect();

    let connecting = Instant::now();
    let dialer = sockets::Dialer {
        targets: targets.clone().into(),
        admin_token: config.admin_token.clone(),
        resume: config.kill.is_some(),
    };
    let drag_runtime = match config.draggers {
        0 => None,
        _ => Some(
            sockets::DragRuntime::start()
                .map_err(|e| BenchError::Setup(format!("dragger thread: {e}")))?,
        ),
    };
    let drags = sockets::Drags {
        workspaces: plan.drag_workspaces.clone().into(),
        period: Duration::from_secs_f64(1.0 / config.drag_hz),
        runtime: drag_runtime.as_ref().map(sockets::DragRuntime::handle),
    };
    let opened = sockets::open_all(
        &dialer,
        config.clients,
        config.connect_concurrency,
        &drags,
        &shared,
    )
    .await;
    progress(format_args!(
        "{} sockets open in {:.1}s ({} failed)",
        opened.sockets.len(),
        connecting.elapsed().as_secs_f64(),
        opened.failures.len()
    ));
    tokio::time::sleep(SETTLE).await;
    let rss_open: Vec<Option<u64>> = config.pids.iter().map(|p| procfs::rss_kib(*p)).collect();

    let mut driver = Driver::new(
        Arc::clone(&api),
        Arc::clone(&plan),
        Arc::clone(&shared),
        config.rate,
        config.max_in_flight,
        max_events,
    );
    shared.previews.set_dragging(true);
    driver.run_until(config.warmup).await;
    shared.begin_measuring(driver.issued + 1);
    let previews_dropped_before = match config.draggers {
        0 => None,
        _ => api.counter_sum(VOLATILE_DROPPED).await,
    };
    let cpu_before = cpu_now(&config.pids);
    let measuring = Instant::now();
    let mut killed = None;
    if let Some(kill) = config.kill.clone() {
        driver.run_until(config.warmup + kill.after).await;
        api.mark_down(kill.instance);
        let at = Instant::now();
        let done = match &kill.by {
            Some(hook) => hook().await,
            None => sigkill(config.pids[kill.instance]).await,
        };
        progress(format_args!("instance {} taken down", kill.instance));
        killed = Some((kill, at, done));
    }
    driver.run_until(config.warmup + config.duration).await;
    shared.end_measuring(driver.issued + 1);
    shared.previews.set_dragging(false);
    let drags_stopped = Instant::now();
    let measured = measuring.elapsed();
    let cpu_after = cpu_now(&config.pids);
    progress(format_args!(
        "{} requests offered in {:.1}s",
        driver.issued,
        measured.as_secs_f64()
    ));

    if !driver.drain().await {
        driver.stats.error(
            "drain timeout".into(),
            "requests were still in flight after the drain timeout".into(),
        );
    }

    // The tail: every open socket must reach the marker's seq.
    let tail = Instant::now();
    let mut marker_committed = false;
    if !opened.sockets.is_empty() {
        match driver.send_marker().await {
            Ok(_) => marker_committed = true,
            Err(e) => driver.stats.error(e.key, e.detail),
        }
    }
    let final_seq = loop {
        let target = shared.marker_seq().unwrap_or(0).max(shared.max_progress());
        let marker_known = !marker_committed || shared.marker_seq().is_some();
        if opened.sockets.is_empty()
            || (marker_known && shared.behind(target) == 0)
            || tail.elapsed() >= config.tail_wait
        {
            break target;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let marker_unseen = marker_committed && shared.marker_seq().is_none();
    let tail_wait = tail.elapsed();
    let rss_end: Vec<Option<u64>> = config.pids.iter().map(|p| procfs::rss_kib(*p)).collect();

    let mut previews_dropped = None;
    if config.draggers > 0 {
        tokio::time::sleep_until((drags_stopped + PREVIEW_SETTLE).into()).await;
        if let (Some(before), Some(after)) = (
            previews_dropped_before,
            api.counter_sum(VOLATILE_DROPPED).await,
        ) {
            previews_dropped = Some((after - before).max(0.0) as u64);
        }
    }
    let watchers = opened
        .sockets
        .iter()
        .filter(|s| s.index >= config.draggers)
        .count();
    let handles: Vec<_> = opened.sockets.into_iter().map(|s| s.stop()).collect();
    let outcomes = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(handles),
    )
    .await
    .map_err(|_| BenchError::Setup("socket tasks did not stop".into()))?;
    // The sockets are closed (each task ends after its close handshake); the servers drop
    // their side within their disconnect timeout. What RSS is left `after_close` later is
    // what they kept.
    let rss_after_close: Vec<Option<u64>> = if config.after_close.is_zero() {
        vec![None; config.pids.len()]
    } else {
        progress(format_args!(
            "sockets closed; reading RSS again in {:.0}s",
            config.after_close.as_secs_f64()
        ));
        tokio::time::sleep(config.after_close).await;
        config.pids.iter().map(|p| procfs::rss_kib(*p)).collect()
    };

    let mut failover = killed.map(|(kill, at, signalled)| FailoverReport {
        instance: kill.instance,
        pid: config.pids.get(kill.instance).copied().unwrap_or(0),
        after_s: kill.after.as_secs_f64(),
        kill_error: signalled.err(),
        sockets_on_instance: (0..config.clients)
            .filter(|i| i % targets.len() == kill.instance)
            .count(),
        killed_at: Some(at),
        ..FailoverReport::default()
    });
    let mut report = Report {
        instances: targets.len(),
        clients: config.clients,
        connected: outcomes.len(),
        connect_failures: opened.failures,
        workspaces,
        agents: config.agents,
        mix: config.mix.to_string(),
        duration_s: (measured.as_secs_f64() * 1000.0).round() / 1000.0,
        warmup_s: config.warmup.as_secs_f64(),
        rate_target: config.rate,
        final_seq,
        tail_wait_ms: tail_wait.as_millis() as u64,
        after_close_s: config.after_close.as_secs_f64(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        ..Report::default()
    };
    for outcome in outcomes {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                *report
                    .closed
                    .entry(format!("task failed: {e}"))
                    .or_default() += 1;
                continue;
            }
        };
        let check = &outcome.check;
        report.deliveries += outcome.measured_deliveries;
        report.lost += check.lost;
        report.duplicated += check.duplicated;
        report.out_of_order += check.out_of_order;
        report.resyncs += outcome.resyncs;
        if let Some(failover) = &mut failover {
            failover.observe(&outcome);
        }
        match outcome.closed {
            Some(reason) => *report.closed.entry(reason).or_default() += 1,
            None if marker_unseen => {
                // Committed, but this socket never got it: at least one event lost.
                report.sockets_behind += 1;
                report.lost += (final_seq - check.last).max(1) as u64;
            }
            None if check.last < final_seq => {
                report.sockets_behind += 1;
                report.lost += (final_seq - check.last) as u64;
            }
            None => {}
        }
    }
    report.failover = failover;
    if config.draggers > 0 {
        let counts = shared.previews.counts();
        let refused = shared.previews.refusals();
        let refused_count = refused.values().sum();
        if let Some(text) = refused.keys().next() {
            // A refused drag frame is a failed request (exit status 3), not a broken stream.
            let key = "drag frame refused".to_string();
            report.errors.insert(key.clone(), refused_count);
            report.error_samples.insert(key, text.clone());
        }
        report.previews = Some(PreviewReport {
            draggers: config.draggers,
            drag_hz: config.drag_hz,
            watchers,
            sent: counts.sent,
            published: counts.published,
            delivered: counts.delivered,
            refused: refused_count,
            dropped_by_server: previews_dropped,
            latency: Percentiles::of(&shared.previews.merged_latency()),
        });
    }
    report.latency = Percentiles::of(&shared.merged_latency());
    report.kinds = Kind::ALL
        .into_iter()
        .filter(|k| config.mix.weight(*k) > 0)
        .map(|k| KindReport {
            name: k.name(),
            offered: driver.stats.offered(k),
            committed: driver.stats.committed(k),
            latency: Percentiles::of(&driver.stats.latency(k)),
        })
        .collect();
    for (key, (count, sample)) in driver.stats.errors() {
        if key.starts_with(CUT_BY_KILL) {
            report.cut_by_kill += count;
        }
        report.errors.insert(key.clone(), count);
        report.error_samples.insert(key, sample);
    }
    report.processes = config
        .pids
        .iter()
        .enumerate()
        .map(|(i, pid)| ProcessReport {
            pid: *pid,
            rss_kib_before_sockets: rss_before[i],
            rss_kib_sockets_open: rss_open[i],
            rss_kib_end: rss_end[i],
            rss_kib_after_close: rss_after_close[i],
            cpu_pct: cpu_pct(cpu_before.servers[i], cpu_after.servers[i], measured),
        })
        .collect();
    report.bench_cpu_pct = cpu_pct(cpu_before.bench, cpu_after.bench, measured);
    if let (Some((busy0, total0)), Some((busy1, total1))) = (cpu_before.machine, cpu_after.machine)
    {
        if total1 > total0 {
            let busy = (busy1 - busy0) as f64 / (total1 - total0) as f64;
            report.machine_cpu_pct = Some((busy * 1000.0).round() / 10.0);
        }
    }
    Ok(report)
}
