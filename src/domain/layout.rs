//! Canvas geometry: where a workspace's card goes when nobody chose a place (placement), how a
//! tree is laid out as a tidy org chart (Arrange), and how neighbours make room when an area
//! grows. Pure: the command loads the canvas once, runs these rules in memory, and writes back
//! the nodes that moved (README "Placement and Arrange").
//!
//! The geometry is the page's (`static/js/canvas.js`): a card head is [`CARD_W`] × [`CARD_H`]
//! px at the workspace's stored (absolute) `x`, `y`; a parent's area is the box enclosing its
//! head and every child's area with [`PAD`] px around them (`fit()` there); a collapsed
//! workspace, or one without children, is its bare head. Change one side, change the other.
//!
//! Rules, each kept by every operation here (and checked by the tests below and in
//! `tests/api/arrange.rs`): no two sibling areas overlap (so different subtrees never do), no
//! child's area overlaps its parent's head, hence no two card heads overlap. Touching is not
//! overlapping. Positions a person chose are left as they are unless an area that grew (or an
//! arranged subtree) needs their room.

use std::collections::HashMap;

use crate::domain::hierarchy::MAX_HIERARCHY_DEPTH;
use taffy::prelude::{
    length, AlignItems, Display, FlexDirection, NodeId, Size, Style, TaffyMaxContent, TaffyTree,
};
use uuid::Uuid;

/// Width of a card head, px (`CARD_W` in `static/js/canvas.js`).
pub const CARD_W: f64 = 220.0;
/// Height of a card head, px (`CARD_H` in `static/js/canvas.js`).
pub const CARD_H: f64 = 92.0;
/// Space between a parent's area edge and its children's areas, px (`PAD` in
/// `static/js/canvas.js`).
pub const PAD: f64 = 14.0;
/// Space the server leaves between sibling areas, and between a parent's head and the row of
/// its children, px. Twice [`PAD`], so a card that later gains children (its area then grows
/// by `PAD` on each side) still does not reach its neighbour.
pub const GAP: f64 = 2.0 * PAD;

/// Stack of the thread that computes Arrange's layout, bytes. Taffy recurses once per
/// level of the tree: measured in a debug build on a chain, the layout needs about 16.3 KiB
/// per level (275 KiB at 16 levels, 1051 KiB at 64, 2091 KiB at 128). 4 MiB is about 250
/// levels, four times [`MAX_HIERARCHY_DEPTH`]; a test lays out the maximum depth on half of
/// it.
pub const LAYOUT_STACK: usize = 4 * 1024 * 1024;

/// Arrange refused: the tree under `root` has `levels` levels, more than
/// [`MAX_HIERARCHY_DEPTH`] (rows made before the bound existed). Nothing moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooDeep {
    pub root: Uuid,
    pub levels: usize,
}

/// An axis-aligned box in world coordinates, px: left, top, right, bottom.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub l: f64,
    pub t: f64,
    pub r: f64,
    pub b: f64,
}

impl Rect {
    /// The head of a card whose top-left corner is at (`x`, `y`).
    pub fn head(x: f64, y: f64) -> Rect {
        Rect {
            l: x,
            t: y,
            r: x + CARD_W,
            b: y + CARD_H,
        }
    }

    /// Whether the interiors intersect (sharing an edge is not overlapping).
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.l < other.r && other.l < self.r && self.t < other.b && other.t < self.b
    }

    /// Whether `other` lies within this box (edges included).
    pub fn contains(&self, other: &Rect) -> bool {
        other.l >= self.l && other.r <= self.r && other.t >= self.t && other.b <= self.b
    }

    fn shifted(self, dx: f64, dy: f64) -> Rect {
        Rect {
            l: self.l + dx,
            t: self.t + dy,
            r: self.r + dx,
            b: self.b + dy,
        }
    }

    fn union(self, other: Rect) -> Rect {
        Rect {
            l: self.l.min(other.l),
            t: self.t.min(other.t),
            r: self.r.max(other.r),
            b: self.b.max(other.b),
        }
    }

    fn center_x(&self) -> f64 {
        (self.l + self.r) / 2.0
    }
}

/// One workspace on the canvas: its parent, its head's top-left corner (absolute, px) and
/// whether its children are hidden.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node {
    pub parent: Option<Uuid>,
    pub x: f64,
    pub y: f64,
    pub collapsed: bool,
}

/// The live workspaces of a canvas with their positions, changed in memory by placement and
/// arrange; [`Canvas::moved`] lists what changed since it was loaded.
#[derive(Clone, Debug, Default)]
pub struct Canvas {
    nodes: HashMap<Uuid, Node>,
    /// Creation order (lower is older): the tie-breaker that keeps every rule deterministic.
    rank: HashMap<Uuid, usize>,
    /// Children of each parent (`None`: the roots), oldest first.
    children: HashMap<Option<Uuid>, Vec<Uuid>>,
    /// Positions as loaded, to tell which nodes moved.
    original: HashMap<Uuid, (f64, f64)>,
}

