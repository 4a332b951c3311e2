//! Hostile input and hostile pages (issue 11): each refusal is checked through HTTP or the
//! WebSocket, and so is the absence of its side effects (no state change, no event).

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};

use crate::helpers::*;

const EVIL: &str = "http://evil.example";

/// Sends a request as a browser page would, with full control over headers and body bytes.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut rb = app.client.request(method, app.url(path));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(body) = body {
        rb = rb.body(body);
    }
    let response = rb.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: the answer is JSON: {text:?}"));
    (status, headers, value)
}

fn new_secrets_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

fn json_type() -> (&'static str, &'static str) {
    ("content-type", "application/json")
}

/// The newest seq in the stream: equal before and after a refused request means no event.
async fn stream_head(app: &TestApp) -> i64 {
    app.live_events().await.last().map_or(0, |e| e.0)
}

#[tokio::test]
async fn cross_site_writes_are_refused_before_any_work() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default()
            .var("CORS_ORIGINS", "http://canvas.test:3000")
            .var("SECRETS_ENCRYPTION_KEY", &new_secrets_key()),
    )
    .await;
    let id = app.create_workspace("Target", None).await;
    let head = stream_head(&app).await;
    let writes: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (
            reqwest::Method::POST,
            "/workspaces".into(),
            Some(json!({ "name": "x" })),
        ),
        (
            reqwest::Method::PATCH,
            format!("/workspaces/{id}"),
            Some(json!({ "name": "Hijacked" })),
        ),
        (
            reqwest::Method::POST,
            format!("/workspaces/{id}/pause"),
            None,
        ),
        (reqwest::Method::DELETE, format!("/workspaces/{id}"), None),
        (
            reqwest::Method::POST,
            "/settings/secrets".into(),
            Some(json!({ "key": "K", "value": "v" })),
        ),
        (
            reqwest::Method::PUT,
            "/canvas/viewport".into(),
            Some(json!({ "x": 1, "y": 2, "zoom": 1 })),
        ),
    ];
    // A "simple" request (text/plain, no preflight) and a JSON one, from a foreign page, from
    // a sandboxed frame (`Origin: null`), and from a browser that only says it is cross-site.
    let hostile: [&[(&str, &str)]; 4] = [
        &[("origin", EVIL), ("content-type", "text/plain")],
        &[("origin", EVIL), ("content-type", "application/json")],
        &[("origin", "null"), ("content-type", "application/json")],
        &[
            ("sec-fetch-site", "cross-site"),
            ("content-type", "application/json"),
        ],
    ];
    for (method, path, body) in &writes {
        for headers in hostile {
            let bytes = body.as_ref().map(|b| b.to_string().into_bytes());
            let (status, _, answer) = send(&app, method.clone(), path, headers, bytes).await;
            assert_eq!(
                (status, answer),
                (
                    403,
                    json!({ "error": "cross-origin request refused: origin not allowed" })
                ),
                "{method} {path} with {headers:?}"
            );
        }
    }
    assert_eq!(
        stream_head(&app).await,
        head,
        "no refused request made an event"
    );
    let (_, listed) = app.get("/workspaces").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "Target");
    assert_eq!(listed[0]["status"], "provisioning");
    let (_, secrets) = app.get("/settings/secrets").await;
    assert_eq!(secrets, json!([]));

    // The server's own page, a configured origin and a client that is not a browser may write.
    let own = format!("http://127.0.0.1:{}", app.port);
    for headers in [
        vec![("origin", own.as_str()), json_type()],
        vec![("origin", "http://canvas.test:3000"), json_type()],
        vec![json_type()],
    ] {
        let (status, _, body) = send(
            &app,
            reqwest::Method::POST,
            "/workspaces",
            &headers,
            Some(br#"{"name":"Allowed"}"#.to_vec()),
        )
        .await;
        assert_eq!(status, 201, "{headers:?}: {body}");
    }
    // A JSON route refuses any other media type, whoever sends it, and does nothing.
    let head = stream_head(&app).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let (status, _, body) = send(
            &app,
            reqwest::Method::POST,
            "/workspaces",
            &headers,
            Some(br#"{"name":"x"}"#.to_vec()),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                415,
                json!({ "error": "Content-Type must be application/json" })
            ),
            "{content_type:?}"
        );
    }
    assert_eq!(stream_head(&app).await, head);
}

