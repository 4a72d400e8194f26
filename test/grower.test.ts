/**
 * The grower seam of methods/dst.ts (issue 14, item 6): a grower returns scores, pruneAndGrow
 * picks the top-k and applies the scope, so a variant is its score (scoreAll; RigL is one); a
 * per-layer prune with a global grow (scope prune-local) keeps the total and moves connections
 * between layers, through the harness too; and gradual under sparsity.holdActive ends at the
 * held active count.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend } from '../harness/backend.js';
import { Rng } from '../core/rng.js';
import { prepareRun, runGeometry } from '../harness/run-context.js';
import { trainRun } from '../harness/train.js';
import { pruneAndGrow, scoreAll } from '../methods/dst.js';
import type { UpdateContext, UpdateSchedule } from '../methods/types.js';
import { formats } from '../models/sparse/index.js';
import { randomConnections, sparseInitialValues } from '../models/sparse/init.js';
import type { SparseLayer } from '../models/sparse/types.js';
import { smallTask, specOf } from './helpers.js';

before(async () => { await selectBackend('cpu'); });

/** Layers of the given shapes, half their connections active, seeded. */
function layersOf(shapes: [number, number][], format: 'masked' | 'csr'): SparseLayer[] {
  const rng = new Rng(3);
  return shapes.map(([rows, cols], l) => {
    const connections = randomConnections(rows, cols, (rows * cols) >> 1, rng.fork(`l${l}`));
    const { values, bias } = sparseInitialValues(rows, connections, rng.fork(`v${l}`));
    return formats[format]({ name: `fc${l}`, kind: 'linear', rows, cols, positions: 1 }, { connections, values, bias });
  });
}

function context(layers: SparseLayer[], scope: UpdateSchedule['scope']): UpdateContext {
  const schedule: UpdateSchedule = { delta: 1, end: 1, alpha: 0.5, samplesPerClass: 1, scope };
  return {
    step: 0, totalSteps: 10, stepsPerEpoch: 10, schedule, layers, rng: new Rng(1), sparsity: 0.5,
    probe: () => assert.fail('this grower needs no probe'), momentum: () => assert.fail('no momentum read'),
  };
}

/** A variant in a few lines: every connection scored so that the last layer's outrank the others', then by position. */
const towardsLast = scoreAll({
  order: 'prune-first',
  probe: false,
  magnitude: false,
  score: (layer, ctx) => Float32Array.from({ length: layer.rows * layer.cols }, (_, i) => ctx.layers.indexOf(layer as SparseLayer) * 10 + i / (layer.rows * layer.cols)),
  flops: () => 0,
});

const keys = (layer: SparseLayer) => { const a = layer.active(); return Array.from(a.row, (r, i) => r * layer.cols + a.col[i]); };

test('scope prune-local: every layer prunes its own k_l smallest |w|, the regrowth goes where the scores are, the total stays', () => {
  for (const format of ['masked', 'csr'] as const) {
    const layers = layersOf([[6, 8], [5, 7], [12, 12]], format);
    const before = layers.map(keys);
    const weights = layers.map((l) => { const a = l.active(); const m = l.magnitudes(a); return new Map(keys(l).map((k, i) => [k, m[i]])); });
    const k = before.map((a) => Math.ceil(0.5 * a.length));
    const report = pruneAndGrow(context(layers, 'prune-local'), towardsLast, 'towards-last');
    const after = layers.map(keys);
    assert.equal(after.flat().length, before.flat().length, `${format}: the total stays`);
    assert.equal(report.k, k.reduce((a, b) => a + b, 0));
    layers.forEach((layer, l) => {
      const gone = before[l].filter((x) => !after[l].includes(x));
      // per layer: exactly its own k_l smallest |w| (ties by position)
      const smallest = [...before[l]].sort((a, b) => weights[l].get(a)! - weights[l].get(b)! || a - b).slice(0, k[l]);
      assert.deepEqual(gone.sort((a, b) => a - b), smallest.sort((a, b) => a - b), `${format} layer ${l}: pruned its own k_l`);
    });
    // grown globally: everything goes to the last layer (it has room for all), by its scores (the largest positions first)
    assert.deepEqual(after.slice(0, 2).map((a) => a.length), [before[0].length - k[0], before[1].length - k[1]], `${format}: the first layers only lost`);
    const size = 12 * 12;
    const grown = after[2].filter((x) => !before[2].includes(x)).sort((a, b) => a - b);
    const expected = Array.from({ length: size }, (_, i) => size - 1 - i).filter((x) => !before[2].includes(x)).slice(0, report.grown).sort((a, b) => a - b);
    assert.equal(report.grown, report.pruned);
    assert.deepEqual(grown, expected, `${format}: the top-scored inactive connections of the last layer`);
    assert.ok(after[2].length > before[2].length, `${format}: connections moved into the last layer`);
  }
  // the same variant under scope local keeps every layer's count
  const layers = layersOf([[6, 8], [5, 7], [4, 9]], 'masked');
  const counts = layers.map((l) => l.activeCount());
  pruneAndGrow(context(layers, 'local'), towardsLast, 'towards-last');
  assert.deepEqual(layers.map((l) => l.activeCount()), counts);
});

const task = { ...smallTask, update: { delta: 4, end: 0.8, alpha: 0.3, samplesPerClass: 4 }, training: { ...smallTask.training, epochs: 1 } };

test('through the harness, SET under scope prune-local keeps the total, moves connections between layers and passes the invariant checks', async () => {
  const spec = specOf({ ...task, method: 'set', update: { ...task.update, scope: 'prune-local' } });
  const r = await trainRun(spec, {});
  assert.equal(r.status, 'done');
  const run = prepareRun(spec, {});
  const targets = runGeometry(spec, run.data).targetCounts;
  run.model.dispose();
  assert.equal(r.active_params, targets.reduce((a, b) => a + b, 0), 'the total stays at the target');
  assert.notDeepEqual(r.layers.map((l) => l.active), targets, 'per-layer counts moved');
});

test('gradual under sparsity.holdActive ends at the active count of width 1, as every other method', async () => {
  const spec = specOf({ ...task, model: { ...task.model, width: 2 }, method: 'gradual', sparsity: { target: 0.9, holdActive: true } });
  const run = prepareRun(spec, {});
  const targets = runGeometry(spec, run.data).targetCounts;
  run.model.dispose();
  const r = await trainRun(spec, {});
  assert.equal(r.status, 'done');
  const target = targets.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(r.active_params - target) <= targets.length, `active ${r.active_params}, held count ${target}`);
  assert.ok(r.active_params < Math.round(0.1 * r.total_params) - targets.length, 'sparser than the config target at this width');
});
