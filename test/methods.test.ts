/**
 * The DST methods (set, rigl, gse with its three samplers, gradual) checked against brute-force
 * definitions over many updates on small masked layers, plus sampler definitions and costs on a
 * csr-like fake layer. Backend: tfjs cpu. Probe batches have at most 48 rows, so that the cpu
 * matMul behind denseGradient() sums in the same order as subsetGradient() (bit-equal gradients).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../core/rng.js';
import { crossEntropy } from '../harness/run-context.js';
import { sgdStep } from '../harness/sgd.js';
import { sweepFromConfig } from '../harness/config.js';
import { buildSparseLayers } from '../models/sparse/index.js';
import { assignActiveCounts } from '../models/sparse/init.js';
import { ProbeRecord } from '../models/sparse/probe.js';
import type { Connections, LayerShape, SparseLayer, SparseWeight, UnitSums } from '../models/sparse/types.js';
import { methods, getMethod } from '../methods/index.js';
import type { Method, UpdateContext, UpdateReport, UpdateSchedule } from '../methods/types.js';
import { dstUpdatesAt, pickExtreme, probeFlops, updateFraction } from '../methods/dst.js';
import { Categorical, marginals, sampleSubset, uniformInactive } from '../methods/samplers.js';
import { allocateUniform } from '../methods/set.js';
import { selectLargest } from '../methods/dst.js';
import { gradualLastStep, gradualSparsity, gradualUpdatesAt } from '../methods/gradual.js';

await tf.setBackend('cpu');

// ---------------------------------------------------------------- helpers

type Key = string;
const k3 = (l: number, r: number, c: number): Key => `${l}:${r}:${c}`;

interface Net {
  layers: SparseLayer[];
  probe(): void;
  train(steps: number): void;
  dispose(): void;
}

/** A small ReLU MLP on random data; probe() records every layer's probe like harness/train.ts does. */
function makeNet(sizes: number[], density: number, seed: number, probeRows = 24): Net {
  const shapes: LayerShape[] = sizes.slice(1).map((rows, i) => ({ name: `fc${i + 1}`, kind: 'linear', rows, cols: sizes[i], positions: 1 }));
  const layers = buildSparseLayers(shapes, { density, distribution: 'erdos-renyi', format: 'masked', rng: new Rng(seed).fork('init') });
  const rng = new Rng(seed, 'net-data');
  const classes = sizes[sizes.length - 1];
  const batch = (n: number) => {
    const x = new Float32Array(n * sizes[0]);
    for (let i = 0; i < x.length; i++) x[i] = rng.normal();
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) y[i] = rng.int(classes);
    return { x: tf.tensor2d(x, [n, sizes[0]]), y: tf.tensor1d(y, 'int32') };
  };
  const forward = (x: tf.Tensor) => {
    let h = x;
    layers.forEach((l, i) => { h = l.apply(h); if (i < layers.length - 1) h = tf.relu(h); });
    return h as tf.Tensor2D;
  };
  const vars = layers.flatMap((l) => l.params().map((p) => p.value));
  return {
    layers,
    probe() {
      layers.forEach((l) => l.setProbe(true));
      try {
        tf.tidy(() => {
          const b = batch(probeRows);
          tf.variableGrads(() => crossEntropy(forward(b.x), b.y, classes), vars);
        });
      } finally {
        layers.forEach((l) => l.setProbe(false));
      }
    },
    train(steps: number) {
      for (let s = 0; s < steps; s++) {
        tf.tidy(() => {
          const b = batch(16);
          const { grads } = tf.variableGrads(() => crossEntropy(forward(b.x), b.y, classes), vars);
          sgdStep(layers.flatMap((l) => l.params()), grads, { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
        });
      }
    },
    dispose() { layers.forEach((l) => l.dispose()); },
  };
}

interface Call { op: 'prune' | 'grow'; layer: number; c: Connections }

/** Delegates to a layer and records prune/grow calls and the subsets whose gradient was asked. */
class Spy implements SparseWeight {
  subsets: Connections[] = [];
  grads: Float32Array[] = [];
  denseCalls = 0;
  constructor(readonly inner: SparseWeight, readonly index: number, readonly log: Call[]) {}
  get name() { return this.inner.name; }
  get rows() { return this.inner.rows; }
  get cols() { return this.inner.cols; }
  get format() { return this.inner.format; }
  activeCount() { return this.inner.activeCount(); }
  active() { return this.inner.active(); }
  isActive(c: Connections) { return this.inner.isActive(c); }
  magnitudes(c: Connections) { return this.inner.magnitudes(c); }
  prune(c: Connections) { this.log.push({ op: 'prune', layer: this.index, c }); this.inner.prune(c); }
  grow(c: Connections) { this.log.push({ op: 'grow', layer: this.index, c }); this.inner.grow(c); }
  hasProbe() { return this.inner.hasProbe(); }
  subsetGradient(c: Connections) { const g = this.inner.subsetGradient(c); this.subsets.push(c); this.grads.push(g); return g; }
  denseGradient() { this.denseCalls++; return this.inner.denseGradient(); }
  unitSums(s?: Float32Array): UnitSums { return this.inner.unitSums(s); }
  probeRows() { return this.inner.probeRows(); }
}

function schedule(scope: 'global' | 'local', o: Partial<UpdateSchedule> = {}): UpdateSchedule {
  return { delta: 1, end: 0.9, alpha: 0.3, samplesPerClass: 10, scope, ...o };
}

function context(layers: SparseWeight[], step: number, totalSteps: number, sched: UpdateSchedule, rng: Rng, probe: () => void, sparsity = 0.75): UpdateContext {
  const momentum = () => { throw new Error('these methods read no momentum'); };
  return { step, totalSteps, stepsPerEpoch: 10, schedule: sched, layers, rng, sparsity, probe, momentum };
}

function keysOf(layers: SparseWeight[]): Set<Key> {
  const s = new Set<Key>();
  layers.forEach((l, i) => { const a = l.active(); for (let j = 0; j < a.row.length; j++) s.add(k3(i, a.row[j], a.col[j])); });
  return s;
}

function callKeys(calls: Call[], op: 'prune' | 'grow'): Key[] {
  return calls.filter((c) => c.op === op).flatMap((c) => Array.from(c.c.row, (r, j) => k3(c.layer, r, c.c.col[j])));
}

interface Entry { l: number; r: number; c: number; v: number }
const byTie = (a: Entry, b: Entry) => a.l - b.l || a.r - b.r || a.c - b.c;
function bruteSmallest(es: Entry[], k: number): Key[] {
  return [...es].sort((a, b) => a.v - b.v || byTie(a, b)).slice(0, k).map((e) => k3(e.l, e.r, e.c)).sort();
}
function bruteLargest(es: Entry[], k: number): Key[] {
  return [...es].sort((a, b) => b.v - a.v || byTie(a, b)).slice(0, k).map((e) => k3(e.l, e.r, e.c)).sort();
}

/** |w| of every active connection, per layer */
function activeEntries(layers: SparseWeight[]): Entry[][] {
  return layers.map((l, i) => {
    const a = l.active();
    const m = l.magnitudes(a);
    return Array.from(a.row, (r, j) => ({ l: i, r, c: a.col[j], v: m[j] }));
  });
}

/** groups of entries by scope: global one group, local one per layer */
const groups = <T>(perLayer: T[][], global: boolean): T[][] => (global ? [perLayer.flat()] : perLayer);

const dstMethods: { label: string; method: Method; options: Record<string, unknown> }[] = [
  { label: 'set', method: getMethod('set'), options: {} },
  { label: 'rigl', method: getMethod('rigl'), options: {} },
  { label: 'gse-uniform', method: getMethod('gse'), options: { gamma: 1, sampler: 'uniform', overlap: false } },
  { label: 'gse-grabo', method: getMethod('gse'), options: { gamma: 1, sampler: 'grabo', overlap: false } },
  { label: 'gse-graest', method: getMethod('gse'), options: { gamma: 1.5, sampler: 'graest', overlap: true } },
];

const SIZES = [24, 20, 16, 6];
const STEPS = [1, 5, 9, 20, 28, 33, 47, 50, 61, 72, 80, 88];

// ---------------------------------------------------------------- schedule

test('DST schedule: updates every delta steps after step 0 and before T_end; alpha_t is the cosine decay', () => {
  const sched = { delta: 10, end: 0.5, alpha: 0.2, samplesPerClass: 10, scope: 'global' as const };
  const at = (step: number) => dstUpdatesAt({ step, totalSteps: 100, stepsPerEpoch: 10, schedule: sched });
  assert.deepEqual([0, 1, 10, 20, 40, 49, 50, 60].map(at), [false, false, true, true, true, false, false, false]);
  for (const m of ['set', 'rigl', 'gse']) assert.equal(getMethod(m).updatesAt({ step: 30, totalSteps: 100, stepsPerEpoch: 10, schedule: sched }, {}), true);
  const alpha = (step: number) => updateFraction({ step, totalSteps: 100, stepsPerEpoch: 10, schedule: sched });
  assert.ok(Math.abs(alpha(0) - 0.2) < 1e-15);
  assert.ok(Math.abs(alpha(25) - 0.1) < 1e-15);
  assert.ok(Math.abs(alpha(10) - 0.1 * (1 + Math.cos(Math.PI / 5))) < 1e-15);
  assert.equal(alpha(50), 0);
});

test('registry: the four methods with their flags and option defaults; gse options validate in configs', () => {
  for (const name of ['set', 'rigl', 'gse', 'gradual']) {
    const m = methods[name];
    assert.equal(m.name, name);
    assert.ok(m.summary.length > 20);
    assert.equal(m.sparse, true);
    assert.equal(m.updates, true);
    for (const o of Object.values(m.options)) assert.ok(o.help.length > 10 && o.default !== undefined);
  }
  assert.deepEqual(['static', 'set', 'gse', 'rigl', 'gradual'].map((n) => methods[n].alwaysSparse), [true, true, true, false, false]);
  assert.deepEqual(['set', 'rigl', 'gse', 'gradual'].map((n) => methods[n].startsDense({})), [false, false, false, true]);
  assert.deepEqual(Object.fromEntries(Object.entries(methods.gse.options).map(([k, o]) => [k, o.default])), { gamma: 1, sampler: 'uniform', overlap: false });
  const base = { dataset: 'synthetic', model: 'mlp' };
  const sweep = sweepFromConfig({ ...base, method: { name: 'gse', sampler: 'graest', gamma: 2 } }, 'x.json', false);
  assert.deepEqual(sweep.specs[0].method, { name: 'gse', sampler: 'graest', gamma: 2, overlap: false });
  assert.throws(() => sweepFromConfig({ ...base, method: { name: 'gse', sampler: 'nope' } }, 'x.json', false), /sampler/);
  assert.throws(() => sweepFromConfig({ ...base, method: { name: 'gse', gamma: 0 } }, 'x.json', false), /gamma/);
  const grid = sweepFromConfig({ ...base, method: 'set', grid: { method: ['set', 'rigl', 'gse', 'gradual'], 'method.sampler': ['uniform', 'grabo', 'graest'] } }, 'x.json', false);
  assert.equal(grid.specs.length, 6);
});

// ---------------------------------------------------------------- invariants over many updates

for (const scope of ['global', 'local'] as const) {
  for (const { label, method, options } of dstMethods) {
    test(`${label} (${scope}): count kept, grown at 0, smallest |w| pruned, nothing grown pruned, order, scores`, () => {
      const net = makeNet(SIZES, 0.25, 11);
      const log: Call[] = [];
      const spies = net.layers.map((l, i) => new Spy(l, i, log));
      const rng = new Rng(5, label);
      const global = scope === 'global';
      const sched = schedule(scope, { alpha: 0.4 });
      let probes = 0;
      let moved = 0;
      try {
        STEPS.forEach((step, u) => {
          // train between most updates; some updates follow directly (exact-zero weights tie)
          if (u % 3 !== 2) net.train(2);
          log.length = 0;
          spies.forEach((s) => { s.subsets = []; s.grads = []; s.denseCalls = 0; });
          const before = keysOf(spies);
          const beforeCounts = spies.map((s) => s.activeCount());
          const mags = activeEntries(spies);
          const ctx = context(spies, step, 100, sched, rng, () => { probes++; net.probe(); });
          const report: UpdateReport = method.update(ctx, options);

          // 1. active count exactly kept
          const after = spies.map((s) => s.activeCount());
          if (global) assert.equal(after.reduce((a, b) => a + b), beforeCounts.reduce((a, b) => a + b));
          else assert.deepEqual(after, beforeCounts);

          // 2. what moved: exactly the prune / grow calls, disjoint, in the method's order
          const pruned = callKeys(log, 'prune').sort();
          const grown = callKeys(log, 'grow').sort();
          const afterKeys = keysOf(spies);
          assert.deepEqual(pruned, [...before].filter((x) => !afterKeys.has(x)).sort());
          assert.deepEqual(grown, [...afterKeys].filter((x) => !before.has(x)).sort());
          assert.ok(grown.every((g) => !before.has(g)), 'grown connections were inactive before the update');
          assert.ok(pruned.every((p) => before.has(p)), 'pruned connections were active before the update');
          const prunedSet = new Set(pruned);
          assert.ok(grown.every((g) => !prunedSet.has(g)), 'nothing grown is pruned (and vice versa)');
          const ops = log.map((c) => c.op);
          const firstPrune = ops.indexOf('prune');
          const firstGrow = ops.indexOf('grow');
          if (firstPrune >= 0 && firstGrow >= 0) {
            if (label.startsWith('gse')) assert.ok(ops.lastIndexOf('grow') < firstPrune, 'gse grows first');
            else assert.ok(ops.lastIndexOf('prune') < firstGrow, `${label} prunes first`);
          }
          moved += grown.length;
          assert.equal(report.grown, grown.length);
          assert.equal(report.pruned, pruned.length);
          assert.equal(report.k, grown.length);
          assert.ok(Math.abs(report.alpha! - updateFraction(ctx)) < 1e-15);

          // 3. grown weights and their momentum are exactly 0 before any optimizer step
          net.layers.forEach((layer, i) => {
            const mine = log.filter((c) => c.op === 'grow' && c.layer === i);
            const w = layer.params()[0].value.dataSync();
            const v = layer.params()[0].velocity.dataSync();
            for (const c of mine) {
              assert.ok(layer.magnitudes(c.c).every((x) => x === 0));
              for (let j = 0; j < c.c.row.length; j++) {
                const flat = c.c.col[j] * layer.rows + c.c.row[j];
                assert.equal(w[flat], 0);
                assert.equal(v[flat], 0);
              }
            }
          });

          // 4. k per group, and the pruned are exactly the k smallest |w| (ties by layer, row, col)
          const alpha = report.alpha!;
          const kWanted = groups(beforeCounts.map((n) => [n]), global).map((g) => Math.ceil(alpha * g.reduce((a, b) => a + b, 0)));
          const magGroups = groups(mags, global);
          const grownByGroup = (g: number) => grown.filter((x) => global || Number(x.split(':')[0]) === g);
          const prunedByGroup = (g: number) => pruned.filter((x) => global || Number(x.split(':')[0]) === g);
          magGroups.forEach((es, g) => {
            const k = prunedByGroup(g).length;
            assert.equal(grownByGroup(g).length, k);
            assert.deepEqual(prunedByGroup(g), bruteSmallest(es, k));
          });

          // 5. what was grown, by method
          const inactiveBefore = spies.map((s, i) => {
            const out: { r: number; c: number }[] = [];
            for (let r = 0; r < s.rows; r++) for (let c = 0; c < s.cols; c++) if (!before.has(k3(i, r, c))) out.push({ r, c });
            return out;
          });
          if (label === 'set') {
            assert.equal(probes, 0, 'set needs no probe');
            magGroups.forEach((_, g) => {
              const eligible = groups(inactiveBefore, global)[g].length;
              assert.equal(grownByGroup(g).length, Math.min(kWanted[g], eligible));
            });
          } else if (label === 'rigl') {
            const dense = spies.map((s) => s.inner.denseGradient());
            const cand = inactiveBefore.map((list, i) => list.map(({ r, c }) => ({ l: i, r, c, v: Math.abs(dense[i][r * spies[i].cols + c]) })));
            groups(cand, global).forEach((es, g) => {
              const k = Math.min(kWanted[g], es.length);
              assert.deepEqual(grownByGroup(g), bruteLargest(es, k), 'rigl grows exactly the top-k |dense gradient|');
            });
            assert.ok(report.flops >= spies.reduce((a, s) => a + 2 * s.rows * s.cols * s.probeRows(), 0));
          } else {
            // gse: S = the subsets whose gradient was computed
            const cand = spies.map((s, i) => {
              assert.equal(s.subsets.length, 1);
              const S = s.subsets[0];
              const seen = new Set<Key>();
              return Array.from(S.row, (r, j) => {
                const kk = k3(i, r, S.col[j]);
                assert.ok(!before.has(kk), 'S holds no active connection');
                assert.ok(!seen.has(kk), 'S holds no duplicate');
                seen.add(kk);
                return { l: i, r, c: S.col[j], v: Math.abs(s.grads[0][j]) };
              });
            });
            cand.forEach((es, i) => {
              const s = spies[i];
              const dense = beforeCounts[i] * 2 >= s.rows * s.cols;
              if (dense) assert.equal(es.length, inactiveBefore[i].length, 'an at most 50% sparse layer considers every inactive connection');
              else assert.ok(es.length <= Math.ceil((options.gamma as number) * beforeCounts[i]));
            });
            groups(cand, global).forEach((es, g) => {
              const k = Math.min(kWanted[g], es.length);
              assert.deepEqual(grownByGroup(g), bruteLargest(es, k), 'gse grows the top-k of S by |subset gradient|');
            });
            const P = spies[0].probeRows();
            assert.ok(report.flops >= cand.reduce((a, es) => a + 2 * P * es.length, 0));
            assert.ok(spies.every((s) => s.denseCalls === (options.overlap ? 1 : 0)), 'only the overlap diagnostic asks for the dense gradient');
            if (options.overlap) assert.ok(report.overlap! >= 0 && report.overlap! <= 1);
            else assert.equal(report.overlap, undefined);
          }
        });
        assert.ok(moved > 100, `only ${moved} connections moved`);
      } finally {
        net.dispose();
      }
    });
  }
}

// ---------------------------------------------------------------- GSE vs RigL

for (const scope of ['global', 'local'] as const) {
  test(`gse with gamma covering every inactive connection makes exactly rigl's decisions (${scope})`, () => {
    for (const sampler of ['uniform', 'grabo', 'graest']) {
      const a = makeNet(SIZES, 0.25, 3);
      const b = makeNet(SIZES, 0.25, 3);
      try {
        const sched = schedule(scope, { alpha: 0.5 });
        STEPS.forEach((step) => {
          a.train(2);
          b.train(2);
          const ra = getMethod('rigl').update(context(a.layers, step, 100, sched, new Rng(1), a.probe), {});
          const rb = getMethod('gse').update(context(b.layers, step, 100, sched, new Rng(2), b.probe), { gamma: 1e6, sampler, overlap: true });
          assert.equal(rb.overlap, 1);
          assert.equal(rb.k, ra.k);
          a.layers.forEach((l, i) => assert.deepEqual(b.layers[i].active(), l.active(), `${sampler} step ${step} layer ${l.name}`));
        });
      } finally {
        a.dispose();
        b.dispose();
      }
    }
  });
}

// ---------------------------------------------------------------- determinism

test('same seed, same decisions: every DST method twice from the same state', () => {
  for (const { label, method, options } of [...dstMethods, { label: 'gradual', method: getMethod('gradual'), options: {} }]) {
    const runs = [0, 1].map(() => {
      const net = makeNet(SIZES, label === 'gradual' ? 1 : 0.25, 8);
      const rng = new Rng(42, 'method');
      const trace: string[] = [];
      try {
        for (const step of STEPS.slice(0, 6)) {
          net.train(1);
          method.update(context(net.layers, step * 10, 1000, schedule('global', { end: 0.8 }), rng, net.probe), options);
          trace.push(JSON.stringify(net.layers.map((l) => { const a = l.active(); return [Array.from(a.row), Array.from(a.col)]; })));
        }
      } finally {
        net.dispose();
      }
      return trace;
    });
    assert.deepEqual(runs[0], runs[1], label);
  }
});

// ---------------------------------------------------------------- samplers

/** A csr-like layer: active connections in a Set, no dense gradient, probe from given arrays. */
class FakeSparse implements SparseWeight {
  readonly format = 'csr' as const;
  private readonly w = new Map<number, number>();
  constructor(readonly name: string, readonly rows: number, readonly cols: number, active: Connections, values: Float32Array | null, private probe: ProbeRecord | null) {
    for (let i = 0; i < active.row.length; i++) this.w.set(active.row[i] * cols + active.col[i], values ? values[i] : 1);
  }
  activeCount() { return this.w.size; }
  active(): Connections {
    const keys = Float64Array.from(this.w.keys()).sort();
    const row = new Int32Array(keys.length);
    const col = new Int32Array(keys.length);
    keys.forEach((k, i) => { row[i] = Math.floor(k / this.cols); col[i] = k - row[i] * this.cols; });
    return { row, col };
  }
  isActive(c: Connections) { return Uint8Array.from(c.row, (r, i) => (this.w.has(r * this.cols + c.col[i]) ? 1 : 0)); }
  magnitudes(c: Connections) { return Float32Array.from(c.row, (r, i) => Math.abs(this.w.get(r * this.cols + c.col[i]) ?? 0)); }
  prune(c: Connections) {
    c.row.forEach((r, i) => { const k = r * this.cols + c.col[i]; if (!this.w.delete(k)) throw new Error('pruning an inactive connection'); });
  }
  grow(c: Connections) {
    c.row.forEach((r, i) => { const k = r * this.cols + c.col[i]; if (this.w.has(k)) throw new Error('growing an active connection'); this.w.set(k, 0); });
  }
  hasProbe() { return this.probe !== null; }
  subsetGradient(c: Connections) { return this.probe!.subsetGradient(c); }
  denseGradient(): Float32Array { throw new Error(`${this.name}: csr layers have no dense gradient here`); }
  unitSums(signs?: Float32Array) { return this.probe!.unitSums(signs); }
  probeRows() { return this.probe!.count; }
}

const noActive = (): Connections => ({ row: new Int32Array(0), col: new Int32Array(0) });

test('grabo and graest marginals match their definitions on a hand-computed case; pairs are products', () => {
  // P = 2 probe rows, cols = 3 inputs, rows = 2 outputs
  const h = Float32Array.from([1, -2, 0, /* row 2 */ 3, 1, 0]);
  const d = Float32Array.from([0.5, -1, /* row 2 */ -0.5, 2]);
  const layer = new FakeSparse('toy', 2, 3, noActive(), null, ProbeRecord.fromBatchMajor(h, d, 2, 3, 2));
  const probs = (c: Categorical) => Array.from({ length: c.n }, (_, i) => c.prob(i));
  const close = (a: number[], b: number[]) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < 1e-12, `${a} vs ${b}`));

  const bo = marginals(layer, 'grabo', new Rng(0));
  close(probs(bo.in), [4 / 7, 3 / 7, 0]);                 // sum_i |h[i,a]| = 4, 3, 0
  close(probs(bo.out), [1 / 4, 3 / 4]);                    // sum_i |delta[i,b]| = 1, 3

  for (let seed = 0; seed < 8; seed++) {
    const signs = new Rng(seed).signs(2);
    const est = marginals(layer, 'graest', new Rng(seed));
    // |s1 h1 + s2 h2|: same signs -> (4, 1, 0) and (0, 1); opposite -> (2, 3, 0) and (1, 3)
    if (signs[0] === signs[1]) { close(probs(est.in), [0.8, 0.2, 0]); close(probs(est.out), [0, 1]); }
    else { close(probs(est.in), [0.4, 0.6, 0]); close(probs(est.out), [0.25, 0.75]); }
  }
  const uni = marginals(layer, 'uniform', new Rng(0));
  close(probs(uni.in), [1 / 3, 1 / 3, 1 / 3]);

  // draws follow the marginals, zero-weight outcomes never come up, and pairs are independent
  const rng = new Rng(9);
  const counts = [[0, 0, 0], [0, 0, 0]];
  const N = 40000;
  for (let i = 0; i < N; i++) counts[bo.out.draw(rng)][bo.in.draw(rng)]++;
  for (let b = 0; b < 2; b++) for (let a = 0; a < 3; a++) {
    const p = bo.out.prob(b) * bo.in.prob(a);
    assert.ok(Math.abs(counts[b][a] / N - p) < 0.012, `pair (${b},${a}): ${counts[b][a] / N} vs ${p}`);
  }
  assert.equal(counts[0][2] + counts[1][2], 0);
  // an all-zero marginal falls back to uniform
  assert.equal(new Categorical(4, [0, 0, 0, 0]).uniform, true);
});

