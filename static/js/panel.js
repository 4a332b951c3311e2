// The side panel of the selected workspace: details, rename, pause/resume, delete, recent
// activity, structure events (the chat lives in chat.js); and the "New workspace" form.

import { api, workspacePath } from './api.js';
import { addWorkspaceNow, markSelected, positionOf, rootPlacement, removeSubtree, show } from './canvas.js';
import { openChat, showReachability } from './chat.js';
import { heldCopy, ifMatch, showConflict } from './conflict.js';
import * as m from './model.js';
import * as people from './people.js';
import { model, ui, dom } from './state.js';
import { reportError, toast } from './toast.js';
import { debounce, duration, make, num, percent, shortTime, statusClass } from './util.js';

const PANEL_REFRESH_DELAY_MS = 300;
const FEED_LIMIT = 50;

const nameOf = (id) => m.nameOf(model, id);

// Who last moved, renamed or paused each workspace, from the events' `actor` (live frames and
// the panel's structure events).
const changes = people.createChanges();
const CHANGE_LABELS = [['moved', 'Moved by'], ['renamed', 'Renamed by'], ['paused', 'Paused by']];

/** Notes who made an event's change (see people.noteChange). */
export function noteChange(id, item) {
  return people.noteChange(changes, id, item);
}

function changeRows(id) {
  const record = changes.get(id) || {};
  return CHANGE_LABELS.filter(([kind]) => record[kind]).map(([kind, label]) => {
    const { actor, at } = record[kind];
    return [label, at ? `${actor.name}, ${new Date(at).toLocaleString()}` : actor.name];
  });
}

/** Opens the panel of `id` (null closes it). */
export function selectWorkspace(id) {
  const prev = ui.selected;
  ui.selected = id && model.workspaces.has(id) ? id : null;
  markSelected(prev, ui.selected);
  dom.deleteConfirm.hidden = true;
  updateNewFormParent();
  if (!ui.selected) {
    dom.panel.hidden = true;
    delete dom.panel.dataset.workspaceId;
    openChat(null);
    return;
  }
  dom.panel.hidden = false;
  dom.panel.dataset.workspaceId = id;
  if (prev !== id) {
    dom.renameInput.value = model.workspaces.get(id).name || '';
    dom.activity.replaceChildren(make('li', 'empty', 'Loading…'));
    dom.events.replaceChildren(make('li', 'empty', 'Loading…'));
    openChat(id);
  }
  renderPanelDetails();
  refreshDetails();
  refreshActivity();
  refreshEvents();
}

/** A workspace left the canvas: close its panel if it was open. */
export function onWorkspaceGone(id) {
  if (ui.selected === id) selectWorkspace(null);
}

/** An event about `id` was applied: keep its open panel current. */
export function onWorkspaceEvent(id, event) {
  if (!id || id !== ui.selected) return;
  renderPanelDetails();
  refreshDetailsSoon();
  if (event === 'ACTIVITY_LOGGED') refreshActivitySoon();
  if (m.isStructural(event)) refreshEventsSoon();
}

