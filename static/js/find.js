// Finding workspaces by name or role (issue 17, item 4), as data. Pure: no DOM, so it runs
// under `node --test static/tests/`. search.js draws what this decides.

import { parentOf } from './model.js';

const MAX_DEPTH = 1000; // guards walks up the tree against bad data

/** The query as it is compared: trimmed and lower-cased ('' means no search). */
export function normalizeQuery(query) {
  return String(query == null ? '' : query).trim().toLowerCase();
}

/** Whether a workspace's name or role contains the (normalized) query, ignoring case. */
export function isMatch(ws, query) {
  if (!ws || !query) return false;
  return String(ws.name || '').toLowerCase().includes(query) ||
    String(ws.role || '').toLowerCase().includes(query);
}

/**
 * The ids of the workspaces whose name or role contains `query` (any case), in reading order:
 * top to bottom, then left to right, then by name — the order Enter walks them in.
 */
export function findMatches(model, query) {
  const q = normalizeQuery(query);
  if (!q) return [];
  const found = [];
  for (const ws of model.workspaces.values()) if (isMatch(ws, q)) found.push(ws);
  found.sort((a, b) => a.y - b.y || a.x - b.x || String(a.name).localeCompare(String(b.name)));
  return found.map((ws) => ws.id);
}

/** The collapsed workspaces above `id` that hide it, nearest first (empty: it is shown). */
export function collapsedAncestors(model, id) {
  const out = [];
  let cur = parentOf(model, id);
  for (let i = 0; cur && i < MAX_DEPTH; i++) {
    if (model.workspaces.get(cur).collapsed) out.push(cur);
    cur = parentOf(model, cur);
  }
  return out;
}

/**
 * The world box `{l, t, r, b}` around the heads of `ids` (`w`×`h` each, at their x,y);
 * null for none.
 */
export function boxAround(model, ids, w, h) {
  let l = Infinity;
  let t = Infinity;
  let r = -Infinity;
  let b = -Infinity;
  for (const id of ids) {
    const ws = model.workspaces.get(id);
    if (!ws) continue;
    l = Math.min(l, ws.x);
    t = Math.min(t, ws.y);
    r = Math.max(r, ws.x + w);
    b = Math.max(b, ws.y + h);
  }
  return Number.isFinite(l) ? { l, t, r, b } : null;
}

/** The status line for `total` matches of which `hidden` are inside collapsed groups. */
export function describe(total, hidden, current = -1) {
  if (total === 0) return 'No match';
  const where = current >= 0 ? `${current + 1} of ${total}` : `${total} match${total === 1 ? '' : 'es'}`;
  if (!hidden) return where;
  return `${where} · ${hidden} hidden in collapsed group${hidden === 1 ? '' : 's'} (Enter shows ${hidden === 1 ? 'it' : 'them'})`;
}
