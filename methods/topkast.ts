/**
 * Top-KAST (Jayakumar et al. 2020, "Top-KAST: Top-K Always Sparse Training"), as in the GSE
 * authors' script for it. Every layer keeps a dense parameter θ. The forward set A is the top-D
 * of |θ| per layer (D = the layer's density of a sparse initialisation at the target, Erdős–Rényi
 * by default), the backward set B ⊇ A the top-(backwardFactor x D) (default 2: the GSE authors'
 * (1 + γ)D with γ = 1, i.e. Top-KAST's "forward 90% / backward 80% sparse"). Only A is used in the
 * forward pass; B receives gradients (those of B \ A are the gradients at θ_A, computed only for B
 * \ A); the rest of θ is frozen and can re-enter when its magnitude ranks again. Exploration
 * regulariser: L2 penalty λ on A (the run's weight decay) and λ / D on B \ A, so weights that are
 * updated but unused must earn their place. A and B are recomputed before every step during the
 * first `exploreFraction` of training, then every `update.delta` steps (the authors' schedule).
 *
 * Design against the sparse-weight contract: the layer's active set IS A (so the forward uses
 * exactly the top-k, in any storage format, and the step cost counted is A's); B \ A lives in this
 * method's per-run state with its momentum and is updated after every SGD step from the step's
 * own probe (Method.afterStep: SparseWeight.subsetGradient(B \ A), O(batch x |B \ A|), the same SGD
 * rule as the harness: g + decay·θ, momentum, lr). A refresh rereads A from the layer
 * (saveState), re-ranks |θ| and installs the new A with its values and momenta (loadState): a
 * weight that re-enters A keeps its value (grow() would zero it, which Top-KAST does not do);
 * momentum carries over inside B and starts at 0 for weights entering B. Ties in |θ|: lowest
 * (row, col) first.
 *
 * Not always sparse in memory: it keeps the dense θ (rows x cols per layer), as Top-KAST does
 * (its point is a sparse forward and backward, not sparse parameter storage). Starts dense: the
 * dense initialisation is ranked once at step 0.
 */
import type { Connections } from '../models/sparse/types.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import { defineMethod } from './define.js';
import type { InitContext, MethodState, StatefulWeight, StepContext, StepReport, UpdateReport } from './types.js';

const topkastOptions = declareOptions({
  backwardFactor: { type: 'number', default: 2, minimum: 1, help: 'backward set size / forward set size per layer (GSE authors\' Top-KAST: (1 + γ) with γ = 1; 2 = forward 90% / backward 80% sparse)' },
  exploreFraction: { type: 'number', default: 0.1, minimum: 0, maximum: 1, help: 'fraction of training during which A and B are recomputed before every step; afterwards every update.delta steps' },
});
export type TopkastOptions = OptionsOf<typeof topkastOptions>;

/** One layer's Top-KAST state (kept in checkpoints). */
export interface TopkastLayer {
  /** |A| and |B| */
  forward: number;
  backward: number;
  /** dense θ, row-major (row * cols + col); entries of A are refreshed from the layer at each refresh */
  theta: Float32Array;
  /** B \ A, sorted by (row, col), with its momentum */
  exRow: Int32Array;
  exCol: Int32Array;
  exVelocity: Float32Array;
}

function layersOf(state: MethodState): TopkastLayer[] {
  const l = state.topkast as TopkastLayer[] | undefined;
  if (!l) throw new Error('topkast: no state (initialize did not run)');
  return l;
}

/** The k-th smallest entry of `a` (0-based), by quickselect: O(n) on average; reorders `a`. */
export function selectKth(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // median of three as the pivot
    const mid = (lo + hi) >>> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i]; a[i] = a[j]; a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/**
 * The flat indices (row * cols + col) of the k largest |values|, ascending; equal magnitudes:
 * lowest index first (so top-k ⊆ top-k' for k <= k'). NaN ranks below everything. O(n).
 */
