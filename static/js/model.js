// The page's model of the org and the event reducer. Pure: no DOM, no network, so it runs under
// `node --test static/tests/`.
//
// Every change goes through a function here that mutates the model and returns an *effect*
// describing what changed (or null when nothing did); the view (canvas.js) turns effects into
// DOM updates. Events from the socket and the page's own actions take the same path.
//
// Effects:
//   {type:'added', id, fetch?}            a workspace appeared (fetch: ask the server for the rest)
//   {type:'fields', id}                   text or status of a card changed
//   {type:'layout', id, collapsedChanged} position or collapsed flag changed
//   {type:'moved', id, oldParent}         parent changed (oldParent: the previous *shown* parent)
//   {type:'removed', id, oldParent, orphans}
//   {type:'missing', id}                  an event about a workspace we do not know: fetch it
//   {type:'message', id, name, text}      AGENT_MESSAGE (an agent's /notify to the people)
//   {type:'activity', id, activity}       ACTIVITY_LOGGED payload
//   {type:'approval', id, event, payload} APPROVAL_REQUESTED / _ESCALATED / _DECIDED

import { num } from './util.js';

const MAX_DEPTH = 1000; // guards walks up the tree against bad data
const NO_CHILDREN = new Set();

/** Status events and the status each one sets. */
export const STATUS_EVENTS = Object.freeze({
  WORKSPACE_ONLINE: 'online',
  WORKSPACE_OFFLINE: 'offline',
  WORKSPACE_DEGRADED: 'degraded',
  WORKSPACE_PROVISION_FAILED: 'failed',
  WORKSPACE_PAUSED: 'paused',
});

/** An empty model: workspaces by id, and parent id -> Set of child ids. */
export function createModel() {
  // The child index keeps a child under its parent id even while that parent is unknown, so a
  // child that arrives first is re-attached when its parent does.
  return { workspaces: new Map(), children: new Map() };
}

