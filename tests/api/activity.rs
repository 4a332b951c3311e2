//! Activity logging, notify, and retention.

use std::time::Duration;

use canopy::jobs::retention;
use canopy::store::activity::{self as activity_store, NewActivity};
use canopy::store::StoreError;
use chrono::Utc;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn log_and_list_activity_with_filters() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Agent", None).await;
    let peer = app.create_workspace("Peer", None).await;
    let path = format!("/workspaces/{id}/activity");

    let (status, body) = app
        .post(&path, json!({ "activity_type": "a2a_send", "method": "message/send", "summary": "hello", "source_id": id, "target_id": peer, "duration_ms": 12, "request_body": { "q": 1 } }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "logged");
    let (status, _) = app
        .post(
            &path,
            json!({ "activity_type": "agent_log", "summary": "from the canvas" }),
        )
        .await;
    assert_eq!(status, 200);

    let (status, rows) = app.get(&path).await;
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["activity_type"], "agent_log", "newest first");
    assert!(
        rows[0].get("request_body").is_none(),
        "bodies only when set"
    );
    assert_eq!(rows[1]["request_body"], json!({ "q": 1 }));
    assert_eq!(rows[1]["status"], "ok");

    assert_eq!(
        app.get(&format!("{path}?type=a2a_send"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get(&format!("{path}?source=agent"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get(&format!("{path}?source=canvas")).await.1[0]["summary"],
        "from the canvas"
    );
    assert_eq!(
        app.get(&format!("{path}?limit=1"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.get(&format!("{path}?source=robot")).await.0, 400);
    assert_eq!(
        app.get(&format!("{path}?type=nope")).await,
        (200, json!([])),
        "a type is a filter"
    );
    assert_eq!(app.get(&format!("{path}?type=no%20pe")).await.0, 400);

    // The event carries the new row's id.
    let events = app.live_events().await;
    let logged: Vec<_> = events.iter().filter(|e| e.1 == "ACTIVITY_LOGGED").collect();
    assert_eq!(logged.len(), 2);
    assert!(!app
        .structure_event_types()
        .await
        .contains(&"ACTIVITY_LOGGED".to_string()));
    let mut canvas = app.ws("?since=0").await;
    let frames = canvas.events(events.len()).await;
    let payload = &frames
        .iter()
        .find(|f| f["event"] == "ACTIVITY_LOGGED")
        .unwrap()["payload"];
    assert_eq!(payload["id"], rows[1]["id"]);
    assert_eq!(payload["activity_type"], "a2a_send");
}

#[tokio::test]
async fn activity_input_is_validated() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Agent", None).await;
    let path = format!("/workspaces/{id}/activity");
    let (status, body) = app.post(&path, json!({ "activity_type": "gossip" })).await;
    assert_eq!(status, 400);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("activity_type")
            && message.contains("a2a_send")
            && message.contains("memory_write")
    );
    let (status, _) = app
        .post(
            &path,
            json!({ "activity_type": "agent_log", "target_id": "nope" }),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = app
        .post(
            &path,
            json!({ "activity_type": "agent_log", "source_id": uuid::Uuid::new_v4() }),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .post(
            &format!("/workspaces/{}/activity", uuid::Uuid::new_v4()),
            json!({ "activity_type": "agent_log" }),
        )
        .await;
    assert_eq!(status, 404);
    assert!(app
        .live_events()
        .await
        .iter()
        .all(|e| e.1 != "ACTIVITY_LOGGED"));
}

#[tokio::test]
async fn notify_stores_the_message_and_emits_agent_message() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Writer", None).await;
    let path = format!("/workspaces/{id}/notify");
    let long = "é".repeat(300); // 600 bytes of two-byte characters
    let (status, body) = app
        .post(&path, json!({ "message": long, "attachments": [{ "uri": "file:///r.pdf", "name": "r.pdf", "mimeType": "application/pdf", "size": 10 }] }))
        .await;
    assert_eq!((status, body), (200, json!({ "status": "sent" })));

    let (_, rows) = app.get(&format!("/workspaces/{id}/activity")).await;
    let row = &rows[0];
    assert_eq!(row["activity_type"], "a2a_receive");
    assert_eq!(row["method"], "notify");
    let summary = row["summary"].as_str().unwrap();
    assert!(
        summary.len() <= 200 && summary.chars().all(|c| c == 'é'),
        "UTF-8 safe truncation"
    );
    assert_eq!(row["response_body"]["result"], long.as_str());
    assert_eq!(
        row["response_body"]["parts"][0],
        json!({ "kind": "file", "file": { "uri": "file:///r.pdf", "name": "r.pdf", "mimeType": "application/pdf", "size": 10 } })
    );

    let mut canvas = app.ws("?since=0").await;
    let frames = canvas.events(2).await;
    assert_eq!(frames[1]["event"], "AGENT_MESSAGE");
    assert_eq!(frames[1]["payload"]["name"], "Writer");
    assert_eq!(frames[1]["payload"]["attachments"][0]["name"], "r.pdf");

    for (body, needle) in [
        (json!({}), "message"),
        (json!({ "message": "  " }), "message"),
        (
            json!({ "message": "m", "attachments": [{ "uri": "u", "name": "n" }, { "name": "no-uri" }] }),
            "attachment[1]",
        ),
        (
            json!({ "message": "m", "attachments": [{ "uri": "u", "name": "n", "size": -1 }] }),
            "attachment[0]",
        ),
        (
            json!({ "message": "m", "attachments": ["x"] }),
            "attachment[0]",
        ),
    ] {
        let (status, answer) = app.post(&path, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(needle),
            "{body}: {answer}"
        );
    }
}

#[tokio::test]
async fn retention_deletes_only_old_rows_in_batches_on_the_lease_holder() {
    let db = TestDb::new();
    let options = TestOptions::default().var("ACTIVITY_RETENTION_DAYS", "7");
    let a = spawn_on(&db, options.clone()).await;
    let workspace: uuid::Uuid = a.create_workspace("Busy", None).await.parse().unwrap();
    // 2,500 rows ten days old (more than two batches) and 3 fresh ones.
    let store = db.store();
    store
        .run(move |c| {
            let old = Utc::now() - chrono::Duration::days(10);
            for i in 0..2503 {
                let created_at = if i < 2500 { old } else { Utc::now() };
                activity_store::insert(
                    c,
                    &NewActivity {
                        id: uuid::Uuid::new_v4(),
                        workspace_id: workspace,
                        activity_type: "agent_log".into(),
                        source_id: None,
                        target_id: None,
                        method: None,
                        summary: Some(format!("row {i}")),
                        request_body: None,
                        response_body: None,
                        metadata: None,
                        duration_ms: None,
                        status: "ok".into(),
                        error_detail: None,
                        created_at,
                    },
                    None,
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();

    let report = retention::run_once(
        &db.store(),
        Some(Duration::from_secs(7 * 86_400)),
        Duration::from_secs(900),
    )
    .await
    .unwrap();
    assert_eq!(report.activity_deleted, 2500);
    let (_, rows) = a
        .get(&format!("/workspaces/{workspace}/activity?limit=500"))
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 3, "fresh rows stay");
    assert_eq!(
        a.structure_event_types().await,
        vec!["WORKSPACE_PROVISIONING"],
        "structure_events untouched"
    );

    // Two instances: the retention lease is held by exactly one of them.
    let b = spawn_on(&db, options).await;
    let holder_seen = eventually(Duration::from_secs(5), || async {
        lease_holder(&db).await.is_some()
    })
    .await;
    assert!(holder_seen);
    let holder = lease_holder(&db).await.unwrap();
    let ids = [
        a.state.config.instance_id.clone(),
        b.state.config.instance_id.clone(),
    ];
    assert!(ids.contains(&holder), "{holder} is one of {ids:?}");
    let other = if holder == ids[0] { &ids[1] } else { &ids[0] };
    let lease = canopy::jobs::leases::Lease::new("retention", other, Duration::from_secs(60));
    assert_eq!(
        lease.acquire(&db.store()).await.unwrap(),
        None,
        "the other instance cannot take a live lease"
    );
}

async fn lease_holder(db: &TestDb) -> Option<String> {
    use canopy::store::schema::leader_leases;
    use diesel::prelude::*;
    db.store()
        .run(|c| {
            leader_leases::table
                .filter(leader_leases::name.eq("retention"))
                .select(leader_leases::holder)
                .first::<String>(c)
                .optional()
                .map_err(StoreError::from)
        })
        .await
        .unwrap()
}
