//! `deploy/nginx/canopy.conf` run by a real nginx in front of two instances on one database
//! (issue 13, item 9): HTTP and WebSockets through it, both instances used, events crossing
//! between them, request ids and `X-Forwarded-For` passed on.
//!
//! Needs nginx (Debian: `apt-get install nginx-light`; `.ci/run` installs it). Without it the
//! test prints why and passes, except under CI (`CI` set), where it fails.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const NGINX_CANDIDATES: &[&str] = &["/usr/sbin/nginx", "/usr/bin/nginx"];

/// The deploy config's lines the test replaces (instance addresses, the listen port, the log
/// directory); each must be found, so the config cannot drift away from what is tested.
const UPSTREAM_A: &str = "server 127.0.0.1:8081 ";
const UPSTREAM_B: &str = "server 127.0.0.1:8082 ";
const LISTEN_V4: &str = "listen 80;";
const LISTEN_V6: &str = "listen [::]:80;";
const LOG_DIR: &str = "/var/log/nginx/";

/// nginx in the foreground with the deploy config, its files in a directory of its own.
struct Nginx {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn binary() -> Option<&'static str> {
        NGINX_CANDIDATES
            .iter()
            .copied()
            .find(|path| Path::new(path).is_file())
    }

    fn start(binary: &str, upstreams: [u16; 2]) -> Nginx {
        let dir = std::env::temp_dir().join(format!("canopy_nginx_{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let site = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/nginx/canopy.conf"
        ))
        .expect("deploy/nginx/canopy.conf is readable");
        let log_dir = format!("{}/", dir.display());
        let site = replace_once(
            &site,
            UPSTREAM_A,
            &format!("server 127.0.0.1:{} ", upstreams[0]),
        );
        let site = replace_once(
            &site,
            UPSTREAM_B,
            &format!("server 127.0.0.1:{} ", upstreams[1]),
        );
        let site = replace_once(&site, LISTEN_V4, &format!("listen 127.0.0.1:{port};"));
        let site = replace_once(&site, LISTEN_V6, "");
        let site = replace_once(&site, LOG_DIR, &log_dir);
        std::fs::write(dir.join("canopy.conf"), site).unwrap();
        // The smallest main configuration around the site file: in the foreground, one
        // process, every path in the test's directory (no root-owned default paths).
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             include {d}/canopy.conf;\n}}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let child = std::process::Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx listens within 10 s:\n{}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/nginx/canopy.conf has exactly one {from:?}"
    );
    text.replacen(from, to, 1)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nginx_or_skip(test: &str) -> Option<&'static str> {
    let found = Nginx::binary();
    if found.is_none() {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        assert!(
            !ci,
            "{test}: nginx is not installed (looked at {NGINX_CANDIDATES:?}). \
             Install the Debian package: apt-get install nginx-light (.ci/run does)."
        );
        eprintln!("{test}: SKIPPED, nginx is not installed (apt-get install nginx-light)");
    }
    found
}

/// A client whose connections come from `address` (any 127.0.0.0/8 address is this host's).
fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(address))
        .build()
        .unwrap()
}

