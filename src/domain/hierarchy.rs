//! The workspace hierarchy: who may talk to whom, and which moves would make a cycle.

use std::collections::HashMap;

use uuid::Uuid;

/// Deepest hierarchy walked before a chain is treated as corrupt (a cycle that slipped past).
const MAX_DEPTH: usize = 10_000;

/// Most levels a hierarchy may have: a root is level 1, its children level 2, and so on.
/// Creating or reparenting a workspace so that some workspace would sit deeper is refused
/// (400 naming `parent_id`, README "Placement and Arrange"). Generous for an org chart, and
/// the bound Arrange's layout is sized for: taffy recurses once per level, so the layout
/// thread's stack (`domain::layout`) is measured at this depth.
pub const MAX_HIERARCHY_DEPTH: usize = 64;

/// Child → parent for every live workspace (roots map to `None`).
#[derive(Clone, Debug, Default)]
pub struct ParentMap {
    parents: HashMap<Uuid, Option<Uuid>>,
}

impl ParentMap {
    /// An empty map (no workspaces).
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of `(workspace, parent)` pairs as read from the store; a later pair for the same
    /// workspace replaces an earlier one.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Uuid, Option<Uuid>)>) -> Self {
        ParentMap {
            parents: pairs.into_iter().collect(),
        }
    }

    /// Adds a workspace or changes its parent (`None`: a root).
    pub fn insert(&mut self, id: Uuid, parent: Option<Uuid>) {
        self.parents.insert(id, parent);
    }

    /// Forgets a workspace; its children keep pointing at it, so ancestor walks stop there.
    pub fn remove(&mut self, id: Uuid) {
        self.parents.remove(&id);
    }

    /// Whether `id` is a live workspace in the map.
    pub fn contains(&self, id: Uuid) -> bool {
        self.parents.contains_key(&id)
    }

    /// The parent of `id`; `None` for a root or an unknown id.
    pub fn parent_of(&self, id: Uuid) -> Option<Uuid> {
        self.parents.get(&id).copied().flatten()
    }

    /// Ancestors of `id`, nearest first.
    pub fn ancestors(&self, id: Uuid) -> impl Iterator<Item = Uuid> + '_ {
        let mut current = self.parent_of(id);
        let mut steps = 0;
        std::iter::from_fn(move || {
            let next = current?;
            steps += 1;
            if steps > MAX_DEPTH {
                return None;
            }
            current = self.parent_of(next);
            Some(next)
        })
    }

    /// The level of `id`: 1 for a root (or an unknown id), one more than its parent's.
    pub fn level(&self, id: Uuid) -> usize {
        1 + self.ancestors(id).count()
    }

    /// Levels of the subtree under `id`: 1 for a workspace without children, one more than
    /// its tallest child's. Walks every workspace's ancestors: O(workspaces × depth).
    pub fn height(&self, id: Uuid) -> usize {
        self.parents
            .keys()
            .filter_map(|&other| self.ancestors(other).position(|a| a == id))
            .map(|distance| distance + 2)
            .max()
            .unwrap_or(1)
    }

    /// Whether putting the subtree under `child` (a new workspace: nothing) below `new_parent`
    /// would place some workspace deeper than [`MAX_HIERARCHY_DEPTH`].
    pub fn too_deep_under(&self, new_parent: Uuid, child: Option<Uuid>) -> bool {
        let height = child.map_or(1, |c| self.height(c));
        self.level(new_parent) + height > MAX_HIERARCHY_DEPTH
    }

    /// Whether `ancestor` is a strict ancestor of `of` (a workspace is not its own ancestor).
    pub fn is_ancestor(&self, ancestor: Uuid, of: Uuid) -> bool {
        self.ancestors(of).any(|a| a == ancestor)
    }

    /// Would making `new_parent` the parent of `child` create a cycle?
    pub fn would_cycle(&self, child: Uuid, new_parent: Uuid) -> bool {
        child == new_parent || self.is_ancestor(child, new_parent)
    }

    /// CanCommunicate: the same workspace, siblings (same parent, or both roots), and any
    /// ancestor/descendant pair (which includes parent and child). Cousins and other teams
    /// cannot.
    pub fn can_communicate(&self, caller: Uuid, target: Uuid) -> bool {
        if caller == target {
            return true;
        }
        if !self.contains(caller) || !self.contains(target) {
            return false;
        }
        if self.parent_of(caller) == self.parent_of(target) {
            return true;
        }
        self.is_ancestor(caller, target) || self.is_ancestor(target, caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (ParentMap, [Uuid; 6]) {
        // root ─┬─ team_a ─┬─ a1
        //       │          └─ a2
        //       └─ team_b ─── b1
        let ids: [Uuid; 6] = std::array::from_fn(|_| Uuid::new_v4());
        let [root, team_a, team_b, a1, a2, b1] = ids;
        let map = ParentMap::from_pairs([
            (root, None),
            (team_a, Some(root)),
            (team_b, Some(root)),
            (a1, Some(team_a)),
            (a2, Some(team_a)),
            (b1, Some(team_b)),
        ]);
        (map, ids)
    }

    #[test]
    fn siblings_parents_and_ancestors_communicate() {
        let (m, [root, team_a, team_b, a1, a2, b1]) = tree();
        assert!(m.can_communicate(a1, a2));
        assert!(m.can_communicate(a1, team_a));
        assert!(m.can_communicate(team_a, a1));
        assert!(m.can_communicate(a1, root));
        assert!(m.can_communicate(team_a, team_b));
        assert!(!m.can_communicate(a1, b1));
        assert!(!m.can_communicate(a1, team_b));
        assert!(!m.can_communicate(a1, Uuid::new_v4()));
    }

    #[test]
    fn cycles_are_detected_on_deep_chains() {
        let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        let mut m = ParentMap::new();
        m.insert(ids[0], None);
        for w in ids.windows(2) {
            m.insert(w[1], Some(w[0]));
        }
        assert!(m.would_cycle(ids[0], ids[199]));
        assert!(m.would_cycle(ids[5], ids[5]));
        assert!(!m.would_cycle(ids[199], ids[0]));
    }

    #[test]
    fn levels_heights_and_the_depth_bound() {
        let ids: Vec<Uuid> = (0..MAX_HIERARCHY_DEPTH).map(|_| Uuid::new_v4()).collect();
        let mut m = ParentMap::new();
        m.insert(ids[0], None);
        for w in ids.windows(2) {
            m.insert(w[1], Some(w[0]));
        }
        let last = ids[MAX_HIERARCHY_DEPTH - 1];
        assert_eq!(m.level(ids[0]), 1);
        assert_eq!(m.level(last), MAX_HIERARCHY_DEPTH);
        assert_eq!(m.height(ids[0]), MAX_HIERARCHY_DEPTH);
        assert_eq!(m.height(last), 1);
        assert!(m.too_deep_under(last, None), "one level more");
        assert!(!m.too_deep_under(ids[MAX_HIERARCHY_DEPTH - 2], None));
        // A chain of two moved under level 63 would reach 65; under level 62, exactly 64.
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        m.insert(a, None);
        m.insert(b, Some(a));
        assert!(m.too_deep_under(ids[MAX_HIERARCHY_DEPTH - 2], Some(a)));
        assert!(!m.too_deep_under(ids[MAX_HIERARCHY_DEPTH - 3], Some(a)));
    }
}