#[tokio::test]
async fn token_mode_refuses_cross_site_writes_too_and_reads_any_scheme_case() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("ADMIN_TOKEN", "s3cret-admin"),
    )
    .await;
    let auth = "Bearer s3cret-admin";
    let (status, _, _) = send(
        &app,
        reqwest::Method::POST,
        "/workspaces",
        &[("authorization", auth), ("origin", EVIL), json_type()],
        Some(br#"{"name":"x"}"#.to_vec()),
    )
    .await;
    assert_eq!(
        status, 403,
        "a valid token does not make a foreign page safe"
    );
    // RFC 9110 §11.1: the scheme is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let header = format!("{scheme} s3cret-admin");
        let (status, _, _) = send(
            &app,
            reqwest::Method::GET,
            "/workspaces",
            &[("authorization", header.as_str())],
            None,
        )
        .await;
        assert_eq!(status, 200, "{scheme}");
    }
    for wrong in [
        "Basic s3cret-admin",
        "Bearer",
        "Bearer wrong",
        "Bearers3cret-admin",
    ] {
        let (status, _, body) = send(
            &app,
            reqwest::Method::GET,
            "/workspaces",
            &[("authorization", wrong)],
            None,
        )
        .await;
        assert_eq!(status, 401, "{wrong}: {body}");
    }
}

