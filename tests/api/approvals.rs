//! Approvals (issue 12, item 7): an agent asks, the canvas sees it live, a person decides
//! exactly once, and undecided requests expire on the lease holder.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn agent_post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn agent_get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The next stream event of `kind`, skipping others.
async fn next_of(ws: &mut WsClient, kind: &str) -> Value {
    for _ in 0..100 {
        let frame = ws.next_event().await;
        if frame["event"] == kind {
            return frame;
        }
    }
    panic!("no {kind} within 100 events");
}

#[tokio::test]
async fn an_agent_asks_the_canvas_sees_it_and_a_person_decides_once() {
    let (app, _db) = spawn_app().await;
    let parent = app.create_workspace("Lead", None).await;
    let child = app.create_workspace("Builder", Some(&parent)).await;
    let token = register(&app, &child).await;
    app.settle().await;
    let mut canvas = app.ws("").await;
    canvas.next_json().await; // CONNECTED
    let mut agent = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws", app.port),
        &[
            ("X-Workspace-ID", &child),
            ("Authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    agent.next_json().await; // CONNECTED

    let (status, body) = agent_post(
        &app,
        &token,
        &format!("/workspaces/{child}/approvals"),
        json!({ "action": "deploy to production", "reason": "tests pass", "task_id": "t-1", "context": { "commit": "abc" } }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "pending");
    let approval_id = body["approval_id"].as_str().unwrap().to_string();

    let requested = next_of(&mut canvas, "APPROVAL_REQUESTED").await;
    assert_eq!(requested["workspace_id"], child.as_str());
    assert_eq!(requested["payload"]["approval_id"], approval_id.as_str());
    assert_eq!(requested["payload"]["action"], "deploy to production");
    assert_eq!(requested["payload"]["reason"], "tests pass");
    assert_eq!(requested["payload"]["task_id"], "t-1");
    let escalated = next_of(&mut canvas, "APPROVAL_ESCALATED").await;
    assert_eq!(escalated["workspace_id"], parent.as_str());
    assert_eq!(escalated["payload"]["from_workspace_id"], child.as_str());
    assert_eq!(escalated["payload"]["approval_id"], approval_id.as_str());

    // The reference canvas's poll: every workspace's pending requests with its name.
    let (status, pending) = app.get("/approvals/pending").await;
    assert_eq!(status, 200);
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let row = &pending[0];
    assert_eq!(row["id"], approval_id.as_str());
    assert_eq!(row["workspace_id"], child.as_str());
    assert_eq!(row["workspace_name"], "Builder");
    assert_eq!(row["action"], "deploy to production");
    assert_eq!(row["reason"], "tests pass");
    assert_eq!(row["status"], "pending");
    assert!(row["created_at"].as_str().unwrap().ends_with('Z'));

    // The agent reads its own requests.
    let (status, own) = agent_get(&app, &token, &format!("/workspaces/{child}/approvals")).await;
    assert_eq!(status, 200);
    assert_eq!(own[0]["status"], "pending");
    assert_eq!(own[0]["context"], json!({ "commit": "abc" }));
    assert_eq!(own[0]["decided_by"], Value::Null);

    // A person decides (the reference canvas sends decided_by "human").
    let decide = format!("/workspaces/{child}/approvals/{approval_id}/decide");
    let (status, body) = app
        .post(
            &decide,
            json!({ "decision": "approved", "decided_by": "alice" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["approval_id"], approval_id.as_str());

    // The agent learns it from its filtered socket and from GET.
    let decided = next_of(&mut agent, "APPROVAL_DECIDED").await;
    assert_eq!(decided["workspace_id"], child.as_str());
    assert_eq!(decided["payload"]["approval_id"], approval_id.as_str());
    assert_eq!(decided["payload"]["decision"], "approved");
    assert_eq!(decided["payload"]["decided_by"], "alice");
    let (_, own) = agent_get(&app, &token, &format!("/workspaces/{child}/approvals")).await;
    assert_eq!(own[0]["status"], "approved");
    assert_eq!(own[0]["decided_by"], "alice");
    assert!(own[0]["decided_at"].is_string());

    // Decided exactly once: a second decision gets the first one back.
    let (status, body) = app
        .post(
            &decide,
            json!({ "decision": "denied", "decided_by": "bob" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["decided_by"], "alice");
    assert_eq!(app.get("/approvals/pending").await.1, json!([]));
    assert_eq!(count_events(&app, &child, "APPROVAL_DECIDED").await, 1);
    // Live-only: approvals are not structure.
    assert!(!app
        .structure_event_types()
        .await
        .iter()
        .any(|t| t.starts_with("APPROVAL_")));
}

#[tokio::test]
async fn concurrent_decisions_have_exactly_one_winner() {
    let db = TestDb::new();
    let a = spawn_on(&db, TestOptions::default()).await;
    // On PostgreSQL, two instances decide at once; SQLite serves one.
    let b = if db.is_postgres() {
        Some(spawn_on(&db, TestOptions::default()).await)
    } else {
        None
    };
    let id = a.create_workspace("Asker", None).await;
    let (_, body) = a
        .post(
            &format!("/workspaces/{id}/approvals"),
            json!({ "action": "spend" }),
        )
        .await;
    let approval_id = body["approval_id"].as_str().unwrap().to_string();
    let decide = format!("/workspaces/{id}/approvals/{approval_id}/decide");
    let mut calls = Vec::new();
    for i in 0..8 {
        let app = match (&b, i % 2) {
            (Some(b), 1) => b,
            _ => &a,
        };
        let decision = if i % 3 == 0 { "approved" } else { "denied" };
        calls.push(app.post(
            &decide,
            json!({ "decision": decision, "decided_by": format!("person-{i}") }),
        ));
    }
    let answers = futures_util::future::join_all(calls).await;
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let winner = winners[0];
    for (status, body) in &answers {
        if *status != 200 {
            assert_eq!(*status, 409, "{body}");
            assert_eq!(body["status"], winner["status"]);
            assert_eq!(body["decided_by"], winner["decided_by"]);
        }
    }
    assert_eq!(count_events(&a, &id, "APPROVAL_DECIDED").await, 1);
}

#[tokio::test]
async fn approval_input_and_access_are_checked() {
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default().var("ADMIN_TOKEN", "adm")).await;
    let id = app.create_workspace("Asker", None).await;
    let other = app.create_workspace("Other", None).await;
    let path = format!("/workspaces/{id}/approvals");
    for (body, field) in [
        (json!({}), "action"),
        (json!({ "action": "  " }), "action"),
        (json!({ "action": "a".repeat(1001) }), "action"),
        (json!({ "action": "a", "context": [1] }), "context"),
        (
            json!({ "action": "a", "reason": "r".repeat(4001) }),
            "reason",
        ),
        (
            json!({ "action": "a", "task_id": "t".repeat(256) }),
            "task_id",
        ),
    ] {
        let (status, answer) = app.post(&path, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(field),
            "{answer}"
        );
    }
    let (status, _) = app
        .post(
            &format!("/workspaces/{}/approvals", uuid::Uuid::new_v4()),
            json!({ "action": "a" }),
        )
        .await;
    assert_eq!(status, 404);

    let (_, body) = app.post(&path, json!({ "action": "a" })).await;
    let approval_id = body["approval_id"].as_str().unwrap().to_string();
    let decide = format!("/workspaces/{id}/approvals/{approval_id}/decide");
    let (status, body) = app.post(&decide, json!({ "decision": "maybe" })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("decision"));
    let (status, _) = app
        .post(
            &format!("/workspaces/{other}/approvals/{approval_id}/decide"),
            json!({ "decision": "approved" }),
        )
        .await;
    assert_eq!(status, 404, "another workspace's request");
    let (status, _) = app
        .post(
            &format!("/workspaces/{id}/approvals/{}/decide", uuid::Uuid::new_v4()),
            json!({ "decision": "approved" }),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/workspaces/{id}/approvals/nope/decide"),
            json!({ "decision": "approved" }),
        )
        .await;
    assert_eq!(status, 400);

    // A person decides: not anonymous callers, not the agent itself.
    let token = {
        let (status, body) = app
            .post(
                "/registry/register",
                json!({ "id": id, "url": "http://127.0.0.1:9/a", "agent_card": {} }),
            )
            .await;
        assert_eq!(status, 200);
        body["auth_token"].as_str().unwrap().to_string()
    };
    // The agent is known (its token is valid) but deciding is a person's: 403.
    let (status, _) = agent_post(&app, &token, &decide, json!({ "decision": "approved" })).await;
    assert_eq!(status, 403);
    let anonymous = app
        .client
        .get(app.url("/approvals/pending"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let anonymous = app
        .client
        .post(app.url(&path))
        .json(&json!({ "action": "a" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // The agent may ask and read with its own token.
    let (status, _) = agent_post(&app, &token, &path, json!({ "action": "b" })).await;
    assert_eq!(status, 201);
    let (status, rows) = agent_get(&app, &token, &path).await;
    assert_eq!(status, 200);
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["action"], "b", "newest first");
    // Nothing refused emitted anything.
    assert_eq!(count_events(&app, &id, "APPROVAL_DECIDED").await, 0);
    assert_eq!(count_events(&app, &id, "APPROVAL_REQUESTED").await, 2);
}

#[tokio::test]
async fn undecided_requests_expire_on_the_lease_holder_once() {
    let db = TestDb::new();
    let options = TestOptions::default()
        .var("APPROVAL_TIMEOUT_SECONDS", "1")
        .var("APPROVAL_SWEEP_INTERVAL_SECONDS", "1");
    let a = spawn_on(&db, options.clone()).await;
    let b = if db.is_postgres() {
        Some(spawn_on(&db, options).await)
    } else {
        None
    };
    let id = a.create_workspace("Asker", None).await;
    let (status, body) = a
        .post(
            &format!("/workspaces/{id}/approvals"),
            json!({ "action": "wait" }),
        )
        .await;
    assert_eq!(status, 201);
    let approval_id = body["approval_id"].as_str().unwrap().to_string();
    let path = format!("/workspaces/{id}/approvals");
    assert!(
        eventually(Duration::from_secs(10), || async {
            a.get(&path).await.1[0]["status"] == "denied"
        })
        .await,
        "expired within 10 s"
    );
    let (_, rows) = a.get(&path).await;
    assert_eq!(rows[0]["decided_by"], "expired");
    let decide = format!("/workspaces/{id}/approvals/{approval_id}/decide");
    let (status, body) = a.post(&decide, json!({ "decision": "approved" })).await;
    assert_eq!(
        (status, body["decided_by"].clone()),
        (409, json!("expired"))
    );
    // Another expiry pass on every instance, as the other instance's ticks would make: the
    // decided request is not decided again.
    for app in std::iter::once(&a).chain(b.as_ref()) {
        let again = canopy::jobs::approvals::expire_due(&app.state)
            .await
            .unwrap();
        assert_eq!(again, 0, "nothing left to expire");
    }
    assert_eq!(count_events(&a, &id, "APPROVAL_DECIDED").await, 1);
    let events = a.live_events().await;
    let decided = events
        .iter()
        .find(|e| e.1 == "APPROVAL_DECIDED")
        .expect("event");
    let mut canvas = a
        .ws(&format!("?since={}&epoch={}", decided.0 - 1, a.state.epoch))
        .await;
    let frame = next_of(&mut canvas, "APPROVAL_DECIDED").await;
    assert_eq!(frame["payload"]["decided_by"], "expired");
    assert_eq!(frame["payload"]["decision"], "denied");
    drop(b);
}

#[tokio::test]
async fn reading_pending_requests_never_expires_them() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default()
            .var("APPROVAL_TIMEOUT_SECONDS", "1")
            .var("APPROVAL_SWEEP_INTERVAL_SECONDS", "3600"),
    )
    .await;
    let id = app.create_workspace("Asker", None).await;
    app.post(
        &format!("/workspaces/{id}/approvals"),
        json!({ "action": "wait" }),
    )
    .await;
    // The job's first tick ran at start-up; the request is past its deadline after 1 s.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, rows) = app.get(&format!("/workspaces/{id}/approvals")).await;
            rows[0]["expires_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t < chrono::Utc::now())
        })
        .await
    );
    for _ in 0..3 {
        let (_, pending) = app.get("/approvals/pending").await;
        assert_eq!(
            pending.as_array().unwrap().len(),
            1,
            "a GET decides nothing"
        );
    }
    // The lease holder's pass does.
    let expired = canopy::jobs::approvals::expire_due(&app.state)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(app.get("/approvals/pending").await.1, json!([]));
    assert_eq!(
        canopy::jobs::approvals::expire_due(&app.state)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_removed_workspaces_requests_can_no_longer_be_decided() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Gone", None).await;
    let (status, body) = app
        .post(
            &format!("/workspaces/{id}/approvals"),
            json!({ "action": "deploy" }),
        )
        .await;
    assert_eq!(status, 201);
    let approval = body["approval_id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/workspaces/{id}")).await.0, 200);
    let before = app.live_events().await.len();
    let (status, body) = app
        .post(
            &format!("/workspaces/{id}/approvals/{approval}/decide"),
            json!({ "decision": "approved" }),
        )
        .await;
    assert_eq!(
        (status, body),
        (404, json!({ "error": "workspace not found" }))
    );
    assert_eq!(app.live_events().await.len(), before, "no APPROVAL_DECIDED");
}

/// The inbox is every pending request, not a first page: `GET /approvals/pending` without a
/// limit answers past the per-workspace list's default of 50, and `?limit=` still bounds it.
#[tokio::test]
async fn the_pending_inbox_is_not_cut_at_a_default_page() {
    let db = TestDb::new();
    let app = spawn_on(&db, rate_limits_off()).await;
    let id = app.create_workspace("Asker", None).await;
    let token = register(&app, &id).await;
    for n in 0..60 {
        let (status, body) = agent_post(
            &app,
            &token,
            &format!("/workspaces/{id}/approvals"),
            json!({ "action": format!("step {n}") }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, pending) = app.get("/approvals/pending").await;
    assert_eq!(status, 200);
    assert_eq!(pending.as_array().unwrap().len(), 60);
    assert_eq!(pending[0]["action"], "step 59", "newest first");
    assert_eq!(
        app.get("/approvals/pending?limit=7")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        7
    );
    let (_, page) = app.get(&format!("/workspaces/{id}/approvals")).await;
    assert_eq!(
        page.as_array().unwrap().len(),
        50,
        "the per-workspace list's default"
    );
}
