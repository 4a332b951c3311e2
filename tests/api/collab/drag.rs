//! Drag previews on the volatile lane, across two instances: DRAG_PREVIEWS (one frame per
//! tick with every drag of the tick) while a node is dragged, an `ended` entry when a drag
//! stops without a drop, nothing sequenced or stored.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    on_private_redis, redis_url, register, spawn_on, PrivateRedis, TestApp, TestDb, TestOptions,
    WsClient,
};

/// Two instances on one database and one Redis: the shared one of the PostgreSQL run (with a
/// key prefix of their own), or a private one beside SQLite.
async fn two_instances() -> (TestApp, TestApp, TestDb, Option<PrivateRedis>) {
    two_instances_with(TestOptions::default()).await
}

async fn two_instances_with(
    options: TestOptions,
) -> (TestApp, TestApp, TestDb, Option<PrivateRedis>) {
    let db = TestDb::new();
    let (options, private) = match redis_url() {
        Some(_) => (
            TestOptions {
                redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
                ..options
            },
            None,
        ),
        None => {
            let redis = PrivateRedis::start();
            (on_private_redis(&redis, options), Some(redis))
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

/// The next DRAG_PREVIEWS frame, checked for what every one must be: volatile (no seq), each
/// node at most once in `previews`.
async fn next_previews(canvas: &mut WsClient) -> Value {
    let frame = next_named(canvas, "DRAG_PREVIEWS").await;
    assert!(frame.get("seq").is_none(), "volatile: no seq: {frame}");
    let mut nodes: Vec<&str> = entries(&frame, "previews")
        .iter()
        .map(|p| p["workspace_id"].as_str().unwrap())
        .collect();
    let listed = nodes.len();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(nodes.len(), listed, "a node twice in one tick: {frame}");
    frame
}

/// A DRAG_PREVIEWS frame's `previews` or `ended` entries.
fn entries<'a>(frame: &'a Value, list: &str) -> &'a Vec<Value> {
    frame["payload"][list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} list: {frame}"))
}

/// The preview of `workspace` in a DRAG_PREVIEWS frame, if it has one.
fn preview_of<'a>(frame: &'a Value, workspace: &str) -> Option<&'a Value> {
    entries(frame, "previews")
        .iter()
        .find(|p| p["workspace_id"] == workspace)
}

/// Reads DRAG_PREVIEWS frames until one shows `workspace` at (x, y); returns that entry.
async fn preview_reaches(canvas: &mut WsClient, workspace: &str, x: f64, y: f64) -> Value {
    loop {
        let frame = next_previews(canvas).await;
        if let Some(preview) = preview_of(&frame, workspace) {
            if preview["x"] == x && preview["y"] == y {
                return preview.clone();
            }
        }
    }
}

