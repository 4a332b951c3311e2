import { test } from 'node:test';
import assert from 'node:assert/strict';

import { addWorkspace, createModel, setLayout } from '../js/model.js';
import { boxAround, collapsedAncestors, describe, findMatches, isMatch, normalizeQuery } from '../js/find.js';

function org() {
  const model = createModel();
  addWorkspace(model, { id: 'hq', name: 'Acme HQ', role: 'Company root', x: 0, y: 0 });
  addWorkspace(model, { id: 'sup', name: 'Support', role: 'Answers customers', parent_id: 'hq', x: 300, y: 150 });
  addWorkspace(model, { id: 'tri', name: 'Triage', role: 'Sorts the SUPPORT inbox', parent_id: 'sup', x: 300, y: 300 });
  addWorkspace(model, { id: 'res', name: 'Research', role: 'Finds things out', parent_id: 'hq', x: 20, y: 150 });
  addWorkspace(model, { id: 'ops', name: 'Ops', role: '', x: 900, y: 0 });
  return model;
}

test('a query matches name or role, ignoring case and surrounding spaces', () => {
  assert.equal(normalizeQuery('  SuPPort '), 'support');
  assert.equal(normalizeQuery(null), '');
  assert.ok(isMatch({ name: 'Support', role: '' }, 'pport'));
  assert.ok(isMatch({ name: 'x', role: 'Answers customers' }, 'customer'));
  assert.ok(!isMatch({ name: 'Ops', role: '' }, 'support'));
  assert.ok(!isMatch({ name: 'Ops' }, ''), 'an empty query matches nothing');
});

test('matches come in reading order: top to bottom, then left to right', () => {
  const model = org();
  assert.deepEqual(findMatches(model, 'SUPPORT'), ['sup', 'tri']);
  assert.deepEqual(findMatches(model, 'r'), ['hq', 'res', 'sup', 'tri']);
  assert.deepEqual(findMatches(model, '   '), []);
  assert.deepEqual(findMatches(model, 'nobody'), []);
});

test('a match inside collapsed groups names them, nearest first', () => {
  const model = org();
  assert.deepEqual(collapsedAncestors(model, 'tri'), []);
  setLayout(model, 'hq', NaN, NaN, true);
  setLayout(model, 'sup', NaN, NaN, true);
  assert.deepEqual(collapsedAncestors(model, 'tri'), ['sup', 'hq']);
  assert.deepEqual(collapsedAncestors(model, 'res'), ['hq']);
  assert.deepEqual(collapsedAncestors(model, 'hq'), [], 'a collapsed card itself is shown');
});

test('the box around matches spans their heads', () => {
  const model = org();
  assert.deepEqual(boxAround(model, ['sup', 'res'], 220, 92), { l: 20, t: 150, r: 520, b: 242 });
  assert.equal(boxAround(model, [], 220, 92), null);
  assert.equal(boxAround(model, ['gone'], 220, 92), null);
});

test('the status line counts matches and hidden ones', () => {
  assert.equal(describe(0, 0), 'No match');
  assert.equal(describe(1, 0), '1 match');
  assert.equal(describe(3, 0, 1), '2 of 3');
  assert.equal(describe(3, 1), '3 matches · 1 hidden in collapsed group (Enter shows it)');
  assert.equal(describe(3, 2, 0), '1 of 3 · 2 hidden in collapsed groups (Enter shows them)');
});
