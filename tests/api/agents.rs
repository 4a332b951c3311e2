//! Agent assignment: at most one active agent per workspace, enforced by the database.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn assign_replace_move_and_remove() {
    let (app, _db) = spawn_app().await;
    let a = app.create_workspace("A", None).await;
    let b = app.create_workspace("B", None).await;
    let agent_path = format!("/workspaces/{a}/agent");

    let (status, body) = app
        .post(&agent_path, json!({ "model": "claude-sonnet" }))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["model"], "claude-sonnet");
    let (status, _) = app.post(&agent_path, json!({ "model": "other" })).await;
    assert_eq!(status, 409);

    let (status, body) = app
        .patch(&agent_path, json!({ "model": "claude-opus" }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["old_model"], "claude-sonnet");

    let (status, body) = app
        .post(
            &format!("{agent_path}/move"),
            json!({ "target_workspace_id": b }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "claude-opus");
    let (status, _) = app.delete(&agent_path).await;
    assert_eq!(status, 404, "the agent left A");
    let (status, body) = app.delete(&format!("/workspaces/{b}/agent")).await;
    assert_eq!((status, body["model"].clone()), (200, json!("claude-opus")));

    let kinds = app.structure_event_types().await;
    assert_eq!(
        kinds[2..],
        [
            "AGENT_ASSIGNED",
            "AGENT_REPLACED",
            "AGENT_MOVED",
            "AGENT_MOVED",
            "AGENT_REMOVED"
        ]
        .map(String::from)
    );
    let (_, log_b) = app.get(&format!("/events/{b}")).await;
    assert_eq!(log_b[1]["payload"]["source_workspace_id"], a.as_str());

    assert_eq!(
        app.post(&agent_path, json!({})).await.0,
        400,
        "model is required"
    );
    assert_eq!(
        app.post(
            &format!("/workspaces/{}/agent", uuid::Uuid::new_v4()),
            json!({ "model": "m" })
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.post(
            &format!("{agent_path}/move"),
            json!({ "target_workspace_id": "x" })
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn concurrent_assignments_have_exactly_one_winner() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Contested", None).await;
    let path = format!("/workspaces/{id}/agent");
    let attempts = (0..20).map(|i| {
        let (client, url) = (app.client.clone(), app.url(&path));
        async move {
            let response = client
                .post(url)
                .json(&json!({ "model": format!("model-{i}") }))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let assigned = app
        .structure_event_types()
        .await
        .into_iter()
        .filter(|k| k == "AGENT_ASSIGNED")
        .count();
    assert_eq!(assigned, 1);
}