#[tokio::test]
async fn a_host_not_served_here_is_misdirected_for_http_and_websocket() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("ALLOWED_HOSTS", "canopy.test"),
    )
    .await;
    let port = app.port;
    let rebound = format!("rebind.example:{port}");
    let rebound_origin = format!("http://{rebound}");
    // DNS rebinding: the page and the Host agree, and neither is this server's name.
    for (method, path, body) in [
        (reqwest::Method::GET, "/workspaces", None),
        (
            reqwest::Method::POST,
            "/workspaces",
            Some(br#"{"name":"x"}"#.to_vec()),
        ),
    ] {
        let (status, _, answer) = send(
            &app,
            method,
            path,
            &[("host", &rebound), ("origin", &rebound_origin), json_type()],
            body,
        )
        .await;
        assert_eq!(
            (status, answer),
            (
                421,
                json!({ "error": "host not served here: add it to ALLOWED_HOSTS" })
            )
        );
    }
    let refused = WsClient::try_connect(
        &format!("ws://127.0.0.1:{port}/ws"),
        &[("host", &rebound), ("origin", &rebound_origin)],
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 421)
        }
        other => panic!(
            "the upgrade must be refused with 421, got {:?}",
            other.map(|_| ())
        ),
    }
    // Loopback names and configured names are served, upgrades included.
    for host in [
        format!("localhost:{port}"),
        format!("canopy.test:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, _, _) = send(
            &app,
            reqwest::Method::GET,
            "/workspaces",
            &[("host", &host)],
            None,
        )
        .await;
        assert_eq!(status, 200, "{host}");
    }
    let mut socket = WsClient::connect(
        &format!("ws://127.0.0.1:{port}/ws"),
        &[
            ("host", &format!("canopy.test:{port}")),
            ("origin", &format!("http://canopy.test:{port}")),
        ],
    )
    .await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");
    // A foreign page cannot open the live stream either.
    match WsClient::try_connect(&format!("ws://127.0.0.1:{port}/ws"), &[("origin", EVIL)]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!(
            "a cross-site upgrade must be refused with 403, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[tokio::test]
async fn bodies_are_strict_json_and_errors_speak_the_apis_words() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Original", None).await;
    let parent = app.create_workspace("Parent", None).await;
    app.put("/canvas/viewport", json!({ "x": 1, "y": 1, "zoom": 1 }))
        .await;
    let head = stream_head(&app).await;
    let patch = format!("/workspaces/{id}");
    let trailing = format!(r#"{{"name":"Renamed"}}, "parent_id":"{parent}"}}"#);
    let cases: Vec<(reqwest::Method, &str, Vec<u8>, &str)> = vec![
        (
            reqwest::Method::PATCH,
            &patch,
            trailing.into_bytes(),
            "invalid JSON body: unexpected data after the JSON value (line 1, column 19)",
        ),
        (
            reqwest::Method::PATCH,
            &patch,
            b"{\"name\":\"Re\xffnamed\"}".to_vec(),
            "request body is not valid UTF-8",
        ),
        (
            reqwest::Method::PUT,
            "/canvas/viewport",
            b"[5,6,2]".to_vec(),
            "request body must be a JSON object",
        ),
        (
            reqwest::Method::PATCH,
            &patch,
            br#"{"name":null}"#.to_vec(),
            "name: must not be null",
        ),
        (
            reqwest::Method::PATCH,
            &patch,
            br#"{"tier":null}"#.to_vec(),
            "tier: must not be null",
        ),
        (
            reqwest::Method::PATCH,
            &patch,
            br#"{"collapsed":"yes"}"#.to_vec(),
            "collapsed: must be true or false",
        ),
        (
            reqwest::Method::POST,
            "/workspaces",
            br#"{"name":"x","tier":"high"}"#.to_vec(),
            "tier: must be an integer",
        ),
        (
            reqwest::Method::POST,
            "/workspaces",
            br#"{"name":"x","canvas":[1,2]}"#.to_vec(),
            "canvas: must be an object",
        ),
        (
            reqwest::Method::POST,
            "/workspaces",
            br#"{"name":"x","canvas":{"x":1}}"#.to_vec(),
            "canvas.y: is required",
        ),
        (
            reqwest::Method::PUT,
            "/canvas/viewport",
            br#"{"x":1,"y":2}"#.to_vec(),
            "zoom: is required",
        ),
        (
            reqwest::Method::POST,
            "/registry/check-access",
            br#"{"caller_id":7}"#.to_vec(),
            "caller_id: must be a string",
        ),
    ];
    for (method, path, body, message) in cases {
        let (status, _, answer) =
            send(&app, method.clone(), path, &[json_type()], Some(body)).await;
        assert_eq!(
            (status, answer),
            (400, json!({ "error": message })),
            "{method} {path}"
        );
    }
    // Query strings: the parameter and the rule, never the framework.
    for (path, message) in [
        ("/events?limit=ten", "limit: must be an integer"),
        ("/events?before_seq=1.5", "before_seq: must be an integer"),
        (
            &*format!("/workspaces/{id}/activity?limit=x"),
            "limit: must be an integer",
        ),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!((status, body), (400, json!({ "error": message })), "{path}");
    }
    assert_eq!(
        stream_head(&app).await,
        head,
        "no refused request made an event"
    );
    let (_, workspace) = app.get(&patch).await;
    assert_eq!(
        (workspace["name"].clone(), workspace["parent_id"].clone()),
        (json!("Original"), Value::Null)
    );
    let (_, viewport) = app.get("/canvas/viewport").await;
    assert_eq!(viewport["zoom"], 1.0);
    // null still means "clear" where the contract says so.
    let (status, _) = app
        .patch(&patch, json!({ "role": null, "parent_id": null }))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn nul_characters_get_one_answer_on_every_field_and_backend() {
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Agent", None).await;
    let token = register(&app, &id).await;
    let nul = "a\u{0}b";
    let head = stream_head(&app).await;
    // (path, body, the field named in the answer, with the agent's token?)
    let cases: Vec<(String, Value, &str, bool)> = vec![
        ("/workspaces".into(), json!({ "name": nul }), "name", false),
        (
            "/workspaces".into(),
            json!({ "name": "x", "role": nul }),
            "role",
            false,
        ),
        (
            "/workspaces".into(),
            json!({ "name": "x", "runtime": nul }),
            "runtime",
            false,
        ),
        (
            "/workspaces".into(),
            json!({ "name": "x", "model": nul }),
            "model",
            false,
        ),
        (
            format!("/workspaces/{id}"),
            json!({ "name": nul }),
            "name",
            false,
        ),
        (
            "/registry/register".into(),
            json!({ "id": id, "url": "http://127.0.0.1:9/a", "agent_card": { "name": nul } }),
            "agent_card.name",
            true,
        ),
        (
            "/registry/update-card".into(),
            json!({ "workspace_id": id, "agent_card": { "skills": [nul] } }),
            "agent_card.skills[0]",
            true,
        ),
        (
            "/registry/heartbeat".into(),
            json!({ "workspace_id": id, "error_rate": 0, "active_tasks": 1, "current_task": nul }),
            "current_task",
            true,
        ),
        (
            "/registry/heartbeat".into(),
            json!({ "workspace_id": id, "error_rate": 0, "sample_error": nul }),
            "sample_error",
            true,
        ),
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "summary": nul }),
            "summary",
            true,
        ),
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "error_detail": nul }),
            "error_detail",
            true,
        ),
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "metadata": { nul: 1 } }),
            "metadata",
            true,
        ),
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "request_body": { "q": [1, nul] } }),
            "request_body.q[1]",
            true,
        ),
        (
            format!("/workspaces/{id}/notify"),
            json!({ "message": nul }),
            "message",
            true,
        ),
        (
            format!("/workspaces/{id}/notify"),
            json!({ "message": "m", "attachments": [{ "uri": "file:///a", "name": nul }] }),
            "attachments[0].name",
            true,
        ),
    ];
    for (path, body, field, as_agent) in cases {
        let method = if path == format!("/workspaces/{id}") {
            reqwest::Method::PATCH
        } else {
            reqwest::Method::POST
        };
        let mut rb = app.client.request(method, app.url(&path)).json(&body);
        if as_agent {
            rb = rb.bearer_auth(&token);
        }
        let response = rb.send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            (status, answer),
            (
                400,
                json!({ "error": format!("{field}: must not contain the character U+0000") })
            ),
            "{path} {body}"
        );
    }
    for path in [
        format!("/registry/{id}/peers?q=a%00b"),
        format!("/workspaces/{id}/activity?type=a%00"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("U+0000"), "{body}");
    }
    assert_eq!(stream_head(&app).await, head, "nothing was stored");
    // The agent that sent a bad heartbeat is still the agent: a clean one goes through.
    let (status, _) = heartbeat(&app, &id, &token, 0.0, "clean").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_text_and_json_field_has_a_limit_and_events_stay_small() {
    use canopy::domain::validation::limits;
    let (app, _db) = spawn_app().await;
    let id = app.create_workspace("Agent", None).await;
    let token = register(&app, &id).await;
    let over = |n: usize| "x".repeat(n + 1);
    let big_json = |n: usize| json!({ "blob": "y".repeat(n) });
    let cases: Vec<(String, Value, String)> = vec![
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "summary": over(limits::SUMMARY) }),
            format!("summary: must be at most {} bytes", limits::SUMMARY),
        ),
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "request_body": big_json(limits::ACTIVITY_BODY) }),
            format!(
                "request_body: must be at most {} bytes",
                limits::ACTIVITY_BODY
            ),
        ),
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "metadata": big_json(limits::METADATA) }),
            format!("metadata: must be at most {} bytes", limits::METADATA),
        ),
        (
            format!("/workspaces/{id}/activity"),
            json!({ "activity_type": "agent_log", "error_detail": over(limits::ERROR_DETAIL) }),
            format!(
                "error_detail: must be at most {} bytes",
                limits::ERROR_DETAIL
            ),
        ),
        (
            format!("/workspaces/{id}/notify"),
            json!({ "message": over(limits::MESSAGE) }),
            format!("message: must be at most {} bytes", limits::MESSAGE),
        ),
        (
            "/registry/update-card".into(),
            json!({ "workspace_id": id, "agent_card": big_json(limits::AGENT_CARD) }),
            format!("agent_card: must be at most {} bytes", limits::AGENT_CARD),
        ),
        (
            "/registry/heartbeat".into(),
            json!({ "workspace_id": id, "error_rate": 0, "current_task": over(limits::HEARTBEAT_TEXT) }),
            format!(
                "current_task: must be at most {} bytes",
                limits::HEARTBEAT_TEXT
            ),
        ),
    ];
    let head = stream_head(&app).await;
    for (path, body, message) in cases {
        let response = app
            .client
            .post(app.url(&path))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            (status, answer),
            (400, json!({ "error": message })),
            "{path}"
        );
    }
    assert_eq!(stream_head(&app).await, head);
    // At the limit is accepted; the event carries the summary, never the bodies.
    let mut canvas = app.ws("").await;
    canvas.next_json().await;
    let response = app
        .client
        .post(app.url(&format!("/workspaces/{id}/activity")))
        .bearer_auth(&token)
        .json(&json!({
            "activity_type": "agent_log",
            "summary": "s".repeat(limits::SUMMARY),
            "request_body": { "blob": "r".repeat(limits::ACTIVITY_BODY - 20) },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let event = canvas.next_event().await;
    assert_eq!(event["event"], "ACTIVITY_LOGGED");
    assert!(event["payload"].get("request_body").is_none());
    assert!(
        event.to_string().len() < limits::SUMMARY + 1024,
        "the event stays small"
    );
}

#[tokio::test]
async fn resuming_without_the_epoch_never_continues_another_stream() {
    let (app, _db) = spawn_app().await;
    for i in 0..3 {
        app.create_workspace(&format!("W{i}"), None).await;
    }
    app.settle().await;
    let epoch = app.state.epoch.clone();
    let first_frames = |query: String| {
        let app = &app;
        async move {
            let mut socket = app.ws(&query).await;
            assert_eq!(socket.next_json().await["event"], "CONNECTED");
            socket.next_json().await
        }
    };
    let frame = first_frames("?since=1".into()).await;
    assert_eq!(
        (frame["event"].clone(), frame["payload"]["reason"].clone()),
        (json!("RESYNC_REQUIRED"), json!("epoch required to resume"))
    );
    let frame = first_frames(format!("?since=1&epoch={epoch}")).await;
    assert_eq!(
        (frame["event"].clone(), frame["seq"].clone()),
        (json!("WORKSPACE_PROVISIONING"), json!(2))
    );
    // since=0 names no position in any stream: everything kept is replayed.
    let frame = first_frames("?since=0".into()).await;
    assert_eq!(frame["seq"], 1);
}

#[tokio::test]
async fn a_database_busy_past_its_timeout_is_503_with_retry_after() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("DATABASE_BUSY_TIMEOUT_MS", "300"),
    )
    .await;
    let id = app.create_workspace("Busy", None).await;
    // Another process holds the write lock (SQLite) or the stream lock (PostgreSQL).
    let url = db.url_string();
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let (held, is_held) = std::sync::mpsc::channel::<()>();
    let postgres = db.is_postgres();
    let holder = std::thread::spawn(move || {
        if postgres {
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            conn.batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({});",
                canopy::store::STREAM_LOCK_KEY
            ))
            .unwrap();
            held.send(()).unwrap();
            let _ = release.recv();
            conn.batch_execute("ROLLBACK").unwrap();
        } else {
            let path = url.trim_start_matches("sqlite://").to_string();
            let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
            conn.batch_execute("BEGIN IMMEDIATE").unwrap();
            held.send(()).unwrap();
            let _ = release.recv();
            conn.batch_execute("ROLLBACK").unwrap();
        }
    });
    is_held.recv().unwrap();
    let response = app
        .client
        .patch(app.url(&format!("/workspaces/{id}")))
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "error": "database busy" }));
    hold.send(()).unwrap();
    holder.join().unwrap();
    // Once the lock is gone, the same request goes through; the refused one left nothing.
    let (_, workspace) = app.get(&format!("/workspaces/{id}")).await;
    assert_eq!(workspace["name"], "Busy");
    let (status, _) = app
        .patch(&format!("/workspaces/{id}"), json!({ "name": "Renamed" }))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_workspace_history_is_404_and_a_removed_ones_is_kept() {
    let (app, _db) = spawn_app().await;
    let (status, body) = app.get(&format!("/events/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(
        (status, body),
        (404, json!({ "error": "workspace not found" }))
    );
    let id = app.create_workspace("Gone", None).await;
    app.delete(&format!("/workspaces/{id}")).await;
    let (status, body) = app.get(&format!("/events/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["event_type"], "WORKSPACE_REMOVED");
}

/// Sends raw request bytes and returns the status code of the answer.
async fn raw_status(port: u16, request: String) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut head))
        .await
        .expect("an answer")
        .unwrap();
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[tokio::test]
async fn headers_no_browser_sends_cannot_slip_past_the_boundary() {
    let (app, _db) = spawn_app().await;
    let port = app.port;
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    // `websocket` among other upgrade tokens, or no Origin but a cross-site fetch: refused.
    for extra in [
        "Origin: http://evil.example\r\nUpgrade: websocket, h2c\r\n",
        "Origin: http://evil.example\r\nUpgrade: h2c, WebSocket\r\n",
        "Sec-Fetch-Site: cross-site\r\nUpgrade: websocket\r\n",
        "Origin: http://evil.example\r\n",
    ] {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n{extra}{key}\r\n"
        );
        assert_eq!(raw_status(port, request).await, 403, "{extra}");
    }
    // The target's own authority wins over Host; a port must be a port.
    for (target, host) in [
        (
            "http://evil.example/workspaces",
            format!("127.0.0.1:{port}"),
        ),
        ("/workspaces", format!("127.0.0.1:{port}@evil.example")),
        ("/workspaces", "127.0.0.1:abc".to_string()),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_status(port, request).await, 421, "{target} {host}");
    }
    // U+0000 in the query of a route that never reads it: refused all the same.
    let head = stream_head(&app).await;
    for path in ["/workspaces?x=%00", "/canvas/viewport?a=%00"] {
        let (status, _, body) = send(
            &app,
            if path.starts_with("/workspaces") {
                reqwest::Method::POST
            } else {
                reqwest::Method::PUT
            },
            path,
            &[json_type()],
            Some(br#"{"name":"x","x":1,"y":1,"zoom":1}"#.to_vec()),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({ "error": "query: must not contain the character U+0000" })
            ),
            "{path}"
        );
    }
    assert_eq!(stream_head(&app).await, head);
    let (_, listed) = app.get("/workspaces").await;
    assert_eq!(listed, json!([]));
}

/// The canvas page and its files may not be framed by another site (clickjacking: in open mode
/// the framed page is the admin) and are never content-sniffed.
#[tokio::test]
async fn the_page_and_its_files_refuse_framing_and_sniffing() {
    let (app, _db) = spawn_app().await;
    for path in canopy::http::STATIC_PATHS {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(
            header("content-security-policy").as_deref(),
            Some("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
    }
}
