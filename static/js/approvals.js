// The approvals inbox: every workspace's pending requests (`GET /approvals/pending`), decided
// here (`POST /workspaces/:id/approvals/:approval_id/decide`), and kept current on every open
// page by APPROVAL_REQUESTED / APPROVAL_DECIDED events.

import { api, workspacePath } from './api.js';
import { applyApprovalEvent, createInbox, pendingList, replacePending } from './inbox.js';
import { selectWorkspace } from './panel.js';
import { dom } from './state.js';
import { reportError, toast } from './toast.js';
import { make, shortTime } from './util.js';

const inbox = createInbox();
let loadGen = 0;
// Events that arrive while a load is in flight, applied on top of its answer (which may be
// older than they are).
let heldEvents = null;

function item(a) {
  const li = make('li', 'approval');
  li.dataset.approvalId = a.id;
  li.dataset.workspaceId = a.workspace_id;
  const from = make('button', 'link approval-from', a.workspace_name || a.workspace_id);
  from.type = 'button';
  from.title = 'Open its panel';
  from.addEventListener('click', () => {
    toggleInbox(false); // it covers the panel
    selectWorkspace(a.workspace_id);
  });
  li.append(from);
  li.append(make('p', 'approval-action', a.action));
  if (a.reason) li.append(make('p', 'approval-reason', a.reason));
  if (a.expires_at) li.append(make('span', 'detail', `expires ${shortTime(a.expires_at)}`));
  const row = make('div', 'row');
  const approve = make('button', 'primary approve', 'Approve');
  approve.type = 'button';
  approve.addEventListener('click', () => decide(a, 'approved', li));
  const deny = make('button', 'danger deny', 'Deny');
  deny.type = 'button';
  deny.addEventListener('click', () => decide(a, 'denied', li));
  row.append(approve, deny);
  li.append(row);
  return li;
}

function render() {
  const list = pendingList(inbox);
  dom.approvalsCount.textContent = String(list.length);
  dom.approvalsCount.hidden = list.length === 0;
  dom.approvalsButton.dataset.count = String(list.length);
  dom.approvalsList.replaceChildren(...list.map(item));
  if (!list.length) dom.approvalsList.append(make('li', 'empty', 'Nothing waits for a decision.'));
}

async function decide(a, decision, li) {
  for (const button of li.querySelectorAll('button')) button.disabled = true;
  try {
    await api('POST', workspacePath(a.workspace_id, `/approvals/${encodeURIComponent(a.id)}/decide`), {
      decision,
      decided_by: 'human',
    });
    toast(`${decision === 'approved' ? 'Approved' : 'Denied'}: ${a.action}`, 'info');
  } catch (err) {
    if (err.status === 409) {
      const first = err.body || {};
      toast(`Already ${first.status || 'decided'}${first.decided_by ? ` by ${first.decided_by}` : ''}.`, 'info');
    } else if (err.status !== 404 && err.status !== 410) {
      for (const button of li.querySelectorAll('button')) button.disabled = false;
      reportError(err, 'Decision not saved');
      return;
    }
  }
  // Decided (here or before): the APPROVAL_DECIDED event agrees on every other page.
  inbox.delete(a.id);
  render();
}

/** Loads the pending requests (at start and after every snapshot, when events may be missed). */
export async function loadPending() {
  const gen = ++loadGen;
  heldEvents = [];
  try {
    const list = await api('GET', '/approvals/pending');
    if (gen !== loadGen) return;
    replacePending(inbox, list);
  } catch (err) {
    if (gen === loadGen) console.warn('canopy: pending approvals', err);
  } finally {
    if (gen === loadGen) {
      for (const [event, workspaceId, payload] of heldEvents) applyApprovalEvent(inbox, event, workspaceId, payload);
      heldEvents = null;
      render();
    }
  }
}

/** An APPROVAL_* event from the stream. */
export function onApprovalEvent(event, workspaceId, payload) {
  if (heldEvents) heldEvents.push([event, workspaceId, payload]);
  if (applyApprovalEvent(inbox, event, workspaceId, payload)) render();
}

/** Opens or closes the inbox (toggles without an argument). */
export function toggleInbox(open = dom.approvalsPanel.hidden) {
  dom.approvalsPanel.hidden = !open;
  dom.approvalsButton.setAttribute('aria-expanded', String(open));
}

/** Listens to the inbox's controls. */
export function wireApprovals() {
  dom.approvalsButton.addEventListener('click', () => toggleInbox());
  document.getElementById('approvals-close').addEventListener('click', () => toggleInbox(false));
  render();
}
