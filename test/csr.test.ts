/**
 * The csr layer (models/sparse/csr.ts) as a layer: forward, input gradient, value gradient and
 * bias gradient against a float64 dense reference built from the CSR (odd sizes, empty rows,
 * batches that are not multiples of 4, on the cpu and wasm backends); prune/grow structure
 * invariants against a reference map over many random rounds; error cases leave the layer
 * unchanged; saveState/loadState round trips; probe records; no tensor leaks. Kernel
 * correctness itself is tested in kernels.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../harness/backend.js';
import { Rng } from '../core/rng.js';
import { sgdStep } from '../harness/sgd.js';
import { CsrLayer } from '../models/sparse/csr.js';
import { CsrConvLayer } from '../models/sparse/csr-conv.js';
import { buildSparseLayers } from '../models/sparse/index.js';
import { MaskedLayer } from '../models/sparse/masked.js';
import type { Connections, LayerShape } from '../models/sparse/types.js';
import { bits } from './helpers.js';

const linear = (rows: number, cols: number, name = 'fc'): LayerShape => ({ name, kind: 'linear', rows, cols, positions: 1 });

/** Random sorted connections: each row empty with probability `empty`, else about `density` of the columns. */
function randomStructure(rows: number, cols: number, density: number, empty: number, rng: Rng): Connections {
  const row: number[] = [];
  const col: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (rng.float() < empty) continue;
    for (let c = 0; c < cols; c++) if (rng.float() < density) { row.push(r); col.push(c); }
  }
  return { row: Int32Array.from(row), col: Int32Array.from(col) };
}

function makeLayer(rows: number, cols: number, density: number, empty: number, rng: Rng): { layer: CsrLayer; c: Connections; values: Float32Array; bias: Float32Array } {
  const c = randomStructure(rows, cols, density, empty, rng);
  const values = Float32Array.from(c.row, () => rng.uniform(-1, 1));
  const bias = Float32Array.from({ length: rows }, () => rng.uniform(-1, 1));
  return { layer: new CsrLayer(linear(rows, cols), { connections: c, values, bias }), c, values, bias };
}

function randomArray(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
}

/** |a - b| <= tol * (scale + |b|) elementwise */
function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, scale: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const tol = 1e-5 * (scale[i] + Math.abs(b[i])) + 1e-7;
    if (!(Math.abs(a[i] - b[i]) <= tol)) assert.fail(`${what}[${i}]: ${a[i]} vs reference ${b[i]} (tolerance ${tol})`);
  }
}

/**
 * Checks y = x·Wᵀ + b, dL/dx, dL/dvalues and dL/dbias for L = sum(y ⊙ G) against float64
 * sums over the dense W built from the CSR.
 */
