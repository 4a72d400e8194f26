/**
 * Cross-format equivalence: with the same seed, the masked and csr formats make identical
 * connectivity decisions for static, SET, RigL and GSE (uniform, grabo, graest), scope global and
 * local, over several updates on an MLP 64 -> 48 -> 24 -> 4 (synthetic data), and their losses
 * agree to float tolerance.
 *
 * Two levels:
 *  1. a training loop written here (the same steps as harness/train.ts) that calls the methods
 *     directly and records, after every update, every layer's active() and the grown and pruned
 *     sets, and every step's loss, on the cpu and wasm backends;
 *  2. the real loop (trainRun): its update records, per-epoch checkpoints (every layer's
 *     connections) and epoch metrics, csr against masked.
 * The two formats compute their sums in different orders (tfjs matMul vs the sparse kernels), so
 * weights and probes agree to rounding, not bit for bit; decisions could only differ at near-ties,
 * which these cases do not hit. Ties that are exact (zero gradients of dead units, zero weights of
 * just-grown connections) are exact in both formats and are broken by (layer, row, col) in both.
 */
import { momentumOf } from '../methods/dst.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../harness/backend.js';
import { featureSize, gather, batchOrder, samplesPerClass } from '../harness/data/index.js';
import { Rng } from '../core/rng.js';
import { sgdStep } from '../harness/sgd.js';
import { crossEntropy, prepareRun, type TrainState, type UpdateRecord, type EpochMetrics } from '../harness/run-context.js';
import { trainRun } from '../harness/train.js';
import { getMethod } from '../methods/index.js';
import type { UpdateContext, UpdateReport } from '../methods/types.js';
import type { Connections, SparseFormat } from '../models/sparse/types.js';
import { specOf } from './helpers.js';

const SCHEDULE = { delta: 8, end: 0.8, alpha: 0.3, samplesPerClass: 10 };

function config(method: Record<string, unknown>, scope: 'global' | 'local', format: SparseFormat, epochs = 3) {
  return {
    seed: 13,
    dataset: { name: 'synthetic', features: 64, classes: 4, trainSamples: 320, testSamples: 128, seed: 5 },
    model: { name: 'mlp', hidden: [48, 24] },
    method,
    sparsity: { target: 0.85, format },
    update: { ...SCHEDULE, scope },
    training: { epochs, batchSize: 32, lr: 0.05, momentum: 0.9, weightDecay: 1e-4 },
  };
}

const METHODS: [string, Record<string, unknown>][] = [
  ['static', { name: 'static' }],
  ['set', { name: 'set' }],
  ['rigl', { name: 'rigl' }],
  ['gse uniform', { name: 'gse', sampler: 'uniform' }],
  ['gse grabo', { name: 'gse', sampler: 'grabo' }],
  ['gse graest', { name: 'gse', sampler: 'graest', gamma: 2 }],
];

interface Trace {
  losses: number[];
  updates: { step: number; report: UpdateReport; active: Connections[]; grown: string[][]; pruned: string[][] }[];
}

const keys = (c: Connections) => Array.from(c.row, (r, k) => `${r},${c.col[k]}`);

/** The training loop of harness/train.ts, with the methods called directly and everything recorded. */
function traceRun(method: Record<string, unknown>, scope: 'global' | 'local', format: SparseFormat, steps: number): Trace {
  const spec = specOf(config(method, scope, format));
  const { data, model, train } = prepareRun(spec, {});
  const m = getMethod(spec.method.name);
  const rng = new Rng(spec.seed);
  const dataRng = rng.fork('data');
  const methodRng = rng.fork('method');
  const probeRng = rng.fork('probe');
  const fs = featureSize(data.inputShape);
  const stepsPerEpoch = Math.ceil(train.n / spec.training.batchSize);
  const trace: Trace = { losses: [], updates: [] };
  const lossOf = (x: tf.Tensor2D, y: tf.Tensor1D) => crossEntropy(model.forward(x, true), y, data.classes);
  const probe = () => {
    const idx = samplesPerClass(train, data.classes, spec.update!.samplesPerClass, probeRng);
    const b = gather(train, fs, idx);
    model.layers.forEach((l) => l.setProbe(true));
    try {
      tf.tidy(() => {
        tf.variableGrads(() => lossOf(tf.tensor2d(b.x, [idx.length, fs]), tf.tensor1d(b.y, 'int32')), model.params().map((p) => p.value));
      });
    } finally {
      model.layers.forEach((l) => l.setProbe(false));
    }
  };
  try {
    let step = 0;
    while (step < steps) {
      for (const idx of batchOrder(train.n, spec.training.batchSize, dataRng)) {
        if (step >= steps) break;
        const ctx = { step, totalSteps: steps, stepsPerEpoch, schedule: spec.update! };
        if (m.updatesAt(ctx, spec.method)) {
          const before = model.layers.map((l) => new Set(keys(l.active())));
          const uctx: UpdateContext = { ...ctx, layers: model.layers, rng: methodRng, sparsity: spec.sparsity.target, probe, momentum: (l, c) => momentumOf(model.layers[l], c) };
          const report = m.update(uctx, spec.method);
          model.layers.forEach((l) => l.clearProbe());
          const active = model.layers.map((l) => l.active());
          const after = active.map((a) => new Set(keys(a)));
          trace.updates.push({
            step,
            report,
            active,
            grown: after.map((s, l) => [...s].filter((k) => !before[l].has(k))),
            pruned: before.map((s, l) => [...s].filter((k) => !after[l].has(k))),
          });
        }
        const b = gather(train, fs, idx);
        const loss = tf.tidy(() => {
          const params = model.params();
          const { value, grads } = tf.variableGrads(() => lossOf(tf.tensor2d(b.x, [idx.length, fs]), tf.tensor1d(b.y, 'int32')), params.map((p) => p.value));
          sgdStep(params, grads, { lr: spec.training.lr, momentum: spec.training.momentum, weightDecay: spec.training.weightDecay });
          return value.dataSync()[0];
        });
        trace.losses.push(loss);
        step++;
      }
    }
  } finally {
    model.dispose();
  }
  return trace;
}

