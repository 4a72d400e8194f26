/**
 * The csr conv layer (models/sparse/csr-conv.ts): forward, input gradient, value gradient and bias
 * gradient against a float64 direct convolution built from the connections, for the geometries the
 * models use and odd ones (stride 1 'same', stride 2 'valid' on a padded input, 1x1 stride 2,
 * 'same' with stride 2, non-square kernels, 3 channels, empty rows, odd batch and image sizes),
 * on the wasm and cpu backends; the masked format must agree; the probe record's subset gradient,
 * dense gradient and unit sums against the same float64 reference; structure changes keep working.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../harness/backend.js';
import { Rng } from '../core/rng.js';
import { CsrConvLayer } from '../models/sparse/csr-conv.js';
import { MaskedLayer } from '../models/sparse/masked.js';
import type { Connections, LayerShape, SparseLayer } from '../models/sparse/types.js';

interface Case { n: number; h: number; w: number; c: number; o: number; kh: number; kw: number; stride: number; padding: 'same' | 'valid' | number; density: number }

function shapeOf(k: Case, ho: number, wo: number): LayerShape {
  return { name: 'conv', kind: 'conv', rows: k.o, cols: k.kh * k.kw * k.c, positions: ho * wo, conv: { kh: k.kh, kw: k.kw, inChannels: k.c, stride: k.stride, padding: k.padding, inputSize: [k.h, k.w] } };
}

function outSize(k: Case): { ho: number; wo: number; top: number; left: number } {
  if (k.padding === 'same') {
    const ho = Math.ceil(k.h / k.stride), wo = Math.ceil(k.w / k.stride);
    return { ho, wo, top: Math.floor(Math.max(0, (ho - 1) * k.stride + k.kh - k.h) / 2), left: Math.floor(Math.max(0, (wo - 1) * k.stride + k.kw - k.w) / 2) };
  }
  const p = k.padding === 'valid' ? 0 : k.padding;
  return { ho: Math.floor((k.h + 2 * p - k.kh) / k.stride) + 1, wo: Math.floor((k.w + 2 * p - k.kw) / k.stride) + 1, top: p, left: p };
}

function randomConnections(rows: number, cols: number, density: number, rng: Rng): Connections {
  const row: number[] = [], col: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (r === 1) continue; // an empty row
    for (let q = 0; q < cols; q++) if (rng.float() < density) { row.push(r); col.push(q); }
  }
  return { row: Int32Array.from(row), col: Int32Array.from(col) };
}

/** float64 reference of y, dx, dW (dense rows x cols) and db for L = sum(y ⊙ G) */
function reference(k: Case, x: Float32Array, W: Float64Array, bias: Float32Array, G: Float32Array) {
  const { ho, wo, top, left } = outSize(k);
  const cols = k.kh * k.kw * k.c;
  const y = new Float64Array(k.n * ho * wo * k.o);
  const dx = new Float64Array(x.length);
  const dW = new Float64Array(k.o * cols);
  const db = new Float64Array(k.o);
  for (let b = 0; b < k.n; b++) for (let oy = 0; oy < ho; oy++) for (let ox = 0; ox < wo; ox++) {
    const p = ((b * ho + oy) * wo + ox) * k.o;
    for (let r = 0; r < k.o; r++) {
      let s = bias[r];
      const g = G[p + r];
      db[r] += g;
      for (let ky = 0; ky < k.kh; ky++) for (let kx = 0; kx < k.kw; kx++) {
        const iy = oy * k.stride + ky - top, ix = ox * k.stride + kx - left;
        if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
        for (let ch = 0; ch < k.c; ch++) {
          const j = (ky * k.kw + kx) * k.c + ch;
          const xi = ((b * k.h + iy) * k.w + ix) * k.c + ch;
          s += W[r * cols + j] * x[xi];
          dx[xi] += W[r * cols + j] * g;
          dW[r * cols + j] += x[xi] * g;
        }
      }
      y[p + r] = s;
    }
  }
  return { y, dx, dW, db, ho, wo };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 2e-4): void {
  assert.equal(a.length, b.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= tol * (1 + scale))) assert.fail(`${what}[${i}]: ${a[i]} vs reference ${b[i]}`);
  }
}

function run(layer: SparseLayer, k: Case, x: Float32Array, G: Float32Array) {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, [k.n, k.h, k.w, k.c]);
    const params = layer.params();
    const f = () => tf.sum(tf.mul(layer.apply(xt), tf.tensor(G, undefined, 'float32').reshape(layer.apply(xt).shape))) as tf.Scalar;
    const yv = layer.apply(xt).dataSync().slice();
    const { grads } = tf.variableGrads(f, params.map((p) => p.value));
    const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(layer.apply(xi), tf.tensor(G, layer.apply(xi).shape))))(xt).dataSync().slice();
    return { y: yv, dx, dv: grads[params[0].value.name].dataSync().slice(), db: grads[params[1].value.name].dataSync().slice() };
  });
}