export function topMagnitudes(values: Float32Array, k: number): Float64Array {
  const n = values.length;
  if (k <= 0) return new Float64Array(0);
  if (k >= n) return Float64Array.from({ length: n }, (_, i) => i);
  const mag = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Math.abs(values[i]);
    mag[i] = Number.isNaN(v) ? -1 : v;
  }
  const threshold = selectKth(mag.slice(), n - k);
  let above = 0;
  for (let i = 0; i < n; i++) if (mag[i] > threshold) above++;
  let ties = k - above;
  const out = new Float64Array(k);
  let o = 0;
  for (let i = 0; i < n && o < k; i++) {
    const v = mag[i];
    if (v > threshold || (v === threshold && ties > 0)) {
      if (v === threshold) ties--;
      out[o++] = i;
    }
  }
  if (o !== k) throw new Error(`topMagnitudes: found ${o} of ${k}`);
  return out;
}

function connectionsOf(flat: Float64Array, cols: number): Connections {
  const row = new Int32Array(flat.length);
  const col = new Int32Array(flat.length);
  for (let i = 0; i < flat.length; i++) {
    const r = Math.floor(flat[i] / cols);
    row[i] = r;
    col[i] = flat[i] - r * cols;
  }
  return { row, col };
}

/** |θ| with NaN ranked below everything, and the value of rank `rank` (0 = smallest). */
function magnitudes(theta: Float32Array): Float32Array {
  const mag = new Float32Array(theta.length);
  for (let i = 0; i < mag.length; i++) {
    const v = Math.abs(theta[i]);
    mag[i] = Number.isNaN(v) ? -1 : v;
  }
  return mag;
}

/**
 * Recomputes A and B of one layer from θ (with A's current values read from the layer) and
 * installs them: A = topMagnitudes(θ, |A|), B = topMagnitudes(θ, |B|), in one O(rows x cols) pass
 * after two selections. Returns how many connections entered and left A.
 */
export function refreshLayer(layer: StatefulWeight, s: TopkastLayer): { entered: number; left: number } {
  const cols = layer.cols;
  const n = s.theta.length;
  const st = layer.saveState();
  // where every connection was (1: A, 2: B \ A) and its momentum
  const where = new Uint8Array(n);
  const velocity = new Float32Array(n);
  for (let i = 0; i < st.connections.row.length; i++) {
    const f = st.connections.row[i] * cols + st.connections.col[i];
    s.theta[f] = st.values[i];
    where[f] = 1;
    velocity[f] = st.velocity[i];
  }
  for (let i = 0; i < s.exRow.length; i++) {
    const f = s.exRow[i] * cols + s.exCol[i];
    where[f] = 2;
    velocity[f] = s.exVelocity[i];
  }
  const mag = magnitudes(s.theta);
  const kA = Math.min(s.forward, n);
  const kB = Math.min(s.backward, n);
  const thA = kA > 0 ? selectKth(mag.slice(), n - kA) : Infinity;
  const thB = kB > 0 ? selectKth(mag.slice(), n - kB) : Infinity;
  let tiesA = kA;
  let tiesB = kB;
  for (let i = 0; i < n; i++) {
    if (mag[i] > thA) tiesA--;
    if (mag[i] > thB) tiesB--;
  }
  const a = new Float64Array(kA);
  const ex = new Float64Array(kB - kA);
  let na = 0;
  let nex = 0;
  let entered = 0;
  for (let i = 0; i < n; i++) {
    const v = mag[i];
    let inB = v > thB;
    if (!inB && v === thB && tiesB > 0) { tiesB--; inB = true; }
    if (!inB) continue;
    let inA = v > thA;
    if (!inA && v === thA && tiesA > 0) { tiesA--; inA = true; }
    if (inA) {
      a[na++] = i;
      if (where[i] !== 1) entered++;
    } else ex[nex++] = i;
  }
  if (na !== kA || nex !== kB - kA) throw new Error(`topkast: ${layer.name}: selected ${na} + ${nex}, expected ${kA} + ${kB - kA}`);
  const left = st.connections.row.length - (kA - entered);
  if (entered > 0 || left > 0) {
    layer.loadState({
      connections: connectionsOf(a, cols),
      values: Float32Array.from(a, (f) => s.theta[f]),
      velocity: Float32Array.from(a, (f) => velocity[f]),
      bias: st.bias,
      biasVelocity: st.biasVelocity,
    });
  }
  const exConnections = connectionsOf(ex, cols);
  s.exRow = exConnections.row;
  s.exCol = exConnections.col;
  s.exVelocity = Float32Array.from(ex, (f) => velocity[f]);
  return { entered, left };
}

