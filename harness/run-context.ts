/**
 * The run context: everything one run is made of, built once (harness/train.ts trainRun) and
 * handed to the loop, the method hooks and the rounds runner: spec, method, data, model, the
 * resolved schedule and step counts, the random streams, the per-layer target counts, the
 * invariants the method declared and its per-run state. Beside it, the things each of those
 * needed a copy of before: the probe pass (`makeProbe`: loss over an update batch, or SynFlow's
 * data-free pass), the update record (`updateRecord`), the model tensors no sparse layer owns
 * (`extraTensors`: params and buffers, saved and restored), the run's records (TrainState,
 * UpdateRecord, ...) and `checkedHook`, which runs any method hook under the harness' checks.
 *
 * The one decision a reader may question: the random streams live here, created once, and a
 * resumed loop (or a new lottery round) sets their state from its TrainState; the model's
 * initialisation draws from a separate stream of the same seed (fork 'init'), as before.
 */
import * as tf from '@tensorflow/tfjs';
import { getMethod } from '../methods/index.js';
import type { Method, MethodInvariants, MethodState, ProbeOptions, ScheduleContext, UpdateReport, UpdateSchedule } from '../methods/types.js';
import { getModel } from '../models/index.js';
import type { DataShape, Model } from '../models/model.js';
import { buildSparseLayers, initialDensity } from '../models/sparse/index.js';
import { assignActiveCounts } from '../models/sparse/init.js';
import type { LayerShape, LayerState } from '../models/sparse/types.js';
import { featureSize, gather, loadDataset, samplesPerClass, slicePerClass } from './data/index.js';
import type { Dataset, Split } from './data/types.js';
import { activeBefore, checkHook, invariantsOf, type Hook } from './invariants.js';
import { Rng } from '../core/rng.js';
import type { RunSpec } from './spec.js';

// ---------------------------------------------------------------------------------------------
// the run's records (metrics.jsonl, updates.jsonl, result.json, checkpoints)

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
  /** multi-round methods: where the rounds stand (harness/rounds.ts) */
  rounds?: RoundsState;
}

/**
 * One finished round of a multi-round run (result.json "rounds"): the round's own result fields,
 * with train_flops (and elapsed_s, the wall time) of the run up to the end of the round (cumulative).
 */
export interface RoundResult extends Pick<RunSummary, 'status' | 'active_params' | 'epochs' | 'steps' | 'test_accuracy' | 'best_test_accuracy' | 'train_accuracy' | 'train_flops' | 'dense_train_flops'> {
  round: number;
  /** inactive fraction of the prunable weights during the round */
  sparsity: number;
  elapsed_s: number;
}

/** Where a multi-round run stands (in its checkpoints, TrainState.rounds). */
export interface RoundsState {
  /** the round being trained */
  round: number;
  /** the training state stored at rewindStep of round 0 (null until that step) */
  rewind: TrainState | null;
  results: RoundResult[];
}

// ---------------------------------------------------------------------------------------------
// how the loop is steered, and the hooks it calls

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
}

/** What an outer runner (harness/rounds.ts) adds: hooks the loop calls before the method's (harness/train.ts trainLoop). */
export interface LoopControl extends RunControl {
  hooks?: LoopHook[];
}

/** The loop, as an outer runner receives it. */
export type TrainLoop = (ctx: RunContext, events: RunEvents, control: LoopControl) => Promise<RunSummary>;

/** What a hook did: the FLOPs it spent (training cost), and the update it recorded, if any. */
export interface HookOutcome {
  flops: number;
  record: UpdateRecord | null;
  /** the hook's time counts as update time (the run's update_ms median) */
  updateMs?: number;
}

/** Where the loop stands before a step: for hooks that store the training state (lottery's rewind). */
export interface StepPoint extends ScheduleContext {
  /** the training state as a checkpoint taken now would hold it */
  snapshot(): TrainState;
}

/** What the loop calls, in list order, at fixed points of a run. */
export interface LoopHook {
  /** once, before the first step of a fresh run (never on resume) */
  start?(): HookOutcome | null;
  /** before each training step */
  beforeStep?(at: StepPoint): HookOutcome | null;
  /** the step's own forward/backward records every layer's probe for afterStep */
  probesStep?: boolean;
  /** after each training step's SGD update, with that step's learning rate */
  afterStep?(at: ScheduleContext, lr: number): HookOutcome | null;
}

// ---------------------------------------------------------------------------------------------
// data and model of a run

