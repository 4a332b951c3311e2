//! `Idempotency-Key` on unsafe methods: replay, 422 for another request under the same key,
//! waiting for (or 409 on) a request still in flight, and exactly one execution when the same
//! keyed request reaches two instances at once.

use std::time::Duration;

use canopy::http::idempotency::fingerprint;
use canopy::store::idempotency::{self as keys, StoredResponse};
use canopy::store::StoreError;
use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};

use super::{header, send};
use crate::helpers::{count_events, rate_limits_off, spawn_app, spawn_on, TestDb, TestOptions};

/// Everyone in open mode is the one local admin, so this is every open-mode request's scope.
const OPEN_MODE_SCOPE: &str = "principal:local";

async fn provisioning_events(app: &crate::helpers::TestApp) -> usize {
    app.live_events()
        .await
        .iter()
        .filter(|e| e.1 == "WORKSPACE_PROVISIONING")
        .count()
}

async fn workspace_count(app: &crate::helpers::TestApp) -> usize {
    app.get("/workspaces").await.1.as_array().unwrap().len()
}

#[tokio::test]
async fn a_retry_gets_the_stored_response_and_runs_nothing() {
    let (app, _db) = spawn_app().await;
    let body = json!({ "name": "Once", "canvas": { "x": 10, "y": 20 } });
    let key = [("Idempotency-Key", "create-once-1")];
    let (status, headers, first) =
        send(&app, Method::POST, "/workspaces", &key, Some(body.clone())).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(header(&headers, "idempotent-replayed"), None);
    let id = first["id"].as_str().unwrap().to_string();

    let (status, headers, again) =
        send(&app, Method::POST, "/workspaces", &key, Some(body.clone())).await;
    assert_eq!(status, 201);
    assert_eq!(again, first, "the stored body, byte for byte the same JSON");
    assert_eq!(header(&headers, "idempotent-replayed"), Some("true"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json"),
        "the stored headers"
    );
    assert_eq!(workspace_count(&app).await, 1);
    assert_eq!(provisioning_events(&app).await, 1);

    // The same key for a different request is refused, and nothing runs.
    let (status, _, refused) = send(
        &app,
        Method::POST,
        "/workspaces",
        &key,
        Some(json!({ "name": "Twice" })),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .starts_with("Idempotency-Key:"));
    assert_eq!(workspace_count(&app).await, 1);

    // PATCH and DELETE: a replay appends no event, and a replayed DELETE still says removed.
    let path = format!("/workspaces/{id}");
    let patch_key = [("Idempotency-Key", "rename-1")];
    for _ in 0..2 {
        let (status, _, _) = send(
            &app,
            Method::PATCH,
            &path,
            &patch_key,
            Some(json!({ "name": "Renamed" })),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(count_events(&app, &id, "WORKSPACE_UPDATED").await, 1);
    let delete_key = [("Idempotency-Key", "\"remove-1\"")];
    for _ in 0..2 {
        let (status, _, body) = send(&app, Method::DELETE, &path, &delete_key, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "removed");
    }
    assert_eq!(count_events(&app, &id, "WORKSPACE_REMOVED").await, 1);

    // A refusal is an answer too: it is repeated, not re-run.
    let bad_key = [("Idempotency-Key", "bad-parent")];
    let bad = json!({ "name": "Orphan", "parent_id": uuid::Uuid::new_v4() });
    for _ in 0..2 {
        let (status, _, _) = send(
            &app,
            Method::POST,
            "/workspaces",
            &bad_key,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn a_malformed_key_is_400_and_safe_methods_ignore_the_header() {
    let (app, _db) = spawn_app().await;
    for bad in ["", "has space", &"k".repeat(256)] {
        let (status, _, body) = send(
            &app,
            Method::POST,
            "/workspaces",
            &[("Idempotency-Key", bad)],
            Some(json!({ "name": "X" })),
        )
        .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(body["error"]
            .as_str()
            .unwrap()
            .starts_with("Idempotency-Key:"));
    }
    assert_eq!(workspace_count(&app).await, 0);
    let (status, headers, _) = send(
        &app,
        Method::GET,
        "/workspaces",
        &[("Idempotency-Key", "reads-are-safe")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "idempotent-replayed"), None);

    // The document tells client authors about the header on every unsafe operation.
    let (_, document) = app.get("/openapi.json").await;
    for (path, method) in [("/workspaces", "post"), ("/workspaces/{id}", "delete")] {
        let operation = &document["paths"][path][method];
        assert!(
            operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
            "{path} {method}: {operation}"
        );
        assert!(operation["responses"]["422"].is_object());
    }
    assert!(document["paths"]["/workspaces"]["get"]["parameters"]
        .as_array()
        .is_none_or(|p| p.iter().all(|p| p["name"] != "Idempotency-Key")));
}

/// A retry that arrives while the first request with its key is running waits for that
/// answer; if none comes in time, it gets 409 and still never runs.
#[tokio::test]
async fn a_retry_during_the_first_request_waits_for_its_answer_or_gets_409() {
    let (app, db) = spawn_app().await;
    let body = json!({ "name": "Slow" });
    let bytes = serde_json::to_vec(&body).unwrap();
    let print = fingerprint(&actix_web::http::Method::POST, "/workspaces", &bytes);
    // The first request, as another instance sees it: claimed, not answered yet.
    let store = db.store();
    for key in ["in-flight-1", "in-flight-2"] {
        let print = print.clone();
        store
            .run(move |c| {
                keys::claim(c, OPEN_MODE_SCOPE, key, &print, Utc::now()).map_err(StoreError::from)
            })
            .await
            .unwrap();
    }
    let answer = {
        let store = store.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let stored = StoredResponse {
                status: 201,
                headers: serde_json::Map::from_iter([(
                    "content-type".to_string(),
                    json!("application/json"),
                )]),
                body: br#"{"id":"from-the-first","status":"provisioning"}"#.to_vec(),
            };
            store
                .run(move |c| {
                    keys::complete(c, OPEN_MODE_SCOPE, "in-flight-1", &stored)
                        .map_err(StoreError::from)
                })
                .await
                .unwrap();
        }
    };
    let retry = send(
        &app,
        Method::POST,
        "/workspaces",
        &[("Idempotency-Key", "in-flight-1")],
        Some(body.clone()),
    );
    let ((status, headers, replayed), ()) = tokio::join!(retry, answer);
    assert_eq!(status, 201);
    assert_eq!(replayed["id"], "from-the-first");
    assert_eq!(header(&headers, "idempotent-replayed"), Some("true"));

    let (status, headers, refused) = send(
        &app,
        Method::POST,
        "/workspaces",
        &[("Idempotency-Key", "in-flight-2")],
        Some(body),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(workspace_count(&app).await, 0, "neither retry ran");
}

/// Issue 15 item 8: the same keyed create sent to two instances at once makes one workspace
/// and one WORKSPACE_PROVISIONING event; every answer names that workspace (or is a 409).
#[tokio::test]
async fn the_same_keyed_create_on_two_instances_runs_once() {
    let db = TestDb::new();
    let a = spawn_on(&db, rate_limits_off()).await;
    let b = spawn_on(&db, rate_limits_off()).await;
    const KEYS: usize = 6;
    for round in 0..KEYS {
        let key = format!("cluster-create-{round}");
        let body = json!({ "name": format!("Raced {round}") });
        let mut calls = Vec::new();
        for i in 0..4 {
            let app = if i % 2 == 0 { &a } else { &b };
            let (key, body) = (key.clone(), body.clone());
            calls.push(async move {
                let (status, _, answer) = send(
                    app,
                    Method::POST,
                    "/workspaces",
                    &[("Idempotency-Key", key.as_str())],
                    Some(body),
                )
                .await;
                (status, answer)
            });
        }
        let answers = futures_util::future::join_all(calls).await;
        let created: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status == 201)
            .map(|(_, answer)| &answer["id"])
            .collect();
        assert!(!created.is_empty(), "round {round}: {answers:?}");
        assert!(
            created.iter().all(|id| *id == created[0]),
            "round {round}: one workspace id in every answer: {answers:?}"
        );
        assert!(
            answers.iter().all(|(s, _)| *s == 201 || *s == 409),
            "{answers:?}"
        );
    }
    assert_eq!(workspace_count(&a).await, KEYS);
    assert_eq!(provisioning_events(&b).await, KEYS);
}

/// Keys older than 24 h are pruned; younger ones stay. No app runs on this database (it is
/// only migrated), so no background pass can race the assertions.
#[tokio::test]
async fn keys_older_than_a_day_are_pruned() {
    let db = TestDb::new();
    let migrating = db.store();
    tokio::task::spawn_blocking(move || migrating.migrate_blocking())
        .await
        .unwrap()
        .unwrap();
    let store = db.store();
    store
        .run(|c| {
            keys::claim(
                c,
                "anonymous",
                "old",
                "f",
                Utc::now() - chrono::Duration::hours(25),
            )?;
            keys::claim(
                c,
                "anonymous",
                "young",
                "f",
                Utc::now() - chrono::Duration::hours(23),
            )?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let deleted = canopy::jobs::retention::prune_idempotency_keys(&store, Utc::now())
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let (old, young) = store
        .run(|c| {
            Ok::<_, StoreError>((
                keys::find(c, "anonymous", "old")?.is_some(),
                keys::find(c, "anonymous", "young")?.is_some(),
            ))
        })
        .await
        .unwrap();
    assert!(!old && young);
}

/// A 5xx is not an answer to keep: the server could not do the work, so the key is free again
/// and the retry runs. (SQLite: the key's own claim waits on the held lock; PostgreSQL: the
/// claim goes in, the command waits on the stream lock, and the claim is released.)
#[tokio::test]
async fn a_5xx_is_not_kept_and_the_retry_runs() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("DATABASE_BUSY_TIMEOUT_MS", "300"),
    )
    .await;
    let id = app.create_workspace("Busy", None).await;
    let (url, postgres) = (db.url_string(), db.is_postgres());
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let (held, is_held) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        if postgres {
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            conn.batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({});",
                canopy::store::STREAM_LOCK_KEY
            ))
            .unwrap();
            held.send(()).unwrap();
            let _ = release.recv();
            conn.batch_execute("ROLLBACK").unwrap();
        } else {
            let path = url.trim_start_matches("sqlite://").to_string();
            let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
            // The app's start-up jobs may be writing: wait for them, as the app would.
            conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE")
                .unwrap();
            held.send(()).unwrap();
            let _ = release.recv();
            conn.batch_execute("ROLLBACK").unwrap();
        }
    });
    is_held.recv().unwrap();
    let path = format!("/workspaces/{id}");
    let key = [("Idempotency-Key", "busy-rename")];
    let rename = json!({ "name": "Renamed" });
    let (status, _, _) = send(&app, Method::PATCH, &path, &key, Some(rename.clone())).await;
    assert_eq!(status, 503);
    hold.send(()).unwrap();
    holder.join().unwrap();

    let (status, headers, body) = send(&app, Method::PATCH, &path, &key, Some(rename)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "idempotent-replayed"), None, "it ran");
    assert_eq!(app.get(&path).await.1["name"], "Renamed");
}

