//! A canvas that stays readable at scale (issue 17) in a real browser: the org a script creates
//! without positions opens with nothing on top of anything, and stays so after Arrange; the
//! search box finds workspaces by role, highlights them and brings them into view, opening the
//! collapsed group that hides one.

use std::path::Path;
use std::time::Duration;

use fantoccini::key::Key;
use serde_json::{json, Value};

use super::{create_at, BrowserTest, Page, PAGE_WAIT, WINDOW};
use crate::helpers::{rate_limits_off, TestApp};

/// Divisions × teams × agents of the issue's org, under one root: 1 + 5 + 30 + 240 = 276
/// workspaces (the issue's "280").
const DIVISIONS: usize = 5;
const TEAMS: usize = 6;
const AGENTS: usize = 8;
const ORG_SIZE: usize = 1 + DIVISIONS + DIVISIONS * TEAMS + DIVISIONS * TEAMS * AGENTS;

/// Arrange moves up to every card: its events may take a while to reach a busy page.
const ARRANGE_WAIT: Duration = Duration::from_secs(30);

/// Creates a workspace the way a script would: no `canvas`, so the server places it.
async fn create_unplaced(app: &TestApp, name: &str, role: &str, parent: Option<&str>) -> String {
    let mut body = json!({ "name": name, "role": role });
    if let Some(parent) = parent {
        body["parent_id"] = json!(parent);
    }
    let (status, body) = app.post("/workspaces", body).await;
    assert_eq!(status, 201, "create {name}: {body}");
    body["id"].as_str().unwrap().to_string()
}

/// Seeds the org; returns every id.
async fn seed_org(app: &TestApp) -> Vec<String> {
    let root = create_unplaced(app, "Acme", "Company", None).await;
    let mut ids = vec![root.clone()];
    for d in 0..DIVISIONS {
        let division =
            create_unplaced(app, &format!("Division {d}"), "Division lead", Some(&root)).await;
        ids.push(division.clone());
        for t in 0..TEAMS {
            let team =
                create_unplaced(app, &format!("Team {d}.{t}"), "Team lead", Some(&division)).await;
            ids.push(team.clone());
            for a in 0..AGENTS {
                let role = if a == 0 { "Reviewer" } else { "Agent" };
                ids.push(
                    create_unplaced(app, &format!("Agent {d}.{t}.{a}"), role, Some(&team)).await,
                );
            }
        }
    }
    ids
}

/// The canvas's geometry in world units (layout offsets, untouched by zoom): for every shown
/// card its head and its area, and for every pair that breaks a rule a line saying which.
/// Rules: no two shown heads overlap; no two sibling areas (children of one parent, or two
/// roots) overlap; every child's area lies inside its parent's.
const GEOMETRY_SCRIPT: &str = r#"
const cards = [...document.querySelectorAll('#world .card')].filter((el) => !el.classList.contains('is-hidden'));
const byId = new Map();
for (const el of cards) {
  const head = el.querySelector('.card-head');
  const area = { l: el.offsetLeft, t: el.offsetTop, r: el.offsetLeft + el.offsetWidth, b: el.offsetTop + el.offsetHeight };
  const h = { l: area.l + head.offsetLeft, t: area.t + head.offsetTop };
  h.r = h.l + head.offsetWidth;
  h.b = h.t + head.offsetHeight;
  byId.set(el.dataset.workspaceId, { id: el.dataset.workspaceId, parent: el.dataset.parentId || '', area, head: h,
    name: el.querySelector('.card-name').textContent });
}
const overlap = (a, b) => a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b;
const inside = (a, b) => a.l >= b.l && a.t >= b.t && a.r <= b.r && a.b <= b.b;
const all = [...byId.values()];
const problems = [];
for (let i = 0; i < all.length && problems.length < 20; i++) {
  for (let j = i + 1; j < all.length && problems.length < 20; j++) {
    const a = all[i], b = all[j];
    if (overlap(a.head, b.head)) problems.push(`heads overlap: ${a.name} ${JSON.stringify(a.head)} / ${b.name} ${JSON.stringify(b.head)}`);
    const siblings = a.parent === b.parent || (!byId.has(a.parent) && !byId.has(b.parent));
    if (siblings && overlap(a.area, b.area)) problems.push(`sibling areas overlap: ${a.name} / ${b.name}`);
  }
}
for (const c of all) {
  const p = byId.get(c.parent);
  if (p && !inside(c.area, p.area)) problems.push(`${c.name} ${JSON.stringify(c.area)} outside ${p.name} ${JSON.stringify(p.area)}`);
}
const heads = all.map((c) => c.head);
const spread = heads.length ? {
  w: Math.max(...heads.map((h) => h.r)) - Math.min(...heads.map((h) => h.l)),
  h: Math.max(...heads.map((h) => h.b)) - Math.min(...heads.map((h) => h.t)),
} : null;
return { shown: all.length, problems, spread };
"#;

