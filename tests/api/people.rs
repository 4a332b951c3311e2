//! People (issue 14): API keys with roles, the route × principal matrix, revocation that closes
//! sockets on every instance, browser sessions, and the actor on events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const ADMIN: &str = "people-admin-token";

/// A server in token mode, with every rate limit off (the matrix sends hundreds of requests).
async fn token_mode(db: &TestDb) -> TestApp {
    spawn_on(db, rate_limits_off().var("ADMIN_TOKEN", ADMIN)).await
}

/// Issues a key through the API with the admin token; returns `(id, key)`.
async fn issue_key(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": name, "role": role }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_string(),
        body["key"].as_str().unwrap().to_string(),
    )
}

/// `(status, body)` of a request with an optional bearer and JSON body.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut rb = app.client.request(method, app.url(path));
    if let Some(b) = bearer {
        rb = rb.bearer_auth(b);
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let response = rb.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Viewer,
    Editor,
    Admin,
    Agent,
    /// The viewer's key, through a browser session cookie.
    ViewerSession,
    /// The editor's key, through a browser session cookie (writes carry Origin and JSON).
    EditorSession,
}

/// What the README and this test say each route requires. The test checks the route table
/// says the same, so a route added without a row here fails it.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("get", "/health", "public"),
    ("get", "/metrics", "public"),
    ("get", "/openapi.json", "public"),
    ("get", "/ws", "agent or viewer"),
    ("post", "/workspaces", "editor"),
    ("get", "/workspaces", "viewer"),
    ("get", "/workspaces/{id}", "viewer"),
    ("patch", "/workspaces/{id}", "editor"),
    ("delete", "/workspaces/{id}", "admin"),
    ("post", "/workspaces/{id}/pause", "editor"),
    ("post", "/workspaces/{id}/resume", "editor"),
    ("get", "/workspaces/{id}/activity", "agent or viewer"),
    ("post", "/workspaces/{id}/activity", "agent or editor"),
    ("post", "/workspaces/{id}/notify", "agent or editor"),
    ("post", "/workspaces/{id}/a2a", "agent or editor"),
    ("post", "/workspaces/{id}/approvals", "agent or editor"),
    ("get", "/workspaces/{id}/approvals", "agent or viewer"),
    (
        "post",
        "/workspaces/{id}/approvals/{approval_id}/decide",
        "editor",
    ),
    ("get", "/approvals/pending", "viewer"),
    ("post", "/workspaces/{id}/agent", "editor"),
    ("patch", "/workspaces/{id}/agent", "editor"),
    ("delete", "/workspaces/{id}/agent", "admin"),
    ("post", "/workspaces/{id}/agent/move", "editor"),
    ("post", "/registry/register", "agent or admin"),
    ("post", "/registry/heartbeat", "agent or admin"),
    ("post", "/registry/update-card", "agent or admin"),
    ("post", "/registry/check-access", "public"),
    ("get", "/registry/discover/{id}", "agent or admin"),
    ("get", "/registry/{id}/peers", "agent or viewer"),
    ("get", "/workspaces/{id}/secrets", "agent or admin"),
    ("post", "/workspaces/{id}/secrets", "agent or admin"),
    ("put", "/workspaces/{id}/secrets", "agent or admin"),
    ("put", "/workspaces/{id}/secrets/{key}", "agent or admin"),
    ("delete", "/workspaces/{id}/secrets/{key}", "agent or admin"),
    ("get", "/settings/secrets", "admin"),
    ("post", "/settings/secrets", "admin"),
    ("put", "/settings/secrets", "admin"),
    ("put", "/settings/secrets/{key}", "admin"),
    ("delete", "/settings/secrets/{key}", "admin"),
    ("get", "/canvas/viewport", "viewer"),
    ("put", "/canvas/viewport", "editor"),
    ("get", "/canvas/presence", "viewer"),
    ("post", "/canvas/arrange", "editor"),
    ("get", "/events", "viewer"),
    ("get", "/events/{workspace_id}", "viewer"),
    ("post", "/keys", "admin"),
    ("get", "/keys", "admin"),
    ("delete", "/keys/{id}", "admin"),
    ("post", "/session", "public"),
    ("get", "/session", "viewer"),
    ("delete", "/session", "public"),
];

fn expected_set() -> BTreeSet<(String, String, String)> {
    EXPECTED
        .iter()
        .map(|(m, p, r)| (m.to_string(), p.to_string(), r.to_string()))
        .collect()
}

#[test]
fn the_route_table_declares_what_this_test_and_the_readme_expect() {
    let table: BTreeSet<(String, String, String)> = canopy::http::ROUTE_REQUIREMENTS
        .iter()
        .map(|(m, p, r)| (m.to_string(), p.to_string(), r.describe()))
        .collect();
    assert_eq!(table, expected_set(), "route table vs this test");
    // The README's role table: rows `| METHOD | `path` | requirement |` under "Who may call what".
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Who may call what")
        .nth(1)
        .expect("README has a 'Who may call what' section");
    let section = section.split("\n#").next().unwrap();
    let rows: BTreeSet<(String, String, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let [method, path, requirement] = cells[..] else {
                return None;
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
                return None;
            }
            Some((
                method.to_ascii_lowercase(),
                path.trim_matches('`').to_string(),
                requirement.to_string(),
            ))
        })
        .collect();
    assert_eq!(rows, expected_set(), "README role table vs the route table");
}

/// What a principal gets from a route: 401, 403, or through (any other status).
fn expected_outcome(requirement: &str, who: Who) -> &'static str {
    let person = |needed: &str| -> &'static str {
        let rank = |r: &str| ["viewer", "editor", "admin"].iter().position(|x| *x == r);
        let have = match who {
            Who::Viewer | Who::ViewerSession => "viewer",
            Who::Editor | Who::EditorSession => "editor",
            _ => "admin",
        };
        if rank(have) >= rank(needed) {
            "allowed"
        } else {
            "403"
        }
    };
    match (requirement, who) {
        ("public", _) => "allowed",
        (_, Who::Anonymous) => "401",
        (r, Who::Agent) if r.starts_with("agent or ") => "allowed",
        (_, Who::Agent) => "403",
        (r, _) => person(r.trim_start_matches("agent or ")),
    }
}

