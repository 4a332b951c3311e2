// Canopy canvas: a live org chart of workspaces, kept in sync over one WebSocket.
//
// Model: `state.workspaces` (id -> workspace as the server describes it) is the truth we
// know. The view keeps one DOM element per workspace (`nodes`) and touches only the
// cards an event affects, so 200 workspaces stay smooth.
//
// Layout: every card sits in one world layer at its ABSOLUTE x,y (the contract's
// coordinates). A parent's element is drawn large enough to enclose its children; that
// box is recomputed only for the ancestors of a card that changed.
(() => {
  'use strict';

  // ---------------------------------------------------------------- constants

  const CARD_W = 220; // px; must match .card-head in app.css
  const CARD_H = 92;
  const PAD = 14; // space between a parent's edge and its children
  const MAX_DEPTH = 1000; // guards walks up the tree against bad data
  const DRAG_THRESHOLD_PX = 4; // less than this is a click, not a drag
  const BACKOFF_MIN_MS = 250;
  const BACKOFF_MAX_MS = 5000;
  const PING_INTERVAL_MS = 25000;
  const CONNECTED_WAIT_MS = 3000; // if a server never sends CONNECTED, carry on anyway
  const VIEWPORT_SAVE_DELAY_MS = 1000;
  const PANEL_REFRESH_DELAY_MS = 300;
  const TOAST_MS = 6000;
  const MAX_TOASTS = 5;
  const ZOOM_MIN = 0.1;
  const ZOOM_MAX = 4; // the server accepts (0, 10]
  const FEED_LIMIT = 50;
  const TOKEN_KEY = 'canopy.adminToken';

  // ---------------------------------------------------------------- state

  const state = {
    workspaces: new Map(), // id -> workspace object
    viewport: { x: 0, y: 0, zoom: 1 },
    lastSeq: 0, // newest event seq applied (or covered by the last snapshot)
    epoch: null, // stream epoch from CONNECTED; sent back on resume
    streamKnown: false, // true once a CONNECTED told us where the stream is: we can resume
    connection: 'reconnecting',
    selected: null,
    loaded: false, // a GET /workspaces answer has been applied
  };

  const nodes = new Map(); // id -> { el, head, name, role, status, task, badge, toggle, depth, hidden, box }
  const childIndex = new Map(); // parent id -> Set of child ids (kept while the parent is unknown)
  const overrides = new Map(); // id -> {x,y}: where a dragged card is shown until its PATCH settles
  const frozenBoxes = new Map(); // id -> box its ancestors keep using while it is dragged
  const NO_CHILDREN = new Set();

  const $ = (id) => document.getElementById(id);
  const dom = {
    viewport: $('viewport'),
    world: $('world'),
    emptyHint: $('empty-hint'),
    connection: $('connection'),
    count: $('count'),
    zoomLevel: $('zoom-level'),
    toasts: $('toasts'),
    tokenForm: $('token-form'),
    tokenInput: $('token-input'),
    tokenMessage: $('token-message'),
    newButton: $('new-workspace'),
    newForm: $('new-workspace-form'),
    newName: $('new-name'),
    newRole: $('new-role'),
    newAsChild: $('new-as-child'),
    newAsChildLabel: $('new-as-child-label'),
    newParentName: $('new-parent-name'),
    panel: $('panel'),
    panelTitle: $('panel-title'),
    panelStatus: $('panel-status'),
    panelDetails: $('panel-details'),
    renameForm: $('rename-form'),
    renameInput: $('rename-input'),
    deleteConfirm: $('delete-confirm'),
    deleteConfirmText: $('delete-confirm-text'),
    activity: $('panel-activity'),
    events: $('panel-events'),
  };

  // ---------------------------------------------------------------- small helpers

  function num(value, fallback = 0) {
    const n = Number(value);
    return value !== null && value !== '' && Number.isFinite(n) ? n : fallback;
  }

  function make(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function statusClass(status) {
    return 'status-' + String(status || 'unknown').toLowerCase().replace(/[^a-z0-9_-]/g, '');
  }

  function nameOf(id) {
    const ws = state.workspaces.get(id);
    return ws ? ws.name || '(unnamed)' : id;
  }

  function shortTime(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso || '') : d.toLocaleTimeString();
  }

  function percent(rate) {
    const n = Number(rate);
    return rate === null || rate === undefined || !Number.isFinite(n) ? undefined : `${Math.round(n * 1000) / 10}%`;
  }

  function duration(seconds) {
    const s = Number(seconds);
    if (seconds === null || seconds === undefined || !Number.isFinite(s) || s < 0) return undefined;
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return m ? `${m}m ${Math.floor(s % 60)}s` : `${Math.floor(s)}s`;
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // ---------------------------------------------------------------- toasts

  function toast(message, kind = 'error') {
    const t = make('div', `toast toast-${kind}`, message);
    t.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    t.addEventListener('click', () => t.remove());
    dom.toasts.append(t);
    while (dom.toasts.children.length > MAX_TOASTS) dom.toasts.firstElementChild.remove();
    setTimeout(() => t.remove(), TOAST_MS);
  }

  function reportError(err, prefix) {
    toast(prefix ? `${prefix}: ${err.message}` : err.message, 'error');
  }

  // ---------------------------------------------------------------- HTTP + admin token

  class ApiError extends Error {
    constructor(status, body) {
      const text = body && typeof body.error === 'string' ? body.error : `request failed (HTTP ${status})`;
      super(text);
      this.status = status;
      this.body = body;
    }
  }

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let tokenWait = null; // one shared promise while the token form is open
  let tokenResolve = null;

  async function readJson(res) {
    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return { error: text.slice(0, 200) };
    }
  }

  // Same-origin JSON request. A 401 opens the token form (once for all waiting requests)
  // and retries with the token; `prompt: false` lets a caller handle 401 itself.
  async function api(method, path, body, { prompt = true } = {}) {
    for (;;) {
      const sentToken = token;
      const headers = {};
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (sentToken) headers.Authorization = `Bearer ${sentToken}`;
      let res;
      try {
        res = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          cache: 'no-store',
        });
      } catch (_) {
        throw new ApiError(0, { error: 'server unreachable' });
      }
      const data = await readJson(res);
      if (res.status === 401 && prompt) {
        // The token may have been entered while this request was in flight: just retry.
        if (token === sentToken) {
          await askForToken(sentToken ? 'That token was refused. Enter the admin token.' : 'This server needs its admin token.');
        }
        continue;
      }
      if (!res.ok) throw new ApiError(res.status, data);
      return data;
    }
  }

  function askForToken(message) {
    dom.tokenMessage.textContent = message;
    if (!tokenWait) {
      tokenWait = new Promise((resolve) => { tokenResolve = resolve; });
      dom.tokenForm.hidden = false;
      dom.tokenInput.value = '';
      dom.tokenInput.focus();
    }
    return tokenWait;
  }

  function onTokenSubmit(event) {
    event.preventDefault();
    const value = dom.tokenInput.value.trim();
    if (!value) return;
    token = value;
    sessionStorage.setItem(TOKEN_KEY, token);
    dom.tokenForm.hidden = true;
    const resolve = tokenResolve;
    tokenWait = null;
    tokenResolve = null;
    if (resolve) resolve();
    // A socket that failed for want of the token should not wait out its backoff
    // (before boot has opened one, boot will open it with the token).
    if (rt.started && !socketIsOpen()) connect();
  }

  // ---------------------------------------------------------------- tree index

  function parentOf(id) {
    const ws = state.workspaces.get(id);
    const pid = ws && ws.parent_id;
    return pid && pid !== id && state.workspaces.has(pid) ? pid : null;
  }

  function childrenOf(id) {
    return childIndex.get(id) || NO_CHILDREN;
  }

  function indexChild(id, pid) {
    if (!pid) return;
    let set = childIndex.get(pid);
    if (!set) childIndex.set(pid, (set = new Set()));
    set.add(id);
  }

  function unindexChild(id, pid) {
    const set = pid && childIndex.get(pid);
    if (!set) return;
    set.delete(id);
    if (!set.size) childIndex.delete(pid);
  }

  function isDescendant(id, ancestorId) {
    let cur = parentOf(id);
    for (let i = 0; cur && i < MAX_DEPTH; i++) {
      if (cur === ancestorId) return true;
      cur = parentOf(cur);
    }
    return false;
  }

  function descendantsOf(id) {
    const out = [];
    const seen = new Set([id]);
    const stack = [...childrenOf(id)];
    while (stack.length) {
      const c = stack.pop();
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      stack.push(...childrenOf(c));
    }
    return out;
  }

  // ---------------------------------------------------------------- cards

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

  // Writes the text and status of one card (not its position).
  function renderCard(id) {
    const ws = state.workspaces.get(id);
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
    n.el.classList.toggle('selected', state.selected === id);
    renderToggle(id);
  }

  // The collapse toggle only exists on cards that have children.
  function renderToggle(id) {
    const ws = state.workspaces.get(id);
    const n = nodes.get(id);
    if (!ws || !n) return;
    const kids = childrenOf(id).size;
    n.toggle.hidden = kids === 0;
    n.toggle.textContent = ws.collapsed ? `▸ ${kids}` : '▾';
    n.toggle.title = ws.collapsed ? 'Show children' : 'Hide children';
    n.el.classList.toggle('has-children', kids > 0 && !ws.collapsed);
    n.el.classList.toggle('collapsed', !!ws.collapsed);
    n.el.dataset.collapsed = String(!!ws.collapsed);
  }

  // ---------------------------------------------------------------- layout

  function positionOf(id) {
    const o = overrides.get(id);
    if (o) return o;
    const ws = state.workspaces.get(id);
    return { x: ws.x, y: ws.y };
  }

  // Recomputes one card's box from its own head and its children's boxes, then places it.
  function fit(id) {
    const ws = state.workspaces.get(id);
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

  // A card changed size or place: re-fit it and every ancestor, nothing else.
  function fitUp(id) {
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
    n.hidden = pn ? pn.hidden || !!state.workspaces.get(pid).collapsed : false;
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
    for (const id of state.workspaces.keys()) {
      if (!parentOf(id)) {
        refreshMeta(id);
        fitSubtree(id, seen);
      }
    }
    // Anything unreachable from a root (a cycle in bad data) still gets drawn.
    for (const id of state.workspaces.keys()) if (!seen.has(id)) fit(id);
  }

  function updateCount() {
    const n = state.workspaces.size;
    dom.count.textContent = `${n} workspace${n === 1 ? '' : 's'}`;
    dom.emptyHint.hidden = n > 0 || !state.loaded; // "no workspaces" only once we know
  }

  // ---------------------------------------------------------------- model changes

  function normalize(raw) {
    return {
      ...raw,
      id: String(raw.id),
      name: raw.name == null ? '' : String(raw.name),
      status: raw.status || 'provisioning',
      parent_id: raw.parent_id || null,
      x: num(raw.x),
      y: num(raw.y),
      collapsed: !!raw.collapsed,
      active_tasks: num(raw.active_tasks),
      current_task: raw.current_task || '',
    };
  }

  function addWorkspace(raw) {
    const ws = normalize(raw);
    if (state.workspaces.has(ws.id)) return;
    state.workspaces.set(ws.id, ws);
    const n = createCard(ws.id);
    indexChild(ws.id, ws.parent_id);
    dom.world.append(n.el);
    renderCard(ws.id);
    if (parentOf(ws.id)) renderToggle(ws.parent_id);
    relayout(ws.id); // also re-attaches children that arrived before their parent
    updateCount();
  }

  function setFields(id, fields) {
    const ws = state.workspaces.get(id);
    if (!ws) return false;
    Object.assign(ws, fields);
    renderCard(id);
    return true;
  }

  function setLayout(id, x, y, collapsed) {
    const ws = state.workspaces.get(id);
    if (!ws) return false;
    if (Number.isFinite(x)) ws.x = x;
    if (Number.isFinite(y)) ws.y = y;
    if (typeof collapsed === 'boolean' && collapsed !== ws.collapsed) {
      ws.collapsed = collapsed;
      renderToggle(id);
      for (const c of childrenOf(id)) refreshMeta(c);
    }
    fitUp(id);
    return true;
  }

  function setParent(id, newParentId) {
    const ws = state.workspaces.get(id);
    const pid = newParentId || null;
    if (!ws || ws.parent_id === pid) return;
    const oldVisible = parentOf(id);
    unindexChild(id, ws.parent_id);
    ws.parent_id = pid;
    indexChild(id, pid);
    renderCard(id);
    if (oldVisible) {
      renderToggle(oldVisible);
      fitUp(oldVisible);
    }
    if (parentOf(id)) renderToggle(pid);
    relayout(id);
  }

  function removeWorkspace(id) {
    const ws = state.workspaces.get(id);
    if (!ws) return;
    if (drag && drag.id === id) cancelDrag();
    const oldVisible = parentOf(id);
    unindexChild(id, ws.parent_id);
    state.workspaces.delete(id);
    overrides.delete(id);
    frozenBoxes.delete(id);
    nodes.get(id).el.remove();
    nodes.delete(id);
    // Children normally get their own REMOVED (deletes cascade); until then they stand alone.
    for (const c of [...childrenOf(id)]) relayout(c);
    if (oldVisible) {
      renderToggle(oldVisible);
      fitUp(oldVisible);
    }
    if (state.selected === id) selectWorkspace(null);
    updateCount();
  }

  function removeSubtree(id) {
    const doomed = descendantsOf(id).reverse();
    for (const d of doomed) removeWorkspace(d);
    removeWorkspace(id);
  }

  // Replaces what we know with a full GET /workspaces answer, reusing existing elements.
  function applySnapshot(list) {
    if (!Array.isArray(list)) throw new ApiError(0, { error: 'unexpected /workspaces answer' });
    const seen = new Set();
    const fragment = document.createDocumentFragment();
    for (const raw of list) {
      if (!raw || !raw.id || raw.status === 'removed') continue;
      const ws = normalize(raw);
      seen.add(ws.id);
      const known = state.workspaces.get(ws.id);
      if (known) {
        Object.assign(known, ws);
      } else {
        state.workspaces.set(ws.id, ws);
        fragment.append(createCard(ws.id).el);
      }
    }
    for (const id of [...state.workspaces.keys()]) {
      if (seen.has(id)) continue;
      if (drag && drag.id === id) {
        endDragVisuals(drag);
        drag = null;
      }
      state.workspaces.delete(id);
      overrides.delete(id);
      frozenBoxes.delete(id);
      nodes.get(id).el.remove();
      nodes.delete(id);
    }
    dom.world.append(fragment);
    state.loaded = true;
    childIndex.clear();
    for (const ws of state.workspaces.values()) indexChild(ws.id, ws.parent_id);
    for (const id of state.workspaces.keys()) renderCard(id);
    layoutAll();
    updateCount();
    if (state.selected && !state.workspaces.has(state.selected)) selectWorkspace(null);
    else if (state.selected) renderPanelDetails();
  }

  // Fetches one workspace we heard about but do not know (or whose role an event omitted).
  const fetching = new Set();
  async function fetchWorkspace(id) {
    if (!id || fetching.has(id)) return;
    fetching.add(id);
    try {
      const raw = await api('GET', `/workspaces/${encodeURIComponent(id)}`);
      if (!raw || !raw.id || raw.status === 'removed') return;
      const known = state.workspaces.get(raw.id);
      if (!known) {
        addWorkspace(raw);
      } else {
        // Events may have overtaken this answer: only fill in what we do not know yet.
        for (const [key, value] of Object.entries(raw)) if (known[key] === undefined) known[key] = value;
        renderCard(raw.id);
      }
      if (state.selected === raw.id) renderPanelDetails();
    } catch (err) {
      if (err.status !== 404 && err.status !== 410) console.warn('canopy: fetch workspace', id, err);
    } finally {
      fetching.delete(id);
    }
  }

  // ---------------------------------------------------------------- snapshot loading

  // While a snapshot loads, events are queued and applied on top of it afterwards: the
  // socket connected first, so nothing between "snapshot taken" and "live" is lost.
  const sync = { gen: 0, buffering: false, queue: [] };

  async function loadSnapshot() {
    const gen = ++sync.gen;
    sync.buffering = true;
    try {
      const list = await api('GET', '/workspaces');
      if (gen !== sync.gen) return false;
      applySnapshot(list);
      return true;
    } catch (err) {
      if (gen === sync.gen) reportError(err, 'Could not load workspaces');
      return false;
    } finally {
      if (gen === sync.gen) {
        sync.buffering = false;
        const queued = sync.queue;
        sync.queue = [];
        for (const frame of queued) applyEvent(frame);
      }
    }
  }

  // ---------------------------------------------------------------- viewport

  function applyViewport() {
    const { x, y, zoom } = state.viewport;
    dom.world.style.transform = `translate(${x}px, ${y}px) scale(${zoom})`;
    const grid = 24 * zoom;
    dom.viewport.style.backgroundSize = `${grid}px ${grid}px`;
    dom.viewport.style.backgroundPosition = `${x}px ${y}px`;
    dom.viewport.dataset.x = String(x);
    dom.viewport.dataset.y = String(y);
    dom.viewport.dataset.zoom = String(zoom);
    dom.zoomLevel.textContent = `${Math.round(zoom * 100)}%`;
  }

  function setViewport(v) {
    const zoom = num(v && v.zoom, 1);
    state.viewport = {
      x: num(v && v.x),
      y: num(v && v.y),
      zoom: zoom > 0 ? Math.min(Math.max(zoom, ZOOM_MIN), ZOOM_MAX) : 1,
    };
    applyViewport();
  }

  const saveViewportSoon = debounce(async () => {
    const { x, y, zoom } = state.viewport;
    const round = (v, d) => Math.round(v * d) / d;
    try {
      await api('PUT', '/canvas/viewport', { x: round(x, 100), y: round(y, 100), zoom: round(zoom, 10000) });
    } catch (err) {
      reportError(err, 'Could not save the view');
    }
  }, VIEWPORT_SAVE_DELAY_MS);

  // Zooms keeping the world point under (cx, cy) (viewport pixels) where it is.
  function zoomAt(cx, cy, zoom) {
    const v = state.viewport;
    const z = Math.min(Math.max(zoom, ZOOM_MIN), ZOOM_MAX);
    const wx = (cx - v.x) / v.zoom;
    const wy = (cy - v.y) / v.zoom;
    state.viewport = { x: cx - wx * z, y: cy - wy * z, zoom: z };
    applyViewport();
    saveViewportSoon();
  }

  function zoomBy(factor) {
    const rect = dom.viewport.getBoundingClientRect();
    zoomAt(rect.width / 2, rect.height / 2, state.viewport.zoom * factor);
  }

  function onWheel(event) {
    event.preventDefault();
    const rect = dom.viewport.getBoundingClientRect();
    const perUnit = event.deltaMode === 1 ? 0.05 : 0.0015; // lines vs pixels
    zoomAt(event.clientX - rect.left, event.clientY - rect.top, state.viewport.zoom * Math.exp(-event.deltaY * perUnit));
  }

  function fitView() {
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
    const v = state.viewport;
    return { x: (rect.width / 2 - v.x) / v.zoom, y: (rect.height / 2 - v.y) / v.zoom };
  }

  // ---------------------------------------------------------------- pointer: drag, pan, click

  let drag = null; // { id, pointerId, startX, startY, originX, originY, moved, target }
  let pan = null; // { pointerId, startX, startY, vx, vy, moved }

  function onPointerDown(event) {
    if (event.button !== 0 || drag || pan) return;
    if (event.target.closest('button, input, a')) return;
    const card = event.target.closest('.card');
    if (card) startDrag(event, card.dataset.workspaceId);
    else startPan(event);
  }

  function startDrag(event, id) {
    if (!state.workspaces.has(id) || overrides.has(id)) return; // its last move is still saving
    const p = positionOf(id);
    drag = {
      id, pointerId: event.pointerId, startX: event.clientX, startY: event.clientY,
      originX: p.x, originY: p.y, moved: false, target: null,
    };
    dom.viewport.setPointerCapture(event.pointerId);
    event.preventDefault();
  }

  function startPan(event) {
    const v = state.viewport;
    pan = { pointerId: event.pointerId, startX: event.clientX, startY: event.clientY, vx: v.x, vy: v.y, moved: false };
    dom.viewport.setPointerCapture(event.pointerId);
    event.preventDefault();
  }

  function onPointerMove(event) {
    if (drag && event.pointerId === drag.pointerId) moveDrag(event);
    else if (pan && event.pointerId === pan.pointerId) movePan(event);
  }

  function moveDrag(event) {
    const dx = event.clientX - drag.startX;
    const dy = event.clientY - drag.startY;
    if (!drag.moved) {
      if (Math.hypot(dx, dy) < DRAG_THRESHOLD_PX) return;
      drag.moved = true;
      // Ancestors keep the card's old box while it moves, so it can be dragged out of them.
      frozenBoxes.set(drag.id, nodes.get(drag.id).box);
      nodes.get(drag.id).el.classList.add('dragging');
      document.body.classList.add('is-dragging');
    }
    const z = state.viewport.zoom;
    overrides.set(drag.id, { x: Math.round(drag.originX + dx / z), y: Math.round(drag.originY + dy / z) });
    fit(drag.id);
    setDropTarget(dropTargetAt(event.clientX, event.clientY));
  }

  function movePan(event) {
    const dx = event.clientX - pan.startX;
    const dy = event.clientY - pan.startY;
    if (!pan.moved && Math.hypot(dx, dy) < DRAG_THRESHOLD_PX) return;
    if (!pan.moved) dom.viewport.classList.add('panning');
    pan.moved = true;
    state.viewport = { ...state.viewport, x: pan.vx + dx, y: pan.vy + dy };
    applyViewport();
  }

  function onPointerUp(event) {
    if (drag && event.pointerId === drag.pointerId) {
      const d = drag;
      if (!d.moved) {
        drag = null;
        selectWorkspace(d.id);
      } else {
        finishDrag(d, dropTargetAt(event.clientX, event.clientY));
      }
    } else if (pan && event.pointerId === pan.pointerId) {
      const moved = pan.moved;
      pan = null;
      dom.viewport.classList.remove('panning');
      if (moved) saveViewportSoon();
      else selectWorkspace(null); // a click on empty canvas closes the panel
    }
  }

  function onPointerCancel(event) {
    if (drag && event.pointerId === drag.pointerId) cancelDrag();
    if (pan && event.pointerId === pan.pointerId) {
      pan = null;
      dom.viewport.classList.remove('panning');
    }
  }

  function overlapsHead(pos, id) {
    const other = positionOf(id);
    return Math.abs(pos.x - other.x) < CARD_W && Math.abs(pos.y - other.y) < CARD_H;
  }

  // The topmost card under the pointer that the dragged card may nest into.
  function dropTargetAt(clientX, clientY) {
    if (!drag) return null;
    for (const element of document.elementsFromPoint(clientX, clientY)) {
      const card = element.closest && element.closest('.card');
      if (!card) continue;
      const id = card.dataset.workspaceId;
      if (id === drag.id || isDescendant(id, drag.id)) continue; // nesting there is a cycle
      return id;
    }
    return null;
  }

  function setDropTarget(id) {
    if (!drag || drag.target === id) return;
    const old = drag.target && nodes.get(drag.target);
    if (old) old.el.classList.remove('drop-target');
    drag.target = id;
    const next = id && nodes.get(id);
    if (next) next.el.classList.add('drop-target');
  }

  function endDragVisuals(d) {
    const old = d.target && nodes.get(d.target);
    if (old) old.el.classList.remove('drop-target');
    const n = nodes.get(d.id);
    if (n) n.el.classList.remove('dragging');
    document.body.classList.remove('is-dragging');
  }

  function cancelDrag() {
    if (!drag) return;
    const d = drag;
    drag = null;
    endDragVisuals(d);
    overrides.delete(d.id);
    frozenBoxes.delete(d.id);
    if (state.workspaces.has(d.id)) fitUp(d.id);
  }

  // Saves a drop as one PATCH: the new x,y, plus parent_id when it lands in a new parent
  // (or on empty canvas, which un-nests it). The card stays where it was dropped until the
  // server answers; a refusal puts it back where the server says it is.
  async function finishDrag(d, targetId) {
    drag = null;
    endDragVisuals(d);
    const id = d.id;
    const pos = overrides.get(id);
    if (!state.workspaces.has(id) || !pos) {
      overrides.delete(id);
      frozenBoxes.delete(id);
      return;
    }
    const body = { x: pos.x, y: pos.y };
    if (targetId !== parentOf(id)) {
      body.parent_id = targetId;
      // Dropped onto its new parent's head: take the next free slot under it instead of
      // hiding the parent's name.
      if (targetId && overlapsHead(pos, targetId)) {
        const slot = placementFor(targetId);
        body.x = slot.x;
        body.y = slot.y;
        overrides.set(id, slot);
        fit(id);
      }
    }
    if (!('parent_id' in body) && pos.x === d.originX && pos.y === d.originY) {
      overrides.delete(id);
      frozenBoxes.delete(id);
      fitUp(id);
      return;
    }
    let error = null;
    try {
      await api('PATCH', `/workspaces/${encodeURIComponent(id)}`, body);
    } catch (err) {
      error = err;
    }
    overrides.delete(id);
    frozenBoxes.delete(id);
    if (!state.workspaces.has(id)) return; // removed while saving
    if (!error) {
      // Apply it now; the echoed LAYOUT_CHANGED / MOVED events are idempotent.
      const ws = state.workspaces.get(id);
      ws.x = body.x;
      ws.y = body.y;
      if ('parent_id' in body) setParent(id, body.parent_id);
    }
    fitUp(id);
    if (error) {
      const what = error.status === 409 ? 'Move refused' : 'Could not save the move';
      reportError(error, what);
    }
    if (state.selected === id) renderPanelDetails();
  }

  async function toggleCollapsed(id) {
    const ws = state.workspaces.get(id);
    if (!ws) return;
    const next = !ws.collapsed;
    setLayout(id, undefined, undefined, next);
    try {
      await api('PATCH', `/workspaces/${encodeURIComponent(id)}`, { collapsed: next });
    } catch (err) {
      setLayout(id, undefined, undefined, !next);
      reportError(err, 'Could not collapse');
    }
  }

  function onCanvasClick(event) {
    const toggle = event.target.closest('.card-toggle');
    if (!toggle) return;
    const card = toggle.closest('.card');
    if (card) toggleCollapsed(card.dataset.workspaceId);
  }

  function onCanvasKey(event) {
    if (event.key !== 'Enter' || !event.target.classList.contains('card-head')) return;
    const card = event.target.closest('.card');
    if (card) selectWorkspace(card.dataset.workspaceId);
  }

  // ---------------------------------------------------------------- WebSocket

  const rt = {
    started: false, // boot has opened the first socket
    ws: null,
    resuming: false, // this socket asked for since=
    connected: false, // CONNECTED seen on this socket
    backoff: BACKOFF_MIN_MS,
    retryTimer: null,
    pingTimer: null,
    connectedTimer: null,
  };

  function setConnection(value) {
    state.connection = value;
    dom.connection.textContent = value;
    dom.connection.dataset.state = value;
  }

  function socketIsOpen() {
    return !!rt.ws && rt.ws.readyState === WebSocket.OPEN;
  }

  function socketUrl(resume) {
    const url = new URL('/ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    if (resume) {
      url.searchParams.set('since', String(state.lastSeq));
      if (state.epoch != null) url.searchParams.set('epoch', String(state.epoch));
    }
    if (token) url.searchParams.set('token', token);
    return url.toString();
  }

  function stopSocketTimers() {
    clearInterval(rt.pingTimer);
    clearTimeout(rt.connectedTimer);
    rt.pingTimer = null;
    rt.connectedTimer = null;
  }

  function dropSocket() {
    const old = rt.ws;
    rt.ws = null;
    stopSocketTimers();
    if (old) {
      old.onopen = old.onmessage = old.onclose = old.onerror = null;
      try {
        old.close();
      } catch (_) { /* already closed */ }
    }
  }

  // Opens the socket: resuming from lastSeq when we know the stream, fresh otherwise.
  function connect() {
    clearTimeout(rt.retryTimer);
    rt.retryTimer = null;
    rt.started = true;
    dropSocket();
    rt.resuming = state.streamKnown;
    rt.connected = false;
    let sock;
    try {
      sock = new WebSocket(socketUrl(rt.resuming));
    } catch (err) {
      console.warn('canopy: websocket', err);
      scheduleReconnect();
      return;
    }
    rt.ws = sock;
    sock.onopen = () => {
      rt.pingTimer = setInterval(() => send({ type: 'ping' }), PING_INTERVAL_MS);
      rt.connectedTimer = setTimeout(() => onConnected(sock, {}), CONNECTED_WAIT_MS);
    };
    sock.onmessage = (message) => onFrame(sock, message.data);
    sock.onclose = () => {
      if (rt.ws !== sock) return;
      rt.ws = null;
      stopSocketTimers();
      setConnection('reconnecting');
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    clearTimeout(rt.retryTimer);
    rt.retryTimer = setTimeout(connect, rt.backoff);
    rt.backoff = Math.min(rt.backoff * 2, BACKOFF_MAX_MS);
  }

  function send(object) {
    if (socketIsOpen()) rt.ws.send(JSON.stringify(object));
  }

  function onConnected(sock, payload) {
    if (rt.ws !== sock || rt.connected) return;
    rt.connected = true;
    clearTimeout(rt.connectedTimer);
    rt.backoff = BACKOFF_MIN_MS;
    const epoch = payload.epoch != null ? payload.epoch : null;
    const newest = num(payload.seq, NaN);
    if (rt.resuming) {
      // The server should have said RESYNC_REQUIRED itself; if the stream plainly restarted
      // (another epoch, or a newest seq behind ours) reload rather than ignore new events.
      const epochChanged = epoch != null && state.epoch != null && String(epoch) !== String(state.epoch);
      if (epochChanged || newest < state.lastSeq) {
        resync('stream restarted');
        return;
      }
      if (epoch != null) state.epoch = epoch;
      setConnection('live');
      return;
    }
    state.epoch = epoch;
    state.lastSeq = Number.isFinite(newest) ? newest : 0;
    state.streamKnown = true;
    // "live" once the snapshot is in (or failed, and said so): events flow either way.
    loadSnapshot().then(() => {
      if (rt.ws === sock && socketIsOpen()) setConnection('live');
    });
  }

  // RESYNC_REQUIRED: what we hold may miss events. Start over: a fresh socket, whose
  // CONNECTED triggers a new GET /workspaces.
  function resync(reason) {
    console.info('canopy: resync', reason || '');
    state.streamKnown = false;
    state.epoch = null;
    state.lastSeq = 0;
    sync.gen++;
    sync.buffering = false;
    sync.queue = [];
    setConnection('reconnecting');
    connect();
  }

  function onFrame(sock, data) {
    if (rt.ws !== sock) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (_) {
      return;
    }
    // pong and error frames carry no event.
    if (!frame || typeof frame !== 'object' || typeof frame.event !== 'string') return;
    if (frame.event === 'CONNECTED') {
      onConnected(sock, frame.payload || {});
      return;
    }
    if (frame.event === 'RESYNC_REQUIRED') {
      resync(frame.payload && frame.payload.reason);
      return;
    }
    if (typeof frame.seq === 'number') {
      if (frame.seq <= state.lastSeq) return; // already applied (or in the snapshot)
      state.lastSeq = frame.seq;
    }
    if (sync.buffering) sync.queue.push(frame);
    else applyEvent(frame);
  }

  // ---------------------------------------------------------------- events

  const STATUS_EVENTS = {
    WORKSPACE_ONLINE: 'online',
    WORKSPACE_OFFLINE: 'offline',
    WORKSPACE_DEGRADED: 'degraded',
    WORKSPACE_PROVISION_FAILED: 'failed',
    WORKSPACE_PAUSED: 'paused',
  };

  const handlers = {
    WORKSPACE_PROVISIONING(id, p) {
      if (setFields(id, { status: 'provisioning' })) return;
      // Role is not in this payload: add what we have and fetch the rest. A child's x/y in
      // this event are relative to its parent (the reference platform's convention); the
      // store keeps absolute ones, as GET /workspaces does.
      const parent = p.parent_id ? state.workspaces.get(String(p.parent_id)) : null;
      addWorkspace({
        id, name: p.name, tier: p.tier, runtime: p.runtime, parent_id: p.parent_id,
        x: num(p.x) + (parent ? num(parent.x) : 0),
        y: num(p.y) + (parent ? num(parent.y) : 0),
        status: 'provisioning',
      });
      fetchWorkspace(id);
    },
    WORKSPACE_REMOVED(id) {
      removeWorkspace(id);
    },
    WORKSPACE_MOVED(id, p) {
      if (!state.workspaces.has(id)) return fetchWorkspace(id);
      setParent(id, p.new_parent_id || null);
    },
    WORKSPACE_UPDATED(id, p) {
      const fields = {};
      for (const key of ['name', 'role', 'tier', 'runtime']) if (key in p) fields[key] = p[key];
      if (!setFields(id, fields)) fetchWorkspace(id);
    },
    WORKSPACE_LAYOUT_CHANGED(id, p) {
      const collapsed = typeof p.collapsed === 'boolean' ? p.collapsed : undefined;
      if (!setLayout(id, num(p.x, NaN), num(p.y, NaN), collapsed)) fetchWorkspace(id);
    },
    TASK_UPDATED(id, p) {
      const fields = {};
      if ('current_task' in p) fields.current_task = p.current_task || '';
      if ('active_tasks' in p) fields.active_tasks = num(p.active_tasks);
      if (!setFields(id, fields)) fetchWorkspace(id);
    },
    AGENT_CARD_UPDATED(id, p) {
      setFields(id, { agent_card: p.agent_card });
    },
    AGENT_MESSAGE(id, p) {
      const who = p.name || nameOf(id);
      toast(`${who}: ${p.message == null ? '' : p.message}`, 'message');
    },
    ACTIVITY_LOGGED() {
      // Nothing on the card; the panel refreshes below when it shows this workspace.
    },
  };

  function applyStatus(id, event, p) {
    const fields = { status: STATUS_EVENTS[event] };
    if (event === 'WORKSPACE_ONLINE') {
      if (p.url !== undefined) fields.url = p.url;
      if (p.agent_card !== undefined) fields.agent_card = p.agent_card;
    } else if (event === 'WORKSPACE_DEGRADED') {
      if (p.error_rate !== undefined) fields.last_error_rate = p.error_rate;
      if (p.sample_error !== undefined) fields.last_sample_error = p.sample_error;
    } else if (event === 'WORKSPACE_PROVISION_FAILED') {
      if (p.error !== undefined) fields.last_error = p.error;
    }
    if (!setFields(id, fields)) fetchWorkspace(id);
  }

  function isStructural(event) {
    return (event.startsWith('WORKSPACE_') && event !== 'WORKSPACE_LAYOUT_CHANGED') ||
      (event.startsWith('AGENT_') && event !== 'AGENT_MESSAGE');
  }

  function applyEvent(frame) {
    const id = frame.workspace_id ? String(frame.workspace_id) : '';
    const payload = frame.payload && typeof frame.payload === 'object' ? frame.payload : {};
    try {
      if (STATUS_EVENTS[frame.event]) applyStatus(id, frame.event, payload);
      else if (handlers[frame.event]) handlers[frame.event](id, payload);
      else return; // unknown events are someone else's
    } catch (err) {
      console.error('canopy: applying', frame.event, err);
    }
    if (id && id === state.selected) {
      renderPanelDetails();
      refreshDetailsSoon();
      if (frame.event === 'ACTIVITY_LOGGED') refreshActivitySoon();
      if (isStructural(frame.event)) refreshEventsSoon();
    }
  }

  // ---------------------------------------------------------------- side panel

  function selectWorkspace(id) {
    const prev = state.selected;
    if (prev && nodes.has(prev)) nodes.get(prev).el.classList.remove('selected');
    state.selected = id && state.workspaces.has(id) ? id : null;
    dom.deleteConfirm.hidden = true;
    updateNewFormParent();
    if (!state.selected) {
      dom.panel.hidden = true;
      delete dom.panel.dataset.workspaceId;
      return;
    }
    nodes.get(id).el.classList.add('selected');
    dom.panel.hidden = false;
    dom.panel.dataset.workspaceId = id;
    if (prev !== id) {
      dom.renameInput.value = state.workspaces.get(id).name || '';
      dom.activity.replaceChildren(make('li', 'empty', 'Loading…'));
      dom.events.replaceChildren(make('li', 'empty', 'Loading…'));
    }
    renderPanelDetails();
    refreshDetails();
    refreshActivity();
    refreshEvents();
  }

  function renderPanelDetails() {
    const id = state.selected;
    const ws = id && state.workspaces.get(id);
    if (!ws) return;
    dom.panelTitle.textContent = ws.name || '(unnamed)';
    dom.panelStatus.textContent = ws.status;
    dom.panelStatus.className = `pill ${statusClass(ws.status)}`;
    const pos = positionOf(id);
    const rows = [
      ['ID', ws.id],
      ['Role', ws.role],
      ['Status', ws.status],
      ['Tier', ws.tier],
      ['Runtime', ws.runtime],
      ['Parent', ws.parent_id ? { link: ws.parent_id, text: nameOf(ws.parent_id) } : '—'],
      ['Children', String(childrenOf(id).size)],
      ['Position', `${pos.x}, ${pos.y}`],
      ['Active tasks', String(num(ws.active_tasks))],
      ['Current task', ws.current_task],
      ['URL', ws.url],
      ...(ws.last_heartbeat_at ? [
        ['Last heartbeat', shortTime(ws.last_heartbeat_at)],
        ['Error rate', percent(ws.last_error_rate)],
        ['Uptime', duration(ws.uptime_seconds)],
      ] : []),
      ['Last error', ws.last_sample_error || ws.last_error],
      ['Created', ws.created_at ? new Date(ws.created_at).toLocaleString() : undefined],
    ];
    const fragment = document.createDocumentFragment();
    for (const [label, value] of rows) {
      if (value === undefined || value === null || value === '') continue;
      const dd = make('dd');
      if (typeof value === 'object' && value.link) {
        const a = make('a', '', value.text);
        a.addEventListener('click', () => selectWorkspace(value.link));
        dd.append(a);
      } else {
        dd.textContent = String(value);
      }
      fragment.append(make('dt', '', label), dd);
    }
    dom.panelDetails.replaceChildren(fragment);
  }

  function renderFeed(list, items, toItem, emptyText) {
    if (!Array.isArray(items) || items.length === 0) {
      list.replaceChildren(make('li', 'empty', emptyText));
      return;
    }
    list.replaceChildren(...items.slice(0, FEED_LIMIT).map(toItem));
  }

  function activityItem(a) {
    const li = make('li');
    li.append(make('time', '', shortTime(a.created_at)), make('span', 'kind', a.activity_type || 'activity'));
    const text = [a.method, a.summary].filter(Boolean).join(' — ');
    if (text) li.append(document.createTextNode(text));
    if (a.status && a.status !== 'ok') li.append(make('span', 'err', ` (${a.status})`));
    if (a.error_detail) li.append(make('span', 'detail err', a.error_detail));
    if (a.duration_ms != null) li.append(make('span', 'detail', `${a.duration_ms} ms`));
    return li;
  }

  function eventItem(e) {
    const li = make('li');
    li.append(make('time', '', shortTime(e.created_at)), make('span', 'kind', e.event_type || 'event'));
    const text = payloadText(e.payload);
    if (text) li.append(make('span', 'detail', text.length > 160 ? `${text.slice(0, 157)}…` : text));
    return li;
  }

  // "name: Support · tier: 3 · parent: Acme HQ": set fields only, workspace ids by name.
  function payloadText(payload) {
    if (!payload || typeof payload !== 'object') return '';
    const parts = [];
    for (const [key, value] of Object.entries(payload)) {
      if (value === null || value === undefined || value === '') continue;
      let shown;
      if (typeof value === 'string' && state.workspaces.has(value)) shown = nameOf(value);
      else if (typeof value === 'object') shown = JSON.stringify(value);
      else shown = String(value);
      parts.push(`${key.replace(/_id$/, '').replace(/_/g, ' ')}: ${shown}`);
    }
    return parts.join(' · ');
  }

  async function refreshActivity() {
    const id = state.selected;
    if (!id) return;
    try {
      // Registered workspaces guard their activity with their own token; without the
      // admin token we cannot read it, and asking for a token would be wrong.
      const path = `/workspaces/${encodeURIComponent(id)}/activity?limit=${FEED_LIMIT}`;
      const rows = await api('GET', path, undefined, { prompt: !!token });
      if (state.selected === id) renderFeed(dom.activity, rows, activityItem, 'No activity yet.');
    } catch (err) {
      if (state.selected === id) dom.activity.replaceChildren(make('li', 'empty', `Activity unavailable: ${err.message}`));
    }
  }

  async function refreshEvents() {
    const id = state.selected;
    if (!id) return;
    try {
      const rows = await api('GET', `/events/${encodeURIComponent(id)}?limit=${FEED_LIMIT}`);
      if (state.selected === id) renderFeed(dom.events, rows, eventItem, 'No structure events.');
    } catch (err) {
      if (state.selected === id) dom.events.replaceChildren(make('li', 'empty', `Events unavailable: ${err.message}`));
    }
  }

  const refreshActivitySoon = debounce(refreshActivity, PANEL_REFRESH_DELAY_MS);
  const refreshEventsSoon = debounce(refreshEvents, PANEL_REFRESH_DELAY_MS);

  // Heartbeat details (uptime, error rate, last heartbeat…) travel in no event: the panel
  // reads them when it opens and after each event about its workspace. Only those fields
  // are taken, so a slow answer cannot undo what newer events said.
  const DETAIL_FIELDS = [
    'url', 'agent_card', 'last_heartbeat_at', 'uptime_seconds', 'last_error_rate',
    'last_sample_error', 'created_at', 'updated_at',
  ];
  async function refreshDetails() {
    const id = state.selected;
    if (!id) return;
    try {
      const raw = await api('GET', `/workspaces/${encodeURIComponent(id)}`);
      const ws = state.workspaces.get(id);
      if (!ws || !raw || raw.id !== id) return;
      for (const key of DETAIL_FIELDS) if (key in raw) ws[key] = raw[key];
      if (state.selected === id) renderPanelDetails();
    } catch (err) {
      if (err.status !== 404 && err.status !== 410) console.warn('canopy: details', id, err);
    }
  }
  const refreshDetailsSoon = debounce(refreshDetails, PANEL_REFRESH_DELAY_MS);

  async function onRename(event) {
    event.preventDefault();
    const id = state.selected;
    const name = dom.renameInput.value.trim();
    if (!id || !name) return;
    try {
      await api('PATCH', `/workspaces/${encodeURIComponent(id)}`, { name });
      setFields(id, { name });
      if (state.selected === id) renderPanelDetails();
    } catch (err) {
      reportError(err, 'Rename failed');
    }
  }

  async function postAction(action) {
    const id = state.selected;
    if (!id) return;
    try {
      await api('POST', `/workspaces/${encodeURIComponent(id)}/${action}`, {});
    } catch (err) {
      reportError(err, `${action[0].toUpperCase()}${action.slice(1)} failed`);
    }
  }

  // Deleting a workspace with children needs confirmation: the server answers 409
  // confirmation_required, we show what would go, and retry with ?confirm=true.
  async function deleteWorkspace(id, confirmed) {
    if (!id) return;
    try {
      const res = await api('DELETE', `/workspaces/${encodeURIComponent(id)}${confirmed ? '?confirm=true' : ''}`);
      dom.deleteConfirm.hidden = true;
      const name = nameOf(id);
      removeSubtree(id); // the WORKSPACE_REMOVED events will agree
      const extra = res && num(res.cascade_deleted) > 0 ? ` and ${res.cascade_deleted} below it` : '';
      toast(`Deleted ${name}${extra}.`, 'info');
    } catch (err) {
      if (err.status === 409 && err.body && err.body.status === 'confirmation_required') showDeleteConfirm(id, err.body);
      else reportError(err, 'Delete failed');
    }
  }

  function showDeleteConfirm(id, body) {
    const children = Array.isArray(body.children) ? body.children : [];
    const count = num(body.children_count, children.length);
    const names = children.slice(0, 5).map((c) => (typeof c === 'object' && c ? c.name || c.id : nameOf(String(c))));
    const more = count > names.length ? `, and ${count - names.length} more` : '';
    dom.deleteConfirmText.textContent =
      `“${nameOf(id)}” has ${count} child workspace${count === 1 ? '' : 's'}` +
      (names.length ? ` (${names.join(', ')}${more})` : '') + '. Delete them all?';
    dom.deleteConfirm.dataset.workspaceId = id;
    dom.deleteConfirm.hidden = false;
  }

  // ---------------------------------------------------------------- new workspace

  function updateNewFormParent() {
    const id = state.selected;
    dom.newAsChildLabel.hidden = !id;
    dom.newParentName.textContent = id ? nameOf(id) : '';
  }

  function toggleNewForm(open = dom.newForm.hidden) {
    dom.newForm.hidden = !open;
    if (open) {
      updateNewFormParent();
      dom.newName.focus();
    }
  }

  // New roots appear in the middle of the view; new children in a grid under their parent.
  function placementFor(parentId) {
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
    const step = (state.workspaces.size % 5) * 24; // so quick successive creations do not stack exactly
    return { x: Math.round(c.x - CARD_W / 2 + step), y: Math.round(c.y - CARD_H / 2 + step) };
  }

  async function onCreate(event) {
    event.preventDefault();
    const name = dom.newName.value.trim();
    const role = dom.newRole.value.trim();
    if (!name) return;
    const parentId = state.selected && dom.newAsChild.checked ? state.selected : null;
    const canvas = placementFor(parentId);
    const body = { name, canvas };
    if (role) body.role = role;
    if (parentId) body.parent_id = parentId;
    try {
      const res = await api('POST', '/workspaces', body);
      if (res && res.id && !state.workspaces.has(res.id)) {
        // Show it now; the WORKSPACE_PROVISIONING event will find it already here.
        addWorkspace({
          id: res.id, name, role, status: res.status || 'provisioning',
          parent_id: parentId, x: canvas.x, y: canvas.y, tier: 3,
        });
      }
      dom.newForm.reset();
      dom.newAsChild.checked = true;
      toggleNewForm(false);
      if (res && res.id) selectWorkspace(res.id);
    } catch (err) {
      reportError(err, 'Create failed');
    }
  }

  // ---------------------------------------------------------------- wiring + boot

  function onKey(event) {
    if (event.key !== 'Escape') return;
    if (drag) cancelDrag();
    else if (!dom.newForm.hidden) toggleNewForm(false);
    else if (!dom.deleteConfirm.hidden) dom.deleteConfirm.hidden = true;
    else if (state.selected) selectWorkspace(null);
  }

  function wire() {
    const v = dom.viewport;
    v.addEventListener('pointerdown', onPointerDown);
    v.addEventListener('pointermove', onPointerMove);
    v.addEventListener('pointerup', onPointerUp);
    v.addEventListener('pointercancel', onPointerCancel);
    v.addEventListener('wheel', onWheel, { passive: false });
    v.addEventListener('click', onCanvasClick);
    v.addEventListener('keydown', onCanvasKey);
    document.addEventListener('keydown', onKey);

    $('zoom-in').addEventListener('click', () => zoomBy(1.25));
    $('zoom-out').addEventListener('click', () => zoomBy(0.8));
    $('fit-view').addEventListener('click', fitView);

    dom.tokenForm.addEventListener('submit', onTokenSubmit);
    dom.newButton.addEventListener('click', () => toggleNewForm());
    $('new-cancel').addEventListener('click', () => toggleNewForm(false));
    dom.newForm.addEventListener('submit', onCreate);

    $('panel-close').addEventListener('click', () => selectWorkspace(null));
    dom.renameForm.addEventListener('submit', onRename);
    $('panel-pause').addEventListener('click', () => postAction('pause'));
    $('panel-resume').addEventListener('click', () => postAction('resume'));
    $('panel-delete').addEventListener('click', () => deleteWorkspace(state.selected, false));
    $('delete-confirm-yes').addEventListener('click', () => deleteWorkspace(dom.deleteConfirm.dataset.workspaceId, true));
    $('delete-confirm-no').addEventListener('click', () => { dom.deleteConfirm.hidden = true; });
  }

  // Start-up: viewport and workspaces first (so the page is useful even before the socket
  // is up, and a 401 asks for the token before anything else), then the live stream.
  // The first CONNECTED reloads the workspaces once more so nothing between the GET and
  // the socket going live is missed.
  async function boot() {
    wire();
    applyViewport();
    setConnection('reconnecting');
    updateCount();
    try {
      setViewport(await api('GET', '/canvas/viewport'));
    } catch (err) {
      reportError(err, 'Could not load the view');
    }
    await loadSnapshot();
    connect();
  }

  window.canopy = {
    state,
    reload: loadSnapshot, // re-GET /workspaces and reconcile; resolves true on success
    resync: () => resync('requested'),
    select: selectWorkspace,
    nodes,
  };

  boot();
})();
