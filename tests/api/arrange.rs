//! Placement and Arrange (issue 17; README "Placement and Arrange"): workspaces created or
//! reparented without a position get one where nothing overlaps, and `POST /canvas/arrange`
//! lays trees out as a tidy chart in one commit. Every check reads `GET /workspaces` and the
//! event stream, and applies the page's geometry (`static/js/canvas.js`), written out here
//! again on purpose rather than borrowed from the server.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::helpers::*;

/// The page's card head, px (`CARD_W`, `CARD_H` in `static/js/canvas.js`).
const CARD_W: f64 = 220.0;
const CARD_H: f64 = 92.0;
/// The page's padding around children in a parent's area, px (`PAD` there).
const PAD: f64 = 14.0;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl Rect {
    fn head(x: f64, y: f64) -> Rect {
        Rect {
            l: x,
            t: y,
            r: x + CARD_W,
            b: y + CARD_H,
        }
    }

    fn overlaps(&self, o: &Rect) -> bool {
        self.l < o.r && o.l < self.r && self.t < o.b && o.t < self.b
    }

    fn contains(&self, o: &Rect) -> bool {
        o.l >= self.l && o.r <= self.r && o.t >= self.t && o.b <= self.b
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Card {
    parent: Option<String>,
    x: f64,
    y: f64,
    collapsed: bool,
}

/// The canvas as `GET /workspaces` has it: id → card, and the ids oldest first.
#[derive(Clone, Debug, Default)]
struct Board {
    cards: HashMap<String, Card>,
    order: Vec<String>,
}

impl Board {
    async fn load(app: &TestApp) -> Board {
        let (status, list) = app.get("/workspaces").await;
        assert_eq!(status, 200, "{list}");
        let mut board = Board::default();
        for w in list.as_array().unwrap() {
            let id = w["id"].as_str().unwrap().to_string();
            board.order.push(id.clone());
            board.cards.insert(
                id,
                Card {
                    parent: w["parent_id"].as_str().map(str::to_string),
                    x: w["x"].as_f64().unwrap(),
                    y: w["y"].as_f64().unwrap(),
                    collapsed: w["collapsed"].as_bool().unwrap(),
                },
            );
        }
        board
    }

    fn children(&self, parent: Option<&str>) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| self.cards[*id].parent.as_deref() == parent)
            .cloned()
            .collect()
    }

    fn head(&self, id: &str) -> Rect {
        let c = &self.cards[id];
        Rect::head(c.x, c.y)
    }

    /// `fit()` of `static/js/canvas.js`.
    fn area(&self, id: &str) -> Rect {
        let c = &self.cards[id];
        let mut a = Rect::head(c.x, c.y);
        let kids = self.children(Some(id));
        if c.collapsed || kids.is_empty() {
            return a;
        }
        for k in kids {
            let cb = self.area(&k);
            a.l = a.l.min(cb.l - PAD);
            a.t = a.t.min(cb.t - PAD);
            a.r = a.r.max(cb.r + PAD);
            a.b = a.b.max(cb.b + PAD);
        }
        a.l = a.l.min(c.x - PAD);
        a.t = a.t.min(c.y - PAD);
        a.r = a.r.max(c.x + CARD_W + PAD);
        a
    }

    fn visible(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = self.children(None);
        while let Some(id) = stack.pop() {
            if !self.cards[&id].collapsed {
                stack.extend(self.children(Some(&id)));
            }
            out.push(id);
        }
        out
    }

    /// What breaks the rules the page needs to be readable: no two visible heads overlap, no
    /// two sibling areas overlap, every child's area inside its parent's and clear of its
    /// parent's head.
    fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let visible = self.visible();
        for (i, a) in visible.iter().enumerate() {
            for b in &visible[i + 1..] {
                if self.head(a).overlaps(&self.head(b)) {
                    out.push(format!("heads {a} and {b} overlap"));
                }
            }
        }
        let mut parents: Vec<Option<&str>> = vec![None];
        parents.extend(
            visible
                .iter()
                .filter(|v| !self.cards[*v].collapsed)
                .map(|v| Some(v.as_str())),
        );
        for p in parents {
            let kids = self.children(p);
            for (i, a) in kids.iter().enumerate() {
                if let Some(p) = p {
                    if !self.area(p).contains(&self.area(a)) {
                        out.push(format!("{a} outside its parent's area"));
                    }
                    if self.area(a).overlaps(&self.head(p)) {
                        out.push(format!("{a}'s area overlaps its parent's head"));
                    }
                }
                for b in &kids[i + 1..] {
                    if self.area(a).overlaps(&self.area(b)) {
                        out.push(format!("sibling areas {a} and {b} overlap"));
                    }
                }
            }
        }
        out
    }

    fn positions(&self) -> HashMap<String, (f64, f64)> {
        self.cards
            .iter()
            .map(|(id, c)| (id.clone(), (c.x, c.y)))
            .collect()
    }
}

