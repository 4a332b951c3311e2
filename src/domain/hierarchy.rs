//! The workspace hierarchy: who may talk to whom, and which moves would make a cycle.

use std::collections::HashMap;

use uuid::Uuid;

/// Deepest hierarchy walked before a chain is treated as corrupt (a cycle that slipped past).
const MAX_DEPTH: usize = 10_000;

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
}
