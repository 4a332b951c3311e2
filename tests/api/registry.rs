//! The registry: tokens, register/heartbeat/update-card, discovery, and the status machine.

use std::time::Duration;

use canopy::store::schema::workspace_auth_tokens;
use canopy::store::StoreError;
use diesel::prelude::*;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_token_is_issued_once_and_required_afterwards() {
    let (app, db) = spawn_app().await;
    let id = app.create_workspace("Agent", None).await;
    let token = register(&app, &id).await;
    assert!(token.len() >= 43, "32 random bytes, base64url");
    assert!(token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));

    // Only a hash is stored, with a short prefix for operators.
    let (hash, prefix) = db
        .store()
        .run(|c| {
            workspace_auth_tokens::table
                .select((
                    workspace_auth_tokens::token_hash,
                    workspace_auth_tokens::token_prefix,
                ))
                .first::<(String, String)>(c)
                .map_err(StoreError::from)
        })
        .await
        .unwrap();
    assert_ne!(hash, token);
    assert!(!hash.contains(&token));
    assert_eq!(prefix, token[..8]);

    let body = json!({ "id": id, "url": "https://agent.example/a2a", "agent_card": { "v": 2 } });
    let again = app
        .client
        .post(app.url("/registry/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["error"],
        "missing workspace auth token"
    );
    let wrong = app
        .client
        .post(app.url("/registry/register"))
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid workspace auth token"
    );
    let right = app
        .client
        .post(app.url("/registry/register"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(
        right.json::<serde_json::Value>().await.unwrap(),
        json!({ "status": "registered" }),
        "no second token"
    );

    let (_, ws) = app.get(&format!("/workspaces/{id}")).await;
    assert_eq!(ws["status"], "online");
    assert_eq!(ws["url"], "https://agent.example/a2a");
    assert_eq!(ws["agent_card"], json!({ "v": 2 }));
}

#[tokio::test]
async fn register_refuses_unknown_bad_paused_and_removed() {
    let (app, _db) = spawn_app().await;
    let post = |body: serde_json::Value| {
        let (client, url) = (app.client.clone(), app.url("/registry/register"));
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = post(json!({ "id": uuid::Uuid::new_v4(), "url": "http://a.test" })).await;
    assert_eq!(
        (status, body["error"].clone()),
        (404, json!("workspace not found")),
        "never created implicitly"
    );
    assert_eq!(app.get("/workspaces").await.1, json!([]));
    let id = app.create_workspace("W", None).await;
    for url in [
        json!("ftp://a.test"),
        json!("not a url"),
        json!(null),
        json!("http://"),
    ] {
        let (status, body) = post(json!({ "id": id, "url": url })).await;
        assert_eq!(status, 400, "{url}");
        assert!(body["error"].as_str().unwrap().starts_with("url"), "{body}");
    }
    assert_eq!(
        post(json!({ "id": "nope", "url": "http://a.test" }))
            .await
            .0,
        400
    );

    app.post(&format!("/workspaces/{id}/pause"), json!({}))
        .await;
    assert_eq!(
        post(json!({ "id": id, "url": "http://a.test" })).await.0,
        409
    );
    app.delete(&format!("/workspaces/{id}")).await;
    assert_eq!(
        post(json!({ "id": id, "url": "http://a.test" })).await.0,
        410
    );
    assert_eq!(status_of(&app, &id).await, "removed");
    assert_eq!(count_events(&app, &id, "WORKSPACE_ONLINE").await, 0);
}

#[tokio::test]
async fn heartbeats_need_the_workspaces_own_token() {
    let (app, _db) = spawn_app().await;
    let a = app.create_workspace("A", None).await;
    let b = app.create_workspace("B", None).await;
    let token_a = register(&app, &a).await;
    let token_b = register(&app, &b).await;
    assert_eq!(heartbeat(&app, &a, &token_a, 0.0, "").await.0, 200);
    let (status, body) = heartbeat(&app, &a, &token_b, 0.0, "").await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid workspace auth token"))
    );
    let anonymous = app
        .client
        .post(app.url("/registry/heartbeat"))
        .json(&json!({ "workspace_id": a, "error_rate": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, body) = heartbeat(&app, &a, &token_a, 1.5, "").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("error_rate"));

    // Removed: 410, and it stays removed.
    app.delete(&format!("/workspaces/{a}")).await;
    assert_eq!(heartbeat(&app, &a, &token_a, 0.0, "").await.0, 410);
    assert_eq!(status_of(&app, &a).await, "removed");
    // Its token was revoked with it: it opens nothing else.
    let (status, _) = app.get(&format!("/workspaces/{b}/activity")).await;
    assert_eq!(status, 200, "admin still can");
    let with_revoked = app
        .client
        .get(app.url(&format!("/workspaces/{b}/activity")))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(with_revoked.status(), 401);
}

/// Concurrent quiet heartbeats share write batches: each still lands on its own workspace, and
/// a wrong token in the same burst is refused without failing the others.
#[tokio::test]
async fn concurrent_heartbeats_are_batched_and_each_lands() {
    let (app, _db) = spawn_app().await;
    let mut agents = Vec::new();
    for i in 0..30 {
        let id = app.create_workspace(&format!("Agent {i}"), None).await;
        let token = register(&app, &id).await;
        agents.push((id, token));
    }
    let beat = |id: &str, token: &str, uptime: i64| {
        app.client
            .post(app.url("/registry/heartbeat"))
            .bearer_auth(token)
            .json(&json!({ "workspace_id": id, "error_rate": 0, "active_tasks": 2, "uptime_seconds": uptime, "current_task": "" }))
            .send()
    };
    let honest = agents
        .iter()
        .enumerate()
        .map(|(i, (id, token))| beat(id, token, 1000 + i as i64));
    // Agent 0's workspace with agent 1's token, in the middle of the burst.
    let forged = beat(&agents[0].0, &agents[1].1, 7);
    let (honest, forged) = tokio::join!(futures_util::future::join_all(honest), forged);
    for response in honest {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(forged.unwrap().status(), 401);

    for (i, (id, _)) in agents.iter().enumerate() {
        let (status, ws) = app.get(&format!("/workspaces/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            ws["uptime_seconds"],
            1000 + i as i64,
            "agent {i}'s own heartbeat"
        );
        assert_eq!(ws["active_tasks"], 2);
        assert_eq!(ws["status"], "online");
    }
    let metrics = app.metrics_text().await;
    let batched = metrics
        .lines()
        .find_map(|l| l.strip_prefix("canopy_write_batch_size_count "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        batched >= 1.0,
        "heartbeats went through the write batcher:\n{metrics}"
    );
}

/// The batched heartbeat statement writes a row only when the heartbeat is quiet for it — its
/// workspace in one of the statuses the heartbeat leaves alone, its task unchanged — and says
/// which rows it wrote; batches that are not a power of two (padded with their last row) and
/// a lone heartbeat write exactly their own rows.
#[tokio::test]
async fn one_heartbeat_statement_writes_only_the_quiet_rows() {
    use canopy::domain::status::WorkspaceStatus;
    use canopy::store::workspaces::{record_quiet_heartbeats, HeartbeatColumns, QuietBeat};
    let (app, _db) = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["Quiet A", "Quiet B", "Busy", "Would degrade"] {
        let id = app.create_workspace(name, None).await;
        let token = register(&app, &id).await;
        ids.push((id, token));
    }
    // "Busy" works on a task: a heartbeat without it is a task change, never quiet.
    let response = app
        .client
        .post(app.url("/registry/heartbeat"))
        .bearer_auth(&ids[2].1)
        .json(&json!({ "workspace_id": ids[2].0, "error_rate": 0, "current_task": "build" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let uuid = |i: usize| uuid::Uuid::parse_str(&ids[i].0).unwrap();
    let beat = |i: usize, uptime: i64, quiet: Vec<WorkspaceStatus>| QuietBeat {
        workspace_id: uuid(i),
        columns: HeartbeatColumns {
            error_rate: 0.0,
            sample_error: String::new(),
            active_tasks: 3,
            uptime_seconds: uptime,
            current_task: String::new(),
        },
        quiet,
    };
    let online = || vec![WorkspaceStatus::Online, WorkspaceStatus::Paused];
    let beats = [
        beat(0, 111, online()),
        beat(1, 222, online()),
        beat(2, 333, online()),
        // Quiet only in a status it is not in: the heartbeat would move it.
        beat(3, 444, vec![WorkspaceStatus::Degraded]),
    ];
    for rows in [4, 3, 1] {
        let batch = beats[..rows].to_vec();
        let mut written = app
            .state
            .store
            .run(move |c| {
                let refs: Vec<&QuietBeat> = batch.iter().collect();
                record_quiet_heartbeats(c, &refs, chrono::Utc::now()).map_err(StoreError::from)
            })
            .await
            .unwrap();
        written.sort();
        let mut expected: Vec<uuid::Uuid> = (0..rows.min(2)).map(uuid).collect();
        expected.sort();
        assert_eq!(written, expected, "a batch of {rows}");
    }
    for (i, uptime) in [(0, 111), (1, 222), (2, 0), (3, 0)] {
        let (status, ws) = app.get(&format!("/workspaces/{}", ids[i].0)).await;
        assert_eq!(status, 200);
        assert_eq!(ws["uptime_seconds"], uptime, "workspace {i}");
        assert_eq!(ws["status"], "online", "workspace {i}");
    }
    let (_, busy) = app.get(&format!("/workspaces/{}", ids[2].0)).await;
    assert_eq!(busy["current_task"], "build", "the busy row was left alone");
}

#[tokio::test]
async fn update_card_emits_agent_card_updated() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Carded", None).await;
    let token = register(&app, &id).await;
    let response = app
        .client
        .post(app.url("/registry/update-card"))
        .bearer_auth(&token)
        .json(&json!({ "workspace_id": id, "agent_card": { "skills": ["search"] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.get(&format!("/workspaces/{id}")).await.1["agent_card"],
        json!({ "skills": ["search"] })
    );
    assert_eq!(count_events(&app, &id, "AGENT_CARD_UPDATED").await, 1);
    let (_, log) = app.get(&format!("/events/{id}")).await;
    assert_eq!(
        log[0]["payload"],
        json!({ "agent_card": { "skills": ["search"] }, "version": 3 })
    );
}

#[tokio::test]
async fn discovery_follows_the_hierarchy() {
    // root ─┬─ team_a ─┬─ a1
    //       │          └─ a2
    //       └─ team_b ─── b1
    let (app, _db) = spawn_app().await;
    let root = app.create_workspace("Root", None).await;
    let team_a = app.create_workspace("Team A", Some(&root)).await;
    let team_b = app.create_workspace("Team B", Some(&root)).await;
    let a1 = app.create_workspace("Alice", Some(&team_a)).await;
    let a2 = app.create_workspace("Aaron", Some(&team_a)).await;
    let b1 = app.create_workspace("Bob", Some(&team_b)).await;
    app.patch(&format!("/workspaces/{a2}"), json!({ "role": "Reviewer" }))
        .await;
    let token_a1 = register(&app, &a1).await;

    let app = &app;
    let access = |caller: &str, target: &str| {
        let body = json!({ "caller_id": caller, "target_id": target });
        async move {
            app.post("/registry/check-access", body).await.1["allowed"]
                .as_bool()
                .unwrap()
        }
    };
    assert!(access(&a1, &a2).await, "siblings");
    assert!(access(&a1, &team_a).await, "child to parent");
    assert!(access(&team_a, &a1).await, "parent to child");
    assert!(access(&team_a, &team_b).await, "sibling teams");
    assert!(!access(&a1, &b1).await, "cross-team");
    assert!(!access(&a1, &team_b).await, "cross-team");
    assert_eq!(
        app.post(
            "/registry/check-access",
            json!({ "caller_id": "x", "target_id": a1 })
        )
        .await
        .0,
        400
    );

    let discover = |target: &str, caller: Option<&str>| {
        let mut rb = app
            .client
            .get(app.url(&format!("/registry/discover/{target}")))
            .bearer_auth(&token_a1);
        if let Some(c) = caller {
            rb = rb.header("X-Workspace-ID", c);
        }
        async move {
            let r = rb.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = discover(&a2, Some(&a1)).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "id": a2, "url": "", "name": "Aaron" }));
    let (status, body) = discover(&team_a, Some(&a1)).await;
    assert_eq!((status, body["name"].clone()), (200, json!("Team A")));
    assert_eq!(discover(&b1, Some(&a1)).await.0, 403);
    let (status, body) = discover(&a2, None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("X-Workspace-ID header is required"))
    );
    assert_eq!(
        discover(&a2, Some(&a2)).await.0,
        401,
        "a1's token does not speak for a2"
    );

    let (status, peers) = app.get(&format!("/registry/{team_a}/peers")).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["Team B", "Alice", "Aaron", "Root"],
        "siblings, then children, then parent"
    );
    let (_, peers) = app.get(&format!("/registry/{team_a}/peers?q=review")).await;
    let names: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["Aaron"],
        "matches role; null roles do not break the filter"
    );
    let peers_by_token = app
        .client
        .get(app.url(&format!("/registry/{a1}/peers")))
        .bearer_auth(&token_a1)
        .send()
        .await
        .unwrap();
    assert_eq!(peers_by_token.status(), 200);
}

// --- The status machine, one test per row of the contract's table. ---

#[tokio::test]
async fn register_brings_a_workspace_online() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("W", None).await;
    register(&app, &id).await;
    assert_eq!(status_of(&app, &id).await, "online");
    let mut canvas = app.ws("?since=0").await;
    let online = canvas.events(2).await.pop().unwrap();
    assert_eq!(online["event"], "WORKSPACE_ONLINE");
    assert_eq!(
        online["payload"],
        json!({ "url": "http://127.0.0.1:9/agent", "agent_card": { "name": "agent" }, "version": 2 })
    );
    assert_eq!(count_events(&app, &id, "WORKSPACE_ONLINE").await, 1);
}

#[tokio::test]
async fn heartbeat_brings_offline_and_provisioning_online_once() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("W", None).await;
    let token = register(&app, &id).await;
    // Force offline through the guarded transition, as the liveness job would.
    let uuid: uuid::Uuid = id.parse().unwrap();
    let far_future = chrono::Utc::now() + chrono::Duration::hours(1);
    let went_offline = app
        .state
        .execute(move |tx| canopy::commands::registry::mark_offline(tx, uuid, far_future))
        .await
        .unwrap();
    assert!(went_offline);
    assert_eq!(status_of(&app, &id).await, "offline");
    for _ in 0..3 {
        assert_eq!(heartbeat(&app, &id, &token, 0.0, "").await.0, 200);
    }
    assert_eq!(status_of(&app, &id).await, "online");
    assert_eq!(
        count_events(&app, &id, "WORKSPACE_ONLINE").await,
        2,
        "register, then one recovery"
    );
    let (_, log) = app.get(&format!("/events/{id}?limit=1")).await;
    // provisioning (1), registered (2), offline (3), recovered (4)
    assert_eq!(
        log[0]["payload"],
        json!({ "recovered_from": "offline", "version": 4 })
    );
}

#[tokio::test]
async fn high_error_rate_degrades_and_low_recovers() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("W", None).await;
    let token = register(&app, &id).await;
    heartbeat(&app, &id, &token, 0.49, "").await;
    assert_eq!(status_of(&app, &id).await, "online");
    heartbeat(&app, &id, &token, 0.8, "").await;
    heartbeat(&app, &id, &token, 0.9, "").await;
    assert_eq!(status_of(&app, &id).await, "degraded");
    assert_eq!(count_events(&app, &id, "WORKSPACE_DEGRADED").await, 1);
    let (_, log) = app.get(&format!("/events/{id}?limit=1")).await;
    assert_eq!(
        log[0]["payload"]["error_rate"], 0.8,
        "the degrading heartbeat's rate"
    );
    heartbeat(&app, &id, &token, 0.2, "").await;
    assert_eq!(
        status_of(&app, &id).await,
        "degraded",
        "0.1 <= rate < 0.5 keeps it degraded"
    );
    heartbeat(&app, &id, &token, 0.05, "").await;
    assert_eq!(status_of(&app, &id).await, "online");
    assert_eq!(count_events(&app, &id, "WORKSPACE_ONLINE").await, 2);
}

#[tokio::test]
async fn task_updated_only_when_the_task_changes() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("W", None).await;
    let token = register(&app, &id).await;
    heartbeat(&app, &id, &token, 0.0, "writing the report").await;
    heartbeat(&app, &id, &token, 0.0, "writing the report").await;
    heartbeat(&app, &id, &token, 0.0, "reviewing").await;
    assert_eq!(count_events(&app, &id, "TASK_UPDATED").await, 2);
    let (_, ws) = app.get(&format!("/workspaces/{id}")).await;
    assert_eq!(ws["current_task"], "reviewing");
    assert_eq!(ws["active_tasks"], 1);
    assert_eq!(ws["uptime_seconds"], 5);
    assert!(ws["last_heartbeat_at"].is_string());
    assert!(
        !app.structure_event_types()
            .await
            .contains(&"TASK_UPDATED".to_string()),
        "live-only"
    );
}

#[tokio::test]
async fn paused_workspaces_ignore_heartbeats_and_liveness() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions {
            no_redis: true,
            ..fast_liveness()
        },
    )
    .await;
    let id = app.create_workspace("W", None).await;
    let token = register(&app, &id).await;
    app.post(&format!("/workspaces/{id}/pause"), json!({}))
        .await;
    assert_eq!(heartbeat(&app, &id, &token, 0.9, "").await.0, 200);
    // A workspace that is not paused, silent from a moment later: once it is offline, the
    // paused one's deadline has passed too, and its expiry came first.
    let control = app.create_workspace("Control", None).await;
    register(&app, &control).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            status_of(&app, &control).await == "offline"
        })
        .await,
        "the control workspace goes offline"
    );
    // And a sweep after both deadlines, whatever the background one has done so far.
    canopy::jobs::liveness::sweep(&app.state).await.unwrap();
    assert_eq!(status_of(&app, &id).await, "paused");
    assert_eq!(count_events(&app, &id, "WORKSPACE_OFFLINE").await, 0);
}

