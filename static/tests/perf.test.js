import { test } from 'node:test';
import assert from 'node:assert/strict';

import { quantile } from '../js/perf.js';

test('quantiles are nearest-rank over the samples', () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.equal(quantile(values, 0.5), 50);
  assert.equal(quantile(values, 0.95), 95);
  assert.equal(quantile(values, 0.99), 99);
  assert.equal(quantile(values, 1), 100);
  assert.equal(quantile([7], 0.99), 7);
  assert.equal(quantile([], 0.5), null);
});
