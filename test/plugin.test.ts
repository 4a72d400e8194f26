import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { methods } from '../methods/index.js';
import { sweepFromConfig } from '../harness/config.js';
import { runSweep } from '../harness/sweep.js';
import { selectBackend } from '../harness/backend.js';
import { listText } from '../harness/commands/list.js';
import { runId } from '../harness/spec.js';
import { activity } from './fixtures/plugin/activity.js';
import { root } from './helpers.js';

test('README\'s "add a method" example is the tested plugin, verbatim', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = readme.match(/```ts\n\/\/ methods\/activity\.ts\n([\s\S]*?)```/);
  assert.ok(block, 'README has a methods/activity.ts code block');
  const fixture = readFileSync(path.join(root, 'test/fixtures/plugin/activity.ts'), 'utf8').replaceAll('../../../methods/', './');
  assert.equal(block![1], fixture);
  assert.match(readme, /\[activity\.name\]: activity,/);
});

test('a plugin registered by one registry line appears in list, configs, sweeps and results.csv', async () => {
  await selectBackend('cpu');
  methods[activity.name] = activity; // what the one registry line in methods/index.ts does
  try {
    assert.match(listText(), /activity \[always sparse\] — grow the sampled inactive/);
    assert.match(listText(), /gamma = 1 +candidates per update/);
    const config = {
      dataset: { name: 'synthetic', features: 32, classes: 4, trainSamples: 256, testSamples: 64, seed: 1 },
      model: { name: 'mlp', hidden: [24] },
      method: 'static',
      training: { epochs: 2, batchSize: 32 },
      update: { delta: 2, end: 1 },
      grid: { method: ['static', { name: 'activity', gamma: 2 }], 'sparsity.target': [0.8] },
    };
    assert.throws(() => sweepFromConfig({ ...config, grid: { method: [{ name: 'activity', gamma: -1 }] } }, 'p.json', false), /gamma: must be > 0/);
    const sweep = sweepFromConfig(config, 'plugin.json', false);
    assert.deepEqual(sweep.specs.map((s) => s.method), [{ name: 'static' }, { name: 'activity', gamma: 2 }]);
    const out = mkdtempSync(path.join(os.tmpdir(), 'sparsebench-plugin-'));
    const outcome = await runSweep(sweep, { out, backend: 'cpu', log: () => {} });
    assert.equal(outcome.done, 2);
    const csv = readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n');
    const methodCol = csv[0].split(',').indexOf('method');
    assert.deepEqual(csv.slice(1).map((l) => l.split(',')[methodCol]).sort(), ['activity', 'static']);
    const updates = readFileSync(path.join(out, runId(sweep.specs[1]), 'updates.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(updates.length >= 3, 'the plugin updated the connectivity');
    assert.ok(updates.every((u) => u.grown === u.pruned && u.grown > 0));
  } finally {
    delete methods[activity.name];
  }
});