test('sampleSubset drops active pairs and duplicates, and covers everything when gamma is large', () => {
  const rng = new Rng(4);
  const active = { row: Int32Array.from([0, 0, 1, 3]), col: Int32Array.from([1, 5, 2, 7]) };
  const P = 3;
  const h = Float32Array.from({ length: P * 8 }, () => rng.normal());
  const d = Float32Array.from({ length: P * 6 }, () => rng.normal());
  const layer = new FakeSparse('toy', 6, 8, active, null, ProbeRecord.fromBatchMajor(h, d, 6, 8, P));
  for (const sampler of ['uniform', 'grabo', 'graest'] as const) {
    const s = sampleSubset(layer, layer.active(), 30, sampler, new Rng(1));
    assert.equal(s.exhaustive, false);
    assert.ok(s.connections.row.length <= 30 && s.connections.row.length > 10);
    assert.ok(layer.isActive(s.connections).every((f) => f === 0));
    const keys = Array.from(s.connections.row, (r, i) => r * 8 + s.connections.col[i]);
    assert.deepEqual(keys, [...new Set(keys)].sort((a, b) => a - b), 'sorted, no duplicates');
    const all = sampleSubset(layer, layer.active(), 44, sampler, new Rng(1));
    assert.equal(all.exhaustive, true);
    assert.equal(all.connections.row.length, 44);
  }
});

