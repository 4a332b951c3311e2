//! Foundation: health, migrations, the append-only log, seq ordering, error bodies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use canopy::app::Application;
use canopy::domain::events::EventKind;
use canopy::store::{NewEvent, StoreError};
use diesel::prelude::*;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn health_reports_database_and_backplane() {
    let (app, db) = spawn_app().await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(
        body["database_backend"],
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    assert_eq!(
        body["backplane"],
        if redis_url().is_some() {
            "redis"
        } else {
            "local"
        }
    );
    assert!(body["instance_id"].as_str().unwrap().starts_with("canopy-"));
}

#[tokio::test]
async fn health_is_503_when_the_database_goes_away() {
    let db = TestDb::new();
    if !db.is_postgres() {
        // An embedded SQLite file cannot go away under an open connection.
        eprintln!("postgres-only scenario; DATABASE_URL is not PostgreSQL");
        return;
    }
    let app = spawn_on(&db, TestOptions::default()).await;
    assert_eq!(app.get("/health").await.0, 200);
    db.drop_now();
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unavailable");
    // Requests that need the database fail as errors, not hangs or 200s.
    let (status, body) = app.get("/workspaces").await;
    assert!(status >= 500, "{status} {body}");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn start_up_fails_clearly_when_the_database_is_unreachable() {
    let db = TestDb::new();
    let unreachable = if db.is_postgres() {
        "postgres://postgres@127.0.0.1:1/nothing".to_string()
    } else {
        "sqlite:///nonexistent-dir/for/canopy.db".to_string()
    };
    let config = config_for(
        &db,
        &TestOptions::default().var("DATABASE_URL", &unreachable),
    );
    let err = Application::build(config)
        .await
        .err()
        .expect("start-up must fail");
    assert!(err.to_string().contains("database unavailable"), "{err}");
}

#[tokio::test]
async fn migrations_run_twice_are_a_no_op() {
    let (app, db) = spawn_app().await;
    let store = db.store();
    let applied = tokio::task::spawn_blocking(move || store.migrate_blocking())
        .await
        .unwrap()
        .unwrap();
    assert!(applied.is_empty(), "{applied:?}");
    assert_eq!(app.get("/health").await.0, 200);
}

#[tokio::test]
async fn instances_starting_together_migrate_once_and_both_serve() {
    let db = TestDb::new();
    let (a, b) = tokio::join!(
        spawn_on(&db, TestOptions::default()),
        spawn_on(&db, TestOptions::default())
    );
    assert_eq!(a.get("/health").await.0, 200);
    assert_eq!(b.get("/health").await.0, 200);
    let id = a.create_workspace("Shared", None).await;
    assert_eq!(b.get(&format!("/workspaces/{id}")).await.0, 200);
}

#[tokio::test]
async fn structure_events_reject_update_and_delete() {
    let (app, db) = spawn_app().await;
    app.create_workspace("Logged", None).await;
    let store = db.store();
    let outcome = store
        .run(|c| {
            let update =
                diesel::sql_query("UPDATE structure_events SET event_type = 'X'").execute(c);
            let delete = diesel::sql_query("DELETE FROM structure_events").execute(c);
            Ok::<_, StoreError>((update, delete))
        })
        .await
        .unwrap();
    let (update, delete) = outcome;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert_eq!(
        app.structure_event_types().await,
        vec!["WORKSPACE_PROVISIONING"]
    );
}

#[tokio::test]
async fn concurrent_appends_commit_in_seq_order_without_gaps() {
    let (_app, db) = spawn_app().await;
    let store = db.store();
    // Taken at the end of each transaction, while it still holds the stream lock: if the lock
    // serializes appends until commit, tickets increase with seq.
    let ticket = Arc::new(AtomicU64::new(0));
    let committed = Arc::new(Mutex::new(Vec::<(i64, u64)>::new()));
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let (store, ticket, committed) = (store.clone(), ticket.clone(), committed.clone());
            std::thread::spawn(move || {
                for i in 0..25 {
                    let roll_back = (thread + i) % 5 == 0;
                    let result = store.transact_blocking(|tx| {
                        let event = tx.append(NewEvent {
                            kind: EventKind::TaskUpdated,
                            workspace_id: None,
                            payload: json!({ "thread": thread, "i": i }),
                            agent_id: None,
                            target_id: None,
                        })?;
                        let t = ticket.fetch_add(1, Ordering::SeqCst);
                        if roll_back {
                            return Err(StoreError::Join("forced rollback".into()));
                        }
                        Ok::<_, StoreError>((event.seq, t))
                    });
                    if let Ok(((seq, t), events)) = result {
                        assert_eq!(events.len(), 1);
                        committed.lock().unwrap().push((seq, t));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut committed = committed.lock().unwrap().clone();
    committed.sort();
    let seqs: Vec<i64> = committed.iter().map(|(s, _)| *s).collect();
    let expected: Vec<i64> = (1..=committed.len() as i64).collect();
    assert_eq!(
        seqs, expected,
        "committed seqs are 1..n: rolled-back appends leave no gap"
    );
    assert!(
        committed.windows(2).all(|w| w[0].1 < w[1].1),
        "commit order equals seq order"
    );
    assert_eq!(committed.len(), 160);
}

#[tokio::test]
async fn bad_input_gets_4xx_json_never_500() {
    let (app, _db) = spawn_app().await;
    let raw = |body: &'static str| {
        app.client
            .post(app.url("/workspaces"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, needle) in [
        ("{not json", "invalid JSON body"),
        ("", "must be a JSON object"),
        (r#"{"name": 5}"#, "name"),
        (r#"{"name": "x", "tier": "high"}"#, "tier"),
        (
            r#"{"name": "x", "canvas": {"x": "left", "y": 1}}"#,
            "canvas.x",
        ),
        (r#"[1,2]"#, "must be a JSON object"),
    ] {
        let response = raw(body).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(
            json["error"].as_str().unwrap().contains(needle),
            "{body}: {json}"
        );
    }
    let huge = format!(r#"{{"name": "{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let response = app
        .client
        .post(app.url("/workspaces"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    let (status, body) = app.get("/workspaces/not-a-uuid").await;
    assert_eq!(
        (status, body),
        (400, json!({ "error": "invalid workspace ID" }))
    );
    let (status, body) = app.get("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    let (status, body) = app.get("/events?limit=banana").await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({ "error": "limit: must be an integer" }));
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let (app, _db) = spawn_app().await;
    app.get("/workspaces").await;
    let text = app.metrics_text().await;
    assert!(text.contains("canopy_http_requests_total"), "{text}");
    assert!(text.contains("canopy_db_pool_connections"));
}

#[tokio::test]
async fn admin_routes_need_the_token_when_one_is_set() {
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default().var("ADMIN_TOKEN", "s3cret")).await;
    let anonymous = app.client.get(app.url("/workspaces")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = app
        .client
        .get(app.url("/workspaces"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        app.get("/workspaces").await.0,
        200,
        "the helper sends the admin token"
    );
    // /health stays open for load balancers.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn cors_preflight_echoes_allowed_origin_with_credentials() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("CORS_ORIGINS", "http://canvas.test, http://other.test"),
    )
    .await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/workspaces"))
        .header("Origin", "http://canvas.test")
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://canvas.test");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    let refused = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/workspaces"))
        .header("Origin", "http://evil.test")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn a_database_error_in_a_batch_rolls_back_only_its_own_command() {
    use canopy::error::AppError;
    use canopy::store::batcher::Batcher;
    let (app, _db) = spawn_app().await;
    // A batcher of the test's own on the app's database: each batch its command lane commits
    // arrives on `batches` as one list, so the test sees which commands shared a transaction.
    let (published, mut batches) = tokio::sync::mpsc::unbounded_channel();
    let committer = Batcher::start(app.state.store.clone(), published);
    let append = |i: i64| NewEvent {
        kind: EventKind::TaskUpdated,
        workspace_id: None,
        payload: json!({ "i": i }),
        agent_id: None,
        target_id: None,
    };
    // The first command holds the committer until the others are queued behind it, so they
    // form the next batch together.
    let (started, is_running) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let slow = tokio::spawn({
        let committer = committer.clone();
        async move {
            committer
                .execute(move |tx| {
                    let _ = started.send(());
                    released
                        .recv()
                        .expect("the test releases the first command");
                    tx.append(append(0)).map_err(AppError::from)
                })
                .await
        }
    });
    is_running.await.expect("the first command runs");
    let rest = (1..=6).map(|i| {
        let committer = committer.clone();
        async move {
            committer
                .execute(move |tx| {
                    let event = tx.append(append(i)).map_err(AppError::from)?;
                    if i == 3 {
                        // A real database error after the append: a primary-key violation.
                        diesel::sql_query(
                            "INSERT INTO stream_meta (id, epoch, last_seq) VALUES (1, 'dup', 0)",
                        )
                        .execute(tx.conn())?;
                    }
                    Ok::<_, AppError>(event)
                })
                .await
        }
    });
    let mut rest = Box::pin(futures_util::future::join_all(rest));
    // One poll queues all six: `execute` sends its command before its first await.
    assert!(futures_util::poll!(&mut rest).is_pending());
    release.send(()).unwrap();
    let (first, others) = (slow.await.unwrap(), rest.await);
    assert!(first.is_ok());
    assert!(others[2].is_err(), "the failing command is refused");
    let committed: Vec<i64> = others
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|(e, _)| e.seq)
        .collect();
    assert_eq!(
        committed.len(),
        5,
        "the other commands of the batch committed"
    );
    let stored: Vec<i64> = app.live_events().await.iter().map(|e| e.0).collect();
    assert_eq!(
        stored,
        (1..=6).collect::<Vec<_>>(),
        "no gap where the refused command's append was rolled back"
    );
    let payloads = app
        .state
        .store
        .run(|c| {
            canopy::store::events::live_events_between(c, 0, None, 100).map_err(StoreError::from)
        })
        .await
        .unwrap();
    assert!(
        payloads.iter().all(|e| e.payload["i"] != 3),
        "the refused command left nothing behind"
    );
    let batch_sizes = [
        batches.recv().await.unwrap().len(),
        batches.recv().await.unwrap().len(),
    ];
    assert_eq!(
        batch_sizes,
        [1, 5],
        "the first command alone, then the six others in one transaction (five committed)"
    );
}
