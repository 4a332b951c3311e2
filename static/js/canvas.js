// The canvas view: one DOM element per workspace, touched only where an effect says something
// changed, so 200 workspaces stay smooth; and the viewport (pan and zoom).
//
// Layout: every card sits in one world layer at its ABSOLUTE x,y (the contract's coordinates).
// A parent's element is drawn large enough to enclose its children; that box is recomputed only
// for the ancestors of a card that changed.

import { api } from './api.js';
import { forgetDrag } from './drag.js';
import * as m from './model.js';
import { onWorkspaceGone, renderPanelDetails } from './panel.js';
import { model, ui, dom } from './state.js';
import { reportError } from './toast.js';
import { debounce, make, num, statusClass } from './util.js';

/** Card head size in px; must match .card-head in app.css. */
export const CARD_W = 220;
export const CARD_H = 92;
const PAD = 14; // space between a parent's edge and its children
const MAX_DEPTH = 1000;
const VIEWPORT_SAVE_DELAY_MS = 1000;
const ZOOM_MIN = 0.1;
const ZOOM_MAX = 4; // the server accepts (0, 10]

/** id -> { el, head, name, role, status, task, badge, toggle, depth, hidden, box }. */
export const nodes = new Map();
/** id -> {x,y}: where a dragged card is shown until its PATCH settles. */
export const overrides = new Map();
/** id -> {x,y}: where another person is dragging a card right now (DRAG_PREVIEWS). */
export const previews = new Map();
/** id -> box its ancestors keep using while it is dragged. */
export const frozenBoxes = new Map();

const parentOf = (id) => m.parentOf(model, id);
const childrenOf = (id) => m.childrenOf(model, id);

// ------------------------------------------------------------------ cards

function createCard(id) {
  const el = make('div', 'card');
  el.dataset.workspaceId = id;
  const head = make('div', 'card-head');
  head.tabIndex = 0;
  const title = make('div', 'card-title');
  const dot = make('span', 'card-dot');
  const name = make('span', 'card-name');
  const badge = make('span', 'card-badge');
  badge.title = 'active tasks';
  const toggle = make('button', 'card-toggle');
  toggle.type = 'button';
  title.append(dot, name, badge, toggle);
  const role = make('div', 'card-role');
  const status = make('div', 'card-status');
  const task = make('div', 'card-task');
  head.append(title, role, status, task);
  el.append(head);
  const node = { el, head, name, role, status, task, badge, toggle, statusClass: '', depth: 0, hidden: false, box: null };
  nodes.set(id, node);
  return node;
}

/** Writes the text and status of one card (not its position). */
export function renderCard(id) {
  const ws = model.workspaces.get(id);
  const n = nodes.get(id);
  if (!ws || !n) return;
  n.name.textContent = ws.name || '(unnamed)';
  n.name.title = ws.name || '';
  n.role.textContent = ws.role || '';
  n.role.title = ws.role || '';
  n.status.textContent = ws.status + (ws.runtime ? ` · ${ws.runtime}` : '');
  const task = ws.current_task || '';
  n.task.textContent = task;
  n.task.title = task;
  n.task.hidden = !task;
  const active = num(ws.active_tasks);
  n.badge.textContent = String(active);
  n.badge.hidden = !(active > 0);
  const cls = statusClass(ws.status);
  if (n.statusClass !== cls) {
    if (n.statusClass) n.el.classList.remove(n.statusClass);
    n.el.classList.add(cls);
    n.statusClass = cls;
  }
  n.el.dataset.status = ws.status;
  n.el.dataset.activeTasks = String(active);
  n.el.dataset.parentId = ws.parent_id || '';
  n.el.classList.toggle('selected', ui.selected === id);
  renderToggle(id);
}

// The collapse toggle only exists on cards that have children.
function renderToggle(id) {
  const ws = model.workspaces.get(id);
  const n = nodes.get(id);
  if (!ws || !n) return;
  const kids = childrenOf(id).size;
  n.toggle.hidden = kids === 0;
  n.toggle.textContent = ws.collapsed ? `▸ ${kids}` : '▾';
  n.toggle.title = ws.collapsed ? 'Show children' : 'Hide children';
  n.toggle.setAttribute('aria-label', ws.collapsed ? 'Show children' : 'Hide children');
  n.el.classList.toggle('has-children', kids > 0 && !ws.collapsed);
  n.el.classList.toggle('collapsed', !!ws.collapsed);
  n.el.dataset.collapsed = String(!!ws.collapsed);
}

