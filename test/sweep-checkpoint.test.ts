import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend } from '../harness/backend.js';
import { decodeCheckpoint, encodeCheckpoint, CheckpointError, checkpointSummary, readCheckpoint, writeCheckpoint } from '../harness/checkpoint.js';
import type { EpochMetrics, RunSummary, TrainState, UpdateRecord } from '../harness/run-context.js';
import { RunInterrupted, trainRun } from '../harness/train.js';
import { specOf, smallTask } from './helpers.js';
import { tmpDir } from './sweep-util.js';
import { writeCifarFiles } from '../harness/data/cifar.js';
import path from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';

before(async () => { await selectBackend('wasm'); });

interface Trace { metrics: EpochMetrics[]; updates: UpdateRecord[]; summary: RunSummary | null; checkpoints: TrainState[] }

const timing = ['wall_s', 'step_ms', 'update_ms', 'peak_rss_mb'] as const;
const stripSummary = (s: RunSummary) => { const c: Record<string, unknown> = { ...s }; for (const k of timing) delete c[k]; return c; };
const stripMetrics = (ms: EpochMetrics[]) => ms.map((m) => ({ ...m, wall_s: 0 }));
const stripUpdates = (us: UpdateRecord[]) => us.map((u) => ({ ...u, ms: 0 }));

/** Trains from `resume` (or the start) until `stopAt` steps are done; every checkpoint goes through an encode/decode round trip. */
async function leg(config: Record<string, unknown>, resume: TrainState | null, stopAt: number | null, dataDir?: string): Promise<Trace> {
  const t: Trace = { metrics: [], updates: [], summary: null, checkpoints: [] };
  let step = resume?.step ?? 0;
  try {
    t.summary = await trainRun(specOf(config), { dataDir }, {
      onEpoch: (m) => t.metrics.push(m),
      onUpdate: (u) => t.updates.push(u),
      onStep: (s) => { step = s; },
    }, {
      resume,
      onCheckpoint: (s) => { t.checkpoints.push(decodeCheckpoint(encodeCheckpoint('run', s)).state); },
      shouldStop: () => stopAt !== null && step >= stopAt,
    });
  } catch (e) {
    if (!(e instanceof RunInterrupted)) throw e;
    assert.equal(e.step, stopAt);
  }
  return t;
}

/**
 * The run stopped at each step of `stops` and resumed each time, from the checkpoint taken at the
 * stop ('stop', as after SIGTERM) or from the last epoch-end checkpoint ('epoch', as after
 * SIGKILL), must equal the run never stopped.
 */
async function sameAsUninterrupted(config: Record<string, unknown>, stops: [number, 'stop' | 'epoch'][], dataDir?: string): Promise<void> {
  const whole = await leg(config, null, null, dataDir);
  assert.ok(whole.summary);
  let state: TrainState | null = null;
  for (const [at, from] of stops) {
    const part = await leg(config, state, at, dataDir);
    // after a kill without a new epoch-end checkpoint, the run goes on from the one it started from
    const next: TrainState | null | undefined = from === 'stop' ? part.checkpoints.at(-1) : (part.checkpoints.filter((c) => c.partial === null).at(-1) ?? state);
    assert.ok(next, `a checkpoint to resume from after step ${at}`);
    if (from === 'stop') assert.equal(next.step, at);
    state = next;
  }
  const last = await leg(config, state, null, dataDir);
  assert.ok(last.summary, 'the last leg finishes');
  assert.deepEqual(stripSummary(last.summary), stripSummary(whole.summary));
  // a resumed run reports the epochs and updates after its checkpoint; the checkpoint carries those before
  assert.deepEqual(stripMetrics([...(state?.metrics ?? []), ...last.metrics]), stripMetrics(whole.metrics));
  assert.deepEqual(stripUpdates([...(state?.updates ?? []), ...last.updates]), stripUpdates(whole.updates));
}

// smallTask: 512 samples / batch 32 = 16 steps an epoch; stops inside an epoch, exactly at its end
// (before its evaluation), in a later epoch, resumes from an epoch-end checkpoint, and stops after
// the run's very last step (before the last evaluation)
test('static: stop and resume (mid-epoch, at an epoch end, later, from an epoch-end checkpoint, after the last step) equals the uninterrupted run', async () => {
  await sameAsUninterrupted({ ...smallTask, method: 'static', sparsity: { target: 0.8 }, training: { ...smallTask.training, epochs: 3 } }, [[5, 'stop'], [16, 'stop'], [37, 'stop'], [44, 'epoch'], [48, 'stop']]);
});