/// Every card the page shows where the server has it (dataset x/y against `GET /workspaces`).
const SAME_AS_SERVER_SCRIPT: &str = r#"
const want = arguments[0];
let differ = 0;
for (const ws of want) {
  const el = document.querySelector(`.card[data-workspace-id="${ws.id}"]`);
  if (!el || Number(el.dataset.x) !== ws.x || Number(el.dataset.y) !== ws.y) differ += 1;
}
return differ;
"#;

async fn check_geometry(page: &Page, state: &str) -> anyhow::Result<Value> {
    let geometry = page.js(GEOMETRY_SCRIPT, vec![]).await?;
    anyhow::ensure!(
        geometry["shown"] == json!(ORG_SIZE),
        "{state}: {} cards shown, want {ORG_SIZE}",
        geometry["shown"]
    );
    let problems = geometry["problems"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(
        problems.is_empty(),
        "{state}: the canvas is not readable: {problems:#?}"
    );
    Ok(geometry)
}

/// Waits until every card the page shows is where the server has it.
async fn wait_like_server(page: &Page, app: &TestApp, within: Duration) -> anyhow::Result<()> {
    let (status, list) = app.get("/workspaces").await;
    anyhow::ensure!(status == 200, "GET /workspaces: {status} {list}");
    let want: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|ws| json!({ "id": ws["id"], "x": ws["x"], "y": ws["y"] }))
        .collect();
    anyhow::ensure!(
        want.len() == ORG_SIZE,
        "server has {} workspaces",
        want.len()
    );
    page.wait_for(
        "every card where the server has it",
        within,
        SAME_AS_SERVER_SCRIPT,
        vec![json!(want)],
        |differ| *differ == json!(0),
    )
    .await?;
    Ok(())
}

/// Checks a PNG screenshot without trusting the browser's word for it: the signature, the
/// header's size, and (decompressed and unfiltered) more than a handful of distinct colours,
/// which a blank or single-colour page would not have.
fn check_png(path: &Path, (width, height): (u32, u32)) -> anyhow::Result<()> {
    use std::io::Read;
    let bytes = std::fs::read(path)?;
    anyhow::ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}: not a PNG",
        path.display()
    );
    let (mut pos, mut idat, mut header) = (8, Vec::new(), None);
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into()?) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = bytes
            .get(pos + 8..pos + 8 + len)
            .ok_or_else(|| anyhow::anyhow!("truncated chunk"))?;
        match kind {
            b"IHDR" => header = Some(data.to_vec()),
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let header = header.ok_or_else(|| anyhow::anyhow!("no IHDR"))?;
    let w = u32::from_be_bytes(header[0..4].try_into()?);
    let h = u32::from_be_bytes(header[4..8].try_into()?);
    anyhow::ensure!((w, h) == (width, height), "screenshot is {w}×{h}");
    let (depth, colour) = (header[8], header[9]);
    let channels = match colour {
        2 => 3,
        6 => 4,
        other => anyhow::bail!("unexpected PNG colour type {other}"),
    };
    anyhow::ensure!(depth == 8, "unexpected bit depth {depth}");
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw)?;
    let stride = w as usize * channels;
    anyhow::ensure!(raw.len() == h as usize * (stride + 1), "pixel data size");
    let mut prev = vec![0u8; stride];
    let mut colours = std::collections::HashSet::new();
    for row in raw.chunks(stride + 1) {
        let filter = row[0];
        let mut line = row[1..].to_vec();
        for i in 0..stride {
            let a = if i >= channels { line[i - channels] } else { 0 } as i16;
            let b = prev[i] as i16;
            let c = if i >= channels { prev[i - channels] } else { 0 } as i16;
            let add = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => anyhow::bail!("bad filter {other}"),
            };
            line[i] = line[i].wrapping_add(add as u8);
        }
        for px in line.chunks(channels) {
            if colours.len() < 1000 {
                colours.insert(px[..3].to_vec());
            }
        }
        prev = line;
    }
    anyhow::ensure!(
        colours.len() >= 50,
        "{}: the screenshot is (nearly) blank: {} colours",
        path.display(),
        colours.len()
    );
    Ok(())
}