test('sampleSubset draws from the sampler marginals: grabo and graest never pick silent units and favour active ones', () => {
  const rows = 200;
  const cols = 300;
  const P = 3; // odd: the graest sketch sum_i s_i of identical rows is never 0
  // output b (< 100) has |delta| = b + 1 in every probe row, outputs >= 100 are silent; inputs >= 150 are silent
  const d = new Float32Array(P * rows);
  const h = new Float32Array(P * cols);
  for (let i = 0; i < P; i++) {
    for (let b = 0; b < 100; b++) d[i * rows + b] = b + 1;
    for (let a = 0; a < 150; a++) h[i * cols + a] = 1;
  }
  const layer = new FakeSparse('toy', rows, cols, noActive(), null, ProbeRecord.fromBatchMajor(h, d, rows, cols, P));
  const meanRow = (c: Connections) => c.row.reduce((a, b) => a + b, 0) / c.row.length;
  for (const sampler of ['grabo', 'graest'] as const) {
    const s = sampleSubset(layer, layer.active(), 3000, sampler, new Rng(6)).connections;
    assert.ok(s.row.every((r) => r < 100) && s.col.every((c) => c < 150), sampler);
    // P(row = b) ∝ b + 1 for b < 100 (graest: |sum_i s_i (b+1)| = |sum_i s_i| (b+1), same shape): mean ~ 66
    const expected = (() => { let num = 0; let den = 0; for (let b = 0; b < 100; b++) { num += b * (b + 1); den += b + 1; } return num / den; })();
    assert.ok(Math.abs(meanRow(s) - expected) < 3, `${sampler}: mean row ${meanRow(s)} vs ${expected}`);
  }
  const u = sampleSubset(layer, layer.active(), 3000, 'uniform', new Rng(6)).connections;
  assert.ok(Math.abs(meanRow(u) - 99.5) < 6, `uniform: mean row ${meanRow(u)}`);
});

