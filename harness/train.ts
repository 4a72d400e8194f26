/**
 * The training loop. `trainRun` builds the run context once (harness/run-context.ts) and runs
 * the loop, or, for a multi-round method, the rounds runner around it (harness/rounds.ts). The
 * loop itself knows no method: it calls a list of hooks at fixed points (harness/method-hooks.ts
 * LoopHook: a start, before each step, after each step) and records what they report; epochs,
 * evaluation, checkpoints, interruption and the cost counters are its own.
 *
 * The one decision a reader may question: the rounds runner passes the loop in (`trainLoop` is a
 * parameter of trainRounds) rather than importing this file, so nothing below train.ts imports it.
 */
import * as tf from '@tensorflow/tfjs';
import type { ScheduleContext } from '../methods/types.js';
import type { DataShape, Model } from '../models/model.js';
import { batchOrder, featureSize, gather } from './data/index.js';
import type { Dataset, Split } from './data/types.js';
import { checkTarget } from './invariants.js';
import { median, peakRssMb, stepFlops } from './meters.js';
import { methodHooks } from './method-hooks.js';
import { trainRounds } from './rounds.js';
import {
  batchTensors, createRunContext, crossEntropy, prepareRun, restoreModel, saveExtraTensors,
  type EpochMetrics, type HookOutcome, type LoopControl, type PartialEpoch, type RunContext, type RunControl, type RunEvents, type RunSummary,
  type TrainState, type UpdateRecord,
} from './run-context.js';
import { learningRate, sgdStep, type SgdOptions } from './sgd.js';
import type { RunSpec } from './spec.js';

export function evaluate(model: Model, data: Dataset, split: Split, batchSize: number): { loss: number; accuracy: number } {
  let lossSum = 0;
  let correct = 0;
  const fs = featureSize(data.inputShape);
  for (let start = 0; start < split.n; start += batchSize) {
    const count = Math.min(batchSize, split.n - start);
    const [l, c] = tf.tidy(() => {
      const x = tf.tensor2d(split.x.subarray(start * fs, (start + count) * fs), [count, fs]);
      const y = tf.tensor1d(split.y.subarray(start, start + count), 'int32');
      const logits = model.forward(x, false);
      const loss = tf.mul(crossEntropy(logits, y, data.classes), count);
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32'));
      return [loss.dataSync()[0], hits.dataSync()[0]];
    });
    lossSum += l;
    correct += c;
  }
  return { loss: lossSum / split.n, accuracy: correct / split.n };
}

/** Thrown by trainRun when RunControl.shouldStop asked it to stop (after a checkpoint). */
export class RunInterrupted extends Error {
  constructor(readonly step: number, readonly epoch: number) {
    super(`interrupted at step ${step} (epoch ${epoch})`);
    this.name = 'RunInterrupted';
  }
}

/** Trains one run to the end (or, under `control`, from a checkpoint) and returns its summary; the model is disposed afterwards. */
export async function trainRun(spec: RunSpec, env: { dataDir?: string }, events: RunEvents = {}, control: RunControl = {}): Promise<RunSummary> {
  const started = performance.now();
  const ctx = createRunContext(prepareRun(spec, env), { resume: control.resume, started });
  try {
    const summary = ctx.method.rounds ? await trainRounds(ctx, trainLoop, events, control) : await trainLoop(ctx, events, control);
    // a diverged run stopped early: its sparsity is a result, not a broken promise
    if (summary.status === 'done') checkTarget({ method: spec.method.name, hook: 'end of training', step: summary.steps }, ctx.model.layers, ctx.method.sparse ? ctx.targetCounts : null);
    return summary;
  } finally {
    ctx.model.dispose();
  }
}

/** One training step on a batch: forward, backward (tf.variableGrads) and the SGD update; returns [loss, correct count]. bench step times this. */
export function trainStep(model: Model, trainable: tf.Variable[], data: DataShape, batch: { x: Float32Array; y: Int32Array }, sgd: SgdOptions): [number, number] {
  return tf.tidy(() => {
    const b = batchTensors(data, batch);
    let hitsT: tf.Scalar | null = null;
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward(b.x, true);
      hitsT = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), b.y), "float32"))) as tf.Scalar;
      return crossEntropy(logits, b.y, data.classes);
    }, trainable);
    sgdStep(model.params(), grads, sgd);
    const out: [number, number] = [value.dataSync()[0], hitsT!.dataSync()[0]];
    hitsT!.dispose();
    return out;
  });
}

