/**
 * The harness checks every hook (harness/invariants.ts): broken methods fail their run with one
 * line naming the method, the hook, the step, the layer and the counts, and the sweep goes on;
 * results.csv carries the sparsity measured from the layers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { methods } from '../methods/index.js';
import { dstUpdatesAt, magnitudePools, pickByScope } from '../methods/dst.js';
import { uniformInactive } from '../methods/samplers.js';
import type { Method, StatefulWeight, UpdateContext } from '../methods/types.js';
import { sweepFromConfig } from '../harness/config.js';
import { runSweep } from '../harness/sweep.js';
import { selectBackend } from '../harness/backend.js';
import { runId } from '../harness/spec.js';

/** Prunes the k smallest |w| of every layer and grows `factor` x k at random (factor 1: a correct SET-like update). */
function growPrune(ctx: UpdateContext, factor: number, after?: (layer: StatefulWeight, grown: { row: Int32Array; col: Int32Array }) => void) {
  const active = ctx.layers.map((l) => l.active());
  const k = ctx.layers.map((l) => Math.max(1, Math.floor(0.1 * l.activeCount())));
  const pruned = pickByScope(magnitudePools(ctx.layers, active), k, false, false);
  const grown = ctx.layers.map((l, i) => uniformInactive(l, active[i], factor * k[i], ctx.rng));
  ctx.layers.forEach((l, i) => { l.prune(pruned[i]); l.grow(grown[i]); after?.(l as StatefulWeight, grown[i]); });
  const n = (c: { row: Int32Array }[]) => c.reduce((a, x) => a + x.row.length, 0);
  return { k: n(grown), grown: n(grown), pruned: n(pruned), flops: 0 };
}

const dst = (name: string, update: Method['update'], extra: Partial<Method> = {}): Method => ({
  name, summary: 'test', options: {}, sparse: true, alwaysSparse: true, updates: true,
  startsDense: () => false, updatesAt: (ctx) => dstUpdatesAt(ctx), update, ...extra,
});

const broken: Method[] = [
  dst('grows-twice', (ctx) => growPrune(ctx, 2)),
  dst('hot-growth', (ctx) => growPrune(ctx, 1, (layer, g) => {
    const st = layer.saveState();
    const at = new Set(Array.from(g.row, (r, i) => r * layer.cols + g.col[i]));
    layer.loadState({ ...st, values: st.values.map((v, i) => (at.has(st.connections.row[i] * layer.cols + st.connections.col[i]) ? 0.5 : v)) });
  })),
  dst('lying-report', (ctx) => ({ ...growPrune(ctx, 1), grown: 0 })),
  dst('silent-step', () => { throw new Error('never'); }, {
    updatesAt: () => false,
    afterStep: (ctx) => {
      if (ctx.step === 3) ctx.layers[1].prune({ row: ctx.layers[1].active().row.subarray(0, 1), col: ctx.layers[1].active().col.subarray(0, 1) });
      return { flops: 0 };
    },
  }),
  dst('grows-at-init', () => { throw new Error('never'); }, {
    updatesAt: () => false,
    initialize: (ctx) => {
      const g = uniformInactive(ctx.layers[0], ctx.layers[0].active(), 3, ctx.rng);
      ctx.layers[0].grow(g);
      return { k: 3, grown: 3, pruned: 0, flops: 0 };
    },
  }),
  // starts dense and never prunes: ends far from its target
  dst('never-prunes', () => ({ k: 0, grown: 0, pruned: 0, flops: 0 }), { startsDense: () => true }),
];

test('a method that breaks an invariant fails its run in one line; the sweep goes on; results.csv has achieved_sparsity', async () => {
  await selectBackend('cpu');
  for (const m of broken) methods[m.name] = m;
  try {
    const config = {
      dataset: { name: 'synthetic', features: 32, classes: 4, trainSamples: 128, testSamples: 64, seed: 1 },
      model: { name: 'mlp', hidden: [24] },
      method: 'static',
      training: { epochs: 1, batchSize: 32 },
      update: { delta: 2, end: 1, scope: 'local' },
      sparsity: { target: 0.8, format: 'masked' },
      grid: { method: ['set', ...broken.map((m) => m.name), 'gradual'] },
    };
    const sweep = sweepFromConfig(config, 'inv.json', false);
    const out = mkdtempSync(path.join(os.tmpdir(), 'sparsebench-invariants-'));
    const outcome = await runSweep(sweep, { out, backend: 'cpu', log: () => {} });
    assert.equal(outcome.done, 2, 'set and gradual keep every invariant');
    assert.equal(outcome.failed, broken.length);
    const error = (name: string) => {
      const spec = sweep.specs.find((s) => s.method.name === name)!;
      return JSON.parse(readFileSync(path.join(out, runId(spec), 'result.json'), 'utf8')).error as string;
    };
    assert.match(error('grows-twice'), /^invariant broken: method "grows-twice", hook update, step 2: layer fc1: active count 115 -> 126 \(scope local: must stay 115\)$/);
    assert.match(error('hot-growth'), /^invariant broken: method "hot-growth", hook update, step 2: layer fc1: grown connection \(\d+, \d+\) has \|weight\| 0\.5 and momentum 0 \(both must be exactly 0\)$/);
    assert.match(error('lying-report'), /hook update, step 2: the report says grown 0, pruned \d+; the layers show \d+ newly active/);
    assert.match(error('silent-step'), /hook afterStep, step 3: layer fc2: active count \d+ -> \d+ \(scope local: must stay/);
    assert.match(error('grows-at-init'), /hook initialize, step 0: layer fc1: active count 115 -> 118 \(initialize may only prune\)$/);
    assert.match(error('never-prunes'), /hook end of training, step 4: model total active count 864 of 864 \(sparsity 0\.000000\), target 173 \(sparsity 0\.799769\) within 2$/);
    const rows = parse(readFileSync(path.join(out, 'results.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    for (const r of rows.filter((x) => x.status === 'done')) {
      assert.equal(Number(r.achieved_sparsity), 1 - Number(r.active_params) / Number(r.total_params));
      assert.ok(Math.abs(Number(r.achieved_sparsity) - 0.8) < 2 / Number(r.total_params) + 1e-12, `${r.method}: ${r.achieved_sparsity}`);
    }
  } finally {
    for (const m of broken) delete methods[m.name];
  }
});
