/**
 * The harness side of the optional method hooks (methods/types.ts): `initialize` (pruning at
 * initialisation, before the first step), `afterStep` (Top-KAST's backward set), `rounds`
 * (lottery-ticket rewinding), and the per-run method state they share. harness/train.ts calls
 * into this file at a few marked places; methods without hooks never reach it.
 */
import * as tf from '@tensorflow/tfjs';
import { getMethod } from '../methods/index.js';
import type { InitContext, Method, MethodState, ProbeOptions, RoundContext, StepContext, StepReport, UpdateReport, UpdateSchedule } from '../methods/types.js';
import { getModel } from '../models/index.js';
import type { Model } from '../models/model.js';
import { initialDensity } from '../models/sparse/index.js';
import { assignActiveCounts } from '../models/sparse/init.js';
import type { LayerState } from '../models/sparse/types.js';
import { featureSize, gather, samplesPerClass, type Dataset, type Split } from './data/index.js';
import type { Rng } from './rng.js';
import { activeBefore, checkHook, invariantsOf } from './invariants.js';
import type { RunSpec } from './spec.js';
import { crossEntropy, type EpochMetrics, type RunControl, type RunEvents, type RunSummary, type TrainState, type UpdateRecord } from './train.js';

/** An update record (as updates.jsonl holds) for a hook's report. */
export function hookRecord(model: Model, step: number, report: UpdateReport, ms: number, round?: number): UpdateRecord {
  const density: Record<string, number> = {};
  for (const l of model.layers) density[l.name] = l.activeCount() / (l.rows * l.cols);
  const active = model.layers.reduce((s, l) => s + l.activeCount(), 0);
  return { step, ...report, active, density, ms, ...(round === undefined ? {} : { round }) };
}

/**
 * Per layer, the active count that a sparse initialisation of this run at its target would get
 * (sparsity.distribution, holdActive): the per-layer budget of scope local, and in sum the global one.
 */
export function targetCounts(spec: RunSpec, data: Dataset): number[] {
  const entry = getModel(spec.model.name);
  const shapes = entry.layout(spec.model, data);
  const density = initialDensity(spec, shapes, entry.layout({ ...spec.model, width: 1 }, data));
  return assignActiveCounts(shapes, density, spec.sparsity.distribution);
}

/** Model tensors that are state but not params (batch-norm running statistics), when the model has them. */
function buffers(model: Model): tf.Variable[] {
  const m = model as Model & { buffers?(): { name: string; value: tf.Variable }[] };
  return (m.buffers?.() ?? []).map((b) => b.value);
}

/**
 * A probe pass for `initialize`: the loss over a fresh update batch (logits / temperature), or
 * SynFlow's data-free pass. Every layer records its input and output gradient, so the contract's
 * subsetGradient / denseGradient answer for that objective.
 */