test('set grows uniformly: every eligible connection equally likely, per layer and over layers', () => {
  // one layer 4x5 with 6 active: 14 eligible; grow 3 -> each eligible chosen w.p. 3/14
  const active = { row: Int32Array.from([0, 0, 1, 2, 3, 3]), col: Int32Array.from([0, 4, 2, 2, 1, 3]) };
  const layer = new FakeSparse('toy', 4, 5, active, null, null);
  const rng = new Rng(17);
  const hits = new Map<number, number>();
  const T = 6000;
  for (let t = 0; t < T; t++) {
    const c = uniformInactive(layer, active, 3, rng);
    assert.equal(new Set(Array.from(c.row, (r, i) => r * 5 + c.col[i])).size, 3);
    assert.ok(layer.isActive(c).every((f) => f === 0));
    c.row.forEach((r, i) => hits.set(r * 5 + c.col[i], (hits.get(r * 5 + c.col[i]) ?? 0) + 1));
  }
  assert.equal(hits.size, 14);
  for (const n of hits.values()) assert.ok(Math.abs(n / T - 3 / 14) < 0.03, `${n / T}`);
  // a dense-enough layer takes the enumeration path and is still exact
  const dense = uniformInactive(layer, active, 14, rng);
  assert.equal(dense.row.length, 14);
  // global allocation: k picks from the union land in layer l w.p. eligible_l / total
  const alloc = [0, 0, 0];
  for (let t = 0; t < 4000; t++) allocateUniform([10, 30, 60], 5, rng).forEach((n, l) => { alloc[l] += n; });
  [0.1, 0.3, 0.6].forEach((p, l) => assert.ok(Math.abs(alloc[l] / 20000 - p) < 0.015));
  assert.deepEqual(allocateUniform([2, 0, 3], 5, rng), [2, 0, 3]);
});

