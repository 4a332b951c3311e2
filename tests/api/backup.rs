//! `canopy backup <path>` (issue 13, item 9): a consistent SQLite copy taken while the server is
//! serving and writing, proven by serving the copy and reading the data back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::process::run_canopy;

/// A SQLite file of the test's own (the backup is a SQLite feature, whatever DATABASE_URL the
/// suite runs with), removed with its WAL files at the end.
struct SqliteFile {
    dir: std::path::PathBuf,
}

impl SqliteFile {
    fn new() -> SqliteFile {
        let dir = std::env::temp_dir().join(format!("canopy_backup_{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        SqliteFile { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn on_sqlite(path: &str) -> TestOptions {
    TestOptions {
        no_redis: true,
        ..TestOptions::default()
    }
    .var("DATABASE_URL", &format!("sqlite://{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_and_serves_the_same_data() {
    let files = SqliteFile::new();
    let (source, copy) = (files.path("canopy.db"), files.path("backup.db"));
    // The TestDb is only a placeholder here: DATABASE_URL is overridden with the SQLite file.
    let placeholder = TestDb::new();
    let app = spawn_on(&placeholder, on_sqlite(&source)).await;
    let root = app.create_workspace("Root", None).await;
    let child = app.create_workspace("Child", Some(&root)).await;
    // Drags keep committing while the backup runs: the copy must hold whole transactions.
    let writing = Arc::new(AtomicBool::new(true));
    let drags = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, url) = (app.client.clone(), app.url(&format!("/workspaces/{child}")));
        let (writing, drags) = (Arc::clone(&writing), Arc::clone(&drags));
        tokio::spawn(async move {
            let mut x = 0.0;
            while writing.load(Ordering::SeqCst) {
                x += 1.0;
                let response = client
                    .patch(&url)
                    .json(&json!({ "x": x, "y": 5.0 }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                drags.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let drags_before = {
        let drags = Arc::clone(&drags);
        assert!(
            eventually(Duration::from_secs(10), || {
                let drags = Arc::clone(&drags);
                async move { drags.load(Ordering::SeqCst) >= 5 }
            })
            .await,
            "drags are being committed"
        );
        drags.load(Ordering::SeqCst)
    };
    let database_url = format!("sqlite://{source}");
    let (ok, output) = tokio::task::spawn_blocking({
        let (copy, database_url) = (copy.clone(), database_url.clone());
        move || run_canopy(&["backup", &copy], &[("DATABASE_URL", &database_url)])
    })
    .await
    .unwrap();
    assert!(ok, "canopy backup succeeds: {output}");
    assert!(output.contains("backup written"), "{output}");
    let drags_after = drags.load(Ordering::SeqCst);
    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        drags_after > drags_before,
        "the server kept committing during the backup ({drags_before} → {drags_after})"
    );
    let source_head = app.live_events().await.last().unwrap().0;
    let source_epoch = app.state.epoch.clone();
    app.stop().await;

    // A backup never overwrites.
    let (ok, output) = run_canopy(&["backup", &copy], &[("DATABASE_URL", &database_url)]);
    assert!(!ok, "{output}");
    assert!(output.contains("already exists"), "{output}");

    // Serve the copy and read the data back.
    let restored = spawn_on(&placeholder, on_sqlite(&copy)).await;
    let (status, body) = restored.get(&format!("/workspaces/{child}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Child");
    assert_eq!(body["parent_id"], root.as_str());
    let copied_x = body["x"].as_f64().expect("x is a number");
    assert!(copied_x >= drags_before as f64, "{body}");
    let (status, list) = restored.get("/workspaces").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    // Every change came with its events (one transaction each): the copy's stream ends at the
    // drag whose x the workspace holds, with no gap before it.
    let events = restored.live_events().await;
    let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the copied stream has no gap: {seqs:?}"
    );
    let layout_changes = events
        .iter()
        .filter(|e| e.1 == "WORKSPACE_LAYOUT_CHANGED")
        .count();
    assert_eq!(
        layout_changes as f64, copied_x,
        "one drag event per committed drag, and the last one's x is the workspace's"
    );
    let copy_head = *seqs.last().unwrap();
    assert!(copy_head <= source_head, "{copy_head} <= {source_head}");

    // The copy is a new stream: a canvas that followed the original resynchronizes instead of
    // resuming (the copy will hand out seqs the original already used).
    let restored_epoch = restored.state.epoch.clone();
    assert_ne!(restored_epoch, source_epoch);
    let mut follower = restored
        .ws(&format!("?since={copy_head}&epoch={source_epoch}"))
        .await;
    assert_eq!(follower.next_json().await["event"], "CONNECTED");
    let frame = follower.next_json().await;
    assert_eq!(
        (frame["event"].clone(), frame["payload"]["reason"].clone()),
        (json!("RESYNC_REQUIRED"), json!("epoch changed"))
    );

    // The restored server goes on from there: a canvas of its stream resumes and sees a new
    // change, first thing after CONNECTED.
    let mut socket = restored
        .ws(&format!("?since={copy_head}&epoch={restored_epoch}"))
        .await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");
    let (status, _) = restored
        .patch(
            &format!("/workspaces/{child}"),
            json!({ "x": -1.0, "y": 0.0 }),
        )
        .await;
    assert_eq!(status, 200);
    let event = socket.next_json().await;
    assert_eq!(event["seq"].as_i64(), Some(copy_head + 1), "{event}");
    restored.stop().await;
}

#[test]
fn backup_refuses_postgresql_and_a_missing_database() {
    let (ok, output) = run_canopy(
        &["backup", "/tmp/never-written.db"],
        &[(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )],
    );
    assert!(!ok, "{output}");
    assert!(output.contains("pg_dump"), "{output}");

    let files = SqliteFile::new();
    let missing = files.path("missing.db");
    let copy = files.path("copy.db");
    let (ok, output) = run_canopy(
        &["backup", &copy],
        &[("DATABASE_URL", &format!("sqlite://{missing}"))],
    );
    assert!(!ok, "{output}");
    assert!(output.contains("no SQLite database"), "{output}");
    assert!(!std::path::Path::new(&missing).exists(), "nothing created");
    assert!(!std::path::Path::new(&copy).exists(), "nothing written");
}

/// The README's PostgreSQL procedure, step by step: `pg_dump` while serving, `pg_restore` into a
/// new database, a new epoch, then serve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgresql_procedure_restores_a_dump_taken_while_serving() {
    let source = TestDb::new();
    if !source.is_postgres() {
        eprintln!("PostgreSQL procedure: set DATABASE_URL=postgres://… to run it");
        return;
    }
    let app = spawn_on(&source, TestOptions::default()).await;
    let root = app.create_workspace("Root", None).await;
    let child = app.create_workspace("Child", Some(&root)).await;
    let (status, _) = app
        .patch(&format!("/workspaces/{child}"), json!({ "x": 42, "y": 7 }))
        .await;
    assert_eq!(status, 200);
    let source_epoch = app.state.epoch.clone();
    let source_head = app.live_events().await.last().unwrap().0;

    let files = SqliteFile::new();
    let dump = files.path("canopy.dump");
    let run = |program: &str, args: &[&str]| {
        let output = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (PostgreSQL client tools): {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let source_url = source.url_string();
    run(
        "pg_dump",
        &["--format=custom", &format!("--file={dump}"), &source_url],
    );
    app.stop().await;

    // A new, empty database (the suite's helper creates one), restored and given a new epoch.
    let restored_db = TestDb::new();
    let restored_url = restored_db.url_string();
    run(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            &format!("--dbname={restored_url}"),
            &dump,
        ],
    );
    run(
        "psql",
        &[
            &restored_url,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "UPDATE stream_meta SET epoch = gen_random_uuid()::text",
        ],
    );

    let restored = spawn_on(&restored_db, TestOptions::default()).await;
    assert_ne!(restored.state.epoch, source_epoch, "a new stream epoch");
    let (status, body) = restored.get(&format!("/workspaces/{child}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["name"].clone(),
            body["parent_id"].clone(),
            body["x"].clone()
        ),
        (json!("Child"), json!(root), json!(42))
    );
    let seqs: Vec<i64> = restored.live_events().await.iter().map(|e| e.0).collect();
    assert_eq!(seqs, (1..=source_head).collect::<Vec<_>>());
    let structure = restored.structure_event_types().await;
    assert_eq!(
        structure,
        ["WORKSPACE_PROVISIONING", "WORKSPACE_PROVISIONING"],
        "the append-only structure_events were restored"
    );
    // The restored stream goes on from the dump's head.
    let mut socket = restored
        .ws(&format!(
            "?since={source_head}&epoch={}",
            restored.state.epoch
        ))
        .await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");
    restored.create_workspace("After", None).await;
    let event = socket.next_json().await;
    assert_eq!(event["seq"].as_i64(), Some(source_head + 1), "{event}");
    restored.stop().await;
}
