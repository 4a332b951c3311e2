//! Request ids (issue 13, item 6): every response carries `X-Request-Id`, a sane incoming one is
//! kept, and the id is in the request's log lines, which never contain the query string.

use std::time::Duration;

use crate::helpers::*;
use crate::process::CanopyProcess;

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("the response carries X-Request-Id")
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_sane_incoming_one_is_kept() {
    let (app, _db) = spawn_app().await;

    let first = app.client.get(app.url("/health")).send().await.unwrap();
    let second = app.client.get(app.url("/health")).send().await.unwrap();
    let (first, second) = (request_id(&first), request_id(&second));
    assert!(uuid::Uuid::parse_str(&first).is_ok(), "{first}");
    assert_ne!(first, second, "each request gets its own id");

    let kept = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "lb-7f3a.9:2/x_y")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&kept), "lb-7f3a.9:2/x_y");

    for odd in ["has space", "a\"b", &"x".repeat(65)] {
        let replaced = app
            .client
            .get(app.url("/health"))
            .header("X-Request-Id", odd)
            .send()
            .await
            .unwrap();
        let id = request_id(&replaced);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{odd:?} replaced: {id}");
    }

    // Refusals and errors too: a 404 from the router, a 400 from an extractor.
    let missing = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    request_id(&missing);
    let bad = app
        .client
        .get(app.url("/workspaces/not-a-uuid"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    request_id(&bad);
    app.stop().await;
}

#[tokio::test]
async fn a_canvas_on_an_allowed_origin_may_read_the_request_id() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("CORS_ORIGINS", "http://canvas.test"),
    )
    .await;
    let response = app
        .client
        .get(app.url("/workspaces"))
        .header("Origin", "http://canvas.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let exposed = response
        .headers()
        .get("access-control-expose-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase());
    assert!(
        exposed
            .as_deref()
            .is_some_and(|v| v.contains("x-request-id")),
        "{exposed:?}"
    );
    request_id(&response);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_preflight_and_a_rate_limited_request_carry_one_too() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default()
            .var("RATE_LIMIT_PER_ADDRESS", "1")
            .var("RATE_LIMIT_PER_ADDRESS_BURST", "1"),
    )
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/workspaces"))
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_client_error(), "{preflight:?}");
    request_id(&preflight);

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = app.client.get(app.url("/workspaces")).send().await.unwrap();
        statuses.push(response.status().as_u16());
        request_id(&response);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_names_the_request_id_and_never_the_query_string() {
    let db = TestDb::new();
    let process = CanopyProcess::start(&db, &[]);
    let client = reqwest::Client::new();
    let response = client
        .get(process.url("/health?token=sekrit-query-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    // A WebSocket upgrade carries its token in the query string (browsers cannot set headers).
    let url = format!("ws://127.0.0.1:{}/ws?token=sekrit-ws-token", process.port);
    let mut socket = WsClient::connect(&url, &[]).await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");

    let logged = eventually(Duration::from_secs(5), || {
        let lines = process.raw_log();
        let id = id.clone();
        async move {
            lines.iter().any(|line| {
                line.contains(&id) && line.contains("\"status\":200") && line.contains("/health")
            }) && lines.iter().any(|line| line.contains("\"path\":\"/ws\""))
        }
    })
    .await;
    let lines = process.raw_log();
    assert!(
        logged,
        "the request's line names its id, path and status:\n{}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|line| line.contains("sekrit")),
        "no query string in the log:\n{}",
        lines.join("\n")
    );
}
