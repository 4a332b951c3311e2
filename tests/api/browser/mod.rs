//! The canvas in a real browser: headless Chromium driven over WebDriver (chromedriver, from the
//! Debian packages `chromium` and `chromium-driver`). The test starts chromedriver itself on a
//! free loopback port and kills it when it ends, panics included.
//!
//! Without Chromium the test cannot run: under CI (`CI` set) that is a failure with a clear
//! message; elsewhere it prints the reason and returns.
//!
//! Screenshots go to `test-artifacts/` (gitignored).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::error::NewSessionError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{spawn_on, TestApp, TestDb, TestOptions};

mod chat_and_approvals;
mod collab;
mod page_files;
mod people;
mod scale;

/// What a step may wait for a page to show before the test fails.
const PAGE_WAIT: Duration = Duration::from_secs(10);
/// The issue's bound for a move made in one page to show in another.
const PROPAGATION: Duration = Duration::from_secs(2);
const WINDOW: (u32, u32) = (1280, 800);

/// One browser test at a time: each runs two Chromium instances, and the machines that run
/// this suite have few cores.
pub(crate) static BROWSER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ------------------------------------------------------------------ chromedriver

/// chromedriver running on a loopback port, in its own process group. Dropping it ends the
/// group (chromedriver and the browsers it started) and removes the browser profiles.
struct Chromedriver {
    child: Child,
    url: String,
    chromium: PathBuf,
    dir: PathBuf,
    profiles: usize,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let pid = self.child.id();
        // The whole group: browsers left behind by a panicking test go with it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for name in candidates {
        let direct = Path::new(name);
        if direct.is_absolute() {
            if direct.is_file() {
                return Some(direct.to_path_buf());
            }
            continue;
        }
        if let Some(found) = path_dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return Some(found);
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Chromedriver {
    /// Starts chromedriver and waits until it accepts sessions.
    async fn start() -> Result<Chromedriver, String> {
        let driver = find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"])
            .ok_or(
                "chromedriver not found (Debian package chromium-driver; or set CHROMEDRIVER)",
            )?;
        let chromium = find_binary(
            "CHROMIUM",
            &["/usr/bin/chromium", "chromium", "chromium-browser"],
        )
        .ok_or("chromium not found (Debian package chromium; or set CHROMIUM)")?;

        let dir = std::env::temp_dir().join(format!("canopy-browser-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let log_path = dir.join("chromedriver.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let port = free_port();
        let mut command = Command::new(&driver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", driver.display()))?;
        let mut guard = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            dir,
            profiles: 0,
        };

        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = guard.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("chromedriver exited ({status}): {log}"));
            }
            let ready = http
                .get(format!("{}/status", guard.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if let Ok(response) = ready {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == json!(true) {
                    return Ok(guard);
                }
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("chromedriver did not become ready: {log}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser (its own fresh profile) on `url`.
    async fn open(&mut self, url: &str) -> Result<Page, String> {
        self.profiles += 1;
        let profile = self.dir.join(format!("profile-{}", self.profiles));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // chromedriver is plain HTTP on loopback: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .map_err(|e| match e {
                NewSessionError::SessionNotCreated(wd) => {
                    format!(
                        "chromedriver could not start Chromium: {}",
                        wd.message.replace('\n', "; ")
                    )
                }
                other => format!("cannot start a Chromium session: {other}"),
            })?;
        let page = Page {
            client,
            name: format!("page {}", self.profiles),
            driver_url: self.url.clone(),
        };
        page.fit_window().await.map_err(|e| format!("{e:#}"))?;
        page.client
            .goto(url)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))?;
        Ok(page)
    }
}

/// Starts chromedriver and checks that it can start Chromium, or explains why not: a failure
/// under CI, a printed skip elsewhere.
async fn chromedriver_or_skip(test: &str) -> Option<Chromedriver> {
    let started = async {
        let mut driver = Chromedriver::start().await?;
        let probe = driver.open("about:blank").await?;
        let _ = probe.client.close().await;
        Ok::<_, String>(driver)
    };
    match started.await {
        Ok(driver) => Some(driver),
        Err(reason) => {
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
            if ci {
                panic!(
                    "{test}: cannot start headless Chromium: {reason}. \
                     Install the Debian packages: apt-get install chromium chromium-driver \
                     (.ci/run does)."
                );
            }
            eprintln!("{test}: SKIPPED, cannot start headless Chromium: {reason}");
            None
        }
    }
}

// ------------------------------------------------------------------ pages

struct Page {
    client: Client,
    name: String,
    driver_url: String,
}

fn card_selector(id: &str) -> String {
    format!(r#".card[data-workspace-id="{id}"]"#)
}

impl Page {
    async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .map_err(|e| anyhow::anyhow!("{}: script failed: {e}", self.name))
    }

    /// Sizes the window so the page itself gets WINDOW (headless windows count some chrome).
    async fn fit_window(&self) -> anyhow::Result<()> {
        for _ in 0..3 {
            let inner = self
                .js("return [window.innerWidth, window.innerHeight];", vec![])
                .await?;
            let (w, h) = (
                inner[0].as_i64().unwrap_or(0),
                inner[1].as_i64().unwrap_or(0),
            );
            if (w, h) == (WINDOW.0 as i64, WINDOW.1 as i64) {
                return Ok(());
            }
            let (ow, oh) = self.client.get_window_size().await?;
            let width = (ow as i64 + WINDOW.0 as i64 - w).max(100) as u32;
            let height = (oh as i64 + WINDOW.1 as i64 - h).max(100) as u32;
            self.client.set_window_size(width, height).await?;
        }
        Ok(())
    }

    /// A chromedriver extension command of this page's session (`/session/{id}/<path>`).
    async fn driver_command(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let session = self
            .client
            .session_id()
            .await?
            .ok_or_else(|| anyhow::anyhow!("no WebDriver session"))?;
        Ok(reqwest::Client::new()
            .post(format!("{}/session/{session}/{path}", self.driver_url))
            .json(&body)
            .send()
            .await?
            .json()
            .await?)
    }

    /// A DevTools protocol command (chromedriver's `goog/cdp/execute`); its result.
    async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        let answer = self
            .driver_command("goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await?;
        Ok(answer["value"].clone())
    }

    /// Uncaught exceptions and console.error calls the page logged since the last call.
    async fn script_errors(&self) -> anyhow::Result<Vec<String>> {
        let logs = self
            .driver_command("se/log", json!({ "type": "browser" }))
            .await?;
        let entries = logs["value"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("browser log unavailable: {logs}"))?;
        Ok(entries
            .iter()
            .filter(|e| e["level"] == json!("SEVERE"))
            .filter(|e| e["source"] == json!("javascript") || e["source"] == json!("console-api"))
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    /// Polls `script` (a function body returning a value) until `accept` takes its result.
    async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        script: &str,
        args: Vec<Value>,
        accept: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let value = self.js(script, args.clone()).await?;
            if accept(&value) {
                return Ok(value);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "{}: {what} not seen within {within:?}; last: {value}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The card of a workspace as the page shows it (`null` when absent).
    async fn card(&self, id: &str) -> anyhow::Result<Value> {
        self.js(CARD_SCRIPT, vec![json!(id)]).await
    }

    async fn wait_card(
        &self,
        what: &str,
        id: &str,
        within: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_for(what, within, CARD_SCRIPT, vec![json!(id)], |card| {
            !card.is_null() && accept(card)
        })
        .await
    }

    async fn wait_connection(&self, state: &str, within: Duration) -> anyhow::Result<()> {
        let expected = json!(state);
        self.wait_for(
            &format!("#connection {state}"),
            within,
            CONNECTION_SCRIPT,
            vec![],
            |v| *v == expected,
        )
        .await
        .map(|_| ())
    }

    /// Drags a card by its head, like a user with a mouse: press, move in steps, release.
    async fn drag_card(&self, id: &str, dx: f64, dy: f64) -> anyhow::Result<()> {
        let head = self
            .client
            .find(Locator::Css(&format!("{} > .card-head", card_selector(id))))
            .await?;
        // WebDriver moves by whole pixels: whole steps keep the total exact.
        let steps = 8.0;
        let (step_x, step_y) = ((dx / steps).round(), (dy / steps).round());
        anyhow::ensure!(
            step_x * steps == dx && step_y * steps == dy,
            "drag by multiples of {steps}"
        );
        let mut mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement {
                element: head,
                duration: None,
                x: 0.0,
                y: 0.0,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            });
        for _ in 0..steps as usize {
            mouse = mouse.then(PointerAction::MoveBy {
                duration: Some(Duration::from_millis(25)),
                x: step_x,
                y: step_y,
            });
        }
        mouse = mouse.then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
        self.client.perform_actions(mouse).await?;
        self.client.release_actions().await?;
        Ok(())
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.client.find(Locator::Css(css)).await?.click().await?;
        Ok(())
    }

    async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let input = self.client.find(Locator::Css(css)).await?;
        input.clear().await?;
        input.send_keys(text).await?;
        Ok(())
    }

    async fn wait_true(&self, what: &str, script: &str) -> anyhow::Result<()> {
        self.wait_for(what, PAGE_WAIT, script, vec![], |v| *v == json!(true))
            .await
            .map(|_| ())
    }

    async fn screenshot(&self, file: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

const CARD_SCRIPT: &str = r#"
const el = document.querySelector(`.card[data-workspace-id="${arguments[0]}"]`);
if (!el) return null;
const head = el.querySelector('.card-head').getBoundingClientRect();
return {
  x: Number(el.dataset.x), y: Number(el.dataset.y), status: el.dataset.status,
  parent: el.dataset.parentId, classes: el.className,
  name: el.querySelector('.card-name').textContent,
  visible: head.width > 0 && head.height > 0,
};
"#;

const CONNECTION_SCRIPT: &str = "return document.getElementById('connection').dataset.state;";

// ------------------------------------------------------------------ the scenario

fn has_class(card: &Value, class: &str) -> bool {
    card["classes"]
        .as_str()
        .is_some_and(|c| c.split_whitespace().any(|k| k == class))
}

async fn create_at(
    app: &TestApp,
    name: &str,
    role: &str,
    parent: Option<&str>,
    x: f64,
    y: f64,
) -> String {
    let (status, body) = app
        .post(
            "/workspaces",
            json!({ "name": name, "role": role, "parent_id": parent, "canvas": { "x": x, "y": y } }),
        )
        .await;
    assert_eq!(status, 201, "create {name}: {body}");
    body["id"].as_str().unwrap().to_string()
}

/// Registers a workspace (it goes online) and returns its workspace token.
async fn register(app: &TestApp, id: &str, name: &str) -> anyhow::Result<String> {
    let (status, body) = app
        .post(
            "/registry/register",
            json!({
                "id": id,
                "url": format!("http://127.0.0.1:9/agents/{id}"),
                "agent_card": { "name": name, "skills": [] },
            }),
        )
        .await;
    anyhow::ensure!(status == 200, "register {name}: {status} {body}");
    body["auth_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("register {name}: no auth_token in {body}"))
}

async fn heartbeat(
    app: &TestApp,
    token: &str,
    id: &str,
    error_rate: f64,
    active_tasks: i64,
    current_task: &str,
) -> anyhow::Result<()> {
    let response = app
        .client
        .post(app.url("/registry/heartbeat"))
        .bearer_auth(token)
        .json(&json!({
            "workspace_id": id,
            "error_rate": error_rate,
            "sample_error": if error_rate >= 0.5 { "upstream timeout" } else { "" },
            "active_tasks": active_tasks,
            "uptime_seconds": 3600,
            "current_task": current_task,
        }))
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(status.is_success(), "heartbeat: {status} {body}");
    Ok(())
}

struct Org {
    hq: String,
    research: String,
    support: String,
    triage: String,
    ops: String,
    oncall: String,
}

async fn get_workspace(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/workspaces/{id}")).await.1
}

/// Waits until the database (over HTTP) agrees with `accept`.
async fn wait_saved(
    app: &TestApp,
    what: &str,
    id: &str,
    accept: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let saved = crate::helpers::eventually(PAGE_WAIT, || async {
        accept(&get_workspace(app, id).await)
    })
    .await;
    let ws = get_workspace(app, id).await;
    anyhow::ensure!(saved, "{what}: not saved: {ws}");
    Ok(ws)
}

/// Drags a card in page 1 and checks that page 2 shows where it landed (position and parent)
/// within the issue's 2 s, and that the database has it.
async fn drag_and_check(
    app: &TestApp,
    pages: &[Page],
    id: &str,
    (dx, dy): (f64, f64),
    parent: Option<&str>,
) -> anyhow::Result<(f64, f64)> {
    let before = pages[0].card(id).await?;
    pages[0].drag_card(id, dx, dy).await?;
    let parent_attr = json!(parent.unwrap_or(""));
    let landed = pages[0]
        .wait_card("dropped card", id, PAGE_WAIT, |c| {
            c["parent"] == parent_attr && (c["x"] != before["x"] || c["y"] != before["y"])
        })
        .await?;
    let (x, y) = (landed["x"].as_f64().unwrap(), landed["y"].as_f64().unwrap());
    if parent.is_none() || parent.map(Value::from) == Some(before["parent"].clone()) {
        // A plain move lands exactly where the pointer took it.
        let want = (
            before["x"].as_f64().unwrap() + dx,
            before["y"].as_f64().unwrap() + dy,
        );
        anyhow::ensure!((x, y) == want, "dropped at {x},{y}, want {want:?}");
    }
    pages[1]
        .wait_card("card moved by the other page", id, PROPAGATION, |c| {
            c["x"].as_f64() == Some(x) && c["y"].as_f64() == Some(y) && c["parent"] == parent_attr
        })
        .await?;
    let parent_json = parent.map_or(Value::Null, Value::from);
    wait_saved(app, "drop", id, |ws| {
        ws["x"].as_f64() == Some(x) && ws["y"].as_f64() == Some(y) && ws["parent_id"] == parent_json
    })
    .await?;
    Ok((x, y))
}

async fn scenario(
    driver: &mut Chromedriver,
    db: &TestDb,
    options: &TestOptions,
    app: TestApp,
    pages: &mut Vec<Page>,
) -> anyhow::Result<()> {
    let port = app.port;
    // Part of the org exists before the pages open (the snapshot), the rest arrives live.
    let hq = create_at(&app, "Acme HQ", "Company root", None, 60.0, 40.0).await;
    let research = create_at(&app, "Research", "Finds things out", Some(&hq), 60.0, 170.0).await;

    for _ in 0..2 {
        let page = driver
            .open(&app.url("/"))
            .await
            .map_err(anyhow::Error::msg)?;
        pages.push(page);
    }
    for page in pages.iter() {
        page.wait_connection("live", PAGE_WAIT).await?;
        page.wait_card("snapshot card", &research, PAGE_WAIT, |c| {
            c["visible"] == json!(true)
        })
        .await?;
    }

    // Workspaces created over HTTP show up in both pages, nested where they belong.
    let support = create_at(
        &app,
        "Support",
        "Answers customers",
        Some(&hq),
        340.0,
        170.0,
    )
    .await;
    let triage = create_at(
        &app,
        "Triage",
        "Sorts the inbox",
        Some(&support),
        340.0,
        300.0,
    )
    .await;
    let ops = create_at(&app, "Ops", "Keeps the lights on", None, 700.0, 40.0).await;
    let oncall = create_at(&app, "On-call", "Answers the pager", None, 980.0, 460.0).await;
    let org = Org {
        hq,
        research,
        support,
        triage,
        ops,
        oncall,
    };
    for page in pages.iter() {
        for (id, name) in [
            (&org.support, "Support"),
            (&org.triage, "Triage"),
            (&org.ops, "Ops"),
            (&org.oncall, "On-call"),
        ] {
            let name = json!(name);
            page.wait_card("created card", id, PAGE_WAIT, |c| {
                c["name"] == name
                    && c["visible"] == json!(true)
                    && has_class(c, "status-provisioning")
            })
            .await?;
        }
        let triage = page.card(&org.triage).await?;
        anyhow::ensure!(
            triage["parent"] == json!(org.support),
            "{}: triage nested: {triage}",
            page.name
        );
    }

    // Drag in page 1: a move onto empty canvas; a drop onto another card's head, which nests
    // it (in a free slot under that head); a drop outside the group, which un-nests it.
    drag_and_check(&app, pages, &org.oncall, (-240.0, -200.0), None).await?;
    let nested = drag_and_check(&app, pages, &org.oncall, (-40.0, -200.0), Some(&org.ops)).await?;
    anyhow::ensure!(
        nested.1 >= 40.0 + 92.0,
        "nested card covers its parent's head: {nested:?}"
    );
    drag_and_check(&app, pages, &org.oncall, (0.0, 160.0), None).await?;

    // A click (no movement) selects: the side panel shows the workspace.
    pages[0]
        .client
        .find(Locator::Css(&format!(
            "{} .card-role",
            card_selector(&org.research)
        )))
        .await?
        .click()
        .await?;
    pages[0]
        .wait_for(
            "side panel",
            PAGE_WAIT,
            "const p = document.getElementById('panel'); \
             return p.hidden ? null : document.getElementById('panel-title').textContent;",
            vec![],
            |v| *v == json!("Research"),
        )
        .await?;

    // Registered workspaces go online; a heartbeat with error_rate 0.8 makes one degraded.
    let research_token = register(&app, &org.research, "Research").await?;
    let support_token = register(&app, &org.support, "Support").await?;
    register(&app, &org.hq, "Acme HQ").await?;
    register(&app, &org.ops, "Ops").await?;
    heartbeat(
        &app,
        &support_token,
        &org.support,
        0.0,
        3,
        "Replying to ticket #4821",
    )
    .await?;
    heartbeat(
        &app,
        &research_token,
        &org.research,
        0.8,
        1,
        "Reading papers",
    )
    .await?;
    for page in pages.iter() {
        page.wait_card("degraded colour", &org.research, PAGE_WAIT, |c| {
            has_class(c, "status-degraded") && c["status"] == json!("degraded")
        })
        .await?;
        page.wait_card("online colour", &org.support, PAGE_WAIT, |c| {
            has_class(c, "status-online")
        })
        .await?;
    }
    // The open panel follows: fresh heartbeat details, and activity as it is logged.
    let response = app
        .client
        .post(app.url(&format!("/workspaces/{}/activity", org.research)))
        .bearer_auth(&research_token)
        .json(&json!({
            "activity_type": "a2a_send",
            "method": "message/send",
            "summary": "Asked Support for ticket stats",
            "target_id": org.support,
            "duration_ms": 420,
        }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "log activity: {}",
        response.status()
    );
    pages[0]
        .wait_true(
            "panel details and activity",
            "const text = (id) => document.getElementById(id).textContent;              return text('panel-details').includes('80%')                && text('panel-activity').includes('Asked Support for ticket stats');",
        )
        .await?;
    let (status, _) = app
        .post(&format!("/workspaces/{}/pause", org.triage), json!({}))
        .await;
    anyhow::ensure!(status == 200, "pause triage: {status}");
    for page in pages.iter() {
        page.wait_card("paused", &org.triage, PAGE_WAIT, |c| {
            has_class(c, "status-paused")
        })
        .await?;
    }
    pages[0].screenshot("canvas.png").await?;

    // Restart the app on the same database and port: the pages notice, reconnect and catch up
    // with events that happened after the restart.
    app.stop().await;
    drop(app);
    for page in pages.iter() {
        page.wait_connection("reconnecting", PAGE_WAIT).await?;
    }
    let app = spawn_on(db, options.clone().var("PORT", &port.to_string())).await;
    let (status, _) = app
        .patch(
            &format!("/workspaces/{}", org.hq),
            json!({ "name": "Acme Holdings" }),
        )
        .await;
    anyhow::ensure!(status == 200, "rename after restart: {status}");
    let late = create_at(
        &app,
        "Billing",
        "Sends invoices",
        Some(&org.hq),
        60.0,
        300.0,
    )
    .await;
    for page in pages.iter() {
        page.wait_connection("live", PAGE_WAIT).await?;
        page.wait_card("rename after restart", &org.hq, PAGE_WAIT, |c| {
            c["name"] == json!("Acme Holdings")
        })
        .await?;
        page.wait_card("card created after restart", &late, PAGE_WAIT, |c| {
            c["parent"] == json!(org.hq) && c["visible"] == json!(true)
        })
        .await?;
        // Nothing was lost or duplicated on the way.
        let count = page
            .js("return document.querySelectorAll('.card').length;", vec![])
            .await?;
        anyhow::ensure!(count == json!(7), "{}: {count} cards, want 7", page.name);
    }
    pages[1].screenshot("canvas-after-restart.png").await?;
    app.stop().await;
    Ok(())
}

#[tokio::test]
async fn browser_two_pages_live_drag_status_and_restart() {
    let _serial = BROWSER_LOCK.lock().await;
    let Some(mut driver) =
        chromedriver_or_skip("browser_two_pages_live_drag_status_and_restart").await
    else {
        return;
    };
    let db = TestDb::new();
    let options = TestOptions {
        redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
        ..TestOptions::default()
    };
    let app = spawn_on(&db, options.clone()).await;
    let mut pages = Vec::new();
    let outcome = scenario(&mut driver, &db, &options, app, &mut pages).await;
    finish(outcome, pages, "browser").await;
}

/// Closes the browsers; on failure keeps a screenshot of each page first.
async fn finish(outcome: anyhow::Result<()>, pages: Vec<Page>, prefix: &str) {
    if let Err(err) = finish_without_panic(outcome, pages, prefix).await {
        panic!("{err:#}");
    }
}

/// [`finish`], handing the failure back instead of panicking. A scenario that passed still
/// fails if any page logged a script error (an uncaught exception or `console.error`) on the
/// way: every browser test checks that here, for every page it opened.
async fn finish_without_panic(
    mut outcome: anyhow::Result<()>,
    pages: Vec<Page>,
    prefix: &str,
) -> anyhow::Result<()> {
    if outcome.is_ok() {
        for page in &pages {
            match page.script_errors().await {
                Ok(errors) if errors.is_empty() => {}
                Ok(errors) => {
                    outcome = Err(anyhow::anyhow!("{}: script errors: {errors:#?}", page.name));
                    break;
                }
                Err(e) => {
                    outcome = Err(e.context(format!("{}: reading the browser log", page.name)));
                    break;
                }
            }
        }
    }
    if outcome.is_err() {
        for (i, page) in pages.iter().enumerate() {
            if let Ok(path) = page
                .screenshot(&format!("{prefix}-failure-page{}.png", i + 1))
                .await
            {
                eprintln!("screenshot of {} at failure: {}", page.name, path.display());
            }
        }
    }
    for page in pages {
        let _ = page.client.close().await;
    }
    outcome
}

/// One browser test's shared setup: the serial lock, chromedriver (or the skip), its own
/// database and an app on it. Pages are opened with [`BrowserTest::open`]; [`BrowserTest::finish`]
/// closes them (screenshots first on failure), stops the app and panics with the failure.
struct BrowserTest {
    driver: Chromedriver,
    app: TestApp,
    pages: Vec<Page>,
    prefix: &'static str,
    // Dropped last: the app stops before its database goes, and the lock outlives both.
    _db: TestDb,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl BrowserTest {
    /// `None` when Chromium cannot run here (a skip; a failure under CI).
    async fn start(test: &str, prefix: &'static str, options: TestOptions) -> Option<BrowserTest> {
        let serial = BROWSER_LOCK.lock().await;
        let driver = chromedriver_or_skip(test).await?;
        let db = TestDb::new();
        let app = spawn_on(&db, options).await;
        Some(BrowserTest {
            driver,
            app,
            pages: Vec::new(),
            prefix,
            _db: db,
            _serial: serial,
        })
    }

    /// Opens the canvas in a new browser; returns its index in `pages`.
    async fn open(&mut self) -> anyhow::Result<usize> {
        let page = self
            .driver
            .open(&self.app.url("/"))
            .await
            .map_err(anyhow::Error::msg)?;
        self.pages.push(page);
        Ok(self.pages.len() - 1)
    }

    async fn finish(self, outcome: anyhow::Result<()>) {
        let BrowserTest {
            driver,
            app,
            pages,
            prefix,
            _db,
            _serial,
        } = self;
        let closed = finish_without_panic(outcome, pages, prefix).await;
        // Stopped before the failure is reported, so a failing test leaves no server behind.
        app.stop().await;
        drop(driver);
        if let Err(err) = closed {
            panic!("{err:#}");
        }
    }
}

// ------------------------------------------------------------------ ADMIN_TOKEN

async fn token_scenario(
    driver: &mut Chromedriver,
    app: &TestApp,
    pages: &mut Vec<Page>,
) -> anyhow::Result<()> {
    let token = app.admin_token.clone().expect("admin token set");
    let first = app.create_workspace("Guarded", None).await;
    pages.push(
        driver
            .open(&app.url("/"))
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let page = &pages[0];

    // The page asks for the token once; nothing shows before it is given.
    page.wait_for(
        "#token-form",
        PAGE_WAIT,
        "return !document.getElementById('token-form').hidden;",
        vec![],
        |v| *v == json!(true),
    )
    .await?;
    anyhow::ensure!(
        page.card(&first).await?.is_null(),
        "a card showed without the token"
    );
    page.screenshot("token-prompt.png").await?;
    let input = page.client.find(Locator::Id("token-input")).await?;
    input.send_keys(&token).await?;
    page.client
        .find(Locator::Id("token-submit"))
        .await?
        .click()
        .await?;
    page.wait_connection("live", PAGE_WAIT).await?;
    page.wait_card("card after token", &first, PAGE_WAIT, |c| {
        c["visible"] == json!(true)
    })
    .await?;

    // The socket is authorised too: a live event arrives.
    let second = app.create_workspace("Also guarded", None).await;
    page.wait_card("live card with token", &second, PAGE_WAIT, |_| true)
        .await?;

    // The page signed in (the admin token through a short-lived key it issued itself) and
    // holds only the HttpOnly cookie: nothing in storage, nothing a script can read.
    let held = page
        .js(
            "return [localStorage.length + sessionStorage.length, document.cookie];",
            vec![],
        )
        .await?;
    anyhow::ensure!(held == json!([0, ""]), "a credential within reach: {held}");

    // A reload keeps the session (the cookie): no second prompt.
    page.client.refresh().await?;
    page.wait_connection("live", PAGE_WAIT).await?;
    let asked = page
        .js(
            "return !document.getElementById('token-form').hidden;",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        asked == json!(false),
        "the token was asked for again after a reload"
    );
    page.wait_card("card after reload", &second, PAGE_WAIT, |_| true)
        .await?;
    Ok(())
}

#[tokio::test]
async fn browser_asks_for_the_admin_token_once() {
    let options = TestOptions::default().var("ADMIN_TOKEN", "browser-test-admin-token");
    let Some(mut t) = BrowserTest::start(
        "browser_asks_for_the_admin_token_once",
        "browser-token",
        options,
    )
    .await
    else {
        return;
    };
    let outcome = token_scenario(&mut t.driver, &t.app, &mut t.pages).await;
    t.finish(outcome).await;
}

// ------------------------------------------------------------------ panel and canvas controls

/// The only workspace named `name`, once the server has it.
async fn workspace_named(app: &TestApp, name: &str) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + PAGE_WAIT;
    loop {
        let (_, list) = app.get("/workspaces").await;
        let hits: Vec<&Value> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["name"] == json!(name))
            .collect();
        if let [one] = hits.as_slice() {
            return Ok((*one).clone());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no single workspace named {name}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn controls_scenario(
    driver: &mut Chromedriver,
    app: &TestApp,
    pages: &mut Vec<Page>,
) -> anyhow::Result<()> {
    pages.push(
        driver
            .open(&app.url("/"))
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let page = &pages[0];
    page.wait_connection("live", PAGE_WAIT).await?;
    page.wait_true(
        "empty hint",
        "return !document.getElementById('empty-hint').hidden;",
    )
    .await?;

    // "New workspace": a root, then (with it selected) a child inside it.
    page.click("#new-workspace").await?;
    page.type_into("#new-name", "Platform").await?;
    page.type_into("#new-role", "Runs the platform").await?;
    page.click("#new-submit").await?;
    let platform = workspace_named(app, "Platform").await?;
    let platform_id = platform["id"].as_str().unwrap().to_string();
    anyhow::ensure!(platform["role"] == json!("Runs the platform"), "{platform}");
    page.wait_card("new card", &platform_id, PAGE_WAIT, |c| {
        c["visible"] == json!(true)
    })
    .await?;
    page.wait_true(
        "panel for the new workspace",
        "return document.getElementById('panel-title').textContent === 'Platform';",
    )
    .await?;
    page.click("#new-workspace").await?;
    page.type_into("#new-name", "API").await?;
    page.click("#new-submit").await?;
    let api = workspace_named(app, "API").await?;
    let api_id = api["id"].as_str().unwrap().to_string();
    anyhow::ensure!(
        api["parent_id"] == json!(platform_id),
        "child created inside: {api}"
    );
    let parent = json!(platform_id);
    page.wait_card("new child card", &api_id, PAGE_WAIT, |c| {
        c["parent"] == parent
    })
    .await?;

    // Rename from the panel (API is selected now).
    page.type_into("#rename-input", "Public API").await?;
    page.click("#rename-submit").await?;
    wait_saved(app, "rename", &api_id, |ws| {
        ws["name"] == json!("Public API")
    })
    .await?;
    page.wait_card("renamed card", &api_id, PAGE_WAIT, |c| {
        c["name"] == json!("Public API")
    })
    .await?;

    // Collapse and expand the group.
    let toggle = format!("{} > .card-head .card-toggle", card_selector(&platform_id));
    page.click(&toggle).await?;
    page.wait_card("collapsed child hidden", &api_id, PAGE_WAIT, |c| {
        c["visible"] == json!(false)
    })
    .await?;
    wait_saved(app, "collapse", &platform_id, |ws| {
        ws["collapsed"] == json!(true)
    })
    .await?;
    page.click(&toggle).await?;
    page.wait_card("expanded child shown", &api_id, PAGE_WAIT, |c| {
        c["visible"] == json!(true)
    })
    .await?;
    wait_saved(app, "expand", &platform_id, |ws| {
        ws["collapsed"] == json!(false)
    })
    .await?;

    // Pan the canvas by dragging empty space, zoom with the button: the view is saved.
    let mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: 900.0,
            y: 600.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(100)),
            x: 60.0,
            y: 20.0,
        })
        .then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(100)),
            x: 60.0,
            y: 20.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    page.client.perform_actions(mouse).await?;
    page.client.release_actions().await?;
    let saved_view = |want: Value| async move {
        crate::helpers::eventually(Duration::from_secs(5), || async {
            app.get("/canvas/viewport").await.1 == want
        })
        .await
    };
    anyhow::ensure!(
        saved_view(json!({ "x": 120, "y": 40, "zoom": 1 })).await,
        "pan not saved: {}",
        app.get("/canvas/viewport").await.1
    );
    page.click("#zoom-in").await?;
    let view = page
        .wait_for(
            "zoomed view",
            PAGE_WAIT,
            "return document.getElementById('viewport').dataset.zoom;",
            vec![],
            |v| *v == json!("1.25"),
        )
        .await?;
    anyhow::ensure!(
        crate::helpers::eventually(Duration::from_secs(5), || async {
            app.get("/canvas/viewport").await.1["zoom"] == json!(1.25)
        })
        .await,
        "zoom not saved ({view}): {}",
        app.get("/canvas/viewport").await.1
    );

    // Delete a workspace with children: the panel asks, then both go.
    page.click(&format!("{} .card-role", card_selector(&platform_id)))
        .await?;
    page.wait_true(
        "panel for the group",
        "return document.getElementById('panel-title').textContent === 'Platform';",
    )
    .await?;
    page.click("#panel-delete").await?;
    page.wait_true(
        "delete confirmation",
        "const c = document.getElementById('delete-confirm'); \
         return !c.hidden && c.textContent.includes('Public API');",
    )
    .await?;
    page.click("#delete-confirm-yes").await?;
    page.wait_true(
        "cards gone",
        "return document.querySelectorAll('.card').length === 0;",
    )
    .await?;
    let (_, list) = app.get("/workspaces").await;
    anyhow::ensure!(list == json!([]), "deleted: {list}");

    Ok(())
}

#[tokio::test]
async fn browser_panel_and_canvas_controls() {
    let Some(mut t) = BrowserTest::start(
        "browser_panel_and_canvas_controls",
        "browser-controls",
        TestOptions::default(),
    )
    .await
    else {
        return;
    };
    let outcome = controls_scenario(&mut t.driver, &t.app, &mut t.pages).await;
    t.finish(outcome).await;
}

// ------------------------------------------------------------------ 200 workspaces

async fn crowd_scenario(
    driver: &mut Chromedriver,
    app: &TestApp,
    pages: &mut Vec<Page>,
) -> anyhow::Result<()> {
    // 20 teams of a lead and 9 members: 200 workspaces.
    let mut members = Vec::new();
    for team in 0..20 {
        let (gx, gy) = (f64::from(team % 5) * 840.0, f64::from(team / 5) * 580.0);
        let lead = create_at(app, &format!("Team {team}"), "Lead", None, gx, gy).await;
        for k in 0..9 {
            let (x, y) = (
                gx + f64::from(k % 3) * 262.0,
                gy + 120.0 + f64::from(k / 3) * 134.0,
            );
            let name = format!("Agent {team}.{k}");
            members.push(create_at(app, &name, "Member", Some(&lead), x, y).await);
        }
    }

    pages.push(
        driver
            .open(&app.url("/"))
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let page = &pages[0];
    page.wait_connection("live", PAGE_WAIT).await?;
    page.wait_true(
        "200 cards",
        "return document.querySelectorAll('.card').length === 200;",
    )
    .await?;
    page.click("#fit-view").await?;
    page.screenshot("canvas-200.png").await?;

    // Events touch only their cards: the elements stay the ones first drawn, and a burst of
    // 50 moves is on screen well within the 2 s a single move may take.
    page.js(
        "window.__cards = Array.from(document.querySelectorAll('.card'));",
        vec![],
    )
    .await?;
    let started = std::time::Instant::now();
    for (i, id) in members.iter().take(50).enumerate() {
        let (status, body) = app
            .patch(
                &format!("/workspaces/{id}"),
                json!({ "x": 5000 + i, "y": 3000 }),
            )
            .await;
        anyhow::ensure!(status == 200, "move {id}: {body}");
    }
    let last = json!(members[49]);
    page.wait_for(
        "50 moves applied",
        PROPAGATION,
        "return document.querySelector(`.card[data-workspace-id=\"${arguments[0]}\"]`).dataset.x;",
        vec![last],
        |x| *x == json!("5049"),
    )
    .await?;
    let elapsed = started.elapsed();
    page.wait_true(
        "same elements",
        "const now = document.querySelectorAll('.card'); \
         return now.length === 200 && window.__cards.every((el) => el.isConnected);",
    )
    .await?;
    eprintln!("200 workspaces: 50 moves sent and shown in {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn browser_two_hundred_workspaces() {
    let Some(mut t) = BrowserTest::start(
        "browser_two_hundred_workspaces",
        "browser-200",
        TestOptions::default(),
    )
    .await
    else {
        return;
    };
    let outcome = crowd_scenario(&mut t.driver, &t.app, &mut t.pages).await;
    t.finish(outcome).await;
}
