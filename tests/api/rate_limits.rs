//! Rate limits (issue 11, item 14): per token, per client address (with trusted proxies), and
//! WebSocket upgrades in a bucket of their own; 429 with `Retry-After` and a JSON body, before
//! any work. Limits are tiny here (1 request per second refill) so a few requests exhaust them.

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

use crate::helpers::*;

/// Attempts made while waiting for a bucket to run dry (it holds a handful).
const MAX_ATTEMPTS: usize = 30;

struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse()
            .expect("Retry-After is whole seconds")
    });
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text:?}"));
    Answer {
        status,
        retry_after,
        body,
    }
}

fn assert_limited(answer: &Answer, limit: &str) {
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert_eq!(answer.body["error"], "rate limit exceeded");
    assert_eq!(answer.body["limit"], limit);
    let seconds = answer.retry_after.expect("a 429 carries Retry-After");
    assert!(seconds >= 1, "Retry-After {seconds}");
    assert_eq!(answer.body["retry_after"], seconds);
}

/// Sends `request()` until it is refused; returns the refusal and how many were let through.
async fn until_refused<F, Fut>(mut request: F) -> (Answer, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    for accepted in 0..MAX_ATTEMPTS {
        let answer = request().await;
        if answer.status == 429 {
            return (answer, accepted);
        }
        assert!(answer.status < 400, "{}: {}", answer.status, answer.body);
    }
    panic!("no 429 within {MAX_ATTEMPTS} requests");
}

