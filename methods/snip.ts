/**
 * SNIP (Lee et al. 2019, "Single-shot network pruning based on connection sensitivity"): prune
 * once at initialisation, before the first training step, keeping the connections with the
 * largest connection sensitivity |g ⊙ w|, where g is the loss gradient over one batch of
 * `update.samplesPerClass` examples per class (the GSE authors' setup: 10 per class; model in
 * training mode). The paper's normalisation by sum |g ⊙ w| does not change the ranking and is
 * left out. Then the mask never changes (trained like static).
 *
 * Scope global (the paper's default) ranks every layer together down to the run's target count;
 * local keeps each layer's sparse-initialisation count (methods/prune-init.ts). Equal scores:
 * lowest (layer, row, col) pruned first. Not always sparse: it starts dense and scores every
 * connection (one dense probe pass and gradient).
 */
import { probeFlops } from './dst.js';
import { isGlobal, pruneToKeep, scoredPools, targetKeep } from './prune-init.js';
import type { InitContext, Method, UpdateReport } from './types.js';

/** |g ⊙ w| of every active connection, from a probe already recorded; with the FLOPs it cost. */
export function snipScores(ctx: Pick<InitContext, 'layers'>): { scores: Float32Array[]; flops: number } {
  let flops = 0;
  const scores = ctx.layers.map((l) => {
    const a = l.active();
    const g = l.subsetGradient(a);
    const w = l.magnitudes(a);
    const s = new Float32Array(g.length);
    for (let i = 0; i < s.length; i++) s[i] = Math.abs(g[i]) * w[i];
    flops += 2 * l.probeRows() * a.row.length + s.length;
    return s;
  });
  return { scores, flops };
}

export function snipInitialize(ctx: InitContext): UpdateReport {
  const global = isGlobal(ctx.schedule?.scope);
  ctx.probe();
  const { scores, flops } = snipScores(ctx);
  const pf = probeFlops(ctx.layers);
  const pools = scoredPools(ctx.layers, ctx.layers.map((l) => l.active()), scores);
  const pruned = pruneToKeep(ctx.layers, pools, targetKeep(ctx.targetCounts, global), global, 'snip');
  return { k: pruned, grown: 0, pruned, flops: flops + pf };
}

export const snip: Method = {
  name: 'snip',
  summary: 'SNIP: one-shot pruning at initialisation to the target, keeping the largest |gradient x weight| on one update batch (update.samplesPerClass per class; update.scope, global by default); then static. Starts dense and scores every connection: not always sparse',
  options: {},
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => true,
  updatesAt: () => false,
  update: () => { throw new Error('snip prunes only at initialisation'); },
  initialize: (ctx) => snipInitialize(ctx),
};
