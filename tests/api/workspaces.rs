//! The canvas REST API: workspaces, layout, hierarchy, viewport, the event log.

use canopy::commands::workspaces::{self as commands, WorkspacePatch};
use canopy::error::AppError;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn create_then_list_and_get_with_layout_inlined() {
    let (app, _db) = spawn_app().await;
    let (status, body) = app
        .post("/workspaces", json!({ "name": "Research", "role": "Science", "tier": 2, "runtime": "langgraph", "canvas": { "x": 100, "y": 250.5 } }))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "provisioning");
    let id = body["id"].as_str().unwrap().to_string();
    let child = app.create_workspace("Lab", Some(&id)).await;

    let (status, list) = app.get("/workspaces").await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], id.as_str(), "oldest first");
    let ws = &list[0];
    assert_eq!(ws["name"], "Research");
    assert_eq!(ws["role"], "Science");
    assert_eq!(ws["tier"], 2);
    assert_eq!(ws["runtime"], "langgraph");
    assert_eq!(ws["url"], "");
    assert_eq!(ws["current_task"], "");
    assert_eq!(ws["last_sample_error"], "");
    assert_eq!(ws["collapsed"], false);
    // Whole coordinates serialize without a fraction, as the reference does.
    let text = serde_json::to_string(ws).unwrap();
    assert!(
        text.contains(r#""x":100,"#) && text.contains(r#""y":250.5"#),
        "{text}"
    );
    assert!(ws["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(list[1]["parent_id"], id.as_str());
    // Created without `canvas`, the child is placed under its parent's head: same x, one head
    // height and a 28 px gap lower (README "Placement and Arrange").
    assert_eq!((&list[1]["x"], &list[1]["y"]), (&json!(100), &json!(370.5)));

    let (status, got) = app.get(&format!("/workspaces/{child}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["name"], "Lab");
    let (status, body) = app
        .get(&format!("/workspaces/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(
        (status, body),
        (404, json!({ "error": "workspace not found" }))
    );

    let events = app.live_events().await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(events.iter().all(|e| e.1 == "WORKSPACE_PROVISIONING"));
}

#[tokio::test]
async fn create_validates_every_field() {
    let (app, _db) = spawn_app().await;
    let cases = [
        (json!({}), "name: is required"),
        (
            json!({ "name": "a".repeat(256) }),
            "name: must be at most 255 bytes",
        ),
        (
            json!({ "name": "two\nlines" }),
            "name: must not contain a newline",
        ),
        (
            json!({ "name": "two\u{2028}lines" }),
            "name: must not contain a newline",
        ),
        (
            json!({ "name": "ok", "role": "next\u{85}line" }),
            "role: must not contain a newline",
        ),
        (json!({ "name": "x{y}" }), "name: must not contain '{'"),
        (
            json!({ "name": "ok", "role": "a|b" }),
            "role: must not contain '|'",
        ),
        (
            json!({ "name": "ok", "tier": 9 }),
            "tier: must be an integer from 1 to 4",
        ),
        (
            json!({ "name": "ok", "model": "m".repeat(101) }),
            "model: must be at most 100 bytes",
        ),
        (
            json!({ "name": "ok", "parent_id": "nope" }),
            "parent_id: must be a workspace UUID",
        ),
        (
            json!({ "name": "ok", "parent_id": uuid::Uuid::new_v4() }),
            "parent_id: parent workspace not found",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = app.post("/workspaces", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"], message, "{body}");
    }
    assert!(
        app.live_events().await.is_empty(),
        "a refused create emits nothing"
    );
}

#[tokio::test]
async fn patch_emits_one_event_per_kind_of_change() {
    let (app, _db) = spawn_app().await;
    let a = app.create_workspace("A", None).await;
    let b = app.create_workspace("B", None).await;
    let path = format!("/workspaces/{b}");

    let (status, body) = app.patch(&path, json!({ "x": 10, "y": 20.25 })).await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "updated", "version": 2 }))
    );
    let (status, _) = app
        .patch(
            &path,
            json!({ "name": "B2", "tier": 3, "role": "Ops", "parent_id": a, "collapsed": true }),
        )
        .await;
    assert_eq!(status, 200);
    // Same parent again: no WORKSPACE_MOVED.
    app.patch(&path, json!({ "parent_id": a })).await;

    let events = app.live_events().await;
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_LAYOUT_CHANGED",
            "WORKSPACE_UPDATED",
            "WORKSPACE_MOVED",
            "WORKSPACE_LAYOUT_CHANGED",
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>(),
        "consecutive seqs"
    );
    // Only structural kinds are in the permanent log.
    assert_eq!(
        app.structure_event_types().await,
        vec![
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_UPDATED",
            "WORKSPACE_MOVED"
        ]
    );
    let (_, log) = app.get(&format!("/events/{b}")).await;
    let updated = &log[1];
    assert_eq!(
        updated["payload"],
        json!({ "name": "B2", "role": "Ops", "version": 3 }),
        "only changed fields, and the version after the change"
    );
    assert_eq!(
        log[0]["payload"],
        json!({ "old_parent_id": null, "new_parent_id": a, "version": 3 })
    );

    // Reparented without x+y, B is placed under A's head (A is at the origin), collapsed as
    // the same PATCH asked, and that is one WORKSPACE_LAYOUT_CHANGED (README "Placement and
    // Arrange").
    let (_, ws) = app.get(&path).await;
    assert_eq!(
        (ws["x"].clone(), ws["y"].clone(), ws["collapsed"].clone()),
        (json!(0), json!(120), json!(true))
    );
    assert_eq!(
        events[5].2.as_deref(),
        Some(b.as_str()),
        "the placement is announced for B"
    );
    assert_eq!(ws["parent_id"], a.as_str());

    // parent_id null moves to the root.
    app.patch(&path, json!({ "parent_id": null })).await;
    let (_, ws) = app.get(&path).await;
    assert!(ws["parent_id"].is_null());
}

#[tokio::test]
async fn patch_is_all_or_nothing() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Stable", None).await;
    let path = format!("/workspaces/{id}");
    let before = app.live_events().await.len();

    for (body, field) in [
        (json!({ "name": "bad|name", "x": 5, "y": 5 }), "name"),
        (json!({ "x": 5 }), "x"),
        (json!({ "x": 1, "y": 2, "tier": 0 }), "tier"),
        (json!({ "x": 1, "y": "2" }), "y"),
        (
            json!({ "parent_id": "not-a-uuid", "name": "Renamed" }),
            "parent_id",
        ),
    ] {
        let (status, answer) = app.patch(&path, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(field),
            "{body}: {answer}"
        );
    }
    let (_, ws) = app.get(&path).await;
    assert_eq!(ws["name"], "Stable");
    assert_eq!(ws["x"], 0);
    assert_eq!(
        app.live_events().await.len(),
        before,
        "no events for refused patches"
    );

    let (status, _) = app
        .patch(
            &format!("/workspaces/{}", uuid::Uuid::new_v4()),
            json!({ "x": 1, "y": 1 }),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_failure_after_the_state_change_leaves_neither_change_nor_event() {
    let (app, db) = spawn_app().await;
    let id: uuid::Uuid = app
        .create_workspace("Original", None)
        .await
        .parse()
        .unwrap();
    let before = app.live_events().await.len();
    let result = db
        .store()
        .transact(move |tx| {
            let patch = WorkspacePatch {
                name: Some(canopy::domain::validation::WorkspaceName::parse("Changed").unwrap()),
                position: Some((40.0, 50.0)),
                ..Default::default()
            };
            commands::patch(tx, id, patch, None)?;
            assert_eq!(
                tx.appended().len(),
                2,
                "the change and its events happened inside the transaction"
            );
            Err::<(), _>(AppError::Internal(anyhow::anyhow!(
                "injected failure after the change"
            )))
        })
        .await;
    assert!(result.is_err());
    let (_, ws) = app.get(&format!("/workspaces/{id}")).await;
    assert_eq!(ws["name"], "Original");
    assert_eq!(ws["x"], 0);
    assert_eq!(app.live_events().await.len(), before);
    assert_eq!(
        app.structure_event_types().await,
        vec!["WORKSPACE_PROVISIONING"]
    );
}

#[tokio::test]
async fn reparenting_refuses_cycles_on_deep_chains() {
    let (app, _db) = spawn_app().await;
    let mut chain = vec![app.create_workspace("level-0", None).await];
    for i in 1..30 {
        let parent = chain.last().unwrap().clone();
        chain.push(
            app.create_workspace(&format!("level-{i}"), Some(&parent))
                .await,
        );
    }
    let root = &chain[0];
    let (status, body) = app
        .patch(
            &format!("/workspaces/{root}"),
            json!({ "parent_id": chain[29] }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("descendants"));
    let (status, _) = app
        .patch(&format!("/workspaces/{root}"), json!({ "parent_id": root }))
        .await;
    assert_eq!(status, 409, "itself");
    let (status, _) = app
        .patch(
            &format!("/workspaces/{}", chain[10]),
            json!({ "parent_id": chain[29] }),
        )
        .await;
    assert_eq!(status, 409);
    // Moving a deep node up is fine.
    let (status, _) = app
        .patch(
            &format!("/workspaces/{}", chain[29]),
            json!({ "parent_id": root }),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn delete_asks_for_confirmation_then_cascades() {
    let (app, _db) = spawn_app().await;
    let root = app.create_workspace("Root", None).await;
    let team = app.create_workspace("Team", Some(&root)).await;
    let member = app.create_workspace("Member", Some(&team)).await;
    let other = app.create_workspace("Other", None).await;
    app.patch(&format!("/workspaces/{member}"), json!({ "x": 3, "y": 4 }))
        .await;

    let (status, body) = app.delete(&format!("/workspaces/{root}")).await;
    assert_eq!(status, 409);
    assert_eq!(body["status"], "confirmation_required");
    assert_eq!(body["children_count"], 1);
    assert_eq!(body["children"][0]["id"], team.as_str());

    let (status, body) = app
        .delete(&format!("/workspaces/{root}?confirm=true"))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "removed", "cascade_deleted": 2 }))
    );

    let (_, list) = app.get("/workspaces").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![other.as_str()]);
    let removed: Vec<_> = app
        .live_events()
        .await
        .into_iter()
        .filter(|e| e.1 == "WORKSPACE_REMOVED")
        .collect();
    assert_eq!(removed.len(), 3);
    assert_eq!(
        removed[2].2.as_deref(),
        Some(root.as_str()),
        "the root's event comes last"
    );
    let (_, log) = app.get(&format!("/events/{root}")).await;
    assert_eq!(
        log[0]["payload"],
        json!({ "cascade_deleted": 2, "version": 2 })
    );

    // Gone for good: 410 with its last event; deleting again is 404.
    let (status, body) = app.get(&format!("/workspaces/{member}")).await;
    assert_eq!(status, 410);
    assert_eq!(body["status"], "removed");
    assert_eq!(body["last_event"]["event_type"], "WORKSPACE_REMOVED");
    assert_eq!(app.delete(&format!("/workspaces/{member}")).await.0, 404);
    assert_eq!(
        app.delete(&format!("/workspaces/{}", uuid::Uuid::new_v4()))
            .await
            .0,
        404
    );
    assert_eq!(app.delete("/workspaces/xyz").await.0, 400);
}

#[tokio::test]
async fn pause_and_resume_cascade() {
    let (app, _db) = spawn_app().await;
    let root = app.create_workspace("Root", None).await;
    let child = app.create_workspace("Child", Some(&root)).await;
    let (status, body) = app
        .post(&format!("/workspaces/{root}/pause"), json!({}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "paused", "paused_count": 2 }))
    );
    assert_eq!(
        app.get(&format!("/workspaces/{child}")).await.1["status"],
        "paused"
    );
    let (status, body) = app
        .post(&format!("/workspaces/{root}/pause"), json!({}))
        .await;
    assert_eq!(
        (status, body["paused_count"].clone()),
        (200, json!(0)),
        "pausing twice changes nothing"
    );
    let (status, body) = app
        .post(&format!("/workspaces/{root}/resume"), json!({}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "provisioning", "resumed_count": 2 }))
    );
    assert_eq!(
        app.get(&format!("/workspaces/{child}")).await.1["status"],
        "provisioning"
    );
    let kinds: Vec<String> = app.live_events().await.into_iter().map(|e| e.1).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "WORKSPACE_PAUSED").count(), 2);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "WORKSPACE_PROVISIONING")
            .count(),
        4
    );
    assert_eq!(
        app.post(
            &format!("/workspaces/{}/pause", uuid::Uuid::new_v4()),
            json!({})
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn viewport_round_trips_and_validates_zoom_and_offset() {
    let (app, _db) = spawn_app().await;
    assert_eq!(
        app.get("/canvas/viewport").await,
        (200, json!({ "x": 0, "y": 0, "zoom": 1 }))
    );
    assert_eq!(
        app.put(
            "/canvas/viewport",
            json!({ "x": -120.5, "y": 40, "zoom": 1.5 })
        )
        .await,
        (200, json!({ "status": "saved" }))
    );
    assert_eq!(
        app.get("/canvas/viewport").await,
        (200, json!({ "x": -120.5, "y": 40, "zoom": 1.5 }))
    );
    for zoom in [json!(0), json!(-1), json!(10.5), json!("big")] {
        let (status, body) = app
            .put("/canvas/viewport", json!({ "x": 0, "y": 0, "zoom": zoom }))
            .await;
        assert_eq!(status, 400, "{zoom}");
        assert!(
            body["error"].as_str().unwrap().starts_with("zoom"),
            "{body}"
        );
    }
    // The pan offset: the farthest card at the largest zoom, and no farther.
    for (field, body) in [
        ("x", json!({ "x": 1.5e8, "y": 0, "zoom": 1 })),
        ("y", json!({ "x": 0, "y": -1e300, "zoom": 1 })),
        ("x", json!({ "x": "far", "y": 0, "zoom": 1 })),
    ] {
        let (status, answer) = app.put("/canvas/viewport", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(field),
            "{answer}"
        );
    }
    assert_eq!(app.get("/canvas/viewport").await.1["zoom"], 1.5);
    let edge = json!({ "x": 100_000_000, "y": -100_000_000, "zoom": 10 });
    assert_eq!(app.put("/canvas/viewport", edge.clone()).await.0, 200);
    assert_eq!(app.get("/canvas/viewport").await.1, edge);
}

#[tokio::test]
async fn events_page_newest_first_with_before_seq() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("W0", None).await;
    for i in 1..=5 {
        app.patch(
            &format!("/workspaces/{id}"),
            json!({ "name": format!("W{i}") }),
        )
        .await;
    }
    let (status, page) = app.get("/events?limit=2").await;
    assert_eq!(status, 200);
    let seqs: Vec<i64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![6, 5]);
    for key in [
        "id",
        "seq",
        "event_type",
        "workspace_id",
        "payload",
        "created_at",
    ] {
        assert!(page[0].get(key).is_some(), "{key}");
    }
    let (_, next) = app.get("/events?limit=3&before_seq=5").await;
    let seqs: Vec<i64> = next
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![4, 3, 2]);
    assert_eq!(app.get("/events?limit=1001").await.0, 400);
    let (_, mine) = app.get(&format!("/events/{id}")).await;
    assert_eq!(mine.as_array().unwrap().len(), 6);
    let (status, none) = app.get(&format!("/events/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(
        (status, none),
        (404, json!({ "error": "workspace not found" })),
        "a workspace that never existed has no history"
    );
}

