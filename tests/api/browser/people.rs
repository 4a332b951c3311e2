//! People on the canvas (issue 14, item 6) in real browsers: each page signs in once with its
//! own API key and then holds nothing but the HttpOnly cookie; a viewer's drag is refused by
//! the server and the card goes back; an editor's drag moves the card on the other pages; the
//! header shows who is viewing; the side panel says who moved the card.

use fantoccini::Locator;
use serde_json::{json, Value};

use super::{create_at, wait_saved, BrowserTest, Page, PAGE_WAIT, PROPAGATION};
use crate::helpers::{TestApp, TestOptions};

const ADMIN: &str = "browser-people-admin-token";

/// Issues an API key with `role` (as the admin); returns (id, key).
async fn issue_key(app: &TestApp, name: &str, role: &str) -> anyhow::Result<(String, String)> {
    let (status, body) = app
        .post("/keys", json!({ "name": name, "role": role }))
        .await;
    anyhow::ensure!(status == 201, "create key {name}: {status} {body}");
    Ok((
        body["id"].as_str().unwrap_or_default().to_string(),
        body["key"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Signs a page in through its sign-in form and waits for the live stream.
async fn sign_in(page: &Page, key: &str) -> anyhow::Result<()> {
    page.wait_true(
        "the sign-in form",
        "return !document.getElementById('token-form').hidden;",
    )
    .await?;
    let input = page.client.find(Locator::Id("token-input")).await?;
    input.send_keys(key).await?;
    page.click("#token-submit").await?;
    page.wait_connection("live", PAGE_WAIT).await?;
    Ok(())
}

/// The page keeps no credential where scripts or URLs could leak it.
async fn holds_no_token(page: &Page) -> anyhow::Result<()> {
    let held = page
        .js(
            "return { storage: localStorage.length + sessionStorage.length, \
                      cookie: document.cookie, url: location.href };",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        held["storage"] == json!(0)
            && !held["cookie"]
                .as_str()
                .unwrap_or_default()
                .contains("canopy_session")
            && !held["url"].as_str().unwrap_or_default().contains("token"),
        "{}: a credential is within reach of scripts: {held}",
        page.name
    );
    Ok(())
}

const PRESENT_SCRIPT: &str = "return [...document.querySelectorAll('#presence .person')]\
    .map((li) => ({ id: li.dataset.actorId, name: li.title, text: li.textContent }));";

fn present_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .filter_map(|p| p["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn people_scenario(t: &mut BrowserTest) -> anyhow::Result<()> {
    let (viewer_id, viewer_key) = issue_key(&t.app, "Vera Viewer", "viewer").await?;
    let (editor_id, editor_key) = issue_key(&t.app, "Eddie Editor", "editor").await?;
    let (third_id, third_key) = issue_key(&t.app, "Theo Third", "viewer").await?;
    let target = create_at(&t.app, "Target", "", None, 120.0, 120.0).await;

    let (viewer, editor, third) = (t.open().await?, t.open().await?, t.open().await?);
    let app = &t.app;
    for (page, key) in [
        (viewer, &viewer_key),
        (editor, &editor_key),
        (third, &third_key),
    ] {
        let page = &t.pages[page];
        page.fit_window().await?;
        sign_in(page, key).await?;
        page.wait_card("card after sign-in", &target, PAGE_WAIT, |c| {
            c["visible"] == json!(true)
        })
        .await?;
        holds_no_token(page).await?;
    }

    // The third page shows everyone viewing, initials with names on hover.
    let everyone = [viewer_id.clone(), editor_id.clone(), third_id.clone()];
    let present = t.pages[third]
        .wait_for(
            "three people present",
            PAGE_WAIT,
            PRESENT_SCRIPT,
            vec![],
            |list| {
                let ids = present_ids(list);
                everyone.iter().all(|id| ids.contains(id))
            },
        )
        .await?;
    let names: Vec<&str> = present
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    anyhow::ensure!(
        names.iter().any(|n| n.starts_with("Vera Viewer"))
            && names.iter().any(|n| n.starts_with("Eddie Editor")),
        "names on hover: {present}"
    );
    anyhow::ensure!(
        present
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["text"] == json!("EE")),
        "initials: {present}"
    );
    let whoami = t.pages[third]
        .js(
            "return document.getElementById('whoami').textContent;",
            vec![],
        )
        .await?;
    anyhow::ensure!(whoami == json!("Theo Third (viewer)"), "who am I: {whoami}");

    // The viewer's drag is refused by the server: the page says so and the card goes back.
    let before = t.pages[viewer].card(&target).await?;
    t.pages[viewer].drag_card(&target, 80.0, 40.0).await?;
    t.pages[viewer]
        .wait_true(
            "the refusal",
            "return [...document.querySelectorAll('#toasts .toast-error')]\
               .some((t) => t.textContent.includes('Move refused') && t.textContent.includes('403'));",
        )
        .await?;
    t.pages[viewer]
        .wait_card("card back after the refusal", &target, PAGE_WAIT, |c| {
            c["x"] == before["x"] && c["y"] == before["y"] && !super::has_class(c, "dragging")
        })
        .await?;
    let saved = super::get_workspace(app, &target).await;
    anyhow::ensure!(
        saved["x"].as_f64() == Some(120.0) && saved["y"].as_f64() == Some(120.0),
        "the viewer's drag was saved: {saved}"
    );
    // Nor did it offer the server drag frames it would refuse (refused frames count against
    // the socket).
    const SENT: &str = "return window.canopy.dragFrameCount();";
    let sent = t.pages[viewer].js(SENT, vec![]).await?;
    anyhow::ensure!(
        sent == json!(0),
        "the viewer's page sent {sent} drag frames"
    );

    // The editor's drag moves the card on the other pages.
    t.pages[editor].drag_card(&target, 80.0, 40.0).await?;
    for page in [viewer, third] {
        t.pages[page]
            .wait_card("card moved by the editor", &target, PROPAGATION, |c| {
                c["x"].as_f64() == Some(200.0) && c["y"].as_f64() == Some(160.0)
            })
            .await?;
    }
    wait_saved(app, "editor's drop", &target, |ws| {
        ws["x"].as_f64() == Some(200.0) && ws["y"].as_f64() == Some(160.0)
    })
    .await?;
    let sent = t.pages[editor].js(SENT, vec![]).await?;
    anyhow::ensure!(
        sent.as_i64().is_some_and(|n| n > 0),
        "the editor's page sent no drag frames"
    );

    // The third page's side panel says who moved it.
    t.pages[third]
        .js("window.canopy.select(arguments[0]);", vec![json!(target)])
        .await?;
    t.pages[third]
        .wait_true(
            "who moved it",
            "const d = document.getElementById('panel-details').textContent; \
             return d.includes('Moved by') && d.includes('Eddie Editor');",
        )
        .await?;

    // Signing out ends the session: the page asks to sign in again, and the others see it leave.
    t.pages[viewer].click("#sign-out").await?;
    t.pages[viewer]
        .wait_true(
            "the sign-in form after sign-out",
            "return !document.getElementById('token-form').hidden;",
        )
        .await?;
    t.pages[third]
        .wait_for(
            "the viewer left",
            PAGE_WAIT,
            PRESENT_SCRIPT,
            vec![],
            |list| !present_ids(list).contains(&viewer_id),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn browser_viewer_refused_editor_moves_and_everyone_present() {
    let Some(mut t) = BrowserTest::start(
        "browser_viewer_refused_editor_moves_and_everyone_present",
        "browser-people",
        TestOptions::default().var("ADMIN_TOKEN", ADMIN),
    )
    .await
    else {
        return;
    };
    let outcome = people_scenario(&mut t).await;
    t.finish(outcome).await;
}