/// `GET /health` through nginx with a forged `X-Forwarded-For`: the status.
async fn health_forging(client: &reqwest::Client, nginx: &Nginx, forged: &str) -> u16 {
    client
        .get(nginx.url("/health"))
        .header("X-Forwarded-For", forged)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_balances_http_and_websockets_over_two_instances() {
    let Some(binary) = nginx_or_skip("nginx_balances_http_and_websockets_over_two_instances")
    else {
        return;
    };
    let db = TestDb::new();
    // As deploy/systemd/canopy.env.example: nginx connects from 127.0.0.1 and is trusted. Each
    // client address may make 2 requests at once, then 1 a second, per instance.
    let options = TestOptions {
        redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
        ..TestOptions::default()
    }
    .var("TRUSTED_PROXIES", "127.0.0.1")
    .var("RATE_LIMIT_PER_ADDRESS", "1")
    .var("RATE_LIMIT_PER_ADDRESS_BURST", "2")
    .var("INSTANCE_ID", "instance-a");
    let a = spawn_on(&db, options.clone()).await;
    let b = spawn_on(&db, options.var("INSTANCE_ID", "instance-b")).await;
    let nginx = Nginx::start(binary, [a.port, b.port]);
    let client = reqwest::Client::new();

    // HTTP reaches both instances, and each answer carries nginx's request id (32 hex digits,
    // also in nginx's access log).
    let mut instances = HashSet::new();
    for n in 0..6 {
        let response = client
            .get(nginx.url("/health"))
            .header("X-Forwarded-For", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "nginx's $request_id reaches Canopy: {id}"
        );
        let body: Value = response.json().await.unwrap();
        instances.insert(body["instance_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        instances,
        HashSet::from(["instance-a".to_owned(), "instance-b".to_owned()]),
        "nginx sends requests to both instances"
    );

    // X-Forwarded-For: nginx appends the address the client connected from, Canopy believes it
    // from nginx (127.0.0.1, trusted) and ignores what the client wrote left of it. Clients
    // connect from other loopback addresses, untrusted. One client forging a new address each
    // time still runs out of its own budget (2 per instance); twenty clients on twenty addresses
    // each get through. Were every request counted as nginx's own address, at most 4 of those
    // 20 could.
    let forger = client_from([127, 0, 0, 2]);
    let mut forging = Vec::new();
    for n in 0..10 {
        forging.push(health_forging(&forger, &nginx, &format!("203.0.113.{n}")).await);
    }
    assert!(forging.contains(&429), "{forging:?}");
    let mut many = Vec::new();
    for n in 0..20u8 {
        let client = client_from([127, 0, 1, n + 1]);
        many.push(health_forging(&client, &nginx, "203.0.113.7").await);
    }
    assert!(many.iter().all(|s| *s == 200), "{many:?}");

    // WebSockets: the upgrade goes through, least_conn puts the second canvas on the other
    // instance, and a change made through nginx reaches both canvases.
    let ws_url = format!("ws://127.0.0.1:{}/ws", nginx.port);
    let mut first = WsClient::connect(&ws_url, &[("X-Forwarded-For", "192.0.2.100")]).await;
    assert_eq!(first.next_json().await["event"], "CONNECTED");
    let mut second = WsClient::connect(&ws_url, &[("X-Forwarded-For", "192.0.2.101")]).await;
    assert_eq!(second.next_json().await["event"], "CONNECTED");
    let (ha, hb) = (a.state.hub.clone(), b.state.hub.clone());
    assert!(
        eventually(Duration::from_secs(5), || {
            let (ha, hb) = (ha.clone(), hb.clone());
            async move { ha.session_count() == 1 && hb.session_count() == 1 }
        })
        .await,
        "one canvas on each instance: {} and {}",
        a.state.hub.session_count(),
        b.state.hub.session_count()
    );
    let response = client
        .post(nginx.url("/workspaces"))
        .header("X-Forwarded-For", "192.0.2.102")
        .json(&json!({ "name": "Through nginx" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    for socket in [&mut first, &mut second] {
        let event = socket.next_event().await;
        assert_eq!(event["event"], "WORKSPACE_PROVISIONING", "{event}");
        assert_eq!(event["workspace_id"], created["id"], "{event}");
    }
    // Client frames go up through the proxy too.
    first.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(first.next_json().await, json!({ "type": "pong" }));

    // A stopping instance refuses upgrades with 503: nginx retries them on the other one, so a
    // canvas reconnecting during a rolling restart does not see the refusal.
    a.state.drain.begin();
    let mut moved = Vec::new();
    for n in 0..4 {
        let headers = [("X-Forwarded-For", format!("192.0.2.{}", 110 + n))];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut socket = WsClient::connect(&ws_url, &headers).await;
        assert_eq!(socket.next_json().await["event"], "CONNECTED");
        moved.push(socket);
    }
    assert_eq!(
        (a.state.hub.session_count(), b.state.hub.session_count()),
        (1, 5),
        "every new canvas went to the instance that is not stopping"
    );

    let access_log = std::fs::read_to_string(nginx.dir.join("canopy.access.log")).unwrap();
    assert!(access_log.contains("request_id="), "{access_log}");
    drop(nginx);
    a.stop().await;
    b.stop().await;
}