// ------------------------------------------------------------------ layout

/** Where a card is shown: this page's drag, else another person's, else the model's place. */
export function positionOf(id) {
  const o = overrides.get(id) || previews.get(id);
  if (o) return o;
  const ws = model.workspaces.get(id);
  return { x: ws.x, y: ws.y };
}

/** Recomputes one card's box from its own head and its children's boxes, then places it. */
export function fit(id) {
  const ws = model.workspaces.get(id);
  const n = nodes.get(id);
  if (!ws || !n) return;
  const p = positionOf(id);
  let l = p.x;
  let t = p.y;
  let r = p.x + CARD_W;
  let b = p.y + CARD_H;
  if (!ws.collapsed) {
    let any = false;
    for (const c of childrenOf(id)) {
      const cb = frozenBoxes.get(c) || (nodes.get(c) && nodes.get(c).box);
      if (!cb) continue;
      any = true;
      l = Math.min(l, cb.l - PAD);
      t = Math.min(t, cb.t - PAD);
      r = Math.max(r, cb.r + PAD);
      b = Math.max(b, cb.b + PAD);
    }
    if (any) {
      // A group frames its own head too, so the head sits inside the area it names.
      l = Math.min(l, p.x - PAD);
      t = Math.min(t, p.y - PAD);
      r = Math.max(r, p.x + CARD_W + PAD);
    }
  }
  n.box = { l, t, r, b };
  const s = n.el.style;
  s.left = `${l}px`;
  s.top = `${t}px`;
  s.width = `${r - l}px`;
  s.height = `${b - t}px`;
  n.head.style.left = `${p.x - l}px`;
  n.head.style.top = `${p.y - t}px`;
  n.el.dataset.x = String(p.x);
  n.el.dataset.y = String(p.y);
}

/** A card changed size or place: re-fit it and every ancestor, nothing else. */
export function fitUp(id) {
  fit(id);
  let cur = parentOf(id);
  for (let i = 0; cur && i < MAX_DEPTH; i++) {
    fit(cur);
    cur = parentOf(cur);
  }
}

function fitSubtree(id, seen = new Set()) {
  if (seen.has(id)) return;
  seen.add(id);
  for (const c of childrenOf(id)) fitSubtree(c, seen);
  fit(id);
}

// Depth decides stacking (children above parents); a collapsed ancestor hides a card.
function refreshMeta(id, seen = new Set()) {
  if (seen.has(id)) return;
  seen.add(id);
  const n = nodes.get(id);
  if (!n) return;
  const pid = parentOf(id);
  const pn = pid && nodes.get(pid);
  n.depth = pn ? pn.depth + 1 : 0;
  n.hidden = pn ? pn.hidden || !!model.workspaces.get(pid).collapsed : false;
  n.el.style.zIndex = String(n.depth + 1);
  n.el.dataset.depth = String(n.depth);
  n.el.classList.toggle('is-hidden', n.hidden);
  for (const c of childrenOf(id)) refreshMeta(c, seen);
}

// A card's place in the tree changed: fix its subtree, then its ancestors.
function relayout(id) {
  refreshMeta(id);
  fitSubtree(id);
  const pid = parentOf(id);
  if (pid) fitUp(pid);
}

function layoutAll() {
  const seen = new Set();
  for (const id of model.workspaces.keys()) {
    if (!parentOf(id)) {
      refreshMeta(id);
      fitSubtree(id, seen);
    }
  }
  // Anything unreachable from a root (a cycle in bad data) still gets drawn.
  for (const id of model.workspaces.keys()) if (!seen.has(id)) fit(id);
}

/** Writes the workspace count and the empty-canvas hint. */
export function updateCount() {
  const n = model.workspaces.size;
  dom.count.textContent = `${n} workspace${n === 1 ? '' : 's'}`;
  dom.emptyHint.hidden = n > 0 || !ui.loaded; // "no workspaces" only once we know
}

function dropNode(id) {
  forgetDrag(id);
  overrides.delete(id);
  previews.delete(id);
  frozenBoxes.delete(id);
  const n = nodes.get(id);
  if (n) n.el.remove();
  nodes.delete(id);
}

// ------------------------------------------------------------------ effects

/**
 * Shows a model effect (see model.js) on the canvas. Effects that are not about cards
 * (messages, activity, approvals) are left to the caller. Returns the effect.
 */