/// Reads DRAG_PREVIEWS frames until one lists ended drags; returns their nodes.
async fn next_ended(canvas: &mut WsClient) -> Vec<String> {
    loop {
        let frame = next_previews(canvas).await;
        let ended = entries(&frame, "ended");
        if !ended.is_empty() {
            return ended
                .iter()
                .map(|e| e["workspace_id"].as_str().unwrap().to_string())
                .collect();
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
        let preview = preview_reaches(canvas, &node, 100.0, 5.5).await;
        assert_eq!(preview["workspace_id"], node.as_str());
        assert_eq!(preview["actor"]["id"], "local", "open mode's admin drags");
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
async fn a_drag_without_a_drop_ends_with_an_ended_entry_and_a_drop_needs_none() {
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
    assert_eq!(next_ended(&mut watcher).await, vec![closed.to_string()]);

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
    assert_eq!(next_ended(&mut watcher).await, vec![idle.to_string()]);
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
        // Beyond the canvas's bound for positions (±1e7, as a PATCH's x/y).
        json!({ "type": "drag", "workspace_id": node, "x": 1e8, "y": 1 }),
        json!({ "type": "drag", "workspace_id": node, "x": 1, "y": -1e300 }),
        // No such workspace: it would reach every canvas for nothing.
        json!({ "type": "drag", "workspace_id": uuid::Uuid::new_v4(), "x": 1, "y": 1 }),
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
    assert_eq!(preview["actor"]["name"], "editor");
}

/// A preview tick long enough that a burst of drag frames always lands in one tick: the first
/// preview after a quiet spell goes out at once, everything after it waits for the tick.
const LONG_TICK_MS: &str = "1000";

#[tokio::test]
async fn several_drags_in_one_tick_arrive_as_one_frame_with_the_latest_positions() {
    let options = TestOptions::default().var("DRAG_PREVIEW_TICK_MS", LONG_TICK_MS);
    let (a, b, _db, _redis) = two_instances_with(options).await;
    let here = a.create_workspace("Dragged on A", None).await;
    let there = a.create_workspace("Dragged on B", None).await;
    a.settle().await;
    b.settle().await;
    let mut watcher = a.ws("").await;
    let mut dragger_a = a.ws("").await;
    let mut dragger_b = b.ws("").await;
    for canvas in [&mut watcher, &mut dragger_a, &mut dragger_b] {
        next_named(canvas, "CONNECTED").await;
    }
    for step in 1..=5 {
        dragger_a
            .send_text(&drag(&here, f64::from(step), 1.0))
            .await;
        dragger_b
            .send_text(&drag(&there, f64::from(step), 2.0))
            .await;
    }
    // At most the first preview goes out alone; the rest of the burst is one frame with the
    // newest position of each node, from both instances.
    let mut frames = 0;
    let last = loop {
        let frame = next_previews(&mut watcher).await;
        frames += 1;
        let at = |ws: &str| preview_of(&frame, ws).map(|p| (p["x"].clone(), p["y"].clone()));
        if at(&here) == Some((json!(5), json!(1))) && at(&there) == Some((json!(5), json!(2))) {
            break frame;
        }
        assert!(frames < 2, "the burst took more than two frames: {frame}");
    };
    assert_eq!(entries(&last, "previews").len(), 2, "{last}");
    assert!(entries(&last, "ended").is_empty(), "{last}");
    // Each dragger gets the other's drag, never its own.
    for (dragger, own, other, y) in [
        (&mut dragger_a, &here, &there, 2.0),
        (&mut dragger_b, &there, &here, 1.0),
    ] {
        loop {
            let frame = next_previews(dragger).await;
            assert!(preview_of(&frame, own).is_none(), "its own drag: {frame}");
            if preview_of(&frame, other).is_some_and(|p| p["x"] == 5.0 && p["y"] == y) {
                break;
            }
        }
    }
    watcher.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn sequenced_events_pass_previews_waiting_for_their_tick_and_keep_their_order() {
    let options = TestOptions::default().var("DRAG_PREVIEW_TICK_MS", LONG_TICK_MS);
    let (a, b, _db, _redis) = two_instances_with(options).await;
    let dragged = a.create_workspace("Dragged", None).await;
    let edited = a.create_workspace("Edited", None).await;
    a.settle().await;
    b.settle().await;
    let mut watcher = b.ws("").await;
    let mut dragger = a.ws("").await;
    next_named(&mut dragger, "CONNECTED").await;
    let connected = next_named(&mut watcher, "CONNECTED").await;
    let mut last_seq = connected["payload"]["seq"].as_i64().unwrap();
    // The first preview goes out at once; the next one waits for the tick.
    dragger.send_text(&drag(&dragged, 1.0, 1.0)).await;
    preview_reaches(&mut watcher, &dragged, 1.0, 1.0).await;
    dragger.send_text(&drag(&dragged, 2.0, 2.0)).await;
    for x in [10, 20, 30] {
        let (status, _) = a
            .patch(&format!("/workspaces/{edited}"), json!({ "x": x, "y": 0 }))
            .await;
        assert_eq!(status, 200);
    }
    // The three layout events come first, in order, with no gap; then the waiting preview.
    for x in [10, 20, 30] {
        let frame = loop {
            let frame = watcher.next_json().await;
            // Who is here is not part of the order under test.
            if !frame["event"]
                .as_str()
                .unwrap_or("")
                .starts_with("PRESENCE_")
            {
                break frame;
            }
        };
        assert_eq!(frame["event"], "WORKSPACE_LAYOUT_CHANGED", "{frame}");
        assert_eq!(frame["workspace_id"], edited.as_str());
        assert_eq!(frame["payload"]["x"], x);
        assert_eq!(frame["seq"].as_i64(), Some(last_seq + 1), "{frame}");
        last_seq += 1;
    }
    let frame = next_previews(&mut watcher).await;
    assert_eq!(
        preview_of(&frame, &dragged).map(|p| (p["x"].clone(), p["y"].clone())),
        Some((json!(2), json!(2))),
        "{frame}"
    );
}