test('sampling cost: a 10000x10000 csr-like layer is updated by gse (3 samplers) and set without any rows x cols allocation, not even of bits', () => {
  const rows = 10_000;
  const cols = 10_000;
  const rng = new Rng(3);
  // 0.0625% dense: 62,500 active connections, drawn without a rows*cols array
  const keys = new Set<number>();
  while (keys.size < 62_500) keys.add(rng.int(rows * cols));
  const sorted = Float64Array.from(keys).sort();
  const active = { row: Int32Array.from(sorted, (k) => Math.floor(k / cols)), col: Int32Array.from(sorted, (k) => k % cols) };
  const P = 8;
  const h = Float32Array.from({ length: P * cols }, () => Math.max(0, rng.normal()));
  const d = Float32Array.from({ length: P * rows }, () => rng.normal() * 0.01);
  const probe = ProbeRecord.fromBatchMajor(h, d, rows, cols, P);
  const values = Float32Array.from({ length: active.row.length }, () => rng.normal());

  // while the updates run, every buffer of half a rows x cols bit array or more throws: 6.25 MB
  // (what the updates need is O(active): at most ~1 MB here)
  const LIMIT_BYTES = (rows * cols) / 16;
  const names = ['Float32Array', 'Float64Array', 'Int32Array', 'Uint32Array', 'Uint8Array', 'Int8Array', 'Int16Array', 'Uint16Array', 'BigInt64Array', 'BigUint64Array'] as const;
  const g = globalThis as any;
  const originals = names.map((n) => g[n]);
  const OriginalArrayBuffer = ArrayBuffer;
  const guard = () => {
    names.forEach((n, i) => {
      const Base = originals[i];
      g[n] = class extends Base {
        constructor(...args: any[]) {
          const length = typeof args[0] === 'number' ? args[0] : args[0] && typeof args[0] === 'object' && typeof args[0].length === 'number' ? args[0].length : 0;
          if (length * Base.BYTES_PER_ELEMENT >= LIMIT_BYTES) throw new Error(`allocation of ${length * Base.BYTES_PER_ELEMENT} bytes`);
          super(...args);
        }
      };
    });
    g.ArrayBuffer = class extends OriginalArrayBuffer {
      constructor(bytes: number) {
        if (bytes >= LIMIT_BYTES) throw new Error(`allocation of ${bytes} bytes`);
        super(bytes);
      }
    };
  };
  const unguard = () => {
    names.forEach((n, i) => { g[n] = originals[i]; });
    g.ArrayBuffer = OriginalArrayBuffer;
  };
  guard();
  try {
    assert.throws(() => new Uint8Array(Math.ceil((rows * cols) / 8)), /allocation/, 'a rows x cols bit array');
    assert.throws(() => new Uint32Array(Math.ceil((rows * cols) / 32)), /allocation/, 'a rows x cols bit array in words');
    assert.throws(() => new ArrayBuffer(Math.ceil((rows * cols) / 8)), /allocation/, 'a rows x cols bit buffer');
    assert.throws(() => new Uint8Array(rows * cols).slice(), /allocation/);
  } finally {
    unguard();
  }

  const runs: [string, Record<string, unknown>][] = [
    ['gse', { sampler: 'uniform' }], ['gse', { sampler: 'grabo' }], ['gse', { sampler: 'graest', gamma: 2 }], ['set', {}],
  ];
  for (const [name, options] of runs) {
    for (const scope of ['global', 'local'] as const) {
      const layer = new FakeSparse('wide', rows, cols, active, values, probe);
      let report: UpdateReport;
      guard();
      try {
        report = getMethod(name).update(context([layer], 10, 100, schedule(scope, { alpha: 0.2 }), new Rng(1), () => {}), options);
      } finally {
        unguard();
      }
      assert.equal(layer.activeCount(), 62_500);
      assert.ok(report.k > 10_000 && report.grown === report.k, `${name} ${JSON.stringify(options)}: k ${report.k}`);
    }
  }
  // rigl needs the dense gradient: the csr-like layer refuses it
  const layer = new FakeSparse('wide', rows, cols, active, values, probe);
  assert.throws(() => getMethod('rigl').update(context([layer], 10, 100, schedule('global'), new Rng(1), () => {}), {}), /dense gradient/);
});

