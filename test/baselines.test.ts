/**
 * The paper's other baselines (issue 8): SNIP, GraSP, SynFlow, lottery ticket, Top-KAST.
 *  - scores on a tiny 2-2-2 ReLU network against hand-computed values (SNIP, SynFlow) and a
 *    float64 reference (GraSP's finite-difference Hg);
 *  - every method ends at exactly the target count (global and local), in both formats;
 *  - lottery: the stored state is the initialisation bit for bit, and every round starts from it
 *    bit for bit (weights, momenta, biases, random streams), also with a mid-epoch rewind step;
 *  - Top-KAST: after every refresh the forward set is exactly the top-k of |θ| and the model's
 *    output is that of the top-k weights alone.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../harness/backend.js';
import type { Dataset } from '../harness/data/types.js';
import { runInitialize } from '../harness/method-hooks.js';
import { Rng } from '../core/rng.js';
import { captureAt, rewoundLayers, trainRounds } from '../harness/rounds.js';
import { createRunContext, makeProbe, prepareRun, runGeometry, type RunSummary, type TrainState } from '../harness/run-context.js';
import { trainLoop, trainRun } from '../harness/train.js';
import { hessianGradient } from '../methods/grasp.js';
import { lotteryKeep } from '../methods/lottery.js';
import { snipScores } from '../methods/snip.js';
import { synflowScores } from '../methods/synflow.js';
import { topMagnitudes, type TopkastLayer } from '../methods/topkast.js';
import type { InitContext } from '../methods/types.js';
import { mlp } from '../models/mlp.js';
import { formats } from '../models/sparse/index.js';
import type { SparseFormat } from '../models/sparse/types.js';
import { specOf } from './helpers.js';

before(async () => { await selectBackend('wasm'); });

// ---------------------------------------------------------------------------------------------
// a tiny 2 -> 2 -> 2 ReLU network with known weights, and two examples (one per class)

const W1 = [[0.5, -0.25], [0.25, 0.5]];
const B1 = [0.1, -0.1];
const W2 = [[1, -1], [0.5, 0.5]];
const B2 = [0.2, -0.3];
const X = [[1, 2], [2, -1]];
const Y = [0, 1];

const tinyData: Dataset = {
  name: 'tiny', inputShape: [2], classes: 2,
  train: { x: Float32Array.from(X.flat()), y: Int32Array.from(Y), n: 2 },
  test: { x: Float32Array.from(X.flat()), y: Int32Array.from(Y), n: 2 },
};

function tinyNet(format: SparseFormat = 'masked') {
  const o = { hidden: [2], width: 1 };
  const shapes = mlp.layout(o, tinyData);
  const all = { row: Int32Array.from([0, 0, 1, 1]), col: Int32Array.from([0, 1, 0, 1]) };
  const layers = shapes.map((s, i) => formats[format](s, {
    connections: all,
    values: Float32Array.from((i === 0 ? W1 : W2).flat()),
    bias: Float32Array.from(i === 0 ? B1 : B2),
  }));
  return mlp.build(o, tinyData, layers);
}

function tinyContext(format: SparseFormat = 'masked'): InitContext & { dispose(): void } {
  const model = tinyNet(format);
  const schedule = { delta: 1, end: 1, alpha: 0, samplesPerClass: 1, scope: 'global' as const };
  return {
    layers: model.layers, rng: new Rng(1), sparsity: 0.5, schedule, targetCounts: [2, 2], state: {},
    probe: makeProbe(model, tinyData, tinyData.train, schedule, new Rng(2)),
    dispose: () => model.dispose(),
  };
}

/** float64 reference: mean cross-entropy of logits / T over the two examples, and its weight gradients. */
function reference(w1: number[][], w2: number[][], T = 1): { g1: number[][]; g2: number[][] } {
  const g1 = [[0, 0], [0, 0]];
  const g2 = [[0, 0], [0, 0]];
  X.forEach((x, n) => {
    const pre = [0, 1].map((r) => w1[r][0] * x[0] + w1[r][1] * x[1] + B1[r]);
    const h = pre.map((v) => Math.max(0, v));
    const z = [0, 1].map((r) => (w2[r][0] * h[0] + w2[r][1] * h[1] + B2[r]) / T);
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const p = e.map((v) => v / (e[0] + e[1]));
    const dz = p.map((v, r) => (v - (r === Y[n] ? 1 : 0)) / X.length / T);
    for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) g2[r][c] += dz[r] * h[c];
    const dh = [0, 1].map((c) => (w2[0][c] * dz[0] + w2[1][c] * dz[1]) * (pre[c] > 0 ? 1 : 0));
    for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) g1[r][c] += dh[r] * x[c];
  });
  return { g1, g2 };
}