function checkGradients(rows: number, cols: number, B: number, density: number, empty: number, seed: number): void {
  const rng = new Rng(seed);
  const { layer, c, values, bias } = makeLayer(rows, cols, density, empty, rng);
  try {
    const xs = randomArray(B * cols, rng);
    const gs = randomArray(B * rows, rng);
    const W = new Float64Array(rows * cols); // reference only: tiny sizes
    for (let k = 0; k < c.row.length; k++) W[c.row[k] * cols + c.col[k]] = values[k];
    const yRef = new Float64Array(B * rows), yScale = new Float64Array(B * rows);
    const dxRef = new Float64Array(B * cols), dxScale = new Float64Array(B * cols);
    for (let b = 0; b < B; b++) {
      for (let r = 0; r < rows; r++) {
        let s = bias[r], a = Math.abs(bias[r]);
        for (let q = 0; q < cols; q++) { s += xs[b * cols + q] * W[r * cols + q]; a += Math.abs(xs[b * cols + q] * W[r * cols + q]); }
        yRef[b * rows + r] = s; yScale[b * rows + r] = a;
      }
      for (let q = 0; q < cols; q++) {
        let s = 0, a = 0;
        for (let r = 0; r < rows; r++) { s += gs[b * rows + r] * W[r * cols + q]; a += Math.abs(gs[b * rows + r] * W[r * cols + q]); }
        dxRef[b * cols + q] = s; dxScale[b * cols + q] = a;
      }
    }
    const dvRef = new Float64Array(c.row.length), dvScale = new Float64Array(c.row.length);
    for (let k = 0; k < c.row.length; k++) {
      let s = 0, a = 0;
      for (let b = 0; b < B; b++) { const t = gs[b * rows + c.row[k]] * xs[b * cols + c.col[k]]; s += t; a += Math.abs(t); }
      dvRef[k] = s; dvScale[k] = a;
    }
    const dbRef = new Float64Array(rows), dbScale = new Float64Array(rows);
    for (let r = 0; r < rows; r++) for (let b = 0; b < B; b++) { dbRef[r] += gs[b * rows + r]; dbScale[r] += Math.abs(gs[b * rows + r]); }

    const what = `${rows}x${cols} B=${B} nnz=${c.row.length} (${tf.getBackend()})`;
    tf.tidy(() => {
      const x = tf.tensor2d(xs, [B, cols]);
      const G = tf.tensor2d(gs, [B, rows]);
      const y = layer.apply(x);
      assert.deepEqual(y.shape, [B, rows]);
      assertClose(y.dataSync(), yRef, yScale, `${what} forward`);
      const [weight, b] = layer.params();
      const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x), G)) as tf.Scalar, [weight.value, b.value]);
      assertClose(grads[weight.value.name].dataSync(), dvRef, dvScale, `${what} dValues`);
      assertClose(grads[b.value.name].dataSync(), dbRef, dbScale, `${what} dBias`);
      const dx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(layer.apply(xx), G)))(x);
      assertClose(dx.dataSync(), dxRef, dxScale, `${what} dX`);
    });
  } finally {
    layer.dispose();
  }
}

const SIZES: [number, number, number, number, number][] = [
  // rows, cols, B, density, empty-row fraction
  [1, 1, 1, 1, 0],
  [7, 5, 3, 0.5, 0.3],
  [37, 53, 7, 0.2, 0.25],
  [64, 48, 32, 0.1, 0.1],
  [33, 129, 130, 0.05, 0.2],
  [200, 17, 5, 0.3, 0.5],
  [9, 300, 1, 0.02, 0.4], // some rows with a single nonzero
  [12, 12, 9, 0, 0], // no connection at all
];

for (const backend of ['cpu', 'wasm'] as const) {
  test(`forward, dX, dValues and bias gradient match a float64 dense reference (${backend})`, async () => {
    await selectBackend(backend);
    SIZES.forEach(([rows, cols, B, d, e], i) => checkGradients(rows, cols, B, d, e, 100 + i));
  });
}

test('a layer gives the same output and gradients as a masked layer with the same init', async () => {
  await selectBackend('cpu');
  const rng = new Rng(5);
  const shape = linear(23, 31);
  const c = randomStructure(23, 31, 0.3, 0.2, rng);
  const init = { connections: c, values: randomArray(c.row.length, rng), bias: randomArray(23, rng) };
  const a = new CsrLayer(shape, init);
  const m = new MaskedLayer(shape, init);
  try {
    tf.tidy(() => {
      const x = tf.tensor2d(randomArray(6 * 31, rng), [6, 31]);
      const ya = a.apply(x).dataSync();
      const ym = m.apply(x).dataSync();
      assertClose(ya, ym, ya.map(() => 1), 'y');
      for (const l of [a, m]) l.setProbe(true);
      for (const l of [a, m]) tf.variableGrads(() => tf.sum(tf.square(l.apply(x))) as tf.Scalar, l.params().map((p) => p.value));
      for (const l of [a, m]) l.setProbe(false);
      assert.ok(a.hasProbe() && m.hasProbe());
      assert.equal(a.probeRows(), 6);
      const S = randomStructure(23, 31, 0.5, 0, rng);
      const ga = a.subsetGradient(S), gm = m.subsetGradient(S);
      assertClose(ga, gm, ga.map(() => 1e-1), 'subset gradient');
      const da = a.denseGradient(), dm = m.denseGradient();
      assertClose(da, dm, da.map(() => 1e-1), 'dense gradient');
      const ua = a.unitSums(), um = m.unitSums();
      assertClose(ua.in, um.in, ua.in.map(() => 1), 'unit sums in');
      assertClose(ua.out, um.out, ua.out.map(() => 1), 'unit sums out');
      a.clearProbe();
      assert.equal(a.hasProbe(), false);
      assert.throws(() => a.subsetGradient(S), /no probe/);
    });
  } finally {
    a.dispose();
    m.dispose();
  }
});

