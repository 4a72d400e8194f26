/**
 * The rounds runner: a multi-round method (Method.rounds, lottery-ticket rewinding) as an outer
 * runner around the training loop, inside one run folder. Round 0 trains from the
 * initialisation and, through a loop hook, stores the training state at the method's rewind
 * step; after each round the method prunes (RoundHooks.next, under the harness' checks) and the
 * next round trains from the stored state with the pruned structure.
 *
 * The one decision a reader may question: the loop is a parameter (train.ts passes trainLoop),
 * so this file does not import train.ts, which imports it.
 */
import type { RoundContext } from '../methods/types.js';
import type { Model } from '../models/model.js';
import type { LayerState } from '../models/sparse/types.js';
import {
  checkedHook, type EpochMetrics, type LoopHook, type RoundsState, type RunContext, type RunControl, type RunEvents, type RunSummary, type TrainLoop,
  type TrainState, type UpdateRecord,
} from './run-context.js';

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

/** A loop hook that hands over the training state when step `step` is reached (before that step's update). */
export function captureAt(step: number, take: (s: TrainState) => void): LoopHook {
  return {
    beforeStep(at) {
      if (at.step === step) take(at.snapshot());
      return null;
    },
  };
}

/**
 * Trains a multi-round method (Method.rounds): round after round inside one run, each a loop call
 * that starts from the rewind state with the structure pruned after the previous round. Epoch
 * metrics and update records carry `round`; checkpoints carry every round's metrics and the
 * RoundsState, so a resumed run continues inside the round it stopped in. Cost counters (FLOPs,
 * wall time) add up over the rounds, except the dense reference (dense_train_flops: one training
 * of the schedule, round 0's); the summary is the last round's, with every round's results under
 * `rounds`.
 */
export async function trainRounds(ctx: RunContext, loop: TrainLoop, events: RunEvents, control: RunControl): Promise<RunSummary> {
  const { spec, model } = ctx;
  const hooks = ctx.method.rounds!;
  const outer = control.resume ?? null;
  const rs: RoundsState = outer?.rounds ?? { round: 0, rewind: null, results: [] };
  const state = ctx.methodState;
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
  // train_flops adds up every round; the dense reference is one training of the schedule (round
  // 0's), so that train_flops / dense_train_flops is the whole method's cost against training dense once
  // (a checkpoint written before round results carried it: the summed reference, as then)
  const finish = (summary: RunSummary): RunSummary => ({ ...summary, dense_train_flops: rs.results[0].dense_train_flops ?? summary.dense_train_flops, rounds: rs.results });
  for (;;) {
    const round = rs.round;
    const roundMetrics: EpochMetrics[] = [...(inner?.metrics ?? [])];
    const roundUpdates: UpdateRecord[] = [...(inner?.updates ?? [])];
    const summary = await loop(ctx, {
      onEpoch: (m) => { roundMetrics.push(m); events.onEpoch?.(tag(m, round)); },
      onUpdate: (u) => { roundUpdates.push(u); events.onUpdate?.(tag(u, round)); },
      onStep: events.onStep,
    }, {
      ...control,
      resume: inner,
      onCheckpoint: control.onCheckpoint && ((s) => control.onCheckpoint!(wrap(s))),
      hooks: round === 0 && rs.rewind === null ? [captureAt(rewindStep, (s) => { rs.rewind = s; })] : [],
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
      dense_train_flops: summary.dense_train_flops,
      elapsed_s: summary.wall_s,
    });
    if (summary.status !== 'done') return finish(summary);
    const rctx: RoundContext = { layers: model.layers, round, sparsity: ctx.sparsity, targetCounts: ctx.targetCounts, schedule: spec.update, state };
    const { result: report, record } = checkedHook(ctx, 'round', summary.steps, () => hooks.next(rctx, spec.method), (r) => r, round);
    if (!report) return finish(summary);
    if (!rs.rewind) throw new Error(`rounds: no state was stored at rewindStep ${rewindStep} (a round has ${summary.steps} steps)`);
    events.onUpdate?.(record!);
    doneMetrics = [...doneMetrics, ...roundMetrics.map((m) => tag(m, round))];
    doneUpdates = [...doneUpdates, ...roundUpdates.map((u) => tag(u, round)), record!];
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