function assertLossesClose(a: number[], b: number[], what: string): void {
  assert.equal(a.length, b.length);
  a.forEach((x, i) => {
    assert.ok(Number.isFinite(x) && Number.isFinite(b[i]), `${what}: step ${i} loss finite`);
    assert.ok(Math.abs(x - b[i]) <= 1e-5 * Math.max(1, Math.abs(x)), `${what}: step ${i} loss ${x} (masked) vs ${b[i]} (csr)`);
  });
}

for (const backend of ['cpu', 'wasm'] as const) {
  for (const scope of ['global', 'local'] as const) {
    test(`same decisions in masked and csr: every method, scope ${scope}, methods called directly (${backend})`, async () => {
      await selectBackend(backend);
      for (const [label, method] of METHODS) {
        if (label === 'static' && scope === 'local') continue;
        const steps = 60;
        const a = traceRun(method, scope, 'masked', steps);
        const b = traceRun(method, scope, 'csr', steps);
        const what = `${label} (${scope}, ${backend})`;
        assert.equal(a.updates.length, label === 'static' ? 0 : 5, `${what}: updates`);
        assert.equal(b.updates.length, a.updates.length);
        let moved = 0;
        a.updates.forEach((u, i) => {
          const v = b.updates[i];
          assert.equal(v.step, u.step);
          assert.deepEqual(v.report, u.report, `${what}: step ${u.step} report`);
          assert.deepEqual(v.grown, u.grown, `${what}: step ${u.step} grown`);
          assert.deepEqual(v.pruned, u.pruned, `${what}: step ${u.step} pruned`);
          assert.deepEqual(v.active, u.active, `${what}: step ${u.step} active`);
          moved += u.grown.reduce((s, g) => s + g.length, 0);
        });
        if (label !== 'static') assert.ok(moved > 50, `${what}: only ${moved} connections moved`);
        assertLossesClose(a.losses, b.losses, what);
      }
    });
  }
}

test('same decisions through trainRun: update records, per-epoch connections and metrics (wasm)', async () => {
  await selectBackend('wasm');
  for (const [label, method] of METHODS.filter(([l]) => l !== 'static')) {
    const runs = [];
    for (const format of ['masked', 'csr'] as const) {
      const updates: UpdateRecord[] = [];
      const epochs: EpochMetrics[] = [];
      const checkpoints: TrainState[] = [];
      const s = await trainRun(specOf(config(method, 'global', format, 6)), {}, { onUpdate: (u) => updates.push(u), onEpoch: (m) => epochs.push(m) }, { onCheckpoint: (c) => checkpoints.push(c) });
      runs.push({ s, updates, epochs, checkpoints });
    }
    const [a, b] = runs;
    assert.equal(a.s.status, 'done');
    assert.equal(b.s.status, 'done');
    assert.equal(a.updates.length, b.updates.length);
    assert.ok(a.updates.length === 5, `${label}: ${a.updates.length} updates`);
    a.updates.forEach((u, i) => {
      const v = b.updates[i];
      for (const k of ['step', 'k', 'grown', 'pruned', 'active', 'density', 'alpha', 'flops'] as const) assert.deepEqual(v[k], u[k], `${label}: update ${i} ${k}`);
    });
    assert.equal(a.checkpoints.length, 5);
    a.checkpoints.forEach((c, i) => {
      c.layers.forEach((l, j) => assert.deepEqual(b.checkpoints[i].layers[j].connections, l.connections, `${label}: epoch ${c.epoch} layer ${j} connections`));
    });
    a.epochs.forEach((m, i) => {
      const n = b.epochs[i];
      for (const k of ['train_loss', 'test_loss'] as const) assert.ok(Math.abs(m[k] - n[k]) <= 1e-5 * Math.max(1, m[k]), `${label}: epoch ${m.epoch} ${k} ${m[k]} vs ${n[k]}`);
      assert.equal(n.active_params, m.active_params);
    });
    assert.equal(b.s.active_params, a.s.active_params);
    assert.ok(b.s.param_bytes < a.s.param_bytes / 2, 'csr stores less');
  }
});