impl Canvas {
    /// A canvas of `nodes`, given oldest first (the order of `GET /workspaces`). A node whose
    /// parent is not among them is treated as a root.
    pub fn new(nodes: impl IntoIterator<Item = (Uuid, Node)>) -> Canvas {
        let mut canvas = Canvas::default();
        let nodes: Vec<(Uuid, Node)> = nodes.into_iter().collect();
        for (id, node) in &nodes {
            canvas.rank.insert(*id, canvas.rank.len());
            canvas.nodes.insert(*id, *node);
            canvas.original.insert(*id, (node.x, node.y));
        }
        for (id, node) in &nodes {
            let parent = node.parent.filter(|p| canvas.nodes.contains_key(p));
            canvas.nodes.get_mut(id).expect("just inserted").parent = parent;
            canvas.children.entry(parent).or_default().push(*id);
        }
        canvas
    }

    /// The node `id`, if it is on the canvas.
    pub fn node(&self, id: Uuid) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// Children of `parent` (`None`: the roots), oldest first.
    pub fn children_of(&self, parent: Option<Uuid>) -> &[Uuid] {
        self.children.get(&parent).map_or(&[], Vec::as_slice)
    }

    /// The head of `id`.
    pub fn head(&self, id: Uuid) -> Rect {
        let n = &self.nodes[&id];
        Rect::head(n.x, n.y)
    }

    /// The area of `id` as the page draws it: its head, or — expanded, with children — the box
    /// around its head and its children's areas with [`PAD`] around them (`fit()` in
    /// `static/js/canvas.js`: the head is padded left, top and right, the children on every
    /// side).
    pub fn area(&self, id: Uuid) -> Rect {
        // Iterative (no recursion per level): the visible subtree in pre-order, then areas
        // from the deepest up, each from its children's.
        let mut order = Vec::new();
        let mut stack = vec![id];
        while let Some(cur) = stack.pop() {
            order.push(cur);
            if !self.nodes[&cur].collapsed {
                stack.extend_from_slice(self.children_of(Some(cur)));
            }
        }
        let mut areas: HashMap<Uuid, Rect> = HashMap::with_capacity(order.len());
        for &cur in order.iter().rev() {
            let n = &self.nodes[&cur];
            let head = Rect::head(n.x, n.y);
            let kids = self.children_of(Some(cur));
            if n.collapsed || kids.is_empty() {
                areas.insert(cur, head);
                continue;
            }
            let mut area = Rect {
                l: head.l - PAD,
                t: head.t - PAD,
                r: head.r + PAD,
                b: head.b,
            };
            for c in kids {
                let a = areas[c];
                area = area.union(Rect {
                    l: a.l - PAD,
                    t: a.t - PAD,
                    r: a.r + PAD,
                    b: a.b + PAD,
                });
            }
            areas.insert(cur, area);
        }
        areas[&id]
    }

    /// Levels of the tree under `id` as Arrange lays it out: 1 for a bare card (no children,
    /// or collapsed), one more than its tallest visible child's. Iterative.
    pub fn height(&self, id: Uuid) -> usize {
        let mut tallest = 0;
        let mut stack = vec![(id, 1)];
        while let Some((cur, level)) = stack.pop() {
            tallest = tallest.max(level);
            if !self.nodes[&cur].collapsed {
                stack.extend(self.children_of(Some(cur)).iter().map(|&c| (c, level + 1)));
            }
        }
        tallest
    }

    /// Nodes whose position differs from the loaded one, oldest first, with their new
    /// position. Nodes added since loading are not listed (their creation announces them).
    pub fn moved(&self) -> Vec<(Uuid, f64, f64)> {
        let mut out: Vec<(Uuid, f64, f64)> = self
            .original
            .iter()
            .filter_map(|(id, &(x, y))| {
                let n = self.nodes.get(id)?;
                (n.x != x || n.y != y).then_some((*id, n.x, n.y))
            })
            .collect();
        out.sort_by_key(|(id, _, _)| self.rank[id]);
        out
    }

