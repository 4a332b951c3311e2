//! `canopy-bench`: load a running Canopy (one or more instances, loopback only) with canvas
//! sockets and a paced mix of drags, heartbeats and activity posts; print one JSON line.
//!
//! Exit status: 0 the stream was intact and every request succeeded; 1 something was lost,
//! duplicated, out of order, or a socket was closed; 2 usage or setup error; 3 the stream was
//! intact but some requests failed.

use std::time::Duration;

use canopy_bench::{self as bench, BenchConfig, Kill, Mix};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "canopy-bench",
    version,
    about = "Load generator for Canopy: fan-out, drags and heartbeats (loopback only)"
)]
struct Args {
    /// Instance base URL (repeat for several instances), e.g. http://127.0.0.1:8080.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Canvas WebSockets, spread round-robin over the URLs.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=bench::MAX_CLIENTS as u64))]
    clients: u64,
    /// Requests offered per second (drags + heartbeats + activity posts); 0 offers none.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Measured seconds of load.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=bench::MAX_DURATION.as_secs()))]
    duration: u64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=bench::MAX_WARMUP.as_secs()))]
    warmup: u64,
    /// Workspaces created at the start (drag and activity targets).
    #[arg(long, default_value_t = 50)]
    workspaces: usize,
    /// Agents registered at the start (the first workspaces) that send the heartbeats.
    #[arg(long, default_value_t = 0)]
    agents: usize,
    /// Relative weights of the requests, e.g. drag=80,heartbeat=15,activity=5.
    #[arg(long, default_value_t = Mix::default())]
    mix: Mix,
    /// Bearer token for admin routes and canvas sockets (the server's ADMIN_TOKEN).
    #[arg(long)]
    admin_token: Option<String>,
    /// Server process id whose RSS and CPU are reported (repeatable).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Requests in flight at most; past it the pacer waits.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Seconds the end of the run waits for every socket to receive the last event.
    #[arg(long, default_value_t = 5)]
    tail_wait: u64,
    /// Failover scenario: send SIGKILL to this instance (index of its --url, and of its --pid)
    /// during the measured window; every socket resumes on another instance with
    /// `?since=&epoch=` when its connection ends.
    #[arg(long, requires = "kill_after")]
    kill_instance: Option<usize>,
    /// Seconds into the measured window at which --kill-instance is killed.
    #[arg(long, requires = "kill_instance")]
    kill_after: Option<f64>,
    /// Canvas sockets (the first ones) that each drag a workspace of their own, sending
    /// `{"type":"drag",…}` frames; every other canvas times the previews (entries of DRAG_PREVIEWS frames).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=bench::MAX_DRAGGERS as u64))]
    draggers: u64,
    /// Drag frames per second per dragger.
    #[arg(long, default_value_t = 30.0)]
    drag_hz: f64,
    /// Seconds to wait after every socket has closed before reading the servers' RSS again
    /// (`rss_kib_after_close`, `rss_after_close_ratio`); 0: not read.
    #[arg(long, default_value_t = 0)]
    after_close: u64,
    /// Runtime worker threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() {
    let args = Args::parse();
    let mut config = BenchConfig::new(args.urls);
    config.clients = args.clients as usize;
    config.rate = args.rate;
    config.duration = Duration::from_secs(args.duration);
    config.warmup = Duration::from_secs(args.warmup);
    config.workspaces = args.workspaces;
    config.agents = args.agents;
    config.mix = args.mix;
    config.admin_token = args.admin_token;
    config.pids = args.pids;
    config.max_in_flight = args.max_in_flight;
    config.tail_wait = Duration::from_secs(args.tail_wait);
    config.draggers = args.draggers as usize;
    config.drag_hz = args.drag_hz;
    config.after_close = Duration::from_secs(args.after_close);
    if let (Some(instance), Some(after)) = (args.kill_instance, args.kill_after) {
        let Ok(after) = Duration::try_from_secs_f64(after) else {
            eprintln!("canopy-bench: --kill-after must be a number of seconds");
            std::process::exit(2);
        };
        config.kill = Some(Kill {
            instance,
            after,
            by: None,
        });
    }
    if let Err(e) = config.validate() {
        eprintln!("canopy-bench: {e}");
        std::process::exit(2);
    }

    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.clamp(1, 64))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(bench::run(config)) {
        Ok(report) => {
            println!("{}", report.to_json());
            // Sockets and connections are dropped with the runtime, not waited on.
            runtime.shutdown_timeout(Duration::from_secs(1));
            std::process::exit(report.exit_code());
        }
        Err(e) => {
            eprintln!("canopy-bench: {e}");
            std::process::exit(2);
        }
    }
}
