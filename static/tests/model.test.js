// The event reducer: what each event does to the model, and the effect it reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  addWorkspace, childrenOf, createModel, describeChanges, descendantsOf, handles, isDescendant, noteVersion, parentOf,
  reduce, replaceAll, versionOf,
} from '../js/model.js';

const frame = (event, workspace_id, payload = {}, seq = undefined) => ({ event, workspace_id, payload, seq });

function org() {
  const model = createModel();
  addWorkspace(model, { id: 'hq', name: 'HQ', x: 100, y: 50 });
  addWorkspace(model, { id: 'eng', name: 'Eng', parent_id: 'hq', x: 120, y: 180 });
  return model;
}

test('a live-created child is placed relative to its parent and fetched for the rest', () => {
  const model = org();
  const effect = reduce(model, frame('WORKSPACE_PROVISIONING', 'api', { name: 'API', parent_id: 'eng', x: 10, y: 20 }));
  assert.deepEqual(effect, { type: 'added', id: 'api', fetch: true });
  const ws = model.workspaces.get('api');
  assert.equal(ws.x, 130);
  assert.equal(ws.y, 200);
  assert.equal(ws.status, 'provisioning');
  assert.equal(parentOf(model, 'api'), 'eng');
  assert.ok(childrenOf(model, 'eng').has('api'));
});

test('provisioning of a known workspace only resets its status', () => {
  const model = org();
  reduce(model, frame('WORKSPACE_ONLINE', 'eng', { url: 'http://a' }));
  const effect = reduce(model, frame('WORKSPACE_PROVISIONING', 'eng', { name: 'ignored', x: 1, y: 1 }));
  assert.deepEqual(effect, { type: 'fields', id: 'eng' });
  assert.equal(model.workspaces.get('eng').status, 'provisioning');
  assert.equal(model.workspaces.get('eng').name, 'Eng');
  assert.equal(model.workspaces.get('eng').x, 120);
});

test('status events set the status and their details', () => {
  const model = org();
  reduce(model, frame('WORKSPACE_DEGRADED', 'eng', { error_rate: 0.8, sample_error: 'timeout' }));
  const ws = model.workspaces.get('eng');
  assert.equal(ws.status, 'degraded');
  assert.equal(ws.last_error_rate, 0.8);
  assert.equal(ws.last_sample_error, 'timeout');
  reduce(model, frame('WORKSPACE_PAUSED', 'eng'));
  assert.equal(ws.status, 'paused');
});

test('an event about an unknown workspace asks for it', () => {
  const model = org();
  assert.deepEqual(reduce(model, frame('WORKSPACE_OFFLINE', 'ghost')), { type: 'missing', id: 'ghost' });
  assert.deepEqual(reduce(model, frame('TASK_UPDATED', 'ghost', { active_tasks: 1 })), { type: 'missing', id: 'ghost' });
  assert.equal(model.workspaces.has('ghost'), false);
});

test('rename, task and layout events change only what they carry', () => {
  const model = org();
  reduce(model, frame('WORKSPACE_UPDATED', 'eng', { name: 'Engineering' }));
  reduce(model, frame('TASK_UPDATED', 'eng', { current_task: 'Ship it', active_tasks: '3' }));
  const effect = reduce(model, frame('WORKSPACE_LAYOUT_CHANGED', 'eng', { x: 300, collapsed: true }));
  const ws = model.workspaces.get('eng');
  assert.equal(ws.name, 'Engineering');
  assert.equal(ws.current_task, 'Ship it');
  assert.equal(ws.active_tasks, 3);
  assert.equal(ws.x, 300);
  assert.equal(ws.y, 180, 'a missing y keeps the old one');
  assert.deepEqual(effect, { type: 'layout', id: 'eng', collapsedChanged: true });
  assert.equal(reduce(model, frame('WORKSPACE_LAYOUT_CHANGED', 'eng', { collapsed: true })).collapsedChanged, false);
});

test('a move re-files the child and reports the parent it left', () => {
  const model = org();
  addWorkspace(model, { id: 'ops', name: 'Ops' });
  const effect = reduce(model, frame('WORKSPACE_MOVED', 'eng', { old_parent_id: 'hq', new_parent_id: 'ops' }));
  assert.deepEqual(effect, { type: 'moved', id: 'eng', oldParent: 'hq' });
  assert.equal(childrenOf(model, 'hq').size, 0);
  assert.ok(isDescendant(model, 'eng', 'ops'));
  assert.equal(reduce(model, frame('WORKSPACE_MOVED', 'eng', { new_parent_id: 'ops' })), null, 'no change, no effect');
});