test('a run whose steps end inside an epoch (training.maxSteps), stopped after its last step, resumes to its last evaluation', async () => {
  const spec = specOf({ ...smallTask, method: 'static', sparsity: { target: 0.8 }, training: { ...smallTask.training, maxSteps: 20 } });
  const whole = await trainRun(spec, {});
  let step = 0;
  let state: TrainState | null = null;
  await assert.rejects(trainRun(spec, {}, { onStep: (s) => { step = s; } }, {
    onCheckpoint: (c) => { state = c; }, shouldStop: () => step >= whole.steps,
  }), RunInterrupted);
  assert.equal(state!.step, whole.steps);
  const metrics: EpochMetrics[] = [];
  const rest = await trainRun(spec, {}, { onEpoch: (m) => metrics.push(m) }, { resume: state });
  assert.deepEqual(stripSummary(rest), stripSummary(whole));
  assert.equal(state!.metrics.length + metrics.length, whole.epochs);
});

test('set (prune-grow updates, probe batches) resumes exactly', async () => {
  await sameAsUninterrupted({ ...smallTask, method: 'set', sparsity: { target: 0.8 }, update: { delta: 6, samplesPerClass: 4 }, training: { ...smallTask.training, epochs: 3 } }, [[7, 'stop'], [25, 'epoch'], [40, 'stop']]);
});

test('rigl and gradual resume exactly', async () => {
  await sameAsUninterrupted({ ...smallTask, method: 'rigl', sparsity: { target: 0.8 }, update: { delta: 5, samplesPerClass: 4 } }, [[11, 'stop'], [20, 'epoch']]);
  await sameAsUninterrupted({ ...smallTask, method: 'gradual', sparsity: { target: 0.8 }, update: { delta: 5, samplesPerClass: 4 } }, [[19, 'epoch'], [23, 'stop']]);
});

test('augmented data (the data stream moves inside an epoch) resumes exactly', async () => {
  const dataDir = tmpDir('ckpt-cifar');
  writeCifarFiles(dataDir, 'cifar10', { train: 100, test: 20 });
  // 100 images / batch 16 = 7 steps an epoch
  await sameAsUninterrupted({ dataset: 'cifar10', model: { name: 'mlp', hidden: [16] }, method: 'static', sparsity: { target: 0.5 }, training: { epochs: 2, batchSize: 16, lr: 0.01 } },
    [[3, 'stop'], [9, 'epoch'], [10, 'stop']], dataDir);
});

test('checkpoint files: binary round trip, checksum, wrong run, header summary', () => {
  const state: TrainState = {
    step: 7, epoch: 1, partial: { batch: 3, orderRng: [1, 2, 3, 4], lossSum: 1.5, correct: 3, seen: 12, lr: 0.1 },
    rng: { data: [1, 2, 3, 4294967295], method: [5, 6, 7, 8], probe: [9, 10, 11, 12] },
    layers: [{ connections: { row: Int32Array.from([0, 1]), col: Int32Array.from([2, 0]) }, values: Float32Array.from([0.5, -1e-30]), velocity: Float32Array.from([NaN, 0]), bias: Float32Array.from([1]), biasVelocity: Float32Array.from([2]) }],
    params: [{ name: 'bn/scale', shape: [2], value: Float32Array.from([1, 2]), velocity: Float32Array.from([0, 0]) }],
    metrics: [{ epoch: 1, step: 4, lr: 0.1, train_loss: 1, train_accuracy: 0.5, test_loss: 1, test_accuracy: 0.5, active_params: 2, wall_s: 1 }],
    updates: [],
    counters: { trainFlops: 2 ** 60, denseFlops: 3, stepTimes: [0.1, 0.25], updateTimes: [], elapsedS: 3.5 },
  };
  const dir = tmpDir('ckpt');
  const file = path.join(dir, 'checkpoint.bin');
  const writtenFrom = Date.now();
  writeCheckpoint(file, 'abc', state);
  const writtenTo = Date.now();
  assert.deepEqual(readCheckpoint(file, 'abc'), state);
  const summary = checkpointSummary(file)!;
  assert.deepEqual({ step: summary.step, epoch: summary.epoch }, { step: 7, epoch: 1 });
  const created = Date.parse(summary.created);
  assert.ok(created >= writtenFrom && created <= writtenTo, `created ${summary.created}: when it was written`);
  assert.equal(summary.created, new Date(created).toISOString(), 'an ISO time stamp');
  assert.throws(() => readCheckpoint(file, 'other'), CheckpointError);
  assert.equal(readCheckpoint(path.join(dir, 'none.bin'), 'abc'), null);
  const buf = readFileSync(file);
  buf[buf.length - 40] ^= 1;
  writeFileSync(file, buf);
  assert.throws(() => readCheckpoint(file, 'abc'), /checksum mismatch/);
  writeFileSync(file, buf.subarray(0, 100));
  assert.throws(() => readCheckpoint(file, 'abc'), CheckpointError);
});
