// Resume bookkeeping: seq, epoch, gaps, and the reconnect backoff.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BACKOFF_MAX_MS, BACKOFF_MIN_MS, admit, backoffDelay, connected, createCursor, resetCursor, resumeQuery,
} from '../js/resume.js';

const at = (seq) => ({ event: 'X', seq });

test('a fresh socket anchors at CONNECTED and then takes seqs one by one', () => {
  const c = createCursor();
  assert.equal(resumeQuery(c), null, 'nothing to resume before CONNECTED');
  assert.equal(connected(c, { seq: 41, epoch: 'e1' }, false), 'snapshot');
  assert.deepEqual(resumeQuery(c), { since: '41', epoch: 'e1' });
  assert.equal(admit(c, at(41)), 'skip', 'covered by the snapshot');
  assert.equal(admit(c, at(42)), 'apply');
  assert.equal(admit(c, at(42)), 'skip', 'a duplicate');
  assert.equal(admit(c, at(43)), 'apply');
  assert.equal(c.lastSeq, 43);
  assert.equal(admit(c, { event: 'PONGISH' }), 'apply', 'frames without seq are not counted');
});

test('a hole in the seqs is a gap, and the cursor does not move past it', () => {
  const c = createCursor();
  connected(c, { seq: 10, epoch: 'e' }, false);
  assert.equal(admit(c, at(11)), 'apply');
  assert.equal(admit(c, at(13)), 'gap');
  assert.equal(c.lastSeq, 11);
});

test('without a seq in CONNECTED the first event anchors the cursor', () => {
  const c = createCursor();
  assert.equal(connected(c, {}, false), 'snapshot');
  assert.equal(admit(c, at(500)), 'apply');
  assert.equal(admit(c, at(502)), 'gap');
});

test('a resumed socket stays live in the same stream and resyncs in another', () => {
  const c = createCursor();
  connected(c, { seq: 5, epoch: 'e1' }, false);
  admit(c, at(6));
  assert.equal(connected(c, { seq: 9, epoch: 'e1' }, true), 'live');
  assert.equal(c.lastSeq, 6, 'the replay brings 7..9');
  assert.equal(connected(c, { seq: 9, epoch: 'e2' }, true), 'resync', 'another epoch');
  assert.equal(connected(c, { seq: 3, epoch: 'e1' }, true), 'resync', 'the stream went backwards');
});

test('a reset forgets the stream', () => {
  const c = createCursor();
  connected(c, { seq: 5, epoch: 'e1' }, false);
  resetCursor(c);
  assert.equal(resumeQuery(c), null);
  assert.equal(admit(c, at(1)), 'apply');
});

test('backoff grows, is capped, and is jittered within its window', () => {
  assert.equal(backoffDelay(0, () => 0), BACKOFF_MIN_MS / 2);
  assert.equal(backoffDelay(0, () => 0.999999), BACKOFF_MIN_MS);
  assert.equal(backoffDelay(3, () => 0), (BACKOFF_MIN_MS * 8) / 2);
  assert.equal(backoffDelay(50, () => 0.999999), BACKOFF_MAX_MS);
  assert.equal(backoffDelay(50, () => 0), BACKOFF_MAX_MS / 2);
  const seen = new Set();
  for (let i = 0; i < 50; i++) {
    const d = backoffDelay(4);
    assert.ok(d >= (BACKOFF_MIN_MS * 16) / 2 && d <= BACKOFF_MIN_MS * 16, `${d} within the window`);
    seen.add(d);
  }
  assert.ok(seen.size > 1, 'jitter: not every page waits the same');
});