const cases: Case[] = [
  { n: 2, h: 8, w: 8, c: 16, o: 8, kh: 3, kw: 3, stride: 1, padding: 'same', density: 0.3 },
  { n: 3, h: 7, w: 5, c: 3, o: 5, kh: 3, kw: 3, stride: 1, padding: 'same', density: 0.5 },
  { n: 2, h: 10, w: 10, c: 4, o: 8, kh: 3, kw: 3, stride: 2, padding: 'valid', density: 0.4 },
  { n: 2, h: 8, w: 8, c: 8, o: 16, kh: 1, kw: 1, stride: 2, padding: 'valid', density: 0.6 },
  { n: 1, h: 9, w: 7, c: 5, o: 6, kh: 3, kw: 2, stride: 2, padding: 'same', density: 0.5 },
  { n: 2, h: 6, w: 6, c: 8, o: 4, kh: 5, kw: 5, stride: 1, padding: 'valid', density: 0.2 },
  { n: 5, h: 4, w: 4, c: 12, o: 7, kh: 3, kw: 3, stride: 1, padding: 'same', density: 1 },
  // maps of 1x1 and 2x2 (a VGG-16 on small images)
  { n: 3, h: 1, w: 1, c: 8, o: 8, kh: 3, kw: 3, stride: 1, padding: 'same', density: 0.5 },
  { n: 3, h: 2, w: 2, c: 8, o: 4, kh: 3, kw: 3, stride: 1, padding: 'same', density: 0.5 },
  // several position blocks of the kernels and work split over two threads
  { n: 4, h: 32, w: 32, c: 16, o: 16, kh: 3, kw: 3, stride: 1, padding: 'same', density: 0.3 },
  // batch and channels in fours (the packing's SIMD path) on stride phases and a 2x2 map
  { n: 8, h: 9, w: 7, c: 4, o: 8, kh: 3, kw: 3, stride: 2, padding: 'same', density: 0.5 },
  { n: 8, h: 2, w: 2, c: 8, o: 8, kh: 3, kw: 3, stride: 1, padding: 'same', density: 0.5 },
  // explicit padding on every side (PyTorch's padding=p; ResNet-56's stride-2 convs): stride 2, and 2 on stride 1
  { n: 4, h: 8, w: 8, c: 4, o: 8, kh: 3, kw: 3, stride: 2, padding: 1, density: 0.6 },
  { n: 2, h: 5, w: 6, c: 3, o: 4, kh: 3, kw: 3, stride: 1, padding: 2, density: 0.5 },
];

for (const backend of ['wasm', 'cpu']) {
  test(`csr conv on ${backend}: forward and every gradient match a float64 direct convolution, and the masked format`, async () => {
    await selectBackend(backend as 'wasm' | 'cpu');
    const rng = new Rng(7);
    for (const k of cases) {
      const { ho, wo } = outSize(k);
      const shape = shapeOf(k, ho, wo);
      const conn = randomConnections(k.o, shape.cols, k.density, rng);
      const values = Float32Array.from(conn.row, () => rng.uniform(-1, 1));
      const bias = Float32Array.from({ length: k.o }, () => rng.uniform(-1, 1));
      const W = new Float64Array(k.o * shape.cols);
      for (let i = 0; i < conn.row.length; i++) W[conn.row[i] * shape.cols + conn.col[i]] = values[i];
      const x = Float32Array.from({ length: k.n * k.h * k.w * k.c }, () => rng.uniform(-1, 1));
      const G = Float32Array.from({ length: k.n * ho * wo * k.o }, () => rng.uniform(-1, 1));
      const ref = reference(k, x, W, bias, G);
      const what = `${backend} ${JSON.stringify(k)}`;
      for (const layer of [new CsrConvLayer(shape, { connections: conn, values, bias }), new MaskedLayer(shape, { connections: conn, values, bias })]) {
        try {
          const got = run(layer, k, x, G);
          close(got.y, ref.y, `${what} ${layer.format} y`);
          close(got.dx, ref.dx, `${what} ${layer.format} dx`);
          const act = layer.active();
          const dvRef = Float64Array.from(act.row, (r, i) => ref.dW[r * shape.cols + act.col[i]]);
          if (layer.format === 'csr') close(got.dv, dvRef, `${what} csr dvalues`);
          else close(Float64Array.from(act.row, (r, i) => got.dv[act.col[i] * k.o + r]), dvRef, `${what} masked dW`);
          close(got.db, ref.db, `${what} ${layer.format} dbias`);
        } finally {
          layer.dispose();
        }
      }
    }
  });
}

