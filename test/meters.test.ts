/** The meters behind reported step/update times and peak memory (harness/meters.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, peakRssMb } from '../harness/meters.js';

test('median: middle value of an odd count, mean of the two middle ones of an even count, NaN of none; input untouched', () => {
  const xs = [9, 1, 5];
  assert.equal(median(xs), 5);
  assert.deepEqual(xs, [9, 1, 5]);
  assert.equal(median([10, 2, 4, 30]), 7);
  assert.equal(median([3, 100, -1, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.equal(median([12, 11]), 11.5);
  assert.ok(Number.isNaN(median([])));
});

test('peak resident memory in MB: at least what this process holds now, the kernel maximum in KiB / 1024', () => {
  const peak = peakRssMb();
  assert.ok(peak >= process.memoryUsage().rss / 2 ** 20 - 1, `peak ${peak} MB`);
  assert.ok(Math.abs(peak - process.resourceUsage().maxRSS / 1024) < 64, `peak ${peak} MB`);
});
