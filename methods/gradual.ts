/**
 * Gradual magnitude pruning (Zhu & Gupta 2017, as in the authors' code): start dense and every
 * `delta` steps prune by magnitude to the sparsity
 *   s_t = s * (1 - (1 + cos(pi * t / T_end)) / 2),      T_end = end * totalSteps,
 * which rises from 0 at t = 0 to the run's target s at T_end. The last update runs at the first
 * step >= T_end (or at the last training step, when T_end is the end of training) and prunes to
 * exactly s, so the run always ends at its target: round((1 - s) * total) active connections,
 * the same count a sparse initialisation at that target gets. Nothing is ever grown.
 *
 * Scope global (the default) ranks |w| over all layers together; scope local (and prune-local)
 * prunes every layer to round((1 - s_t) * rows * cols) on its own (a uniform per-layer sparsity).
 * Equal |w|: lowest (layer, row, col) first. Not always sparse (the model is dense at the start).
 *
 * s is ctx.sparsity, the sparsity the run is to reach: with sparsity.holdActive that is not the
 * config's target but the one at which the model holds the active count of width 1 (the harness
 * passes it), so a widened gradual run ends with the count every other method trains with.
 */
import { magnitudePools } from './dst.js';
import { pruneToKeep } from './prune-init.js';
import type { Method, ScheduleContext, UpdateContext, UpdateReport } from './types.js';

/** The step of the final update, which prunes to exactly the target. */
export function gradualLastStep(ctx: ScheduleContext): number {
  const tEnd = ctx.schedule.end * ctx.totalSteps;
  return Math.max(0, Math.min(Math.ceil(tEnd), ctx.totalSteps - 1));
}

export function gradualUpdatesAt(ctx: ScheduleContext): boolean {
  const last = gradualLastStep(ctx);
  return ctx.step === last || (ctx.step > 0 && ctx.step % ctx.schedule.delta === 0 && ctx.step < last);
}

/** s_t; exactly `target` at and after the final update. */
export function gradualSparsity(ctx: ScheduleContext, target: number): number {
  if (ctx.step >= gradualLastStep(ctx)) return target;
  const tEnd = ctx.schedule.end * ctx.totalSteps;
  return target * (1 - (1 + Math.cos((Math.PI * ctx.step) / tEnd)) / 2);
}

/** Active connections to keep at sparsity s out of `size` (as the sparse initialisation rounds). */
export function keepCount(size: number, s: number): number {
  return Math.round((1 - s) * size);
}

export function gradualUpdate(ctx: UpdateContext): UpdateReport {
  const layers = ctx.layers;
  const global = ctx.schedule.scope === 'global';
  const s = gradualSparsity(ctx, ctx.sparsity);
  const sizes = layers.map((l) => l.rows * l.cols);
  const keep = global ? [keepCount(sizes.reduce((a, b) => a + b, 0), s)] : sizes.map((n) => keepCount(n, s));
  const n = pruneToKeep(layers, magnitudePools(layers, layers.map((l) => l.active())), keep, global, 'gradual');
  return { k: n, grown: 0, pruned: n, flops: 0 };
}

export const gradual: Method = {
  name: 'gradual',
  summary: 'gradual magnitude pruning: start dense, prune smallest |w| on a cosine schedule to the target at T_end (not always sparse)',
  options: {},
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => true,
  updatesAt: (ctx) => gradualUpdatesAt(ctx),
  update: (ctx) => gradualUpdate(ctx),
};