test('pickExtreme: smallest / largest with ties by (layer, row, col), NaN last', () => {
  const pools = [
    { cols: 10, row: Int32Array.from([0, 0, 1]), col: Int32Array.from([3, 1, 0]), value: Float32Array.from([1, 2, 1]) },
    { cols: 10, row: Int32Array.from([0, 2]), col: Int32Array.from([0, 0]), value: Float32Array.from([1, NaN]) },
  ];
  const flat = (cs: Connections[]) => cs.map((c) => Array.from(c.row, (r, i) => `${r},${c.col[i]}`));
  assert.deepEqual(flat(pickExtreme(pools, 2, false)), [['0,3', '1,0'], []]);
  assert.deepEqual(flat(pickExtreme(pools, 3, false)), [['0,3', '1,0'], ['0,0']]);
  assert.deepEqual(flat(pickExtreme(pools, 1, true)), [['0,1'], []]);
  assert.deepEqual(flat(pickExtreme(pools, 2, true)), [['0,1', '0,3'], []]);
  assert.deepEqual(flat(pickExtreme(pools, 5, true)), [['0,1', '0,3', '1,0'], ['0,0', '2,0']]);
  assert.throws(() => pickExtreme(pools, 6, true));
});

// ---------------------------------------------------------------- gradual

