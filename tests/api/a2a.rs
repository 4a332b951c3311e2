//! The A2A proxy (issue 12, item 6) against real small A2A agents: HTTP servers inside the test
//! speaking JSON-RPC on loopback port 0 — a good one, a slow one, a dead one, a redirecting one
//! and some that misbehave.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::helpers::*;

/// A JSON-RPC agent on loopback. Paths: `/echo` answers `message/send` with the text it got;
/// `/slow` answers after 3 s; `/redirect` answers 307 to `/echo`; `/error` is HTTP 500;
/// `/rpc-error` is a JSON-RPC error; `/text` is not JSON; `/big` is 64 KiB of JSON.
struct Agent {
    port: u16,
    /// Requests that reached `/echo`.
    echoed: Arc<AtomicUsize>,
    /// The last envelope `/echo` received.
    last: Arc<std::sync::Mutex<Option<Value>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Agent {
    async fn start() -> Agent {
        let echoed = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(std::sync::Mutex::new(None));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (e, l) = (Arc::clone(&echoed), Arc::clone(&last));
        let server = HttpServer::new(move || {
            let (e, l) = (Arc::clone(&e), Arc::clone(&l));
            App::new()
                .route(
                    "/echo",
                    web::post().to(move |body: web::Json<Value>| {
                        let (e, l) = (Arc::clone(&e), Arc::clone(&l));
                        async move {
                            e.fetch_add(1, Ordering::SeqCst);
                            let request = body.into_inner();
                            *l.lock().unwrap() = Some(request.clone());
                            let text = request["params"]["message"]["parts"][0]["text"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string();
                            HttpResponse::Ok().json(json!({
                                "jsonrpc": "2.0",
                                "id": request["id"],
                                "result": { "kind": "message", "role": "agent", "messageId": "m-1",
                                            "parts": [{ "kind": "text", "text": format!("echo: {text}") }] }
                            }))
                        }
                    }),
                )
                .route(
                    "/slow",
                    web::post().to(|| async {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        HttpResponse::Ok().json(json!({ "jsonrpc": "2.0", "id": 1, "result": {} }))
                    }),
                )
                .route(
                    "/redirect",
                    web::post().to(|req: HttpRequest| async move {
                        let to = format!("http://{}/echo", req.connection_info().host());
                        HttpResponse::TemporaryRedirect()
                            .insert_header(("Location", to))
                            .finish()
                    }),
                )
                .route(
                    "/error",
                    web::post().to(|| async {
                        HttpResponse::InternalServerError().json(json!({ "error": "boom" }))
                    }),
                )
                .route(
                    "/rpc-error",
                    web::post().to(|| async {
                        HttpResponse::Ok().json(json!({ "jsonrpc": "2.0", "id": 1,
                            "error": { "code": -32601, "message": "Method not found" } }))
                    }),
                )
                .route(
                    "/nul",
                    web::post().to(|| async {
                        HttpResponse::Ok().content_type("application/json").body(
                            r#"{"jsonrpc":"2.0","id":1,"result":{"parts":[{"text":"a\u0000b"}]}}"#,
                        )
                    }),
                )
                .route(
                    "/text",
                    web::post().to(|| async { HttpResponse::Ok().body("plain words") }),
                )
                .route(
                    "/big",
                    web::post().to(|| async {
                        HttpResponse::Ok()
                            .json(json!({ "jsonrpc": "2.0", "id": 1, "result": "x".repeat(64 * 1024) }))
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Agent {
            port,
            echoed,
            last,
            handle,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// A loopback URL nothing listens on.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

/// Creates a workspace, registers it at `url`; returns (id, token).
async fn agent_workspace(
    app: &TestApp,
    name: &str,
    parent: Option<&str>,
    url: &str,
) -> (String, String) {
    let id = app.create_workspace(name, parent).await;
    let (status, body) = app
        .post(
            "/registry/register",
            json!({ "id": id, "url": url, "agent_card": { "name": name } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (id, body["auth_token"].as_str().unwrap().to_string())
}

/// What the reference canvas's chat posts.
fn chat(text: &str) -> Value {
    json!({ "method": "message/send", "params": {
        "message": { "role": "user", "messageId": "u-1", "parts": [{ "kind": "text", "text": text }] },
        "metadata": { "history": [] } } })
}

async fn proxy(app: &TestApp, target: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url(&format!("/workspaces/{target}/a2a")))
        .json(&body);
    if let Some(token) = &app.admin_token {
        request = request.bearer_auth(token);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer: {text:?}")),
    )
}

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
async fn the_canvas_chats_with_an_agent_and_the_conversation_is_recorded() {
    let agent = Agent::start().await;
    let (app, _db) = spawn_app().await;
    let (id, _) = agent_workspace(&app, "Echo", None, &agent.url("/echo")).await;
    app.settle().await;
    let mut canvas = app.ws("").await;
    canvas.next_json().await;

    let (status, answer) = proxy(&app, &id, chat("hello"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["parts"][0]["text"], "echo: hello");
    // Wrapped in a JSON-RPC 2.0 envelope with an id; the message kept its messageId.
    let sent = agent.last.lock().unwrap().clone().unwrap();
    assert_eq!(sent["jsonrpc"], "2.0");
    assert!(sent["id"].is_string());
    assert_eq!(sent["method"], "message/send");
    assert_eq!(sent["params"]["message"]["messageId"], "u-1");
    assert_eq!(answer["id"], sent["id"]);

    // Live: the canvas sees the target's a2a_receive.
    let logged = next_of(&mut canvas, "ACTIVITY_LOGGED").await;
    assert_eq!(logged["workspace_id"], id.as_str());
    assert_eq!(logged["payload"]["activity_type"], "a2a_receive");
    assert_eq!(logged["payload"]["method"], "message/send");
    assert_eq!(logged["payload"]["status"], "ok");
    assert_eq!(logged["payload"]["source_id"], Value::Null);
    assert!(logged["payload"]["duration_ms"].is_number());

    // After a reload: the chat history loader finds the user's message and the reply.
    let (_, rows) = app
        .get(&format!(
            "/workspaces/{id}/activity?type=a2a_receive&source=canvas&limit=50"
        ))
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["request_body"]["params"]["message"]["parts"][0]["text"],
        "hello"
    );
    assert_eq!(
        rows[0]["response_body"]["result"]["parts"][0]["text"],
        "echo: hello"
    );
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(rows[0]["target_id"], id.as_str());
    assert_eq!(rows[0]["summary"], "message/send → Echo");
    assert_eq!(agent.echoed.load(Ordering::SeqCst), 1);

    // A full envelope goes as it is.
    let (status, answer) = proxy(
        &app,
        &id,
        json!({ "jsonrpc": "2.0", "id": 42, "method": "message/send", "params": { "message": { "role": "user", "messageId": "x", "parts": [{ "kind": "text", "text": "again" }] } } }),
        &[],
    )
    .await;
    assert_eq!((status, answer["id"].clone()), (200, json!(42)));
}

#[tokio::test]
async fn agents_talk_through_the_proxy_within_the_hierarchy() {
    let agent = Agent::start().await;
    let (app, _db) = spawn_app().await;
    let lead = app.create_workspace("Lead", None).await;
    let (a, a_token) = agent_workspace(&app, "A", Some(&lead), &agent.url("/echo")).await;
    let (b, b_token) = agent_workspace(&app, "B", Some(&lead), &agent.url("/echo")).await;
    let (stranger, _) = agent_workspace(&app, "Stranger", None, &agent.url("/echo")).await;

    // Siblings may talk.
    let response = app
        .client
        .post(app.url(&format!("/workspaces/{b}/a2a")))
        .header("X-Workspace-ID", &a)
        .bearer_auth(&a_token)
        .json(&chat("hi B"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (_, sent) = app
        .get(&format!("/workspaces/{a}/activity?type=a2a_send"))
        .await;
    assert_eq!(sent.as_array().unwrap().len(), 1);
    assert_eq!(sent[0]["source_id"], a.as_str());
    assert_eq!(sent[0]["target_id"], b.as_str());
    let (_, received) = app
        .get(&format!(
            "/workspaces/{b}/activity?type=a2a_receive&source=agent"
        ))
        .await;
    assert_eq!(received.as_array().unwrap().len(), 1);
    assert_eq!(received[0]["source_id"], a.as_str());
    assert_eq!(
        received[0]["response_body"]["result"]["parts"][0]["text"],
        "echo: hi B"
    );
    let (_, canvas_rows) = app
        .get(&format!("/workspaces/{b}/activity?source=canvas"))
        .await;
    assert_eq!(canvas_rows, json!([]), "agent traffic is not chat history");

    let call = |target: String, token: Option<String>, caller: String| {
        let app = &app;
        async move {
            let mut request = app
                .client
                .post(app.url(&format!("/workspaces/{target}/a2a")))
                .header("X-Workspace-ID", caller)
                .json(&chat("x"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Outside the hierarchy: 403.
    let (status, body) = call(stranger.clone(), Some(a_token.clone()), a.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("hierarchy"));
    // The caller must prove it is the caller.
    assert_eq!(call(b.clone(), None, a.clone()).await.0, 401);
    assert_eq!(
        call(b.clone(), Some(b_token.clone()), a.clone()).await.0,
        401
    );
    assert_eq!(
        call(b.clone(), Some(a_token.clone()), "nope".into())
            .await
            .0,
        400
    );
    // Nothing refused reached the agent or the log.
    assert_eq!(agent.echoed.load(Ordering::SeqCst), 1);
    let (_, stranger_rows) = app.get(&format!("/workspaces/{stranger}/activity")).await;
    assert_eq!(stranger_rows, json!([]));
}

#[tokio::test]
async fn failures_are_clear_json_with_the_right_status() {
    let agent = Agent::start().await;
    let (app, _db) = spawn_app().await;

    // 404 unknown, 400 not a UUID.
    let (status, body) = proxy(&app, &uuid::Uuid::new_v4().to_string(), chat("x"), &[]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (404, json!("workspace not found"))
    );
    assert_eq!(proxy(&app, "nope", chat("x"), &[]).await.0, 400);

    // 503: never registered (no URL, provisioning), paused.
    let fresh = app.create_workspace("Fresh", None).await;
    let (status, body) = proxy(&app, &fresh, chat("x"), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "provisioning");
    let (paused, _) = agent_workspace(&app, "Paused", None, &agent.url("/echo")).await;
    app.post(&format!("/workspaces/{paused}/pause"), json!({}))
        .await;
    let (status, body) = proxy(&app, &paused, chat("x"), &[]).await;
    assert_eq!((status, body["status"].clone()), (503, json!("paused")));

    // 410 removed.
    let (gone, _) = agent_workspace(&app, "Gone", None, &agent.url("/echo")).await;
    app.delete(&format!("/workspaces/{gone}")).await;
    assert_eq!(proxy(&app, &gone, chat("x"), &[]).await.0, 410);

    // 400: not JSON-RPC; a bad X-Timeout.
    let (echo, _) = agent_workspace(&app, "Echo", None, &agent.url("/echo")).await;
    for bad in [
        json!([1]),
        json!({ "method": 3 }),
        json!({ "jsonrpc": "1.0", "method": "m" }),
    ] {
        let (status, body) = proxy(&app, &echo, bad.clone(), &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("request"),
            "{body}"
        );
    }
    assert_eq!(
        proxy(&app, &echo, chat("x"), &[("X-Timeout", "soon")])
            .await
            .0,
        400
    );
    assert_eq!(
        agent.echoed.load(Ordering::SeqCst),
        0,
        "nothing refused was sent"
    );

    // 502: a dead agent, an HTTP error, a body that is not JSON.
    let (dead, _) = agent_workspace(&app, "Dead", None, &dead_url()).await;
    let (status, body) = proxy(&app, &dead, chat("x"), &[]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (502, json!("failed to reach workspace agent"))
    );
    let (broken, _) = agent_workspace(&app, "Broken", None, &agent.url("/error")).await;
    let (status, body) = proxy(&app, &broken, chat("x"), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["agent_status"], 500);
    assert_eq!(body["agent_error"], "boom");
    let (texty, _) = agent_workspace(&app, "Texty", None, &agent.url("/text")).await;
    assert_eq!(proxy(&app, &texty, chat("x"), &[]).await.0, 502);

    // A JSON-RPC error is a valid answer: passed on, recorded as an error.
    let (rpc, _) = agent_workspace(&app, "Rpc", None, &agent.url("/rpc-error")).await;
    let (status, body) = proxy(&app, &rpc, chat("x"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (200, json!(-32601))
    );

    // 504: too slow for this request's X-Timeout.
    let (slow, _) = agent_workspace(&app, "Slow", None, &agent.url("/slow")).await;
    let started = std::time::Instant::now();
    let (status, body) = proxy(&app, &slow, chat("x"), &[("X-Timeout", "1")]).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "did not wait for the agent"
    );

    // Every call that reached the agent step is recorded with its outcome.
    let outcome = |id: String| {
        let app = &app;
        async move {
            let (_, rows) = app.get(&format!("/workspaces/{id}/activity")).await;
            assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
            (
                rows[0]["status"].as_str().unwrap().to_string(),
                rows[0]["error_detail"].clone(),
            )
        }
    };
    let (status, detail) = outcome(dead).await;
    assert_eq!(status, "error");
    assert!(detail.as_str().unwrap().len() <= 1000);
    assert_eq!(outcome(broken).await.0, "error");
    assert_eq!(outcome(texty).await.0, "error");
    let (status, detail) = outcome(rpc).await;
    assert_eq!(
        (status.as_str(), detail),
        ("error", json!("Method not found"))
    );
    assert_eq!(outcome(slow).await.0, "timeout");
    let (_, rows) = app.get(&format!("/workspaces/{fresh}/activity")).await;
    assert_eq!(rows, json!([]), "a refused call is not recorded");
}

#[tokio::test]
async fn outbound_calls_follow_the_address_rules() {
    let agent = Agent::start().await;
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("A2A_MAX_RESPONSE_BYTES", "16384"),
    )
    .await;

    // A redirect is not followed, not even to the same agent.
    let (redirecting, _) =
        agent_workspace(&app, "Redirecting", None, &agent.url("/redirect")).await;
    let (status, body) = proxy(&app, &redirecting, chat("x"), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("redirect"),
        "{body}"
    );
    assert_eq!(agent.echoed.load(Ordering::SeqCst), 0);

    // An answer past the bound.
    let (big, _) = agent_workspace(&app, "Big", None, &agent.url("/big")).await;
    let (status, body) = proxy(&app, &big, chat("x"), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("16384"), "{body}");

    // Link-local and cloud metadata addresses are refused before any connection.
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://100.100.100.200/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let (id, _) = agent_workspace(&app, "Meta", None, url).await;
        let started = std::time::Instant::now();
        let (status, body) = proxy(&app, &id, chat("x"), &[]).await;
        assert_eq!(status, 502, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("refused"),
            "{url}: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url}: no connection tried"
        );
    }
    // Loopback is allowed by default (the echo agent above was reachable).
    let (echo, _) = agent_workspace(&app, "Echo", None, &agent.url("/echo")).await;
    assert_eq!(proxy(&app, &echo, chat("x"), &[]).await.0, 200);
}

#[tokio::test]
async fn private_addresses_can_be_switched_off() {
    let agent = Agent::start().await;
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("A2A_ALLOW_PRIVATE_ADDRESSES", "0"),
    )
    .await;
    for url in [
        agent.url("/echo"),
        format!("http://localhost:{}/echo", agent.port),
    ] {
        let (id, _) = agent_workspace(&app, "Local", None, &url).await;
        let (status, body) = proxy(&app, &id, chat("x"), &[]).await;
        assert_eq!(status, 502, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("loopback"),
            "{url}: {body}"
        );
    }
    assert_eq!(agent.echoed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_canvas_needs_admin_access() {
    let agent = Agent::start().await;
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default().var("ADMIN_TOKEN", "adm")).await;
    let (id, token) = agent_workspace(&app, "Echo", None, &agent.url("/echo")).await;
    let anonymous = app
        .client
        .post(app.url(&format!("/workspaces/{id}/a2a")))
        .json(&chat("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(proxy(&app, &id, chat("x"), &[]).await.0, 200);
    // An agent calling itself needs only its own token.
    let own = app
        .client
        .post(app.url(&format!("/workspaces/{id}/a2a")))
        .header("X-Workspace-ID", &id)
        .bearer_auth(&token)
        .json(&chat("self"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(agent.echoed.load(Ordering::SeqCst), 2);
}

/// A browser canvas on another origin may send the proxy's headers.
#[tokio::test]
async fn the_proxy_headers_pass_a_cors_preflight() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("CORS_ORIGINS", "http://canvas.test"),
    )
    .await;
    let response = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("/workspaces/{}/a2a", uuid::Uuid::new_v4())),
        )
        .header("Origin", "http://canvas.test")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type,x-workspace-id,x-timeout",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("x-timeout"), "{allowed}");
}

#[tokio::test]
async fn an_answer_holding_nul_is_a_clear_502_and_recorded_alike_on_both_backends() {
    let (app, _db) = spawn_app().await;
    let agent = Agent::start().await;
    let (id, _) = agent_workspace(&app, "Nul", None, &agent.url("/nul")).await;
    let (status, body) = proxy(&app, &id, chat("hi"), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"],
        "workspace agent answered with the character U+0000 (at result.parts[0].text)"
    );
    let (_, rows) = app
        .get(&format!("/workspaces/{id}/activity?type=a2a_receive"))
        .await;
    assert_eq!(
        rows.as_array().unwrap().len(),
        1,
        "the failed call is recorded: {rows}"
    );
    assert_eq!(rows[0]["status"], "error");
    // params must be an object or an array: null is not "no params".
    let (status, _) = proxy(&app, &id, json!({ "method": "m", "params": null }), &[]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_agent_url_leading_back_to_any_canopy_route_is_one_refused_hop() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Loop", None).await;
    let url = app.url(&format!("/workspaces/{id}/a2a"));
    let (status, _) = app
        .post(
            "/registry/register",
            json!({ "id": id, "url": url, "agent_card": { "name": "loop" } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = proxy(&app, &id, chat("hi"), &[]).await;
    assert_eq!(
        status, 502,
        "the inner call is refused, so the agent 'failed': {body}"
    );
    assert_eq!(body["agent_status"], 508);
    let (_, rows) = app
        .get(&format!("/workspaces/{id}/activity?type=a2a_receive"))
        .await;
    assert_eq!(
        rows.as_array().unwrap().len(),
        1,
        "one call, not a chain: {rows}"
    );

    // Any route of a Canopy server, not only the proxy's: an agent URL at another workspace's
    // pause must not pause it with the proxy's reach.
    let victim = app.create_workspace("Victim", None).await;
    let pauser = app.create_workspace("Pauser", None).await;
    let url = app.url(&format!("/workspaces/{victim}/pause"));
    let (status, _) = app
        .post(
            "/registry/register",
            json!({ "id": pauser, "url": url, "agent_card": { "name": "pauser" } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = proxy(&app, &pauser, chat("hi"), &[]).await;
    assert_eq!(
        (status, body["agent_status"].clone()),
        (502, json!(508)),
        "{body}"
    );
    let (_, victim_now) = app.get(&format!("/workspaces/{victim}")).await;
    assert_eq!(
        victim_now["status"], "provisioning",
        "not paused: {victim_now}"
    );
}