function refreshAll(layers: StatefulWeight[], state: TopkastLayer[]): UpdateReport {
  let entered = 0;
  let left = 0;
  layers.forEach((l, i) => {
    const r = refreshLayer(l, state[i]);
    entered += r.entered;
    left += r.left;
  });
  layers.forEach((l, i) => {
    if (l.activeCount() !== state[i].forward) throw new Error(`topkast: ${l.name} has ${l.activeCount()} active connections, expected ${state[i].forward}`);
  });
  return { k: entered, grown: entered, pruned: left, flops: 0 };
}

export function topkastInitialize(ctx: InitContext, o: TopkastOptions): UpdateReport {
  const state: TopkastLayer[] = ctx.layers.map((l, i) => {
    const size = l.rows * l.cols;
    const st = l.saveState();
    const theta = new Float32Array(size);
    for (let j = 0; j < st.connections.row.length; j++) theta[st.connections.row[j] * l.cols + st.connections.col[j]] = st.values[j];
    const forward = ctx.targetCounts[i];
    return {
      forward,
      backward: Math.min(size, Math.max(forward, Math.round(o.backwardFactor * forward))),
      theta,
      exRow: new Int32Array(0),
      exCol: new Int32Array(0),
      exVelocity: new Float32Array(0),
    };
  });
  ctx.state.topkast = state;
  return refreshAll(ctx.layers, state);
}

/** Whether A and B are recomputed before step t. */
export function topkastRefreshAt(step: number, totalSteps: number, delta: number, exploreFraction: number): boolean {
  return step > 0 && step < totalSteps && (step < exploreFraction * totalSteps || step % delta === 0);
}

/**
 * After the SGD step `ctx.step`: the same SGD step for B \ A from the step's probe (gradient at
 * θ_A, penalty λ / D), then a refresh when step + 1 is due.
 */
export function topkastAfterStep(ctx: StepContext, o: TopkastOptions): StepReport {
  const state = layersOf(ctx.state);
  let flops = 0;
  ctx.layers.forEach((layer, l) => {
    const s = state[l];
    const n = s.exRow.length;
    if (n === 0) return;
    const g = layer.subsetGradient({ row: s.exRow, col: s.exCol });
    flops += 2 * layer.probeRows() * n;
    const decay = ctx.weightDecay / (s.forward / (layer.rows * layer.cols));
    for (let j = 0; j < n; j++) {
      const f = s.exRow[j] * layer.cols + s.exCol[j];
      const w = s.theta[f];
      const gj = decay > 0 ? g[j] + decay * w : g[j];
      let v = gj;
      if (ctx.momentum > 0) {
        v = ctx.momentum * s.exVelocity[j] + gj;
        s.exVelocity[j] = v;
      }
      s.theta[f] = w - ctx.lr * v;
    }
    flops += 5 * n;
  });
  if (!topkastRefreshAt(ctx.step + 1, ctx.totalSteps, ctx.schedule.delta, o.exploreFraction)) return { flops };
  return { flops, update: refreshAll(ctx.layers, state) };
}

export const topkast = defineMethod({
  name: 'topkast',
  summary: 'Top-KAST: forward with the top-D |θ| per layer, gradients to the top-(backwardFactor x D), exploration penalty weightDecay / D on the backward-only weights; sets recomputed every step, after exploreFraction every update.delta steps. Keeps the dense θ: not always sparse in memory',
  options: topkastOptions,
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => true,
  updatesAt: () => false,
  update: () => { throw new Error('topkast refreshes its sets after training steps'); },
  // A and B are refreshed in place: the active count of every layer stays, and a weight that
  // re-enters A keeps its value and momentum (grow() would zero them)
  invariants: { counts: 'kept', grownAtZero: false },
  initialize: (ctx, o) => topkastInitialize(ctx, o),
  afterStep: (ctx, o) => topkastAfterStep(ctx, o),
});
