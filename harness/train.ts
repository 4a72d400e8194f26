import * as tf from '@tensorflow/tfjs';
import { momentumOf } from '../methods/dst.js';
import { getMethod } from '../methods/index.js';
import type { MethodState, ScheduleContext, UpdateContext, UpdateReport } from '../methods/types.js';
import { getModel } from '../models/index.js';
import type { DataShape, Model } from '../models/model.js';
import { buildSparseLayers, initialDensity } from '../models/sparse/index.js';
import type { LayerState } from '../models/sparse/types.js';
import { batchOrder, featureSize, gather, loadDataset, samplesPerClass, slicePerClass, type Dataset, type Split } from './data/index.js';
import { median, peakRssMb, stepFlops } from './meters.js';
import { Rng } from './rng.js';
import { learningRate, sgdStep, type SgdOptions } from './sgd.js';
import type { RunSpec } from './spec.js';
import { activeBefore, checkHook, checkTarget, invariantsOf, type Hook } from './invariants.js';
import { hookRecord, runInitialize, stepHooks, targetCounts, trainRounds, type RoundResult, type RoundsState } from './method-hooks.js';

export interface EpochMetrics {
  epoch: number;
  step: number;
  lr: number;
  train_loss: number;
  train_accuracy: number;
  test_loss: number;
  test_accuracy: number;
  active_params: number;
  wall_s: number;
  /** multi-round methods (lottery): the round this epoch belongs to */
  round?: number;
}

export interface UpdateRecord extends UpdateReport {
  step: number;
  active: number;
  density: Record<string, number>;
  ms: number;
  /** multi-round methods (lottery): the round this update belongs to */
  round?: number;
}

export interface LayerSummary {
  name: string;
  rows: number;
  cols: number;
  active: number;
  density: number;
}

export interface RunSummary {
  status: 'done' | 'diverged';
  /** step at which the loss stopped being finite */
  diverged_step?: number;
  epochs: number;
  steps: number;
  test_accuracy: number;
  best_test_accuracy: number;
  train_accuracy: number;
  train_flops: number;
  dense_train_flops: number;
  active_params: number;
  total_params: number;
  /** 1 - active_params / total_params, measured from the layers at the end (not the config's target) */
  achieved_sparsity: number;
  param_bytes: number;
  peak_rss_mb: number;
  wall_s: number;
  step_ms: number;
  update_ms: number | null;
  layers: LayerSummary[];
  /** multi-round methods (lottery): every round's result; the fields above are the last round's */
  rounds?: RoundResult[];
}

export interface RunEvents {
  onEpoch?(m: EpochMetrics): void;
  onUpdate?(u: UpdateRecord): void;
  onStep?(step: number, totalSteps: number, loss: number): void;
}

/**
 * Smoke runs (--smoke): every code path of a cell for a few steps, cheap enough to check a whole
 * paper grid on a CPU: the first 32 training and 16 test samples spread over the classes, batches
 * of at most 16, at most two epochs, prune-grow updates every 2 steps.
 */
const SMOKE = { trainSamples: 32, testSamples: 16, batchSize: 16, epochs: 2, delta: 2 };

/** Mean softmax cross-entropy, from primitives every backend has. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, classes: number): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, classes), logp), 1))) as tf.Scalar;
}

function batchTensors(data: DataShape, b: { x: Float32Array; y: Int32Array }): { x: tf.Tensor2D; y: tf.Tensor1D } {
  const n = b.y.length;
  return { x: tf.tensor2d(b.x, [n, featureSize(data.inputShape)]), y: tf.tensor1d(b.y, 'int32') };
}

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

export interface PreparedRun {
  spec: RunSpec;
  data: Dataset;
  model: Model;
  train: Split;
  test: Split;
}

/** Data and model of a run, built from its seed alone. */
export function prepareRun(spec: RunSpec, env: { dataDir?: string }): PreparedRun {
  const rng = new Rng(spec.seed);
  const { name: datasetName, ...datasetOptions } = spec.dataset;
  const data = loadDataset(datasetName, datasetOptions, { dataDir: env.dataDir, seed: spec.seed });
  const smokeSlice = (split: Split, n: number) => slicePerClass(split, data.classes, Math.ceil(n / data.classes), n);
  const train = spec.smoke ? smokeSlice(data.train, SMOKE.trainSamples) : data.train;
  const test = spec.smoke ? smokeSlice(data.test, SMOKE.testSamples) : data.test;
  return { spec, data, model: buildModel(spec, data, rng), train, test };
}

