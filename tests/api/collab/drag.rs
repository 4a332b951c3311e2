//! Drag previews on the volatile lane, across two instances: DRAG_PREVIEW while a node is
//! dragged, DRAG_ENDED when a drag stops without a drop, nothing sequenced or stored.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    on_private_redis, redis_url, register, spawn_on, PrivateRedis, TestApp, TestDb, TestOptions,
    WsClient,
};

/// Two instances on one database and one Redis: the shared one of the PostgreSQL run (with a
/// key prefix of their own), or a private one beside SQLite.
async fn two_instances() -> (TestApp, TestApp, TestDb, Option<PrivateRedis>) {
    let db = TestDb::new();
    let (options, private) = match redis_url() {
        Some(_) => (
            TestOptions {
                redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
                ..Default::default()
            },
            None,
        ),
        None => {
            let redis = PrivateRedis::start();
            (
                on_private_redis(&redis, TestOptions::default()),
                Some(redis),
            )
        }
    };
    let a = spawn_on(&db, options.clone()).await;
    let b = spawn_on(&db, options).await;
    (a, b, db, private)
}

fn drag(workspace: &str, x: f64, y: f64) -> String {
    json!({ "type": "drag", "workspace_id": workspace, "x": x, "y": y }).to_string()
}

/// The next frame named `event`, skipping others (CONNECTED, stream events).
async fn next_named(canvas: &mut WsClient, event: &str) -> Value {
    loop {
        let frame = canvas.next_json().await;
        if frame["event"] == event {
            return frame;
        }
    }
}

/// Reads DRAG_PREVIEW frames for `workspace` until one shows (x, y).
async fn preview_reaches(canvas: &mut WsClient, workspace: &str, x: f64, y: f64) -> Value {
    loop {
        let frame = next_named(canvas, "DRAG_PREVIEW").await;
        if frame["workspace_id"] == workspace
            && frame["payload"]["x"] == x
            && frame["payload"]["y"] == y
        {
            return frame;
        }
    }
}

#[tokio::test]
async fn every_other_canvas_on_every_instance_sees_the_node_move() {
    let (a, b, _db, _redis) = two_instances().await;
    let node = a.create_workspace("Dragged", None).await;
    let events_before = a.live_events().await.len();
    a.settle().await;
    b.settle().await;
    let mut dragger = a.ws("").await;
    let mut same_instance = a.ws("").await;
    let mut other_instance = b.ws("").await;
    for canvas in [&mut dragger, &mut same_instance, &mut other_instance] {
        next_named(canvas, "CONNECTED").await;
    }
    for step in 1..=10 {
        dragger
            .send_text(&drag(&node, f64::from(step) * 10.0, 5.5))
            .await;
    }
    for canvas in [&mut other_instance, &mut same_instance] {
        let frame = preview_reaches(canvas, &node, 100.0, 5.5).await;
        assert_eq!(frame["payload"]["workspace_id"], node.as_str());
        assert_eq!(
            frame["payload"]["actor"]["id"], "local",
            "open mode's admin drags"
        );
        assert!(frame.get("seq").is_none(), "volatile: no seq: {frame}");
    }
    // The dragger does not get its own previews back (the other canvas on its instance had
    // them queued at the same moment).
    dragger.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(
        a.live_events().await.len(),
        events_before,
        "previews are not stored"
    );
}

