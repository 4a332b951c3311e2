//! The `page` scenario (issue 17, item 5): the canvas page itself under load, in headless
//! Chromium driven over WebDriver (chromedriver + `fantoccini`).
//!
//! It seeds an org of `workspaces` through the API (a tree, eight children per parent, created
//! without positions and then arranged by the server when it offers `POST /canvas/arrange`),
//! registers every workspace as an agent, opens the page, frames the org with Fit, starts the
//! page's own timings (`window.canopyPerf`, static/js/perf.js), then offers `rate` requests a
//! second for `duration`, each producing exactly one sequenced event: a status change (a
//! heartbeat flipping the error rate across the degraded threshold), a task banner (a heartbeat
//! with a new `current_task`: TASK_UPDATED) and a drag (PATCH x/y: WORKSPACE_LAYOUT_CHANGED),
//! in equal shares. During the middle third it pans and zooms the view with WebDriver input
//! (pointer drags on empty canvas and wheel turns). At the end it waits for the page to have
//! applied every event it caused and reads the page's figures, plus Chromium's own main-thread
//! task time from the DevTools protocol (`Performance.getMetrics`).
//!
//! Timings are reported, never judged; an event the page did not apply is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{
    InputSource, MouseActions, PointerAction, WheelAction, WheelActions, MOUSE_BUTTON_LEFT,
};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::BenchError;

/// Children per parent in the seeded tree.
const FAN_OUT: usize = 8;
/// Requests in flight at most while seeding.
const SEED_CONCURRENCY: usize = 16;
/// The page window (CSS px).
const WINDOW: (u32, u32) = (1280, 800);
/// How long the page may take to show the seeded org, and to apply the last events.
const PAGE_WAIT: Duration = Duration::from_secs(60);
const TAIL_WAIT: Duration = Duration::from_secs(15);
/// Event kinds this scenario causes (what "seen" counts).
const KINDS: [&str; 4] = [
    "WORKSPACE_ONLINE",
    "WORKSPACE_DEGRADED",
    "TASK_UPDATED",
    "WORKSPACE_LAYOUT_CHANGED",
];

/// What the `page` scenario runs.
#[derive(Clone, Debug)]
pub struct PageConfig {
    /// The instance's base URL (loopback).
    pub url: String,
    pub admin_token: Option<String>,
    /// Workspaces seeded (and registered as agents).
    pub workspaces: usize,
    /// Requests (= events) per second.
    pub rate: f64,
    pub duration: Duration,
    /// chromedriver and Chromium binaries (None: looked up like the browser tests do).
    pub chromedriver: Option<PathBuf>,
    pub chromium: Option<PathBuf>,
    /// Pan and zoom the view during the middle third of the run.
    pub pan_zoom: bool,
}

impl PageConfig {
    /// The defaults of `bench/run.sh page`: 500 workspaces, 50 events/s, 20 s.
    pub fn new(url: String) -> PageConfig {
        PageConfig {
            url,
            admin_token: None,
            workspaces: 500,
            rate: 50.0,
            duration: Duration::from_secs(20),
            chromedriver: None,
            chromium: None,
            pan_zoom: true,
        }
    }
}

/// The scenario's outcome; [`PageReport::to_json`] is the line `canopy-bench` prints.
#[derive(Debug, Clone)]
pub struct PageReport {
    pub workspaces: usize,
    pub rate: f64,
    pub duration: Duration,
    /// Requests sent that succeeded (each causes one event), and those that failed.
    pub sent: u64,
    pub failed: u64,
    /// Events of the scenario's kinds the page applied while recording.
    pub seen: u64,
    /// `window.canopyPerf.report()` as the page gave it.
    pub page: Value,
    /// Chromium's main-thread task time over the recorded window, as a share of it (%),
    /// from `Performance.getMetrics` (`TaskDuration`); None when the protocol is unavailable.
    pub task_pct: Option<f64>,
    /// Pan and zoom gestures performed.
    pub gestures: u64,
    pub first_error: Option<String>,
}

