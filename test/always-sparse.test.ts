/**
 * Always sparse, for real: GSE (all three samplers), SET and static train in the csr format on an
 * MLP with a 100,000 x 100,000 hidden layer (10^10 connections: 40 GB as dense float32 weights,
 * impossible on this machine) through the real training loop, with prune-grow updates. Each run
 * is a fresh process (test/fixtures/always-sparse-run.ts) whose real peak resident memory, read
 * from the kernel after the work, must stay under 1 GiB: a single rows x cols bit array of the
 * hidden layer (1.25 GB) would break it; these runs peak at 0.45-0.7 GiB.
 * (RigL is left out on purpose: it materialises the dense gradient, which is its real cost.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { RunSummary, UpdateRecord } from '../harness/run-context.js';
import { root } from './helpers.js';

const WIDTH = 100_000;
const PEAK_LIMIT_BYTES = 2 ** 30;
const script = path.join(root, 'dist', 'test', 'fixtures', 'always-sparse-run.js');

const CASES: [string, Record<string, unknown>][] = [
  ['gse uniform', { name: 'gse', sampler: 'uniform' }],
  ['gse grabo', { name: 'gse', sampler: 'grabo' }],
  ['gse graest', { name: 'gse', sampler: 'graest' }],
  ['set', { name: 'set' }],
  ['static', { name: 'static' }],
];

for (const [label, method] of CASES) {
  test(`${label} trains a 100,000 x 100,000 csr layer with updates, peak resident memory under 1 GiB`, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [script, JSON.stringify(method)], { cwd: root, maxBuffer: 2 ** 24 });
    const { summary: s, updates, maxRssBytes } = JSON.parse(stdout) as { summary: RunSummary; updates: UpdateRecord[]; maxRssBytes: number };
    assert.equal(s.status, 'done');
    assert.equal(s.steps, 5);
    const hidden = s.layers.find((l) => l.rows === WIDTH && l.cols === WIDTH)!;
    assert.ok(hidden.active > 100_000, `hidden layer has ${hidden.active} connections`);
    assert.equal(s.total_params, 16 * WIDTH + WIDTH * WIDTH + WIDTH * 4);
    assert.ok(s.param_bytes < 64 * 2 ** 20, `parameter storage ${s.param_bytes} bytes`);
    if (label === 'static') {
      assert.equal(updates.length, 0);
    } else {
      assert.deepEqual(updates.map((u) => u.step), [2, 4]);
      for (const u of updates) {
        assert.ok(u.grown > 1000, `step ${u.step}: ${u.grown} grown`);
        assert.equal(u.grown, u.pruned);
        assert.equal(u.active, s.active_params);
      }
    }
    assert.ok(maxRssBytes < PEAK_LIMIT_BYTES, `peak resident memory ${(maxRssBytes / 2 ** 20).toFixed(0)} MiB`);
  });
}