/// A canvas socket read on a task of its own (so its queue never fills), applying every event
/// to its own copy of the board, as a page would: WORKSPACE_PROVISIONING's position is relative
/// to the parent, WORKSPACE_LAYOUT_CHANGED's absolute.
struct Watcher {
    frames: mpsc::UnboundedReceiver<Value>,
    board: HashMap<String, Card>,
    last_seq: i64,
    seen: Vec<Value>,
}

impl Watcher {
    async fn connect(app: &TestApp) -> Watcher {
        app.settle().await;
        let mut socket = app.ws("").await;
        let connected = socket.next_json().await;
        assert_eq!(connected["event"], "CONNECTED", "{connected}");
        let last_seq = connected["payload"]["seq"].as_i64().unwrap();
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let frame = socket.next_event().await;
                if tx.send(frame).is_err() {
                    return;
                }
            }
        });
        Watcher {
            frames,
            board: Board::default().cards,
            last_seq,
            seen: Vec::new(),
        }
    }

    /// Starts from what `GET /workspaces` shows (for a watcher connected after seeding).
    fn with_board(mut self, board: &Board) -> Watcher {
        self.board = board.cards.clone();
        self
    }

    /// Applies frames until the watcher has seen every committed event.
    async fn catch_up(&mut self, app: &TestApp) {
        let head = app.live_events().await.last().map_or(0, |e| e.0);
        while self.last_seq < head {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.frames.recv())
                .await
                .expect("the watcher gets every event within 20 s")
                .expect("the socket stays open");
            let seq = frame["seq"].as_i64().unwrap();
            assert_eq!(seq, self.last_seq + 1, "no gap, no duplicate: {frame}");
            self.last_seq = seq;
            self.apply(&frame);
            self.seen.push(frame);
        }
    }

    fn apply(&mut self, frame: &Value) {
        let id = frame["workspace_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let p = &frame["payload"];
        match frame["event"].as_str().unwrap() {
            "WORKSPACE_PROVISIONING" => {
                let parent = p["parent_id"].as_str().map(str::to_string);
                let origin = parent
                    .as_ref()
                    .map_or((0.0, 0.0), |pid| (self.board[pid].x, self.board[pid].y));
                let collapsed = self.board.get(&id).is_some_and(|c| c.collapsed);
                self.board.insert(
                    id,
                    Card {
                        parent,
                        x: origin.0 + p["x"].as_f64().unwrap(),
                        y: origin.1 + p["y"].as_f64().unwrap(),
                        collapsed,
                    },
                );
            }
            "WORKSPACE_LAYOUT_CHANGED" => {
                let card = self.board.get_mut(&id).expect("a known workspace");
                card.x = p["x"].as_f64().unwrap();
                card.y = p["y"].as_f64().unwrap();
                card.collapsed = p["collapsed"].as_bool().unwrap();
            }
            "WORKSPACE_MOVED" => {
                self.board.get_mut(&id).expect("a known workspace").parent =
                    p["new_parent_id"].as_str().map(str::to_string);
            }
            _ => {}
        }
    }

    fn positions(&self) -> HashMap<String, (f64, f64)> {
        self.board
            .iter()
            .map(|(id, c)| (id.clone(), (c.x, c.y)))
            .collect()
    }
}

/// A mixed tree of 100 workspaces as (index, parent index), parents first: 4 roots, then each
/// node under an earlier one of depth < 3 (fixed pseudo-random choice, so every run is alike).
fn mixed_tree() -> Vec<(usize, Option<usize>, usize)> {
    let mut out: Vec<(usize, Option<usize>, usize)> = (0..4).map(|i| (i, None, 0)).collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    while out.len() < 100 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let pick = (seed >> 33) as usize % out.len();
        let (parent, _, depth) = out[pick];
        if depth < 3 {
            out.push((out.len(), Some(parent), depth + 1));
        }
    }
    out
}