impl PageReport {
    /// Events sent that the page did not apply.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.seen)
    }

    /// 0 every event seen and every request succeeded; 1 an event was not seen; 3 requests failed.
    pub fn exit_code(&self) -> i32 {
        if self.lost() > 0 {
            1
        } else if self.failed > 0 {
            3
        } else {
            0
        }
    }

    /// The JSON line: `{"scenario":"page", "events":{sent,seen,lost,by_kind}, "event_to_screen_ms",
    /// "frame_ms", "busy":{long_task_pct, task_pct, long_tasks, script_ms}, …}`.
    pub fn to_json(&self) -> Value {
        let p = &self.page;
        json!({
            "scenario": "page",
            "workspaces": self.workspaces,
            "rate": self.rate,
            "duration_s": self.duration.as_secs_f64(),
            "events": {
                "sent": self.sent,
                "seen": self.seen,
                "lost": self.lost(),
                "by_kind": p["by_kind"],
            },
            "requests_failed": self.failed,
            "first_error": self.first_error,
            "event_to_screen_ms": p["event_to_screen_ms"],
            "frame_ms": p["frame_ms"],
            "gestures": self.gestures,
            "busy": {
                "long_task_pct": p["busy_long_task_pct"],
                "long_tasks": p["long_tasks"],
                "task_pct": self.task_pct.map(|v| (v * 100.0).round() / 100.0),
                "script_ms": p["script_ms"],
                "elapsed_ms": p["elapsed_ms"],
            },
        })
    }
}

// ------------------------------------------------------------------ chromedriver

/// chromedriver in its own process group; dropping it ends the group and its profile dir.
struct Driver {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find(given: &Option<PathBuf>, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.clone());
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    candidates.iter().find_map(|name| {
        let direct = Path::new(name);
        if direct.is_absolute() {
            return direct.is_file().then(|| direct.to_path_buf());
        }
        dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
    })
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Setup(format!("{what}: {e}"))
}