test('removal keeps orphans filed until their own removal arrives', () => {
  const model = org();
  const effect = reduce(model, frame('WORKSPACE_REMOVED', 'hq'));
  assert.deepEqual(effect, { type: 'removed', id: 'hq', oldParent: null, orphans: ['eng'] });
  assert.equal(parentOf(model, 'eng'), null, 'shown as a root meanwhile');
  assert.equal(reduce(model, frame('WORKSPACE_REMOVED', 'hq')), null, 'a second removal is a no-op');
});

test('a child that arrives before its parent is attached when the parent comes', () => {
  const model = createModel();
  addWorkspace(model, { id: 'kid', parent_id: 'mum' });
  assert.equal(parentOf(model, 'kid'), null);
  addWorkspace(model, { id: 'mum' });
  assert.equal(parentOf(model, 'kid'), 'mum');
  assert.deepEqual(descendantsOf(model, 'mum'), ['kid']);
});

test('a snapshot replaces the model, skipping removed rows and reporting what came and went', () => {
  const model = org();
  const { added, removed } = replaceAll(model, [
    { id: 'hq', name: 'HQ renamed' },
    { id: 'new', name: 'New', parent_id: 'hq' },
    { id: 'gone', status: 'removed' },
  ]);
  assert.deepEqual(added, ['new']);
  assert.deepEqual(removed, ['eng']);
  assert.equal(model.workspaces.get('hq').name, 'HQ renamed');
  assert.deepEqual([...childrenOf(model, 'hq')], ['new']);
  assert.throws(() => replaceAll(model, { not: 'a list' }), TypeError);
});

test('messages, activity and approvals pass through as effects; unknown events are ignored', () => {
  const model = org();
  assert.deepEqual(reduce(model, frame('AGENT_MESSAGE', 'eng', { message: 'Report ready' })), {
    type: 'message', id: 'eng', name: 'Eng', text: 'Report ready', attachments: [],
  });
  const activity = { activity_type: 'a2a_send', source_id: 'eng', target_id: 'hq' };
  assert.deepEqual(reduce(model, frame('ACTIVITY_LOGGED', 'eng', activity)), { type: 'activity', id: 'eng', activity });
  assert.equal(reduce(model, frame('APPROVAL_DECIDED', 'eng', { approval_id: 'a1' })).type, 'approval');
  assert.equal(reduce(model, frame('SOMETHING_NEW', 'eng')), null);
});

test('cycles in bad data do not hang the tree walks', () => {
  const model = createModel();
  addWorkspace(model, { id: 'a', parent_id: 'b' });
  addWorkspace(model, { id: 'b', parent_id: 'a' });
  assert.equal(isDescendant(model, 'a', 'zzz'), false);
  assert.deepEqual(descendantsOf(model, 'a').sort(), ['b']);
});

test('the page handles its own kinds only, including ones that change nothing', () => {
  for (const kind of ['WORKSPACE_ONLINE', 'WORKSPACE_MOVED', 'ACTIVITY_LOGGED', 'APPROVAL_ESCALATED']) {
    assert.ok(handles(kind), kind);
  }
  for (const kind of ['CONNECTED', 'SOMETHING_NEW', 'toString', '__proto__']) assert.equal(handles(kind), false, kind);
  const model = org();
  assert.equal(reduce(model, frame('toString', 'eng')), null, 'no prototype lookups');
});

test('versions: the newest seen is kept, from snapshots, events and answers', () => {
  const model = createModel();
  replaceAll(model, [{ id: 'w1', name: 'A', version: 3 }, { id: 'w2', name: 'B' }]);
  assert.equal(versionOf(model, 'w1'), 3);
  assert.equal(versionOf(model, 'w2'), null, 'a server without versions');
  reduce(model, { event: 'WORKSPACE_UPDATED', workspace_id: 'w1', payload: { name: 'A2', version: 5 }, seq: 1 });
  assert.equal(versionOf(model, 'w1'), 5);
  reduce(model, { event: 'TASK_UPDATED', workspace_id: 'w1', payload: { active_tasks: 1, version: 4 }, seq: 2 });
  assert.equal(versionOf(model, 'w1'), 5, 'an older version never wins');
  noteVersion(model, 'w1', 6);
  noteVersion(model, 'w1', 'x');
  noteVersion(model, 'nope', 9);
  assert.equal(versionOf(model, 'w1'), 6);
});

test('a 412 is described by what changed', () => {
  const held = { name: 'Support', parent_id: null, role: 'r', status: 'online', x: 1, y: 2 };
  assert.deepEqual(describeChanges(held, { ...held }), []);
  assert.deepEqual(
    describeChanges(held, { ...held, name: 'Help desk', parent_id: 'p1', status: 'paused', x: 5 }, (id) => `name of ${id}`),
    ['name is now “Help desk”', 'it is now inside “name of p1”', 'it is now paused', 'it was moved'],
  );
  assert.deepEqual(describeChanges({ ...held, parent_id: 'p1' }, { ...held }), ['it is now at the top level']);
  assert.deepEqual(describeChanges(held, null), []);
});