/** Writes the details list of the open panel from the model. */
export function renderPanelDetails() {
  const id = ui.selected;
  const ws = id && model.workspaces.get(id);
  if (!ws) return;
  dom.panelTitle.textContent = ws.name || '(unnamed)';
  dom.panelStatus.textContent = ws.status;
  dom.panelStatus.className = `pill ${statusClass(ws.status)}`;
  showReachability(ws.status);
  const pos = positionOf(id);
  const rows = [
    ['ID', ws.id],
    ['Role', ws.role],
    ['Status', ws.status],
    ['Tier', ws.tier],
    ['Runtime', ws.runtime],
    ['Parent', ws.parent_id ? { link: ws.parent_id, text: nameOf(ws.parent_id) } : '—'],
    ['Children', String(m.childrenOf(model, id).size)],
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
    ...changeRows(id),
  ];
  const fragment = document.createDocumentFragment();
  for (const [label, value] of rows) {
    if (value === undefined || value === null || value === '') continue;
    const dd = make('dd');
    if (typeof value === 'object' && value.link) {
      const link = make('button', 'link', value.text);
      link.type = 'button';
      link.addEventListener('click', () => selectWorkspace(value.link));
      dd.append(link);
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
  if (e.actor && e.actor.name) li.append(make('span', 'actor', ` by ${e.actor.name}`));
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
    if (typeof value === 'string' && model.workspaces.has(value)) shown = nameOf(value);
    else if (typeof value === 'object') shown = JSON.stringify(value);
    else shown = String(value);
    parts.push(`${key.replace(/_id$/, '').replace(/_/g, ' ')}: ${shown}`);
  }
  return parts.join(' · ');
}

async function refreshActivity() {
  const id = ui.selected;
  if (!id) return;
  try {
    const rows = await api('GET', workspacePath(id, `/activity?limit=${FEED_LIMIT}`));
    if (ui.selected === id) renderFeed(dom.activity, rows, activityItem, 'No activity yet.');
  } catch (err) {
    if (ui.selected === id) dom.activity.replaceChildren(make('li', 'empty', `Activity unavailable: ${err.message}`));
  }
}

async function refreshEvents() {
  const id = ui.selected;
  if (!id) return;
  try {
    const rows = await api('GET', `/events/${encodeURIComponent(id)}?limit=${FEED_LIMIT}`);
    let noted = false;
    for (const row of Array.isArray(rows) ? rows : []) noted = noteChange(id, row) || noted;
    if (ui.selected !== id) return;
    renderFeed(dom.events, rows, eventItem, 'No structure events.');
    if (noted) renderPanelDetails();
  } catch (err) {
    if (ui.selected === id) dom.events.replaceChildren(make('li', 'empty', `Events unavailable: ${err.message}`));
  }
}

const refreshActivitySoon = debounce(refreshActivity, PANEL_REFRESH_DELAY_MS);
const refreshEventsSoon = debounce(refreshEvents, PANEL_REFRESH_DELAY_MS);

// Heartbeat details (uptime, error rate, last heartbeat…) travel in no event: the panel reads
// them when it opens and after each event about its workspace. Only those fields are taken, so
// a slow answer cannot undo what newer events said.
const DETAIL_FIELDS = [
  'url', 'agent_card', 'last_heartbeat_at', 'uptime_seconds', 'last_error_rate',
  'last_sample_error', 'created_at', 'updated_at',
];
async function refreshDetails() {
  const id = ui.selected;
  if (!id) return;
  try {
    const raw = await api('GET', workspacePath(id));
    const ws = model.workspaces.get(id);
    if (!ws || !raw || raw.id !== id) return;
    for (const key of DETAIL_FIELDS) if (key in raw) ws[key] = raw[key];
    if (ui.selected === id) renderPanelDetails();
  } catch (err) {
    if (err.status !== 404 && err.status !== 410) console.warn('canopy: details', id, err);
  }
}
const refreshDetailsSoon = debounce(refreshDetails, PANEL_REFRESH_DELAY_MS);

async function onRename(event) {
  event.preventDefault();
  const id = ui.selected;
  const name = dom.renameInput.value.trim();
  if (!id || !name) return;
  rename(id, name, m.versionOf(model, id));
}

// A rename applies only to the version the page holds (If-Match); a 412 asks whether to rename
// the changed workspace anyway.
async function rename(id, name, version) {
  const held = heldCopy(id);
  try {
    const res = await api('PATCH', workspacePath(id), { name }, { headers: ifMatch(id, version) });
    show(m.setFields(model, id, { name }));
    m.noteVersion(model, id, res && res.version);
    if (ui.selected === id) renderPanelDetails();
  } catch (err) {
    if (err.status === 412) showConflict('Rename', id, held, err, (v) => rename(id, name, v));
    else reportError(err, 'Rename failed');
  }
}

async function postAction(action) {
  const id = ui.selected;
  if (!id) return;
  try {
    await api('POST', workspacePath(id, `/${action}`), {});
  } catch (err) {
    reportError(err, `${action[0].toUpperCase()}${action.slice(1)} failed`);
  }
}

// Deleting a workspace with children needs confirmation: the server answers 409
// confirmation_required, we show what would go, and retry with ?confirm=true.
async function deleteWorkspace(id, confirmed, version = m.versionOf(model, id)) {
  if (!id) return;
  const held = heldCopy(id);
  try {
    const res = await api('DELETE', workspacePath(id, confirmed ? '?confirm=true' : ''), undefined, {
      headers: ifMatch(id, version),
    });
    dom.deleteConfirm.hidden = true;
    const name = nameOf(id);
    removeSubtree(id); // the WORKSPACE_REMOVED events will agree
    const extra = res && num(res.cascade_deleted) > 0 ? ` and ${res.cascade_deleted} below it` : '';
    toast(`Deleted ${name}${extra}.`, 'info');
  } catch (err) {
    if (err.status === 409 && err.body && err.body.status === 'confirmation_required') showDeleteConfirm(id, err.body);
    else if (err.status === 412) showConflict('Delete', id, held, err, (v) => deleteWorkspace(id, confirmed, v));
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

// ------------------------------------------------------------------ new workspace

function updateNewFormParent() {
  const id = ui.selected;
  dom.newAsChildLabel.hidden = !id;
  dom.newParentName.textContent = id ? nameOf(id) : '';
}

/** Opens or closes the "New workspace" form (toggles without an argument). */
export function toggleNewForm(open = dom.newForm.hidden) {
  dom.newForm.hidden = !open;
  if (open) {
    updateNewFormParent();
    dom.newName.focus();
  }
}

let selectWhenAdded = null; // a child this page created, not yet shown

/** A workspace appeared on the canvas: open its panel if this page just created it. */
export function onWorkspaceAdded(id) {
  if (id && id === selectWhenAdded) {
    selectWhenAdded = null;
    selectWorkspace(id);
  }
}

async function onCreate(event) {
  event.preventDefault();
  const name = dom.newName.value.trim();
  const role = dom.newRole.value.trim();
  if (!name) return;
  const parentId = ui.selected && dom.newAsChild.checked ? ui.selected : null;
  // A child goes without a position: the server places it inside its parent's area, beside
  // its siblings, and its WORKSPACE_PROVISIONING event brings it here. A root goes in the
  // middle of the view.
  const canvas = parentId ? null : rootPlacement();
  const body = { name };
  if (canvas) body.canvas = canvas;
  if (role) body.role = role;
  if (parentId) body.parent_id = parentId;
  try {
    const res = await api('POST', '/workspaces', body);
    if (res && res.id && canvas) {
      // Show it now; the WORKSPACE_PROVISIONING event will find it already here.
      addWorkspaceNow({
        id: res.id, name, role, status: res.status || 'provisioning',
        parent_id: parentId, x: canvas.x, y: canvas.y, tier: 3,
      });
    }
    dom.newForm.reset();
    dom.newAsChild.checked = true;
    toggleNewForm(false);
    if (res && res.id) {
      // Its event may come before or after this answer: select it when it is here.
      if (model.workspaces.has(res.id)) selectWorkspace(res.id);
      else selectWhenAdded = res.id;
    }
  } catch (err) {
    reportError(err, 'Create failed');
  }
}

/** Listens to the panel's and the new-workspace form's controls. */
export function wirePanel() {
  const on = (id, type, fn) => document.getElementById(id).addEventListener(type, fn);
  dom.newButton.addEventListener('click', () => toggleNewForm());
  on('new-cancel', 'click', () => toggleNewForm(false));
  dom.newForm.addEventListener('submit', onCreate);
  on('panel-close', 'click', () => selectWorkspace(null));
  dom.renameForm.addEventListener('submit', onRename);
  on('panel-pause', 'click', () => postAction('pause'));
  on('panel-resume', 'click', () => postAction('resume'));
  on('panel-delete', 'click', () => deleteWorkspace(ui.selected, false));
  on('delete-confirm-yes', 'click', () => deleteWorkspace(dom.deleteConfirm.dataset.workspaceId, true));
  on('delete-confirm-no', 'click', () => { dom.deleteConfirm.hidden = true; });
}