export function show(effect) {
  if (!effect) return effect;
  const { id } = effect;
  switch (effect.type) {
    case 'added': {
      const n = createCard(id);
      dom.world.append(n.el);
      renderCard(id);
      if (parentOf(id)) renderToggle(parentOf(id));
      relayout(id); // also re-attaches children that arrived before their parent
      updateCount();
      if (effect.fetch) fetchWorkspace(id);
      break;
    }
    case 'fields':
      renderCard(id);
      break;
    case 'layout':
      if (effect.collapsedChanged) {
        renderToggle(id);
        for (const c of childrenOf(id)) refreshMeta(c);
      }
      fitUp(id);
      break;
    case 'moved':
      renderCard(id);
      if (effect.oldParent) {
        renderToggle(effect.oldParent);
        fitUp(effect.oldParent);
      }
      if (parentOf(id)) renderToggle(parentOf(id));
      relayout(id);
      break;
    case 'removed':
      dropNode(id);
      // Children normally get their own REMOVED (deletes cascade); until then they stand alone.
      for (const c of effect.orphans) relayout(c);
      if (effect.oldParent) {
        renderToggle(effect.oldParent);
        fitUp(effect.oldParent);
      }
      onWorkspaceGone(id);
      updateCount();
      break;
    case 'missing':
      fetchWorkspace(id);
      break;
    default:
      break;
  }
  return effect;
}

/** Removes a workspace and everything below it (deepest first). */
export function removeSubtree(id) {
  const doomed = m.descendantsOf(model, id).reverse();
  for (const d of doomed) show(m.removeWorkspace(model, d));
  show(m.removeWorkspace(model, id));
}

/** Replaces what the page shows with a full `GET /workspaces` answer, reusing elements. */
export function applySnapshot(list) {
  const { added, removed } = m.replaceAll(model, list);
  for (const id of removed) dropNode(id);
  const fragment = document.createDocumentFragment();
  for (const id of added) fragment.append(createCard(id).el);
  dom.world.append(fragment);
  ui.loaded = true;
  for (const id of model.workspaces.keys()) renderCard(id);
  layoutAll();
  updateCount();
  for (const id of removed) onWorkspaceGone(id);
  if (ui.selected) renderPanelDetails();
}

// Fetches one workspace we heard about but do not know (or whose role an event omitted).
const fetching = new Set();
async function fetchWorkspace(id) {
  if (!id || fetching.has(id)) return;
  fetching.add(id);
  try {
    const raw = await api('GET', `/workspaces/${encodeURIComponent(id)}`);
    if (!raw || !raw.id || raw.status === 'removed') return;
    const known = model.workspaces.get(raw.id);
    if (!known) {
      show(m.addWorkspace(model, raw));
    } else {
      // Events may have overtaken this answer: only fill in what we do not know yet.
      for (const [key, value] of Object.entries(raw)) if (known[key] === undefined) known[key] = value;
      renderCard(raw.id);
    }
    if (ui.selected === raw.id) renderPanelDetails();
  } catch (err) {
    if (err.status !== 404 && err.status !== 410) console.warn('canopy: fetch workspace', id, err);
  } finally {
    fetching.delete(id);
  }
}

/** Marks the card of `id` (and only it) as selected. */
export function markSelected(previous, id) {
  if (previous && nodes.has(previous)) nodes.get(previous).el.classList.remove('selected');
  if (id && nodes.has(id)) nodes.get(id).el.classList.add('selected');
}

// ------------------------------------------------------------------ placement

/** Where a new workspace goes: a root in the middle of the view, a child in a grid under its parent. */
export function placementFor(parentId) {
  if (parentId) {
    // Slots leave room for each child to frame children of its own.
    const parent = positionOf(parentId);
    const k = childrenOf(parentId).size;
    return {
      x: Math.round(parent.x + (k % 3) * (CARD_W + 3 * PAD)),
      y: Math.round(parent.y + CARD_H + 2 * PAD + Math.floor(k / 3) * (CARD_H + 3 * PAD)),
    };
  }
  const c = viewCenter();
  const step = (model.workspaces.size % 5) * 24; // so quick successive creations do not stack exactly
  return { x: Math.round(c.x - CARD_W / 2 + step), y: Math.round(c.y - CARD_H / 2 + step) };
}

// ------------------------------------------------------------------ viewport