#[tokio::test]
async fn provisioning_that_never_registers_fails_once() {
    let db = TestDb::new();
    let app = spawn_on(&db, fast_liveness().var("PROVISION_TIMEOUT_SECONDS", "1")).await;
    let id = app.create_workspace("Never", None).await;
    let failed = eventually(Duration::from_secs(8), || async {
        status_of(&app, &id).await == "failed"
    })
    .await;
    assert!(failed);
    // Further sweeps (as the next ticks would run) fail it no second time.
    for _ in 0..2 {
        canopy::jobs::liveness::sweep(&app.state).await.unwrap();
    }
    assert_eq!(
        count_events(&app, &id, "WORKSPACE_PROVISION_FAILED").await,
        1
    );
    // Register still brings a failed workspace online.
    register(&app, &id).await;
    assert_eq!(status_of(&app, &id).await, "online");
}

#[tokio::test]
async fn heartbeat_racing_delete_leaves_it_removed() {
    let (app, _db) = spawn_app().await;
    for round in 0..5 {
        let id = app.create_workspace(&format!("Racer {round}"), None).await;
        let token = register(&app, &id).await;
        let beats = (0..10).map(|i| {
            let (app, id, token) = (&app, id.clone(), token.clone());
            async move {
                heartbeat(
                    app,
                    &id,
                    &token,
                    if i % 2 == 0 { 0.9 } else { 0.0 },
                    &format!("t{i}"),
                )
                .await
                .0
            }
        });
        let delete = async { app.delete(&format!("/workspaces/{id}")).await.0 };
        let (statuses, deleted) = tokio::join!(futures_util::future::join_all(beats), delete);
        assert_eq!(deleted, 200);
        assert!(
            statuses.iter().all(|s| [200, 401, 410].contains(s)),
            "{statuses:?}"
        );
        assert_eq!(status_of(&app, &id).await, "removed");
        assert_eq!(heartbeat(&app, &id, &token, 0.0, "").await.0, 410);
        assert_eq!(status_of(&app, &id).await, "removed");
    }
}