/** The training loop over a run context (multi-round methods: once per round, harness/rounds.ts). */
export async function trainLoop(ctx: RunContext, events: RunEvents, control: LoopControl): Promise<RunSummary> {
  const { spec, data, model, train, test, epochs, batchSize, stepsPerEpoch, totalSteps, schedule } = ctx;
  const { data: dataRng, method: methodRng, probe: probeRng } = ctx.rng;
  const t = spec.training;
  const fs = featureSize(data.inputShape);

  const metrics: EpochMetrics[] = [];
  const updates: UpdateRecord[] = [];
  let stepTimes: number[] = [];
  let updateTimes: number[] = [];
  let trainFlops = 0;
  let denseFlops = 0;
  let step = 0;
  let firstEpoch = 1;
  let diverged: number | undefined;
  let started = ctx.started;
  const resume = control.resume ?? null;
  if (resume) {
    restoreModel(model, resume);
    dataRng.setState(resume.rng.data);
    methodRng.setState(resume.rng.method);
    probeRng.setState(resume.rng.probe);
    metrics.push(...resume.metrics);
    updates.push(...resume.updates);
    stepTimes = [...resume.counters.stepTimes];
    updateTimes = [...resume.counters.updateTimes];
    trainFlops = resume.counters.trainFlops;
    denseFlops = resume.counters.denseFlops;
    step = resume.step;
    firstEpoch = resume.epoch + 1;
    started = performance.now() - resume.counters.elapsedS * 1000;
  }
  let trainable = model.params().map((p) => p.value);

  // the outer runner's hooks first (lottery's rewind capture sees the step before any update), then the method's
  const hooks = [...(control.hooks ?? []), ...methodHooks(ctx)];
  const probesStep = hooks.some((h) => h.probesStep);
  /** what a hook did, into the counters and the records */
  const record = (o: HookOutcome | null) => {
    if (!o) return;
    trainFlops += o.flops;
    if (o.updateMs !== undefined) updateTimes.push(o.updateMs);
    if (o.record) {
      // a structure change may replace the layers' variables
      trainable = model.params().map((p) => p.value);
      updates.push(o.record);
      events.onUpdate?.(o.record);
    }
  };
  if (!resume) for (const h of hooks) record(h.start?.() ?? null);

  const snapshot = (epochsDone: number, partial: PartialEpoch | null): TrainState => ({
    step,
    epoch: epochsDone,
    partial,
    rng: { data: dataRng.state(), method: methodRng.state(), probe: probeRng.state() },
    layers: model.layers.map((l) => l.saveState()),
    params: saveExtraTensors(model),
    metrics: [...metrics],
    updates: [...updates],
    counters: { trainFlops, denseFlops, stepTimes: [...stepTimes], updateTimes: [...updateTimes], elapsedS: (performance.now() - started) / 1000 },
    ...(Object.keys(ctx.methodState).length ? { methodState: structuredClone(ctx.methodState) } : {}),
  });
  const checkpointMs = (control.checkpointSeconds ?? 600) * 1000;
  let lastCheckpoint = performance.now();
  let lastYield = performance.now();
  const checkpoint = (epochsDone: number, partial: PartialEpoch | null) => {
    if (!control.onCheckpoint) return;
    control.onCheckpoint(snapshot(epochsDone, partial));
    lastCheckpoint = performance.now();
  };

  // an epoch stopped after its last step (the run's last, even) still owes its evaluation
  const owesEvaluation = (epoch: number) => epoch === firstEpoch && !!resume?.partial;
  for (let epoch = firstEpoch; epoch <= epochs && (step < totalSteps || owesEvaluation(epoch)) && diverged === undefined; epoch++) {
    let lossSum = 0;
    let correct = 0;
    let seen = 0;
    let lr = 0;
    let first = 0;
    let orderRng = dataRng.state();
    let order: Int32Array[];
    const part = resume?.partial && epoch === firstEpoch ? resume.partial : null;
    if (part) {
      // the same batch order as before the stop, then the stream where it was
      orderRng = part.orderRng;
      dataRng.setState(part.orderRng);
      order = batchOrder(train.n, batchSize, dataRng);
      dataRng.setState(resume!.rng.data);
      ({ lossSum, correct, seen, lr } = part);
      first = part.batch;
    } else {
      order = batchOrder(train.n, batchSize, dataRng);
    }
    for (let b = first; b < order.length; b++) {
      const idx = order[b];
      if (step >= totalSteps) break;
      const at: ScheduleContext = { step, totalSteps, stepsPerEpoch, schedule: schedule! };
      const point = { ...at, snapshot: () => snapshot(epoch - 1, { batch: b, orderRng, lossSum, correct, seen, lr }) };
      for (const h of hooks) record(h.beforeStep?.(point) ?? null);
      const t0 = performance.now();
      const batch = gather(train, fs, idx);
      if (data.augment) data.augment(batch.x, idx.length, dataRng);
      lr = learningRate(step, stepsPerEpoch, t);
      if (probesStep) model.layers.forEach((l) => l.setProbe(true));
      const [loss, hits] = trainStep(model, trainable, data, batch, { lr, momentum: t.momentum, weightDecay: t.weightDecay });
      for (const h of hooks) record(h.afterStep?.(at, lr) ?? null);
      stepTimes.push(performance.now() - t0);
      trainFlops += stepFlops(model.layers, idx.length);
      denseFlops += stepFlops(model.layers, idx.length, true);
      step++;
      if (!Number.isFinite(loss)) { diverged = step; break; }
      lossSum += loss * idx.length;
      correct += hits;
      seen += idx.length;
      events.onStep?.(step, totalSteps, loss);
      // let signals, timers and messages in now and then; a step ends at a consistent state
      if (performance.now() - lastYield > 25) {
        await new Promise((r) => setImmediate(r));
        lastYield = performance.now();
      }
      const stop = control.shouldStop?.() ?? false;
      if (stop || (checkpointMs > 0 && performance.now() - lastCheckpoint > checkpointMs)) {
        checkpoint(epoch - 1, { batch: b + 1, orderRng, lossSum, correct, seen, lr });
        if (stop) throw new RunInterrupted(step, epoch - 1);
      }
    }
    if (diverged !== undefined) break;
    const ev = evaluate(model, data, test, t.evalBatchSize);
    const m: EpochMetrics = {
      epoch, step, lr,
      train_loss: lossSum / seen,
      train_accuracy: correct / seen,
      test_loss: ev.loss,
      test_accuracy: ev.accuracy,
      active_params: model.layers.reduce((s, l) => s + l.activeCount(), 0),
      wall_s: (performance.now() - started) / 1000,
    };
    metrics.push(m);
    events.onEpoch?.(m);
    await new Promise((r) => setImmediate(r));
    lastYield = performance.now();
    if (epoch < epochs && step < totalSteps) {
      checkpoint(epoch, null);
      if (control.shouldStop?.()) throw new RunInterrupted(step, epoch);
    }
  }

  const last = metrics[metrics.length - 1];
  const active = model.layers.reduce((s, l) => s + l.activeCount(), 0);
  const size = model.layers.reduce((s, l) => s + l.rows * l.cols, 0);
  return {
    status: diverged === undefined ? 'done' : 'diverged',
    ...(diverged === undefined ? {} : { diverged_step: diverged }),
    epochs: metrics.length,
    steps: step,
    test_accuracy: last?.test_accuracy ?? NaN,
    best_test_accuracy: Math.max(...metrics.map((m) => m.test_accuracy)),
    train_accuracy: last?.train_accuracy ?? NaN,
    train_flops: trainFlops,
    dense_train_flops: denseFlops,
    active_params: active,
    total_params: size,
    achieved_sparsity: 1 - active / size,
    param_bytes: model.layers.reduce((s, l) => s + l.paramBytes(), 0),
    peak_rss_mb: peakRssMb(),
    wall_s: (performance.now() - started) / 1000,
    step_ms: median(stepTimes),
    update_ms: updateTimes.length ? median(updateTimes) : null,
    layers: model.layers.map((l) => ({ name: l.name, rows: l.rows, cols: l.cols, active: l.activeCount(), density: l.activeCount() / (l.rows * l.cols) })),
  };
}
