/**
 * Reported cost numbers against values computed by hand: training FLOPs per step (forward
 * 2 x active x positions per sample, backward twice that) and parameter bytes, for every layer
 * kind in every format that supports it, and train_flops, dense_train_flops and param_bytes of
 * whole short runs. A new format or layer kind is one more entry in LAYERS.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend } from '../harness/backend.js';
import { stepFlops } from '../harness/meters.js';
import { trainRun } from '../harness/train.js';
import { formats } from '../models/sparse/index.js';
import type { LayerShape, SparseFormat } from '../models/sparse/types.js';
import { specOf } from './helpers.js';

before(async () => { await selectBackend('wasm'); });

const linear: LayerShape = { name: 'fc', kind: 'linear', rows: 3, cols: 5, positions: 1 };
/** 4 output channels, 2 input channels, 3x3 kernel over a 5x5 input, 'same': 25 output positions */
const conv: LayerShape = {
  name: 'conv', kind: 'conv', rows: 4, cols: 18, positions: 25,
  conv: { kh: 3, kw: 3, inChannels: 2, stride: 1, padding: 'same', inputSize: [5, 5] },
};

/** The first `count` connections in row-major order. */
function firstConnections(shape: LayerShape, count: number) {
  const row = Int32Array.from({ length: count }, (_, k) => Math.floor(k / shape.cols));
  const col = Int32Array.from({ length: count }, (_, k) => k % shape.cols);
  return { row, col };
}

interface LayerCase {
  format: SparseFormat;
  shape: LayerShape;
  active: number;
  /** training FLOPs of one step over a batch of 4 with the active connections, and with all */
  flops: number;
  denseFlops: number;
  paramBytes: number;
}

const LAYERS: LayerCase[] = [
  // masked: 4 bytes per weight (rows x cols), 1 mask bit per weight, 4 per bias
  { format: 'masked', shape: linear, active: 7, flops: 3 * 2 * 7 * 1 * 4, denseFlops: 3 * 2 * 15 * 1 * 4, paramBytes: 4 * 15 + 2 + 4 * 3 },
  { format: 'masked', shape: conv, active: 20, flops: 3 * 2 * 20 * 25 * 4, denseFlops: 3 * 2 * 72 * 25 * 4, paramBytes: 4 * 72 + 9 + 4 * 4 },
  // csr: a value and a column index per active connection, rows + 1 row offsets, the bias
  { format: 'csr', shape: linear, active: 7, flops: 3 * 2 * 7 * 1 * 4, denseFlops: 3 * 2 * 15 * 1 * 4, paramBytes: 4 * 7 + 4 * 7 + 4 * 4 + 4 * 3 },
  { format: 'csr', shape: conv, active: 20, flops: 3 * 2 * 20 * 25 * 4, denseFlops: 3 * 2 * 72 * 25 * 4, paramBytes: 4 * 20 + 4 * 20 + 4 * 5 + 4 * 4 },
];

for (const c of LAYERS) {
  test(`${c.format} ${c.shape.kind} layer: step FLOPs and parameter bytes as computed by hand`, () => {
    const connections = firstConnections(c.shape, c.active);
    const layer = formats[c.format](c.shape, { connections, values: new Float32Array(c.active).fill(0.5), bias: new Float32Array(c.shape.rows) });
    try {
      assert.equal(layer.activeCount(), c.active);
      assert.equal(stepFlops([layer], 4), c.flops);
      assert.equal(stepFlops([layer], 4, true), c.denseFlops);
      assert.equal(layer.paramBytes(), c.paramBytes);
    } finally {
      layer.dispose();
    }
  });
}

test('a static mlp run reports train_flops, dense_train_flops and param_bytes as computed by hand (masked and csr)', async () => {
  for (const format of ['masked', 'csr'] as const) {
    const s = await trainRun(specOf({
      seed: 1,
      dataset: { name: 'synthetic', features: 6, classes: 3, trainSamples: 30, testSamples: 9, seed: 2 },
      model: { name: 'mlp', hidden: [8] },
      method: 'static',
      sparsity: { target: 0.5, distribution: 'uniform', format },
      training: { epochs: 2, batchSize: 10 },
    }), {});
    // layers 8 x 6 and 3 x 8 at density 0.5: 24 and 12 active; 2 epochs of 3 batches of 10
    assert.deepEqual(s.layers.map((l) => l.active), [24, 12]);
    assert.equal(s.steps, 6);
    assert.equal(s.train_flops, 6 * 10 * 3 * 2 * (24 + 12), format);
    assert.equal(s.dense_train_flops, 6 * 10 * 3 * 2 * (48 + 24), format);
    const bytes = format === 'masked'
      ? (4 * 48 + 6 + 4 * 8) + (4 * 24 + 3 + 4 * 3)
      : (8 * 24 + 4 * 9 + 4 * 8) + (8 * 12 + 4 * 4 + 4 * 3);
    assert.equal(s.param_bytes, bytes, format);
  }
});

test('a static lenet5 run (conv and linear layers, masked and csr) reports train_flops and param_bytes as computed by hand', async () => {
  for (const format of ['masked', 'csr'] as const) {
    const s = await trainRun(specOf({
      seed: 1,
      dataset: { name: 'synthetic', shape: '12x12x1', classes: 3, trainSamples: 24, testSamples: 6, seed: 2 },
      model: { name: 'lenet5', width: 0.5 },
      method: 'static',
      sparsity: { target: 0.5, distribution: 'uniform', format },
      training: { epochs: 1, batchSize: 8 },
    }), {});
    // conv1 3 x 25 over 12x12 positions ('same'), pool to 6x6; conv2 8 x 75 over 2x2 ('valid'), pool
    // to 1x1; fc1 60 x 8, fc2 42 x 60, fc3 3 x 42. Half of 3801 is 1900.5, rounded to 1901: conv1
    // (37.5) gets the odd one.
    const sizes = [75, 600, 480, 2520, 126];
    const positions = [144, 4, 1, 1, 1];
    const active = [38, 300, 240, 1260, 63];
    assert.deepEqual(s.layers.map((l) => l.rows * l.cols), sizes);
    assert.deepEqual(s.layers.map((l) => l.active), active);
    assert.equal(s.steps, 3);
    const perSample = (counts: number[]) => 3 * 2 * counts.reduce((a, n, l) => a + n * positions[l], 0);
    assert.equal(s.train_flops, 24 * perSample(active));
    assert.equal(s.train_flops, 24 * 3 * 2 * (38 * 144 + 300 * 4 + 240 + 1260 + 63));
    assert.equal(s.dense_train_flops, 24 * perSample(sizes));
    const rows = [3, 8, 60, 42, 3];
    const bytes = format === 'masked'
      ? sizes.reduce((a, n, l) => a + 4 * n + Math.ceil(n / 8) + 4 * rows[l], 0)
      : active.reduce((a, n, l) => a + 8 * n + 4 * (rows[l] + 1) + 4 * rows[l], 0);
    assert.equal(s.param_bytes, bytes, format);
  }
});