#[tokio::test]
async fn concurrent_commands_commit_independently_even_when_batched() {
    // Concurrent commands share transactions (group commit); a refused one must not take the
    // others down with it, nor leave anything behind.
    let (app, _db) = spawn_app().await;
    let parent = app.create_workspace("Parent", None).await;
    let child = app.create_workspace("Child", Some(&parent)).await;
    let before = app.live_events().await.len();
    let requests = (0..30).map(|i| {
        let app = &app;
        let (parent, child) = (parent.clone(), child.clone());
        async move {
            if i % 3 == 0 {
                // Parent under its own child: a cycle, refused with 409.
                app.patch(
                    &format!("/workspaces/{parent}"),
                    json!({ "parent_id": child }),
                )
                .await
                .0
            } else {
                app.patch(&format!("/workspaces/{child}"), json!({ "x": i, "y": i }))
                    .await
                    .0
            }
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        20,
        "{statuses:?}"
    );
    let events = app.live_events().await;
    let new: Vec<_> = events[before..].iter().collect();
    assert_eq!(
        new.len(),
        20,
        "one event per accepted drag, none for refusals"
    );
    assert!(new.iter().all(|e| e.1 == "WORKSPACE_LAYOUT_CHANGED"));
    let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "consecutive seqs"
    );
    assert!(app.get(&format!("/workspaces/{parent}")).await.1["parent_id"].is_null());
}
