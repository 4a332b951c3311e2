//! The page's chat, approvals inbox and agent-to-agent traffic (issue 12, item 8) in real
//! browsers: a small A2A agent (an HTTP server inside the test speaking JSON-RPC) answers the
//! chat through Canopy's proxy; an approval decided on one page leaves the other page's inbox.

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use super::{card_selector, create_at, BrowserTest, Page, PAGE_WAIT, PROPAGATION};
use crate::helpers::{TestApp, TestOptions};

/// A JSON-RPC agent on a loopback port: `message/send` is answered with `echo: <text>`.
struct EchoAgent {
    url: String,
    handle: actix_web::dev::ServerHandle,
}

impl EchoAgent {
    fn start() -> EchoAgent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(|| {
            App::new().route(
                "/a2a",
                web::post().to(|body: web::Json<Value>| async move {
                    let text = body["params"]["message"]["parts"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    HttpResponse::Ok().json(json!({
                        "jsonrpc": "2.0",
                        "id": body["id"],
                        "result": {
                            "kind": "message", "role": "agent", "messageId": "reply-1",
                            "parts": [{ "kind": "text", "text": format!("echo: {text}") }],
                        },
                    }))
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        EchoAgent {
            url: format!("http://127.0.0.1:{port}/a2a"),
            handle,
        }
    }
}

/// Registers `id` as an agent at `url`; returns its workspace token.
async fn register_at(app: &TestApp, id: &str, url: &str) -> anyhow::Result<String> {
    let (status, body) = app
        .post(
            "/registry/register",
            json!({ "id": id, "url": url, "agent_card": { "name": "agent", "skills": [] } }),
        )
        .await;
    anyhow::ensure!(status == 200, "register {id}: {status} {body}");
    body["auth_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("register {id}: no token in {body}"))
}

/// A POST as a workspace's agent (its token, and `X-Workspace-ID` when `as_caller`).
async fn post_as(
    app: &TestApp,
    token: &str,
    caller: Option<&str>,
    path: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut request = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body);
    if let Some(caller) = caller {
        request = request.header("X-Workspace-ID", caller);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// The chat log as `[role, text]` pairs, oldest first.
const CHAT_SCRIPT: &str = r#"
return Array.from(document.querySelectorAll('#chat-log .msg'))
  .map((li) => [li.dataset.role, li.querySelector('.msg-text').textContent]);
"#;

fn pairs(list: &[(&str, &str)]) -> Value {
    Value::Array(list.iter().map(|(r, t)| json!([r, t])).collect())
}

async fn open_panel(page: &Page, id: &str, name: &str) -> anyhow::Result<()> {
    page.click(&format!("{} > .card-head .card-role", card_selector(id)))
        .await?;
    page.wait_for(
        "panel",
        PAGE_WAIT,
        "return document.getElementById('panel').hidden ? null \
         : document.getElementById('panel-title').textContent;",
        vec![],
        |v| *v == json!(name),
    )
    .await
    .map(|_| ())
}

async fn chat_scenario(t: &mut BrowserTest, agent: &EchoAgent) -> anyhow::Result<()> {
    let app = &t.app;
    let helper = create_at(app, "Helper", "Answers questions", None, 80.0, 60.0).await;
    let caller = create_at(app, "Caller", "Asks Helper", Some(&helper), 80.0, 200.0).await;
    let helper_token = register_at(app, &helper, &agent.url).await?;
    let caller_token = register_at(app, &caller, "http://127.0.0.1:9/unused").await?;

    let (first, second) = (t.open().await?, t.open().await?);
    let (app, page, other) = (&t.app, &t.pages[first], &t.pages[second]);
    for p in [page, other] {
        p.wait_connection("live", PAGE_WAIT).await?;
        p.wait_card("helper online", &helper, PAGE_WAIT, |c| {
            c["status"] == json!("online")
        })
        .await?;
        open_panel(p, &helper, "Helper").await?;
        p.wait_true(
            "empty chat",
            "return document.getElementById('chat-log').textContent.includes('No messages yet');",
        )
        .await?;
    }

    // A line typed in the chat goes to the agent through the proxy; its answer shows, and the
    // other page with the same chat open follows (its ACTIVITY_LOGGED event).
    page.type_into("#chat-input", "hello agent").await?;
    page.click("#chat-send").await?;
    let answered = pairs(&[("user", "hello agent"), ("agent", "echo: hello agent")]);
    page.wait_for("the agent's answer", PAGE_WAIT, CHAT_SCRIPT, vec![], |v| {
        *v == answered
    })
    .await?;
    other
        .wait_for(
            "the exchange on the other page",
            PROPAGATION,
            CHAT_SCRIPT,
            vec![],
            |v| *v == answered,
        )
        .await?;

    // The agent messages the people on the canvas: it shows live in the open chat.
    let (status, body) = post_as(
        app,
        &helper_token,
        None,
        &format!("/workspaces/{helper}/notify"),
        json!({ "message": "Report ready" }),
    )
    .await?;
    anyhow::ensure!(status == 200, "notify: {status} {body}");
    let with_notify = pairs(&[
        ("user", "hello agent"),
        ("agent", "echo: hello agent"),
        ("agent", "Report ready"),
    ]);
    page.wait_for(
        "the notify message",
        PROPAGATION,
        CHAT_SCRIPT,
        vec![],
        |v| *v == with_notify,
    )
    .await?;

    // One agent calls another through the proxy: an arrow runs from caller to callee.
    let (status, body) = post_as(
        app,
        &caller_token,
        Some(&caller),
        &format!("/workspaces/{helper}/a2a"),
        json!({ "method": "message/send",
                "params": { "message": { "role": "user", "parts": [{ "kind": "text", "text": "stats?" }] } } }),
    )
    .await?;
    anyhow::ensure!(status == 200, "agent to agent: {status} {body}");
    page.wait_true(
        "traffic arrow",
        &format!(
            "return !!document.querySelector('#arrows .traffic-arrow[data-source=\"{caller}\"][data-target=\"{helper}\"]');"
        ),
    )
    .await?;
    // The open panel's activity follows the calls to its workspace.
    page.wait_true(
        "activity of the calls",
        "return document.getElementById('panel-activity').textContent.includes('message/send');",
    )
    .await?;
    page.screenshot("chat.png").await?;

    // After a reload the conversation is still there (the agents' own call is not part of it).
    page.client.refresh().await?;
    page.wait_connection("live", PAGE_WAIT).await?;
    open_panel(page, &helper, "Helper").await?;
    page.wait_for("chat history", PAGE_WAIT, CHAT_SCRIPT, vec![], |v| {
        *v == with_notify
    })
    .await?;
    // The arrow was transient.
    page.wait_true(
        "arrow gone",
        "return document.querySelectorAll('#arrows .traffic-arrow').length === 0;",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn browser_chat_through_the_proxy_with_live_notify_and_history() {
    let Some(mut t) = BrowserTest::start(
        "browser_chat_through_the_proxy_with_live_notify_and_history",
        "browser-chat",
        TestOptions::default(),
    )
    .await
    else {
        return;
    };
    let agent = EchoAgent::start();
    let outcome = chat_scenario(&mut t, &agent).await;
    agent.handle.stop(false).await;
    t.finish(outcome).await;
}

// ------------------------------------------------------------------ approvals

fn approval_item(id: &str) -> String {
    format!("#approvals-list li[data-approval-id=\"{id}\"]")
}

async fn wait_in_inbox(
    page: &Page,
    id: &str,
    action: &str,
    within: std::time::Duration,
) -> anyhow::Result<()> {
    page.wait_for(
        "approval in the inbox",
        within,
        "const li = document.querySelector(arguments[0]); return li ? li.textContent : null;",
        vec![json!(approval_item(id))],
        |v| v.as_str().is_some_and(|text| text.contains(action)),
    )
    .await
    .map(|_| ())
}

async fn wait_gone(page: &Page, id: &str, within: std::time::Duration) -> anyhow::Result<()> {
    page.wait_for(
        "approval gone from the inbox",
        within,
        "return document.querySelector(arguments[0]) === null;",
        vec![json!(approval_item(id))],
        |v| *v == json!(true),
    )
    .await
    .map(|_| ())
}

async fn request_approval(
    app: &TestApp,
    token: &str,
    ws: &str,
    action: &str,
) -> anyhow::Result<String> {
    let (status, body) = post_as(
        app,
        token,
        None,
        &format!("/workspaces/{ws}/approvals"),
        json!({ "action": action, "reason": "The release is tagged" }),
    )
    .await?;
    anyhow::ensure!(status == 201, "request approval: {status} {body}");
    Ok(body["approval_id"].as_str().unwrap_or_default().to_string())
}

/// The stored request, once its status is `status`.
async fn wait_decided(app: &TestApp, ws: &str, id: &str, status: &str) -> anyhow::Result<Value> {
    let path = format!("/workspaces/{ws}/approvals");
    let find = |list: &Value| {
        list.as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == json!(id)).cloned())
            .unwrap_or(Value::Null)
    };
    let decided = crate::helpers::eventually(PAGE_WAIT, || async {
        find(&app.get(&path).await.1)["status"] == json!(status)
    })
    .await;
    let row = find(&app.get(&path).await.1);
    anyhow::ensure!(decided, "approval {id} not {status}: {row}");
    Ok(row)
}

async fn approvals_scenario(t: &mut BrowserTest) -> anyhow::Result<()> {
    let app = &t.app;
    let ops = create_at(app, "Ops", "Runs production", None, 80.0, 60.0).await;
    let deployer = create_at(app, "Deployer", "Ships releases", Some(&ops), 80.0, 200.0).await;
    let token = register_at(app, &deployer, "http://127.0.0.1:9/unused").await?;
    // One request is waiting before the pages open (the load), the other arrives live.
    let waiting = request_approval(app, &token, &deployer, "Deploy release 41").await?;

    let (a, b) = (t.open().await?, t.open().await?);
    let app = &t.app;
    for page in &t.pages {
        page.wait_connection("live", PAGE_WAIT).await?;
        page.click("#approvals-button").await?;
        wait_in_inbox(page, &waiting, "Deploy release 41", PAGE_WAIT).await?;
    }
    let live = request_approval(app, &token, &deployer, "Deploy release 42").await?;
    for page in &t.pages {
        wait_in_inbox(page, &live, "Deploy release 42", PROPAGATION).await?;
        page.wait_true(
            "count badge",
            "return document.getElementById('approvals-count').textContent === '2';",
        )
        .await?;
    }
    t.pages[a].screenshot("approvals.png").await?;

    // Approved on page A: gone from page B's inbox, live.
    t.pages[a]
        .click(&format!("{} button.approve", approval_item(&waiting)))
        .await?;
    wait_gone(&t.pages[b], &waiting, PROPAGATION).await?;
    wait_gone(&t.pages[a], &waiting, PAGE_WAIT).await?;
    let row = wait_decided(app, &deployer, &waiting, "approved").await?;
    anyhow::ensure!(row["decided_by"] == json!("human"), "decided by: {row}");

    // Denied on page B: gone from page A's inbox, live.
    t.pages[b]
        .click(&format!("{} button.deny", approval_item(&live)))
        .await?;
    wait_gone(&t.pages[a], &live, PROPAGATION).await?;
    wait_decided(app, &deployer, &live, "denied").await?;
    for page in &t.pages {
        page.wait_true(
            "empty inbox",
            "return document.getElementById('approvals-count').hidden \
             && document.getElementById('approvals-list').textContent.includes('Nothing waits');",
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn browser_approvals_decided_on_one_page_leave_the_other() {
    let Some(mut t) = BrowserTest::start(
        "browser_approvals_decided_on_one_page_leave_the_other",
        "browser-approvals",
        TestOptions::default(),
    )
    .await
    else {
        return;
    };
    let outcome = approvals_scenario(&mut t).await;
    t.finish(outcome).await;
}