/// Saves a screenshot into `dir` and checks it (see [`check_png`]).
async fn screenshot_into(page: &Page, dir: &Path, file: &str) -> anyhow::Result<()> {
    let png = page.client.screenshot().await?;
    let path = dir.join(file);
    std::fs::write(&path, png)?;
    check_png(&path, WINDOW)?;
    eprintln!("screenshot: {}", path.display());
    Ok(())
}

async fn org_scenario(t: &mut BrowserTest) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("canopy-scale-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let ids = seed_org(&t.app).await;
    assert_eq!(ids.len(), ORG_SIZE);

    let page = t.open().await?;
    let page = &t.pages[page];
    page.wait_connection("live", PAGE_WAIT).await?;
    page.wait_for(
        "every card",
        PAGE_WAIT,
        "return document.querySelectorAll('#world .card').length;",
        vec![],
        |n| *n == json!(ORG_SIZE),
    )
    .await?;
    let loaded = check_geometry(page, "after load").await?;
    // Not a pile in the corner: the cards spread over more than one card's width and height.
    anyhow::ensure!(
        loaded["spread"]["w"].as_f64().unwrap_or(0.0) > 2.0 * 220.0
            && loaded["spread"]["h"].as_f64().unwrap_or(0.0) > 2.0 * 92.0,
        "after load the org is a pile: {loaded}"
    );
    page.click("#fit-view").await?;
    // A person sees the whole org framed: one company area holding five division areas, each
    // with six team areas of eight agent cards, none covering another.
    screenshot_into(page, &dir, "org-after-load.png").await?;

    page.click("#arrange").await?;
    // The button is disabled while the request runs; once it is enabled again the arrange has
    // committed, and its events follow.
    page.wait_true(
        "arrange answered",
        "return !document.getElementById('arrange').disabled;",
    )
    .await?;
    wait_like_server(page, &t.app, ARRANGE_WAIT).await?;
    check_geometry(page, "after Arrange").await?;
    page.click("#fit-view").await?;
    // A person sees the same org laid out as a tidy org chart: rows of areas, nothing overlapping.
    screenshot_into(page, &dir, "org-after-arrange.png").await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test]
async fn browser_org_of_280_reads_after_load_and_after_arrange() {
    let Some(mut t) = BrowserTest::start(
        "browser_org_of_280_reads_after_load_and_after_arrange",
        "scale-org",
        rate_limits_off(),
    )
    .await
    else {
        return;
    };
    let outcome = org_scenario(&mut t).await;
    t.finish(outcome).await;
}

/// What the search shows: the match and current classes, whether each card's head is inside
/// the visible canvas, and the status line.
const SEARCH_SCRIPT: &str = r#"
const view = document.getElementById('viewport').getBoundingClientRect();
const cards = [...document.querySelectorAll('#world .card')].map((el) => {
  const h = el.querySelector('.card-head').getBoundingClientRect();
  return {
    name: el.querySelector('.card-name').textContent,
    match: el.classList.contains('match'),
    current: el.classList.contains('current'),
    hidden: el.classList.contains('is-hidden'),
    inView: h.width > 0 && h.left >= view.left && h.right <= view.right && h.top >= view.top && h.bottom <= view.bottom,
    opacity: Number(getComputedStyle(el.querySelector('.card-head')).opacity),
  };
});
return { cards, status: document.getElementById('search-status').textContent };
"#;