test('gradual: follows s_t = s (1 - (1 + cos(pi t / T_end)) / 2), never grows, hits the target exactly at T_end', () => {
  for (const scope of ['global', 'local'] as const) {
    for (const [end, totalSteps] of [[0.75, 100], [1, 90], [0.33, 61]] as const) {
      const net = makeNet([30, 20, 12, 5], 1, 2);
      const log: Call[] = [];
      const spies = net.layers.map((l, i) => new Spy(l, i, log));
      const sched = schedule(scope, { delta: 10, end });
      const sizes = spies.map((s) => s.rows * s.cols);
      const total = sizes.reduce((a, b) => a + b);
      const s = 0.9;
      const base = { totalSteps, stepsPerEpoch: 10, schedule: sched };
      const last = gradualLastStep(base as any);
      assert.equal(last, Math.min(Math.ceil(end * totalSteps), totalSteps - 1));
      let updates = 0;
      try {
        for (let step = 0; step < totalSteps; step++) {
          const sc = { step, ...base };
          if (!gradualUpdatesAt(sc)) continue;
          assert.ok(step === last || (step % 10 === 0 && step > 0 && step < last));
          updates++;
          net.train(1);
          const mags = activeEntries(spies);
          const before = spies.map((x) => x.activeCount());
          log.length = 0;
          const report = getMethod('gradual').update(context(spies, step, totalSteps, sched, new Rng(0), () => assert.fail('gradual needs no probe'), s), {});
          assert.ok(log.every((c) => c.op === 'prune'), 'never grows');
          const st = gradualSparsity(sc, s);
          const expectedSt = step >= last ? s : s * (1 - (1 + Math.cos((Math.PI * step) / (end * totalSteps))) / 2);
          assert.equal(st, expectedSt);
          const after = spies.map((x) => x.activeCount());
          if (scope === 'global') {
            assert.equal(after.reduce((a, b) => a + b), Math.round((1 - st) * total));
          } else {
            assert.deepEqual(after, sizes.map((n) => Math.round((1 - st) * n)));
          }
          const pruned = callKeys(log, 'prune').sort();
          assert.equal(report.pruned, pruned.length);
          groups(mags, scope === 'global').forEach((es, gi) => {
            const mine = pruned.filter((x) => scope === 'global' || Number(x.split(':')[0]) === gi);
            const k = scope === 'global' ? before.reduce((a, b) => a + b) - after.reduce((a, b) => a + b) : before[gi] - after[gi];
            assert.deepEqual(mine, bruteSmallest(es, k));
          });
        }
        assert.ok(updates >= 2);
        const final = spies.reduce((a, x) => a + x.activeCount(), 0);
        if (scope === 'global') {
          // exactly what a sparse initialisation at the target gets
          const init = assignActiveCounts(spies, 1 - s, 'erdos-renyi').reduce((a, b) => a + b);
          assert.equal(final, init);
        } else {
          assert.equal(final, sizes.reduce((a, n) => a + Math.round((1 - s) * n), 0));
        }
      } finally {
        net.dispose();
      }
    }
  }
});