/**
 * Smoke runs (--smoke): every code path of a cell for a few steps, cheap enough to check a whole
 * paper grid on a CPU: the first 32 training and 16 test samples spread over the classes, batches
 * of at most 16, at most two epochs, prune-grow updates every 2 steps.
 */
export const SMOKE = { trainSamples: 32, testSamples: 16, batchSize: 16, epochs: 2, delta: 2 };

/** Mean softmax cross-entropy, from primitives every backend has. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, classes: number): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, classes), logp), 1))) as tf.Scalar;
}

/** A batch as tensors: x [n, features], y [n] int32. */
export function batchTensors(data: DataShape, b: { x: Float32Array; y: Int32Array }): { x: tf.Tensor2D; y: tf.Tensor1D } {
  const n = b.y.length;
  return { x: tf.tensor2d(b.x, [n, featureSize(data.inputShape)]), y: tf.tensor1d(b.y, 'int32') };
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
  const { name: datasetName, ...datasetOptions } = spec.dataset;
  const data = loadDataset(datasetName, datasetOptions, { dataDir: env.dataDir, seed: spec.seed });
  const smokeSlice = (split: Split, n: number) => slicePerClass(split, data.classes, Math.ceil(n / data.classes), n);
  const train = spec.smoke ? smokeSlice(data.train, SMOKE.trainSamples) : data.train;
  const test = spec.smoke ? smokeSlice(data.test, SMOKE.testSamples) : data.test;
  return { spec, data, model: buildModel(spec, data), train, test };
}

/**
 * A run's prunable geometry: the layer shapes, the density a sparse initialisation at the target
 * gets (sparsity.holdActive: the active count of width 1), and per layer the active count that
 * initialisation gets (sparsity.distribution): what scope local keeps per layer, in sum the global budget.
 */
export function runGeometry(spec: RunSpec, data: DataShape): { shapes: LayerShape[]; density: number; targetCounts: number[] } {
  const entry = getModel(spec.model.name);
  const shapes = entry.layout(spec.model, data);
  const density = initialDensity(spec, shapes, entry.layout({ ...spec.model, width: 1 }, data));
  return { shapes, density, targetCounts: assignActiveCounts(shapes, density, spec.sparsity.distribution) };
}

/** The model of a run from its seed and the data's shape alone (prepareRun's; bench step builds it without data). */
export function buildModel(spec: RunSpec, data: DataShape): Model {
  const method = getMethod(spec.method.name);
  const { shapes, density } = runGeometry(spec, data);
  const layers = buildSparseLayers(shapes, {
    density: !method.sparse || method.startsDense(spec.method) ? 1 : density,
    distribution: spec.sparsity.distribution,
    // a method without sparsity trains plain dense weights: the masked format with every connection on
    format: method.sparse ? spec.sparsity.format : 'masked',
    rng: new Rng(spec.seed).fork('init'),
  });
  return getModel(spec.model.name).build(spec.model, data, layers);
}

// ---------------------------------------------------------------------------------------------
// model tensors that no sparse layer owns

/** Model tensors that are state but not params (batch-norm running statistics), when the model has them. */
function modelBuffers(model: Model): { name: string; value: tf.Variable }[] {
  return (model as Model & { buffers?(): { name: string; value: tf.Variable }[] }).buffers?.() ?? [];
}

/** The params and buffers of a model that its sparse layers do not own. */
function extraTensors(model: Model): { name: string; value: tf.Variable; velocity?: tf.Variable }[] {
  const owned = new Set(model.layers.flatMap((l) => l.params().map((p) => p.value)));
  const extra: { name: string; value: tf.Variable; velocity?: tf.Variable }[] = model.params()
    .filter((p) => !owned.has(p.value))
    .map((p) => ({ name: p.name, value: p.value, velocity: p.velocity }));
  for (const b of modelBuffers(model)) extra.push({ name: `buffer:${b.name}`, value: b.value });
  return extra;
}

/** The arrays of every extra tensor (TrainState.params). */
export function saveExtraTensors(model: Model): NamedArrays[] {
  return extraTensors(model).map((x) => ({
    name: x.name,
    shape: [...x.value.shape],
    value: x.value.dataSync().slice() as Float32Array,
    ...(x.velocity ? { velocity: x.velocity.dataSync().slice() as Float32Array } : {}),
  }));
}