/** The model of a run from its seed and the data's shape alone (prepareRun's; bench step builds it without data). */
export function buildModel(spec: RunSpec, data: DataShape, rng = new Rng(spec.seed)): Model {
  const entry = getModel(spec.model.name);
  const method = getMethod(spec.method.name);
  const shapes = entry.layout(spec.model, data);
  const density = !method.sparse || method.startsDense(spec.method) ? 1 : initialDensity(spec, shapes, entry.layout({ ...spec.model, width: 1 }, data));
  const layers = buildSparseLayers(shapes, {
    density,
    distribution: spec.sparsity.distribution,
    // a method without sparsity trains plain dense weights: the masked format with every connection on
    format: method.sparse ? spec.sparsity.format : 'masked',
    rng: rng.fork('init'),
  });
  return entry.build(spec.model, data, layers);
}

/** Arrays of one model tensor that no sparse layer owns (e.g. a batch-norm scale), by name. */
export interface NamedArrays {
  name: string;
  shape: number[];
  value: Float32Array;
  /** the SGD momentum buffer (absent for non-trainable buffers) */
  velocity?: Float32Array;
}

/** Where a checkpoint taken inside an epoch stands in that epoch. */
export interface PartialEpoch {
  /** batches of this epoch already trained */
  batch: number;
  /** the data stream's state before this epoch's batch order was drawn */
  orderRng: number[];
  lossSum: number;
  correct: number;
  seen: number;
  lr: number;
}

/** Everything a run needs to go on exactly as if it had never stopped. */
export interface TrainState {
  /** training steps done */
  step: number;
  /** epochs completed (evaluated and reported) */
  epoch: number;
  /** set when the checkpoint was taken inside epoch `epoch + 1` */
  partial: PartialEpoch | null;
  rng: { data: number[]; method: number[]; probe: number[] };
  /** every sparse layer's saveState(), in model order */
  layers: LayerState[];
  /** model params (and buffers) no layer owns */
  params: NamedArrays[];
  metrics: EpochMetrics[];
  updates: UpdateRecord[];
  counters: { trainFlops: number; denseFlops: number; stepTimes: number[]; updateTimes: number[]; elapsedS: number };
  /** the method's per-run state (methods/types.ts MethodState), when it keeps one */
  methodState?: MethodState;
  /** multi-round methods: where the rounds stand (harness/method-hooks.ts) */
  rounds?: RoundsState;
}

/** How a caller steers a run: resume from a state, receive checkpoints, ask it to stop. */
export interface RunControl {
  /** continue from this state instead of the start */
  resume?: TrainState | null;
  /** receives a checkpoint at the end of every epoch but the last, every `checkpointSeconds` inside long epochs, and before stopping */
  onCheckpoint?(s: TrainState): void;
  /** also checkpoint inside an epoch when this much time passed since the last one (default 600; 0: only at epoch ends) */
  checkpointSeconds?: number;
  /** polled after every step: when true, the run checkpoints and throws RunInterrupted */
  shouldStop?(): boolean;
  /** multi-round methods (harness/method-hooks.ts): receives the training state when `step` is reached */
  rewindAt?: { step: number; take(s: TrainState): void };
  /** multi-round methods: the method state shared by the rounds */
  methodState?: MethodState;
}

/** Thrown by trainRun when RunControl.shouldStop asked it to stop (after a checkpoint). */
export class RunInterrupted extends Error {
  constructor(readonly step: number, readonly epoch: number) {
    super(`interrupted at step ${step} (epoch ${epoch})`);
    this.name = 'RunInterrupted';
  }
}

/** Optional model extension: tensors that are state but not params (e.g. batch-norm running statistics). */
interface WithBuffers { buffers?(): { name: string; value: tf.Variable }[] }

/** Trains one run to the end (or, under `control`, from a checkpoint) and returns its summary; the model is disposed afterwards. */
export async function trainRun(spec: RunSpec, env: { dataDir?: string }, events: RunEvents = {}, control: RunControl = {}): Promise<RunSummary> {
  const started = performance.now();
  const { data, model, train, test } = prepareRun(spec, env);
  try {
    const summary = getMethod(spec.method.name).rounds
      ? await trainRounds(trainPrepared, spec, data, model, train, test, started, events, control)
      : await trainPrepared(spec, data, model, train, test, started, events, control);
    // a diverged run stopped early: its sparsity is a result, not a broken promise
    if (summary.status === 'done') checkTarget({ method: spec.method.name, hook: 'end of training', step: summary.steps }, model.layers, runTargets(spec, data));
    return summary;
  } finally {
    model.dispose();
  }
}