// --- Liveness ---

/// A 2 s TTL and a 1 s sweep.
pub fn fast_liveness() -> TestOptions {
    TestOptions::default()
        .var("LIVENESS_TTL_SECONDS", "2")
        .var("LIVENESS_SWEEP_INTERVAL_SECONDS", "1")
}

#[tokio::test]
async fn silence_goes_offline_exactly_once() {
    // Three instances in cluster mode (all see the expiry), one in embedded mode.
    let db = TestDb::new();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let options = TestOptions {
        redis_prefix: Some(prefix),
        ..fast_liveness()
    };
    let instances = if redis_url().is_some() { 3 } else { 1 };
    let mut apps = Vec::new();
    for _ in 0..instances {
        apps.push(spawn_on(&db, options.clone()).await);
    }
    let app = &apps[0];
    let id = app.create_workspace("Quiet", None).await;
    let token = register(app, &id).await;
    heartbeat(&apps[instances - 1], &id, &token, 0.0, "").await;
    let offline = eventually(Duration::from_secs(2 + 1 + 3), || async {
        status_of(app, &id).await == "offline"
    })
    .await;
    assert!(offline, "offline within TTL + sweep interval");
    // Every instance sweeps again (as its next ticks would): the transition is not repeated.
    for instance in &apps {
        canopy::jobs::liveness::sweep(&instance.state)
            .await
            .unwrap();
    }
    assert_eq!(count_events(app, &id, "WORKSPACE_OFFLINE").await, 1);
    let mut canvas = apps[instances - 1].ws("?since=0").await;
    let kinds: Vec<String> = canvas
        .events(3)
        .await
        .iter()
        .map(|f| f["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_ONLINE",
            "WORKSPACE_OFFLINE"
        ]
    );
}