/** The reference structure: key "r,c" -> value. */
function refMap(layer: CsrLayer): Map<string, number> {
  const { row, col } = layer.active();
  const w = layer.params()[0].value.dataSync();
  return new Map(Array.from(row, (r, k) => [`${r},${col[k]}`, w[k]]));
}

function checkInvariants(layer: CsrLayer, ref: Map<string, number>, what: string): void {
  const a = layer.active();
  assert.equal(layer.activeCount(), ref.size, `${what}: count`);
  assert.equal(a.row.length, ref.size);
  for (let k = 1; k < a.row.length; k++) {
    assert.ok(a.row[k - 1] < a.row[k] || (a.row[k - 1] === a.row[k] && a.col[k - 1] < a.col[k]), `${what}: active() sorted and unique at ${k}`);
  }
  const [weight] = layer.params();
  const w = weight.value.dataSync();
  const v = weight.velocity.dataSync();
  assert.equal(w.length, ref.size, `${what}: values variable length`);
  assert.equal(v.length, ref.size, `${what}: velocity variable length`);
  for (let k = 0; k < a.row.length; k++) {
    const key = `${a.row[k]},${a.col[k]}`;
    assert.ok(ref.has(key), `${what}: ${key} active`);
    assert.equal(w[k], ref.get(key), `${what}: value of ${key}`);
  }
  assert.deepEqual(Array.from(layer.isActive(a)), Array.from(a.row, () => 1));
  assert.deepEqual(Array.from(layer.magnitudes(a)), Array.from(a.row, (r, k) => Math.abs(ref.get(`${r},${a.col[k]}`)!)));
  assert.equal(layer.paramBytes(), 8 * ref.size + 4 * (layer.rows + 1) + 4 * layer.rows);
}

test('prune and grow keep the CSR invariants over many random rounds (values kept, grown at 0 with momentum 0)', async () => {
  await selectBackend('cpu');
  const rng = new Rng(11);
  const rows = 41, cols = 29;
  const { layer } = makeLayer(rows, cols, 0.3, 0.2, rng);
  try {
    // give every connection some momentum, so that "grown with momentum 0" is visible
    const x = tf.tensor2d(randomArray(8 * cols, rng), [8, cols]);
    const train = () => tf.tidy(() => {
      const params = layer.params();
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x))) as tf.Scalar, params.map((p) => p.value));
      sgdStep(params, grads, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
    });
    const ref = refMap(layer);
    checkInvariants(layer, ref, 'init');
    const kept = layer.params();
    const tensorsBefore = tf.memory().numTensors;
    for (let round = 0; round < 40; round++) {
      train();
      const now = refMap(layer);
      const activeKeys = [...now.keys()];
      const inactive: string[] = [];
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (!now.has(`${r},${c}`)) inactive.push(`${r},${c}`);
      rng.shuffle(activeKeys);
      rng.shuffle(inactive);
      const toConn = (keys: string[]): Connections => ({
        row: Int32Array.from(keys, (k) => Number(k.split(',')[0])),
        col: Int32Array.from(keys, (k) => Number(k.split(',')[1])),
      });
      // unsorted lists on odd rounds, sorted on even ones
      const prune = activeKeys.slice(0, rng.int(Math.min(activeKeys.length, 60) + 1));
      const grow = inactive.slice(0, rng.int(Math.min(inactive.length, 60) + 1));
      if (round % 2 === 0) { prune.sort(cmpKey); grow.sort(cmpKey); }
      const oldParam = layer.params()[0].value;
      layer.prune(toConn(prune));
      for (const k of prune) now.delete(k);
      checkInvariants(layer, now, `round ${round} after prune`);
      layer.grow(toConn(grow));
      for (const k of grow) now.set(k, 0);
      checkInvariants(layer, now, `round ${round} after grow`);
      if (prune.length + grow.length > 0) assert.ok(oldParam.isDisposed, 'the old values variable is disposed');
      // a model that kept the list from params() once (vit does) sees the new variables
      assert.equal(layer.params(), kept);
      assert.ok(!kept[0].value.isDisposed && kept[0].value.size === layer.activeCount());
      assert.ok(!kept[0].velocity.isDisposed && kept[0].velocity.size === layer.activeCount());
      // grown connections have momentum exactly 0
      const a = layer.active();
      const v = layer.params()[0].velocity.dataSync();
      const grown = new Set(grow);
      for (let k = 0; k < a.row.length; k++) if (grown.has(`${a.row[k]},${a.col[k]}`)) assert.equal(v[k], 0);
      assert.deepEqual(Array.from(layer.isActive(toConn(prune))), prune.map(() => 0), 'pruned are inactive');
      assert.deepEqual(Array.from(layer.magnitudes(toConn(prune))), prune.map(() => 0), 'inactive have magnitude 0');
    }
    assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaks across prune/grow');
    // forward still matches the reference after all that
    checkAgainstDense(layer, x);
    x.dispose();
  } finally {
    layer.dispose();
  }
});

