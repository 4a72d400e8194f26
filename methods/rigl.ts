/**
 * RigL (Evci et al. 2020): prune by magnitude, grow the inactive connections with the largest
 * |dense gradient|. Computing that gradient needs every rows x cols entry (SparseWeight.
 * denseGradient(): O(rows x cols) memory, 2 x rows x cols x P FLOPs for P probe rows), so RigL
 * is not always sparse: it materialises a dense matrix per layer at every update.
 *
 * Order (prune-first, as in the authors' code): prune the k smallest |w| (k = ceil(alpha_t |A|),
 * per layer or over all layers, see methods/dst.ts), then grow the top-k by |gradient| among the
 * connections inactive before the update, i.e. excluding the just pruned. Grown weights start at
 * exactly 0 with momentum 0. Equal scores: lowest (layer, row, col) first.
 *
 * The gradient comes from one probe pass over the update batch (ctx.probe()), recorded before
 * any structure change. RigL is only its score (methods/dst.ts scoreAll, as RigL over SET in
 * JaxPruner): each layer's candidates are cut to its own top-quota before the global ranking,
 * which cannot change the result (no layer can contribute more than k).
 */
import { dstUpdatesAt, pruneAndGrow, scoreAll } from './dst.js';
import type { Method } from './types.js';

/** RigL's grower over the shared prune-and-grow: every connection scored by |dense gradient|, after one probe. */
export const denseGradientGrower = scoreAll({
  order: 'prune-first',
  probe: true,
  magnitude: true,
  score: (layer) => layer.denseGradient(),
  flops: (layer) => 2 * layer.rows * layer.cols * layer.probeRows(),
});

export const rigl: Method = {
  name: 'rigl',
  summary: 'RigL: prune smallest |w|, then grow the largest |dense gradient| (materialises the dense gradient at every update)',
  options: {},
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => false,
  updatesAt: (ctx) => dstUpdatesAt(ctx),
  update: (ctx) => pruneAndGrow(ctx, denseGradientGrower, 'rigl'),
};