test('selectLargest finds the q-th largest key and its tie count as a full sort does', () => {
  const rng = new Rng(7);
  for (const [size, spread] of [[1, 3], [17, 2], [1000, 5], [5000, 1 << 20], [4096, 2 ** 32 - 1]] as const) {
    const key = new Uint32Array(size);
    for (let i = 0; i < size; i++) key[i] = Math.floor(rng.float() * spread) >>> 0;
    const sorted = Array.from(key).sort((a, b) => b - a);
    for (const q of new Set([1, Math.min(2, size), Math.ceil(size / 3), size])) {
      const threshold = sorted[q - 1];
      const ties = sorted.slice(0, q).filter((v) => v === threshold).length;
      assert.deepEqual(selectLargest(key, q), { threshold, ties }, `size ${size}, spread ${spread}, q ${q}`);
    }
  }
  assert.throws(() => selectLargest(new Uint32Array(3), 4), /outside 1\.\.3/);
});

// ---------------------------------------------------------------- caps on k

test('k is capped: prune-first methods grow at most the inactive-before connections of a nearly dense net, gse at most its subset; probe FLOPs', () => {
  for (const scope of ['global', 'local'] as const) {
    // prune-first (set, rigl) on a 97% dense net at alpha 1: ceil(alpha |A|) is far more than is inactive
    for (const name of ['set', 'rigl']) {
      const net = makeNet(SIZES, 0.97, 4);
      try {
        const before = net.layers.map((l) => l.activeCount());
        const inactive = net.layers.map((l, i) => l.rows * l.cols - before[i]);
        const ctx = context(net.layers, 1, 100, schedule(scope, { alpha: 1 }), new Rng(1), net.probe);
        const want = (n: number) => Math.ceil(updateFraction(ctx) * n);
        const report = getMethod(name).update(ctx, {});
        const expected = scope === 'global'
          ? Math.min(want(before.reduce((a, b) => a + b)), inactive.reduce((a, b) => a + b))
          : before.reduce((a, n, l) => a + Math.min(want(n), inactive[l]), 0);
        assert.ok(expected < want(before.reduce((a, b) => a + b)), 'the cap binds');
        assert.equal(report.k, expected, `${name} ${scope}`);
        assert.equal(report.grown, expected);
        if (scope === 'local') assert.deepEqual(net.layers.map((l) => l.activeCount()), before);
      } finally {
        net.dispose();
      }
    }
    // grow-first (gse) with gamma 0.02: the subset holds fewer candidates than ceil(alpha |A|)
    const net = makeNet(SIZES, 0.25, 4);
    try {
      const before = net.layers.map((l) => l.activeCount());
      const spies = net.layers.map((l, i) => new Spy(l, i, []));
      const ctx = context(spies, 1, 100, schedule(scope, { alpha: 0.5 }), new Rng(1), net.probe);
      const report = getMethod('gse').update(ctx, { gamma: 0.02 });
      const subset = spies.map((s) => s.subsets[0].row.length);
      const want = (n: number) => Math.ceil(updateFraction(ctx) * n);
      const expected = scope === 'global'
        ? Math.min(want(before.reduce((a, b) => a + b)), subset.reduce((a, b) => a + b))
        : before.reduce((a, n, l) => a + Math.min(want(n), subset[l]), 0);
      assert.ok(expected < (scope === 'global' ? want(before.reduce((a, b) => a + b)) : before.reduce((a, n) => a + want(n), 0)), `the cap binds (subsets ${subset})`);
      assert.equal(report.k, expected, `gse ${scope}`);
      assert.equal(report.grown, expected);
      // the probe pass: a sparse training step over the probe rows (forward, input and weight gradient)
      assert.equal(probeFlops(spies), spies.reduce((a, s) => a + 6 * s.activeCount() * s.probeRows(), 0));
      assert.equal(probeFlops(spies), 6 * before.reduce((a, b) => a + b) * 24);
    } finally {
      net.dispose();
    }
  }
});