function cmpKey(a: string, b: string): number {
  const [ar, ac] = a.split(',').map(Number);
  const [br, bc] = b.split(',').map(Number);
  return ar - br || ac - bc;
}

function checkAgainstDense(layer: CsrLayer, x: tf.Tensor2D): void {
  const { row, col } = layer.active();
  const w = layer.params()[0].value.dataSync();
  const b = layer.params()[1].value.dataSync();
  const xs = x.dataSync();
  const [B, cols] = x.shape;
  const ref = new Float64Array(B * layer.rows);
  const scale = new Float64Array(B * layer.rows);
  for (let i = 0; i < B; i++) {
    for (let r = 0; r < layer.rows; r++) { ref[i * layer.rows + r] = b[r]; scale[i * layer.rows + r] = Math.abs(b[r]); }
    for (let k = 0; k < row.length; k++) {
      const t = w[k] * xs[i * cols + col[k]];
      ref[i * layer.rows + row[k]] += t;
      scale[i * layer.rows + row[k]] += Math.abs(t);
    }
  }
  tf.tidy(() => assertClose(layer.apply(x).dataSync(), ref, scale, 'forward after updates'));
}

test('prune/grow errors name the connection and leave the layer unchanged', async () => {
  await selectBackend('cpu');
  const shape = linear(4, 5);
  const c = { row: Int32Array.from([0, 0, 2, 3]), col: Int32Array.from([1, 4, 2, 0]) };
  const layer = new CsrLayer(shape, { connections: c, values: Float32Array.from([1, -2, 3, -4]), bias: new Float32Array(4) });
  try {
    const before = refMap(layer);
    const conn = (pairs: [number, number][]): Connections => ({ row: Int32Array.from(pairs, (p) => p[0]), col: Int32Array.from(pairs, (p) => p[1]) });
    assert.throws(() => layer.prune(conn([[0, 1], [1, 1]])), /\(1, 1\) is already inactive/);
    assert.throws(() => layer.prune(conn([[3, 0], [3, 1]])), /\(3, 1\) is already inactive/);
    assert.throws(() => layer.grow(conn([[1, 1], [2, 2]])), /\(2, 2\) is already active/);
    assert.throws(() => layer.grow(conn([[1, 1], [1, 1]])), /\(1, 1\)/);
    assert.throws(() => layer.prune(conn([[0, 4], [0, 4]])), /\(0, 4\)/);
    assert.throws(() => layer.grow(conn([[4, 0]])), /outside 4 x 5/);
    assert.throws(() => layer.grow(conn([[0, -1]])), /outside/);
    checkInvariants(layer, before, 'after failed calls');
    // empty lists are no-ops
    layer.prune(conn([]));
    layer.grow(conn([]));
    checkInvariants(layer, before, 'after empty calls');
    // unsorted grow into empty rows and at row ends
    layer.grow(conn([[3, 4], [1, 0], [1, 3], [0, 0]]));
    checkInvariants(layer, new Map([...before, ['3,4', 0], ['1,0', 0], ['1,3', 0], ['0,0', 0]]), 'after grow');
    // prune everything
    layer.prune(layer.active());
    checkInvariants(layer, new Map(), 'empty');
    tf.tidy(() => {
      const y = layer.apply(tf.ones([2, 5])).dataSync();
      assert.deepEqual(Array.from(y), new Array(8).fill(0), 'only the bias (0) is left');
    });
  } finally {
    layer.dispose();
  }
});

