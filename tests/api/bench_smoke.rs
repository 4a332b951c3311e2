//! CI smoke version of the benchmark (issue 8): ~100 canvas sockets for a few seconds at a
//! modest rate of drags, heartbeats and activity posts, through the same library call as
//! `canopy-bench`.
//! Fails on any lost, duplicated or out-of-order event, or any socket closed under it. On
//! PostgreSQL + Redis it runs two instances sharing the database and key prefix, so events
//! cross the Redis backplane.

use std::time::Duration;

use canopy_bench::{self as bench, BenchConfig};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_loses_nothing() {
    let db = TestDb::new();
    let cluster = db.is_postgres() && redis_url().is_some();
    // Like bench/run.sh, the rate limits are off: 100 sockets open at once from one address.
    let options = TestOptions {
        redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
        ..rate_limits_off()
    };
    let first = spawn_on(&db, options.clone()).await;
    let second = if cluster {
        Some(spawn_on(&db, options).await)
    } else {
        None
    };
    let mut urls = vec![first.address.clone()];
    urls.extend(second.iter().map(|app| app.address.clone()));

    let mut config = BenchConfig::new(urls);
    config.clients = 100;
    config.rate = 40.0;
    config.duration = Duration::from_secs(4);
    config.workspaces = 10;
    config.agents = 5;
    config.mix = "drag=70,heartbeat=15,activity=15".parse().unwrap();
    config.admin_token = first.admin_token.clone();
    config.pids = vec![std::process::id()];
    let report = bench::run(config).await.expect("the benchmark runs");
    let json = report.to_json();
    eprintln!("{json}");

    assert!(report.stream_intact(), "stream not intact: {json}");
    assert_eq!(report.error_count(), 0, "requests failed: {json}");
    assert_eq!(report.connected, 100, "{json}");
    assert_eq!(
        (report.lost, report.duplicated, report.out_of_order),
        (0, 0, 0),
        "{json}"
    );
    // ~160 requests; every drag and activity post reached every socket, each matched to its
    // request.
    assert!(report.committed() >= 100, "{json}");
    assert!(report.kind("heartbeat").unwrap().committed > 0, "{json}");
    assert!(report.deliveries > 0, "{json}");
    let latency = report.latency.as_ref().expect("latency was measured");
    let correlated =
        report.kind("drag").unwrap().committed + report.kind("activity").unwrap().committed;
    assert_eq!(latency.samples, 100 * correlated, "{json}");
    assert!(report.final_seq > 0, "{json}");

    first.stop().await;
    if let Some(second) = second {
        second.stop().await;
    }
}

/// The failover scenario's resume path (issue 16): two instances, the first taken down in the
/// middle of the window; every canvas that was on it resumes on the second with
/// `?since=&epoch=`, and the stream still has no gap, duplicate or disorder. `bench/run.sh
/// failover` does the same with SIGKILL to a server process; in-process, the instance is
/// stopped (its sockets are closed with 1001). Needs the Redis backplane: on SQLite there is
/// only one instance, so the test has nothing to fail over to and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_failover_resumes_every_canvas_without_loss() {
    let db = TestDb::new();
    if !(db.is_postgres() && redis_url().is_some()) {
        eprintln!("failover needs PostgreSQL + Redis (two instances); skipped on SQLite");
        return;
    }
    let options = TestOptions {
        redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
        ..rate_limits_off()
    };
    let first = std::sync::Arc::new(spawn_on(&db, options.clone()).await);
    let second = spawn_on(&db, options).await;

    let mut config = BenchConfig::new(vec![first.address.clone(), second.address.clone()]);
    config.clients = 100;
    config.rate = 40.0;
    config.duration = Duration::from_secs(4);
    config.workspaces = 10;
    config.mix = "drag=90,activity=10".parse().unwrap();
    config.admin_token = first.admin_token.clone();
    let stopping = std::sync::Arc::clone(&first);
    config.kill = Some(bench::Kill {
        instance: 0,
        after: Duration::from_secs(2),
        by: Some(std::sync::Arc::new(move || {
            let app = std::sync::Arc::clone(&stopping);
            Box::pin(async move {
                app.stop().await;
                Ok(())
            })
        })),
    });
    let report = bench::run(config).await.expect("the benchmark runs");
    let json = report.to_json();
    eprintln!("{json}");

    let failover = report.failover.as_ref().expect("a failover report");
    assert_eq!(failover.sockets_on_instance, 50, "{json}");
    assert_eq!(failover.sockets_resumed, 50, "{json}");
    assert!(failover.resume_latency().is_some(), "{json}");
    assert_eq!(
        (report.lost, report.duplicated, report.out_of_order),
        (0, 0, 0),
        "{json}"
    );
    assert!(report.stream_intact(), "stream not intact: {json}");
    assert_eq!(report.error_count(), 0, "requests failed: {json}");
    // Events committed while the canvases were away arrive by replay, each matched to its
    // request like any other.
    let latency = report.latency.as_ref().expect("latency was measured");
    let correlated =
        report.kind("drag").unwrap().committed + report.kind("activity").unwrap().committed;
    assert!(latency.samples >= 100 * correlated, "{json}");

    second.stop().await;
}