test('csr conv probe: subset gradient, dense gradient and unit sums match float64 and are bit-equal to the masked format', async () => {
  await selectBackend('wasm');
  const rng = new Rng(11);
  for (const k of [cases[0], cases[2], cases[4]]) {
    const { ho, wo } = outSize(k);
    const shape = shapeOf(k, ho, wo);
    const conn = randomConnections(k.o, shape.cols, k.density, rng);
    const values = Float32Array.from(conn.row, () => rng.uniform(-1, 1));
    const bias = new Float32Array(k.o);
    const W = new Float64Array(k.o * shape.cols);
    for (let i = 0; i < conn.row.length; i++) W[conn.row[i] * shape.cols + conn.col[i]] = values[i];
    const x = Float32Array.from({ length: k.n * k.h * k.w * k.c }, () => rng.uniform(-1, 1));
    const G = Float32Array.from({ length: k.n * ho * wo * k.o }, () => rng.uniform(-1, 1));
    const ref = reference(k, x, W, bias, G);
    const layers = [new CsrConvLayer(shape, { connections: conn, values, bias }), new MaskedLayer(shape, { connections: conn, values, bias })];
    try {
      const answers = layers.map((layer) => {
        layer.setProbe(true);
        run(layer, k, x, G);
        layer.setProbe(false);
        assert.equal(layer.probeRows(), k.n * ho * wo);
        const all: Connections = { row: new Int32Array(k.o * shape.cols), col: new Int32Array(k.o * shape.cols) };
        for (let r = 0, i = 0; r < k.o; r++) for (let q = 0; q < shape.cols; q++, i++) { all.row[i] = r; all.col[i] = q; }
        const signs = Float32Array.from({ length: k.n * ho * wo }, (_, i) => (i % 3 === 0 ? -1 : 1));
        return { dense: layer.denseGradient(), subset: layer.subsetGradient({ row: all.row.slice().reverse(), col: all.col.slice().reverse() }), sums: layer.unitSums(), signed: layer.unitSums(signs), signs };
      });
      const [csr, masked] = answers;
      close(csr.dense, ref.dW, `${JSON.stringify(k)} dense gradient`);
      assert.deepEqual(csr.subset, csr.dense.slice().reverse(), 'subset gradient is bit-equal to the dense one');
      assert.deepEqual(csr.dense, masked.dense, 'masked and csr probes agree bit for bit');
      assert.deepEqual(csr.sums, masked.sums);
      assert.deepEqual(csr.signed, masked.signed);
      // unit sums against im2col rows: |patch features| and |delta|
      const { top, left } = outSize(k);
      const inRef = new Float64Array(shape.cols), inSigned = new Float64Array(shape.cols), outRef = new Float64Array(k.o);
      let i = 0;
      for (let b = 0; b < k.n; b++) for (let oy = 0; oy < ho; oy++) for (let ox = 0; ox < wo; ox++, i++) {
        for (let ky = 0; ky < k.kh; ky++) for (let kx = 0; kx < k.kw; kx++) {
          const iy = oy * k.stride + ky - top, ix = ox * k.stride + kx - left;
          if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
          for (let ch = 0; ch < k.c; ch++) {
            const v = x[((b * k.h + iy) * k.w + ix) * k.c + ch];
            const j = (ky * k.kw + kx) * k.c + ch;
            inRef[j] += Math.abs(v);
            inSigned[j] += csr.signs[i] * v;
          }
        }
        for (let r = 0; r < k.o; r++) outRef[r] += Math.abs(G[i * k.o + r]);
      }
      close(csr.sums.in, inRef, 'GraBo in sums');
      close(csr.sums.out, outRef, 'GraBo out sums');
      close(csr.signed.in, inSigned.map(Math.abs), 'GraEst in sums');
    } finally {
      layers.forEach((l) => l.dispose());
    }
  }
});

test('csr conv after prune and grow: the forward pass follows the new structure, grown weights start at 0', async () => {
  await selectBackend('wasm');
  const rng = new Rng(5);
  const k = cases[0];
  const { ho, wo } = outSize(k);
  const shape = shapeOf(k, ho, wo);
  const conn = randomConnections(k.o, shape.cols, 0.3, rng);
  const values = Float32Array.from(conn.row, () => rng.uniform(-1, 1));
  const layer = new CsrConvLayer(shape, { connections: conn, values, bias: new Float32Array(k.o) });
  const masked = new MaskedLayer(shape, { connections: conn, values, bias: new Float32Array(k.o) });
  try {
    const x = Float32Array.from({ length: k.n * k.h * k.w * k.c }, () => rng.uniform(-1, 1));
    const G = Float32Array.from({ length: k.n * ho * wo * k.o }, () => rng.uniform(-1, 1));
    run(layer, k, x, G);
    const act = layer.active();
    const prune = { row: act.row.slice(0, 10), col: act.col.slice(0, 10) };
    const grow: Connections = { row: new Int32Array([0, 1, 1]), col: new Int32Array([0, 5, 7]) };
    const fresh = layer.isActive(grow);
    const g2 = { row: grow.row.filter((_, i) => !fresh[i]), col: grow.col.filter((_, i) => !fresh[i]) };
    for (const l of [layer, masked]) { l.prune(prune); l.grow(g2); }
    assert.deepEqual(layer.active(), masked.active());
    assert.deepEqual(Array.from(layer.magnitudes(g2)), new Array(g2.row.length).fill(0));
    const a = run(layer, k, x, G);
    const b = run(masked, k, x, G);
    close(a.y, b.y, 'y after an update');
    close(a.dx, b.dx, 'dx after an update');
  } finally {
    layer.dispose();
    masked.dispose();
  }
});