test('saveState/loadState round trip: structure, values, momentum and bias exactly', async () => {
  await selectBackend('cpu');
  const rng = new Rng(3);
  const a = makeLayer(30, 20, 0.2, 0.2, rng);
  const b = makeLayer(30, 20, 0.4, 0.1, rng);
  try {
    const x = tf.tensor2d(randomArray(5 * 20, rng), [5, 20]);
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        const params = a.layer.params();
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(a.layer.apply(x))) as tf.Scalar, params.map((p) => p.value));
        sgdStep(params, grads, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      });
    }
    const s = a.layer.saveState();
    assert.ok(s.velocity.some((v) => v !== 0), 'momentum is part of the state');
    b.layer.loadState(s);
    assert.deepEqual(b.layer.saveState(), s);
    assert.equal(b.layer.hasProbe(), false);
    const ya = tf.tidy(() => Array.from(a.layer.apply(x).dataSync()));
    const yb = tf.tidy(() => Array.from(b.layer.apply(x).dataSync()));
    assert.deepEqual(yb, ya);
    // the state is format-independent: a masked layer takes it and gives it back
    const m = new MaskedLayer(linear(30, 20), { connections: s.connections, values: s.values, bias: s.bias });
    try {
      m.loadState(s);
      assert.deepEqual(m.saveState(), s);
    } finally {
      m.dispose();
    }
    // the saved arrays are copies: later training does not change them
    const copy = structuredClone(s);
    tf.tidy(() => {
      const params = a.layer.params();
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(a.layer.apply(x))) as tf.Scalar, params.map((p) => p.value));
      sgdStep(params, grads, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
    });
    a.layer.prune({ row: s.connections.row.subarray(0, 3), col: s.connections.col.subarray(0, 3) });
    assert.deepEqual(s, copy);
    x.dispose();
  } finally {
    a.layer.dispose();
    b.layer.dispose();
  }
});

test('buildSparseLayers builds csr layers of both kinds, initialised as the masked ones', async () => {
  await selectBackend('cpu');
  const conv: LayerShape = { name: 'conv1', kind: 'conv', rows: 6, cols: 25, positions: 784, conv: { kh: 5, kw: 5, inChannels: 1, stride: 1, padding: 'same', inputSize: [28, 28] } };
  const shapes = [conv, linear(10, 12, 'a'), linear(3, 10, 'b')];
  const layers = buildSparseLayers(shapes, { density: 0.5, distribution: 'erdos-renyi', format: 'csr', rng: new Rng(1) });
  const masked = buildSparseLayers(shapes, { density: 0.5, distribution: 'erdos-renyi', format: 'masked', rng: new Rng(1) });
  try {
    assert.ok(layers[0] instanceof CsrConvLayer && layers.slice(1).every((l) => l instanceof CsrLayer) && layers.every((l) => l.format === 'csr'));
    layers.forEach((l, i) => assert.deepEqual(l.saveState(), masked[i].saveState(), 'same init in both formats'));
  } finally {
    for (const l of [...layers, ...masked]) l.dispose();
  }
});

