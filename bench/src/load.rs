//! The offered load: setup (workspaces, agents), then drags, heartbeats and activity posts
//! paced by a token schedule, with a bounded number of requests in flight.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::frames::{ACTIVITY_SUMMARY_PREFIX, DRAG_MARKER_Y};
use super::shared::{latency_histogram, Shared};
use super::target::Target;
use super::BenchError;

/// Bound on every HTTP request the generator makes.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Setup requests (creating workspaces, registering agents) in flight at once.
const SETUP_CONCURRENCY: usize = 16;
/// How often the pacer wakes up to issue what is due.
const PACER_TICK: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Drag,
    Heartbeat,
    Activity,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Drag, Kind::Heartbeat, Kind::Activity];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Drag => "drag",
            Kind::Heartbeat => "heartbeat",
            Kind::Activity => "activity",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Relative weights of the three kinds of request, e.g. `drag=80,heartbeat=15,activity=5`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    pub drag: u32,
    pub heartbeat: u32,
    pub activity: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            drag: 95,
            heartbeat: 0,
            activity: 5,
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drag={},heartbeat={},activity={}",
            self.drag, self.heartbeat, self.activity
        )
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Mix, String> {
        let mut mix = Mix {
            drag: 0,
            heartbeat: 0,
            activity: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected kind=weight"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1000)
                .ok_or_else(|| format!("{part:?}: weight must be an integer in 0..=1000"))?;
            match name.trim() {
                "drag" => mix.drag = weight,
                "heartbeat" => mix.heartbeat = weight,
                "activity" => mix.activity = weight,
                other => {
                    return Err(format!(
                        "unknown kind {other:?} (drag, heartbeat, activity)"
                    ))
                }
            }
        }
        if mix.total() == 0 {
            return Err("at least one weight must be positive".into());
        }
        Ok(mix)
    }
}

impl Mix {
    pub fn total(&self) -> u32 {
        self.drag + self.heartbeat + self.activity
    }

    pub fn weight(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Drag => self.drag,
            Kind::Heartbeat => self.heartbeat,
            Kind::Activity => self.activity,
        }
    }

    /// One cycle of kinds with exactly the mix's proportions, interleaved evenly (smooth
    /// weighted round-robin), so any stretch of the run has the mix, not bursts of one kind.
    pub fn cycle(&self) -> Vec<Kind> {
        let total = self.total() as i64;
        let mut current = [0i64; 3];
        (0..total)
            .map(|_| {
                for kind in Kind::ALL {
                    current[kind.index()] += self.weight(kind) as i64;
                }
                let pick = Kind::ALL
                    .into_iter()
                    .max_by_key(|k| (current[k.index()], std::cmp::Reverse(k.index())))
                    .expect("three kinds");
                current[pick.index()] -= total;
                pick
            })
            .collect()
    }
}

/// HTTP to the instances: one keep-alive client for everything.
pub struct Api {
    client: reqwest::Client,
    pub targets: Vec<Target>,
    admin_token: Option<String>,
    /// Instances taken down on purpose (the failover scenario): no request is routed to them.
    down: Vec<AtomicBool>,
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition.
fn prometheus_sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Error key prefix of requests that were in flight to an instance when it was killed: the
/// scenario cut them, so they are reported apart and do not fail the run.
pub const CUT_BY_KILL: &str = "cut by kill: ";

impl Api {
    pub fn new(
        targets: Vec<Target>,
        admin_token: Option<String>,
        max_in_flight: usize,
    ) -> Result<Api, BenchError> {
        let client = reqwest::Client::builder()
            // Loopback only: an HTTP_PROXY in the environment must not reroute the load.
            .no_proxy()
            .pool_max_idle_per_host(max_in_flight)
            // Below the server's keep-alive (actix: 5 s), so a pooled connection is never
            // reused just as the server closes it (a spurious request error).
            .pool_idle_timeout(Duration::from_secs(2))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BenchError::Setup(format!("http client: {e}")))?;
        let down = targets.iter().map(|_| AtomicBool::new(false)).collect();
        Ok(Api {
            client,
            targets,
            admin_token,
            down,
        })
    }

