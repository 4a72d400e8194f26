/**
 * Subset samplers for GSE, and the uniform inactive-connection sampler SET grows with.
 *
 * GSE samples a subset S of a layer's inactive connections from a product of two 1-D
 * distributions, P(row = b, col = a) = P_out(b) * P_in(a), so sampling costs
 * O(n_in + n_out + |S| log n) and never builds an n_in x n_out matrix:
 *  - uniform: P_out, P_in uniform.
 *  - grabo (gradient-magnitude upper bound): P_in(a) ∝ sum_i |h[i,a]|, P_out(b) ∝ sum_i |delta[i,b]|
 *    (SparseWeight.unitSums()).
 *  - graest (AMS-sketch estimate): random signs s_i ∈ {±1}, one per probe row, drawn from the
 *    rng; P_in(a) ∝ |sum_i s_i h[i,a]|, P_out(b) ∝ |sum_i s_i delta[i,b]| (unitSums(signs)).
 * As in the authors' code, ceil(gamma |A|) pairs are drawn *with replacement* from the two
 * marginals (binary search on the cumulative weights), then active pairs and duplicates are
 * dropped, so |S| <= ceil(gamma |A|). A marginal whose weights are all zero (or not finite) falls
 * back to uniform; units of zero weight are never drawn (their gradient row/column is 0 anyway
 * for grabo). A layer that is at most 50% sparse, or whose draw count reaches its number of
 * inactive connections, skips sampling and takes every inactive connection (O(rows x cols)
 * time there, which is then at most twice |A| or what was asked for).
 *
 * Randomness: ctx.rng only, in an order fixed by the contract's answers (probe rows, isActive),
 * so masked and csr layers draw the same subset.
 */
import type { Rng } from '../core/rng.js';
import type { Connections, SparseWeight } from '../models/sparse/types.js';
import { fromSortedKeys } from '../models/sparse/init.js';
import { key, sortConnections } from './dst.js';

export type SamplerName = 'uniform' | 'grabo' | 'graest';
export const samplerNames: SamplerName[] = ['uniform', 'grabo', 'graest'];

/** A discrete distribution over 0..n-1 by its cumulative weights; `null` weights = uniform. */
export class Categorical {
  private readonly cdf: Float64Array | null;
  private readonly total: number;