/** What the achieved sparsity must equal: the per-layer counts at the target, or null (every connection) for a method without sparsity. */
function runTargets(spec: RunSpec, data: Dataset): number[] | null {
  return getMethod(spec.method.name).sparse ? targetCounts(spec, data) : null;
}

/** The params and buffers of a model that its sparse layers do not own. */
function extraTensors(model: Model): { name: string; value: tf.Variable; velocity?: tf.Variable }[] {
  const owned = new Set(model.layers.flatMap((l) => l.params().map((p) => p.value)));
  const extra: { name: string; value: tf.Variable; velocity?: tf.Variable }[] = model.params()
    .filter((p) => !owned.has(p.value))
    .map((p) => ({ name: p.name, value: p.value, velocity: p.velocity }));
  const buffers = (model as Model & WithBuffers).buffers?.() ?? [];
  for (const b of buffers) extra.push({ name: `buffer:${b.name}`, value: b.value });
  return extra;
}

function restoreModel(model: Model, s: TrainState): void {
  if (s.layers.length !== model.layers.length) throw new Error(`checkpoint has ${s.layers.length} layers, the model ${model.layers.length}`);
  model.layers.forEach((l, i) => l.loadState(s.layers[i]));
  const saved = new Map(s.params.map((p) => [p.name, p]));
  for (const t of extraTensors(model)) {
    const p = saved.get(t.name);
    if (!p) throw new Error(`checkpoint lacks model tensor ${t.name}`);
    if (p.value.length !== t.value.size) throw new Error(`checkpoint tensor ${t.name} has ${p.value.length} values, the model ${t.value.size}`);
    tf.tidy(() => {
      t.value.assign(tf.tensor(p.value, t.value.shape, t.value.dtype));
      if (t.velocity && p.velocity) t.velocity.assign(tf.tensor(p.velocity, t.velocity.shape, t.velocity.dtype));
    });
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

/** The training loop of a prepared run (trainRun's body; multi-round methods run it once per round). */
export async function trainPrepared(spec: RunSpec, data: Dataset, model: Model, train: Split, test: Split, started: number, events: RunEvents, control: RunControl): Promise<RunSummary> {
  const rng = new Rng(spec.seed);
  const dataRng = rng.fork('data');
  const methodRng = rng.fork('method');
  const probeRng = rng.fork('probe');
  const method = getMethod(spec.method.name);
  const t = spec.training;
  const epochs = spec.smoke ? Math.min(SMOKE.epochs, t.epochs) : t.epochs;
  const batchSize = spec.smoke ? Math.min(SMOKE.batchSize, t.batchSize) : t.batchSize;
  const schedule = spec.update && (spec.smoke ? { ...spec.update, delta: Math.min(spec.update.delta, SMOKE.delta) } : spec.update);
  const stepsPerEpoch = Math.ceil(train.n / batchSize);
  const totalSteps = t.maxSteps > 0 ? Math.min(t.maxSteps, epochs * stepsPerEpoch) : epochs * stepsPerEpoch;
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

  // optional method hooks (methods/types.ts, harness/method-hooks.ts): per-run state, one-time initialisation, after-step
  const methodState: MethodState = resume?.methodState ?? control.methodState ?? {};
  const hooks = stepHooks(method, spec, model, methodState);
  // the invariants the harness checks after every hook (harness/invariants.ts)
  const invariants = invariantsOf(method, spec.method);
  const scope = schedule?.scope ?? 'global';
  const at = (hook: Hook, s: number) => ({ method: spec.method.name, hook, step: s });
  if (!resume && method.initialize) {
    const before = activeBefore(model.layers);
    const record = runInitialize(method, spec, model, data, train, schedule, methodRng, probeRng, methodState);
    checkHook(at('initialize', 0), invariants, scope, model.layers, before, record);
    trainable = model.params().map((p) => p.value);
    trainFlops += record.flops;
    updateTimes.push(record.ms);
    updates.push(record);
    events.onUpdate?.(record);
  }
  // a method that keeps its count is at its target from the start
  if (!resume && invariants.counts === 'kept') checkTarget(at('initialize', 0), model.layers, runTargets(spec, data));

  const probe = () => {
    const idx = samplesPerClass(train, data.classes, schedule!.samplesPerClass, probeRng);
    model.layers.forEach((l) => l.setProbe(true));
    try {
      tf.tidy(() => {
        const b = batchTensors(data, gather(train, fs, idx));
        tf.variableGrads(() => crossEntropy(model.forward(b.x, true), b.y, data.classes), trainable);
      });
    } finally {
      model.layers.forEach((l) => l.setProbe(false));
    }
  };

  const snapshot = (epochsDone: number, partial: PartialEpoch | null): TrainState => ({
    step,
    epoch: epochsDone,
    partial,
    rng: { data: dataRng.state(), method: methodRng.state(), probe: probeRng.state() },
    layers: model.layers.map((l) => l.saveState()),
    params: extraTensors(model).map((x) => ({
      name: x.name,
      shape: [...x.value.shape],
      value: x.value.dataSync().slice() as Float32Array,
      ...(x.velocity ? { velocity: x.velocity.dataSync().slice() as Float32Array } : {}),
    })),
    metrics: [...metrics],
    updates: [...updates],
    counters: { trainFlops, denseFlops, stepTimes: [...stepTimes], updateTimes: [...updateTimes], elapsedS: (performance.now() - started) / 1000 },
    ...(Object.keys(methodState).length ? { methodState: structuredClone(methodState) } : {}),
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
      if (control.rewindAt && step === control.rewindAt.step) control.rewindAt.take(snapshot(epoch - 1, { batch: b, orderRng, lossSum, correct, seen, lr }));
      const ctx: ScheduleContext = { step, totalSteps, stepsPerEpoch, schedule: schedule! };
      if (method.updates && method.updatesAt(ctx, spec.method)) {
        const before = activeBefore(model.layers);
        const t0 = performance.now();
        const uctx: UpdateContext = { ...ctx, layers: model.layers, rng: methodRng, sparsity: spec.sparsity.target, probe, momentum: (l, c) => momentumOf(model.layers[l], c) };
        const report = method.update(uctx, spec.method);
        model.layers.forEach((l) => l.clearProbe());
        trainable = model.params().map((p) => p.value);
        const ms = performance.now() - t0;
        checkHook(at('update', step), invariants, scope, model.layers, before, report);
        updateTimes.push(ms);
        trainFlops += report.flops;
        const density: Record<string, number> = {};
        for (const l of model.layers) density[l.name] = l.activeCount() / (l.rows * l.cols);
        const record: UpdateRecord = { step, ...report, active: model.layers.reduce((s, l) => s + l.activeCount(), 0), density, ms };
        updates.push(record);
        events.onUpdate?.(record);
      }
      const beforeStep = method.afterStep ? activeBefore(model.layers) : null;
      const t0 = performance.now();
      const batch = gather(train, fs, idx);
      if (data.augment) data.augment(batch.x, idx.length, dataRng);
      lr = learningRate(step, stepsPerEpoch, t);
      hooks.before();
      const [loss, hits] = trainStep(model, trainable, data, batch, { lr, momentum: t.momentum, weightDecay: t.weightDecay });
      const hooked = hooks.after({ step, totalSteps, stepsPerEpoch, schedule: schedule!, lr });
      if (hooked) trainFlops += hooked.flops;
      if (hooked?.update) {
        trainable = model.params().map((p) => p.value);
        const record = hookRecord(model, step, hooked.update, hooked.ms);
        updates.push(record);
        events.onUpdate?.(record);
      }
      stepTimes.push(performance.now() - t0);
      if (beforeStep) checkHook(at('afterStep', step), invariants, scope, model.layers, beforeStep, hooked?.update);
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
    active_params: model.layers.reduce((s, l) => s + l.activeCount(), 0),
    total_params: model.layers.reduce((s, l) => s + l.rows * l.cols, 0),
    achieved_sparsity: 1 - model.layers.reduce((s, l) => s + l.activeCount(), 0) / model.layers.reduce((s, l) => s + l.rows * l.cols, 0),
    param_bytes: model.layers.reduce((s, l) => s + l.paramBytes(), 0),
    peak_rss_mb: peakRssMb(),
    wall_s: (performance.now() - started) / 1000,
    step_ms: median(stepTimes),
    update_ms: updateTimes.length ? median(updateTimes) : null,
    layers: model.layers.map((l) => ({ name: l.name, rows: l.rows, cols: l.cols, active: l.activeCount(), density: l.activeCount() / (l.rows * l.cols) })),
  };
}