#[tokio::test]
async fn route_role_matrix() {
    let db = TestDb::new();
    let app = token_mode(&db).await;
    let (_, viewer) = issue_key(&app, "Vera Viewer", "viewer").await;
    let (_, editor) = issue_key(&app, "Ed Editor", "editor").await;
    let (_, admin) = issue_key(&app, "Ada Admin", "admin").await;
    // The agent's own workspace: agent routes are called on it.
    let ws = app.create_workspace("agent home", None).await;
    let agent_token = register(&app, &ws).await;
    let random = uuid::Uuid::new_v4().to_string();

    let principals = [
        (Who::Anonymous, None),
        (Who::Viewer, Some(viewer.as_str())),
        (Who::Editor, Some(editor.as_str())),
        (Who::Admin, Some(admin.as_str())),
        (Who::Agent, Some(agent_token.as_str())),
        (Who::ViewerSession, None),
        (Who::EditorSession, None),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, route, requirement) in EXPECTED {
        // Agent routes act on the agent's workspace; person-only routes on an id that does
        // not exist (a 404 there is "through": the requirement was met), so nothing is
        // destroyed half-way through the walk.
        let id = if requirement.starts_with("agent or ") {
            ws.as_str()
        } else {
            random.as_str()
        };
        let path = route
            .replace("{id}", id)
            .replace("{workspace_id}", id)
            .replace("{approval_id}", &random)
            .replace("{key}", "MATRIX_SECRET");
        let body = match (*method, *route) {
            ("get", _) | ("delete", _) => None,
            (_, "/session") => Some(json!({ "key": viewer })),
            (_, "/registry/register") => {
                Some(json!({ "id": ws, "url": "http://127.0.0.1:9/agent", "agent_card": {} }))
            }
            (_, "/registry/heartbeat") => Some(
                json!({ "workspace_id": ws, "error_rate": 0, "active_tasks": 0, "uptime_seconds": 1 }),
            ),
            (_, "/registry/update-card") => Some(json!({ "workspace_id": ws, "agent_card": {} })),
            (_, "/registry/check-access") => Some(json!({ "caller_id": ws, "target_id": ws })),
            (_, "/workspaces/{id}/activity") => Some(json!({ "activity_type": "agent_log" })),
            (_, "/workspaces/{id}/notify") => Some(json!({ "message": "hi" })),
            (_, "/workspaces/{id}/a2a") => Some(json!({ "method": "message/send", "params": {} })),
            (_, "/workspaces/{id}/approvals") => Some(json!({ "action": "deploy" })),
            (_, "/keys") => Some(json!({ "name": "matrix", "role": "viewer" })),
            (_, "/canvas/viewport") => Some(json!({ "x": 0, "y": 0, "zoom": 1 })),
            _ => Some(json!({})),
        };
        for (who, bearer) in &principals {
            // An agent names itself, as agents do on discovery, the A2A proxy and /ws; so does
            // the anonymous caller (an agent without its token).
            let mut headers: Vec<(&str, &str)> = if matches!(who, Who::Agent | Who::Anonymous) {
                vec![("X-Workspace-ID", ws.as_str())]
            } else {
                vec![]
            };
            // A fresh session per request: the walk signs out along the way.
            let cookie = match who {
                Who::ViewerSession => Some(sign_in(&app, &viewer).await),
                Who::EditorSession => Some(sign_in(&app, &editor).await),
                _ => None,
            };
            if let Some(cookie) = &cookie {
                headers.push(("Cookie", cookie));
                if *method != "get" {
                    headers.push(("Origin", &app.address));
                    if body.is_none() {
                        headers.push(("Content-Type", "application/json"));
                    }
                }
            }
            let (status, answer) = call(&app, method, &path, *bearer, &headers, body.clone()).await;
            let outcome = match status {
                401 => "401",
                403 => "403",
                _ => "allowed",
            };
            let expected = expected_outcome(requirement, *who);
            checked += 1;
            if outcome != expected {
                failures.push(format!(
                    "{method} {route} as {who:?}: {status} {answer}, expected {expected}"
                ));
            }
        }
    }
    assert_eq!(checked, EXPECTED.len() * principals.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn keys_are_shown_once_stored_hashed_and_stop_working_when_revoked_or_expired() {
    let db = TestDb::new();
    let app = token_mode(&db).await;
    let (id, key) = issue_key(&app, "Ada", "editor").await;
    assert!(key.starts_with("cnp_") && key.len() >= 40, "{key}");

    // Listed without the key; the stored row holds no key either.
    let (status, list) = call(&app, "get", "/keys", Some(ADMIN), &[], None).await;
    assert_eq!(status, 200);
    assert!(!list.to_string().contains(&key));
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert_eq!(row["role"], "editor");
    assert_eq!(row["created_by"], "admin");
    assert!(row["revoked_at"].is_null());

    // The key works, and its use is recorded (throttled, not per request).
    let (status, _) = call(&app, "get", "/workspaces", Some(&key), &[], None).await;
    assert_eq!(status, 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, list) = call(&app, "get", "/keys", Some(ADMIN), &[], None).await;
            list.as_array()
                .unwrap()
                .iter()
                .any(|k| k["id"] == id.as_str() && !k["last_used_at"].is_null())
        })
        .await,
        "last_used_at is set"
    );

    // Bad input is 400 naming the field.
    for (body, field) in [
        (json!({ "name": "x", "role": "root" }), "role"),
        (json!({ "role": "viewer" }), "name"),
        (
            json!({ "name": "x", "role": "viewer", "expires_at": "2000-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (
            json!({ "name": "x", "role": "viewer", "expires_at": "tomorrow" }),
            "expires_at",
        ),
    ] {
        let (status, answer) = call(&app, "post", "/keys", Some(ADMIN), &[], Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(field),
            "{answer}"
        );
    }

    // Revoked: the next call is 401; revoking again is harmless.
    let (status, revoked) = call(
        &app,
        "delete",
        &format!("/keys/{id}"),
        Some(ADMIN),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!revoked["revoked_at"].is_null());
    let (status, _) = call(&app, "get", "/workspaces", Some(&key), &[], None).await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        "delete",
        &format!("/keys/{}", uuid::Uuid::new_v4()),
        Some(ADMIN),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A key that expires stops working by itself.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (status, issued) = call(
        &app,
        "post",
        "/keys",
        Some(ADMIN),
        &[],
        Some(json!({ "name": "brief", "role": "viewer", "expires_at": soon })),
    )
    .await;
    assert_eq!(status, 201);
    let brief = issued["key"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(5), || async {
            call(&app, "get", "/workspaces", Some(&brief), &[], None)
                .await
                .0
                == 401
        })
        .await,
        "an expired key is refused"
    );

    // Keys can issue keys only as admins, and an admin key names its creator.
    let (_, admin_key) = issue_key(&app, "Root", "admin").await;
    let (admin_id, _) = {
        let (status, body) = call(
            &app,
            "post",
            "/keys",
            Some(&admin_key),
            &[],
            Some(json!({ "name": "made by key", "role": "viewer" })),
        )
        .await;
        assert_eq!(status, 201);
        (body["created_by"].as_str().unwrap().to_string(), ())
    };
    let (status, list) = call(&app, "get", "/keys", Some(ADMIN), &[], None).await;
    assert_eq!(status, 200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == admin_id.as_str()),
        "created_by is the issuing key's id"
    );
}

