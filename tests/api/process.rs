//! The `canopy` binary as a real process, its JSON log collected line by line: for what only
//! the shipped binary shows (its logs, its subcommands).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// A running `canopy serve`, killed when dropped.
pub struct CanopyProcess {
    child: std::process::Child,
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl CanopyProcess {
    /// Starts the binary on `db` (SQLite or PostgreSQL, with Redis when the suite has it) with
    /// JSON logs at `info` and the extra `vars`; returns once it logs `canopy listening`.
    pub fn start(db: &TestDb, vars: &[(&str, &str)]) -> CanopyProcess {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"));
        command
            .env_clear()
            .env("DATABASE_URL", db.url_string())
            .env("PORT", "0")
            .env("WORKERS", "1")
            .env("DATABASE_POOL_SIZE", "4")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some(redis) = redis_url() {
            command.env("REDIS_URL", redis).env(
                "REDIS_KEY_PREFIX",
                format!("test:{}:", uuid::Uuid::new_v4().simple()),
            );
        }
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the canopy binary starts");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                collected.lock().unwrap().push(line);
            }
        });
        let mut process = CanopyProcess {
            child,
            port: 0,
            lines,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        process.port = loop {
            let listening = process
                .log()
                .into_iter()
                .find(|entry| entry["message"] == "canopy listening");
            if let Some(entry) = listening {
                break entry["port"].as_u64().expect("the log names the port") as u16;
            }
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!(
                    "canopy exited during start-up ({status}): {:?}",
                    process.raw_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "canopy logs `canopy listening` within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        process
    }

    /// Every log line so far, parsed (lines that are not JSON are skipped).
    pub fn log(&self) -> Vec<Value> {
        self.raw_log()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Every log line so far, as written.
    pub fn raw_log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; `None` if `within` passed first.
    pub async fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CanopyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `canopy <args>` to completion with `vars` as its whole environment; returns whether it
/// succeeded and what it wrote (stdout and stderr together).
pub fn run_canopy(args: &[&str], vars: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .env_clear()
        .envs(vars.iter().copied())
        .args(args)
        .output()
        .expect("the canopy binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
