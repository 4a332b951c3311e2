//! Versions: `ETag` on GET, `If-Match` on PATCH and DELETE (RFC 9110 §8.8.3, §13.1.1), and the
//! version every event about a workspace carries.

use reqwest::Method;
use serde_json::json;

use super::{header, send};
use crate::helpers::{spawn_app, spawn_on, TestDb};

#[tokio::test]
async fn get_returns_the_version_as_a_strong_etag_and_events_carry_it() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Versioned", None).await;
    let path = format!("/workspaces/{id}");
    let (status, headers, body) = send(&app, Method::GET, &path, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 1);
    assert_eq!(header(&headers, "etag"), Some("\"1\""));

    let mut canvas = app.ws("").await;
    app.settle().await;
    let (status, headers, answer) = send(
        &app,
        Method::PATCH,
        &path,
        &[],
        Some(json!({ "name": "Renamed", "x": 10, "y": 20 })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({ "status": "updated", "version": 2 }));
    assert_eq!(
        header(&headers, "etag"),
        Some("\"2\""),
        "chain the next If-Match"
    );
    // One PATCH is one change: both of its events carry the same new version.
    let frames = canvas.events(2).await;
    assert_eq!(frames[0]["event"], "WORKSPACE_UPDATED");
    assert_eq!(frames[0]["payload"]["version"], 2);
    assert_eq!(frames[1]["event"], "WORKSPACE_LAYOUT_CHANGED");
    assert_eq!(frames[1]["payload"]["version"], 2);
    let (_, headers, body) = send(&app, Method::GET, &path, &[], None).await;
    assert_eq!(body["version"], 2);
    assert_eq!(header(&headers, "etag"), Some("\"2\""));

    // A PATCH that changes nothing is no new version.
    let (status, _) = app.patch(&path, json!({ "name": "Renamed" })).await;
    assert_eq!(status, 200);
    let (_, body) = app.get(&path).await;
    assert_eq!(body["version"], 2);

    // Liveness changes are changes too: register (online) bumps it, and the event says so.
    let _token = crate::helpers::register(&app, &id).await;
    let online = canvas.next_event().await;
    assert_eq!(online["event"], "WORKSPACE_ONLINE");
    assert_eq!(online["payload"]["version"], 3);
    let (_, body) = app.get(&path).await;
    assert_eq!(body["version"], 3);
}

#[tokio::test]
async fn a_stale_if_match_is_412_with_the_current_state_and_changes_nothing() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Shared", None).await;
    let path = format!("/workspaces/{id}");
    // Someone else renames it first.
    let (status, _, _) = send(
        &app,
        Method::PATCH,
        &path,
        &[("If-Match", "\"1\"")],
        Some(json!({ "name": "Theirs" })),
    )
    .await;
    assert_eq!(status, 200);
    let events_before = app.live_events().await.len();

    let (status, headers, body) = send(
        &app,
        Method::PATCH,
        &path,
        &[("If-Match", "\"1\"")],
        Some(json!({ "name": "Mine" })),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(header(&headers, "etag"), Some("\"2\""));
    assert_eq!(body["version"], 2);
    assert_eq!(body["workspace"]["name"], "Theirs");
    assert_eq!(body["workspace"]["version"], 2);
    assert!(body["error"].as_str().unwrap().starts_with("If-Match"));

    let (status, _, body) = send(
        &app,
        Method::DELETE,
        &path,
        &[("If-Match", "\"1\", W/\"2\"")],
        None,
    )
    .await;
    assert_eq!(status, 412, "a weak tag never matches: {body}");
    assert_eq!(app.live_events().await.len(), events_before, "no event");
    let (_, body) = app.get(&path).await;
    assert_eq!(body["name"], "Theirs");
    assert_eq!(body["status"], "provisioning");

    // A list naming the current version, and `*`, hold.
    let (status, _, body) = send(
        &app,
        Method::PATCH,
        &path,
        &[("If-Match", "\"7\", \"2\"")],
        Some(json!({ "name": "Mine" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(&app, Method::DELETE, &path, &[("If-Match", "*")], None).await;
    assert_eq!(status, 200, "{body}");
    // Gone: the answer is what it would be without the precondition (RFC 9110 §13.2.1).
    let (status, _, _) = send(&app, Method::DELETE, &path, &[("If-Match", "*")], None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_malformed_if_match_is_400_naming_the_header() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Strict", None).await;
    let path = format!("/workspaces/{id}");
    for bad in ["3", "\"3", "\"3\" junk"] {
        let (status, _, body) = send(
            &app,
            Method::PATCH,
            &path,
            &[("If-Match", bad)],
            Some(json!({ "name": "X" })),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().starts_with("If-Match:"));
    }
    let (_, body) = app.get(&path).await;
    assert_eq!(body["name"], "Strict");
}

/// The compare and the write are one step: many writers holding the same version, spread over
/// two instances on one database, produce exactly one winner.
#[tokio::test]
async fn concurrent_conditional_writes_have_exactly_one_winner() {
    let db = TestDb::new();
    let a = spawn_on(&db, crate::helpers::rate_limits_off()).await;
    let b = spawn_on(&db, crate::helpers::rate_limits_off()).await;
    let id = a.create_workspace("Contended", None).await;
    let path = format!("/workspaces/{id}");
    for round in 1..=3_i64 {
        let etag = format!("\"{round}\"");
        let mut calls = Vec::new();
        for i in 0..8 {
            let app = if i % 2 == 0 { &a } else { &b };
            let (path, etag) = (path.clone(), etag.clone());
            calls.push(async move {
                send(
                    app,
                    Method::PATCH,
                    &path,
                    &[("If-Match", etag.as_str())],
                    Some(json!({ "name": format!("round {round} writer {i}") })),
                )
                .await
                .0
            });
        }
        let mut statuses = futures_util::future::join_all(calls).await;
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 412, 412, 412, 412, 412, 412, 412],
            "round {round}"
        );
        let (_, body) = b.get(&path).await;
        assert_eq!(body["version"], round + 1);
    }
    let updates = crate::helpers::count_events(&a, &id, "WORKSPACE_UPDATED").await;
    assert_eq!(updates, 3, "one event per winning write");
}
