/**
 * The paper's models (resnet56, vgg16, vit), their building blocks (batch norm, layer norm, GELU,
 * attention), the conv path of the masked format, and the paper configs.
 *
 * Reference parameter counts: the GSE authors' own PyTorch definitions (models/resnet_cifar.py
 * resnet56, models/vgg_cifar.py vgg16_bn_small, models/simple_vit.py SimpleViT with the arguments
 * of their "simple-vit-tiny"), counted with sum(p.numel() for p in model.parameters()) under
 * PyTorch 1.13; ResNet-56's 0.85M is also the published number (He et al. 2016, Table 6).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../harness/backend.js';
import { loadSweep } from '../harness/config.js';
import { writeCifarFiles } from '../harness/data/cifar.js';
import { Rng } from '../core/rng.js';
import { sgdStep } from '../harness/sgd.js';
import { decodeCheckpoint, encodeCheckpoint } from '../harness/checkpoint.js';
import { crossEntropy, type EpochMetrics, type TrainState } from '../harness/run-context.js';
import { RunInterrupted, trainRun } from '../harness/train.js';
import { specOf } from './helpers.js';
import { getModel } from '../models/index.js';
import { BatchNorm, LayerNorm, gelu, maxPool2, multiHeadAttention } from '../models/layers.js';
import { optionA } from '../models/resnet56.js';
import type { DataShape, Model } from '../models/model.js';
import { buildSparseLayers } from '../models/sparse/index.js';
import type { LayerShape } from '../models/sparse/types.js';
import { root } from './helpers.js';

const CIFAR10: DataShape = { inputShape: [32, 32, 3], classes: 10 };
const CIFAR100: DataShape = { inputShape: [32, 32, 3], classes: 100 };

function optionsOf(name: string, given: Record<string, unknown> = {}): Record<string, any> {
  const entry = getModel(name);
  return { ...Object.fromEntries(Object.entries(entry.options).map(([k, s]) => [k, s.default])), ...given };
}

function buildModel(name: string, data: DataShape, given: Record<string, unknown> = {}, density = 1, seed = 0, format: 'masked' | 'csr' = 'masked'): Model {
  const entry = getModel(name);
  const o = optionsOf(name, given);
  const layers = buildSparseLayers(entry.layout(o, data), { density, distribution: 'erdos-renyi', format, rng: new Rng(seed).fork('init') });
  return entry.build(o, data, layers);
}

const paramCount = (m: Model) => m.params().reduce((s, p) => s + p.value.size, 0);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function assertClose(a: tf.Tensor, b: tf.Tensor, tol: number, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shapes`);
  const scale = tf.tidy(() => tf.max(tf.abs(b)).dataSync()[0]);
  const d = maxAbsDiff(a, b);
  assert.ok(d <= tol * Math.max(1, scale), `${what}: max |difference| ${d} (scale ${scale})`);
}

test('parameter counts equal the authors\' PyTorch models (ResNet-56 853,018 ≈ 0.85M)', async () => {
  await selectBackend('wasm');
  const expected: [string, DataShape, Record<string, unknown>, number][] = [
    ['resnet56', CIFAR10, {}, 853_018],
    ['resnet56', CIFAR100, {}, 858_868],
    ['vgg16', CIFAR10, {}, 1_256_730],
    ['vgg16', CIFAR100, {}, 1_302_900],
    ['vit', CIFAR10, {}, 4_237_930],
    ['vit', CIFAR100, {}, 4_284_100],
    ['resnet56', CIFAR10, { width: 0.25 }, 54_286],
    ['vgg16', CIFAR10, { width: 0.25 }, 80_382],
    ['vit', CIFAR10, { width: 0.25 }, 207_594],
    ['resnet56', CIFAR10, { width: 2 }, 3_401_770],
    ['vgg16', CIFAR10, { width: 2 }, 5_007_402],
  ];
  for (const [name, data, o, count] of expected) {
    const m = buildModel(name, data, o);
    assert.equal(paramCount(m), count, `${name} ${JSON.stringify(o)} on ${data.classes} classes`);
    m.dispose();
  }
  // every Linear and Conv2d is a prunable layer, first and last included
  const kinds = (name: string) => getModel(name).layout(optionsOf(name), CIFAR10).map((l: LayerShape) => `${l.kind}`);
  assert.deepEqual(kinds('resnet56').filter((k) => k === 'conv').length, 55);
  assert.deepEqual(kinds('vgg16'), [...Array(13).fill('conv'), 'linear', 'linear', 'linear']);
  assert.equal(kinds('vit').length, 1 + 4 * 4 + 1);
});

test('every model builds at tiny input size in both formats and gives every trained parameter a non-zero gradient (the first layers take no input gradient)', async () => {
  await selectBackend('wasm');
  const tiny: DataShape = { inputShape: [8, 8, 3], classes: 5 };
  const digits: DataShape = { inputShape: [28, 28, 1], classes: 5 };
  const cases: [string, Record<string, unknown>, DataShape][] = [
    ['resnet56', { width: 0.25 }, tiny],
    ['resnet56', { width: 0.25, blocks: 1, shortcut: 'B' }, tiny],
    ['vgg16', { width: 0.25 }, tiny],
    ['vit', { width: 0.125, dimHead: 8 }, tiny],
    ['mlp', { hidden: [9, 7] }, tiny],
    ['lenet5', {}, digits],
  ];
  for (const format of ['masked', 'csr'] as const) {
    for (const [name, o, data] of cases) {
      const m = buildModel(name, data, o, 0.5, 0, format);
      const features = data.inputShape.reduce((a, b) => a * b, 1);
      const x = tf.randomNormal([3, features], 0, 1, 'float32', 1);
      const y = tf.tensor1d([0, 3, 4], 'int32');
      const params = m.params();
      tf.tidy(() => {
        const logits = m.forward(x, true);
        assert.deepEqual(logits.shape, [3, 5]);
        assert.deepEqual(m.forward(x, false).shape, [3, 5]);
        const { value, grads } = tf.variableGrads(() => crossEntropy(m.forward(x, true), y, 5), params.map((p) => p.value));
        assert.ok(Number.isFinite(value.dataSync()[0]));
        for (const l of m.layers) {
          const w = params.find((p) => p.name === `${l.name}/weight`)!;
          const g = grads[w.value.name];
          assert.ok(g, `${name} ${format}: no gradient for ${l.name}`);
          assert.ok(tf.sum(tf.abs(g)).dataSync()[0] > 0, `${name} ${format}: zero gradient for ${l.name}`);
        }
        const missing = params.filter((p) => !grads[p.value.name]).map((p) => p.name);
        assert.deepEqual(missing, [], `${name} ${format}: every trained parameter gets a gradient`);
      });
      x.dispose(); y.dispose();
      m.dispose();
    }
  }
});

test('building, training, evaluating and disposing each model leaves no tensor behind', async () => {
  await selectBackend('wasm');
  const tiny: DataShape = { inputShape: [8, 8, 3], classes: 5 };
  const cases: [string, Record<string, unknown>][] = [
    ['resnet56', { width: 0.25, blocks: 1 }],
    ['resnet56', { width: 0.25, blocks: 1, shortcut: 'B' }],
    ['vgg16', { width: 0.25 }],
    ['vit', { width: 0.125, dimHead: 8, depth: 1 }],
  ];
  const x = tf.randomNormal([3, 8 * 8 * 3], 0, 1, 'float32', 1);
  const y = tf.tensor1d([0, 3, 4], 'int32');
  for (const [name, o] of cases) {
    const before = tf.memory().numTensors;
    const m = buildModel(name, tiny, o, 0.5);
    const params = m.params();
    // as harness/train.ts: one tidy around forward, gradients and the SGD step
    const step = () => tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(m.forward(x, true), y, 5), params.map((p) => p.value));
      sgdStep(params, grads, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      value.dataSync();
    });
    step();
    const afterOne = tf.memory().numTensors;
    step();
    assert.equal(tf.memory().numTensors, afterOne, `${name} ${JSON.stringify(o)}: a training step adds tensors`);
    tf.tidy(() => { m.forward(x, false).dataSync(); });
    assert.equal(tf.memory().numTensors, afterOne, `${name} ${JSON.stringify(o)}: an eval forward adds tensors`);
    // the model owns its sparse layers (trainRun disposes only the model)
    m.dispose();
    assert.equal(tf.memory().numTensors, before, `${name} ${JSON.stringify(o)}: tensors left after dispose`);
  }
  x.dispose(); y.dispose();
});

test('vit runs on the always-sparse csr format with the same loss and gradients as masked', async () => {
  await selectBackend('wasm');
  const tiny: DataShape = { inputShape: [8, 8, 3], classes: 4 };
  const o = { ...optionsOf('vit', { width: 0.0625, dimHead: 8 }) };
  const x = tf.randomNormal([4, 8 * 8 * 3], 0, 1, 'float32', 1);
  const y = tf.tensor1d([0, 1, 2, 3], 'int32');
  const out: Record<string, { loss: number; grads: Float32Array[] }> = {};
  for (const format of ['masked', 'csr'] as const) {
    const entry = getModel('vit');
    const layers = buildSparseLayers(entry.layout(o, tiny), { density: 0.3, distribution: 'erdos-renyi', format, rng: new Rng(0).fork('init') });
    const m = entry.build(o, tiny, layers);
    const params = m.params();
    out[format] = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(m.forward(x, true), y, 4), params.map((p) => p.value));
      // the non-sparse parameters (layer norms) in order: their gradients must agree
      const extra = params.filter((p) => !p.name.endsWith('/weight') && !p.name.endsWith('/bias'));
      return { loss: value.dataSync()[0], grads: extra.map((p) => grads[p.value.name].dataSync() as Float32Array) };
    });
    m.dispose();
  }
  assert.ok(Math.abs(out.masked.loss - out.csr.loss) < 1e-5, `loss masked ${out.masked.loss} csr ${out.csr.loss}`);
  out.masked.grads.forEach((g, i) => g.forEach((v, j) => assert.ok(Math.abs(v - out.csr.grads[i][j]) < 1e-4)));
  x.dispose(); y.dispose();
});

test('a short training of tiny-width variants lowers the loss', async () => {
  await selectBackend('wasm');
  const tiny: DataShape = { inputShape: [8, 8, 3], classes: 4 };
  const x = tf.randomNormal([32, 8 * 8 * 3], 0, 1, 'float32', 7);
  const y = tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 4), 'int32');
  const cases: [string, Record<string, unknown>, number][] = [
    ['resnet56', { width: 0.25, blocks: 1 }, 0.05],
    ['vgg16', { width: 0.25, dropout: 0 }, 0.05],
    ['vit', { width: 0.0625, dimHead: 8, depth: 2 }, 0.01],
  ];
  for (const [name, o, lr] of cases) {
    const m = buildModel(name, tiny, o, 0.5, 3);
    const params = m.params();
    const losses: number[] = [];
    for (let i = 0; i < 25; i++) {
      losses.push(tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => crossEntropy(m.forward(x, true), y, 4), params.map((p) => p.value));
        sgdStep(params, grads, { lr, momentum: 0.9, weightDecay: 1e-4 });
        return value.dataSync()[0];
      }));
    }
    const first = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const last = losses.slice(-3).reduce((a, b) => a + b) / 3;
    assert.ok(last < 0.7 * first, `${name}: loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    m.dispose();
  }
  x.dispose(); y.dispose();
});

test('batch norm: train and eval modes differ, running statistics move only in training', async () => {
  await selectBackend('wasm');
  const bn = new BatchNorm('bn', 3);
  const x = tf.add(tf.mul(tf.randomNormal([4, 5, 5, 3], 0, 1, 'float32', 2), 3), 2);
  const rm0 = bn.runningMean.dataSync().slice();
  const rv0 = bn.runningVar.dataSync().slice();
  const yEval = bn.apply(x, false);
  assert.deepEqual(bn.runningMean.dataSync(), rm0, 'eval leaves the running mean');
  assert.deepEqual(bn.runningVar.dataSync(), rv0, 'eval leaves the running variance');
  // fresh statistics (mean 0, var 1): eval is the identity up to eps
  assertClose(yEval, x, 1e-4, 'eval with initial statistics');
  const yTrain = bn.apply(x, true);
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  const expectTrain = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
  assertClose(yTrain, expectTrain, 1e-4, 'train normalises with batch statistics');
  assert.ok(maxAbsDiff(yTrain, yEval) > 0.5, 'modes differ');
  // PyTorch: running = 0.9 running + 0.1 batch, variance unbiased
  const n = 4 * 5 * 5;
  assertClose(bn.runningMean, tf.mul(mean, 0.1), 1e-5, 'running mean');
  assertClose(bn.runningVar, tf.add(0.9, tf.mul(variance, (0.1 * n) / (n - 1))), 1e-5, 'running variance');
  const rm1 = bn.runningMean.dataSync().slice();
  bn.apply(x, false);
  assert.deepEqual(bn.runningMean.dataSync(), rm1);
  bn.dispose();
  tf.dispose([x, yEval, yTrain, mean, variance, expectTrain]);
});

test('batch norm kernels: odd channel counts, no ReLU or residual, eval mode; 2x2 max pool gradient equals tfjs\'s', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await selectBackend(backend);
    tf.tidy(() => {
      for (const C of [3, 8]) {
        const bn = new BatchNorm('bn', C);
        const x = tf.randomNormal([5, 3, 7, C], -1, 3, 'float32', 8);
        const w = tf.randomNormal([5, 3, 7, C], 0, 1, 'float32', 9);
        bn.gamma.value.assign(tf.randomNormal([C], 1, 0.5, 'float32', 10));
        const reference = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
          const { mean, variance } = tf.moments(a, [0, 1, 2]);
          return tf.add(tf.mul(tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
        };
        const gm = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(bn.apply(a, true), w)))([x, bn.gamma.value, bn.beta.value]);
        const gr = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(reference(a, g, b), w)))([x, bn.gamma.value, bn.beta.value]);
        ['x', 'gamma', 'beta'].forEach((n, i) => assertClose(gm[i], gr[i], 1e-4, `${backend} C=${C} batch norm d${n}`));
        // eval: the running statistics after one training call (momentum 0.1 from mean 0, var 1)
        const { mean, variance } = tf.moments(x, [0, 1, 2]);
        const n = x.size / C;
        const rm = tf.mul(mean, 0.1), rv = tf.add(0.9, tf.mul(variance, (0.1 * n) / (n - 1)));
        const evalRef = tf.relu(tf.add(tf.mul(tf.div(tf.sub(x, rm), tf.sqrt(tf.add(rv, 1e-5))), bn.gamma.value), bn.beta.value));
        assertClose(bn.apply(x, false, { relu: true }), evalRef, 1e-5, `${backend} C=${C} batch norm eval`);
        bn.dispose();
      }
    });
  }
  // max pool: against tfjs's gradient on the cpu backend (wasm's MaxPoolGrad, which VGG-16 used
  // before, misplaces the gradient of windows whose values are all negative: 7 of 288 here)
  // channels 8 and 7: the kernel's four-lane path (and its tail); 3: lanes one at a time
  for (const [h, w, padding, ties, c] of [[6, 8, 'same', false, 3], [5, 7, 'same', false, 8], [5, 7, 'valid', false, 7], [6, 8, 'same', true, 3], [5, 7, 'same', true, 8]] as const) {
    await selectBackend('cpu');
    const [xs, us, ref] = tf.tidy(() => {
      // ties (rounded values): the gradient goes to the first maximum of the window
      const x = ties ? tf.round(tf.randomNormal([2, h, w, c], 0, 2, 'float32', 11)) : tf.randomNormal([2, h, w, c], 0, 2, 'float32', 11);
      const up = tf.randomNormal(tf.maxPool(x as tf.Tensor4D, 2, 2, padding).shape, 0, 1, 'float32', 12);
      const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 2, 2, padding), up)))(x);
      return [x.dataSync().slice(), up.dataSync().slice(), g.dataSync().slice()];
    });
    const ho = padding === 'same' ? Math.ceil(h / 2) : Math.floor(h / 2), wo = padding === 'same' ? Math.ceil(w / 2) : Math.floor(w / 2);
    for (const backend of ['cpu', 'wasm'] as const) {
      await selectBackend(backend);
      tf.tidy(() => {
        const up = tf.tensor4d(us, [2, ho, wo, c]);
        const mine = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(maxPool2(a as tf.Tensor4D, padding), up)))(tf.tensor4d(xs, [2, h, w, c]));
        assertClose(mine, tf.tensor(ref, mine.shape), 1e-6, `${backend} max pool ${h}x${w} ${padding}${ties ? ' with ties' : ''} gradient`);
      });
    }
  }
});

test('resnet56 option-A shortcut: x[:, ::2, ::2] with the zero channels split evenly, and its gradient, against a direct computation', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await selectBackend(backend);
    const [n, h, w, c, planes] = [3, 7, 6, 4, 10]; // odd map: positions 0, 2, 4, 6 of 7; lo = 3
    const lo = 3, ho = 4, wo = 3;
    const x = Float32Array.from({ length: n * h * w * c }, (_, i) => Math.sin(i + 1));
    const dyv = Float32Array.from({ length: n * ho * wo * planes }, (_, i) => Math.cos(i));
    const shortcut = optionA(c, planes, 2);
    const { value, grads } = tf.tidy(() => {
      const xt = tf.tensor4d(x, [n, h, w, c]);
      const dy = tf.tensor4d(dyv, [n, ho, wo, planes]);
      const r = tf.valueAndGrads((t: tf.Tensor) => tf.sum(tf.mul(shortcut(t as tf.Tensor4D), dy)) as tf.Scalar)([xt]);
      return { value: shortcut(xt).arraySync() as number[][][][], grads: r.grads[0].arraySync() as number[][][][] };
    });
    for (let b = 0; b < n; b++) for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) for (let q = 0; q < planes; q++) {
      const want = q >= lo && q < lo + c ? x[((b * h + 2 * i) * w + 2 * j) * c + q - lo] : 0;
      assert.equal(value[b][i][j][q], want, `${backend} y[${b},${i},${j},${q}]`);
    }
    for (let b = 0; b < n; b++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let q = 0; q < c; q++) {
      const want = i % 2 === 0 && j % 2 === 0 ? dyv[((b * ho + i / 2) * wo + j / 2) * planes + q + lo] : 0;
      assert.equal(grads[b][i][j][q], want, `${backend} dx[${b},${i},${j},${q}]`);
    }
  }
});

test('batch norm, layer norm, GELU and attention: hand-written gradients equal autodiff of the plain ops', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await selectBackend(backend);
    tf.tidy(() => {
      // batch norm with residual and ReLU
      const bn = new BatchNorm('bn', 4);
      const x = tf.randomNormal([3, 4, 5, 4], 1, 2, 'float32', 3);
      const r = tf.randomNormal([3, 4, 5, 4], 0, 1, 'float32', 4);
      const w = tf.randomNormal([3, 4, 5, 4], 0, 1, 'float32', 5);
      const gamma = bn.gamma.value, beta = bn.beta.value;
      gamma.assign(tf.tensor1d([0.5, 1.5, -1, 2]));
      beta.assign(tf.tensor1d([0.1, -0.2, 0.3, 0]));
      const reference = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, res: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.relu(tf.add(tf.add(tf.mul(tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b), res));
      };
      const mine = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, res: tf.Tensor) => tf.sum(tf.mul(bn.apply(a, true, { residual: res, relu: true }), w)));
      const ref = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, res: tf.Tensor) => tf.sum(tf.mul(reference(a, g, b, res), w)));
      const gm = mine([x, gamma, beta, r]);
      const gr = ref([x, gamma, beta, r]);
      ['x', 'gamma', 'beta', 'residual'].forEach((n, i) => assertClose(gm[i], gr[i], 1e-4, `${backend} batch norm d${n}`));
      bn.dispose();

      // layer norm: a width the SIMD path takes (multiple of 4) and one it does not
      for (const D of [8, 6]) {
        const ln = new LayerNorm('ln', D);
        ln.gamma.value.assign(tf.randomNormal([D], 1, 0.5, 'float32', 6));
        ln.beta.value.assign(tf.randomNormal([D], 0, 0.5, 'float32', 9));
        const x2 = tf.randomNormal([7, D], 0.5, 2, 'float32', 7);
        const w2 = tf.randomNormal([7, D], 0, 1, 'float32', 8);
        const lnRef = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
          const { mean, variance } = tf.moments(a, 1, true);
          return tf.add(tf.mul(tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
        };
        const lm = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(ln.apply(a), w2)))([x2, ln.gamma.value, ln.beta.value]);
        const lr = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(lnRef(a, g, b), w2)))([x2, ln.gamma.value, ln.beta.value]);
        lm.forEach((g, i) => assertClose(g, lr[i], 1e-4, `${backend} layer norm (${D}) grad ${i}`));
        assertClose(ln.apply(x2), lnRef(x2, ln.gamma.value, ln.beta.value), 1e-5, `${backend} layer norm (${D}) value`);
        ln.dispose();
      }

      // GELU (exact, erf)
      const x3 = tf.linspace(-4, 4, 41);
      const geluRef = (a: tf.Tensor) => tf.mul(tf.mul(a, 0.5), tf.add(tf.erf(tf.div(a, Math.SQRT2)), 1));
      assertClose(gelu(x3), geluRef(x3), 1e-6, `${backend} gelu value`);
      assertClose(tf.grad((a: tf.Tensor) => tf.sum(gelu(a)))(x3), tf.grad((a: tf.Tensor) => tf.sum(geluRef(a)))(x3), 1e-5, `${backend} gelu grad`);

      // attention: 2 samples, 3 tokens, 2 heads of 4
      const [n, t, h, d] = [2, 3, 2, 4];
      const qkv = tf.randomNormal([n * t, 3 * h * d], 0, 1, 'float32', 9);
      const w4 = tf.randomNormal([n * t, h * d], 0, 1, 'float32', 10);
      const attRef = (a: tf.Tensor) => {
        const parts = tf.split(tf.reshape(a, [n, t, 3 * h * d]), 3, 2).map((p) => tf.transpose(tf.reshape(p, [n, t, h, d]), [0, 2, 1, 3]));
        const att = tf.softmax(tf.div(tf.matMul(parts[0], parts[1], false, true), Math.sqrt(d)));
        return tf.reshape(tf.transpose(tf.matMul(att, parts[2]), [0, 2, 1, 3]), [n * t, h * d]);
      };
      assertClose(multiHeadAttention(qkv as tf.Tensor2D, n, t, h, d), attRef(qkv), 1e-5, `${backend} attention value`);
      assertClose(
        tf.grad((a: tf.Tensor) => tf.sum(tf.mul(multiHeadAttention(a as tf.Tensor2D, n, t, h, d), w4)))(qkv),
        tf.grad((a: tf.Tensor) => tf.sum(tf.mul(attRef(a), w4)))(qkv), 1e-4, `${backend} attention grad`);
    });
  }
});

test('conv in both formats: weight and input gradients equal tfjs\'s native conv2d gradient (same/valid, stride 1/2), probe records patches', async () => {
  const cases: [number, number, number, number, number, 1 | 2, 'same' | 'valid'][] = [
    // H, W, C, out, k, stride, padding
    [7, 7, 3, 4, 3, 1, 'same'],
    [8, 8, 3, 5, 3, 2, 'same'],
    [9, 9, 2, 3, 3, 2, 'same'],
    [9, 9, 2, 3, 3, 1, 'valid'],
    [9, 10, 2, 3, 3, 2, 'valid'],
    [10, 10, 2, 3, 5, 1, 'same'],
    [8, 8, 4, 6, 1, 2, 'valid'],
  ];
  for (const backend of ['cpu', 'wasm'] as const) {
    for (const [[H, W, C, O, k, stride, padding], format] of cases.flatMap((c) => (['masked', 'csr'] as const).map((f) => [c, f] as const))) {
      const what = `${backend} ${format} ${H}x${W}x${C}->${O} k${k} s${stride} ${padding}`;
      const shape: LayerShape = { name: 'c', kind: 'conv', rows: O, cols: k * k * C, positions: 1, conv: { kh: k, kw: k, inChannels: C, stride, padding, inputSize: [H, W] } };
      await selectBackend(backend);
      // a half-dense mask: the gradient must be the native one times the mask
      const [layer] = buildSparseLayers([shape], { density: 0.5, distribution: 'uniform', format, rng: new Rng(11) });
      const weight = layer.params()[0].value;
      const xs = tf.randomNormal([2, H, W, C], 0, 1, 'float32', 12).dataSync();
      // the kernel in tfjs layout [k, k, C, O]: connection (row, col) at col * O + row
      const { row, col } = layer.active();
      const toKernel = (perConnection: ArrayLike<number>) => {
        const out = new Float32Array(k * k * C * O);
        for (let i = 0; i < row.length; i++) out[col[i] * O + row[i]] = perConnection[i];
        return out;
      };
      const wData = format === 'masked' ? weight.dataSync().slice() : toKernel(weight.dataSync());
      const mask = toKernel(new Float32Array(row.length).fill(1));

      // ours, on the backend under test, probing
      layer.setProbe(true);
      const ours = tf.tidy(() => {
        const x = tf.tensor4d(xs, [2, H, W, C]);
        const y = layer.apply(x);
        const up = tf.randomNormal(y.shape, 0, 1, 'float32', 13);
        const f = (a: tf.Tensor) => tf.sum(tf.mul(layer.apply(a), up));
        const { grads } = tf.variableGrads(() => f(x) as tf.Scalar, [weight]);
        const dx = tf.grad(f)(x);
        const dw = grads[weight.name].dataSync();
        return { dw: format === 'masked' ? dw.slice() : toKernel(dw), dx: dx.dataSync().slice(), up: up.dataSync().slice(), yShape: y.shape };
      });
      layer.setProbe(false);

      // tfjs's own conv2d gradient on cpu
      await selectBackend('cpu');
      tf.tidy(() => {
        const x = tf.tensor4d(xs, [2, H, W, C]);
        const w = tf.tensor4d(wData, [k, k, C, O]);
        const up = tf.tensor(ours.up, ours.yShape);
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, padding), up)))([x, w]);
        assertClose(tf.tensor(ours.dw, gw.shape), tf.mul(gw, tf.tensor(mask, gw.shape)), 1e-5, `${what}: weight gradient`);
        assertClose(tf.tensor(ours.dx, gx.shape), gx, 1e-5, `${what}: input gradient`);
        // the probe's dense gradient (rows x cols, cols ordered (ky, kx, channel)) is the unmasked native one
        const dense = tf.tensor2d(layer.denseGradient(), [O, k * k * C]);
        assertClose(dense, tf.transpose(tf.reshape(gw, [k * k * C, O])), 1e-5, `${what}: probe dense gradient`);
        assert.equal(layer.probeRows(), 2 * (ours.yShape as number[])[1] * (ours.yShape as number[])[2], `${what}: probe rows = patches`);
      });
      layer.dispose();
    }
  }
});

test('vgg16 dropout: masks change between training steps, are reproducible from the seed, and are off in eval', async () => {
  await selectBackend('wasm');
  const tiny: DataShape = { inputShape: [8, 8, 3], classes: 3 };
  const x = tf.randomNormal([4, 8 * 8 * 3], 0, 1, 'float32', 5);
  const outputs = (seed: number) => {
    const m = buildModel('vgg16', tiny, { width: 0.25 }, 1, seed);
    const run = (training: boolean) => Array.from(tf.tidy(() => m.forward(x, training).dataSync().slice()));
    const r = { train1: run(true), train2: run(true), eval1: run(false), eval2: run(false) };
    m.dispose();
    return r;
  };
  const a = outputs(1);
  assert.notDeepEqual(a.train1, a.train2, 'a fresh dropout mask every training forward');
  assert.deepEqual(a.eval1, a.eval2, 'no dropout in eval');
  assert.deepEqual(outputs(1), a, 'same seed, same masks');
  x.dispose();
});

test('configs/paper: six files, each the paper\'s grid and hyperparameters', () => {
  const dir = path.join(root, 'configs', 'paper');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(files, ['cifar10-resnet56.json', 'cifar10-vgg16.json', 'cifar10-vit.json', 'cifar100-resnet56.json', 'cifar100-vgg16.json', 'cifar100-vit.json']);
  for (const f of files) {
    const sweep = loadSweep(path.join(dir, f));
    const [dataset, model] = f.replace('.json', '').split('-');
    // dense ignores the sparsity: 3 seeds; every sparse method: 3 sparsities x 3 seeds
    const methods = [...new Set(sweep.specs.map((s) => s.method.name))].sort();
    assert.deepEqual(methods, ['dense', 'gradual', 'grasp', 'gse', 'lottery', 'rigl', 'set', 'snip', 'static', 'synflow', 'topkast'], f);
    assert.equal(sweep.specs.length, 3 + 10 * 9, f);
    for (const s of sweep.specs) {
      assert.equal(s.dataset.name, dataset);
      assert.equal(s.model.name, model);
      const t = s.training;
      assert.deepEqual([t.epochs, t.batchSize, t.lr, t.momentum, t.weightDecay, t.warmupEpochs, t.lrDrops, t.lrDropFactor],
        [200, 128, model === 'vit' ? 0.01 : 0.1, 0.9, 1e-4, 5, [80, 120], 0.1], f);
      if (s.method.name !== 'dense') assert.ok([0.9, 0.95, 0.98].includes(s.sparsity.target));
      assert.equal(s.sparsity.distribution, 'erdos-renyi');
      if (s.update) {
        // CIFAR-100: 1 sample per class (100 images), see docs/runtime.md
        assert.deepEqual([s.update.delta, s.update.end, s.update.alpha, s.update.scope, s.update.samplesPerClass], [1000, 0.6, 0.2, 'global', dataset === 'cifar10' ? 10 : 1], f);
      }
    }
    assert.deepEqual([...new Set(sweep.specs.map((s) => s.seed))].sort(), [0, 1, 2]);
  }
});

test('data fetch: downloads (plain progress lines off a TTY), verifies the MD5, unpacks; clear one-line errors', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'sb-fetch-'));
  writeCifarFiles(path.join(work, 'src'), 'cifar10', { train: 50, test: 10 });
  const archive = path.join(work, 'cifar-10-binary.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', path.join(work, 'src'), 'cifar-10-batches-bin']);
  const body = readFileSync(archive);
  const md5 = createHash('md5').update(body).digest('hex');
  const server = http.createServer((req, res) => {
    if (req.url !== '/cifar.tgz') { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const cli = (args: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [path.join(root, 'bin', 'sparsebench.js'), ...args], { cwd: work });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
  try {
    const dir = path.join(work, 'data');
    const ok = await cli(['data', 'fetch', 'cifar10', '--dir', dir, '--url', `http://127.0.0.1:${port}/cifar.tgz`, '--md5', md5]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /cifar-10-binary\.tar\.gz: 100% \(/);
    assert.doesNotMatch(ok.stdout, /\r/, 'no carriage returns off a TTY');
    assert.ok(existsSync(path.join(dir, 'cifar-10-batches-bin', 'data_batch_5.bin')));
    const again = await cli(['data', 'fetch', 'cifar10', '--dir', dir]);
    assert.match(again.stdout, /already in/);

    const bad = await cli(['data', 'fetch', 'cifar10', '--dir', path.join(work, 'other'), '--url', `http://127.0.0.1:${port}/cifar.tgz`, '--md5', '0'.repeat(32)]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^sparsebench: data fetch: cifar-10-binary\.tar\.gz has MD5 [0-9a-f]{32}, not the published 0{32}/);
    const offline = await cli(['data', 'fetch', 'cifar100', '--dir', path.join(work, 'other'), '--url', 'http://nonexistent.invalid/cifar.tgz']);
    assert.equal(offline.status, 2);
    assert.equal(offline.stderr.trim().split('\n').length, 1, offline.stderr);
    assert.match(offline.stderr, /cannot download .* no network\?/);
    assert.ok(!existsSync(path.join(work, 'other', 'cifar-100-binary')));
  } finally {
    server.close();
  }
});

test('resnet56 and vgg16 (batch-norm statistics, dropout stream) resume from a mid-epoch checkpoint exactly', async () => {
  await selectBackend('wasm');
  const base = {
    dataset: { name: 'synthetic', shape: '8x8x3', classes: 3, trainSamples: 96, testSamples: 48, noise: 0.5, seed: 2 },
    method: 'rigl', sparsity: { target: 0.7 }, update: { delta: 4, samplesPerClass: 4 },
    training: { epochs: 2, batchSize: 16, lr: 0.05 },
  };
  for (const model of [{ name: 'vgg16', width: 0.25 }, { name: 'resnet56', width: 0.25, blocks: 1 }]) {
    const config = { ...base, model };
    const run = async (resume: TrainState | null, stopAt: number | null) => {
      const metrics: EpochMetrics[] = [];
      let step = resume?.step ?? 0;
      let last: TrainState | null = null;
      try {
        await trainRun(specOf(config), {}, { onEpoch: (m) => metrics.push({ ...m, wall_s: 0 }), onStep: (s) => { step = s; } }, {
          resume,
          onCheckpoint: (c) => { last = decodeCheckpoint(encodeCheckpoint('run', c)).state; },
          shouldStop: () => stopAt !== null && step >= stopAt,
        });
      } catch (e) {
        if (!(e instanceof RunInterrupted)) throw e;
      }
      return { metrics, last: last as TrainState | null };
    };
    const whole = await run(null, null);
    const first = await run(null, 3); // inside epoch 1 (6 steps an epoch), before the first update
    assert.ok(first.last && first.last.step === 3);
    const second = await run(first.last, null);
    assert.deepEqual([...first.metrics, ...second.metrics], whole.metrics, model.name);
  }
});