/// A refusal for lack of credentials is not kept: nothing ran, and it must not cost a row.
#[tokio::test]
async fn a_401_is_not_kept() {
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default().var("ADMIN_TOKEN", "adm")).await;
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url("/workspaces"))
            .bearer_auth("wrong")
            .header("Idempotency-Key", "no-entry")
            .json(&json!({ "name": "Intruder" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers().get("idempotent-replayed").is_none());
    }
    let kept = db
        .store()
        .run(|c| {
            use canopy::store::schema::idempotency_keys as table;
            use diesel::prelude::*;
            let rows: i64 = table::table
                .filter(table::key.eq("no-entry"))
                .count()
                .get_result(c)?;
            Ok::<_, StoreError>(rows > 0)
        })
        .await
        .unwrap();
    assert!(!kept);
}

/// Keys belong to the principal: the same key from another person is another request; from
/// the same person again, a replay.
#[tokio::test]
async fn keys_are_scoped_by_the_principal() {
    const ADMIN: &str = "collab-admin";
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default().var("ADMIN_TOKEN", ADMIN)).await;
    let issued: Value = app
        .client
        .post(app.url("/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "editor", "role": "editor" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let editor = issued["key"].as_str().unwrap().to_string();
    let create = |token: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url("/workspaces"))
                .bearer_auth(token)
                .header("Idempotency-Key", "shared-key")
                .json(&json!({ "name": "Mine" }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            body["id"].as_str().unwrap().to_string()
        }
    };
    let by_admin = create(ADMIN.to_string()).await;
    let by_editor = create(editor.clone()).await;
    assert_ne!(
        by_admin, by_editor,
        "another principal's key is another request"
    );
    assert_eq!(
        create(editor).await,
        by_editor,
        "the same principal's retry replays"
    );
}