export function initProbe(model: Model, data: Dataset, train: Split, schedule: UpdateSchedule | undefined, rng: Rng): ((o?: ProbeOptions) => void) & { release(): void } {
  const fs = featureSize(data.inputShape);
  let last: Int32Array | null = null;
  // buffers (batch-norm statistics, dropout streams) as they were before the last fresh-batch pass
  let before: tf.Tensor[] = [];
  const release = () => { before.forEach((t) => t.dispose()); before = []; };
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
      const bufs = buffers(model);
      if (o.sameBatch) bufs.forEach((b, i) => b.assign(before[i]));
      else {
        before.forEach((t) => t.dispose());
        before = bufs.map((b) => tf.keep(b.clone()));
      }
      const b = gather(train, fs, idx);
      const temperature = o.temperature ?? 1;
      tf.tidy(() => {
        const x = tf.tensor2d(b.x, [b.y.length, fs]);
        const y = tf.tensor1d(b.y, 'int32');
        tf.variableGrads(() => {
          const logits = model.forward(x, true);
          return crossEntropy(temperature === 1 ? logits : tf.div(logits, temperature) as tf.Tensor2D, y, data.classes);
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
  const tensors = [...trainable, ...buffers(model)];
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

/** Runs Method.initialize (fresh runs only) and returns its update record at step 0. */
export function runInitialize(method: Method, spec: RunSpec, model: Model, data: Dataset, train: Split, schedule: UpdateSchedule | undefined, rng: Rng, probeRng: Rng, state: MethodState): UpdateRecord {
  const t0 = performance.now();
  const probe = initProbe(model, data, train, schedule, probeRng);
  const ctx: InitContext = {
    layers: model.layers,
    rng,
    sparsity: spec.sparsity.target,
    schedule,
    targetCounts: targetCounts(spec, data),
    probe,
    state,
  };
  let report: UpdateReport;
  try {
    report = method.initialize!(ctx, spec.method);
  } finally {
    probe.release();
    model.layers.forEach((l) => l.clearProbe());
  }
  return hookRecord(model, 0, report, performance.now() - t0);
}

/** The training step's probe switch and Method.afterStep, for methods that have it. */
export function stepHooks(method: Method, spec: RunSpec, model: Model, state: MethodState) {
  const on = method.afterStep !== undefined;
  return {
    before(): void {
      if (on) model.layers.forEach((l) => l.setProbe(true));
    },
    /** after the SGD step of `ctx.step`; `ms`: the hook's own time */
    after(ctx: Omit<StepContext, 'layers' | 'sparsity' | 'momentum' | 'weightDecay' | 'state'>): (StepReport & { ms: number }) | null {
      if (!on) return null;
      const t0 = performance.now();
      model.layers.forEach((l) => l.setProbe(false));
      try {
        const r = method.afterStep!({
          ...ctx,
          layers: model.layers,
          sparsity: spec.sparsity.target,
          momentum: spec.training.momentum,
          weightDecay: spec.training.weightDecay,
          state,
        }, spec.method);
        return { ...r, ms: performance.now() - t0 };
      } finally {
        model.layers.forEach((l) => l.clearProbe());
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// rounds (lottery ticket)

/** One finished round of a multi-round run (result.json "rounds"). */
export interface RoundResult {
  round: number;
  status: 'done' | 'diverged';
  /** inactive fraction of the prunable weights during the round */
  sparsity: number;
  active_params: number;
  epochs: number;
  steps: number;
  test_accuracy: number;
  best_test_accuracy: number;
  train_accuracy: number;
  /** training FLOPs and wall time of the run up to the end of this round (cumulative) */
  train_flops: number;
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

type TrainPrepared = (spec: RunSpec, data: Dataset, model: Model, train: Split, test: Split, started: number, events: RunEvents, control: RunControl) => Promise<RunSummary>;

/**
 * The stored state with the model's current (pruned) structure: per layer, the current active
 * connections with the values and momenta they had at the rewind step (every one of them was
 * active then: rounds only prune). Bias, extra params and buffers come back as stored.
 */
export function rewoundLayers(model: Model, rewind: TrainState): LayerState[] {
  return model.layers.map((layer, l) => {
    const stored = rewind.layers[l];
    const now = layer.active();
    const index = new Map<number, number>();
    for (let i = 0; i < stored.connections.row.length; i++) index.set(stored.connections.row[i] * layer.cols + stored.connections.col[i], i);
    const n = now.row.length;
    const values = new Float32Array(n);
    const velocity = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const j = index.get(now.row[i] * layer.cols + now.col[i]);
      if (j === undefined) throw new Error(`rewind: ${layer.name} connection (${now.row[i]}, ${now.col[i]}) was not active at the rewind step`);
      values[i] = stored.values[j];
      velocity[i] = stored.velocity[j];
    }
    return { connections: now, values, velocity, bias: stored.bias.slice(), biasVelocity: stored.biasVelocity.slice() };
  });
}

const tag = <T extends object>(x: T, round: number): T & { round: number } => ({ ...x, round });

/**
 * Trains a multi-round method (Method.rounds): round after round inside one run, each a
 * trainPrepared call that starts from the rewind state with the structure pruned after the
 * previous round. Epoch metrics and update records carry `round`; checkpoints carry every
 * round's metrics and the RoundsState, so a resumed run continues inside the round it stopped in.
 * Cost counters (FLOPs, wall time) add up over the rounds; the summary is the last round's,
 * with every round's results under `rounds`.
 */
export async function trainRounds(trainPrepared: TrainPrepared, spec: RunSpec, data: Dataset, model: Model, train: Split, test: Split,
  started: number, events: RunEvents, control: RunControl): Promise<RunSummary> {
  const method = getMethod(spec.method.name);
  const hooks = method.rounds!;
  const outer = control.resume ?? null;
  const rs: RoundsState = outer?.rounds ?? { round: 0, rewind: null, results: [] };
  const state: MethodState = outer?.methodState ?? {};
  // the finished rounds' metrics and update records (tagged), and the current round's so far
  let doneMetrics: EpochMetrics[] = outer ? outer.metrics.filter((m) => m.round !== undefined && m.round < rs.round) : [];
  let doneUpdates: UpdateRecord[] = outer ? outer.updates.filter((u) => u.round !== undefined && u.round < rs.round) : [];
  let inner: TrainState | null = outer
    ? { ...outer, metrics: outer.metrics.filter((m) => m.round === rs.round), updates: outer.updates.filter((u) => u.round === rs.round) }
    : null;
  const rewindStep = hooks.rewindStep(spec.method);
  const wrap = (s: TrainState): TrainState => ({
    ...s,
    metrics: [...doneMetrics, ...s.metrics.map((m) => tag(m, rs.round))],
    updates: [...doneUpdates, ...s.updates.map((u) => tag(u, rs.round))],
    rounds: { round: rs.round, rewind: rs.rewind, results: [...rs.results] },
    methodState: state,
  });
  for (;;) {
    const round = rs.round;
    const roundMetrics: EpochMetrics[] = [...(inner?.metrics ?? [])];
    const roundUpdates: UpdateRecord[] = [...(inner?.updates ?? [])];
    const summary = await trainPrepared(spec, data, model, train, test, started, {
      onEpoch: (m) => { roundMetrics.push(m); events.onEpoch?.(tag(m, round)); },
      onUpdate: (u) => { roundUpdates.push(u); events.onUpdate?.(tag(u, round)); },
      onStep: events.onStep,
    }, {
      ...control,
      resume: inner,
      methodState: state,
      onCheckpoint: control.onCheckpoint && ((s) => control.onCheckpoint!(wrap(s))),
      rewindAt: round === 0 && rs.rewind === null ? { step: rewindStep, take: (s) => { rs.rewind = s; } } : undefined,
    });
    const active = model.layers.reduce((a, l) => a + l.activeCount(), 0);
    rs.results.push({
      round,
      status: summary.status,
      sparsity: 1 - active / summary.total_params,
      active_params: active,
      epochs: summary.epochs,
      steps: summary.steps,
      test_accuracy: summary.test_accuracy,
      best_test_accuracy: summary.best_test_accuracy,
      train_accuracy: summary.train_accuracy,
      train_flops: summary.train_flops,
      elapsed_s: summary.wall_s,
    });
    if (summary.status !== 'done') return { ...summary, rounds: rs.results };
    const t0 = performance.now();
    const ctx: RoundContext = { layers: model.layers, round, sparsity: spec.sparsity.target, schedule: spec.update, targetCounts: targetCounts(spec, data), state };
    const before = activeBefore(model.layers);
    const report = hooks.next(ctx, spec.method);
    checkHook({ method: spec.method.name, hook: 'round', step: summary.steps }, invariantsOf(method, spec.method), spec.update?.scope ?? 'global', model.layers, before, report ?? undefined);
    if (!report) return { ...summary, rounds: rs.results };
    if (!rs.rewind) throw new Error(`rounds: no state was stored at rewindStep ${rewindStep} (a round has ${summary.steps} steps)`);
    const record = hookRecord(model, summary.steps, report, performance.now() - t0, round);
    events.onUpdate?.(record);
    doneMetrics = [...doneMetrics, ...roundMetrics.map((m) => tag(m, round))];
    doneUpdates = [...doneUpdates, ...roundUpdates.map((u) => tag(u, round)), record];
    // the next round: the stored state, with the new structure and the cost so far
    rs.round = round + 1;
    inner = {
      ...rs.rewind,
      layers: rewoundLayers(model, rs.rewind),
      updates: [],
      counters: { trainFlops: summary.train_flops, denseFlops: summary.dense_train_flops, stepTimes: [], updateTimes: [], elapsedS: summary.wall_s },
      methodState: state,
    };
    // a checkpoint at the start of the round: a resumed run never trains a finished round again
    control.onCheckpoint?.(wrap(inner));
  }
}