/// A canvas socket opened with `?token=`.
async fn canvas_socket(app: &TestApp, token: &str) -> WsClient {
    let mut ws = app.ws(&format!("?token={token}")).await;
    let hello = ws.next_json().await;
    assert_eq!(hello["event"], "CONNECTED");
    ws
}

#[tokio::test]
async fn revoking_a_key_closes_its_sockets_on_every_instance_within_a_second() {
    let db = TestDb::new();
    let options = TestOptions {
        redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
        ..rate_limits_off().var("ADMIN_TOKEN", ADMIN)
    };
    let a = spawn_on(&db, options.clone()).await;
    // Two instances share revocations through Redis; embedded mode is one instance.
    let b = if redis_url().is_some() {
        Some(spawn_on(&db, options).await)
    } else {
        None
    };
    let other = b.as_ref().unwrap_or(&a);
    let (id, key) = issue_key(&a, "Leaver", "viewer").await;
    let (_, stayer) = issue_key(&a, "Stayer", "viewer").await;

    let mut on_a = canvas_socket(&a, &key).await;
    let mut on_other = canvas_socket(other, &key).await;
    // A socket opened with a session made from the key closes too.
    let cookie = sign_in(other, &key).await;
    let mut by_session = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws", other.port),
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(by_session.next_json().await["event"], "CONNECTED");
    let mut unrelated = canvas_socket(other, &stayer).await;

    let started = Instant::now();
    let (status, _) = call(&a, "delete", &format!("/keys/{id}"), Some(ADMIN), &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(on_a.closed_with().await, Some(4001));
    assert_eq!(on_other.closed_with().await, Some(4001));
    assert_eq!(by_session.closed_with().await, Some(4001));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closed in {:?}",
        started.elapsed()
    );
    still_open(&mut unrelated, Duration::from_millis(300)).await;

    // Everywhere the next call is 401, by key and by session.
    for app in [&a, other] {
        let (status, _) = call(app, "get", "/workspaces", Some(&key), &[], None).await;
        assert_eq!(status, 401);
        let (status, _) = call(
            app,
            "get",
            "/workspaces",
            None,
            &[("Cookie", &cookie)],
            None,
        )
        .await;
        assert_eq!(status, 401);
        let refused =
            WsClient::try_connect(&format!("ws://127.0.0.1:{}/ws?token={key}", app.port), &[])
                .await;
        assert!(refused.is_err(), "a revoked key cannot open a socket");
    }
}

