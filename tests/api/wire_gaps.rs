//! The reference canvas's wire gaps (issue 12, items 1–5): what its calls and its store expect.

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};

use crate::helpers::*;

/// Item 1: `type` is a filter. The reference canvas's communications overlay polls
/// `?type=delegation&source=agent&limit=500` for every node; a type without rows is 200 `[]`.
#[tokio::test]
async fn an_unknown_activity_type_is_an_empty_list_not_an_error() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Agent", None).await;
    let path = format!("/workspaces/{id}/activity");
    let (status, rows) = app
        .get(&format!("{path}?type=delegation&source=agent&limit=500"))
        .await;
    assert_eq!((status, rows), (200, json!([])));

    // Still a sane string: length and characters are checked.
    for bad in [
        "a%20b".to_string(),
        "x%27--".to_string(),
        "%C3%A9".to_string(),
        "a".repeat(65),
    ] {
        let (status, body) = app.get(&format!("{path}?type={bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("type"),
            "{body}"
        );
    }
    let (status, _) = app.get(&format!("{path}?type={}", "a".repeat(64))).await;
    assert_eq!(status, 200);
}

/// Item 2: an agent's message to the people on the canvas survives a reload: the chat history
/// loader asks for `?type=a2a_receive&source=canvas&limit=50` and reads `response_body.result`
/// (text) and `response_body.parts` (files), `status` and `created_at`; a row with a
/// `request_body` would also draw a user bubble, so there is none.
#[tokio::test]
async fn notify_messages_are_found_by_the_chat_history_loader() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Writer", None).await;
    let token = register(&app, &id).await;

    let response = app
        .client
        .post(app.url(&format!("/workspaces/{id}/notify")))
        .bearer_auth(&token)
        .json(&json!({ "message": "Report ready", "attachments": [{ "uri": "workspace:/r.pdf", "name": "r.pdf" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (status, rows) = app
        .get(&format!(
            "/workspaces/{id}/activity?type=a2a_receive&source=canvas&limit=50"
        ))
        .await;
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["activity_type"], "a2a_receive");
    assert_eq!(row["method"], "notify");
    assert_eq!(row["source_id"], Value::Null);
    assert_eq!(row["status"], "ok");
    assert!(row["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(row.get("request_body").is_none(), "no user bubble");
    assert_eq!(row["response_body"]["result"], "Report ready");
    assert_eq!(
        row["response_body"]["parts"],
        json!([{ "kind": "file", "file": { "uri": "workspace:/r.pdf", "name": "r.pdf" } }])
    );
    // Not agent traffic.
    let (_, agent_rows) = app
        .get(&format!("/workspaces/{id}/activity?source=agent"))
        .await;
    assert_eq!(agent_rows, json!([]));
}

fn new_key() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

/// Item 3: in open mode the canvas is the admin, also for a workspace whose agent registered
/// (and so holds a token); calls that identify the caller as that agent still need its token.
#[tokio::test]
async fn open_mode_is_admin_for_workspace_routes_but_not_for_agent_identity() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("SECRETS_ENCRYPTION_KEY", &new_key()),
    )
    .await;
    let id = app.create_workspace("Agent", None).await;
    let peer = app.create_workspace("Peer", None).await;
    let token = register(&app, &id).await;

    // Workspace-scoped writes and reads, no token: the canvas in open mode.
    let calls: Vec<(reqwest::Method, String, Option<Value>, u16)> = vec![
        (
            reqwest::Method::PUT,
            format!("/workspaces/{id}/secrets"),
            Some(json!({ "key": "ANTHROPIC_API_KEY", "value": "sk-test" })),
            200,
        ),
        (
            reqwest::Method::GET,
            format!("/workspaces/{id}/secrets"),
            None,
            200,
        ),
        (
            reqwest::Method::DELETE,
            format!("/workspaces/{id}/secrets/ANTHROPIC_API_KEY"),
            None,
            200,
        ),
        (
            reqwest::Method::POST,
            "/registry/update-card".to_string(),
            Some(json!({ "workspace_id": id, "agent_card": { "name": "renamed" } })),
            200,
        ),
        (
            reqwest::Method::POST,
            format!("/workspaces/{id}/activity"),
            Some(json!({ "activity_type": "agent_log", "summary": "from the canvas" })),
            200,
        ),
        (
            reqwest::Method::POST,
            format!("/workspaces/{id}/notify"),
            Some(json!({ "message": "hi" })),
            200,
        ),
        (
            reqwest::Method::GET,
            format!("/workspaces/{id}/activity"),
            None,
            200,
        ),
    ];
    for (method, path, body, expected) in calls {
        let (status, answer) = app.request(method.clone(), &path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }

    // A presented token is still checked.
    let response = app
        .client
        .post(app.url(&format!("/workspaces/{id}/notify")))
        .bearer_auth("not-a-token")
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Agent identity: heartbeat, discover and the agent WebSocket need the agent's token.
    let response = app
        .client
        .post(app.url("/registry/heartbeat"))
        .json(&json!({ "workspace_id": id }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .client
        .get(app.url(&format!("/registry/discover/{peer}")))
        .header("X-Workspace-ID", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let refused = ws_refusal(
        &format!("ws://127.0.0.1:{}/ws", app.port),
        &[("X-Workspace-ID", &id)],
    )
    .await;
    assert_eq!(
        refused.0, 401,
        "agent socket without its token: {refused:?}"
    );
    let (status, _) = heartbeat(&app, &id, &token, 0.0, "").await;
    assert_eq!(status, 200);
}

/// Item 3 with an admin token configured: the admin token passes workspace checks; no token
/// does not.
#[tokio::test]
async fn the_admin_token_passes_workspace_routes() {
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default().var("ADMIN_TOKEN", "adm")).await;
    let id = app.create_workspace("Agent", None).await;
    register_as_admin(&app, &id).await;
    let (status, body) = app
        .post(
            "/registry/update-card",
            json!({ "workspace_id": id, "agent_card": { "v": 2 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let response = app
        .client
        .post(app.url("/registry/update-card"))
        .json(&json!({ "workspace_id": id, "agent_card": { "v": 3 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn register_as_admin(app: &TestApp, id: &str) {
    let (status, body) = app
        .post(
            "/registry/register",
            json!({ "id": id, "url": "http://127.0.0.1:9/agent", "agent_card": {} }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Item 4: a child's WORKSPACE_PROVISIONING carries x/y relative to its parent (the reference
/// canvas nests it with them); GET stays absolute. Resume follows the same convention.
#[tokio::test]
async fn a_child_is_provisioned_at_a_position_relative_to_its_parent() {
    let (app, _db) = spawn_app().await;
    let (_, parent) = app
        .post(
            "/workspaces",
            json!({ "name": "Team", "canvas": { "x": 100, "y": 50 } }),
        )
        .await;
    let parent = parent["id"].as_str().unwrap().to_string();
    let (status, child) = app
        .post(
            "/workspaces",
            json!({ "name": "Member", "parent_id": parent, "canvas": { "x": 130.5, "y": 90 } }),
        )
        .await;
    assert_eq!(status, 201);
    let child = child["id"].as_str().unwrap().to_string();
    let (_, orphan_parent) = app.post("/workspaces", json!({ "name": "Bare" })).await;
    let bare = orphan_parent["id"].as_str().unwrap().to_string();
    let (_, loose) = app
        .post(
            "/workspaces",
            json!({ "name": "Loose", "parent_id": bare, "canvas": { "x": 7, "y": 8 } }),
        )
        .await;
    let loose = loose["id"].as_str().unwrap().to_string();

    let mut canvas = app.ws("?since=0").await;
    let frames = canvas.events(4).await;
    assert_eq!(frames[0]["payload"]["x"], 100, "a root is absolute");
    assert_eq!(frames[0]["payload"]["y"], 50);
    assert_eq!(frames[1]["workspace_id"], child.as_str());
    assert_eq!(frames[1]["payload"]["parent_id"], parent.as_str());
    assert_eq!(frames[1]["payload"]["x"], 30.5);
    assert_eq!(frames[1]["payload"]["y"], 40);
    assert_eq!(frames[3]["workspace_id"], loose.as_str());
    // "Bare" was created without a position, so the server placed it right of the Team root's
    // area (which reaches 364.5 with its child), 28 px on, level with that root; the child's
    // position is relative to that place (README "Placement and Arrange").
    let (_, bare_ws) = app.get(&format!("/workspaces/{bare}")).await;
    assert_eq!(
        (&bare_ws["x"], &bare_ws["y"]),
        (&json!(392.5), &json!(50)),
        "an unpositioned root is placed beside the roots"
    );
    assert_eq!(
        (&frames[3]["payload"]["x"], &frames[3]["payload"]["y"]),
        (&json!(-385.5), &json!(-42)),
        "relative to the placed parent"
    );

    let (_, got) = app.get(&format!("/workspaces/{child}")).await;
    assert_eq!(
        (got["x"].clone(), got["y"].clone()),
        (json!(130.5), json!(90))
    );

    // Resume: the same convention.
    app.post(&format!("/workspaces/{parent}/pause"), json!({}))
        .await;
    app.post(&format!("/workspaces/{parent}/resume"), json!({}))
        .await;
    let frames = canvas.events(4).await;
    let resumed: Vec<&Value> = frames
        .iter()
        .filter(|f| f["event"] == "WORKSPACE_PROVISIONING")
        .collect();
    assert_eq!(resumed.len(), 2);
    let child_frame = resumed
        .iter()
        .find(|f| f["workspace_id"] == child.as_str())
        .unwrap();
    assert_eq!(
        (&child_frame["payload"]["x"], &child_frame["payload"]["y"]),
        (&json!(30.5), &json!(40))
    );
}

/// Item 5: rename and reparent are one event each, with the changed values. (The reference
/// canvas's store, at the commit read, applies no rename or reparent event at all; it picks
/// them up from `GET /workspaces` on its next rehydrate. Our page applies these.)
#[tokio::test]
async fn rename_and_reparent_emit_the_events_our_page_applies() {
    let (app, _db) = spawn_app().await;
    let a = app.create_workspace("A", None).await;
    let b = app.create_workspace("B", None).await;
    let mut canvas = app.ws(&format!("?since=2&epoch={}", app.state.epoch)).await;
    let (status, _) = app
        .patch(&format!("/workspaces/{a}"), json!({ "name": "Alpha" }))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .patch(&format!("/workspaces/{a}"), json!({ "parent_id": b }))
        .await;
    assert_eq!(status, 200);
    let frames = canvas.events(2).await;
    assert_eq!(frames[0]["event"], "WORKSPACE_UPDATED");
    assert_eq!(
        frames[0]["payload"],
        json!({ "name": "Alpha", "version": 2 })
    );
    assert_eq!(frames[1]["event"], "WORKSPACE_MOVED");
    assert_eq!(
        frames[1]["payload"],
        json!({ "old_parent_id": null, "new_parent_id": b, "version": 3 })
    );
}
