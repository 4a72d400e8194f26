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
 * any structure change. Each layer's candidates are cut to its own top-quota before the global
 * ranking, which cannot change the result (no layer can contribute more than k).
 */
import type { Connections, SparseWeight } from '../models/sparse/types.js';
import { dstUpdatesAt, probeFlops, pruneAndGrow, selectLargest, type Grower, type Pool } from './dst.js';
import type { Method } from './types.js';

/**
 * The `quota` inactive connections of a layer with the largest |dense gradient| (ties: lowest
 * (row, col) first), with their scores, sorted by (row, col). Needs a recorded probe.
 */
export function denseGradientPool(layer: SparseWeight, active: Connections, quota: number): { pool: Pool; flops: number } {
  const rows = layer.rows;
  const cols = layer.cols;
  const size = rows * cols;
  const q = Math.min(quota, size - active.row.length);
  if (q <= 0) return { pool: { cols, row: new Int32Array(0), col: new Int32Array(0), value: new Float32Array(0) }, flops: 0 };
  const g = layer.denseGradient();
  if (g.length !== size) throw new Error(`${layer.name}: dense gradient has ${g.length} entries, expected ${size}`);
  const key = scoreKeys(g);
  // active connections are not candidates: below every |gradient|
  for (let i = 0; i < active.row.length; i++) key[active.row[i] * cols + active.col[i]] = 0;
  const { threshold, ties } = selectLargest(key, q);
  const row = new Int32Array(q);
  const col = new Int32Array(q);
  const value = new Float32Array(q);
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  let tiesLeft = ties;
  let o = 0;
  for (let i = 0; i < size && o < q; i++) {
    const k = key[i];
    if (k > threshold || (k === threshold && tiesLeft > 0)) {
      if (k === threshold) tiesLeft--;
      const r = Math.floor(i / cols);
      row[o] = r;
      col[o] = i - r * cols;
      bits[0] = k & 0x7fffffff;
      value[o] = asFloat[0];
      o++;
    }
  }
  if (o !== q) throw new Error(`${layer.name}: top-${q} selection found ${o}`);
  return { pool: { cols, row, col, value }, flops: 2 * size * layer.probeRows() };
}

/**
 * Overwrites a gradient with the order keys of its scores, in place: dst.ts's preferenceKey of |g|
 * (largest first: the float32 bits with the top bit set), NaN scored as 0; key 0 is left for "not
 * a candidate". Done on the bits of the array itself: rows x cols entries, no second copy.
 */
function scoreKeys(g: Float32Array): Uint32Array {
  const key = new Uint32Array(g.buffer, g.byteOffset, g.length);
  for (let i = 0; i < key.length; i++) {
    const b = key[i] & 0x7fffffff;
    key[i] = (b > 0x7f800000 ? 0 : b) | 0x80000000;
  }
  return key;
}

export const denseGradientGrower: Grower = {
  order: 'prune-first',
  score({ ctx, active, quota }) {
    const layers = ctx.layers;
    if (quota.every((q) => q === 0)) {
      return { pools: layers.map((l) => ({ cols: l.cols, row: new Int32Array(0), col: new Int32Array(0), value: new Float32Array(0) })), flops: 0 };
    }
    ctx.probe();
    let flops = probeFlops(layers);
    const pools = layers.map((layer, i) => {
      const r = denseGradientPool(layer, active[i], quota[i]);
      flops += r.flops;
      return r.pool;
    });
    return { pools, flops };
  },
};

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
