/**
 * End to end through trainRun, for every method of the registry in both formats on an mlp, and
 * static, rigl and gse in both formats on lenet5 (conv layers): the same spec twice gives bit-identical
 * metrics, updates and summary; a run stopped in the middle of an epoch (after updates), saved
 * through the checkpoint file format and resumed, ends bit-identical to the run never stopped.
 * Tiny models, --smoke-sized data (32 samples, batches of 16, 2 epochs), an update every step.
 * The CLI's signal handling (SIGINT, SIGTERM) with resume is in test/signal-resume.test.ts.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend } from '../harness/backend.js';
import { decodeCheckpoint, encodeCheckpoint } from '../harness/checkpoint.js';
import type { EpochMetrics, RunSummary, TrainState, UpdateRecord } from '../harness/run-context.js';
import { RunInterrupted, trainRun } from '../harness/train.js';
import { methods } from '../methods/index.js';
import type { SparseFormat } from '../models/sparse/types.js';
import { sweepFromConfig } from '../harness/config.js';

before(async () => { await selectBackend('wasm'); });

const mlpTask = {
  seed: 5,
  dataset: { name: 'synthetic', features: 16, classes: 4, trainSamples: 64, testSamples: 32, seed: 2 },
  model: { name: 'mlp', hidden: [12] },
  training: { epochs: 2, batchSize: 16, lr: 0.05 },
};
const convTask = {
  seed: 5,
  dataset: { name: 'synthetic', shape: '12x12x1', classes: 3, trainSamples: 48, testSamples: 24, seed: 2 },
  model: { name: 'lenet5', width: 0.5 },
  training: { epochs: 2, batchSize: 16, lr: 0.05 },
};
/** options that make the short smoke runs exercise each method's own machinery */
const methodOptions: Record<string, Record<string, unknown>> = {
  gse: { sampler: 'grabo' },
  lottery: { rate: 0.5, rewindStep: 1 },
  topkast: { exploreFraction: 0.3 },
};

/**
 * The steps after which the interrupted run is stopped, one after the other (4 steps in 2 epochs,
 * updates before steps 1, 2 and 3): inside epoch 1 before any update, then inside epoch 2 with
 * updates both before and after the stop.
 */
const STOPS = [1, 3];

interface Recorded { summary: RunSummary; metrics: EpochMetrics[]; updates: UpdateRecord[] }

const timeless = {
  summary: (s: RunSummary) => ({ ...s, wall_s: 0, step_ms: 0, update_ms: 0, peak_rss_mb: 0, rounds: s.rounds?.map((r) => ({ ...r, wall_s: 0, step_ms: 0, update_ms: 0, peak_rss_mb: 0, elapsed_s: 0 })) }),
  metrics: (ms: EpochMetrics[]) => ms.map((m) => ({ ...m, wall_s: 0 })),
  updates: (us: UpdateRecord[]) => us.map((u) => ({ ...u, ms: 0 })),
};

/** The single run of an inline config, as `run --smoke` resolves it. */
function smokeSpec(config: Record<string, unknown>) {
  const [spec] = sweepFromConfig(config, 'test.json', true).specs;
  return spec;
}

async function record(config: Record<string, unknown>): Promise<Recorded> {
  const metrics: EpochMetrics[] = [];
  const updates: UpdateRecord[] = [];
  const summary = await trainRun(smokeSpec(config), {}, { onEpoch: (m) => metrics.push(m), onUpdate: (u) => updates.push(u) });
  return { summary, metrics, updates };
}

/**
 * Runs `config` stopping after each step of STOPS in turn (a checkpoint, RunInterrupted), each
 * time resuming from the checkpoint through the file format; returns the checkpoints and the
 * events and summary of the last leg.
 */
async function stopAndResume(config: Record<string, unknown>): Promise<{ stops: TrainState[]; resumed: Recorded }> {
  const spec = smokeSpec(config);
  const stops: TrainState[] = [];
  for (const stopAt of STOPS) {
    let step = 0;
    let saved: TrainState | null = null;
    await assert.rejects(trainRun(spec, {}, { onStep: (s) => { step = s; } }, {
      checkpointSeconds: 0,
      resume: stops.at(-1) ?? null,
      shouldStop: () => step >= stopAt,
      onCheckpoint: (s) => { saved = s; },
    }), RunInterrupted);
    assert.ok(saved, `a checkpoint before stopping at step ${stopAt}`);
    stops.push(decodeCheckpoint(encodeCheckpoint('run', saved)).state);
  }
  const metrics: EpochMetrics[] = [];
  const updates: UpdateRecord[] = [];
  const summary = await trainRun(spec, {}, { onEpoch: (m) => metrics.push(m), onUpdate: (u) => updates.push(u) }, { resume: stops.at(-1)! });
  return { stops, resumed: { summary, metrics, updates } };
}

const cases: { label: string; config: Record<string, unknown> }[] = [];
for (const name of Object.keys(methods)) {
  for (const format of ['masked', 'csr'] as SparseFormat[]) {
    cases.push({
      label: `${name} (${format}, mlp)`,
      config: { ...mlpTask, method: { name, ...methodOptions[name] }, sparsity: { target: 0.7, format }, update: { delta: 1, end: 1, samplesPerClass: 4 } },
    });
  }
}
for (const name of ['static', 'rigl', 'gse']) {
  for (const format of ['masked', 'csr'] as SparseFormat[]) {
    cases.push({ label: `${name} (${format}, lenet5)`, config: { ...convTask, method: { name, ...methodOptions[name] }, sparsity: { target: 0.7, format }, update: { delta: 1, end: 1, samplesPerClass: 4 } } });
  }
}

for (const { label, config } of cases) {
  test(`${label}: the same spec twice is bit-identical; stopped mid-epoch and resumed, it ends as if never stopped`, async () => {
    const first = await record(config);
    const second = await record(config);
    assert.equal(first.summary.status, 'done');
    assert.equal(first.summary.steps, 4);
    assert.deepEqual(timeless.summary(second.summary), timeless.summary(first.summary), 'summary');
    assert.deepEqual(timeless.metrics(second.metrics), timeless.metrics(first.metrics), 'metrics');
    assert.deepEqual(timeless.updates(second.updates), timeless.updates(first.updates), 'updates');

    const { stops, resumed } = await stopAndResume(config);
    assert.deepEqual(stops.map((c) => [c.step, c.partial?.batch]), [[1, 1], [3, 1]], 'stopped inside epochs 1 and 2');
    assert.deepEqual(timeless.summary(resumed.summary), timeless.summary(first.summary), 'resumed summary');
    assert.deepEqual(timeless.metrics([...stops[1].metrics, ...resumed.metrics]), timeless.metrics(first.metrics), 'metrics before and after the stops');
    assert.deepEqual(timeless.updates([...stops[1].updates, ...resumed.updates]), timeless.updates(first.updates), 'updates before and after the stops');
  });
}