#[tokio::test]
async fn a_drag_without_a_drop_ends_with_drag_ended_and_a_drop_needs_none() {
    let (a, b, _db, _redis) = two_instances().await;
    let dropped = a.create_workspace("Dropped", None).await;
    let idle = a.create_workspace("Idle", None).await;
    let closed = a.create_workspace("Closed", None).await;
    let mut watcher = b.ws("").await;
    next_named(&mut watcher, "CONNECTED").await;

    // A socket that closes mid-drag: its drag ends at once.
    let mut leaver = a.ws("").await;
    next_named(&mut leaver, "CONNECTED").await;
    leaver.send_text(&drag(&closed, 1.0, 2.0)).await;
    preview_reaches(&mut watcher, &closed, 1.0, 2.0).await;
    leaver.stream.close(None).await.unwrap();
    let ended = next_named(&mut watcher, "DRAG_ENDED").await;
    assert_eq!(ended["workspace_id"], closed.as_str());
    assert_eq!(ended["payload"]["workspace_id"], closed.as_str());
    assert!(ended.get("seq").is_none());

    // Two drags from one socket: one is dropped (PATCH), the other just stops.
    let mut dragger = a.ws("").await;
    next_named(&mut dragger, "CONNECTED").await;
    dragger.send_text(&drag(&dropped, 30.0, 40.0)).await;
    dragger.send_text(&drag(&idle, 7.0, 8.0)).await;
    preview_reaches(&mut watcher, &idle, 7.0, 8.0).await;
    let (status, _) = a
        .patch(
            &format!("/workspaces/{dropped}"),
            json!({ "x": 30, "y": 40 }),
        )
        .await;
    assert_eq!(status, 200);
    let layout = next_named(&mut watcher, "WORKSPACE_LAYOUT_CHANGED").await;
    assert_eq!(layout["workspace_id"], dropped.as_str());
    // About two seconds later the idle drag ends; the dropped one never does.
    let ended = next_named(&mut watcher, "DRAG_ENDED").await;
    assert_eq!(ended["workspace_id"], idle.as_str(), "{ended}");
    watcher.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn only_canvas_sockets_may_drag_and_bad_or_excess_frames_are_refused() {
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default()).await;
    let node = app.create_workspace("Agent home", None).await;
    let token = register(&app, &node).await;
    app.settle().await;
    let mut agent = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws", app.port),
        &[
            ("X-Workspace-ID", node.as_str()),
            ("Authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    next_named(&mut agent, "CONNECTED").await;
    agent.send_text(&drag(&node, 1.0, 1.0)).await;
    let refused = agent.next_json().await;
    assert_eq!(refused["type"], "error");
    assert!(
        refused["error"].as_str().unwrap().starts_with("drag:"),
        "{refused}"
    );

    let mut canvas = app.ws("").await;
    next_named(&mut canvas, "CONNECTED").await;
    for bad in [
        json!({ "type": "drag", "workspace_id": "nope", "x": 1, "y": 1 }),
        json!({ "type": "drag", "workspace_id": node, "x": "1", "y": 1 }),
        json!({ "type": "drag", "workspace_id": node, "x": 1 }),
    ] {
        canvas.send_text(&bad.to_string()).await;
        let answer = canvas.next_json().await;
        assert_eq!(answer["type"], "error", "{bad}");
        assert!(answer["error"].as_str().unwrap().starts_with("drag:"));
    }

    // A valid drag reaches other canvases, never agent sockets.
    let mut watcher = app.ws("").await;
    next_named(&mut watcher, "CONNECTED").await;
    canvas.send_text(&drag(&node, 3.0, 4.0)).await;
    preview_reaches(&mut watcher, &node, 3.0, 4.0).await;
    agent.expect_silence(Duration::from_millis(300)).await;

    // A burst far over 30 per second is thinned, not punished: the socket stays open.
    for i in 0..200 {
        canvas.send_text(&drag(&node, f64::from(i), 0.0)).await;
    }
    canvas.send_text(r#"{"type":"ping"}"#).await;
    loop {
        let frame = canvas.next_json().await;
        if frame["type"] == "pong" {
            break;
        }
    }
    let metrics = app.metrics_text().await;
    let dropped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("canopy_ws_drag_frames_dropped_total "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        dropped >= 100.0,
        "over-rate drag frames were dropped:\n{metrics}"
    );
}

/// A viewer watches drags but cannot make them: drag frames move workspaces, which takes the
/// role PATCH takes (editor).
#[tokio::test]
async fn a_viewer_canvas_may_not_drag() {
    const ADMIN: &str = "drag-admin";
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default().var("ADMIN_TOKEN", ADMIN)).await;
    let node = app.create_workspace("Watched", None).await;
    let mut keys = Vec::new();
    for role in ["viewer", "editor"] {
        let issued: Value = app
            .client
            .post(app.url("/keys"))
            .bearer_auth(ADMIN)
            .json(&json!({ "name": role, "role": role }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(issued["key"].as_str().unwrap().to_string());
    }
    app.settle().await;
    let url = |key: &str| format!("ws://127.0.0.1:{}/ws?token={key}", app.port);
    let mut viewer = WsClient::connect(&url(&keys[0]), &[]).await;
    let mut editor = WsClient::connect(&url(&keys[1]), &[]).await;
    next_named(&mut viewer, "CONNECTED").await;
    next_named(&mut editor, "CONNECTED").await;
    viewer.send_text(&drag(&node, 1.0, 1.0)).await;
    let refused = loop {
        let frame = viewer.next_json().await;
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert!(refused["error"].as_str().unwrap().starts_with("drag:"));
    editor.send_text(&drag(&node, 2.0, 2.0)).await;
    let preview = preview_reaches(&mut viewer, &node, 2.0, 2.0).await;
    assert_eq!(preview["payload"]["actor"]["name"], "editor");
}