/// Asserts the socket stays open for `wait` (presence frames may arrive meanwhile).
async fn still_open(socket: &mut WsClient, wait: Duration) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.stream.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Close(frame)))) => panic!("closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}

/// Signs in with a key; returns the `Cookie` header value to send back.
async fn sign_in(app: &TestApp, key: &str) -> String {
    let response = app
        .client
        .post(app.url("/session"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn sessions_carry_a_person_in_an_http_only_cookie_until_sign_out_expiry_or_revocation() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        rate_limits_off()
            .var("ADMIN_TOKEN", ADMIN)
            .var("SESSION_TTL_SECONDS", "2"),
    )
    .await;
    let (key_id, key) = issue_key(&app, "Sam", "editor").await;

    // The cookie's attributes.
    let response = app
        .client
        .post(app.url("/session"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for attribute in [
        "canopy_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=2",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} has {attribute}"
        );
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP from an untrusted peer: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    // Reads with the cookie; who am I.
    let with_cookie = [("Cookie", cookie.as_str())];
    let (status, me) = call(&app, "get", "/session", None, &with_cookie, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({ "type": "user", "id": key_id, "name": "Sam", "role": "editor" })
    );
    let (status, _) = call(&app, "get", "/workspaces", None, &with_cookie, None).await;
    assert_eq!(status, 200);

    // Writes with the cookie need an Origin (allowed by the boundary) and JSON.
    let body = Some(json!({ "name": "by cookie" }));
    let (status, answer) = call(
        &app,
        "post",
        "/workspaces",
        None,
        &with_cookie,
        body.clone(),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let origin = app.address.clone();
    let (status, answer) = call(
        &app,
        "post",
        "/workspaces",
        None,
        &[("Cookie", &cookie), ("Origin", &origin)],
        body.clone(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let ws = answer["id"].as_str().unwrap().to_string();
    let (status, _) = call(
        &app,
        "post",
        &format!("/workspaces/{ws}/pause"),
        None,
        &[("Cookie", &cookie), ("Origin", &origin)],
        None,
    )
    .await;
    assert_eq!(
        status, 415,
        "a bodiless cookie write still needs the JSON content type"
    );
    let (status, _) = call(
        &app,
        "post",
        "/workspaces",
        None,
        &[("Cookie", &cookie), ("Origin", "http://evil.test")],
        body.clone(),
    )
    .await;
    assert_eq!(status, 403);

    // The socket accepts the cookie.
    let mut socket = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws", app.port),
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");

    // Sign-out ends the session (the cookie is cleared, and refused if sent again), and
    // closes the sockets it opened.
    let response = app
        .client
        .delete(app.url("/session"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _) = call(&app, "get", "/workspaces", None, &with_cookie, None).await;
    assert_eq!(status, 401);
    assert_eq!(socket.closed_with().await, Some(4001));

    // Expiry: a session is refused once SESSION_TTL_SECONDS have passed, and its sockets are
    // closed by the periodic recheck.
    let cookie = sign_in(&app, &key).await;
    let mut socket = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws", app.port),
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");
    let (status, _) = call(
        &app,
        "get",
        "/workspaces",
        None,
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        eventually(Duration::from_secs(6), || async {
            call(
                &app,
                "get",
                "/workspaces",
                None,
                &[("Cookie", &cookie)],
                None,
            )
            .await
            .0 == 401
        })
        .await,
        "an expired session is refused"
    );
    assert_eq!(socket.closed_with().await, Some(4001));

    // Revoking the key ends its sessions; a revoked key cannot sign in.
    let cookie = sign_in(&app, &key).await;
    let (status, _) = call(
        &app,
        "delete",
        &format!("/keys/{key_id}"),
        Some(ADMIN),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        "get",
        "/workspaces",
        None,
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        "post",
        "/session",
        None,
        &[],
        Some(json!({ "key": key })),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        "post",
        "/session",
        None,
        &[],
        Some(json!({ "key": "cnp_not-a-key" })),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_configured_or_behind_a_trusted_tls_proxy() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        rate_limits_off()
            .var("ADMIN_TOKEN", ADMIN)
            .var("TRUSTED_PROXIES", "127.0.0.1"),
    )
    .await;
    let (_, key) = issue_key(&app, "Tess", "viewer").await;
    let set_cookie = |proto: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            let response = app
                .client
                .post(app.url("/session"))
                .header("X-Forwarded-Proto", proto)
                .json(&json!({ "key": key }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 204);
            response
                .headers()
                .get("set-cookie")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    assert!(set_cookie("https").await.contains("Secure"));
    assert!(!set_cookie("http").await.contains("Secure"));
    let db = TestDb::new();
    let secure = spawn_on(
        &db,
        rate_limits_off()
            .var("ADMIN_TOKEN", ADMIN)
            .var("SESSION_COOKIE_SECURE", "true"),
    )
    .await;
    let (_, key) = {
        let response = secure
            .client
            .post(secure.url("/keys"))
            .bearer_auth(ADMIN)
            .json(&json!({"name":"s","role":"viewer"}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        ((), body["key"].as_str().unwrap().to_string())
    };
    let response = secure
        .client
        .post(secure.url("/session"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Secure"));
}

#[tokio::test]
async fn every_event_names_its_actor_live_in_replays_and_in_the_log() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        rate_limits_off()
            .var("ADMIN_TOKEN", ADMIN)
            .var("LIVENESS_TTL_SECONDS", "1")
            .var("LIVENESS_SWEEP_INTERVAL_SECONDS", "1"),
    )
    .await;
    let (editor_id, editor) = issue_key(&app, "Ed", "editor").await;
    let mut socket = canvas_socket(&app, &editor).await;

    // A person's command: the live frame and the stored event name them.
    let (status, created) = call(
        &app,
        "post",
        "/workspaces",
        Some(&editor),
        &[],
        Some(json!({ "name": "Team" })),
    )
    .await;
    assert_eq!(status, 201);
    let ws = created["id"].as_str().unwrap().to_string();
    let person = json!({ "type": "user", "id": editor_id, "name": "Ed" });
    let frame = socket.next_event().await;
    assert_eq!(frame["event"], "WORKSPACE_PROVISIONING");
    assert_eq!(frame["actor"], person);
    let (status, _) = call(
        &app,
        "patch",
        &format!("/workspaces/{ws}"),
        Some(&editor),
        &[],
        Some(json!({ "x": 10, "y": 20 })),
    )
    .await;
    assert_eq!(status, 200);
    let drag = socket.next_event().await;
    assert_eq!(drag["event"], "WORKSPACE_LAYOUT_CHANGED");
    assert_eq!(drag["actor"], person);

    // The bootstrap admin token is a person too.
    let (status, _) = call(
        &app,
        "patch",
        &format!("/workspaces/{ws}"),
        Some(ADMIN),
        &[],
        Some(json!({ "name": "Renamed" })),
    )
    .await;
    assert_eq!(status, 200);
    let rename = socket.next_event().await;
    assert_eq!(
        rename["actor"],
        json!({ "type": "user", "id": "admin", "name": "admin" })
    );

    // An agent's events name the agent, after its workspace.
    let token = register(&app, &ws).await;
    let online = socket.next_event().await;
    assert_eq!(online["event"], "WORKSPACE_ONLINE");
    assert_eq!(
        online["actor"],
        json!({ "type": "agent", "id": ws, "name": "Renamed" })
    );
    let _ = token;

    // Canopy's own jobs: the agent goes silent and the liveness job takes it offline.
    let offline = loop {
        let frame = socket.next_event().await;
        if frame["event"] == "WORKSPACE_OFFLINE" {
            break frame;
        }
    };
    assert_eq!(offline["actor"]["type"], "system");
    assert_eq!(offline["actor"]["id"], "liveness");

    // Activity written from the canvas carries the person.
    let (status, _) = call(
        &app,
        "post",
        &format!("/workspaces/{ws}/notify"),
        Some(&editor),
        &[],
        Some(json!({ "message": "hello" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, activity) = call(
        &app,
        "get",
        &format!("/workspaces/{ws}/activity"),
        Some(&editor),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(activity[0]["actor"], person, "{activity}");

    // A reconnecting canvas replays the actors with the events.
    let mut replay = WsClient::connect(
        &format!(
            "ws://127.0.0.1:{}/ws?token={editor}&since=0&epoch={}",
            app.port, app.state.epoch
        ),
        &[],
    )
    .await;
    let _connected = replay.next_json().await;
    let first = replay.next_event().await;
    assert_eq!(first["event"], "WORKSPACE_PROVISIONING");
    assert_eq!(first["actor"], person);

    // The permanent log carries them, and filters by them.
    let (status, mine) = call(
        &app,
        "get",
        &format!("/events?actor={editor_id}"),
        Some(&editor),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mine = mine.as_array().unwrap();
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|e| e["actor"] == person), "{mine:?}");
    assert!(mine
        .iter()
        .any(|e| e["event_type"] == "WORKSPACE_PROVISIONING"));
    let (_, by_admin) = call(
        &app,
        "get",
        &format!("/events/{ws}?actor=admin"),
        Some(&editor),
        &[],
        None,
    )
    .await;
    assert_eq!(by_admin.as_array().unwrap().len(), 1, "{by_admin}");
    assert_eq!(by_admin[0]["event_type"], "WORKSPACE_UPDATED");
    let (_, nobody) = call(
        &app,
        "get",
        "/events?actor=nobody",
        Some(&editor),
        &[],
        None,
    )
    .await;
    assert_eq!(nobody, json!([]));
}

#[tokio::test]
async fn each_person_spends_from_a_bucket_of_their_own() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default()
            .var("ADMIN_TOKEN", ADMIN)
            .var("RATE_LIMIT_PER_PERSON", "1")
            .var("RATE_LIMIT_PER_PERSON_BURST", "3")
            .var("RATE_LIMIT_PER_ADDRESS", "0"),
    )
    .await;
    let (_, ada) = issue_key(&app, "Ada", "viewer").await;
    let (_, bob) = issue_key(&app, "Bob", "viewer").await;
    let mut refused = None;
    for _ in 0..30 {
        let (status, body) = call(&app, "get", "/workspaces", Some(&ada), &[], None).await;
        if status == 429 {
            refused = Some(body);
            break;
        }
        assert_eq!(status, 200);
    }
    let refused = refused.expect("Ada's bucket runs dry");
    assert_eq!(refused["limit"], "person");
    // Bob, and Ada's browser session, each have a full bucket.
    let (status, _) = call(&app, "get", "/workspaces", Some(&bob), &[], None).await;
    assert_eq!(status, 200);
    let cookie = sign_in(&app, &bob).await;
    for _ in 0..2 {
        let (status, _) = call(
            &app,
            "get",
            "/workspaces",
            None,
            &[("Cookie", &cookie)],
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
}

// ------------------------------------------------------------------------------- presence

/// The next PRESENCE_* frame on a socket (stream events and others skipped).
async fn next_presence(socket: &mut WsClient) -> Value {
    loop {
        let frame = socket.next_json().await;
        if frame["event"]
            .as_str()
            .is_some_and(|e| e.starts_with("PRESENCE_"))
        {
            assert!(frame.get("seq").is_none(), "presence is live-only: {frame}");
            return frame;
        }
    }
}

/// Asserts no PRESENCE_* frame arrives within `wait`.
async fn no_presence_within(socket: &mut WsClient, wait: Duration) {
    if let Ok(frame) = tokio::time::timeout(wait, next_presence(socket)).await {
        panic!("expected no presence change, got {frame}");
    }
}

async fn presence_ids(app: &TestApp, token: &str) -> Vec<String> {
    let (status, list) = call(app, "get", "/canvas/presence", Some(token), &[], None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["actor"]["id"].as_str().unwrap().to_string())
        .collect()
}

fn shared_prefix() -> TestOptions {
    TestOptions {
        redis_prefix: Some(format!("test:{}:", uuid::Uuid::new_v4().simple())),
        ..rate_limits_off().var("ADMIN_TOKEN", ADMIN)
    }
}

#[tokio::test]
async fn a_person_is_present_once_from_their_first_socket_to_their_last_on_any_instance() {
    let db = TestDb::new();
    let options = shared_prefix();
    let a = spawn_on(&db, options.clone()).await;
    let b = if redis_url().is_some() {
        Some(spawn_on(&db, options).await)
    } else {
        None
    };
    let b = b.as_ref().unwrap_or(&a);
    let (bob_id, bob) = issue_key(&a, "Bob", "viewer").await;
    let (ada_id, ada) = issue_key(&a, "Ada", "editor").await;

    // Bob watches from instance b; his own arrival is the first thing he hears.
    let mut watcher = canvas_socket(b, &bob).await;
    let joined = next_presence(&mut watcher).await;
    assert_eq!(joined["event"], "PRESENCE_JOINED");
    assert_eq!(
        joined["payload"]["actor"],
        json!({ "type": "user", "id": bob_id, "name": "Bob" })
    );

    // Ada opens three tabs on two instances: one PRESENCE_JOINED.
    let mut tab1 = canvas_socket(&a, &ada).await;
    let joined = next_presence(&mut watcher).await;
    assert_eq!(joined["event"], "PRESENCE_JOINED");
    assert_eq!(
        joined["payload"]["actor"],
        json!({ "type": "user", "id": ada_id, "name": "Ada" })
    );
    assert!(joined["payload"]["since"].is_string());
    let mut tab2 = canvas_socket(b, &ada).await;
    let cookie = sign_in(&a, &ada).await;
    let tab3 = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws", a.port),
        &[("Cookie", &cookie)],
    )
    .await;
    no_presence_within(&mut watcher, Duration::from_millis(1500)).await;
    // Ada's first tab heard about her own arrival too (it is registered before it reports).
    assert_eq!(
        next_presence(&mut tab1).await["payload"]["actor"]["id"],
        ada_id.as_str()
    );

    for app in [&a, b] {
        let ids = presence_ids(app, &bob).await;
        assert_eq!(
            ids,
            vec![bob_id.clone(), ada_id.clone()],
            "longest present first"
        );
    }

    // Closing tabs: nothing until the last one.
    drop(tab1);
    drop(tab3);
    no_presence_within(&mut watcher, Duration::from_millis(1500)).await;
    tab2.stream.close(None).await.unwrap();
    let left = next_presence(&mut watcher).await;
    assert_eq!(left["event"], "PRESENCE_LEFT");
    assert_eq!(left["payload"]["actor"]["id"], ada_id.as_str());
    for app in [&a, b] {
        assert_eq!(presence_ids(app, &bob).await, vec![bob_id.clone()]);
    }
    // Agents have no presence, and may not read it.
    let ws = a.create_workspace("agent", None).await;
    let token = register(&a, &ws).await;
    let _agent = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws", a.port),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Workspace-ID", &ws),
        ],
    )
    .await;
    no_presence_within(&mut watcher, Duration::from_millis(500)).await;
    let (status, _) = call(&a, "get", "/canvas/presence", Some(&token), &[], None).await;
    assert_eq!(status, 403);
}

/// A `canopy` process of the test's own, to kill with SIGKILL; its log lines are kept.
struct Process {
    child: std::process::Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Process {
    fn start(db: &TestDb, prefix: &str, vars: &[(&str, &str)]) -> Process {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"));
        command.env_clear();
        if let Some(redis) = redis_url() {
            command
                .env("REDIS_URL", redis)
                .env("REDIS_KEY_PREFIX", prefix);
        }
        command
            .env("DATABASE_URL", db.url_string())
            .env("PORT", "0")
            .env("WORKERS", "1")
            .env("DATABASE_POOL_SIZE", "4")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in vars {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the canopy binary starts");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        // stderr (where a panic or a library would write) is kept too.
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = std::sync::Arc::clone(&log);
        let kept_err = std::sync::Arc::clone(&log);
        let mut readers = vec![std::thread::spawn(move || {
            use std::io::BufRead;
            for line in stderr.lines().map_while(Result::ok) {
                kept_err.lock().unwrap().push(line);
            }
        })];
        readers.push(std::thread::spawn(move || {
            use std::io::BufRead;
            for line in stdout.lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if entry["message"] == "canopy listening" {
                    let _ = port_tx.send(entry["port"].as_u64().unwrap() as u16);
                }
            }
        }));
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("canopy logs `canopy listening` within 30 s");
        Process {
            child,
            port,
            log,
            readers,
        }
    }

    /// Kills the process and returns everything it logged.
    fn finish(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn people_on_an_instance_killed_with_sigkill_leave_within_the_ttl() {
    if redis_url().is_none() {
        eprintln!("skipped: presence across processes needs REDIS_URL");
        return;
    }
    const TTL_SECONDS: u64 = 6;
    let db = TestDb::new();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let options = TestOptions {
        redis_prefix: Some(prefix.clone()),
        ..rate_limits_off()
            .var("ADMIN_TOKEN", ADMIN)
            .var("PRESENCE_TTL_SECONDS", &TTL_SECONDS.to_string())
    };
    let a = spawn_on(&db, options).await;
    let (_, bob) = issue_key(&a, "Bob", "viewer").await;
    let (ada_id, ada) = issue_key(&a, "Ada", "viewer").await;
    let mut process = Process::start(
        &db,
        &prefix,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("PRESENCE_TTL_SECONDS", &TTL_SECONDS.to_string()),
            ("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS", "0"),
        ],
    );
    let mut watcher = canvas_socket(&a, &bob).await;
    assert_eq!(
        next_presence(&mut watcher).await["event"],
        "PRESENCE_JOINED"
    );
    let mut on_doomed = WsClient::connect(
        &format!("ws://127.0.0.1:{}/ws?token={ada}", process.port),
        &[],
    )
    .await;
    assert_eq!(on_doomed.next_json().await["event"], "CONNECTED");
    let joined = next_presence(&mut watcher).await;
    assert_eq!(joined["event"], "PRESENCE_JOINED");
    assert_eq!(joined["payload"]["actor"]["id"], ada_id.as_str());

    // No goodbye: the process dies at once and its Redis keys are left to expire.
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    let killed = Instant::now();
    let left = next_presence(&mut watcher).await;
    assert_eq!(left["event"], "PRESENCE_LEFT");
    assert_eq!(left["payload"]["actor"]["id"], ada_id.as_str());
    assert!(
        killed.elapsed() <= Duration::from_secs(TTL_SECONDS) + Duration::from_millis(500),
        "gone {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(presence_ids(&a, &bob).await.len(), 1);
}

#[tokio::test]
async fn a_redis_flush_is_repaired_without_anyone_seeming_to_leave() {
    if redis_url().is_none() {
        eprintln!("skipped: needs redis-server (the cluster suite)");
        return;
    }
    let redis = PrivateRedis::start();
    let db = TestDb::new();
    let options = on_private_redis(
        &redis,
        rate_limits_off()
            .var("ADMIN_TOKEN", ADMIN)
            .var("PRESENCE_TTL_SECONDS", "12"),
    );
    let a = spawn_on(&db, options.clone()).await;
    let b = spawn_on(&db, options).await;
    let (bob_id, bob) = issue_key(&a, "Bob", "viewer").await;
    let (ada_id, ada) = issue_key(&a, "Ada", "viewer").await;
    let mut watcher = canvas_socket(&a, &bob).await;
    assert_eq!(
        next_presence(&mut watcher).await["event"],
        "PRESENCE_JOINED"
    );
    let _ada = canvas_socket(&b, &ada).await;
    assert_eq!(
        next_presence(&mut watcher).await["payload"]["actor"]["id"],
        ada_id.as_str()
    );

    redis.command(&["FLUSHALL"]).await;
    // Longer than a key's life (4 s) and past the grace (3 s): a flap would show by now.
    no_presence_within(&mut watcher, Duration::from_secs(5)).await;
    let keys = redis.command(&["KEYS", "private:presence:*"]).await;
    let keys = format!("{keys:?}");
    assert!(
        keys.contains(&ada_id) && keys.contains(&bob_id),
        "the refresh re-wrote the keys: {keys}"
    );
    assert_eq!(
        presence_ids(&a, &bob).await,
        vec![bob_id.clone(), ada_id.clone()]
    );
}

/// Runs `canopy <args>` against the test's database (and Redis prefix); returns stdout.
fn cli(db: &TestDb, prefix: &str, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"));
    command
        .env_clear()
        .env("DATABASE_URL", db.url_string())
        .env("RUST_LOG", "warn")
        .args(args);
    if let Some(redis) = redis_url() {
        command
            .env("REDIS_URL", redis)
            .env("REDIS_KEY_PREFIX", prefix);
    }
    let output = command.output().expect("the canopy binary runs");
    assert!(
        output.status.success(),
        "canopy {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_makes_the_first_admin_key_and_revokes_keys_closing_their_sockets() {
    let db = TestDb::new();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    // A fresh database: the CLI migrates it and prints the key once.
    let key = cli(
        &db,
        &prefix,
        &["keys", "create", "--name", "First", "--role", "admin"],
    );
    let key = key.trim().to_string();
    assert!(key.starts_with("cnp_"), "{key}");
    // The API's rules hold in the CLI: no key born expired.
    let expired = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .env_clear()
        .env("DATABASE_URL", db.url_string())
        .args(["keys", "create", "--name", "Late", "--role", "viewer"])
        .args(["--expires-at", "2001-01-01T00:00:00Z"])
        .output()
        .expect("the canopy binary runs");
    assert!(!expired.status.success());
    assert!(
        String::from_utf8_lossy(&expired.stderr).contains("--expires-at: must be in the future")
    );
    let app = spawn_on(
        &db,
        TestOptions {
            redis_prefix: Some(prefix.clone()),
            ..rate_limits_off().var("ADMIN_TOKEN", ADMIN)
        },
    )
    .await;
    let (status, keys) = call(&app, "get", "/keys", Some(&key), &[], None).await;
    assert_eq!(status, 200, "the CLI's key is an admin");
    let id = keys[0]["id"].as_str().unwrap().to_string();
    assert_eq!(keys[0]["created_by"], "cli");
    let listed = cli(&db, &prefix, &["keys", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("admin") && listed.contains("live"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "the list never shows a key");

    let mut socket = canvas_socket(&app, &key).await;
    cli(&db, &prefix, &["keys", "revoke", &id]);
    // Through Redis at once in cluster mode; embedded, the periodic recheck finds it.
    assert_eq!(socket.closed_with().await, Some(4001));
    let (status, _) = call(&app, "get", "/keys", Some(&key), &[], None).await;
    assert_eq!(status, 401);
    assert!(cli(&db, &prefix, &["keys", "list"]).contains("revoked"));
}

#[tokio::test]
async fn the_openapi_document_names_each_operations_requirement() {
    let (app, _db) = spawn_app().await;
    let (status, document) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    for (method, path, requirement) in EXPECTED {
        let operation = &document["paths"][*path][*method];
        assert_eq!(
            operation["x-canopy-requires"], *requirement,
            "{method} {path}: {operation}"
        );
    }
}

#[tokio::test]
async fn a_token_in_a_url_is_never_logged() {
    let db = TestDb::new();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let secret = format!("url-secret-{}", uuid::Uuid::new_v4().simple());
    let mut process = Process::start(
        &db,
        &prefix,
        &[
            ("ADMIN_TOKEN", secret.as_str()),
            ("RUST_LOG", "debug"),
            ("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS", "1"),
            ("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS_BURST", "4"),
        ],
    );
    let base = format!("ws://127.0.0.1:{}/ws", process.port);
    // Accepted, refused (bad since, wrong token) and rate limited, all with the token in the URL.
    let mut socket = WsClient::connect(&format!("{base}?token={secret}"), &[]).await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");
    drop(socket);
    for query in [
        format!("?token={secret}&since=x"),
        format!("?token={secret}x"),
        format!("?token={secret}"),
        format!("?token={secret}"),
        format!("?token={secret}"),
    ] {
        let _ = WsClient::try_connect(&format!("{base}{query}"), &[]).await;
    }
    let client = reqwest::Client::new();
    let _ = client
        .get(format!(
            "http://127.0.0.1:{}/workspaces?token={secret}",
            process.port
        ))
        .send()
        .await;
    let log = process.finish();
    assert!(
        log.contains("canopy listening") && log.contains("rate limited"),
        "the log was captured, at debug level:\n{log}"
    );
    assert!(
        !log.contains(&secret),
        "the token appears in the log:\n{log}"
    );
}

#[tokio::test]
async fn open_mode_stays_open_and_keys_there_still_name_people() {
    let (app, _db) = spawn_app().await;
    // Anyone, with no token or any token that is not a key, is the local admin.
    let (status, me) = app.get("/session").await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({ "type": "user", "id": "local", "name": "local", "role": "admin" })
    );
    let (status, _) = call(&app, "get", "/workspaces", Some("not-a-key"), &[], None).await;
    assert_eq!(status, 200);
    let mut socket = app.ws("?token=not-a-key").await;
    assert_eq!(socket.next_json().await["event"], "CONNECTED");
    drop(socket);
    let (status, issued) = app
        .post("/keys", json!({ "name": "Olive", "role": "viewer" }))
        .await;
    assert_eq!(status, 201);
    assert_eq!(issued["created_by"], "local");
    // A key is who it says, with its role, also here.
    let key = issued["key"].as_str().unwrap();
    let (status, me) = call(&app, "get", "/session", Some(key), &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "Olive");
    let (status, _) = call(
        &app,
        "post",
        "/workspaces",
        Some(key),
        &[],
        Some(json!({ "name": "x" })),
    )
    .await;
    assert_eq!(status, 403);
    // The canvas in open mode has no presence: it is everyone at once.
    let mut canvas = app.ws("").await;
    assert_eq!(canvas.next_json().await["event"], "CONNECTED");
    no_presence_within(&mut canvas, Duration::from_millis(1500)).await;
    let (_, present) = app.get("/canvas/presence").await;
    assert_eq!(present, json!([]));
}

/// `POST /session` and `DELETE /session` are public: nothing identifies their caller before
/// they run, so an Idempotency-Key there has no key space and no effect. Were it kept, one
/// person's retried sign-out could be answered with another's stored 204 and leave them signed
/// in, and a retried sign-in would get no cookie.
#[tokio::test]
async fn an_idempotency_key_on_the_session_routes_never_answers_for_another_person() {
    let db = TestDb::new();
    let app = token_mode(&db).await;
    let (_, ada) = issue_key(&app, "Ada", "viewer").await;
    let (_, ed) = issue_key(&app, "Ed", "viewer").await;
    for attempt in 0..2 {
        let response = app
            .client
            .post(app.url("/session"))
            .header("Idempotency-Key", "sign-in-1")
            .json(&json!({ "key": ada }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "attempt {attempt}");
        assert!(response.headers().get("idempotent-replayed").is_none());
        assert!(
            response.headers().get("set-cookie").is_some(),
            "attempt {attempt} sets a cookie"
        );
    }
    let (ada_cookie, ed_cookie) = (sign_in(&app, &ada).await, sign_in(&app, &ed).await);
    for cookie in [&ada_cookie, &ed_cookie] {
        let response = app
            .client
            .delete(app.url("/session"))
            .header("Cookie", cookie)
            .header("Idempotency-Key", "sign-out-1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        assert!(response.headers().get("idempotent-replayed").is_none());
    }
    for cookie in [&ada_cookie, &ed_cookie] {
        let (status, _) = call(&app, "get", "/session", None, &[("Cookie", cookie)], None).await;
        assert_eq!(status, 401, "both people are signed out");
    }
}

/// Two keys on one request are refused: a retry repeating either would run it again.
#[tokio::test]
async fn an_idempotency_key_sent_twice_is_refused() {
    let db = TestDb::new();
    let app = token_mode(&db).await;
    let response = app
        .client
        .post(app.url("/workspaces"))
        .bearer_auth(ADMIN)
        .header("Idempotency-Key", "first")
        .header("Idempotency-Key", "second")
        .json(&json!({ "name": "Twice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("Idempotency-Key:"));
    let (_, workspaces) = call(&app, "get", "/workspaces", Some(ADMIN), &[], None).await;
    assert_eq!(workspaces.as_array().unwrap().len(), 0, "nothing ran");
}

/// A body that names a field twice is refused: `{"role":"viewer","role":"admin"}` must not
/// grant whichever copy the parser happens to keep.
#[tokio::test]
async fn a_key_request_naming_its_role_twice_is_refused() {
    let db = TestDb::new();
    let app = token_mode(&db).await;
    let response = app
        .client
        .post(app.url("/keys"))
        .bearer_auth(ADMIN)
        .header("Content-Type", "application/json")
        .body(r#"{"name":"sly","role":"viewer","role":"admin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "role: appears more than once");
    let (_, keys) = call(&app, "get", "/keys", Some(ADMIN), &[], None).await;
    assert_eq!(
        keys.as_array().map(Vec::len),
        Some(0),
        "no key was issued: {keys}"
    );
}

/// In token mode nobody claims a workspace's agent without a credential: anyone who knew a
/// fresh workspace's id could otherwise register its agent, then write its secrets and read the
/// chat sent to it. And a person's key that is not an admin's cannot call the A2A proxy as a
/// workspace (`X-Workspace-ID`): it is not that workspace's token.
#[tokio::test]
async fn nobody_claims_an_agent_or_calls_as_one_without_its_token_or_the_admin_role() {
    let db = TestDb::new();
    let app = token_mode(&db).await;
    let (_, viewer) = issue_key(&app, "Vera Viewer", "viewer").await;
    let (_, editor) = issue_key(&app, "Ed Editor", "editor").await;
    let (_, admin) = issue_key(&app, "Ada Admin", "admin").await;
    let fresh = app.create_workspace("Payroll", None).await;
    let claim = json!({ "id": fresh, "url": "http://127.0.0.1:9/agent", "agent_card": {} });
    let register = |bearer: Option<String>| {
        let (app, claim) = (&app, claim.clone());
        async move {
            call(
                app,
                "post",
                "/registry/register",
                bearer.as_deref(),
                &[],
                Some(claim),
            )
            .await
        }
    };

    let (status, body) = register(None).await;
    assert_eq!(status, 401, "anonymous: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("admin credential"),
        "{body}"
    );
    for key in [&viewer, &editor] {
        let (status, body) = register(Some(key.clone())).await;
        assert_eq!(status, 403, "{body}");
    }
    // Still unclaimed: whoever provisions the agent registers it with an admin key and hands
    // the agent its token, which then works as the agent's.
    let (status, body) = register(Some(admin.clone())).await;
    assert_eq!(status, 200, "{body}");
    let token = body["auth_token"]
        .as_str()
        .expect("the first registration's token");
    let beat =
        json!({ "workspace_id": fresh, "error_rate": 0, "active_tasks": 0, "uptime_seconds": 1 });
    let (status, body) = call(
        &app,
        "post",
        "/registry/heartbeat",
        Some(token),
        &[],
        Some(beat),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = register(None).await;
    assert_eq!(status, 401, "claimed already");

    // The A2A proxy as that workspace: its token or the admin role, not an editor's key.
    let target = app.create_workspace("Sibling", None).await;
    let a2a = format!("/workspaces/{target}/a2a");
    let rpc = json!({ "method": "message/send", "params": {} });
    let as_fresh = [("X-Workspace-ID", fresh.as_str())];
    for key in [&viewer, &editor] {
        let (status, body) =
            call(&app, "post", &a2a, Some(key), &as_fresh, Some(rpc.clone())).await;
        assert_eq!(status, 403, "{body}");
    }
    // Past authorization (the sibling has no agent yet: 503), as the agent and as the admin.
    for key in [token, admin.as_str()] {
        let (status, body) =
            call(&app, "post", &a2a, Some(key), &as_fresh, Some(rpc.clone())).await;
        assert_eq!(status, 503, "{body}");
    }
    // The editor without X-Workspace-ID is the canvas chat, as before.
    let (status, body) = call(&app, "post", &a2a, Some(&editor), &[], Some(rpc)).await;
    assert_eq!(status, 503, "{body}");
}
