/**
 * GSE, Guided Stochastic Exploration (Heddes et al. 2024): grow the top-k by |gradient| of a
 * sampled subset S of the inactive connections, computing the gradient only for S, so nothing of
 * size rows x cols is ever built (always sparse: O(n_in + n_out + |S| P) per layer and update).
 *
 * Per layer, S is drawn by methods/samplers.ts: ceil(gamma |A_l|) pairs with replacement from the
 * sampler's marginals (uniform | grabo | graest), active pairs and duplicates dropped; a layer
 * at most 50% sparse (or one whose draws would reach its inactive count) takes every inactive
 * connection. Scores: |SparseWeight.subsetGradient(S)| from one probe pass over the update batch
 * (2 P |S| FLOPs). k = min(ceil(alpha_t |A|), |S|), per layer (scope local) or over all layers'
 * S together (scope global); equal scores: lowest (layer, row, col) first.
 *
 * Order (grow-first, as in the authors' code): grow the top-k of S (weights exactly 0, momentum
 * 0), then prune the k smallest |w| with the just grown protected (only connections active
 * before the update are pruned), see methods/dst.ts. With gamma large enough to cover every
 * inactive connection S is all of them and GSE makes exactly RigL's decisions (given equal
 * gradient values: subsetGradient and denseGradient may round differently on some backends).
 *
 * Option `overlap` records |G ∩ RigL's top-k| / k at each update (the authors tracked this
 * correlation). It calls denseGradient(): cheap to allow in the masked format, which holds the
 * dense matrix anyway; in the csr format it materialises rows x cols per layer and defeats the
 * always-sparse point, so use it only for diagnostics. Its cost is not counted in `flops`.
 */
import type { Connections } from '../models/sparse/types.js';
import { denseGradientPool, dstUpdatesAt, key, pickByScope, probeFlops, pruneAndGrow, type Grower, type Pool } from './dst.js';
import { checkedOptions, declareOptions, type OptionsOf } from '../core/options.js';
import { defineMethod } from './define.js';
import { sampleSubset, samplerNames } from './samplers.js';

const gseOptions = declareOptions({
  gamma: { type: 'number', default: 1, exclusiveMinimum: 0, help: 'subset sampling factor: ceil(gamma * active) pairs are drawn per layer' },
  sampler: { type: 'string', default: 'uniform', enum: samplerNames, help: 'subset distribution: uniform, grabo (gradient bound) or graest (AMS estimate)' },
  overlap: { type: 'boolean', default: false, help: 'record |grown ∩ RigL top-k| / k per update (uses the dense gradient: a diagnostic, costly in csr)' },
});
export type GseOptions = OptionsOf<typeof gseOptions>;

const empty = (cols: number): Pool => ({ cols, row: new Int32Array(0), col: new Int32Array(0), value: new Float32Array(0) });

/** |G ∩ R| / |R| for per-layer connection sets (1 when R is empty). */
export function overlapFraction(grown: Connections[], reference: Connections[], cols: number[]): number {
  let hit = 0;
  let total = 0;
  grown.forEach((g, l) => {
    const keys = new Set<number>();
    for (let i = 0; i < g.row.length; i++) keys.add(key(g.row[i], g.col[i], cols[l]));
    const r = reference[l];
    total += r.row.length;
    for (let i = 0; i < r.row.length; i++) if (keys.has(key(r.row[i], r.col[i], cols[l]))) hit++;
  });
  return total === 0 ? 1 : hit / total;
}

export function subsetGrower(o: GseOptions): Grower {
  return {
    order: 'grow-first',
    score({ ctx, active, quota }) {
      const layers = ctx.layers;
      if (quota.every((q) => q === 0)) return { pools: layers.map((l) => empty(l.cols)), flops: 0 };
      ctx.probe();
      let flops = probeFlops(layers);
      const pools = layers.map((layer, i) => {
        const draws = Math.ceil(o.gamma * active[i].row.length);
        const s = sampleSubset(layer, active[i], draws, o.sampler, ctx.rng);
        const g = layer.subsetGradient(s.connections);
        const value = new Float32Array(g.length);
        for (let j = 0; j < g.length; j++) value[j] = Math.abs(g[j]);
        flops += s.flops + 2 * layer.probeRows() * g.length;
        return { cols: layer.cols, row: s.connections.row, col: s.connections.col, value };
      });
      return { pools, flops };
    },
    diagnose: o.overlap
      ? ({ ctx, active, global }, grown, k) => {
        const layers = ctx.layers;
        const pools = layers.map((layer, i) => {
          const q = global ? Math.min(k[0], layer.rows * layer.cols - active[i].row.length) : k[i];
          return denseGradientPool(layer, active[i], q).pool;
        });
        const reference = pickByScope(pools, k, global, true);
        return { overlap: overlapFraction(grown, reference, layers.map((l) => l.cols)) };
      }
      : undefined,
  };
}

export const gse = defineMethod({
  name: 'gse',
  summary: 'GSE: grow the top |gradient| of a sampled subset of inactive connections, then prune smallest |w|; never builds anything rows x cols',
  options: gseOptions,
  sparse: true,
  alwaysSparse: true,
  updates: true,
  startsDense: () => false,
  updatesAt: (ctx) => dstUpdatesAt(ctx),
  // checked here too: a direct call may leave options out (configs are validated already)
  update: (ctx, options) => pruneAndGrow(ctx, subsetGrower(checkedOptions(gseOptions, options, 'gse')), 'gse'),
});