/** A workspace as the server describes it, with the fields the page relies on typed. */
export function normalize(raw) {
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

// ------------------------------------------------------------------ tree queries

/** The parent shown for `id`: its parent when the model knows it, else null. */
export function parentOf(model, id) {
  const ws = model.workspaces.get(id);
  const pid = ws && ws.parent_id;
  return pid && pid !== id && model.workspaces.has(pid) ? pid : null;
}

/** The ids filed under `id` as their parent (a Set; do not mutate). */
export function childrenOf(model, id) {
  return model.children.get(id) || NO_CHILDREN;
}

/** Whether `ancestorId` is above `id` in the shown tree. */
export function isDescendant(model, id, ancestorId) {
  let cur = parentOf(model, id);
  for (let i = 0; cur && i < MAX_DEPTH; i++) {
    if (cur === ancestorId) return true;
    cur = parentOf(model, cur);
  }
  return false;
}

/** Every id below `id`, nearest first (cycle-safe). */
export function descendantsOf(model, id) {
  const out = [];
  const seen = new Set([id]);
  const stack = [...childrenOf(model, id)];
  while (stack.length) {
    const c = stack.pop();
    if (seen.has(c)) continue;
    seen.add(c);
    out.push(c);
    stack.push(...childrenOf(model, c));
  }
  return out;
}

/** A workspace's display name, or its id when unknown. */
export function nameOf(model, id) {
  const ws = model.workspaces.get(id);
  return ws ? ws.name || '(unnamed)' : id;
}

function indexChild(model, id, pid) {
  if (!pid) return;
  let set = model.children.get(pid);
  if (!set) model.children.set(pid, (set = new Set()));
  set.add(id);
}

function unindexChild(model, id, pid) {
  const set = pid && model.children.get(pid);
  if (!set) return;
  set.delete(id);
  if (!set.size) model.children.delete(pid);
}

// ------------------------------------------------------------------ changes

/** Adds a workspace unless it is known. */
export function addWorkspace(model, raw) {
  const ws = normalize(raw);
  if (model.workspaces.has(ws.id)) return null;
  model.workspaces.set(ws.id, ws);
  indexChild(model, ws.id, ws.parent_id);
  return { type: 'added', id: ws.id };
}

/** Overwrites some fields of a known workspace. */
export function setFields(model, id, fields) {
  const ws = model.workspaces.get(id);
  if (!ws) return null;
  Object.assign(ws, fields);
  return { type: 'fields', id };
}

/** Moves a known workspace (non-finite coordinates are left as they are) and/or (un)collapses it. */
export function setLayout(model, id, x, y, collapsed) {
  const ws = model.workspaces.get(id);
  if (!ws) return null;
  if (Number.isFinite(x)) ws.x = x;
  if (Number.isFinite(y)) ws.y = y;
  let collapsedChanged = false;
  if (typeof collapsed === 'boolean' && collapsed !== ws.collapsed) {
    ws.collapsed = collapsed;
    collapsedChanged = true;
  }
  return { type: 'layout', id, collapsedChanged };
}

/** Re-parents a known workspace (null: a root). Null effect when nothing changes. */
export function setParent(model, id, newParentId) {
  const ws = model.workspaces.get(id);
  const pid = newParentId || null;
  if (!ws || ws.parent_id === pid) return null;
  const oldParent = parentOf(model, id);
  unindexChild(model, id, ws.parent_id);
  ws.parent_id = pid;
  indexChild(model, id, pid);
  return { type: 'moved', id, oldParent };
}

/** Forgets one workspace; its children stay filed under its id until they go too. */
export function removeWorkspace(model, id) {
  const ws = model.workspaces.get(id);
  if (!ws) return null;
  const oldParent = parentOf(model, id);
  unindexChild(model, id, ws.parent_id);
  model.workspaces.delete(id);
  return { type: 'removed', id, oldParent, orphans: [...childrenOf(model, id)] };
}

/**
 * Replaces what the model knows with a full `GET /workspaces` answer (removed rows skipped).
 * Known workspaces are updated in place. Returns `{added, removed}` id lists.
 */
export function replaceAll(model, list) {
  if (!Array.isArray(list)) throw new TypeError('unexpected /workspaces answer');
  const seen = new Set();
  const added = [];
  for (const raw of list) {
    if (!raw || !raw.id || raw.status === 'removed') continue;
    const ws = normalize(raw);
    seen.add(ws.id);
    const known = model.workspaces.get(ws.id);
    if (known) {
      Object.assign(known, ws);
    } else {
      model.workspaces.set(ws.id, ws);
      added.push(ws.id);
    }
  }
  const removed = [...model.workspaces.keys()].filter((id) => !seen.has(id));
  for (const id of removed) model.workspaces.delete(id);
  model.children.clear();
  for (const ws of model.workspaces.values()) indexChild(model, ws.id, ws.parent_id);
  return { added, removed };
}

// ------------------------------------------------------------------ the event reducer

/** Events that structure_events keeps (the panel's "Structure events" list). */
export function isStructural(event) {
  return (event.startsWith('WORKSPACE_') && event !== 'WORKSPACE_LAYOUT_CHANGED') ||
    (event.startsWith('AGENT_') && event !== 'AGENT_MESSAGE');
}

function pick(payload, keys) {
  const out = {};
  for (const key of keys) if (key in payload) out[key] = payload[key];
  return out;
}

function knownOrMissing(effect, id) {
  return effect || (id ? { type: 'missing', id } : null);
}

const reducers = {
  WORKSPACE_PROVISIONING(model, id, p) {
    const known = setFields(model, id, { status: 'provisioning' });
    if (known || !id) return known;
    // Role is not in this payload: add what we have and fetch the rest. A child's x/y in this
    // event are relative to its parent (the reference platform's convention, see the README's
    // event stream section); the model keeps absolute ones, as GET /workspaces does.
    const parent = p.parent_id ? model.workspaces.get(String(p.parent_id)) : null;
    const added = addWorkspace(model, {
      id, name: p.name, tier: p.tier, runtime: p.runtime, parent_id: p.parent_id,
      x: num(p.x) + (parent ? num(parent.x) : 0),
      y: num(p.y) + (parent ? num(parent.y) : 0),
      status: 'provisioning',
    });
    return added && { ...added, fetch: true };
  },
  WORKSPACE_REMOVED(model, id) {
    return removeWorkspace(model, id);
  },
  WORKSPACE_MOVED(model, id, p) {
    if (!model.workspaces.has(id)) return knownOrMissing(null, id);
    return setParent(model, id, p.new_parent_id || null);
  },
  WORKSPACE_UPDATED(model, id, p) {
    return knownOrMissing(setFields(model, id, pick(p, ['name', 'role', 'tier', 'runtime'])), id);
  },
  WORKSPACE_LAYOUT_CHANGED(model, id, p) {
    const collapsed = typeof p.collapsed === 'boolean' ? p.collapsed : undefined;
    return knownOrMissing(setLayout(model, id, num(p.x, NaN), num(p.y, NaN), collapsed), id);
  },
  TASK_UPDATED(model, id, p) {
    const fields = {};
    if ('current_task' in p) fields.current_task = p.current_task || '';
    if ('active_tasks' in p) fields.active_tasks = num(p.active_tasks);
    return knownOrMissing(setFields(model, id, fields), id);
  },
  AGENT_CARD_UPDATED(model, id, p) {
    return setFields(model, id, { agent_card: p.agent_card });
  },
  AGENT_MESSAGE(model, id, p) {
    return {
      type: 'message', id, name: p.name || nameOf(model, id),
      text: p.message == null ? '' : String(p.message),
      attachments: Array.isArray(p.attachments) ? p.attachments : [],
    };
  },
  ACTIVITY_LOGGED(model, id, p) {
    return { type: 'activity', id, activity: p };
  },
  APPROVAL_REQUESTED: approval,
  APPROVAL_ESCALATED: approval,
  APPROVAL_DECIDED: approval,
};

function approval(model, id, p, event) {
  return { type: 'approval', id, event, payload: p };
}

function statusFields(event, p) {
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
  return fields;
}

/** The newest version the page knows of `id` (a number), or null when none is known. */
export function versionOf(model, id) {
  const ws = model.workspaces.get(id);
  return ws && typeof ws.version === 'number' ? ws.version : null;
}

/** Keeps the newest version seen of `id` (from a snapshot, an event or a PATCH answer). */
export function noteVersion(model, id, version) {
  const ws = model.workspaces.get(id);
  if (!ws || typeof version !== 'number' || !Number.isFinite(version)) return;
  if (typeof ws.version !== 'number' || version > ws.version) ws.version = version;
}

/**
 * What differs between the workspace the page held (`held`) and the server's current one
 * (`current`, a 412 answer's `workspace`), in words: "name is now “Ops”", "it was moved",
 * "it is now paused"… `nameOfParent(id)` names a parent.
 */
export function describeChanges(held, current, nameOfParent = (id) => id) {
  if (!current || typeof current !== 'object') return [];
  const out = [];
  if (held && 'name' in current && current.name !== held.name) out.push(`name is now “${current.name}”`);
  if (held && 'parent_id' in current && (current.parent_id || null) !== (held.parent_id || null)) {
    out.push(current.parent_id ? `it is now inside “${nameOfParent(String(current.parent_id))}”` : 'it is now at the top level');
  }
  if (held && 'role' in current && (current.role || '') !== (held.role || '')) out.push(`role is now “${current.role || ''}”`);
  if (held && 'status' in current && current.status !== held.status) out.push(`it is now ${current.status}`);
  if (held && 'x' in current && 'y' in current && (num(current.x) !== num(held.x) || num(current.y) !== num(held.y))) {
    out.push('it was moved');
  }
  return out;
}

/** Whether this page applies events of kind `event` (others are someone else's). */
export function handles(event) {
  return Object.hasOwn(STATUS_EVENTS, event) || Object.hasOwn(reducers, event);
}

/**
 * Applies one stream frame (`{event, workspace_id, payload, seq}`) to the model and returns its
 * effect; null for events this page does not use (they are someone else's).
 */
export function reduce(model, frame) {
  const id = frame.workspace_id ? String(frame.workspace_id) : '';
  const payload = frame.payload && typeof frame.payload === 'object' ? frame.payload : {};
  let effect = null;
  if (Object.hasOwn(STATUS_EVENTS, frame.event)) {
    effect = knownOrMissing(setFields(model, id, statusFields(frame.event, payload)), id);
  } else if (Object.hasOwn(reducers, frame.event)) {
    effect = reducers[frame.event](model, id, payload, frame.event);
  }
  noteVersion(model, id, payload.version);
  return effect;
}