fn breadth_first(tree: &[(usize, Option<usize>, usize)]) -> Vec<(usize, Option<usize>)> {
    let mut out: Vec<(usize, Option<usize>, usize)> = tree.to_vec();
    out.sort_by_key(|(i, _, depth)| (*depth, *i));
    out.into_iter().map(|(i, p, _)| (i, p)).collect()
}

fn depth_first(tree: &[(usize, Option<usize>, usize)]) -> Vec<(usize, Option<usize>)> {
    fn visit(
        tree: &[(usize, Option<usize>, usize)],
        node: usize,
        out: &mut Vec<(usize, Option<usize>)>,
    ) {
        out.push((node, tree[node].1));
        for (child, parent, _) in tree {
            if *parent == Some(node) {
                visit(tree, *child, out);
            }
        }
    }
    let mut out = Vec::new();
    for (root, parent, _) in tree {
        if parent.is_none() {
            visit(tree, *root, &mut out);
        }
    }
    out
}

async fn create(app: &TestApp, name: &str, parent: Option<&str>) -> String {
    app.create_workspace(name, parent).await
}

async fn placement_in_order(order: Vec<(usize, Option<usize>)>) {
    let db = TestDb::new();
    let app = spawn_on(&db, rate_limits_off()).await;
    let mut watcher = Watcher::connect(&app).await;
    let mut ids: HashMap<usize, String> = HashMap::new();
    for (i, parent) in order {
        let parent_id = parent.map(|p| ids[&p].clone());
        let id = create(&app, &format!("w{i}"), parent_id.as_deref()).await;
        ids.insert(i, id);
    }
    let board = Board::load(&app).await;
    assert_eq!(board.cards.len(), 100);
    let broken = board.violations();
    assert!(
        broken.is_empty(),
        "{} rules broken: {broken:?}",
        broken.len()
    );
    // No pile: every workspace has a place of its own.
    let mut places: Vec<(f64, f64)> = board.cards.values().map(|c| (c.x, c.y)).collect();
    places.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    places.dedup();
    assert_eq!(places.len(), 100, "no two workspaces share a position");

    watcher.catch_up(&app).await;
    assert_eq!(
        watcher.positions(),
        board.positions(),
        "a canvas applying the events agrees with GET /workspaces"
    );
}

#[tokio::test]
async fn one_hundred_workspaces_created_breadth_first_without_positions_never_overlap() {
    placement_in_order(breadth_first(&mixed_tree())).await;
}

#[tokio::test]
async fn one_hundred_workspaces_created_depth_first_without_positions_never_overlap() {
    placement_in_order(depth_first(&mixed_tree())).await;
}

/// Two small trees, server-placed: `(roots, children of each root)`.
async fn two_trees(app: &TestApp) -> (Vec<String>, Vec<Vec<String>>) {
    let mut roots = Vec::new();
    let mut kids = Vec::new();
    for r in 0..2 {
        let root = create(app, &format!("root{r}"), None).await;
        let mut under = Vec::new();
        for t in 0..3 {
            let team = create(app, &format!("team{r}.{t}"), Some(&root)).await;
            for a in 0..t {
                create(app, &format!("agent{r}.{t}.{a}"), Some(&team)).await;
            }
            under.push(team);
        }
        roots.push(root);
        kids.push(under);
    }
    (roots, kids)
}

