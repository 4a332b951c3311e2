// Edits that cannot clobber (issue 15): rename, reparent and delete carry `If-Match` with the
// version the page holds; a 412 means someone changed the workspace meanwhile. This box says
// what changed and lets the person retry against the version the server has now, or cancel.

import * as m from './model.js';
import { model, dom } from './state.js';

let pending = null; // the retry of the open box

/** `If-Match` for the version the page holds of `id` (no header when it knows none). */
export function ifMatch(id, version = m.versionOf(model, id)) {
  return typeof version === 'number' ? { 'If-Match': `"${version}"` } : {};
}

/** A copy of what the page holds of `id` now, to compare with a 412's current state. */
export function heldCopy(id) {
  const ws = model.workspaces.get(id);
  return ws ? { ...ws } : null;
}

/**
 * Shows a 412 (`err.body`: `{version, workspace}`) for `action` ('Rename', 'Move', 'Delete')
 * of `id`. Retry calls `retry(version)` with the server's current version.
 */
export function showConflict(action, id, held, err, retry) {
  const body = (err && err.body) || {};
  const current = body.workspace && typeof body.workspace === 'object' ? body.workspace : null;
  const version = typeof body.version === 'number' ? body.version : current && current.version;
  m.noteVersion(model, id, version);
  const name = (held && held.name) || m.nameOf(model, id);
  const changes = m.describeChanges(held, current, (pid) => m.nameOf(model, pid));
  dom.conflictTitle.textContent = `${action}: “${name}” changed meanwhile`;
  dom.conflictText.textContent =
    `Someone else changed this workspace after your page last heard of it` +
    (changes.length ? `: ${changes.join('; ')}.` : '.') +
    ` ${action} it anyway?`;
  pending = typeof version === 'number' ? () => retry(version) : () => retry(undefined);
  dom.conflict.dataset.workspaceId = id;
  dom.conflict.hidden = false;
  dom.conflictRetry.focus();
}

/** Closes the box without retrying. */
export function closeConflict() {
  pending = null;
  dom.conflict.hidden = true;
}

/** Wires the box's buttons. */
export function wireConflict() {
  dom.conflictRetry.addEventListener('click', () => {
    const retry = pending;
    closeConflict();
    if (retry) retry();
  });
  dom.conflictCancel.addEventListener('click', closeConflict);
}