/// The drag-preview scenario of issue 15 (item 4), small: 20 canvases, two of them dragging a
/// node each at 30 frames a second, beside the usual PATCH load. Every other canvas receives
/// DRAG_PREVIEWS entries carrying the draggers' counters (across the two instances on
/// PostgreSQL + Redis), and the sequenced stream keeps its strict checks. Preview loss is
/// allowed (volatile), so only its accounting is checked, not its amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_previews_reach_the_other_canvases() {
    let db = TestDb::new();
    let cluster = db.is_postgres() && redis_url().is_some();
    // With an admin token, as bench/run.sh starts the servers: the canvases are the admin's,
    // who may drag.
    let options = TestOptions {
        redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
        ..rate_limits_off().var("ADMIN_TOKEN", "bench-smoke-admin")
    };
    let first = spawn_on(&db, options.clone()).await;
    let second = if cluster {
        Some(spawn_on(&db, options).await)
    } else {
        None
    };
    let mut urls = vec![first.address.clone()];
    urls.extend(second.iter().map(|app| app.address.clone()));

    let mut config = BenchConfig::new(urls);
    config.clients = 20;
    config.rate = 20.0;
    config.duration = Duration::from_secs(2);
    config.workspaces = 5;
    config.mix = "drag=90,activity=10".parse().unwrap();
    config.admin_token = first.admin_token.clone();
    config.draggers = 2;
    config.drag_hz = 30.0;
    let report = bench::run(config).await.expect("the benchmark runs");
    let json = report.to_json();
    eprintln!("{json}");

    assert!(report.stream_intact(), "stream not intact: {json}");
    assert_eq!(report.error_count(), 0, "requests failed: {json}");
    assert_eq!(
        (report.lost, report.duplicated, report.out_of_order),
        (0, 0, 0),
        "{json}"
    );
    let latency = report.latency.as_ref().expect("event latency was measured");
    let correlated =
        report.kind("drag").unwrap().committed + report.kind("activity").unwrap().committed;
    assert_eq!(latency.samples, 20 * correlated, "{json}");

    let previews = report.previews.as_ref().expect("a previews report");
    assert_eq!((previews.draggers, previews.watchers), (2, 18), "{json}");
    assert_eq!(previews.refused, 0, "{json}");
    // Two draggers at 30 Hz for 2 s: about 120 frames, most published (one per node per tick).
    assert!(previews.sent >= 80, "{json}");
    assert!(previews.published > 0, "{json}");
    assert!(previews.published <= previews.sent, "{json}");
    assert!(previews.delivered >= previews.published, "{json}");
    assert!(
        previews.delivered <= previews.published * 18,
        "a watcher got a preview twice: {json}"
    );
    let preview_latency = previews.latency.as_ref().expect("preview latency");
    assert_eq!(preview_latency.samples, previews.delivered, "{json}");
    assert_eq!(json["previews"]["lost"], previews.lost(), "{json}");

    first.stop().await;
    if let Some(second) = second {
        second.stop().await;
    }
}