/** Every layer and extra tensor of the model from a training state. */
export function restoreModel(model: Model, s: TrainState): void {
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

// ---------------------------------------------------------------------------------------------
// the probe pass

/** A probe pass (methods/types.ts ProbeOptions); `release` frees what a sameBatch pass would need, and is called after every hook. */
export type Probe = ((o?: ProbeOptions) => void) & { release(): void };

/**
 * The probe pass: a forward/backward pass over a fresh update batch (samplesPerClass per class,
 * drawn with `rng`; logits / temperature) or over the previous one (sameBatch), or SynFlow's
 * data-free pass. Every layer records its input and output gradient, so the contract's
 * subsetGradient / denseGradient answer for that objective until the layer's probe is cleared.
 */
export function makeProbe(model: Model, data: Dataset, train: Split, schedule: UpdateSchedule | undefined, rng: Rng): Probe {
  const fs = featureSize(data.inputShape);
  let last: Int32Array | null = null;
  // buffers (batch-norm statistics, dropout streams) as they were before the last fresh-batch pass
  let before: tf.Tensor[] = [];
  const release = () => { before.forEach((t) => t.dispose()); before = []; last = null; };
  return Object.assign((o: ProbeOptions = {}) => {
    const trainable = model.params().map((p) => p.value);
    model.layers.forEach((l) => l.setProbe(true));
    try {
      if (o.synflow) return synflowPass(model, fs, trainable, o.zeroBiases ?? false);
      if (!schedule) throw new Error('probe: the method has no "update" group (samplesPerClass)');
      if (o.sameBatch && !last) throw new Error('probe: sameBatch without a previous probe');
      const idx = o.sameBatch ? last! : samplesPerClass(train, data.classes, schedule.samplesPerClass, rng);
      last = idx;
      // the same batch sees the same model state: same dropout masks, same normalisation statistics
      const bufs = modelBuffers(model).map((b) => b.value);
      if (o.sameBatch) bufs.forEach((b, i) => b.assign(before[i]));
      else {
        before.forEach((t) => t.dispose());
        before = bufs.map((b) => tf.keep(b.clone()));
      }
      const temperature = o.temperature ?? 1;
      tf.tidy(() => {
        const b = batchTensors(data, gather(train, fs, idx));
        tf.variableGrads(() => {
          const logits = model.forward(b.x, true);
          return crossEntropy(temperature === 1 ? logits : tf.div(logits, temperature) as tf.Tensor2D, b.y, data.classes);
        }, trainable);
      });
    } finally {
      model.layers.forEach((l) => l.setProbe(false));
    }
  }, { release });
}

/**
 * SynFlow (Tanaka et al. 2020, as in their code and the GSE authors'): every parameter and
 * buffer (weights, biases, normalisation statistics) replaced by its absolute value (with
 * `zeroBiases`, the layers' biases by 0), one all-ones input, evaluation mode, R = sum of the
 * outputs, one backward pass; then every tensor gets its saved value back, bit for bit
 * (tf.Variable.assign: the layers' probes survive).
 *
 * float32 here (the authors use float64): R is a product over the depth and overflows in deep
 * networks (ResNet-56). With zeroBiases the pass is positively homogeneous, so input x c and
 * objective x s (c = s = 2^-k, k = 0, 40, 80, 120 until R and every gradient are finite) scale
 * every score by the same c * s and change no decision. Without it a non-finite pass is an error.
 */
function synflowPass(model: Model, fs: number, trainable: tf.Variable[], zeroBiases: boolean): void {
  const tensors = [...trainable, ...modelBuffers(model).map((b) => b.value)];
  const biases = new Set(model.layers.flatMap((l) => l.params().filter((p) => p.name.endsWith('/bias')).map((p) => p.value)));
  const saved = tensors.map((t) => tf.keep(t.clone()));
  try {
    tf.tidy(() => { for (const t of tensors) t.assign(zeroBiases && biases.has(t) ? tf.zerosLike(t) : tf.abs(t)); });
    for (const k of zeroBiases ? [0, 40, 80, 120] : [0]) {
      const scale = Math.pow(2, -k);
      let r = NaN;
      const finite = tf.tidy(() => {
        const x = tf.fill([1, fs], scale);
        const { grads } = tf.variableGrads(() => {
          const out = tf.sum(model.forward(x, false)) as tf.Scalar;
          r = out.dataSync()[0];
          return tf.mul(out, scale) as tf.Scalar;
        }, trainable);
        // a layer pruned to no connections has an empty gradient, and tf.all of an empty tensor is not true on every backend
        return Object.values(grads).every((g) => g.size === 0 || tf.all(tf.isFinite(g)).dataSync()[0] === 1);
      });
      if (Number.isFinite(r) && finite) return;
    }
    throw new Error(zeroBiases
      ? 'synflow: R overflows float32 even with the input and objective scaled by 2^-120'
      : 'synflow: R = sum of the outputs overflows float32 in this network; use the synflow option biases: "off" (biases 0 during scoring, which lets the pass rescale exactly)');
  } finally {
    tensors.forEach((t, i) => t.assign(saved[i]));
    saved.forEach((s) => s.dispose());
  }
}

// ---------------------------------------------------------------------------------------------
// the run context

export interface RunContext extends PreparedRun {
  method: Method;
  /** the "update" group (smoke: an update every SMOKE.delta steps at most); absent for methods without it */
  schedule?: UpdateSchedule;
  /** the update group's scope (global when the method has no update group) */
  scope: UpdateSchedule['scope'];
  epochs: number;
  batchSize: number;
  stepsPerEpoch: number;
  totalSteps: number;
  /** the run's streams: data order and augmentation, the method's own, the update batches */
  rng: { data: Rng; method: Rng; probe: Rng };
  /** per layer, the active count of a sparse initialisation at the target (runGeometry) */
  targetCounts: number[];
  /** the sparsity the method is to reach: 1 - sum(targetCounts) / size under holdActive, else the config's target */
  sparsity: number;
  invariants: MethodInvariants;
  /** the method's per-run state, shared by every hook and round, kept in checkpoints */
  methodState: MethodState;
  probe: Probe;
  started: number;
}

/** The run context of a prepared run; `resume` gives the method state it goes on with. */
export function createRunContext(run: PreparedRun, opts: { resume?: TrainState | null; started?: number } = {}): RunContext {
  const { spec, data, train } = run;
  const method = getMethod(spec.method.name);
  const t = spec.training;
  const epochs = spec.smoke ? Math.min(SMOKE.epochs, t.epochs) : t.epochs;
  const batchSize = spec.smoke ? Math.min(SMOKE.batchSize, t.batchSize) : t.batchSize;
  const schedule = spec.update && (spec.smoke ? { ...spec.update, delta: Math.min(spec.update.delta, SMOKE.delta) } : spec.update);
  const stepsPerEpoch = Math.ceil(train.n / batchSize);
  const totalSteps = t.maxSteps > 0 ? Math.min(t.maxSteps, epochs * stepsPerEpoch) : epochs * stepsPerEpoch;
  const root = new Rng(spec.seed);
  const rng = { data: root.fork('data'), method: root.fork('method'), probe: root.fork('probe') };
  const { density, targetCounts } = runGeometry(spec, data);
  return {
    ...run,
    method,
    schedule,
    scope: schedule?.scope ?? 'global',
    epochs,
    batchSize,
    stepsPerEpoch,
    totalSteps,
    rng,
    targetCounts,
    sparsity: spec.sparsity.holdActive ? 1 - density : spec.sparsity.target,
    invariants: invariantsOf(method, spec.method),
    methodState: opts.resume?.methodState ?? {},
    probe: makeProbe(run.model, data, train, schedule, rng.probe),
    started: opts.started ?? performance.now(),
  };
}

/** An update record (as updates.jsonl holds) for a hook's report, with the layers as they are now. */
export function updateRecord(model: Model, step: number, report: UpdateReport, ms: number, round?: number): UpdateRecord {
  const density: Record<string, number> = {};
  for (const l of model.layers) density[l.name] = l.activeCount() / (l.rows * l.cols);
  const active = model.layers.reduce((s, l) => s + l.activeCount(), 0);
  return { step, ...report, active, density, ms, ...(round === undefined ? {} : { round }) };
}

/**
 * Runs one method hook the way the harness runs every hook: the layers' active sets taken
 * before, the hook, then every layer's probe cleared and the probe released, and the invariants
 * checked (harness/invariants.ts; a violation throws, failing the run). `report` picks the hook's
 * update report out of its result (none: the hook may not change the connectivity). Returns the
 * result, the hook's own time and, when it reported an update, its record.
 */
export function checkedHook<R>(ctx: RunContext, hook: Hook, step: number, call: () => R, report: (r: R) => UpdateReport | null | undefined, round?: number): { result: R; ms: number; record: UpdateRecord | null } {
  const before = activeBefore(ctx.model.layers);
  const t0 = performance.now();
  let result: R;
  try {
    result = call();
  } finally {
    ctx.model.layers.forEach((l) => l.clearProbe());
    ctx.probe.release();
  }
  const ms = performance.now() - t0;
  const r = report(result) ?? undefined;
  checkHook({ method: ctx.spec.method.name, hook, step }, ctx.invariants, ctx.scope, ctx.model.layers, before, r);
  return { result, ms, record: r ? updateRecord(ctx.model, step, r, ms, round) : null };
}