    /// Shows or hides the children of `id` (its area becomes its bare head when hidden).
    pub fn set_collapsed(&mut self, id: Uuid, collapsed: bool) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.collapsed = collapsed;
        }
    }

    /// Shows the children of a collapsed `id`: its area grows back around them, and
    /// neighbours in the way make room (as for placement). Positions of `id` and its
    /// descendants stay as saved.
    pub fn expand(&mut self, id: Uuid) {
        let Some(node) = self.nodes.get(&id).copied() else {
            return;
        };
        if !node.collapsed {
            return;
        }
        let before = self.ancestor_areas(node.parent);
        self.set_collapsed(id, false);
        self.make_room(id, &before);
    }

    /// Adds `id` at a position a person chose: stored as given, nobody makes room.
    pub fn insert_at(&mut self, id: Uuid, parent: Option<Uuid>, x: f64, y: f64) {
        self.attach(
            id,
            Node {
                parent,
                x,
                y,
                collapsed: false,
            },
        );
    }

    /// Adds a new workspace `id` under `parent` (`None`: a root) where the server chooses,
    /// returning its head's position: to the right of its siblings' areas, one [`GAP`] below
    /// its parent's head (a root: to the right of every root, level with the highest). Areas
    /// that grow because of it make room ([`Canvas::moved`] then lists the nodes that moved).
    pub fn place_new(&mut self, id: Uuid, parent: Option<Uuid>) -> (f64, f64) {
        let parent = parent.filter(|p| self.nodes.contains_key(p));
        let before = self.ancestor_areas(parent);
        let (x, y) = self.slot(parent, Rect::head(0.0, 0.0), (0.0, 0.0));
        let (x, y) = self.clear_of_heads(x, y);
        self.attach(
            id,
            Node {
                parent,
                x,
                y,
                collapsed: false,
            },
        );
        self.make_room(id, &before);
        (x, y)
    }

    /// Moves `id` (with its whole subtree, which keeps its shape) under `new_parent` where the
    /// server chooses, as [`Canvas::place_new`] places a new workspace.
    pub fn reparent(&mut self, id: Uuid, new_parent: Option<Uuid>) {
        if !self.nodes.contains_key(&id) {
            return;
        }
        let new_parent = new_parent.filter(|p| self.nodes.contains_key(p));
        self.detach(id);
        let before = self.ancestor_areas(new_parent);
        let area = self.area(id);
        let n = self.nodes[&id];
        let (x, y) = self.slot(new_parent, area, (n.x, n.y));
        self.shift_subtree(id, x - n.x, y - n.y);
        let node = self.nodes[&id];
        self.attach(
            id,
            Node {
                parent: new_parent,
                ..node
            },
        );
        self.make_room(id, &before);
    }

    /// Lays out the tree under `root` (or, `None`, every tree) as a tidy top-down org chart: a
    /// parent's head centred above the row of its children's areas, [`GAP`] between siblings
    /// and below a head, children left to right in their current left-to-right order. The
    /// subtree's root keeps its position (every tree: the trees stand side by side from the
    /// top-left corner of the current content); a collapsed node is laid out as a bare card and
    /// its hidden descendants move with it. Neighbours of an arranged subtree make room.
    ///
    /// A tree of more than [`MAX_HIERARCHY_DEPTH`] levels (rows made before the bound
    /// existed) is refused with [`TooDeep`] naming its root, and nothing moves.
    pub fn arrange(&mut self, root: Option<Uuid>) -> Result<(), TooDeep> {
        let roots = match root {
            Some(r) if self.nodes.contains_key(&r) => vec![r],
            Some(_) => Vec::new(),
            None => self.children_of(None).to_vec(),
        };
        for r in roots {
            let levels = self.height(r);
            if levels > MAX_HIERARCHY_DEPTH {
                return Err(TooDeep { root: r, levels });
            }
        }
        match root {
            Some(root) if self.nodes.contains_key(&root) => {
                let before = self.ancestor_areas(self.nodes[&root].parent);
                let heads = self.tidy(&[root]);
                let n = self.nodes[&root];
                let (hx, hy) = heads[&root];
                self.apply_layout(&heads, n.x - hx, n.y - hy);
                self.make_room(root, &before);
            }
            Some(_) => {}
            None => {
                let roots = self.ordered(self.children_of(None));
                let Some(origin) = roots.iter().map(|&r| self.area(r)).reduce(Rect::union) else {
                    return Ok(());
                };
                // The row of trees starts at the content's top-left corner: that corner is the
                // row's, whose top-left is (0, 0) in the layout.
                let heads = self.tidy(&roots);
                self.apply_layout(&heads, origin.l, origin.t);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ internals

    fn attach(&mut self, id: Uuid, node: Node) {
        if !self.rank.contains_key(&id) {
            self.rank.insert(id, self.rank.len());
        }
        self.nodes.insert(id, node);
        let rank = self.rank[&id];
        let siblings = self.children.entry(node.parent).or_default();
        let at = siblings.partition_point(|s| self.rank[s] < rank);
        siblings.insert(at, id);
    }

    fn detach(&mut self, id: Uuid) {
        let parent = self.nodes[&id].parent;
        if let Some(siblings) = self.children.get_mut(&parent) {
            siblings.retain(|s| *s != id);
        }
    }

    /// Areas of `start` and each of its ancestors, before a change below them.
    fn ancestor_areas(&self, start: Option<Uuid>) -> HashMap<Uuid, Rect> {
        let mut out = HashMap::new();
        let mut cur = start;
        while let Some(id) = cur {
            if out.contains_key(&id) {
                break;
            }
            out.insert(id, self.area(id));
            cur = self.nodes[&id].parent;
        }
        out
    }

    /// Where the head of a subtree with area `area` and head at `head` goes under `parent`:
    /// its area right of every sibling's area (a first child: its area's left edge at the
    /// parent head's left edge), its head [`GAP`] below the parent's head. A root: right of
    /// every root's area, its head level with the highest root head ((0, 0) on an empty canvas).
    fn slot(&self, parent: Option<Uuid>, area: Rect, head: (f64, f64)) -> (f64, f64) {
        let right_of_siblings = self
            .children_of(parent)
            .iter()
            .map(|&s| self.area(s).r + GAP)
            .reduce(f64::max);
        let (left, y) = match parent {
            Some(p) => {
                let ph = self.nodes[&p];
                (right_of_siblings.unwrap_or(ph.x), ph.y + CARD_H + GAP)
            }
            None => {
                let top = self
                    .children_of(None)
                    .iter()
                    .map(|&r| self.nodes[&r].y)
                    .reduce(f64::min);
                (right_of_siblings.unwrap_or(0.0), top.unwrap_or(0.0))
            }
        };
        (left + (head.0 - area.l), y)
    }

    /// The first position at or right of (`x`, `y`) where a new card's head overlaps no card
    /// head: after people moved cards, a slot may be under a head someone put there, and the
    /// card steps right past it (at most once per card, so this ends).
    fn clear_of_heads(&self, mut x: f64, y: f64) -> (f64, f64) {
        for _ in 0..=self.nodes.len() {
            let head = Rect::head(x, y);
            let Some(right) = self
                .nodes
                .values()
                .map(|n| Rect::head(n.x, n.y))
                .filter(|h| h.overlaps(&head))
                .map(|h| h.r)
                .reduce(f64::max)
            else {
                break;
            };
            x = right + GAP;
        }
        (x, y)
    }

    fn shift_subtree(&mut self, id: Uuid, dx: f64, dy: f64) {
        if dx == 0.0 && dy == 0.0 {
            return;
        }
        let mut stack = vec![id];
        while let Some(cur) = stack.pop() {
            if let Some(n) = self.nodes.get_mut(&cur) {
                n.x += dx;
                n.y += dy;
            }
            stack.extend_from_slice(self.children_of(Some(cur)));
        }
    }

    /// `changed`'s area grew or moved: at its level, siblings whose areas it now overlaps move
    /// away (those centred left of it to the left, the others to the right, each subtree as a
    /// whole, just far enough to leave [`GAP`]); then the same one level up for its parent's
    /// area, as long as that area differs from `before`.
    fn make_room(&mut self, changed: Uuid, before: &HashMap<Uuid, Rect>) {
        let mut cur = changed;
        for _ in 0..=self.nodes.len() {
            let parent = self.nodes[&cur].parent;
            self.resolve_level(parent, cur);
            let Some(p) = parent else {
                return;
            };
            if before.get(&p) == Some(&self.area(p)) {
                return;
            }
            cur = p;
        }
    }

    fn resolve_level(&mut self, parent: Option<Uuid>, changed: Uuid) {
        let fixed = self.area(changed);
        // Boxes already final at this level, and whether each moved (or is the cause). A
        // sibling that did not move only gives way to one that did: overlaps a person made
        // are theirs to keep.
        let mut done: Vec<(Rect, bool)> = vec![(fixed, true)];
        if let Some(p) = parent {
            done.push((self.head(p), false));
        }
        let mut left = Vec::new();
        let mut right = Vec::new();
        for &s in self.children_of(parent) {
            if s == changed {
                continue;
            }
            let a = self.area(s);
            if a.center_x() < fixed.center_x() {
                left.push((s, a));
            } else {
                right.push((s, a));
            }
        }
        // Nearest first, so each one only has to clear what is already final.
        left.sort_by(|(s1, a1), (s2, a2)| {
            a2.r.total_cmp(&a1.r)
                .then(self.rank[s1].cmp(&self.rank[s2]))
        });
        right.sort_by(|(s1, a1), (s2, a2)| {
            a1.l.total_cmp(&a2.l)
                .then(self.rank[s1].cmp(&self.rank[s2]))
        });
        for (side, list) in [(-1.0, left), (1.0, right)] {
            for (s, area) in list {
                let mut dx = 0.0;
                let mut moved = false;
                // Each step moves past one final box, away from the cause, never back: at most
                // one step per final box.
                for _ in 0..=done.len() {
                    let current = area.shifted(dx, 0.0);
                    let Some((blocker, _)) = done
                        .iter()
                        .find(|(d, d_moved)| (moved || *d_moved) && d.overlaps(&current))
                    else {
                        break;
                    };
                    dx = if side < 0.0 {
                        blocker.l - GAP - area.r
                    } else {
                        blocker.r + GAP - area.l
                    };
                    moved = true;
                }
                self.shift_subtree(s, dx, 0.0);
                done.push((area.shifted(dx, 0.0), moved));
            }
        }
    }

    /// `ids` in their current left-to-right order (then top to bottom, then oldest first).
    fn ordered(&self, ids: &[Uuid]) -> Vec<Uuid> {
        let mut out = ids.to_vec();
        out.sort_by(|a, b| {
            let (na, nb) = (&self.nodes[a], &self.nodes[b]);
            na.x.total_cmp(&nb.x)
                .then(na.y.total_cmp(&nb.y))
                .then(self.rank[a].cmp(&self.rank[b]))
        });
        out
    }

    /// The tidy layout of the trees under `roots`, side by side in a row: each visible node's
    /// head position, relative to the row's top-left corner. Nested flexbox, computed by
    /// taffy: a node with visible children is a column of {head, row of its children's
    /// boxes} with [`PAD`] around it — exactly its area as the page draws it. In a row where
    /// some box is such a column, bare cards sit [`PAD`] lower, so every head of the row is
    /// level (a column's head is [`PAD`] below its top).
    ///
    /// Taffy recurses once per level; the computation runs on a thread of its own whose
    /// stack, [`LAYOUT_STACK`], is sized for [`MAX_HIERARCHY_DEPTH`] levels (callers refuse
    /// deeper trees), so a deep tree never overflows the committer's stack.
    fn tidy(&self, roots: &[Uuid]) -> HashMap<Uuid, (f64, f64)> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("canopy-layout".into())
                .stack_size(LAYOUT_STACK)
                .spawn_scoped(scope, || self.tidy_here(roots))
                .expect("spawn the layout thread")
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn tidy_here(&self, roots: &[Uuid]) -> HashMap<Uuid, (f64, f64)> {
        let mut tree: TaffyTree<()> = TaffyTree::new();
        // Positions stay exact (whole and half pixels) instead of being rounded per edge.
        tree.disable_rounding();
        let mut heads: HashMap<NodeId, Uuid> = HashMap::new();
        // Built bottom-up without recursion: every visible node in pre-order (children in
        // their left-to-right order), then each node's box from the deepest up.
        let mut order = Vec::new();
        let mut stack: Vec<Uuid> = roots.iter().rev().copied().collect();
        while let Some(cur) = stack.pop() {
            order.push(cur);
            if !self.nodes[&cur].collapsed {
                stack.extend(self.ordered(self.children_of(Some(cur))).into_iter().rev());
            }
        }
        // Each node's box, and whether it is a column (a head above a row of children).
        let mut boxes: HashMap<Uuid, (NodeId, bool)> = HashMap::with_capacity(order.len());
        for &id in order.iter().rev() {
            let head = tree.new_leaf(head_style()).expect("taffy node");
            heads.insert(head, id);
            let kids = self.children_of(Some(id));
            if self.nodes[&id].collapsed || kids.is_empty() {
                boxes.insert(id, (head, false));
                continue;
            }
            let members: Vec<(NodeId, bool)> =
                self.ordered(kids).iter().map(|c| boxes[c]).collect();
            let row = level_row(&mut tree, &members);
            let column = tree
                .new_with_children(group_style(), &[head, row])
                .expect("taffy node");
            boxes.insert(id, (column, true));
        }
        let members: Vec<(NodeId, bool)> = roots.iter().map(|r| boxes[r]).collect();
        let row = level_row(&mut tree, &members);
        tree.compute_layout(row, Size::MAX_CONTENT)
            .expect("taffy layout");
        let mut out = HashMap::new();
        let mut stack = vec![(row, 0.0_f64, 0.0_f64)];
        while let Some((node, ox, oy)) = stack.pop() {
            let layout = tree.layout(node).expect("laid out");
            let (x, y) = (
                ox + f64::from(layout.location.x),
                oy + f64::from(layout.location.y),
            );
            if let Some(id) = heads.get(&node) {
                out.insert(*id, (x, y));
            }
            for child in tree.children(node).expect("taffy children") {
                stack.push((child, x, y));
            }
        }
        out
    }

    /// Moves every node in `heads` to its layout position plus (`dx`, `dy`); hidden
    /// descendants of a collapsed node move by the same offset as it does.
    fn apply_layout(&mut self, heads: &HashMap<Uuid, (f64, f64)>, dx: f64, dy: f64) {
        let mut ids: Vec<Uuid> = heads.keys().copied().collect();
        ids.sort_by_key(|id| self.rank[id]);
        for id in ids {
            let (hx, hy) = heads[&id];
            let n = self.nodes[&id];
            let (nx, ny) = (hx + dx, hy + dy);
            if n.collapsed {
                for c in self.children_of(Some(id)).to_vec() {
                    self.shift_subtree(c, nx - n.x, ny - n.y);
                }
            }
            let node = self.nodes.get_mut(&id).expect("on the canvas");
            node.x = nx;
            node.y = ny;
        }
    }
}

/// A row of sibling boxes (`(box, is a column)`, left to right); when any is a column, the
/// bare cards get [`PAD`] above them so their heads are level with the columns' heads.
fn level_row(tree: &mut TaffyTree<()>, members: &[(NodeId, bool)]) -> NodeId {
    if members.iter().any(|&(_, column)| column) {
        for &(node, column) in members {
            if !column {
                let mut style = head_style();
                style.margin.top = length(PAD as f32);
                tree.set_style(node, style).expect("taffy node");
            }
        }
    }
    let nodes: Vec<NodeId> = members.iter().map(|&(n, _)| n).collect();
    tree.new_with_children(row_style(), &nodes)
        .expect("taffy node")
}

fn head_style() -> Style {
    Style {
        size: Size {
            width: length(CARD_W as f32),
            height: length(CARD_H as f32),
        },
        flex_shrink: 0.0,
        ..Style::default()
    }
}

/// Children side by side, tops aligned, [`GAP`] apart.
fn row_style() -> Style {
    Style {
        display: Display::Flex,
        flex_direction: FlexDirection::Row,
        align_items: AlignItems::FLEX_START,
        gap: Size {
            width: length(GAP as f32),
            height: length(GAP as f32),
        },
        flex_shrink: 0.0,
        ..Style::default()
    }
}

/// A parent: its head centred above the row of its children, [`GAP`] between them, [`PAD`]
/// around both (the page's area).
fn group_style() -> Style {
    let pad = length(PAD as f32);
    Style {
        display: Display::Flex,
        flex_direction: FlexDirection::Column,
        align_items: AlignItems::CENTER,
        gap: Size {
            width: length(GAP as f32),
            height: length(GAP as f32),
        },
        padding: taffy::prelude::Rect {
            left: pad,
            right: pad,
            top: pad,
            bottom: pad,
        },
        flex_shrink: 0.0,
        ..Style::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of the module doc, as a list of what breaks them (empty: all hold).
    fn violations(c: &Canvas) -> Vec<String> {
        let mut out = Vec::new();
        let visible: Vec<Uuid> = {
            let mut v = Vec::new();
            let mut stack: Vec<Uuid> = c.children_of(None).to_vec();
            while let Some(id) = stack.pop() {
                v.push(id);
                if !c.nodes[&id].collapsed {
                    stack.extend_from_slice(c.children_of(Some(id)));
                }
            }
            v
        };
        for (i, a) in visible.iter().enumerate() {
            for b in &visible[i + 1..] {
                if c.head(*a).overlaps(&c.head(*b)) {
                    out.push(format!("heads of {a} and {b} overlap"));
                }
            }
        }
        let mut parents: Vec<Option<Uuid>> = vec![None];
        parents.extend(visible.iter().map(|v| Some(*v)));
        for p in parents {
            if p.is_some_and(|p| c.nodes[&p].collapsed) {
                continue;
            }
            let kids = c.children_of(p);
            for (i, a) in kids.iter().enumerate() {
                if let Some(p) = p {
                    if c.area(*a).overlaps(&c.head(p)) {
                        out.push(format!("area of {a} overlaps its parent's head"));
                    }
                    if !c.area(p).contains(&c.area(*a)) {
                        out.push(format!("area of {a} outside its parent's"));
                    }
                }
                for b in &kids[i + 1..] {
                    if c.area(*a).overlaps(&c.area(*b)) {
                        out.push(format!("sibling areas of {a} and {b} overlap"));
                    }
                }
            }
        }
        out
    }

    /// 3 roots × 3 teams × 4 agents (+ a deeper branch), as (id, parent) parents first.
    fn org() -> Vec<(Uuid, Option<Uuid>)> {
        let mut out = Vec::new();
        for _ in 0..3 {
            let root = Uuid::new_v4();
            out.push((root, None));
            for _ in 0..3 {
                let team = Uuid::new_v4();
                out.push((team, Some(root)));
                for k in 0..4 {
                    let agent = Uuid::new_v4();
                    out.push((agent, Some(team)));
                    if k == 1 {
                        out.push((Uuid::new_v4(), Some(agent)));
                    }
                }
            }
        }
        out
    }

    fn breadth_first(tree: &[(Uuid, Option<Uuid>)]) -> Vec<(Uuid, Option<Uuid>)> {
        let depth = |mut id: Uuid| {
            let mut d = 0;
            while let Some(p) = tree.iter().find(|(i, _)| *i == id).and_then(|(_, p)| *p) {
                d += 1;
                id = p;
            }
            d
        };
        let mut out = tree.to_vec();
        out.sort_by_key(|(id, _)| depth(*id));
        out
    }

    #[test]
    fn placement_keeps_every_rule_in_depth_and_breadth_first_order() {
        let tree = org();
        for order in [tree.clone(), breadth_first(&tree)] {
            let mut c = Canvas::new([]);
            for (id, parent) in order {
                c.place_new(id, parent);
                let broken = violations(&c);
                assert!(broken.is_empty(), "{broken:?}");
            }
        }
    }

    #[test]
    fn placement_is_deterministic_and_reports_only_loaded_nodes_that_moved() {
        let tree = breadth_first(&org());
        let run = || {
            let mut c = Canvas::new([]);
            for (id, parent) in &tree {
                c.place_new(*id, *parent);
            }
            tree.iter()
                .map(|(id, _)| (c.nodes[id].x, c.nodes[id].y))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());

        // A loaded canvas: adding an agent to the first team pushes what is right of it.
        let mut c = Canvas::new([]);
        for (id, parent) in &tree {
            c.place_new(*id, *parent);
        }
        let loaded: Vec<(Uuid, Node)> = tree.iter().map(|(id, _)| (*id, c.nodes[id])).collect();
        let mut c = Canvas::new(loaded);
        assert!(c.moved().is_empty());
        let first_team = tree[3].0;
        let new = Uuid::new_v4();
        c.place_new(new, Some(first_team));
        let moved = c.moved();
        assert!(!moved.is_empty(), "a grown team pushes its neighbours");
        assert!(moved.iter().all(|(id, _, _)| *id != new));
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
    }

    #[test]
    fn a_first_child_sits_under_its_parent_and_a_root_beside_the_roots() {
        let mut c = Canvas::new([]);
        let root = Uuid::new_v4();
        assert_eq!(c.place_new(root, None), (0.0, 0.0));
        let child = Uuid::new_v4();
        assert_eq!(c.place_new(child, Some(root)), (0.0, CARD_H + GAP));
        let second = Uuid::new_v4();
        assert_eq!(
            c.place_new(second, Some(root)),
            (CARD_W + GAP, CARD_H + GAP)
        );
        let other_root = Uuid::new_v4();
        let area = c.area(root);
        assert_eq!(c.place_new(other_root, None), (area.r + GAP, 0.0));
    }

    #[test]
    fn explicit_positions_are_kept_and_push_nothing() {
        let mut c = Canvas::new([]);
        let root = Uuid::new_v4();
        c.place_new(root, None);
        let a = Uuid::new_v4();
        c.place_new(a, Some(root));
        let loaded: Vec<(Uuid, Node)> = [root, a].iter().map(|id| (*id, c.nodes[id])).collect();
        let mut c = Canvas::new(loaded);
        c.insert_at(Uuid::new_v4(), Some(root), 5.0, 130.0);
        assert!(c.moved().is_empty());
    }

    #[test]
    fn reparenting_moves_the_subtree_into_the_new_parent() {
        let tree = org();
        let mut c = Canvas::new([]);
        for (id, parent) in &tree {
            c.place_new(*id, *parent);
        }
        // The first team (with its agents) goes under the last root.
        let team = tree[1].0;
        let agents: Vec<Uuid> = c.children_of(Some(team)).to_vec();
        let offsets: Vec<(f64, f64)> = agents
            .iter()
            .map(|a| {
                (
                    c.nodes[a].x - c.nodes[&team].x,
                    c.nodes[a].y - c.nodes[&team].y,
                )
            })
            .collect();
        let last_root = c.children_of(None)[2];
        c.reparent(team, Some(last_root));
        assert!(c.area(last_root).contains(&c.area(team)));
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
        let after: Vec<(f64, f64)> = agents
            .iter()
            .map(|a| {
                (
                    c.nodes[a].x - c.nodes[&team].x,
                    c.nodes[a].y - c.nodes[&team].y,
                )
            })
            .collect();
        assert_eq!(offsets, after, "the subtree keeps its shape");
        c.reparent(team, None);
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
    }

    #[test]
    fn arrange_centres_parents_over_their_children() {
        // A pile at (0, 0), as workspaces created before placement were.
        let tree = org();
        let pile: Vec<(Uuid, Node)> = tree
            .iter()
            .map(|(id, parent)| {
                (
                    *id,
                    Node {
                        parent: *parent,
                        x: 0.0,
                        y: 0.0,
                        collapsed: false,
                    },
                )
            })
            .collect();
        let mut c = Canvas::new(pile);
        c.arrange(None).unwrap();
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
        for (id, _) in &tree {
            let kids = c.children_of(Some(*id));
            if kids.is_empty() {
                continue;
            }
            let row = kids.iter().map(|k| c.area(*k)).reduce(Rect::union).unwrap();
            let head = c.head(*id);
            assert_eq!(head.center_x(), row.center_x(), "centred over its children");
            assert_eq!(row.t, head.b + GAP, "children a gap below the head");
        }
        // Arranged already: a second arrange moves nothing.
        let loaded: Vec<(Uuid, Node)> = tree.iter().map(|(id, _)| (*id, c.nodes[id])).collect();
        let mut again = Canvas::new(loaded);
        again.arrange(None).unwrap();
        assert!(again.moved().is_empty());
    }

    #[test]
    fn arranging_a_subtree_keeps_its_root_and_makes_room() {
        let tree = org();
        let mut c = Canvas::new([]);
        for (id, parent) in &tree {
            c.place_new(*id, *parent);
        }
        let root = tree[0].0;
        let (x, y) = (c.nodes[&root].x, c.nodes[&root].y);
        let loaded: Vec<(Uuid, Node)> = tree.iter().map(|(id, _)| (*id, c.nodes[id])).collect();
        let mut c = Canvas::new(loaded);
        c.arrange(Some(root)).unwrap();
        assert_eq!((c.nodes[&root].x, c.nodes[&root].y), (x, y));
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
    }

    #[test]
    fn expanding_a_collapsed_node_makes_room_for_its_children() {
        let mut c = Canvas::new([]);
        let a = Uuid::new_v4();
        c.place_new(a, None);
        for _ in 0..3 {
            c.place_new(Uuid::new_v4(), Some(a));
        }
        c.set_collapsed(a, true);
        // Placed beside the collapsed card, so inside the area it has when expanded.
        let b = Uuid::new_v4();
        c.place_new(b, None);
        let loaded: Vec<(Uuid, Node)> = c.nodes.iter().map(|(id, n)| (*id, *n)).collect();
        let mut c = Canvas::new(loaded);
        c.set_collapsed(a, false);
        assert!(
            !violations(&c).is_empty(),
            "expanded in place, it overlaps b"
        );
        c.set_collapsed(a, true);
        c.expand(a);
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
        assert_eq!(c.moved().len(), 1, "only b moved");
        assert_eq!(c.moved()[0].0, b);
    }

    #[test]
    fn a_collapsed_node_is_a_bare_card_and_takes_its_descendants_along() {
        let tree = org();
        let mut c = Canvas::new([]);
        for (id, parent) in &tree {
            c.place_new(*id, *parent);
        }
        let team = tree[1].0;
        c.nodes.get_mut(&team).unwrap().collapsed = true;
        let agents: Vec<Uuid> = c.children_of(Some(team)).to_vec();
        let offsets: Vec<(f64, f64)> = agents
            .iter()
            .map(|a| {
                (
                    c.nodes[a].x - c.nodes[&team].x,
                    c.nodes[a].y - c.nodes[&team].y,
                )
            })
            .collect();
        c.arrange(None).unwrap();
        assert_eq!(c.area(team), c.head(team));
        let after: Vec<(f64, f64)> = agents
            .iter()
            .map(|a| {
                (
                    c.nodes[a].x - c.nodes[&team].x,
                    c.nodes[a].y - c.nodes[&team].y,
                )
            })
            .collect();
        assert_eq!(offsets, after);
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
    }

    fn chain(levels: usize) -> (Vec<Uuid>, Canvas) {
        let ids: Vec<Uuid> = (0..levels).map(|_| Uuid::new_v4()).collect();
        let nodes = ids.iter().enumerate().map(|(i, id)| {
            let parent = i.checked_sub(1).map(|p| ids[p]);
            (
                *id,
                Node {
                    parent,
                    x: 0.0,
                    y: 0.0,
                    collapsed: false,
                },
            )
        });
        let c = Canvas::new(nodes);
        (ids, c)
    }

    #[test]
    fn arrange_at_the_maximum_depth_fits_half_its_stack() {
        let (ids, c) = chain(MAX_HIERARCHY_DEPTH);
        let root = ids[0];
        let heads = std::thread::Builder::new()
            .stack_size(LAYOUT_STACK / 2)
            .spawn(move || c.tidy_here(&[root]))
            .unwrap()
            .join()
            .expect("laid out on half the stack");
        assert_eq!(heads.len(), MAX_HIERARCHY_DEPTH);
        let (ids, mut c) = chain(MAX_HIERARCHY_DEPTH);
        c.arrange(None).expect("the maximum depth arranges");
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
        assert_eq!(c.height(ids[0]), MAX_HIERARCHY_DEPTH);
    }

    #[test]
    fn deeper_trees_are_refused_by_arrange_and_nothing_moves_but_placement_still_works() {
        let (ids, mut c) = chain(150);
        assert_eq!(
            c.arrange(None),
            Err(TooDeep {
                root: ids[0],
                levels: 150
            })
        );
        assert_eq!(
            c.arrange(Some(ids[0])),
            Err(TooDeep {
                root: ids[0],
                levels: 150
            })
        );
        assert!(c.moved().is_empty());
        // A subtree within the bound arranges; areas and placement walk any depth.
        c.arrange(Some(ids[150 - MAX_HIERARCHY_DEPTH])).unwrap();
        let _ = c.area(ids[0]);
        c.place_new(Uuid::new_v4(), Some(ids[149]));
        // Collapsed levels are bare cards: not laid out, not counted.
        c.set_collapsed(ids[10], true);
        assert_eq!(c.height(ids[0]), 11);
        c.arrange(None).unwrap();
    }

    #[test]
    fn after_arrange_every_head_of_a_row_is_level() {
        // Two roots, one with a child and one without; under the first, a leaf and a team.
        let mut c = Canvas::new([]);
        let (r1, r2, leaf, team, agent) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        c.place_new(r1, None);
        c.place_new(leaf, Some(r1));
        c.place_new(team, Some(r1));
        c.place_new(agent, Some(team));
        c.place_new(r2, None);
        c.arrange(None).unwrap();
        assert_eq!(c.nodes[&r1].y, c.nodes[&r2].y, "roots level");
        assert_eq!(c.nodes[&leaf].y, c.nodes[&team].y, "siblings level");
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
    }

    #[test]
    fn expanding_makes_room_for_the_children_that_reappear() {
        let mut c = Canvas::new([]);
        let (r, c1, c2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        c.place_new(r, None);
        c.place_new(c1, Some(r));
        c.set_collapsed(r, true);
        // Under a collapsed parent, a child is placed beside the hidden ones.
        c.place_new(c2, Some(r));
        let (r2, k) = (Uuid::new_v4(), Uuid::new_v4());
        c.place_new(r2, None);
        c.place_new(k, Some(r2));
        c.set_collapsed(r, false);
        assert!(
            !violations(&c).is_empty(),
            "the repro overlaps before making room"
        );
        c.set_collapsed(r, true);
        c.expand(r);
        assert!(violations(&c).is_empty(), "{:?}", violations(&c));
        assert!(!c.area(r).overlaps(&c.area(r2)));
    }

    #[test]
    fn a_card_placed_after_people_moved_cards_never_lands_on_a_head() {
        let mut c = Canvas::new([]);
        let (p, child, k) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        c.place_new(p, None);
        c.place_new(child, Some(p));
        let n = c.nodes.get_mut(&child).unwrap();
        (n.x, n.y) = (100.0, -150.0);
        let (x, y) = c.place_new(k, Some(child));
        let head = Rect::head(x, y);
        for other in [p, child] {
            assert!(!head.overlaps(&c.head(other)), "on the head of {other}");
        }
        assert_eq!(
            y,
            -150.0 + CARD_H + GAP,
            "still one gap below its parent's head"
        );
    }
}