fn cards_where(view: &Value, pick: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut names: Vec<String> = view["cards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| pick(c))
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

async fn search_scenario(t: &mut BrowserTest) -> anyhow::Result<()> {
    let app = &t.app;
    // Far apart, so framing the matches has to move the view.
    let hq = create_at(app, "Acme HQ", "Company root", None, 0.0, 0.0).await;
    let support = create_at(app, "Support", "Answers customers", Some(&hq), 40.0, 150.0).await;
    create_at(
        app,
        "Triage",
        "Sorts the inbox",
        Some(&support),
        40.0,
        300.0,
    )
    .await;
    let ops = create_at(app, "Ops", "Keeps the lights on", None, 4000.0, 3000.0).await;
    create_at(app, "Pager", "Sorts the alerts", Some(&ops), 4000.0, 3150.0).await;
    let far = create_at(app, "Archive", "Keeps records", None, 9000.0, 200.0).await;
    let hidden = create_at(app, "Filing", "Sorts old mail", Some(&far), 9000.0, 350.0).await;
    let (status, body) = app
        .patch(&format!("/workspaces/{far}"), json!({ "collapsed": true }))
        .await;
    anyhow::ensure!(status == 200, "collapse: {status} {body}");

    let page = t.open().await?;
    let (app, page) = (&t.app, &t.pages[page]);
    page.wait_connection("live", PAGE_WAIT).await?;
    page.wait_card("collapsed group's child", &hidden, PAGE_WAIT, |c| {
        c["visible"] == json!(false)
    })
    .await?;

    // Typing a role (any case) highlights exactly the workspaces with it and brings the shown
    // ones into view; the rest are dimmed; the one inside the collapsed group is counted.
    page.type_into("#search", "SORTS").await?;
    let shown = page
        .wait_for("matches in view", PAGE_WAIT, SEARCH_SCRIPT, vec![], |v| {
            cards_where(v, |c| c["match"] == json!(true)) == ["Filing", "Pager", "Triage"]
                && cards_where(v, |c| {
                    c["match"] == json!(true) && c["inView"] == json!(true)
                }) == ["Pager", "Triage"]
        })
        .await?;
    anyhow::ensure!(
        shown["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("3 matches") && s.contains("1 hidden")),
        "status line: {shown}"
    );
    anyhow::ensure!(
        cards_where(&shown, |c| c["opacity"].as_f64().unwrap_or(1.0) < 0.5)
            == ["Acme HQ", "Archive", "Ops", "Support"],
        "the other cards are dimmed: {shown}"
    );

    // Enter walks the matches in reading order; the hidden one's group opens to show it.
    let search = page.client.find(fantoccini::Locator::Id("search")).await?;
    for want in ["Triage", "Filing"] {
        search.send_keys(&Key::Enter.to_string()).await?;
        page.wait_for(
            "the current match in view",
            PAGE_WAIT,
            SEARCH_SCRIPT,
            vec![],
            |v| {
                cards_where(v, |c| {
                    c["current"] == json!(true) && c["inView"] == json!(true)
                }) == [want]
            },
        )
        .await?;
    }
    super::wait_saved(app, "the group opened by the search", &far, |ws| {
        ws["collapsed"] == json!(false)
    })
    .await?;

    // Esc clears: nothing highlighted, nothing dimmed.
    search.send_keys(&Key::Escape.to_string()).await?;
    page.wait_for("search cleared", PAGE_WAIT, SEARCH_SCRIPT, vec![], |v| {
        cards_where(v, |c| c["match"] == json!(true)).is_empty()
            && cards_where(v, |c| c["opacity"].as_f64().unwrap_or(1.0) < 0.5).is_empty()
            && v["status"] == json!("")
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn browser_search_highlights_frames_and_opens_groups() {
    let Some(mut t) = BrowserTest::start(
        "browser_search_highlights_frames_and_opens_groups",
        "scale-search",
        rate_limits_off(),
    )
    .await
    else {
        return;
    };
    let outcome = search_scenario(&mut t).await;
    t.finish(outcome).await;
}
