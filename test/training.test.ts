import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../harness/backend.js';
import { prepareRun, type EpochMetrics } from '../harness/run-context.js';
import { trainRun } from '../harness/train.js';
import { specOf, smallTask } from './helpers.js';
import { learningRate, sgdStep } from '../harness/sgd.js';

before(async () => { await selectBackend('wasm'); });

async function metricsOf(config: Record<string, unknown>): Promise<EpochMetrics[]> {
  const out: EpochMetrics[] = [];
  await trainRun(specOf(config), {}, { onEpoch: (m) => out.push({ ...m, wall_s: 0 }) });
  return out;
}

test('same seed gives bit-identical metrics, another seed different ones', async () => {
  const base = { ...smallTask, method: 'static', sparsity: { target: 0.8 } };
  const a = await metricsOf({ ...base, seed: 3 });
  const b = await metricsOf({ ...base, seed: 3 });
  const c = await metricsOf({ ...base, seed: 4 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.map((m) => m.train_loss), c.map((m) => m.train_loss));
});

test('masked layers: inactive weights stay exactly 0 and get no update over many steps', async () => {
  const spec = specOf({ ...smallTask, method: 'static', sparsity: { target: 0.9, format: 'masked' }, training: { ...smallTask.training, epochs: 3, weightDecay: 1e-3 } });
  const run = prepareRun(spec, {});
  const before = run.model.layers.map((l) => ({ active: l.active(), count: l.activeCount() }));
  // train with the real loop on the same prepared model
  const { model } = run;
  const params = model.params();
  const x = tf.randomNormal([32, 64]);
  const y = tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 4), 'int32');
  for (let i = 0; i < 50; i++) {
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 4), model.forward(x, true)) as tf.Scalar, params.map((p) => p.value));
      sgdStep(params, grads, { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 });
    });
  }
  model.layers.forEach((l, i) => {
    assert.equal(l.activeCount(), before[i].count);
    assert.deepEqual(l.active(), before[i].active);
    const weight = params.find((p) => p.name === `${l.name}/weight`)!;
    const w = weight.value.dataSync();
    const v = weight.velocity.dataSync();
    const mask = new Uint8Array(w.length);
    const { row, col } = l.active();
    for (let k = 0; k < row.length; k++) mask[col[k] * l.rows + row[k]] = 1;
    let moved = 0;
    for (let j = 0; j < w.length; j++) {
      if (!mask[j]) { assert.equal(w[j], 0); assert.equal(v[j], 0); } else if (v[j] !== 0) moved++;
    }
    assert.ok(moved > 0, 'active weights were trained');
  });
  model.dispose();
  x.dispose(); y.dispose();
});

test('learning rate: linear warm-up, then drops', () => {
  const t = { lr: 0.1, warmupEpochs: 2, lrDrops: [5, 8], lrDropFactor: 0.1 };
  assert.ok(Math.abs(learningRate(0, 10, t) - 0.1 / 20) < 1e-12);
  assert.ok(Math.abs(learningRate(19, 10, t) - 0.1) < 1e-12);
  assert.equal(learningRate(49, 10, t), 0.1);
  assert.ok(Math.abs(learningRate(50, 10, t) - 0.01) < 1e-12);
  assert.ok(Math.abs(learningRate(80, 10, t) - 0.001) < 1e-12);
});

test('a short dense LeNet-300-100 run on real MNIST reaches > 90% test accuracy', async () => {
  const m = await metricsOf({ dataset: 'mnist', model: 'mlp', method: 'dense', training: { epochs: 3 } });
  const last = m[m.length - 1];
  assert.ok(last.test_accuracy > 0.9, `test accuracy ${last.test_accuracy}`);
  assert.equal(last.active_params, 784 * 300 + 300 * 100 + 100 * 10);
});

test('lenet5 trains on the wasm backend (conv via im2col gradient)', async () => {
  const m = await metricsOf({
    dataset: { name: 'synthetic', shape: '12x12x1', classes: 3, trainSamples: 384, testSamples: 96, noise: 0.5, seed: 1 },
    model: 'lenet5', method: 'static', sparsity: { target: 0.5 }, training: { epochs: 6, batchSize: 32, lr: 0.05 },
  });
  assert.ok(m[m.length - 1].test_accuracy > 0.6, `test accuracy ${m[m.length - 1].test_accuracy}`);
});

test('a run leaves no tensor behind, whatever the method (a long sweep runs many in one process)', async () => {
  for (const method of ['dense', 'static', 'set', 'rigl', 'gse', 'gradual']) {
    const before = tf.memory().numTensors;
    await trainRun(specOf({ ...smallTask, method, sparsity: { target: 0.8 }, update: { delta: 4, end: 1 } }), {});
    assert.equal(tf.memory().numTensors, before, `${method} leaked tensors`);
  }
});