const close = (a: ArrayLike<number>, b: number[], tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

test('SNIP scores |g ⊙ w| on a tiny network equal the hand computation', () => {
  const { g1, g2 } = reference(W1, W2);
  // by hand: example 1 (label 0): pre = h = (0.1, 1.15), z = (-0.85, 0.325), p = (0.2359, 0.7641);
  // example 2 (label 1): pre = (1.35, -0.1), h = (1.35, 0), z = (1.55, 0.375), p = (0.7641, 0.2359);
  // dL/dz = (p - y) / 2, so dL/dW2[0][1] = -0.7641 / 2 * 1.15 + 0.7641 / 2 * 0 and |g w| = 0.4394
  assert.ok(Math.abs(g2[0][1] - -0.7641 / 2 * 1.15) < 1e-3, `hand value of dL/dW2[0][1]: ${g2[0][1]}`);
  assert.ok(Math.abs(Math.abs(g2[0][1] * W2[0][1]) - 0.4394) < 1e-3);
  for (const format of ['masked', 'csr'] as const) {
    const ctx = tinyContext(format);
    ctx.probe();
    const { scores } = snipScores(ctx);
    close(scores[0], [0, 1].flatMap((r) => [0, 1].map((c) => Math.abs(g1[r][c] * W1[r][c]))), 1e-5, `${format} fc1`);
    close(scores[1], [0, 1].flatMap((r) => [0, 1].map((c) => Math.abs(g2[r][c] * W2[r][c]))), 1e-5, `${format} fc2`);
    ctx.dispose();
  }
});

test('SynFlow scores on a tiny network equal the hand computation, and the model is restored bit-exactly', () => {
  // |θ|, input 1: h = |W1| 1 + |b1| = (0.85, 0.85); dR/dW2[r][c] = h[c]; dR/dW1[r][c] = sum_k |W2[k][r]| = 1.5
  for (const format of ['masked', 'csr'] as const) {
    const ctx = tinyContext(format);
    const before = ctx.layers.map((l) => l.saveState());
    const { scores } = synflowScores(ctx);
    close(scores[0], [0.75, 0.375, 0.375, 0.75], 1e-6, `${format} fc1`);
    close(scores[1], [0.85, 0.85, 0.425, 0.425], 1e-6, `${format} fc2`);
    assert.deepEqual(ctx.layers.map((l) => l.saveState()), before);
    // biases off: h = |W1| 1 = (0.75, 0.75)
    const off = synflowScores(ctx, true).scores;
    close(off[0], [0.75, 0.375, 0.375, 0.75], 1e-6, `${format} fc1, biases off`);
    close(off[1], [0.75, 0.75, 0.375, 0.375], 1e-6, `${format} fc2, biases off`);
    assert.deepEqual(ctx.layers.map((l) => l.saveState()), before);
    ctx.dispose();
  }
});

test('GraSP: the finite-difference Hg matches a float64 reference; the model is restored bit-exactly', () => {
  const T = 200;
  const { g1, g2 } = reference(W1, W2, T);
  // float64 Hg by a central difference of the float64 gradient
  const e = 1e-4;
  const shift = (w: number[][], g: number[][], s: number) => w.map((r, i) => r.map((v, j) => v + s * e * g[i][j]));
  const p = reference(shift(W1, g1, 1), shift(W2, g2, 1), T);
  const m = reference(shift(W1, g1, -1), shift(W2, g2, -1), T);
  const hg1 = [0, 1].flatMap((r) => [0, 1].map((c) => (p.g1[r][c] - m.g1[r][c]) / (2 * e)));
  const hg2 = [0, 1].flatMap((r) => [0, 1].map((c) => (p.g2[r][c] - m.g2[r][c]) / (2 * e)));
  const ctx = tinyContext();
  const before = ctx.layers.map((l) => l.saveState());
  const r = hessianGradient(ctx, { temperature: T, fdStep: 1e-3 });
  const scale = Math.max(...[...hg1, ...hg2].map(Math.abs));
  close(r.hg[0].map((v) => v / scale), hg1.map((v) => v / scale), 2e-3, 'Hg fc1');
  close(r.hg[1].map((v) => v / scale), hg2.map((v) => v / scale), 2e-3, 'Hg fc2');
  assert.deepEqual(ctx.layers.map((l) => l.saveState()), before);
  ctx.dispose();
});

// ---------------------------------------------------------------------------------------------
// through the harness

const task = {
  seed: 3,
  dataset: { name: 'synthetic', features: 16, classes: 4, trainSamples: 128, testSamples: 64, seed: 2 },
  model: { name: 'mlp', hidden: [12, 8] },
  training: { epochs: 2, batchSize: 32, lr: 0.05 },
  update: { delta: 2, samplesPerClass: 4 },
  sparsity: { target: 0.8 },
};

function layerCounts(r: RunSummary): number[] {
  return r.layers.map((l) => l.active);
}

test('every method ends at exactly the target count (global and local, both formats)', async () => {
  let denseOnce: number | undefined;
  const methods = [{ name: 'snip' }, { name: 'grasp' }, { name: 'synflow', iterations: 10 }, { name: 'lottery', rate: 0.5 }, { name: 'topkast' }];
  for (const method of methods) {
    for (const scope of ['global', 'local'] as const) {
      for (const format of ['masked', 'csr'] as const) {
        if (format === 'csr' && scope === 'local') continue;
        const spec = specOf({ ...task, method, update: { ...task.update, scope }, sparsity: { ...task.sparsity, format } });
        const data = prepareRun(spec, {});
        const counts = runGeometry(spec, data.data).targetCounts;
        data.model.dispose();
        const r = await trainRun(spec, {});
        assert.equal(r.status, 'done');
        const what = `${method.name} ${scope} ${format}`;
        assert.equal(r.active_params, counts.reduce((a, b) => a + b, 0), what);
        // topkast keeps every layer's count; so does every method under scope local
        if (scope === 'local' || method.name === 'topkast') assert.deepEqual(layerCounts(r), counts, what);
        if (method.name === 'lottery') {
          // 1 -> 0.5 -> 0.25 -> 0.2 of the weights: 4 rounds, the last at the target
          assert.deepEqual(r.rounds!.map((x) => x.round), [0, 1, 2, 3], what);
          assert.equal(r.rounds![3].active_params, r.active_params);
          // the cost adds up every round; the dense reference is one training (a dense run's),
          // so train_flops / dense_train_flops is the whole method against training dense once
          assert.equal(r.train_flops, r.rounds![3].train_flops, what);
          assert.ok(r.train_flops > r.rounds![0].train_flops, what);
          assert.equal(r.dense_train_flops, r.rounds![0].dense_train_flops, what);
          denseOnce ??= (await trainRun(specOf({ ...task, method: { name: 'dense' }, sparsity: { ...task.sparsity, format: 'masked' } }), {})).train_flops;
          assert.equal(r.dense_train_flops, denseOnce, `${what}: one dense training`);
        }
      }
    }
  }
});

test('SynFlow on a ViT: the all-ones input scores every patch weight 0 (the patch LayerNorm maps a constant patch to 0), so the patch embedding is pruned first; the run finishes', async () => {
  const spec = specOf({
    seed: 5,
    dataset: { name: 'synthetic', shape: '8x8x3', classes: 3, trainSamples: 24, testSamples: 12, seed: 4 },
    model: { name: 'vit', dim: 16, depth: 1, heads: 2, dimHead: 8, mlp: 16, patch: 4 },
    method: { name: 'synflow', iterations: 3 },
    sparsity: { target: 0.8, format: 'csr' },
    training: { epochs: 1, batchSize: 12, lr: 0.01 },
  });
  const { model, data, train } = prepareRun(spec, {});
  const probe = makeProbe(model, data, train, undefined, new Rng(1));
  const { scores } = synflowScores({ layers: model.layers, probe });
  probe.release();
  const names = model.layers.map((l) => l.name);
  assert.ok(scores[names.indexOf('patch')].every((v) => v === 0), 'patch scores all 0');
  assert.ok(scores.every((s, i) => names[i] === 'patch' || s.some((v) => v > 0)), 'every other layer has positive scores');
  model.dispose();
  const r = await trainRun(spec, {});
  assert.equal(r.status, 'done');
  assert.equal(r.layers.find((l) => l.name === 'patch')!.active, 0);
});

test('lottery budget: rate of the remaining per round, never below the target, null at the target', () => {
  assert.deepEqual(lotteryKeep([1000], [100], true, 0.2), [800]);
  assert.deepEqual(lotteryKeep([120], [100], true, 0.2), [100]);
  assert.deepEqual(lotteryKeep([50, 50], [20, 30], true, 0.2), [80]);
  assert.equal(lotteryKeep([20, 30], [20, 30], true, 0.2), null);
  assert.deepEqual(lotteryKeep([50, 50], [20, 50], false, 0.2), [40, 50]);
  assert.equal(lotteryKeep([20, 50], [20, 50], false, 0.2), null);
  // a round always prunes something until the target
  assert.deepEqual(lotteryKeep([3], [1], true, 0.1), [2]);
});

/** Runs lottery with the real loop, capturing the stored rewind state and every later round's starting state. */
async function lotteryStarts(rewindStep: number, format: SparseFormat) {
  const spec = specOf({ ...task, method: { name: 'lottery', rate: 0.5, rewindStep }, sparsity: { ...task.sparsity, format } });
  const run = createRunContext(prepareRun(spec, {}));
  const init = run.model.layers.map((l) => l.saveState());
  const starts: TrainState[] = [];
  let stored: TrainState | null = null;
  let round = 0;
  try {
    const r = await trainRounds(run, (ctx, ev, control) => {
      // round 0 stores the state (the runner's capture hook); later rounds: capture the model as the loop restored it
      const hooks = control.hooks?.length ? [...control.hooks, captureAt(rewindStep, (x) => { stored = x; })]
        : [captureAt(rewindStep, (x) => { starts.push(x); })];
      round++;
      return trainLoop(ctx, ev, { ...control, hooks });
    }, {}, {});
    return { init, stored: stored as TrainState | null, starts, rounds: r.rounds!, round };
  } finally {
    run.model.dispose();
  }
}

test('lottery rewinds every round to the stored weights bit-exactly (step 0 = the initialisation; mid-epoch step)', async () => {
  for (const [rewindStep, format] of [[0, 'masked'], [5, 'masked'], [0, 'csr']] as const) {
    const { init, stored, starts, rounds } = await lotteryStarts(rewindStep, format);
    assert.ok(stored, 'a state was stored');
    assert.equal(rounds.length, 4);
    assert.equal(starts.length, 3, 'every round after the first started from the stored state');
    if (rewindStep === 0) assert.deepEqual(stored!.layers, init, 'the stored state is the initialisation');
    assert.equal(stored!.step, rewindStep);
    for (const s of starts) {
      assert.equal(s.step, rewindStep);
      const bits = (r: TrainState['rng']) => Object.values(r).map((v) => v.map((x) => x >>> 0));
      assert.deepEqual(bits(s.rng), bits(stored!.rng), 'random streams rewound');
      assert.deepEqual(s.params, stored!.params);
      s.layers.forEach((layer, l) => {
        const ref = stored!.layers[l];
        const index = new Map<number, number>();
        ref.connections.row.forEach((r, i) => index.set(r * 1e6 + ref.connections.col[i], i));
        assert.ok(layer.connections.row.length < ref.connections.row.length, 'pruned');
        layer.connections.row.forEach((r, i) => {
          const j = index.get(r * 1e6 + layer.connections.col[i])!;
          assert.ok(Object.is(layer.values[i], ref.values[j]) && Object.is(layer.velocity[i], ref.velocity[j]), `layer ${l} connection ${i}: bit-exact`);
        });
        assert.deepEqual(layer.bias, ref.bias);
        assert.deepEqual(layer.biasVelocity, ref.biasVelocity);
      });
    }
    // sparsity rises round by round and ends at the target
    assert.deepEqual(rounds.map((r) => r.active_params), [...rounds.map((r) => r.active_params)].sort((a, b) => b - a));
  }
});

test('rewoundLayers keeps the current structure with the stored values', () => {
  const spec = specOf({ ...task, method: 'lottery' });
  const run = prepareRun(spec, {});
  const stored = { layers: run.model.layers.map((l) => l.saveState()) } as TrainState;
  const l0 = run.model.layers[0];
  l0.prune({ row: Int32Array.from([0, 1]), col: Int32Array.from([3, 4]) });
  const states = rewoundLayers(run.model, stored);
  assert.equal(states[0].connections.row.length, stored.layers[0].connections.row.length - 2);
  l0.loadState(states[0]);
  assert.deepEqual(l0.saveState(), states[0]);
  run.model.dispose();
});

test('topkast: the forward set is exactly the top-k of |θ| after every refresh, and the output is that of the top-k alone', async () => {
  const spec = specOf({ ...task, method: { name: 'topkast', exploreFraction: 0.5 }, training: { ...task.training, epochs: 2 } });
  const run = createRunContext(prepareRun(spec, {}));
  const state = run.methodState;
  const x = tf.tensor2d(run.test.x.subarray(0, 8 * 16), [8, 16]);
  let checked = 0;
  let backwardOnlyNonzero = 0;
  try {
    await trainLoop(run, {
      onUpdate: () => {
        const layers = state.topkast as TopkastLayer[];
        const dense: tf.Tensor2D[] = [];
        run.model.layers.forEach((layer, l) => {
          const s = layers[l];
          const st = layer.saveState();
          // θ with A's current values: the layer holds A, the state the rest
          const theta = s.theta.slice();
          st.connections.row.forEach((r, i) => { theta[r * layer.cols + st.connections.col[i]] = st.values[i]; });
          const topA = topMagnitudes(theta, s.forward);
          const a = Float64Array.from(st.connections.row, (r, i) => r * layer.cols + st.connections.col[i]);
          assert.deepEqual(a, topA, `${layer.name}: A = top-${s.forward}`);
          const topB = topMagnitudes(theta, s.backward);
          const ex = Float64Array.from(s.exRow, (r, i) => r * layer.cols + s.exCol[i]);
          assert.deepEqual(ex, topB.filter((f) => !topA.includes(f)), `${layer.name}: B \\ A = top-${s.backward} minus A`);
          for (const f of ex) if (theta[f] !== 0) backwardOnlyNonzero++;
          // the top-k weights alone, as a dense [cols, rows] matrix
          const w = new Float32Array(layer.rows * layer.cols);
          for (const f of topA) { const r = Math.floor(f / layer.cols); w[(f - r * layer.cols) * layer.rows + r] = theta[f]; }
          dense.push(tf.tensor2d(w, [layer.cols, layer.rows]));
        });
        tf.tidy(() => {
          let h: tf.Tensor2D = x;
          run.model.layers.forEach((layer, l) => {
            h = tf.add(tf.matMul(h, dense[l]), tf.tensor1d(layer.saveState().bias)) as tf.Tensor2D;
            if (l < run.model.layers.length - 1) h = tf.relu(h) as tf.Tensor2D;
          });
          const diff = tf.max(tf.abs(tf.sub(h, run.model.forward(x, false)))).dataSync()[0];
          assert.ok(diff < 1e-5, `forward differs from the top-k network by ${diff}`);
        });
        dense.forEach((t) => t.dispose());
        checked++;
      },
    }, {});
    assert.ok(checked >= 5, `checked ${checked} refreshes`);
    assert.ok(backwardOnlyNonzero > 0, 'B \\ A holds trained, nonzero weights that the forward leaves out');
  } finally {
    x.dispose();
    run.model.dispose();
  }
});

test('pruning at initialisation decides the same in both formats', async () => {
  for (const method of ['snip', 'synflow', 'topkast']) {
    const layers = await Promise.all((['masked', 'csr'] as const).map(async (format) => {
      const spec = specOf({ ...task, method, sparsity: { ...task.sparsity, format }, training: { ...task.training, maxSteps: 1 } });
      const run = createRunContext(prepareRun(spec, {}));
      runInitialize(run);
      const active = run.model.layers.map((l) => l.active());
      run.model.dispose();
      return active;
    }));
    assert.deepEqual(layers[0], layers[1], method);
  }
});

test('lottery and topkast resume from a checkpoint (through the file format) exactly as if never stopped', async () => {
  const { decodeCheckpoint, encodeCheckpoint } = await import('../harness/checkpoint.js');
  for (const method of [{ name: 'lottery', rate: 0.5, rewindStep: 3 }, { name: 'topkast', exploreFraction: 0.3 }]) {
    const spec = specOf({ ...task, method, training: { ...task.training, epochs: 3 } });
    const checkpoints: TrainState[] = [];
    const full = await trainRun(spec, {}, {}, { checkpointSeconds: 0, onCheckpoint: (s) => checkpoints.push(s) });
    const clean = (r: RunSummary) => ({ ...r, wall_s: 0, step_ms: 0, update_ms: 0, peak_rss_mb: 0, rounds: r.rounds?.map((x) => ({ ...x, elapsed_s: 0 })) });
    // a checkpoint in the middle: for lottery inside round 2, for topkast after epoch 1
    const pick = method.name === 'lottery' ? checkpoints.findIndex((c) => c.rounds!.round === 2 && c.epoch === 1) : 0;
    assert.ok(pick >= 0, `${method.name}: found a checkpoint`);
    const decoded = decodeCheckpoint(encodeCheckpoint('x', checkpoints[pick])).state;
    const resumed = await trainRun(spec, {}, {}, { resume: decoded });
    assert.deepEqual(clean(resumed), clean(full), method.name);
  }
});

test('topkast top-k selection: the k largest |θ|, ties by lowest index, nested for growing k', () => {
  const rng = new Rng(5);
  for (const n of [1, 7, 100, 1000]) {
    // few distinct magnitudes: many ties, both signs, a NaN
    const v = Float32Array.from({ length: n }, () => (rng.int(7) - 3) * 0.5);
    if (n > 3) v[2] = NaN;
    const ref = (k: number) => Array.from(v, (x, i) => ({ m: Number.isNaN(x) ? -1 : Math.abs(x), i }))
      .sort((a, b) => b.m - a.m || a.i - b.i).slice(0, k).map((x) => x.i).sort((a, b) => a - b);
    let prev: number[] = [];
    for (const k of [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 1, n]) {
      const got = Array.from(topMagnitudes(v, k));
      assert.deepEqual(got, ref(k), `n ${n} k ${k}`);
      assert.ok(prev.every((i) => got.includes(i)) || prev.length > got.length, 'nested');
      prev = got;
    }
  }
});