#[tokio::test]
async fn heartbeats_keep_a_workspace_online() {
    let db = TestDb::new();
    let app = spawn_on(&db, fast_liveness()).await;
    let id = app.create_workspace("Chatty", None).await;
    let token = register(&app, &id).await;
    // A silent workspace registered at the same moment: once it is offline, the TTL has passed
    // for both, and the chatty one's heartbeats (one every quarter TTL) are what kept it online.
    let silent = app.create_workspace("Silent", None).await;
    register(&app, &silent).await;
    let mut beat = tokio::time::interval(Duration::from_millis(500));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status_of(&app, &silent).await != "offline" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent workspace goes offline"
        );
        beat.tick().await;
        heartbeat(&app, &id, &token, 0.0, "").await;
    }
    canopy::jobs::liveness::sweep(&app.state).await.unwrap();
    assert_eq!(status_of(&app, &id).await, "online");
    assert_eq!(count_events(&app, &id, "WORKSPACE_OFFLINE").await, 0);
}

#[tokio::test]
async fn flushall_then_one_heartbeat_still_goes_offline() {
    if redis_url().is_none() {
        eprintln!("cluster-mode scenario: set REDIS_URL to run it");
        return;
    }
    let redis = PrivateRedis::start();
    // A slow sweep: the offline must come from the key re-armed by SET.
    let options = fast_liveness().var("LIVENESS_SWEEP_INTERVAL_SECONDS", "30");
    let db = TestDb::new();
    let app = spawn_on(&db, on_private_redis(&redis, options)).await;
    let id = app.create_workspace("Flushed", None).await;
    let token = register(&app, &id).await;
    redis.command(&["FLUSHALL"]).await;
    heartbeat(&app, &id, &token, 0.0, "").await;
    let offline = eventually(Duration::from_secs(6), || async {
        status_of(&app, &id).await == "offline"
    })
    .await;
    assert!(offline, "the heartbeat re-armed the key with SET");
    assert_eq!(count_events(&app, &id, "WORKSPACE_OFFLINE").await, 1);
}

#[tokio::test]
async fn without_keyspace_notifications_the_sweep_still_works() {
    if redis_url().is_none() {
        eprintln!("cluster-mode scenario: set REDIS_URL to run it");
        return;
    }
    let redis = PrivateRedis::start();
    let db = TestDb::new();
    let app = spawn_on(&db, on_private_redis(&redis, fast_liveness())).await;
    redis
        .command(&["CONFIG", "SET", "notify-keyspace-events", ""])
        .await;
    let id = app.create_workspace("Unnotified", None).await;
    let token = register(&app, &id).await;
    heartbeat(&app, &id, &token, 0.0, "").await;
    let offline = eventually(Duration::from_secs(6), || async {
        status_of(&app, &id).await == "offline"
    })
    .await;
    assert!(offline, "the sweep found it");
    assert_eq!(count_events(&app, &id, "WORKSPACE_OFFLINE").await, 1);
}