test('training steps leak no tensors; a second forward before the backward pass is handled', async () => {
  await selectBackend('wasm');
  const rng = new Rng(9);
  const { layer, c, values } = makeLayer(19, 23, 0.3, 0.1, rng);
  try {
    const x1 = tf.tensor2d(randomArray(4 * 23, rng), [4, 23]);
    const x2 = tf.tensor2d(randomArray(6 * 23, rng), [6, 23]);
    const n0 = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      tf.tidy(() => {
        const params = layer.params();
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x1))) as tf.Scalar, params.map((p) => p.value));
        sgdStep(params, grads, { lr: 0.01, momentum: 0.9, weightDecay: 0 });
      });
    }
    assert.equal(tf.memory().numTensors, n0);
    // the layer applied twice in one tape (different batch sizes): gradients of both uses add up
    layer.loadState({ connections: c, values, velocity: new Float32Array(values.length), bias: new Float32Array(19), biasVelocity: new Float32Array(19) });
    tf.tidy(() => {
      const w = layer.params()[0].value;
      const g2 = tf.variableGrads(() => tf.add(tf.sum(layer.apply(x1)), tf.sum(layer.apply(x2))) as tf.Scalar, [w]).grads[w.name].dataSync();
      const xs1 = x1.dataSync(), xs2 = x2.dataSync();
      const ref = Array.from(c.row, (_, k) => {
        let s = 0;
        for (let b = 0; b < 4; b++) s += xs1[b * 23 + c.col[k]];
        for (let b = 0; b < 6; b++) s += xs2[b * 23 + c.col[k]];
        return s;
      });
      assertClose(g2, ref, ref.map(() => 10), 'dValues of two uses');
    });
    x1.dispose();
    x2.dispose();
  } finally {
    layer.dispose();
  }
});

test('without the input gradient (a model\'s first layer) every layer kind gives the same output and parameter gradients bit for bit, leaks nothing, and refuses a gradient for its input', async () => {
  await selectBackend('wasm');
  const rng = new Rng(31);
  const conv: LayerShape = { name: 'conv1', kind: 'conv', rows: 6, cols: 27, positions: 64, conv: { kh: 3, kw: 3, inChannels: 3, stride: 1, padding: 'same', inputSize: [8, 8] } };
  const shapes = [conv, linear(10, 12, 'fc')];
  for (const format of ['masked', 'csr'] as const) {
    const layers = buildSparseLayers(shapes, { density: 0.5, distribution: 'erdos-renyi', format, rng: new Rng(2) });
    const inputs = [tf.tensor4d(randomArray(2 * 8 * 8 * 3, rng), [2, 8, 8, 3]), tf.tensor2d(randomArray(5 * 12, rng), [5, 12])];
    try {
      layers.forEach((layer, i) => {
        const x = inputs[i];
        const vars = layer.params().map((p) => p.value);
        const run = (inputGradient: boolean): Uint32Array[] => {
          let out: Uint32Array[] = [];
          tf.tidy(() => {
            const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x, { inputGradient }))) as tf.Scalar, vars);
            out = [value, ...vars.map((v) => grads[v.name])].map((t) => bits(t.dataSync()));
          });
          return out;
        };
        const want = run(true);
        const n0 = tf.memory().numTensors;
        const got = run(false);
        assert.equal(tf.memory().numTensors, n0, `${format} ${layer.name}: no tensor left behind`);
        assert.ok(want[1].some((v) => v !== 0), `${format} ${layer.name}: a weight gradient`);
        got.forEach((g, k) => assert.deepEqual(g, want[k], `${format} ${layer.name}: output ${k}`));
        assert.throws(() => tf.tidy(() => tf.grad((xi: tf.Tensor) => tf.sum(layer.apply(xi, { inputGradient: false })) as tf.Scalar)(x)), /not a function of x|gradient/i, `${format} ${layer.name}`);
      });
    } finally {
      for (const l of layers) l.dispose();
      inputs.forEach((t) => t.dispose());
    }
  }
});
