// The approvals inbox as data: pending requests by id, kept current by the APPROVAL_* events.
// Pure, so it runs under `node --test`.

/** An empty inbox (approval id -> pending request, as `GET /approvals/pending` lists them). */
export function createInbox() {
  return new Map();
}

/** Replaces the inbox with a `GET /approvals/pending` answer. */
export function replacePending(inbox, list) {
  inbox.clear();
  if (!Array.isArray(list)) return inbox;
  for (const a of list) if (a && a.id && (a.status === undefined || a.status === 'pending')) inbox.set(String(a.id), { ...a, id: String(a.id) });
  return inbox;
}

/**
 * Applies an APPROVAL_* event (`event`, the frame's `workspaceId`, its `payload`). Returns
 * true when the inbox changed. APPROVAL_ESCALATED repeats a request on the parent workspace and
 * adds nothing: the request itself is already in the inbox.
 */
export function applyApprovalEvent(inbox, event, workspaceId, payload) {
  const id = payload && payload.approval_id != null ? String(payload.approval_id) : '';
  if (!id) return false;
  if (event === 'APPROVAL_REQUESTED') {
    if (inbox.has(id)) return false;
    inbox.set(id, {
      id,
      workspace_id: workspaceId,
      workspace_name: payload.workspace_name || '',
      action: payload.action || '',
      reason: payload.reason == null ? null : payload.reason,
      task_id: payload.task_id == null ? null : payload.task_id,
      status: 'pending',
      expires_at: payload.expires_at || null,
    });
    return true;
  }
  if (event === 'APPROVAL_DECIDED') return inbox.delete(id);
  return false;
}

/** The pending requests, newest first (by `created_at` when known, else arrival order). */
export function pendingList(inbox) {
  // Live arrivals have no created_at yet: they sort as the newest. Plain code-unit order, as
  // RFC 3339 UTC times compare.
  const key = (a) => (a.created_at ? String(a.created_at) : '\uffff');
  const list = [...inbox.values()].reverse();
  return list.sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0));
}