/** Writes the viewport transform (and the grid that moves with it). */
export function applyViewport() {
  const { x, y, zoom } = ui.viewport;
  dom.world.style.transform = `translate(${x}px, ${y}px) scale(${zoom})`;
  const grid = 24 * zoom;
  dom.viewport.style.backgroundSize = `${grid}px ${grid}px`;
  dom.viewport.style.backgroundPosition = `${x}px ${y}px`;
  dom.viewport.dataset.x = String(x);
  dom.viewport.dataset.y = String(y);
  dom.viewport.dataset.zoom = String(zoom);
  dom.zoomLevel.textContent = `${Math.round(zoom * 100)}%`;
}

/** Takes a viewport as the server stores it (`{x, y, zoom}`), clamping the zoom. */
export function setViewport(v) {
  const zoom = num(v && v.zoom, 1);
  ui.viewport = {
    x: num(v && v.x),
    y: num(v && v.y),
    zoom: zoom > 0 ? Math.min(Math.max(zoom, ZOOM_MIN), ZOOM_MAX) : 1,
  };
  applyViewport();
}

/** Saves the viewport a second after the last change. */
export const saveViewportSoon = debounce(async () => {
  const { x, y, zoom } = ui.viewport;
  const round = (v, d) => Math.round(v * d) / d;
  try {
    await api('PUT', '/canvas/viewport', { x: round(x, 100), y: round(y, 100), zoom: round(zoom, 10000) });
  } catch (err) {
    reportError(err, 'Could not save the view');
  }
}, VIEWPORT_SAVE_DELAY_MS);

// Zooms keeping the world point under (cx, cy) (viewport pixels) where it is.
function zoomAt(cx, cy, zoom) {
  const v = ui.viewport;
  const z = Math.min(Math.max(zoom, ZOOM_MIN), ZOOM_MAX);
  const wx = (cx - v.x) / v.zoom;
  const wy = (cy - v.y) / v.zoom;
  ui.viewport = { x: cx - wx * z, y: cy - wy * z, zoom: z };
  applyViewport();
  saveViewportSoon();
}

/** Zooms by `factor` around the middle of the view. */
export function zoomBy(factor) {
  const rect = dom.viewport.getBoundingClientRect();
  zoomAt(rect.width / 2, rect.height / 2, ui.viewport.zoom * factor);
}

/** The wheel zooms around the pointer. */
export function onWheel(event) {
  event.preventDefault();
  const rect = dom.viewport.getBoundingClientRect();
  const perUnit = event.deltaMode === 1 ? 0.05 : 0.0015; // lines vs pixels
  zoomAt(event.clientX - rect.left, event.clientY - rect.top, ui.viewport.zoom * Math.exp(-event.deltaY * perUnit));
}

/** Frames every workspace in the view. */
export function fitView() {
  let l = Infinity;
  let t = Infinity;
  let r = -Infinity;
  let b = -Infinity;
  for (const [id, n] of nodes) {
    if (parentOf(id) || !n.box) continue;
    l = Math.min(l, n.box.l);
    t = Math.min(t, n.box.t);
    r = Math.max(r, n.box.r);
    b = Math.max(b, n.box.b);
  }
  if (!Number.isFinite(l)) {
    setViewport({ x: 0, y: 0, zoom: 1 });
  } else {
    const rect = dom.viewport.getBoundingClientRect();
    const margin = 40;
    const zoom = Math.min((rect.width - 2 * margin) / (r - l), (rect.height - 2 * margin) / (b - t), 1.5);
    const z = Math.min(Math.max(zoom, ZOOM_MIN), ZOOM_MAX);
    setViewport({ x: (rect.width - (r - l) * z) / 2 - l * z, y: (rect.height - (b - t) * z) / 2 - t * z, zoom: z });
  }
  saveViewportSoon();
}

// Centre of the visible area, in world coordinates.
function viewCenter() {
  const rect = dom.viewport.getBoundingClientRect();
  const v = ui.viewport;
  return { x: (rect.width / 2 - v.x) / v.zoom, y: (rect.height / 2 - v.y) / v.zoom };
}

/** Where a workspace's head is centred, in world coordinates (null when not shown). */
export function headCentre(id) {
  const n = nodes.get(id);
  if (!n || !model.workspaces.has(id) || n.hidden) return null;
  const p = positionOf(id);
  return { x: p.x + CARD_W / 2, y: p.y + CARD_H / 2 };
}


/** Shows a workspace the page itself just created, unless an event already brought it. */
export function addWorkspaceNow(raw) {
  return show(m.addWorkspace(model, raw));
}
