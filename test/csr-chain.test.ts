/**
 * The csr chain (models/sparse/csr-chain.ts: an MLP of csr layers as one op, activations kept
 * feature-major in the kernels' layout) against the per-layer path it replaces (CsrLayer.apply then
 * tf.relu), bit for bit: logits, every gradient and the probe's subset gradients and unit sums,
 * with activations in the kernels' memory and with every activation held outside it (the path of
 * layers too wide for one 32-bit WebAssembly memory), on layers with empty rows and untouched
 * columns. The new elementwise kernels (bias + ReLU, the ReLU's gradient, float64 row sums) are
 * checked against float64 references on fresh random inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../harness/backend.js';
import { Rng } from '../core/rng.js';
import { CsrLayer, setResidentLimit } from '../models/sparse/csr.js';
import { CsrChain } from '../models/sparse/csr-chain.js';
import * as K from '../models/sparse/kernels/index.js';
import type { Connections } from '../models/sparse/types.js';
import { bits } from './helpers.js';

function randomLayer(name: string, rows: number, cols: number, density: number, rng: Rng): CsrLayer {
  const row: number[] = [];
  const col: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (rng.float() < 0.2) continue; // empty rows
    for (let c = 0; c < cols; c++) if (c % 5 !== 3 && rng.float() < density) { row.push(r); col.push(c); } // untouched columns
  }
  const connections = { row: Int32Array.from(row), col: Int32Array.from(col) };
  const values = Float32Array.from(row, () => rng.uniform(-1, 1));
  const bias = Float32Array.from({ length: rows }, (_, r) => (r % 7 === 0 ? 0 : rng.uniform(-0.5, 0.5)));
  return new CsrLayer({ name, kind: 'linear', rows, cols, positions: 1 }, { connections, values, bias });
}

/** logits, gradients (x, then values and bias per layer), and per layer a subset gradient and unit sums */
function run(layers: CsrLayer[], x: tf.Tensor2D, labels: tf.Tensor, forward: (x: tf.Tensor) => tf.Tensor, probe: Connections[]): Float32Array[] {
  const out: Float32Array[] = [];
  layers.forEach((l) => l.setProbe(true));
  tf.tidy(() => {
    const vars = layers.flatMap((l) => [l.variables().values, l.variables().bias]);
    const f = (xi: tf.Tensor, ...ws: tf.Tensor[]) => {
      void ws;
      const logits = forward(xi);
      out.push(Float32Array.from(logits.dataSync()));
      return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    };
    const grads = tf.grads(f)([x, ...vars]);
    for (const g of grads) out.push(Float32Array.from(g.dataSync()));
  });
  layers.forEach((l, i) => {
    l.setProbe(false);
    out.push(l.subsetGradient(probe[i]));
    const s = l.unitSums();
    out.push(s.in, s.out);
  });
  return out;
}

for (const [density, sizes] of [[0.15, [37, 61, 130, 10]], [0.01, [37, 61, 400, 10]]] as const) test(`an MLP of csr layers (density ${density}) as one chain op gives the per-layer path's numbers bit for bit, resident and outside the kernels' memory`, async () => {
  await selectBackend('wasm');
  const rng = new Rng(16);
  const layers = sizes.slice(1).map((rows, i) => randomLayer(`fc${i + 1}`, rows, sizes[i], density, rng));
  const B = 20;
  const x = tf.tensor2d(Float32Array.from({ length: B * sizes[0] }, () => rng.uniform(-1, 1)), [B, sizes[0]]);
  const labels = tf.oneHot(tf.tensor1d(Int32Array.from({ length: B }, () => rng.int(10)), 'int32'), 10);
  const probe = layers.map((l) => {
    const row = Int32Array.from({ length: 50 }, () => rng.int(l.rows));
    return { row, col: Int32Array.from({ length: 50 }, () => rng.int(l.cols)) };
  });
  const perLayer = (h: tf.Tensor) => {
    layers.forEach((l, i) => { h = l.apply(h); if (i < layers.length - 1) h = tf.relu(h); });
    return h;
  };
  const reference = run(layers, x, labels, perLayer, probe);
  const chain = new CsrChain(layers);
  const resident = run(layers, x, labels, (h) => chain.apply(h), probe);
  const old = setResidentLimit(0);
  const outside = new CsrChain(layers);
  let external: Float32Array[];
  try {
    external = run(layers, x, labels, (h) => outside.apply(h), probe);
  } finally {
    setResidentLimit(old);
  }
  assert.equal(reference.length, 1 + 1 + 6 + 9);
  assert.ok(reference[0].some((v) => v !== 0) && reference[4].some((v) => v !== 0), 'logits and a middle gradient are not all zero');
  reference.forEach((r, i) => {
    assert.deepEqual(bits(resident[i]), bits(r), `resident: output ${i}`);
    assert.deepEqual(bits(external[i]), bits(r), `outside: output ${i}`);
  });
  chain.dispose();
  outside.dispose();
  layers.forEach((l) => l.dispose());
  x.dispose();
  labels.dispose();
});

