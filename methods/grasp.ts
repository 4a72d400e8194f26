/**
 * GraSP (Wang et al. 2020, "Picking winning tickets before training by preserving gradient
 * flow"): prune once at initialisation by S = -w ⊙ Hg, where g is the gradient of the loss with
 * the logits divided by a temperature T (200, as in their code) over one update batch
 * (`update.samplesPerClass` per class), H the Hessian of that loss with respect to the prunable
 * weights, and the connections with the LARGEST S are removed (their removal reduces gradient
 * flow the least), as in the authors' code (keep S <= threshold). Then static.
 *
 * Hg by a central finite difference of gradients, not by double backward:
 *   Hg ≈ (g(w + εg) - g(w - εg)) / 2ε,   ε = fdStep * ||w|| / ||g||   (norms over all prunable weights),
 * three probe passes over the same batch, weights perturbed through the contract's
 * saveState/loadState and restored bit-exactly. Reason: tfjs's higher-order gradients are
 * silently wrong through exp/softmax (their gradients reuse the forward output, which the outer
 * tape does not differentiate; checked against finite differences), so a double backward through
 * the cross-entropy would give a wrong Hg without an error. The finite difference also works in
 * every storage format (it only needs the probe's subset gradient). Biases are not perturbed (the
 * paper's Hg is over the weights).
 *
 * Scope global (the paper's default) ranks every layer together; local keeps each layer's
 * sparse-initialisation count. Equal scores: lowest (layer, row, col) removed first. Not always
 * sparse: it starts dense and scores every connection.
 */
import type { LayerState } from '../models/sparse/types.js';
import { probeFlops } from './dst.js';
import { isGlobal, pruneToKeep, scoredPools, targetKeep } from './prune-init.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import { defineMethod } from './define.js';
import type { InitContext, UpdateReport } from './types.js';

const graspOptions = declareOptions({
  temperature: { type: 'number', default: 200, exclusiveMinimum: 0, help: 'softmax temperature T: logits / T in the loss whose g and Hg are scored (authors\' code: 200)' },
  fdStep: { type: 'number', default: 1e-3, exclusiveMinimum: 0, help: 'finite-difference step for Hg: perturbation norm relative to the weight norm, ε = fdStep ||w|| / ||g||' },
});
export type GraspOptions = OptionsOf<typeof graspOptions>;

/** The gradient of every layer's given connections from the probe just recorded. */
function gradients(ctx: InitContext, states: LayerState[]): Float32Array[] {
  return ctx.layers.map((l, i) => l.subsetGradient(states[i].connections));
}

/**
 * Hg for every layer's active connections (aligned with saveState().connections, sorted by row
 * then col), and g; the model is left exactly as it was.
 */
export function hessianGradient(ctx: InitContext, o: GraspOptions): { g: Float32Array[]; hg: Float32Array[]; states: LayerState[]; flops: number } {
  const states = ctx.layers.map((l) => l.saveState());
  ctx.probe({ temperature: o.temperature });
  const per = probeFlops(ctx.layers) + ctx.layers.reduce((a, l) => a + 2 * l.probeRows() * l.activeCount(), 0);
  const g = gradients(ctx, states);
  let wn = 0;
  let gn = 0;
  states.forEach((s, i) => {
    for (const v of s.values) wn += v * v;
    for (const v of g[i]) gn += v * v;
  });
  const hg = g.map((x) => new Float32Array(x.length));
  if (!(gn > 0) || !Number.isFinite(gn)) return { g, hg, states, flops: per };
  const eps = (o.fdStep * Math.sqrt(wn)) / Math.sqrt(gn);
  const at = (sign: number): Float32Array[] => {
    ctx.layers.forEach((l, i) => {
      const values = states[i].values.map((v, j) => v + sign * eps * g[i][j]);
      l.loadState({ ...states[i], values });
    });
    ctx.probe({ temperature: o.temperature, sameBatch: true });
    return gradients(ctx, states);
  };
  try {
    const plus = at(1);
    const minus = at(-1);
    hg.forEach((h, i) => { for (let j = 0; j < h.length; j++) h[j] = (plus[i][j] - minus[i][j]) / (2 * eps); });
  } finally {
    ctx.layers.forEach((l, i) => l.loadState(states[i]));
  }
  return { g, hg, states, flops: 3 * per };
}

/** S = -w ⊙ Hg per active connection. */
export function graspScores(ctx: InitContext, o: GraspOptions): { scores: Float32Array[]; flops: number } {
  const { hg, states, flops } = hessianGradient(ctx, o);
  const scores = states.map((s, i) => s.values.map((w, j) => -w * hg[i][j]));
  return { scores, flops };
}

export function graspInitialize(ctx: InitContext, o: GraspOptions): UpdateReport {
  const global = isGlobal(ctx.schedule?.scope);
  const { scores, flops } = graspScores(ctx, o);
  const pools = scoredPools(ctx.layers, ctx.layers.map((l) => l.active()), scores);
  const pruned = pruneToKeep(ctx.layers, pools, targetKeep(ctx.targetCounts, global), global, 'grasp', true);
  return { k: pruned, grown: 0, pruned, flops };
}

export const grasp = defineMethod({
  name: 'grasp',
  summary: 'GraSP: one-shot pruning at initialisation, removing the largest -w ⊙ Hg on one update batch (Hg by central finite differences of gradients, not double backward: tfjs second derivatives through softmax are wrong; update.scope, global by default); then static. Starts dense: not always sparse',
  options: graspOptions,
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => true,
  updatesAt: () => false,
  update: () => { throw new Error('grasp prunes only at initialisation'); },
  initialize: (ctx, o) => graspInitialize(ctx, o),
});
