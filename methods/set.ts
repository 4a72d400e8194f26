/**
 * SET (Mocanu et al. 2018): prune by magnitude, grow uniformly at random among the inactive
 * connections; no gradient, so it is always sparse.
 *
 * Order (prune-first, as in the authors' code): prune the k smallest |w| (k = ceil(alpha_t |A|),
 * per layer or over all layers, see methods/dst.ts), then grow k connections chosen uniformly at
 * random among those inactive before the update, i.e. excluding the just pruned. Grown weights
 * start at exactly 0 with momentum 0.
 *
 * Sampling never enumerates rows x cols positions of a sparse layer: positions are drawn and
 * rejected against isActive (methods/samplers.ts, uniformInactive). Scope global picks a uniform
 * k-subset of the union of all layers' inactive connections: the per-layer counts are drawn
 * sequentially (each pick lands in layer l with probability = l's remaining eligible count /
 * all remaining), which is exactly the law of a uniform k-subset of the union.
 */
import { dstUpdatesAt, pruneAndGrow, type Grower, type Pool } from './dst.js';
import { uniformInactive } from './samplers.js';
import type { Method } from './types.js';

/** How many of k uniform picks without replacement from the union land in each layer. */
export function allocateUniform(eligible: number[], k: number, rng: { int(n: number): number }): number[] {
  const left = eligible.slice();
  let total = left.reduce((a, b) => a + b, 0);
  if (k > total) throw new Error(`allocateUniform: ${k} picks from ${total}`);
  const out = eligible.map(() => 0);
  for (let i = 0; i < k; i++) {
    let u = rng.int(total);
    let l = 0;
    while (u >= left[l]) { u -= left[l]; l++; }
    out[l]++;
    left[l]--;
    total--;
  }
  return out;
}

export const randomGrower: Grower = {
  order: 'prune-first',
  score({ ctx, active, k, global }) {
    const layers = ctx.layers;
    const counts = global
      ? allocateUniform(layers.map((l, i) => l.rows * l.cols - active[i].row.length), k[0], ctx.rng)
      : k;
    const pools: Pool[] = layers.map((layer, i) => {
      const c = uniformInactive(layer, active[i], counts[i], ctx.rng);
      return { cols: layer.cols, row: c.row, col: c.col, value: new Float32Array(c.row.length) };
    });
    return { pools, flops: 0 };
  },
};

export const set: Method = {
  name: 'set',
  summary: 'SET: prune smallest |w|, then grow uniformly at random among the inactive, no gradient',
  options: {},
  sparse: true,
  alwaysSparse: true,
  updates: true,
  startsDense: () => false,
  updatesAt: (ctx) => dstUpdatesAt(ctx),
  update: (ctx) => pruneAndGrow(ctx, randomGrower, 'set'),
};