test("a chain without the input gradient (an MLP's data input) gives the same logits and parameter gradients bit for bit, and refuses a gradient for its input", async () => {
  await selectBackend('wasm');
  const rng = new Rng(23);
  const sizes = [37, 61, 130, 10];
  const layers = sizes.slice(1).map((rows, i) => randomLayer(`fc${i + 1}`, rows, sizes[i], 0.15, rng));
  const B = 20;
  const x = tf.tensor2d(Float32Array.from({ length: B * sizes[0] }, () => rng.uniform(-1, 1)), [B, sizes[0]]);
  const labels = tf.oneHot(tf.tensor1d(Int32Array.from({ length: B }, () => rng.int(10)), 'int32'), 10);
  const vars = layers.flatMap((l) => [l.variables().values, l.variables().bias]);
  const chain = new CsrChain(layers);
  const paramGrads = (inputGradient: boolean) => tf.tidy(() => {
    const f = (...ws: tf.Tensor[]) => { void ws; return tf.losses.softmaxCrossEntropy(labels, chain.apply(x, { inputGradient })) as tf.Scalar; };
    return tf.grads(f)(vars).map((g) => Float32Array.from(g.dataSync()));
  });
  try {
    const want = paramGrads(true);
    const got = paramGrads(false);
    assert.equal(got.length, 2 * layers.length);
    assert.ok(want[0].some((v) => v !== 0), 'the first layer gets a gradient');
    got.forEach((g, i) => assert.deepEqual(bits(g), bits(want[i]), `gradient ${i}`));
    const logits = (inputGradient: boolean) => tf.tidy(() => chain.apply(x, { inputGradient }).dataSync());
    assert.deepEqual(bits(logits(false)), bits(logits(true)), 'logits');
    assert.throws(() => tf.tidy(() => tf.grad((xi: tf.Tensor) => tf.sum(chain.apply(xi, { inputGradient: false })) as tf.Scalar)(x)), /not a function of x|gradient/i);
  } finally {
    chain.dispose();
    layers.forEach((l) => l.dispose());
    x.dispose();
    labels.dispose();
  }
});

test('bias + ReLU, the ReLU gradient and float64 row sums match float64 references on random inputs', async () => {
  const rng = new Rng(41);
  for (const [rows, B] of [[7, 13], [33, 128], [300, 64]]) {
    const n = rows * B;
    const y = K.allocFloat32(n);
    const g = K.allocFloat32(n);
    try {
      const y0 = Float32Array.from({ length: n }, () => (rng.float() < 0.1 ? -0 : rng.uniform(-2, 2)));
      const bias = Float32Array.from({ length: rows }, (_, r) => (r % 3 === 0 ? 0 : rng.uniform(-1, 1)));
      for (const relu of [false, true]) {
        y.set(y0);
        K.biasRelu(y, bias, rows, B, relu);
        for (let i = 0; i < n; i++) {
          const b = bias[Math.floor(i / B)];
          const t = b === 0 ? y0[i] : Math.fround(y0[i] + b);
          const want = relu ? (t > 0 ? t : 0) : t;
          assert.ok(Object.is(y[i], want), `biasRelu(relu=${relu}) at ${i}: ${y[i]} vs ${want}`);
        }
      }
      const g0 = Float32Array.from({ length: n }, () => rng.uniform(-2, 2));
      g.set(g0);
      K.reluGrad(g, y, n); // y holds relu(y0 + bias): the mask of a ReLU output
      for (let i = 0; i < n; i++) assert.ok(Object.is(g[i], y[i] > 0 ? g0[i] : g0[i] * 0), `reluGrad at ${i}`);
      const sums = K.rowSums64(g, rows, B);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let b = 0; b < B; b++) s += g[r * B + b];
        assert.ok(Object.is(sums[r], Math.fround(s)), `rowSums64 row ${r}`);
      }
    } finally {
      K.release(g);
      K.release(y);
    }
  }
});