#[tokio::test]
async fn reparenting_without_a_position_lands_inside_the_new_parent_beside_its_siblings() {
    let (app, _db) = spawn_app().await;
    let (roots, kids) = two_trees(&app).await;
    let before = Board::load(&app).await;
    assert!(before.violations().is_empty(), "{:?}", before.violations());
    let mut watcher = Watcher::connect(&app).await.with_board(&before);

    // The last team of the first tree (two agents under it) moves under the second root.
    let team = kids[0][2].clone();
    let shape = |b: &Board| -> Vec<(f64, f64)> {
        let t = &b.cards[&team];
        b.children(Some(&team))
            .iter()
            .map(|a| (b.cards[a].x - t.x, b.cards[a].y - t.y))
            .collect()
    };
    let (status, body) = app
        .patch(
            &format!("/workspaces/{team}"),
            json!({ "parent_id": roots[1] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after = Board::load(&app).await;
    assert!(after.violations().is_empty(), "{:?}", after.violations());
    let (t, p) = (&after.cards[&team], &after.cards[&roots[1]]);
    assert_eq!(t.parent.as_deref(), Some(roots[1].as_str()));
    assert_eq!(
        t.y,
        p.y + CARD_H + 28.0,
        "a gap below the new parent's head"
    );
    let moved_area = after.area(&team);
    for sibling in &kids[1] {
        assert!(
            after.area(sibling).r + 28.0 <= moved_area.l,
            "right of its new siblings"
        );
    }
    assert!(after.area(&roots[1]).contains(&moved_area));
    assert_eq!(shape(&before), shape(&after), "the subtree keeps its shape");

    watcher.catch_up(&app).await;
    assert_eq!(watcher.positions(), after.positions());
    let kinds: Vec<(&str, &str)> = watcher
        .seen
        .iter()
        .map(|f| {
            (
                f["event"].as_str().unwrap(),
                f["workspace_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds[0], ("WORKSPACE_MOVED", team.as_str()));
    for id in std::iter::once(&team).chain(after.children(Some(&team)).iter()) {
        assert!(
            kinds.contains(&("WORKSPACE_LAYOUT_CHANGED", id.as_str())),
            "{id} announced at its new place"
        );
    }
}

/// A pile: `n_roots` trees of 3 teams × 3 agents, every workspace at (0, 0) as given.
async fn pile(app: &TestApp, n_roots: usize) -> Vec<String> {
    let at = json!({ "x": 0, "y": 0 });
    let mut roots = Vec::new();
    for r in 0..n_roots {
        let (_, body) = app
            .post(
                "/workspaces",
                json!({ "name": format!("r{r}"), "canvas": at }),
            )
            .await;
        let root = body["id"].as_str().unwrap().to_string();
        for t in 0..3 {
            let (_, body) = app
                .post(
                    "/workspaces",
                    json!({ "name": format!("t{r}.{t}"), "parent_id": root, "canvas": at }),
                )
                .await;
            let team = body["id"].as_str().unwrap().to_string();
            for a in 0..3 {
                let (status, _) = app
                    .post(
                        "/workspaces",
                        json!({ "name": format!("a{r}.{t}.{a}"), "parent_id": team, "canvas": at }),
                    )
                    .await;
                assert_eq!(status, 201);
            }
        }
        roots.push(root);
    }
    roots
}

async fn arrange(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/canvas/arrange", body).await
}

#[tokio::test]
async fn arranging_the_canvas_is_one_commit_that_leaves_a_tidy_chart() {
    let (app, _db) = spawn_app().await;
    pile(&app, 2).await;
    let before = Board::load(&app).await;
    assert!(!before.violations().is_empty(), "the pile overlaps");
    let mut watcher = Watcher::connect(&app).await.with_board(&before);
    let head_before = app.live_events().await.last().unwrap().0;

    let (status, body) = arrange(&app, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let moved = body["moved"].as_array().unwrap();
    let after = Board::load(&app).await;
    // The answer lists exactly the workspaces whose position changed, where they are now.
    let mut changed: Vec<&str> = after
        .order
        .iter()
        .filter(|id| after.cards[*id] != before.cards[*id])
        .map(String::as_str)
        .collect();
    assert!(
        changed.len() >= after.cards.len() - 1,
        "the pile came apart"
    );
    let mut answered: Vec<&str> = moved.iter().map(|m| m["id"].as_str().unwrap()).collect();
    changed.sort();
    answered.sort();
    assert_eq!(changed, answered);
    for m in moved {
        let card = &after.cards[m["id"].as_str().unwrap()];
        assert_eq!(
            (m["x"].as_f64(), m["y"].as_f64()),
            (Some(card.x), Some(card.y))
        );
    }
    assert!(after.violations().is_empty(), "{:?}", after.violations());
    for id in &after.order {
        let kids = after.children(Some(id));
        if kids.is_empty() {
            continue;
        }
        let head = after.head(id);
        let row_l = kids
            .iter()
            .map(|k| after.area(k).l)
            .fold(f64::MAX, f64::min);
        let row_r = kids
            .iter()
            .map(|k| after.area(k).r)
            .fold(f64::MIN, f64::max);
        assert_eq!(
            (head.l + head.r) / 2.0,
            (row_l + row_r) / 2.0,
            "the parent is centred over its children"
        );
        for k in &kids {
            assert!(after.area(k).t >= head.b, "children below their parent");
        }
    }

    // One commit: exactly the moved workspaces' events, with contiguous seqs.
    watcher.catch_up(&app).await;
    let seqs: Vec<i64> = watcher
        .seen
        .iter()
        .map(|f| f["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (head_before + 1..=head_before + moved.len() as i64).collect::<Vec<_>>()
    );
    assert!(watcher
        .seen
        .iter()
        .all(|f| f["event"] == "WORKSPACE_LAYOUT_CHANGED"));
    let mut announced: Vec<&str> = watcher
        .seen
        .iter()
        .map(|f| f["workspace_id"].as_str().unwrap())
        .collect();
    let mut listed: Vec<&str> = moved.iter().map(|m| m["id"].as_str().unwrap()).collect();
    announced.sort();
    listed.sort();
    assert_eq!(announced, listed);
    assert_eq!(watcher.positions(), after.positions());

    // Arranged already: nothing moves, nothing is announced.
    let (status, body) = arrange(&app, json!({ "root_id": null })).await;
    assert_eq!((status, body), (200, json!({ "moved": [] })));
    assert_eq!(app.live_events().await.last().unwrap().0, watcher.last_seq);
}

#[tokio::test]
async fn arranging_a_subtree_keeps_its_root_and_moves_other_trees_only_to_make_room() {
    let (app, _db) = spawn_app().await;
    let (roots, _) = two_trees(&app).await;
    // A third tree far to the right, out of everybody's way.
    let (_, body) = app
        .post(
            "/workspaces",
            json!({ "name": "far", "canvas": { "x": 100000, "y": 0 } }),
        )
        .await;
    let far = body["id"].as_str().unwrap().to_string();
    create(&app, "far child", Some(&far)).await;
    let before = Board::load(&app).await;
    let first_tree: Vec<String> = before
        .order
        .iter()
        .filter(|id| {
            let mut cur = Some(id.to_string());
            while let Some(c) = cur {
                if c == roots[0] {
                    return true;
                }
                cur = before.cards[&c].parent.clone();
            }
            false
        })
        .cloned()
        .collect();
    let mut watcher = Watcher::connect(&app).await.with_board(&before);
    let head_before = app.live_events().await.last().unwrap().0;

    let (status, body) = arrange(&app, json!({ "root_id": roots[1] })).await;
    assert_eq!(status, 200, "{body}");
    let after = Board::load(&app).await;
    assert_eq!(
        (after.cards[&roots[1]].x, after.cards[&roots[1]].y),
        (before.cards[&roots[1]].x, before.cards[&roots[1]].y),
        "the subtree's root keeps its place"
    );
    assert!(after.violations().is_empty(), "{:?}", after.violations());
    for id in after.children(Some(&far)).iter().chain([&far]) {
        assert_eq!(
            after.cards[id], before.cards[id],
            "the far tree is untouched"
        );
    }
    // The first tree either stayed or moved aside as a whole, by one offset.
    let offsets: Vec<(f64, f64)> = first_tree
        .iter()
        .map(|id| {
            (
                after.cards[id].x - before.cards[id].x,
                after.cards[id].y - before.cards[id].y,
            )
        })
        .collect();
    assert!(offsets.iter().all(|o| *o == offsets[0]), "{offsets:?}");
    assert_eq!(offsets[0].1, 0.0, "room is made sideways");

    watcher.catch_up(&app).await;
    let moved = body["moved"].as_array().unwrap();
    assert!(!moved.is_empty());
    assert_eq!(watcher.seen.len(), moved.len());
    assert_eq!(watcher.last_seq, head_before + moved.len() as i64);
    assert_eq!(watcher.positions(), after.positions());
}

#[tokio::test]
async fn arrange_refuses_unknown_roots_bad_bodies_and_viewers() {
    let db = TestDb::new();
    let app = spawn_on(&db, rate_limits_off().var("ADMIN_TOKEN", "arrange-admin")).await;
    let root = app.create_workspace("root", None).await;

    let missing = uuid::Uuid::new_v4().to_string();
    let (status, body) = arrange(&app, json!({ "root_id": missing })).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["root_id"], missing.as_str());
    assert!(body["error"].as_str().unwrap().contains(&missing), "{body}");

    // A removed workspace is not a live one.
    let gone = app.create_workspace("gone", None).await;
    let (status, _) = app.delete(&format!("/workspaces/{gone}")).await;
    assert_eq!(status, 200);
    let (status, body) = arrange(&app, json!({ "root_id": gone })).await;
    assert_eq!(status, 404, "{body}");

    for bad in [json!({ "root_id": "nope" }), json!({ "root_id": 7 })] {
        let (status, body) = arrange(&app, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("root_id"),
            "{bad}: {body}"
        );
    }

    let (status, key) = app
        .post("/keys", json!({ "name": "Vic Viewer", "role": "viewer" }))
        .await;
    assert_eq!(status, 201, "{key}");
    let response = app
        .client
        .post(app.url("/canvas/arrange"))
        .bearer_auth(key["key"].as_str().unwrap())
        .json(&json!({ "root_id": root }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let events = app.live_events().await.len();
    let (status, body) = arrange(&app, json!({ "root_id": root })).await;
    assert_eq!(
        (status, body),
        (200, json!({ "moved": [] })),
        "a lone card stays"
    );
    assert_eq!(app.live_events().await.len(), events);
}

#[tokio::test]
async fn a_retried_arrange_with_its_idempotency_key_is_answered_without_running_again() {
    let (app, _db) = spawn_app().await;
    pile(&app, 1).await;
    let send = || {
        app.client
            .post(app.url("/canvas/arrange"))
            .header("Idempotency-Key", "arrange-once")
            .json(&json!({}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert!(!first["moved"].as_array().unwrap().is_empty(), "{first}");
    let events = app.live_events().await.len();
    // Someone drags a card away; the retry must not arrange it back.
    let dragged = first["moved"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .patch(
            &format!("/workspaces/{dragged}"),
            json!({ "x": -5000, "y": -5000 }),
        )
        .await;
    assert_eq!(status, 200);

    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first, "the stored answer");
    assert_eq!(
        app.live_events().await.len(),
        events + 1,
        "only the drag's event"
    );
    let (_, ws) = app.get(&format!("/workspaces/{dragged}")).await;
    assert_eq!((&ws["x"], &ws["y"]), (&json!(-5000), &json!(-5000)));
}

/// The deepest hierarchy the server accepts (`MAX_HIERARCHY_DEPTH`, README "Placement and
/// Arrange"): a root is level 1.
const MAX_LEVELS: usize = 64;

#[tokio::test]
async fn a_chain_at_the_maximum_depth_arranges_and_one_level_more_is_refused() {
    let db = TestDb::new();
    let app = spawn_on(&db, rate_limits_off()).await;
    let mut chain: Vec<String> = Vec::new();
    for level in 0..MAX_LEVELS {
        let id = create(&app, &format!("c{level}"), chain.last().map(String::as_str)).await;
        chain.push(id);
    }
    let (status, body) = app
        .post(
            "/workspaces",
            json!({ "name": "too deep", "parent_id": chain[MAX_LEVELS - 1] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("parent_id"),
        "{body}"
    );

    // A two-level tree fits under level 62, not under level 63.
    let top = create(&app, "top", None).await;
    create(&app, "below", Some(&top)).await;
    let (status, body) = app
        .patch(
            &format!("/workspaces/{top}"),
            json!({ "parent_id": chain[MAX_LEVELS - 2] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("parent_id"),
        "{body}"
    );
    let (status, body) = app
        .patch(
            &format!("/workspaces/{top}"),
            json!({ "parent_id": chain[MAX_LEVELS - 3] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = arrange(&app, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = arrange(&app, json!({ "root_id": chain[0] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get("/health").await.0, 200, "still serving");
    let board = Board::load(&app).await;
    assert!(board.violations().is_empty(), "{:?}", board.violations());

    // Rows made deeper before the bound existed: arrange refuses them and changes nothing.
    let deeper = create(&app, "from before", None).await;
    let (child, parent): (uuid::Uuid, uuid::Uuid) = (
        deeper.parse().unwrap(),
        chain[MAX_LEVELS - 1].parse().unwrap(),
    );
    db.store()
        .run(move |c| {
            canopy::store::workspaces::set_parent(c, child, Some(parent), chrono::Utc::now())
                .map_err(canopy::store::StoreError::from)
        })
        .await
        .unwrap();
    let events = app.live_events().await.len();
    for body in [json!({}), json!({ "root_id": chain[0] })] {
        let (status, answer) = arrange(&app, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["root_id"], chain[0].as_str(), "{answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with("root_id"),
            "{answer}"
        );
    }
    assert_eq!(app.live_events().await.len(), events, "nothing moved");
    assert_eq!(app.get("/health").await.0, 200, "still serving");
    // Placement walks any depth.
    let (status, body) = app
        .post(
            "/workspaces",
            json!({ "name": "top 2", "parent_id": chain[3] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn expanding_a_collapsed_workspace_makes_room_in_the_same_commit() {
    let (app, _db) = spawn_app().await;
    let r = create(&app, "R", None).await;
    create(&app, "C1", Some(&r)).await;
    let c2 = create(&app, "C2", Some(&r)).await;
    let (status, body) = app
        .patch(&format!("/workspaces/{r}"), json!({ "collapsed": true }))
        .await;
    assert_eq!(status, 200, "{body}");
    // Placed beside the hidden children: they take no room until shown.
    create(&app, "C3", Some(&r)).await;
    let r2 = create(&app, "R2", None).await;
    let k = create(&app, "K", Some(&r2)).await;
    let events = app.live_events().await.len();
    let (status, body) = app
        .patch(&format!("/workspaces/{r}"), json!({ "collapsed": false }))
        .await;
    assert_eq!(status, 200, "{body}");
    let board = Board::load(&app).await;
    assert!(board.violations().is_empty(), "{:?}", board.violations());
    assert!(!board.head(&c2).overlaps(&board.head(&k)));
    assert!(!board.area(&r).overlaps(&board.area(&r2)));
    // R2 and K moving aside, then R's own change: one commit, contiguous seqs.
    let after = app.live_events().await;
    let new: Vec<_> = after[events..].to_vec();
    let kinds: Vec<(&str, Option<&str>)> = new
        .iter()
        .map(|(_, kind, id)| (kind.as_str(), id.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("WORKSPACE_LAYOUT_CHANGED", Some(r2.as_str())),
            ("WORKSPACE_LAYOUT_CHANGED", Some(k.as_str())),
            ("WORKSPACE_LAYOUT_CHANGED", Some(r.as_str())),
        ]
    );
    assert!(new.windows(2).all(|w| w[1].0 == w[0].0 + 1), "{new:?}");
}

#[tokio::test]
async fn a_card_placed_after_a_person_moved_its_parent_lands_on_no_head() {
    let (app, _db) = spawn_app().await;
    let p = create(&app, "P", None).await;
    let c = create(&app, "C", Some(&p)).await;
    let (status, body) = app
        .patch(&format!("/workspaces/{c}"), json!({ "x": 100, "y": -150 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let k = create(&app, "K", Some(&c)).await;
    let board = Board::load(&app).await;
    for other in [&p, &c] {
        assert!(
            !board.head(&k).overlaps(&board.head(other)),
            "K on the head of {other}"
        );
    }
    assert_eq!(board.cards[&k].y, -150.0 + CARD_H + 28.0, "a gap below C");
}

#[tokio::test]
async fn canvas_coordinates_are_bounded_where_they_enter() {
    let (app, _db) = spawn_app().await;
    let (status, body) = app
        .post(
            "/workspaces",
            json!({ "name": "far", "canvas": { "x": 1.79e308, "y": 0 } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("canvas.x"),
        "{body}"
    );
    let (status, body) = app
        .post(
            "/workspaces",
            json!({ "name": "edge", "canvas": { "x": -1e7, "y": 1e7 } }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    for (x, y, field) in [(1e7 + 1.0, 0.0, "x"), (0.0, -1e300, "y")] {
        let (status, body) = app
            .patch(&format!("/workspaces/{id}"), json!({ "x": x, "y": y }))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with(field), "{body}");
    }
    let (status, body) = app
        .patch(&format!("/workspaces/{id}"), json!({ "x": 1e7, "y": -1e7 }))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn expanding_a_collapsed_workspace_makes_room_for_its_children_in_the_same_commit() {
    let (app, _db) = spawn_app().await;
    let a = create(&app, "A", None).await;
    for k in 0..3 {
        create(&app, &format!("a{k}"), Some(&a)).await;
    }
    let (status, _) = app
        .patch(&format!("/workspaces/{a}"), json!({ "collapsed": true }))
        .await;
    assert_eq!(status, 200);
    // Placed beside the collapsed card: inside the area A has when expanded.
    let b = create(&app, "B", None).await;
    let before = Board::load(&app).await;
    let mut expanded_in_place = before.clone();
    expanded_in_place.cards.get_mut(&a).unwrap().collapsed = false;
    assert!(
        !expanded_in_place.violations().is_empty(),
        "without room made, A's children would cover B"
    );
    let mut watcher = Watcher::connect(&app).await.with_board(&before);

    let (status, _) = app
        .patch(&format!("/workspaces/{a}"), json!({ "collapsed": false }))
        .await;
    assert_eq!(status, 200);
    let after = Board::load(&app).await;
    assert!(after.violations().is_empty(), "{:?}", after.violations());
    for id in &after.order {
        if *id != b {
            assert_eq!(
                (after.cards[id].x, after.cards[id].y),
                (before.cards[id].x, before.cards[id].y),
                "only B moves"
            );
        }
    }
    watcher.catch_up(&app).await;
    let announced: Vec<(&str, &str)> = watcher
        .seen
        .iter()
        .map(|f| {
            (
                f["event"].as_str().unwrap(),
                f["workspace_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        announced,
        vec![
            ("WORKSPACE_LAYOUT_CHANGED", b.as_str()),
            ("WORKSPACE_LAYOUT_CHANGED", a.as_str()),
        ]
    );
    assert_eq!(watcher.positions(), after.positions());
}

/// One commit with more events than a socket's queue holds (an Arrange of 26 cards, queues of
/// 4 frames) reaches every canvas whole and in order, and an agent's socket gets exactly the
/// events about workspaces it may reach; neither is closed as a slow consumer (4008), because
/// a commit takes one place in a socket's queue, not one per event.
#[tokio::test]
async fn a_commit_with_more_events_than_a_sockets_queue_reaches_it_whole() {
    let db = TestDb::new();
    let app = spawn_on(&db, rate_limits_off().var("WS_QUEUE_CAPACITY", "4")).await;
    let roots = pile(&app, 2).await;
    let board = Board::load(&app).await;
    let token = register(&app, &roots[0]).await;
    let mut canvas = app.ws("").await;
    assert_eq!(canvas.next_json().await["event"], "CONNECTED");
    let url = format!("ws://127.0.0.1:{}/ws", app.port);
    let bearer = format!("Bearer {token}");
    let mut agent = WsClient::connect(
        &url,
        &[("X-Workspace-ID", &roots[0]), ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(agent.next_json().await["event"], "CONNECTED");
    app.settle().await;
    let head_before = app.live_events().await.last().unwrap().0;

    let (status, body) = arrange(&app, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let moved: Vec<String> = body["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(moved.len() > 20, "the pile came apart: {body}");

    // The canvas: every event of the commit, in order, and the socket still open.
    let mut seqs = Vec::new();
    while seqs.len() < moved.len() {
        let seq = canvas.next_event().await["seq"].as_i64().unwrap();
        if seq > head_before {
            seqs.push(seq);
        }
    }
    assert_eq!(
        seqs,
        (head_before + 1..=head_before + moved.len() as i64).collect::<Vec<_>>()
    );

    // The agent of the first root reaches itself, its descendants and the other root.
    let mut reach = vec![roots[0].clone(), roots[1].clone()];
    let mut i = 0;
    while i < reach.len() {
        if reach[i] != roots[1] {
            reach.extend(board.children(Some(&reach[i].clone())));
        }
        i += 1;
    }
    let mut expected: Vec<&String> = moved.iter().filter(|id| reach.contains(id)).collect();
    assert!(
        expected.len() > 4,
        "more than a queue's worth: {expected:?}"
    );
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let frame = agent.next_event().await;
        if frame["event"] == "WORKSPACE_LAYOUT_CHANGED" {
            seen.push(frame["workspace_id"].as_str().unwrap().to_string());
        }
    }
    let mut seen: Vec<&String> = seen.iter().collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);

    // Both still open: a later event arrives.
    app.patch(
        &format!("/workspaces/{}", roots[0]),
        json!({ "x": 5, "y": 5 }),
    )
    .await;
    assert_eq!(canvas.next_event().await["workspace_id"], roots[0].as_str());
    assert_eq!(agent.next_event().await["workspace_id"], roots[0].as_str());
}