    /// Routes request `n` round-robin over the instances that are not down.
    fn route(&self, n: u64) -> usize {
        let count = self.targets.len();
        let first = (n % count as u64) as usize;
        (0..count)
            .map(|step| (first + step) % count)
            .find(|i| !self.down[*i].load(Ordering::Acquire))
            .unwrap_or(first)
    }

    fn target(&self, n: u64) -> &Target {
        &self.targets[self.route(n)]
    }

    /// The sum over every instance of one counter in `GET /metrics` (Prometheus text, the
    /// unlabelled sample `name value`; a counter not yet exported counts 0); `None` if an
    /// instance did not answer.
    pub async fn counter_sum(&self, name: &str) -> Option<f64> {
        let mut sum = 0.0;
        for target in &self.targets {
            let text = self
                .client
                .get(format!("{}/metrics", target.base))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .ok()?
                .text()
                .await
                .ok()?;
            sum += prometheus_sample(&text, name).unwrap_or(0.0);
        }
        Some(sum)
    }

    /// Stops routing requests to instance `index` (before it is killed).
    pub fn mark_down(&self, index: usize) {
        if let Some(flag) = self.down.get(index) {
            flag.store(true, Ordering::Release);
        }
    }

    fn with_bearer(rb: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn json_call(
        &self,
        rb: reqwest::RequestBuilder,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value), String> {
        let response = Self::with_bearer(rb, token)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn create_workspace(&self, n: u64, name: String) -> Result<Uuid, String> {
        let target = self.target(n);
        let (status, body) = self
            .json_call(
                self.client.post(format!("{}/workspaces", target.base)),
                self.admin_token.as_deref(),
                &json!({ "name": name, "canvas": { "x": 0, "y": 0 } }),
            )
            .await
            .map_err(|e| format!("POST {target}/workspaces: {e}"))?;
        if status != 201 {
            return Err(format!("POST {target}/workspaces: {status} {body}"));
        }
        body["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| format!("POST {target}/workspaces: no id in {body}"))
    }

    async fn register_agent(&self, n: u64, id: Uuid) -> Result<String, String> {
        let target = self.target(n);
        let (status, body) = self
            .json_call(
                self.client
                    .post(format!("{}/registry/register", target.base)),
                // In token mode an agent's first registration needs an admin credential.
                self.admin_token.as_deref(),
                &json!({
                    "id": id,
                    "url": format!("http://127.0.0.1:9/bench-agent-{n}"),
                    "agent_card": { "name": format!("bench agent {n}"), "skills": [] },
                }),
            )
            .await
            .map_err(|e| format!("POST {target}/registry/register: {e}"))?;
        if status != 200 {
            return Err(format!("POST {target}/registry/register: {status} {body}"));
        }
        body["auth_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("POST {target}/registry/register: no auth_token in {body}"))
    }

    /// Sends one planned request; `Ok` when it answered 2xx (its body read, so the
    /// connection goes back to the pool), otherwise what went wrong.
    async fn send(&self, request: &Planned, plan: &Plan) -> Result<(), Failure> {
        let index = self.route(request.route);
        let result = self.send_to(index, request, plan).await;
        match result {
            Err(failure) if self.down[index].load(Ordering::Acquire) => Err(Failure {
                key: format!("{CUT_BY_KILL}{}", failure.key),
                detail: failure.detail,
            }),
            other => other,
        }
    }

    async fn send_to(&self, index: usize, request: &Planned, plan: &Plan) -> Result<(), Failure> {
        let target = &self.targets[index];
        let (rb, token, body) = match request.what {
            What::Drag { workspace } => (
                self.client.patch(format!(
                    "{}/workspaces/{}",
                    target.base, plan.workspaces[workspace]
                )),
                self.admin_token.as_deref(),
                format!(r#"{{"x":{},"y":{}}}"#, request.counter, DRAG_MARKER_Y),
            ),
            What::Heartbeat { agent, uptime } => (
                self.client
                    .post(format!("{}/registry/heartbeat", target.base)),
                Some(plan.agent_tokens[agent].as_str()),
                format!(
                    r#"{{"workspace_id":"{}","error_rate":0,"sample_error":"","active_tasks":1,"uptime_seconds":{uptime},"current_task":"bench"}}"#,
                    plan.workspaces[agent]
                ),
            ),
            What::Activity { workspace } => (
                self.client.post(format!(
                    "{}/workspaces/{}/activity",
                    target.base, plan.workspaces[workspace]
                )),
                // A workspace that holds an agent token needs it (or the admin's).
                match (&self.admin_token, plan.agent_tokens.get(workspace)) {
                    (Some(admin), _) => Some(admin.as_str()),
                    (None, token) => token.map(String::as_str),
                },
                format!(
                    r#"{{"activity_type":"agent_log","summary":"{ACTIVITY_SUMMARY_PREFIX}{}"}}"#,
                    request.counter
                ),
            ),
        };
        let response = Self::with_bearer(rb, token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::of(&e))?;
        let status = response.status();
        // Read the body either way: the connection is reused only once it is drained.
        let drained = response.bytes().await;
        if !status.is_success() {
            return Err(Failure {
                key: status.as_u16().to_string(),
                detail: String::from_utf8_lossy(&drained.unwrap_or_default()).into_owned(),
            });
        }
        drained.map(|_| ()).map_err(|e| Failure::of(&e))
    }
}

/// A failed request: a short key to count by (a status code, "timeout", …) and, for the
/// report's samples, the whole story.
#[derive(Debug)]
pub struct Failure {
    pub key: String,
    pub detail: String,
}

impl Failure {
    fn of(e: &reqwest::Error) -> Failure {
        let key = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else if e.is_body() || e.is_decode() {
            "body"
        } else {
            "request"
        };
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure {
            key: key.into(),
            detail,
        }
    }
}

/// What the run works on: workspaces (the first `agent_tokens.len()` are agents).
pub struct Plan {
    pub workspaces: Vec<Uuid>,
    pub agent_tokens: Vec<String>,
    /// One workspace per dragger, apart from `workspaces`: a PATCH's layout event ends the
    /// drag of its node on the server, so no request may touch a dragged node.
    pub drag_workspaces: Vec<Uuid>,
    cycle: Vec<Kind>,
}

impl Plan {
    /// Creates `workspaces` workspaces and registers the first `agents` of them, and one
    /// more workspace for each of the `draggers`.
    pub async fn set_up(
        api: &Api,
        workspaces: usize,
        agents: usize,
        draggers: usize,
        mix: &Mix,
    ) -> Result<Plan, BenchError> {
        let run = Uuid::new_v4().simple().to_string();
        let created: Vec<Result<Uuid, String>> = stream::iter(0..(workspaces + draggers) as u64)
            .map(|n| api.create_workspace(n, format!("bench {} {n}", &run[..8])))
            .buffered(SETUP_CONCURRENCY)
            .collect()
            .await;
        let mut workspaces = created
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(BenchError::Setup)?;
        let drag_workspaces = workspaces.split_off(workspaces.len() - draggers);
        let registered: Vec<Result<String, String>> =
            stream::iter(workspaces.iter().take(agents).copied().enumerate())
                .map(|(n, id)| api.register_agent(n as u64, id))
                .buffered(SETUP_CONCURRENCY)
                .collect()
                .await;
        let agent_tokens = registered
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(BenchError::Setup)?;
        Ok(Plan {
            workspaces,
            agent_tokens,
            drag_workspaces,
            cycle: mix.cycle(),
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum What {
    Drag { workspace: usize },
    Heartbeat { agent: usize, uptime: u64 },
    Activity { workspace: usize },
}

struct Planned {
    /// The event's position in the run (1-based); drags and activity carry it on the wire.
    counter: u64,
    /// Which instance gets it.
    route: u64,
    what: What,
}

/// Per-kind request counts and latencies of the measurement window, and every error.
pub struct LoadStats {
    offered: [AtomicU64; 3],
    committed: [AtomicU64; 3],
    latency: [Mutex<Histogram<u64>>; 3],
    /// Error key → (count, the first one's detail).
    errors: Mutex<BTreeMap<String, (u64, String)>>,
}

impl LoadStats {
    fn new() -> LoadStats {
        LoadStats {
            offered: Default::default(),
            committed: Default::default(),
            latency: std::array::from_fn(|_| Mutex::new(latency_histogram())),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn offered(&self, kind: Kind) -> u64 {
        self.offered[kind.index()].load(Ordering::Relaxed)
    }

    pub fn committed(&self, kind: Kind) -> u64 {
        self.committed[kind.index()].load(Ordering::Relaxed)
    }

    pub fn latency(&self, kind: Kind) -> Histogram<u64> {
        self.latency[kind.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Error key → (count, a sample).
    pub fn errors(&self) -> BTreeMap<String, (u64, String)> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn error(&self, key: String, detail: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let entry = errors.entry(key).or_insert((0, detail));
        entry.0 += 1;
    }

    fn record(&self, kind: Kind, measured: bool, result: Result<(), Failure>, took: Duration) {
        match result {
            Ok(()) if measured => {
                self.committed[kind.index()].fetch_add(1, Ordering::Relaxed);
                let micros = (took.as_micros() as u64).clamp(1, super::shared::MAX_LATENCY_MICROS);
                self.latency[kind.index()]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .saturating_record(micros);
            }
            Ok(()) => {}
            Err(e) => self.error(format!("{} {}", kind.name(), e.key), e.detail),
        }
    }
}

/// Issues requests on schedule: by time `t` into the load, `floor(t * rate)` have been issued
/// (unless `max_in_flight` are outstanding, in which case it waits, and catches up after).
pub struct Driver {
    api: Arc<Api>,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    pub stats: Arc<LoadStats>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    rate: f64,
    started: Instant,
    /// Requests issued so far; also the newest counter.
    pub issued: u64,
    max_events: u64,
    per_kind: [u64; 3],
}

impl Driver {
    pub fn new(
        api: Arc<Api>,
        plan: Arc<Plan>,
        shared: Arc<Shared>,
        rate: f64,
        max_in_flight: usize,
        max_events: u64,
    ) -> Driver {
        Driver {
            api,
            plan,
            shared,
            stats: Arc::new(LoadStats::new()),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            rate,
            started: Instant::now(),
            issued: 0,
            max_events,
            per_kind: [0; 3],
        }
    }

    /// Issues what is due until `end` after the start of the load.
    pub async fn run_until(&mut self, end: Duration) {
        let deadline = tokio::time::Instant::from_std(self.started + end);
        if self.rate <= 0.0 {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        let mut tick = tokio::time::interval(PACER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let elapsed = self.started.elapsed().min(end);
            let due = ((elapsed.as_secs_f64() * self.rate) as u64).min(self.max_events);
            while self.issued < due {
                let permit = match tokio::time::timeout_at(
                    deadline,
                    Arc::clone(&self.in_flight).acquire_owned(),
                )
                .await
                {
                    Ok(Ok(permit)) => permit,
                    // The phase is over (or the semaphore closed): what is still due is not
                    // offered.
                    _ => return,
                };
                self.issued += 1;
                self.spawn(self.issued, permit);
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tick.tick().await;
        }
    }

    fn spawn(&mut self, counter: u64, permit: OwnedSemaphorePermit) {
        let kind = self.plan.cycle[((counter - 1) % self.plan.cycle.len() as u64) as usize];
        let nth = self.per_kind[kind.index()];
        self.per_kind[kind.index()] += 1;
        let what = match kind {
            Kind::Drag => What::Drag {
                workspace: (nth % self.plan.workspaces.len() as u64) as usize,
            },
            Kind::Heartbeat => What::Heartbeat {
                agent: (nth % self.plan.agent_tokens.len() as u64) as usize,
                uptime: self.started.elapsed().as_secs(),
            },
            Kind::Activity => What::Activity {
                workspace: (nth % self.plan.workspaces.len() as u64) as usize,
            },
        };
        let measured = self.shared.is_measuring();
        if measured {
            self.stats.offered[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
        let request = Planned {
            counter,
            route: nth,
            what,
        };
        let (api, plan, shared, stats) = (
            Arc::clone(&self.api),
            Arc::clone(&self.plan),
            Arc::clone(&self.shared),
            Arc::clone(&self.stats),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            if kind != Kind::Heartbeat {
                shared.mark_sent(counter, sent);
            }
            let result = api.send(&request, &plan).await;
            stats.record(kind, measured, result, sent.elapsed());
        });
    }

    /// Waits (bounded) for every request in flight to finish.
    pub async fn drain(&self) -> bool {
        let all = self.max_in_flight as u32;
        matches!(
            tokio::time::timeout(
                REQUEST_TIMEOUT + Duration::from_secs(2),
                self.in_flight.acquire_many(all),
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// One last drag, after everything else has finished: every event committed before it has
    /// a lower seq, so once a socket has seen its seq it has seen the whole run.
    pub async fn send_marker(&mut self) -> Result<u64, Failure> {
        let counter = self.issued + 1;
        self.shared.set_marker(counter);
        let request = Planned {
            counter,
            route: 0,
            what: What::Drag { workspace: 0 },
        };
        self.shared.mark_sent(counter, Instant::now());
        self.api
            .send(&request, &self.plan)
            .await
            .map(|()| counter)
            .map_err(|e| Failure {
                key: format!("marker drag {}", e.key),
                detail: e.detail,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_read_from_prometheus_text_by_its_exact_name() {
        let text = "# TYPE canopy_ws_volatile_dropped_total counter\n\
                    canopy_ws_volatile_dropped_total_other 9\n\
                    canopy_ws_volatile_dropped_total 42\n";
        assert_eq!(
            prometheus_sample(text, "canopy_ws_volatile_dropped_total"),
            Some(42.0)
        );
        assert_eq!(prometheus_sample(text, "canopy_missing_total"), None);
    }

    #[test]
    fn mix_parses_and_refuses_nonsense() {
        let mix: Mix = "drag=80, heartbeat=15,activity=5".parse().unwrap();
        assert_eq!(
            mix,
            Mix {
                drag: 80,
                heartbeat: 15,
                activity: 5
            }
        );
        assert_eq!("drag=1".parse::<Mix>().unwrap().heartbeat, 0);
        for bad in [
            "",
            "drag=0",
            "drag",
            "drag=x",
            "typing=3",
            "drag=-1",
            "drag=1001",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cycle_has_the_exact_proportions_interleaved() {
        let mix: Mix = "drag=80,heartbeat=15,activity=5".parse().unwrap();
        let cycle = mix.cycle();
        assert_eq!(cycle.len(), 100);
        let count = |k| cycle.iter().filter(|c| **c == k).count();
        assert_eq!(
            (
                count(Kind::Drag),
                count(Kind::Heartbeat),
                count(Kind::Activity)
            ),
            (80, 15, 5)
        );
        // No long run of heartbeats: they are spread over the cycle.
        let longest_heartbeat_run = cycle
            .split(|k| *k != Kind::Heartbeat)
            .map(|run| run.len())
            .max()
            .unwrap();
        assert_eq!(longest_heartbeat_run, 1);
        assert_eq!(
            "activity=3".parse::<Mix>().unwrap().cycle(),
            vec![Kind::Activity; 3]
        );
    }
}
