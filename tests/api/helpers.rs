#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use canopy::app::{AppState, Application, StopHandle};
use canopy::config::Config;
use canopy::store::{DatabaseUrl, Store};
use diesel::prelude::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Every socket read in a test is bounded: a bug fails the test instead of hanging it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub fn postgres_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

pub fn redis_url() -> Option<String> {
    std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty())
}

/// A database of the test's own: a temp SQLite file, or a fresh PostgreSQL database that is
/// dropped when the test ends.
pub struct TestDb {
    pub url: DatabaseUrl,
    server_url: Option<String>,
    name: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let name = format!("canopy_test_{}", uuid::Uuid::new_v4().simple());
        match postgres_url() {
            Some(server_url) => {
                let mut admin = PgConnection::establish(&server_url)
                    .expect("connect to the PostgreSQL server in DATABASE_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create test database");
                let url = replace_database(&server_url, &name);
                TestDb {
                    url: DatabaseUrl::Postgres(url),
                    server_url: Some(server_url),
                    name,
                }
            }
            None => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                TestDb {
                    url: DatabaseUrl::Sqlite(path.to_string_lossy().into_owned()),
                    server_url: None,
                    name,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.server_url.is_some()
    }

    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Postgres(u) => u.clone(),
            DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
        }
    }

    pub fn store(&self) -> Store {
        Store::open(self.url.clone(), 4)
    }

    /// Makes the database disappear under a running app (PostgreSQL only).
    pub fn drop_now(&self) {
        if let Some(server_url) = &self.server_url {
            let mut admin = PgConnection::establish(server_url).unwrap();
            diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .unwrap();
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.url {
            DatabaseUrl::Postgres(_) => self.drop_now(),
            DatabaseUrl::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}

fn replace_database(server_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(server_url).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Settings a test can change; everything else is the test default.
#[derive(Clone, Default)]
pub struct TestOptions {
    pub vars: HashMap<String, String>,
    /// Run embedded even when REDIS_URL is set.
    pub no_redis: bool,
    /// Shares a Redis key prefix between the instances of one test.
    pub redis_prefix: Option<String>,
}

impl TestOptions {
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub admin_token: Option<String>,
    stop: StopHandle,
    /// Becomes `true` when the server future has completed (after a stop).
    server_done: tokio::sync::watch::Receiver<bool>,
}

pub fn config_for(db: &TestDb, options: &TestOptions) -> Config {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".into(), db.url_string());
    vars.insert("PORT".into(), "0".into());
    vars.insert("WORKERS".into(), "1".into());
    vars.insert("DATABASE_POOL_SIZE".into(), "4".into());
    if let (Some(redis), false) = (redis_url(), options.no_redis) {
        vars.insert("REDIS_URL".into(), redis);
        let prefix = options
            .redis_prefix
            .clone()
            .unwrap_or_else(|| format!("test:{}:", uuid::Uuid::new_v4().simple()));
        vars.insert("REDIS_KEY_PREFIX".into(), prefix);
    }
    vars.extend(options.vars.clone());
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test config is valid")
}

/// Options with every rate limit off, for load tests that drive hundreds of sockets or
/// requests from 127.0.0.1 (as `bench/run.sh` does).
pub fn rate_limits_off() -> TestOptions {
    TestOptions::default()
        .var("RATE_LIMIT_PER_ADDRESS", "0")
        .var("RATE_LIMIT_PER_TOKEN", "0")
        .var("RATE_LIMIT_PER_ADMIN_TOKEN", "0")
        .var("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS", "0")
        .var("RATE_LIMIT_PER_PERSON", "0")
}

pub async fn spawn_app() -> (TestApp, TestDb) {
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default()).await;
    (app, db)
}

pub async fn spawn_on(db: &TestDb, options: TestOptions) -> TestApp {
    let config = config_for(db, &options);
    let admin_token = config.admin_token.as_ref().map(|t| t.expose().to_string());
    let app = Application::build(config).await.expect("app builds");
    let port = app.port();
    let state = app.state();
    let stop = app.handle();
    let (done, server_done) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
        let _ = done.send(true);
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        admin_token,
        stop,
        server_done,
    }
}

impl TestApp {
    pub async fn stop(&self) {
        self.stop.stop().await;
    }

    /// Waits until the server future has completed; `false` if `within` passed first.
    pub async fn server_stopped_within(&self, within: Duration) -> bool {
        let mut done = self.server_done.clone();
        tokio::time::timeout(within, done.wait_for(|done| *done))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin_token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.authed(self.client.request(method, self.url(path)));
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        let response = rb.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("response to {path} is JSON: {text:?}"));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a workspace and returns its id.
    pub async fn create_workspace(&self, name: &str, parent: Option<&str>) -> String {
        let (status, body) = self
            .post("/workspaces", json!({ "name": name, "parent_id": parent }))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Event types in `live_events`, oldest first, with their seqs.
    pub async fn live_events(&self) -> Vec<(i64, String, Option<String>)> {
        let store = self.state.store.clone();
        store
            .run(|c| {
                canopy::store::events::live_events_between(c, 0, None, 100_000)
                    .map_err(canopy::store::StoreError::from)
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.event_type, e.workspace_id.map(|w| w.to_string())))
            .collect()
    }

    /// Waits until this instance's hub has delivered everything committed so far. A socket's
    /// CONNECTED seq is what the hub has delivered, and the relay publishes after commit, so
    /// a test that asserts an exact seq must let the stream settle before it connects.
    pub async fn settle(&self) {
        let store = self.state.store.clone();
        let head = store
            .run(|c| canopy::store::events::stream_head(c).map_err(canopy::store::StoreError::from))
            .await
            .unwrap()
            .last_seq;
        let hub = self.state.hub.clone();
        assert!(
            eventually(Duration::from_secs(5), || {
                let hub = hub.clone();
                async move { hub.delivered() >= head }
            })
            .await,
            "the hub delivers seq {head} within 5 s"
        );
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn structure_event_types(&self) -> Vec<String> {
        let (status, events) = self.get("/events?limit=1000").await;
        assert_eq!(status, 200);
        let mut types: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect();
        types.reverse();
        types
    }

    pub async fn ws(&self, query: &str) -> WsClient {
        WsClient::connect(&format!("ws://127.0.0.1:{}/ws{}", self.port, query), &[]).await
    }
}

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct WsClient {
    pub stream: WsStream,
}

impl WsClient {
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> WsClient {
        Self::try_connect(url, headers)
            .await
            .expect("websocket connects")
    }

    pub async fn try_connect(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        for (k, v) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let (stream, _) =
            tokio::time::timeout(READ_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .expect("websocket connect timed out")?;
        Ok(WsClient { stream })
    }

    /// The next JSON text frame (pings and pongs skipped).
    pub async fn next_json(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(READ_TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket closed")
                .expect("socket error");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame that is a stream event (has a seq).
    pub async fn next_event(&mut self) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame.get("seq").is_some() {
                return frame;
            }
        }
    }

    /// Collects `n` stream events.
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.next_event().await);
        }
        out
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::Text(text.into())).await.unwrap();
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(READ_TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for close")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Asserts nothing but pings arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registers a workspace as its agent; returns the issued token.
pub async fn register(app: &TestApp, id: &str) -> String {
    // With the admin token when the app has one: in token mode a first registration needs it.
    let response = app
        .authed(app.client.post(app.url("/registry/register")))
        .json(&json!({ "id": id, "url": "http://127.0.0.1:9/agent", "agent_card": { "name": "agent" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["auth_token"]
        .as_str()
        .expect("first register issues a token")
        .to_string()
}

/// Sends a heartbeat with the workspace's token; returns the status code and body.
pub async fn heartbeat(
    app: &TestApp,
    id: &str,
    token: &str,
    error_rate: f64,
    task: &str,
) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/registry/heartbeat"))
        .bearer_auth(token)
        .json(&json!({ "workspace_id": id, "error_rate": error_rate, "sample_error": "", "active_tasks": 1, "uptime_seconds": 5, "current_task": task }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A Redis server of the test's own, for scenarios that flush, reconfigure or restart Redis
/// without disturbing tests running in parallel.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = PrivateRedis { port, child: None };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (the cluster suite needs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs one command (e.g. `["FLUSHALL"]`) on this server.
    pub async fn command(&self, args: &[&str]) -> fred::types::Value {
        use fred::prelude::*;
        let client = Builder::from_config(Config::from_url(&self.url()).unwrap())
            .build()
            .unwrap();
        client.init().await.unwrap();
        let (cmd, rest) = args.split_first().unwrap();
        let value: fred::types::Value = client
            .custom(
                fred::types::CustomCommand::new(cmd.to_string(), None, false),
                rest.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            )
            .await
            .unwrap();
        let _ = client.quit().await;
        value
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Options for an app on a private Redis (cluster mode regardless of REDIS_URL).
pub fn on_private_redis(redis: &PrivateRedis, options: TestOptions) -> TestOptions {
    options
        .var("REDIS_URL", &redis.url())
        .var("REDIS_KEY_PREFIX", "private:")
}

/// Counts a workspace's events of one kind in `live_events`.
pub async fn count_events(app: &TestApp, workspace: &str, kind: &str) -> usize {
    app.live_events()
        .await
        .iter()
        .filter(|e| e.1 == kind && e.2.as_deref() == Some(workspace))
        .count()
}

pub async fn status_of(app: &TestApp, id: &str) -> String {
    let (_, body) = app.get(&format!("/workspaces/{id}")).await;
    body["status"].as_str().unwrap_or_default().to_string()
}

/// Attempts a WebSocket upgrade that must be refused with an HTTP answer; returns its status
/// and JSON body. Panics if the socket opens or the attempt fails any other way (a refusal is
/// a status, not "some error").
pub async fn ws_refusal(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    match WsClient::try_connect(url, headers).await {
        Ok(_) => panic!("the upgrade to {url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().unwrap_or_default();
            let body = serde_json::from_slice(body).unwrap_or_else(|_| {
                panic!(
                    "the {status} refusal is JSON: {:?}",
                    String::from_utf8_lossy(body)
                )
            });
            (status, body)
        }
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
    }
}
