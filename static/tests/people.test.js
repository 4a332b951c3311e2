// Presence and "last changed by" as data.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  applyPresence, changeKind, createChanges, createPresence, initials, noteChange, presentPeople, setPresence,
} from '../js/people.js';

const ada = { type: 'user', id: 'k1', name: 'Ada Lovelace' };
const bob = { type: 'user', id: 'k2', name: 'bob' };

test('a presence list is replaced by GET /canvas/presence and follows joined and left', () => {
  const p = createPresence();
  setPresence(p, [{ actor: bob, since: '2026-12-07T00:00:02Z' }, { actor: ada, since: '2026-12-07T00:00:01Z' }, { since: 'x' }]);
  assert.deepEqual(presentPeople(p).map((e) => e.actor.id), ['k1', 'k2'], 'longest present first; rows without an actor dropped');
  assert.equal(applyPresence(p, { event: 'PRESENCE_LEFT', payload: { actor: ada } }), true);
  assert.equal(applyPresence(p, { event: 'PRESENCE_LEFT', payload: { actor: ada } }), false, 'already gone');
  const carol = { type: 'user', id: 'k3', name: 'Carol' };
  assert.equal(applyPresence(p, { event: 'PRESENCE_JOINED', payload: { actor: carol, since: '2026-12-07T00:00:03Z' } }), true);
  assert.deepEqual(presentPeople(p).map((e) => e.actor.id), ['k2', 'k3']);
  assert.equal(applyPresence(p, { event: 'PRESENCE_JOINED', payload: {} }), false);
  setPresence(p, null);
  assert.equal(p.size, 0);
});

test('initials take the first and last word, or two letters of one word', () => {
  assert.equal(initials('Ada Lovelace'), 'AL');
  assert.equal(initials('ops-bot'), 'OB');
  assert.equal(initials('bob'), 'BO');
  assert.equal(initials('x'), 'X');
  assert.equal(initials('Jean de la Fontaine'), 'JF');
  assert.equal(initials(''), '?');
  assert.equal(initials('émile zola'), 'ÉZ');
});

test('moves, renames and pauses are noted with their actor, never going back to an older event', () => {
  assert.equal(changeKind('WORKSPACE_LAYOUT_CHANGED', { x: 1, y: 2 }), 'moved');
  assert.equal(changeKind('WORKSPACE_MOVED', {}), 'moved');
  assert.equal(changeKind('WORKSPACE_UPDATED', { name: 'New' }), 'renamed');
  assert.equal(changeKind('WORKSPACE_UPDATED', { role: 'r' }), null, 'a role change is not a rename');
  assert.equal(changeKind('WORKSPACE_PAUSED', {}), 'paused');
  assert.equal(changeKind('TASK_UPDATED', {}), null);

  const c = createChanges();
  const moved = { event: 'WORKSPACE_LAYOUT_CHANGED', payload: { x: 1, y: 2 }, actor: ada, timestamp: '2026-12-07T00:00:05Z', seq: 10 };
  assert.equal(noteChange(c, 'w1', moved), true);
  // The panel's GET /events rows come later but may hold older events.
  const older = { event_type: 'WORKSPACE_MOVED', payload: {}, actor: bob, created_at: '2026-12-07T00:00:01Z', seq: 4 };
  assert.equal(noteChange(c, 'w1', older), false);
  assert.equal(c.get('w1').moved.actor.name, 'Ada Lovelace');
  const renamed = { event_type: 'WORKSPACE_UPDATED', payload: { name: 'N' }, actor: bob, created_at: '2026-12-07T00:00:06Z', seq: 11 };
  assert.equal(noteChange(c, 'w1', renamed), true);
  assert.equal(c.get('w1').renamed.actor.id, 'k2');
  assert.equal(noteChange(c, 'w1', { event: 'WORKSPACE_PAUSED', payload: {}, seq: 12 }), false, 'no actor, nothing to say');
  assert.equal(noteChange(c, '', moved), false);
});