  constructor(readonly n: number, weights: ArrayLike<number> | null) {
    let cdf: Float64Array | null = null;
    let total = 0;
    if (weights) {
      if (weights.length !== n) throw new Error(`Categorical: ${weights.length} weights for ${n} outcomes`);
      cdf = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const w = weights[i];
        total += w > 0 && Number.isFinite(w) ? w : 0;
        cdf[i] = total;
      }
      if (!(total > 0 && Number.isFinite(total))) cdf = null;
    }
    this.cdf = cdf;
    this.total = total;
  }

  /** whether the weights were unusable (or absent) and the draw is uniform */
  get uniform(): boolean { return this.cdf === null; }

  /** probability of outcome i */
  prob(i: number): number {
    if (!this.cdf) return 1 / this.n;
    return (this.cdf[i] - (i > 0 ? this.cdf[i - 1] : 0)) / this.total;
  }

  /** one draw: O(log n) */
  draw(rng: Rng): number {
    if (!this.cdf) return rng.int(this.n);
    const u = rng.float() * this.total;
    // the smallest i with cdf[i] > u (zero-weight outcomes have empty intervals)
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

export interface Marginals {
  /** over output units (rows) */
  out: Categorical;
  /** over input units (cols) */
  in: Categorical;
  /** floating-point operations spent on the unit sums */
  flops: number;
}

/**
 * The two marginals of a sampler for one layer (grabo and graest need a recorded probe; graest
 * draws probeRows() signs from rng).
 */
export function marginals(layer: SparseWeight, sampler: SamplerName, rng: Rng): Marginals {
  if (sampler === 'uniform') return { out: new Categorical(layer.rows, null), in: new Categorical(layer.cols, null), flops: 0 };
  const P = layer.probeRows();
  const sums = sampler === 'grabo' ? layer.unitSums() : layer.unitSums(rng.signs(P));
  return { out: new Categorical(layer.rows, sums.out), in: new Categorical(layer.cols, sums.in), flops: 2 * P * (layer.rows + layer.cols) };
}

/** Every inactive connection of a layer, sorted by (row, col): O(rows x cols) time, O(inactive) memory. */
export function allInactive(layer: SparseWeight, active: Connections): Connections {
  const n = layer.rows * layer.cols - active.row.length;
  const row = new Int32Array(n);
  const col = new Int32Array(n);
  let o = 0;
  let a = 0;
  for (let r = 0; r < layer.rows; r++) {
    for (let c = 0; c < layer.cols; c++) {
      if (a < active.row.length && active.row[a] === r && active.col[a] === c) { a++; continue; }
      row[o] = r;
      col[o] = c;
      o++;
    }
  }
  if (o !== n || a !== active.row.length) throw new Error(`${layer.name}: active connections are not sorted and unique`);
  return { row, col };
}

export interface Subset {
  connections: Connections;
  /** every inactive connection was taken (the layer is at most 50% sparse, or gamma covers it) */
  exhaustive: boolean;
  /** pairs drawn (0 when exhaustive) */
  draws: number;
  flops: number;
}

/**
 * GSE's subset of one layer: `draws` pairs with replacement from the sampler's marginals, active
 * pairs and duplicates dropped, sorted by (row, col). Cost O(rows + cols + draws log draws +
 * |A|): the active pairs are dropped by a merge with the sorted active list. Exhaustive (see the
 * header) when the layer is at most 50% sparse or the draws would reach its number of inactive
 * connections.
 */
export function sampleSubset(layer: SparseWeight, active: Connections, draws: number, sampler: SamplerName, rng: Rng): Subset {
  const size = layer.rows * layer.cols;
  const nActive = active.row.length;
  if (2 * nActive >= size || draws >= size - nActive) {
    return { connections: allInactive(layer, active), exhaustive: true, draws: 0, flops: 0 };
  }
  const m = marginals(layer, sampler, rng);
  const row = new Int32Array(draws);
  const col = new Int32Array(draws);
  for (let i = 0; i < draws; i++) {
    row[i] = m.out.draw(rng);
    col[i] = m.in.draw(rng);
  }
  return { connections: inactiveOf({ row, col }, active, layer.cols), exhaustive: false, draws, flops: m.flops };
}

/**
 * The distinct pairs of `drawn` that are not in `active` (sorted by (row, col)), sorted by (row,
 * col): one sort of the drawn keys, then a merge with the active keys. O(d log d + |active|).
 */
export function inactiveOf(drawn: Connections, active: Connections, cols: number): Connections {
  const d = drawn.row.length;
  const keys = new Float64Array(d);
  for (let i = 0; i < d; i++) keys[i] = key(drawn.row[i], drawn.col[i], cols);
  keys.sort();
  let n = 0;
  let a = 0;
  const nActive = active.row.length;
  let next = nActive > 0 ? key(active.row[0], active.col[0], cols) : Infinity;
  for (let i = 0; i < d; i++) {
    const k = keys[i];
    if (n > 0 && keys[n - 1] === k) continue;
    while (next < k) next = ++a < nActive ? key(active.row[a], active.col[a], cols) : Infinity;
    if (next === k) continue;
    keys[n++] = k;
  }
  return fromSortedKeys(keys.subarray(0, n), cols);
}

/**
 * `m` distinct inactive connections of a layer, uniformly at random (SET), sorted by (row, col).
 * While the layer stays at most half full (active + m <= rows*cols / 2) flat positions are drawn
 * and rejected against isActive and the ones already taken: O(m) expected, nothing of size
 * rows x cols. Denser layers enumerate their inactive connections (then rows*cols < 2(|A| + m))
 * and take a partial Fisher-Yates sample.
 */
export function uniformInactive(layer: SparseWeight, active: Connections, m: number, rng: Rng): Connections {
  const size = layer.rows * layer.cols;
  const nActive = active.row.length;
  if (m > size - nActive) throw new Error(`${layer.name}: cannot grow ${m} of ${size - nActive} inactive connections`);
  if (m === 0) return { row: new Int32Array(0), col: new Int32Array(0) };
  if (2 * (nActive + m) > size) {
    const all = allInactive(layer, active);
    const n = all.row.length;
    const idx = new Int32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    const row = new Int32Array(m);
    const col = new Int32Array(m);
    for (let i = 0; i < m; i++) {
      const j = i + rng.int(n - i);
      const t = idx[i]; idx[i] = idx[j]; idx[j] = t;
      row[i] = all.row[idx[i]];
      col[i] = all.col[idx[i]];
    }
    return sortConnections({ row, col }, layer.cols);
  }
  const taken = new Set<number>();
  const outRow: number[] = [];
  const outCol: number[] = [];
  while (outRow.length < m) {
    const need = m - outRow.length;
    const batch = 2 * need + 8;
    const row = new Int32Array(batch);
    const col = new Int32Array(batch);
    for (let i = 0; i < batch; i++) {
      const flat = rng.int(size);
      const r = Math.floor(flat / layer.cols);
      row[i] = r;
      col[i] = flat - r * layer.cols;
    }
    const flags = layer.isActive({ row, col });
    for (let i = 0; i < batch && outRow.length < m; i++) {
      if (flags[i]) continue;
      const kk = key(row[i], col[i], layer.cols);
      if (taken.has(kk)) continue;
      taken.add(kk);
      outRow.push(row[i]);
      outCol.push(col[i]);
    }
  }
  return sortConnections({ row: Int32Array.from(outRow), col: Int32Array.from(outCol) }, layer.cols);
}
