// The approvals inbox as data.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { applyApprovalEvent, createInbox, pendingList, replacePending } from '../js/inbox.js';

test('requested adds once, decided removes, escalated adds nothing', () => {
  const inbox = createInbox();
  const asked = { approval_id: 'a1', action: 'Deploy', reason: 'Friday', workspace_name: 'Ops' };
  assert.equal(applyApprovalEvent(inbox, 'APPROVAL_REQUESTED', 'ws1', asked), true);
  assert.equal(applyApprovalEvent(inbox, 'APPROVAL_REQUESTED', 'ws1', asked), false, 'a replay');
  assert.equal(applyApprovalEvent(inbox, 'APPROVAL_ESCALATED', 'parent', { approval_id: 'a1' }), false);
  assert.deepEqual(pendingList(inbox).map((a) => [a.id, a.workspace_id, a.action]), [['a1', 'ws1', 'Deploy']]);
  assert.equal(applyApprovalEvent(inbox, 'APPROVAL_DECIDED', 'ws1', { approval_id: 'a1', decision: 'denied' }), true);
  assert.equal(inbox.size, 0);
  assert.equal(applyApprovalEvent(inbox, 'APPROVAL_DECIDED', 'ws1', { approval_id: 'a1' }), false);
  assert.equal(applyApprovalEvent(inbox, 'APPROVAL_REQUESTED', 'ws1', {}), false, 'no id, no entry');
});

test('a pending list replaces the inbox, newest first, live arrivals on top', () => {
  const inbox = createInbox();
  applyApprovalEvent(inbox, 'APPROVAL_REQUESTED', 'ws', { approval_id: 'stale' });
  replacePending(inbox, [
    { id: 'old', workspace_id: 'w', action: 'x', status: 'pending', created_at: '2026-12-06T10:00:00Z' },
    { id: 'new', workspace_id: 'w', action: 'y', status: 'pending', created_at: '2026-12-06T11:00:00Z' },
    { id: 'done', workspace_id: 'w', action: 'z', status: 'approved', created_at: '2026-12-06T12:00:00Z' },
  ]);
  assert.deepEqual(pendingList(inbox).map((a) => a.id), ['new', 'old']);
  applyApprovalEvent(inbox, 'APPROVAL_REQUESTED', 'w', { approval_id: 'live' });
  assert.deepEqual(pendingList(inbox).map((a) => a.id), ['live', 'new', 'old']);
  replacePending(inbox, null);
  assert.equal(inbox.size, 0);
});