async fn beat(app: &TestApp, id: &str, token: &str) -> Answer {
    let response = app
        .client
        .post(app.url("/registry/heartbeat"))
        .bearer_auth(token)
        .json(&json!({ "workspace_id": id, "error_rate": 0, "active_tasks": 1, "uptime_seconds": 5, "current_task": "" }))
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn health(app: &TestApp, forwarded_for: Option<&str>) -> Answer {
    let mut request = app.client.get(app.url("/health"));
    if let Some(value) = forwarded_for {
        request = request.header("X-Forwarded-For", value);
    }
    answer(request.send().await.unwrap()).await
}

#[tokio::test]
async fn one_agents_heartbeat_storm_does_not_starve_another() {
    let db = TestDb::new();
    let options = TestOptions::default()
        .var("RATE_LIMIT_PER_TOKEN", "1")
        .var("RATE_LIMIT_PER_TOKEN_BURST", "3")
        // Both agents call from 127.0.0.1: only the token buckets are under test here.
        .var("RATE_LIMIT_PER_ADDRESS", "0");
    let app = spawn_on(&db, options).await;
    let (loud, quiet) = (
        app.create_workspace("Loud", None).await,
        app.create_workspace("Quiet", None).await,
    );
    let loud_token = register(&app, &loud).await;
    let quiet_token = register(&app, &quiet).await;

    let (refused, accepted) = until_refused(|| beat(&app, &loud, &loud_token)).await;
    assert_limited(&refused, "token");
    assert!(accepted >= 3, "the burst of 3 was let through first");
    // The storm goes on; the other agent is unaffected.
    for _ in 0..3 {
        assert_eq!(beat(&app, &loud, &loud_token).await.status, 429);
        let other = beat(&app, &quiet, &quiet_token).await;
        assert_eq!(other.status, 200, "{}", other.body);
    }
}

#[tokio::test]
async fn the_address_limit_ignores_forwarded_for_from_an_untrusted_peer() {
    let db = TestDb::new();
    let options = TestOptions::default()
        .var("RATE_LIMIT_PER_ADDRESS", "1")
        .var("RATE_LIMIT_PER_ADDRESS_BURST", "3");
    let app = spawn_on(&db, options).await;
    // Each request claims another client; 127.0.0.1 is not a trusted proxy, so all are one.
    let mut n = 0;
    let (refused, accepted) = until_refused(|| {
        n += 1;
        let spoofed = format!("198.51.100.{n}");
        let app = &app;
        async move { health(app, Some(&spoofed)).await }
    })
    .await;
    assert_limited(&refused, "address");
    assert!(accepted >= 3);
    assert_eq!(health(&app, None).await.status, 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let db = TestDb::new();
    let options = TestOptions::default()
        .var("RATE_LIMIT_PER_ADDRESS", "1")
        .var("RATE_LIMIT_PER_ADDRESS_BURST", "3")
        .var("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8");
    let app = spawn_on(&db, options).await;

    let (refused, _) = until_refused(|| health(&app, Some("198.51.100.1"))).await;
    assert_limited(&refused, "address");
    // Another client behind the proxy (and behind a second, trusted hop) is served.
    assert_eq!(
        health(&app, Some("198.51.100.2, 10.1.2.3")).await.status,
        200
    );
    // The limited client cannot escape by writing its own X-Forwarded-For entry: the proxy
    // appends the real address, and the right-most untrusted one counts.
    assert_eq!(
        health(&app, Some("203.0.113.77, 198.51.100.1"))
            .await
            .status,
        429
    );
    // The proxy itself (no header) is a client of its own.
    assert_eq!(health(&app, None).await.status, 200);
}

#[tokio::test]
async fn a_websocket_reconnect_storm_does_not_use_the_api_budget() {
    let db = TestDb::new();
    let options = TestOptions::default()
        .var("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS", "1")
        .var("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS_BURST", "2")
        .var("RATE_LIMIT_PER_ADDRESS", "1")
        .var("RATE_LIMIT_PER_ADDRESS_BURST", "3");
    let app = spawn_on(&db, options).await;
    let url = format!("ws://127.0.0.1:{}/ws", app.port);

    let mut open = Vec::new();
    let refusal = loop {
        assert!(open.len() < MAX_ATTEMPTS, "no 429 for upgrades");
        match WsClient::try_connect(&url, &[]).await {
            Ok(socket) => open.push(socket),
            Err(tungstenite::Error::Http(response)) => break response,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    };
    assert!(open.len() >= 2, "the burst of 2 upgrades was let through");
    assert_eq!(refusal.status(), 429);
    let retry_after: u64 = refusal.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = serde_json::from_slice(refusal.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"], "rate limit exceeded");
    assert_eq!(body["limit"], "websocket_upgrades");

    // The same address's API budget (a burst of 3) is untouched by the upgrades.
    for _ in 0..3 {
        let (status, body) = app.get("/workspaces").await;
        assert_eq!(status, 200, "{body}");
    }
    // And the sockets that were let in are live.
    for socket in &mut open {
        assert_eq!(socket.next_json().await["event"], "CONNECTED");
    }
}

#[tokio::test]
async fn a_refused_request_changes_nothing() {
    let db = TestDb::new();
    let options = TestOptions::default()
        .var("RATE_LIMIT_PER_ADDRESS", "1")
        .var("RATE_LIMIT_PER_ADDRESS_BURST", "3");
    let app = spawn_on(&db, options).await;
    let id = app.create_workspace("Original", None).await;

    let mut n = 0;
    let mut names = Vec::new();
    let (refused, _) = until_refused(|| {
        n += 1;
        let name = format!("Renamed {n}x");
        names.push(name.clone());
        let app = &app;
        let path = format!("/workspaces/{id}");
        async move {
            let response = app
                .client
                .patch(app.url(&path))
                .json(&json!({ "name": name }))
                .send()
                .await
                .unwrap();
            answer(response).await
        }
    })
    .await;
    assert_limited(&refused, "address");
    let refused_name = names.last().unwrap().clone();
    let accepted_name = names[names.len() - 2].clone();

    // Read through the store: HTTP from this address is refused for now.
    let workspace: uuid::Uuid = id.parse().unwrap();
    let store = app.state.store.clone();
    let (name, payloads) = store
        .run(move |c| {
            let row = canopy::store::workspaces::find_row(c, workspace)?.unwrap();
            let events = canopy::store::events::live_events_between(c, 0, None, 10_000)?;
            Ok::<_, canopy::store::StoreError>((
                row.name,
                events
                    .into_iter()
                    .map(|e| e.payload.to_string())
                    .collect::<Vec<_>>(),
            ))
        })
        .await
        .unwrap();
    assert_eq!(name, accepted_name, "the last accepted rename stands");
    assert!(
        payloads.iter().all(|p| !p.contains(&refused_name)),
        "no event mentions the refused rename"
    );
}