async fn start_driver(config: &PageConfig) -> Result<(Driver, Client), BenchError> {
    let driver_bin = find(
        &config.chromedriver,
        &["/usr/bin/chromedriver", "chromedriver"],
    )
    .ok_or_else(|| BenchError::Setup("chromedriver not found (--chromedriver)".into()))?;
    let chromium = find(
        &config.chromium,
        &["/usr/bin/chromium", "chromium", "chromium-browser"],
    )
    .ok_or_else(|| BenchError::Setup("chromium not found (--chromium)".into()))?;
    let dir = std::env::temp_dir().join(format!("canopy-bench-page-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(setup("temp dir"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(setup("free port"))?;
    let log = std::fs::File::create(dir.join("chromedriver.log")).map_err(setup("log"))?;
    let mut command = Command::new(&driver_bin);
    command
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(setup("log"))?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().map_err(setup("chromedriver"))?;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = http
            .get(format!("{}/status", driver.url))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if let Ok(r) = ready {
            let body: Value = r.json().await.unwrap_or_default();
            if body["value"]["ready"] == json!(true) {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(
                "chromedriver did not become ready".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--hide-scrollbars", "--force-device-scale-factor=1",
                format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                format!("--user-data-dir={}", driver.dir.join("profile").display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .map_err(setup("Chromium session"))?;
    Ok((driver, client))
}

/// A DevTools protocol command through chromedriver's `goog/cdp/execute`.
async fn cdp(driver: &Driver, client: &Client, cmd: &str) -> Option<Value> {
    let session = client.session_id().await.ok()??;
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/session/{session}/goog/cdp/execute", driver.url))
        .json(&json!({ "cmd": cmd, "params": {} }))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(answer["value"].clone())
}

/// Chromium's `TaskDuration` (seconds of main-thread tasks) and `Timestamp` (seconds).
async fn task_clock(driver: &Driver, client: &Client) -> Option<(f64, f64)> {
    let metrics = cdp(driver, client, "Performance.getMetrics").await?;
    let get = |name: &str| {
        metrics["metrics"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == json!(name))?["value"]
            .as_f64()
    };
    Some((get("TaskDuration")?, get("Timestamp")?))
}

async fn js(client: &Client, script: &str) -> Result<Value, BenchError> {
    client
        .execute(script, vec![])
        .await
        .map_err(setup("page script"))
}

async fn wait_js(
    client: &Client,
    what: &str,
    script: &str,
    within: Duration,
) -> Result<Value, BenchError> {
    let deadline = Instant::now() + within;
    loop {
        let v = js(client, script).await?;
        if v == json!(true) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!("the page never showed {what}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------ the API

struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> Result<Value, String> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body);
        if let Some(t) = bearer.or(self.token.as_deref()) {
            rb = rb.bearer_auth(t);
        }
        let res = rb.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{path}: {status} {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// One seeded workspace and what the load last told the server about it.
struct Agent {
    id: String,
    token: String,
    degraded: std::sync::atomic::AtomicBool,
    task: AtomicU64,
    x: AtomicU64,
}

async fn seed(api: &Api, n: usize) -> Result<Vec<Arc<Agent>>, BenchError> {
    let mut ids: Vec<String> = Vec::with_capacity(n);
    // Level by level: a parent exists before its children are created.
    let mut level_start = 0;
    let mut level_len = 1;
    while level_start < n {
        let end = (level_start + level_len).min(n);
        let made: Vec<Result<(usize, String), String>> = stream::iter(level_start..end)
            .map(|i| {
                let parent = (i > 0).then(|| ids[(i - 1) / FAN_OUT].clone());
                async move {
                    let mut body =
                        json!({ "name": format!("Bench {i}"), "role": format!("Role {}", i % 7) });
                    if let Some(p) = parent {
                        body["parent_id"] = json!(p);
                    }
                    let res = api
                        .call(reqwest::Method::POST, "/workspaces", body, None)
                        .await?;
                    let id = res["id"].as_str().ok_or("no id")?.to_string();
                    Ok((i, id))
                }
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .collect()
            .await;
        let mut level: Vec<(usize, String)> = made
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| BenchError::Setup(format!("create: {e}")))?;
        level.sort();
        ids.extend(level.into_iter().map(|(_, id)| id));
        level_start = end;
        level_len *= FAN_OUT;
    }
    // A tidy layout when the server offers one (a server without it answers 404).
    let _ = api
        .call(reqwest::Method::POST, "/canvas/arrange", json!({}), None)
        .await;
    let agents: Vec<Result<Arc<Agent>, String>> = stream::iter(ids)
        .map(|id| async move {
            let res = api
                .call(
                    reqwest::Method::POST,
                    "/registry/register",
                    json!({ "id": id, "url": format!("http://127.0.0.1:9/agents/{id}"),
                            "agent_card": { "name": id, "skills": [] } }),
                    None,
                )
                .await?;
            let token = res["auth_token"]
                .as_str()
                .ok_or("no auth_token")?
                .to_string();
            Ok(Arc::new(Agent {
                id,
                token,
                degraded: false.into(),
                task: AtomicU64::new(0),
                x: AtomicU64::new(0),
            }))
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect()
        .await;
    agents
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Setup(format!("register: {e}")))
}

/// Sends request `n`: a status flip, a task banner or a drag, in turn, each to the next agent
/// (so one agent is not sent two requests at once: its next comes `workspaces` requests later).
async fn send(
    api: &Api,
    agents: &[Arc<Agent>],
    positions: &[(f64, f64)],
    n: u64,
) -> Result<(), String> {
    let i = n as usize % agents.len();
    let agent = &agents[i];
    match n % 3 {
        0 | 1 => {
            let degraded = if n % 3 == 0 {
                !agent.degraded.fetch_xor(true, Ordering::SeqCst)
            } else {
                agent.degraded.load(Ordering::SeqCst)
            };
            let task = if n % 3 == 1 {
                agent.task.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                agent.task.load(Ordering::SeqCst)
            };
            let current_task = if task == 0 {
                String::new()
            } else {
                format!("task {task}")
            };
            api.call(
                reqwest::Method::POST,
                "/registry/heartbeat",
                json!({
                    "workspace_id": agent.id,
                    "error_rate": if degraded { 0.8 } else { 0.0 },
                    "sample_error": if degraded { "bench" } else { "" },
                    "active_tasks": task % 4,
                    "uptime_seconds": 60,
                    "current_task": current_task,
                }),
                Some(&agent.token),
            )
            .await
            .map(|_| ())
        }
        _ => {
            // Nudges it 8 px right and back in turn: every drag is a real move.
            let step = agent.x.fetch_add(1, Ordering::SeqCst);
            let (x, y) = positions[i];
            let dx = if step % 2 == 0 { 8.0 } else { 0.0 };
            api.call(
                reqwest::Method::PATCH,
                &format!("/workspaces/{}", agent.id),
                json!({ "x": x + dx + 8.0, "y": y }),
                None,
            )
            .await
            .map(|_| ())
        }
    }
}

/// Pans (a pointer drag on empty canvas and back) or zooms (wheel in, then out) once.
async fn gesture(client: &Client, n: u64) -> Result<(), fantoccini::error::CmdError> {
    // The corner of the canvas under the toolbar: Fit leaves a margin there.
    let (x, y) = (8.0, 56.0);
    if n % 2 == 0 {
        let mut mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveTo {
                duration: None,
                x,
                y,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            });
        for dir in [1.0, -1.0] {
            for _ in 0..15 {
                mouse = mouse.then(PointerAction::MoveBy {
                    duration: Some(Duration::from_millis(16)),
                    x: 12.0 * dir,
                    y: 6.0 * dir,
                });
            }
        }
        mouse = mouse.then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
        client.perform_actions(mouse).await?;
    } else {
        let mut wheel = WheelActions::new("wheel".into());
        for delta in [-120, -120, -120, 120, 120, 120] {
            wheel.push(WheelAction::Scroll {
                duration: Some(Duration::from_millis(100)),
                x: (WINDOW.0 / 2) as i64,
                y: (WINDOW.1 / 2) as i64,
                delta_x: 0,
                delta_y: delta,
            });
        }
        client.perform_actions(wheel).await?;
    }
    client.release_actions().await
}

/// Runs the scenario against the instance at `config.url`.
pub async fn run_page(config: PageConfig) -> Result<PageReport, BenchError> {
    if config.workspaces == 0 || config.rate.is_nan() || config.rate <= 0.0 {
        return Err(BenchError::Usage(
            "page: workspaces and rate must be above 0".into(),
        ));
    }
    let api = Api {
        http: reqwest::Client::new(),
        base: config.url.trim_end_matches('/').to_string(),
        token: config.admin_token.clone(),
    };
    let agents = seed(&api, config.workspaces).await?;
    let list = api
        .call(reqwest::Method::GET, "/workspaces", Value::Null, None)
        .await
        .map_err(BenchError::Setup)?;
    let positions: Vec<(f64, f64)> = agents
        .iter()
        .map(|a| {
            list.as_array()
                .and_then(|l| l.iter().find(|w| w["id"].as_str() == Some(&a.id)))
                .map(|w| {
                    (
                        w["x"].as_f64().unwrap_or(0.0),
                        w["y"].as_f64().unwrap_or(0.0),
                    )
                })
                .unwrap_or((0.0, 0.0))
        })
        .collect();

    let (driver, client) = start_driver(&config).await?;
    let outcome = drive(&config, &api, &agents, &positions, &driver, &client).await;
    let _ = client.close().await;
    drop(driver);
    outcome
}

async fn drive(
    config: &PageConfig,
    api: &Api,
    agents: &[Arc<Agent>],
    positions: &[(f64, f64)],
    driver: &Driver,
    client: &Client,
) -> Result<PageReport, BenchError> {
    client
        .goto(&api.base)
        .await
        .map_err(setup("open the page"))?;
    if let Some(token) = &config.admin_token {
        // The page asks once; it turns the admin token into a session cookie.
        wait_js(
            client,
            "the sign-in form",
            "return !document.getElementById('token-form').hidden || document.getElementById('connection').dataset.state === 'live';",
            PAGE_WAIT,
        )
        .await?;
        if js(
            client,
            "return !document.getElementById('token-form').hidden;",
        )
        .await?
            == json!(true)
        {
            let input = client
                .find(Locator::Id("token-input"))
                .await
                .map_err(setup("sign in"))?;
            input.send_keys(token).await.map_err(setup("sign in"))?;
            client
                .find(Locator::Id("token-submit"))
                .await
                .map_err(setup("sign in"))?
                .click()
                .await
                .map_err(setup("sign in"))?;
        }
    }
    let n = config.workspaces;
    wait_js(
        client,
        "every workspace online",
        &format!(
            "const ws = [...window.canopy.state.model.workspaces.values()]; \
             return document.getElementById('connection').dataset.state === 'live' && \
               ws.length === {n} && ws.every((w) => w.status === 'online');"
        ),
        PAGE_WAIT,
    )
    .await?;
    client
        .find(Locator::Id("fit-view"))
        .await
        .map_err(setup("Fit"))?
        .click()
        .await
        .map_err(setup("Fit"))?;
    let _ = cdp(driver, client, "Performance.enable").await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the view settles
    js(client, "return window.canopyPerf.start();").await?;
    let clock_start = task_clock(driver, client).await;

    // The load: one request every 1/rate s, each its own task; sent in order.
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / config.rate);
    let total = (config.rate * config.duration.as_secs_f64()).round() as u64;
    let pan_from = config.duration / 3;
    let pan_to = config.duration * 2 / 3;
    let mut gestures = 0u64;
    let load = async {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut pending = futures_util::stream::FuturesUnordered::new();
        let mut i = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick(), if i < total => {
                    let (sent, failed, first_error) = (sent.clone(), failed.clone(), first_error.clone());
                    let n = i;
                    i += 1;
                    pending.push(async move {
                        match send(api, agents, positions, n).await {
                            Ok(()) => {
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                first_error.lock().unwrap().get_or_insert(e);
                            }
                        }
                    });
                }
                Some(()) = pending.next(), if !pending.is_empty() => {}
                else => break,
            }
        }
    };
    let input = async {
        if !config.pan_zoom {
            return;
        }
        tokio::time::sleep(pan_from).await;
        while started.elapsed() < pan_to {
            if gesture(client, gestures).await.is_err() {
                break;
            }
            gestures += 1;
        }
    };
    tokio::join!(load, input);
    let sent = sent.load(Ordering::Relaxed);

    // Every event the load caused must reach the page.
    let seen_script = format!(
        "const k = window.canopyPerf.report().by_kind; return {};",
        KINDS.map(|k| format!("(k['{k}'] || 0)")).join(" + ")
    );
    let deadline = Instant::now() + TAIL_WAIT;
    let mut seen;
    loop {
        seen = js(client, &seen_script).await?.as_u64().unwrap_or(0);
        if seen >= sent || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let clock_end = task_clock(driver, client).await;
    let page = js(
        client,
        "window.canopyPerf.stop(); return window.canopyPerf.report();",
    )
    .await?;
    let task_pct = match (clock_start, clock_end) {
        (Some((t0, s0)), Some((t1, s1))) if s1 > s0 => Some((t1 - t0) / (s1 - s0) * 100.0),
        _ => None,
    };
    let first_error = first_error.lock().unwrap().clone();
    Ok(PageReport {
        workspaces: config.workspaces,
        rate: config.rate,
        duration: config.duration,
        sent,
        failed: failed.load(Ordering::Relaxed),
        seen,
        page,
        task_pct,
        gestures,
        first_error,
    })
}
