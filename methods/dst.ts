/**
 * The prune-and-grow machinery shared by the dynamic sparse training methods (SET, RigL, GSE),
 * in the style of JaxPruner: one routine, `pruneAndGrow`, and the methods differ only in the
 * `Grower` that scores the candidates to grow (random / dense gradient / sampled subset + subset
 * gradient) and in the order in which they apply the two halves.
 *
 * One update at step t (T_end = end * totalSteps):
 *   alpha_t = alpha/2 * (1 + cos(pi * t / T_end))
 *   k       = ceil(alpha_t * |A_l|) per layer (scope local) or ceil(alpha_t * sum_l |A_l|) over
 *             all layers together (scope global), capped by what can be grown (the inactive
 *             connections for prune-first methods, the scored candidates for grow-first ones).
 *   grow    the k best-scored candidates, taken from connections inactive BEFORE the update;
 *   prune   the k active-before-the-update connections with the smallest |w|.
 * Scope global ranks grow candidates of all layers together and prunes by magnitude over all
 * layers together (per-layer densities drift, the total stays); scope local does both per layer;
 * scope prune-local prunes k_l = ceil(alpha_t |A_l|) in every layer and grows sum_l k_l over all
 * layers together (the regrowth moves to where the scores are: per-layer densities drift, the
 * total stays). A method may also pass the two scopes to pruneAndGrow itself.
 *
 * Order (as in the authors' code):
 *  - prune-first (RigL, SET): prune the k smallest |w|, then grow k connections excluding the
 *    just-pruned ones. "Inactive before the update" is exactly "inactive now, minus just-pruned".
 *  - grow-first (GSE): grow k connections (weight 0), then prune the k smallest |w| with the
 *    just-grown ones protected. "Protected" is exactly "active before the update".
 * Both halves are *decided* from the state before the update (scores come from one probe pass
 * recorded before any structure change, magnitudes are read before any change), so both orders
 * keep the active count and never prune what was grown nor grow what was pruned in one update;
 * the order is then the order in which prune() and grow() are applied to the layers.
 *
 * Ties (equal |w| or equal score) are broken by (layer, row, col) ascending, so every storage
 * format makes identical decisions. All randomness comes from ctx.rng (in the growers), drawn in
 * an order that depends only on contract answers (active counts, isActive), never on the format.
 * Every update asserts at its end that the active count is unchanged (global: total; local: per
 * layer) and throws otherwise.
 */
import { fromSortedKeys } from '../models/sparse/init.js';
import type { Connections, SparseWeight } from '../models/sparse/types.js';
import type { UpdateSchedule } from './schedule.js';
import type { ScheduleContext, StatefulWeight, UpdateContext, UpdateReport } from './types.js';

/** Candidate connections of one layer, each with a value (a score to grow or a magnitude to prune). */
export interface Pool {
  /** the layer's column count (tie-break key row * cols + col) */
  cols: number;
  row: Int32Array;
  col: Int32Array;
  value: Float32Array;
}

export type Order = 'prune-first' | 'grow-first';

export interface ScoreRequest {
  ctx: UpdateContext;
  /** per layer: the active connections before the update, sorted by (row, col) */
  active: Connections[];
  /**
   * Per layer: at most this many connections will be grown in the layer. For prune-first methods
   * it is exact under scope local (k_l) and, under scope global, min(k, inactive_l).
   */
  quota: number[];
  /** prune-first: the number of connections grown, per layer (local) or as [k] (global) */
  k: number[];
  /** the grow scope: true when the candidates of all layers are ranked together (k is [total]) */
  global: boolean;
}

export interface Scored {
  /** per layer, the grow candidates (inactive before the update, no duplicates) with their scores */
  pools: Pool[];
  /** floating-point operations spent scoring (probe pass, gradients, sampling weights) */
  flops: number;
}

/**
 * How a DST method scores its grow candidates: the only part in which SET, RigL and GSE differ.
 * A grower returns scored candidates; pruneAndGrow picks the top-k and applies the scope. When
 * the score is defined for every connection of a layer (RigL's |dense gradient|), `scoreAll`
 * builds the grower from that score alone.
 */
export interface Grower {
  order: Order;
  score(req: ScoreRequest): Scored;
  /** optional diagnostics from the decided grow set, before any structure change */
  diagnose?(req: ScoreRequest, grown: Connections[], k: number[]): Partial<UpdateReport>;
}

/** T_end in steps: the run's update group `end` is a fraction of training. */
export function endStep(ctx: ScheduleContext): number {
  return ctx.schedule.end * ctx.totalSteps;
}

/** DST schedule: every delta steps, never at step 0, and only before T_end. */
export function dstUpdatesAt(ctx: ScheduleContext): boolean {
  const s = ctx.schedule;
  return ctx.step > 0 && ctx.step % s.delta === 0 && ctx.step < endStep(ctx);
}

/** alpha_t = alpha/2 * (1 + cos(pi * t / T_end)); 0 from T_end on. */
export function updateFraction(ctx: ScheduleContext): number {
  const tEnd = endStep(ctx);
  if (!(ctx.step < tEnd)) return 0;
  return (ctx.schedule.alpha / 2) * (1 + Math.cos((Math.PI * ctx.step) / tEnd));
}

/** Unique key of a connection inside its layer (exact below 2^53, so never wraps). */
export function key(row: number, col: number, cols: number): number {
  return row * cols + col;
}

/** Connections sorted by (row, col). */
export function sortConnections(c: Connections, cols: number): Connections {
  const n = c.row.length;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = key(c.row[i], c.col[i], cols);
  return fromSortedKeys(keys.sort(), cols);
}

/**
 * The SGD momentum of the given connections of a layer (0 for an inactive one), read from its
 * saved state: O(active + |c| log active). What UpdateContext.momentum answers, and what the
 * harness reads to check that grown connections start with momentum 0.
 */
export function momentumOf(layer: StatefulWeight, c: Connections): Float32Array {
  const st = layer.saveState();
  const cols = layer.cols;
  const n = st.connections.row.length;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = key(st.connections.row[i], st.connections.col[i], cols);
  const out = new Float32Array(c.row.length);
  for (let j = 0; j < out.length; j++) {
    const want = key(c.row[j], c.col[j], cols);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid] < want) lo = mid + 1;
      else hi = mid;
    }
    if (lo < n && keys[lo] === want) out[j] = st.velocity[lo];
  }
  return out;
}

export const emptyConnections = (): Connections => ({ row: new Int32Array(0), col: new Int32Array(0) });

/**
 * Picks k entries over pools given in layer order: the smallest values, or the largest with
 * `largest`; equal values are taken in (layer, row, col) order; NaN ranks last. Returns, per pool,
 * the picked connections sorted by (row, col). O(n) over the n pooled entries (a radix selection
 * on order keys; pools in (row, col) order, as layers list their connections, need no sort).
 */
export function pickExtreme(pools: Pool[], k: number, largest: boolean): Connections[] {
  let total = 0;
  for (const p of pools) total += p.value.length;
  if (!(k >= 0 && Number.isInteger(k))) throw new Error(`pickExtreme: bad k ${k}`);
  if (k > total) throw new Error(`pickExtreme: asked for ${k} of ${total} candidates`);
  if (k === 0) return pools.map(() => emptyConnections());
  const prefer = new Uint32Array(total);
  let o = 0;
  for (const p of pools) for (let i = 0; i < p.value.length; i++) prefer[o++] = preferenceKey(p.value[i], largest);
  const { threshold, ties } = selectLargest(prefer, k);
  let tiesLeft = ties;
  const out: Connections[] = [];
  o = 0;
  for (const p of pools) {
    const n = p.value.length;
    const picked = new Int32Array(n);
    const tied = new Int32Array(n);
    let np = 0;
    let nt = 0;
    for (let i = 0; i < n; i++) {
      const v = prefer[o + i];
      if (v > threshold) picked[np++] = i;
      else if (v === threshold) tied[nt++] = i;
    }
    o += n;
    const take = Math.min(tiesLeft, nt);
    tiesLeft -= take;
    out.push(inKeyOrder(p)
      ? connectionsAt(p, mergeAscending(picked.subarray(0, np), tied.subarray(0, take)))
      : unorderedPick(p, picked.subarray(0, np), tied.subarray(0, nt), take));
  }
  if (tiesLeft !== 0) throw new Error('pickExtreme: tie accounting failed');
  return out;
}

const keyBits = new Uint32Array(1);
const keyFloat = new Float32Array(keyBits.buffer);

/**
 * An unsigned key that orders scores by preference (larger key: picked first): the float32 bits
 * of the score (negated for smallest-first) mapped so that unsigned order is numeric order, -0 as
 * +0 (equal scores tie), NaN below everything.
 */
function preferenceKey(v: number, largest: boolean): number {
  if (Number.isNaN(v)) return 0;
  const r = largest ? v : -v;
  keyFloat[0] = r === 0 ? 0 : r;
  const b = keyBits[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

/** Whether a pool lists its connections in strictly increasing (row, col) order. */
function inKeyOrder(p: Pool): boolean {
  for (let i = 1; i < p.row.length; i++) {
    if (p.row[i] < p.row[i - 1] || (p.row[i] === p.row[i - 1] && p.col[i] <= p.col[i - 1])) return false;
  }
  return true;
}

/** The connections at the given (ascending) positions of a pool. */
function connectionsAt(p: Pool, at: Int32Array): Connections {
  const row = new Int32Array(at.length);
  const col = new Int32Array(at.length);
  for (let j = 0; j < at.length; j++) {
    row[j] = p.row[at[j]];
    col[j] = p.col[at[j]];
  }
  return { row, col };
}

/** A pool not in (row, col) order: the picked positions plus the `take` tied ones of lowest (row, col), sorted. */
function unorderedPick(p: Pool, picked: Int32Array, tied: Int32Array, take: number): Connections {
  const byKey = (at: Int32Array) => Float64Array.from(at, (i) => key(p.row[i], p.col[i], p.cols)).sort();
  const keys = new Float64Array(picked.length + take);
  keys.set(byKey(picked));
  keys.set(byKey(tied).subarray(0, take), picked.length);
  return fromSortedKeys(keys.sort(), p.cols);
}

function mergeAscending(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < a.length && j < b.length) out[o++] = a[i] < b[j] ? a[i++] : b[j++];
  while (i < a.length) out[o++] = a[i++];
  while (j < b.length) out[o++] = b[j++];
  return out;
}

/**
 * The q-th largest key and how many keys equal to it are among the q largest, by radix selection
 * over the high then the low 16 bits: two counting passes, O(size) (a full sort would add a log
 * factor that no method's cost has).
 */
export function selectLargest(key: Uint32Array, q: number): { threshold: number; ties: number } {
  if (q < 1 || q > key.length) throw new Error(`selectLargest: q = ${q} outside 1..${key.length}`);
  const count = new Float64Array(1 << 16);
  for (let i = 0; i < key.length; i++) count[key[i] >>> 16]++;
  let above = 0;
  let high = 0xffff;
  while (above + count[high] < q) above += count[high--];
  count.fill(0);
  for (let i = 0; i < key.length; i++) if (key[i] >>> 16 === high) count[key[i] & 0xffff]++;
  let low = 0xffff;
  while (above + count[low] < q) above += count[low--];
  return { threshold: ((high << 16) | low) >>> 0, ties: q - above };
}

/** Picks per group: local scope picks k[l] in pool l alone, global picks k[0] over all pools. */
export function pickByScope(pools: Pool[], k: number[], global: boolean, largest: boolean): Connections[] {
  if (global) return pickExtreme(pools, k[0], largest);
  return pools.map((p, l) => pickExtreme([p], k[l], largest)[0]);
}

/** The magnitudes of the given active connections of every layer, as prune pools. */
export function magnitudePools(layers: SparseWeight[], active: Connections[]): Pool[] {
  return layers.map((layer, l) => ({ cols: layer.cols, row: active[l].row, col: active[l].col, value: layer.magnitudes(active[l]) }));
}

function sum(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

function count(c: Connections[]): number {
  return sum(c.map((x) => x.row.length));
}

/** Throws unless the active count is what it was (global: total; local: per layer). */
export function assertActiveCounts(layers: SparseWeight[], before: number[], global: boolean, what: string): void {
  const after = layers.map((l) => l.activeCount());
  if (global) {
    if (sum(after) !== sum(before)) throw new Error(`${what}: total active count changed from ${sum(before)} to ${sum(after)}`);
  } else {
    after.forEach((n, l) => {
      if (n !== before[l]) throw new Error(`${what}: layer ${layers[l].name} active count changed from ${before[l]} to ${n}`);
    });
  }
}

export type Scope = 'global' | 'local';

/** The prune and grow scopes of an update group's scope (global, local, or prune-local: prune per layer, grow over all). */
export function scopesOf(scope: UpdateSchedule['scope']): { prune: Scope; grow: Scope } {
  return scope === 'prune-local' ? { prune: 'local', grow: 'global' } : { prune: scope, grow: scope };
}

/**
 * One prune-and-grow update of every layer (see the file header), by default in the scopes of
 * the update group (`scopesOf(ctx.schedule.scope)`). Returns the report; throws if the active
 * count would not be preserved (the total, or every layer's when both scopes are local).
 */
export function pruneAndGrow(ctx: UpdateContext, grower: Grower, what: string, scopes = scopesOf(ctx.schedule.scope)): UpdateReport {
  const layers = ctx.layers;
  if (scopes.prune === 'global' && scopes.grow === 'local') throw new Error(`${what}: a global prune with a local grow is not defined (how much would each layer grow?)`);
  const global = scopes.grow === 'global';
  const alpha = updateFraction(ctx);
  const before = layers.map((l) => l.activeCount());
  const inactive = layers.map((l, i) => l.rows * l.cols - before[i]);
  const wantPrune = scopes.prune === 'global' ? [Math.ceil(alpha * sum(before))] : before.map((n) => Math.ceil(alpha * n));
  const want = global ? [sum(wantPrune)] : wantPrune;
  const active = layers.map((l) => l.active());
  // prune-first grows among the inactive-before connections: cap k by how many there are
  const k = grower.order === 'prune-first'
    ? (global ? [Math.min(want[0], sum(inactive))] : want.map((w, l) => Math.min(w, inactive[l])))
    : want.slice();
  const quota = grower.order === 'prune-first'
    ? (global ? inactive.map((n) => Math.min(n, k[0])) : k.slice())
    : (global ? inactive.map((n) => Math.min(n, want[0])) : want.map((w, l) => Math.min(w, inactive[l])));
  const req: ScoreRequest = { ctx, active, quota, k, global };
  const { pools, flops } = grower.score(req);
  if (pools.length !== layers.length) throw new Error(`${what}: scorer returned ${pools.length} pools for ${layers.length} layers`);
  if (grower.order === 'grow-first') {
    // k = min(ceil(alpha_t |A|), |S|)
    const sizes = pools.map((p) => p.value.length);
    if (global) k[0] = Math.min(k[0], sum(sizes));
    else for (let l = 0; l < k.length; l++) k[l] = Math.min(k[l], sizes[l]);
  }
  const grown = pickByScope(pools, k, global, true);
  const diagnostics = grower.diagnose?.(req, grown, k) ?? {};
  const kPrune = scopes.prune === scopes.grow ? k : trimmed(wantPrune, k[0]);
  const pruned = pickByScope(magnitudePools(layers, active), kPrune, scopes.prune === 'global', false);
  if (grower.order === 'prune-first') {
    layers.forEach((l, i) => { if (pruned[i].row.length) l.prune(pruned[i]); });
    layers.forEach((l, i) => { if (grown[i].row.length) l.grow(grown[i]); });
  } else {
    layers.forEach((l, i) => { if (grown[i].row.length) l.grow(grown[i]); });
    layers.forEach((l, i) => { if (pruned[i].row.length) l.prune(pruned[i]); });
  }
  assertActiveCounts(layers, before, global, what);
  return { alpha, k: sum(k), grown: count(grown), pruned: count(pruned), flops, ...diagnostics };
}

/** Per-layer counts cut to `total` in all, from the last layer back (a local prune matched to a global grow that could grow fewer). */
function trimmed(counts: number[], total: number): number[] {
  const out = counts.slice();
  let excess = sum(out) - total;
  for (let l = out.length - 1; l >= 0 && excess > 0; l--) {
    const d = Math.min(excess, out[l]);
    out[l] -= d;
    excess -= d;
  }
  return out;
}

/**
 * The `quota` inactive connections of a layer with the largest score (ties: lowest (row, col)
 * first; NaN scores as 0), with their scores, sorted by (row, col). `scores` gives one score per
 * connection, row-major (rows x cols); `magnitude`: ranked by |score|. The array is overwritten
 * with the selection keys (no second rows x cols copy), and asked for only when a connection is
 * to be grown.
 */
export function topScoredPool(layer: SparseWeight, active: Connections, quota: number, scores: () => Float32Array, magnitude: boolean): Pool {
  const rows = layer.rows;
  const cols = layer.cols;
  const size = rows * cols;
  const q = Math.min(quota, size - active.row.length);
  if (q <= 0) return { cols, row: new Int32Array(0), col: new Int32Array(0), value: new Float32Array(0) };
  const g = scores();
  if (g.length !== size) throw new Error(`${layer.name}: ${g.length} scores, expected ${size}`);
  const key = scoreKeys(g, magnitude);
  // active connections are not candidates: below every score
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
      bits[0] = k & 0x80000000 ? k & 0x7fffffff : ~k;
      value[o] = asFloat[0];
      o++;
    }
  }
  if (o !== q) throw new Error(`${layer.name}: top-${q} selection found ${o}`);
  return { cols, row, col, value };
}

/**
 * Overwrites scores with their order keys, in place: preferenceKey's (largest first; with
 * `magnitude` of |score|: the float32 bits with the top bit set), NaN scored as 0; key 0 is left
 * for "not a candidate". Done on the bits of the array itself: rows x cols entries, no second copy.
 */
function scoreKeys(g: Float32Array, magnitude: boolean): Uint32Array {
  const key = new Uint32Array(g.buffer, g.byteOffset, g.length);
  for (let i = 0; i < key.length; i++) {
    const b = key[i];
    const m = b & 0x7fffffff;
    key[i] = m > 0x7f800000 ? 0x80000000 : magnitude || !(b & 0x80000000) ? m | 0x80000000 : m === 0 ? 0x80000000 : ~b >>> 0;
  }
  return key;
}

/**
 * The `quota` inactive connections of a layer with the largest |dense gradient| from the
 * recorded probe (RigL's candidates; O(rows x cols)), with their FLOPs: 2 x rows x cols x P.
 */
export function denseGradientPool(layer: SparseWeight, active: Connections, quota: number): { pool: Pool; flops: number } {
  const pool = topScoredPool(layer, active, quota, () => layer.denseGradient(), true);
  return { pool, flops: pool.row.length ? 2 * layer.rows * layer.cols * layer.probeRows() : 0 };
}

/**
 * A grower from a score defined for every connection of a layer (as JaxPruner's _get_grow_scores):
 * `score(layer, ctx)` returns rows x cols scores (row-major; overwritten here) and `flops(layer)`
 * what computing them cost; after one probe pass (`probe`), each layer's inactive connections
 * are cut to their quota by largest score (by |score| with `magnitude`), and pruneAndGrow picks
 * the top-k over them and applies the scope. A variant is its score: RigL is |denseGradient()|.
 */
export function scoreAll(o: { order: Order; probe: boolean; magnitude: boolean; score(layer: SparseWeight, ctx: UpdateContext): Float32Array; flops(layer: SparseWeight): number }): Grower {
  return {
    order: o.order,
    score({ ctx, active, quota }) {
      const layers = ctx.layers;
      const none = (l: SparseWeight): Pool => ({ cols: l.cols, row: new Int32Array(0), col: new Int32Array(0), value: new Float32Array(0) });
      if (quota.every((q) => q === 0)) return { pools: layers.map(none), flops: 0 };
      if (o.probe) ctx.probe();
      let flops = o.probe ? probeFlops(layers) : 0;
      const pools = layers.map((layer, i) => {
        const pool = topScoredPool(layer, active[i], quota[i], () => o.score(layer, ctx), o.magnitude);
        if (pool.row.length) flops += o.flops(layer);
        return pool;
      });
      return { pools, flops };
    },
  };
}

/** FLOPs of the probe pass over the update batch: a sparse training step (forward, input and weight gradient). */
export function probeFlops(layers: SparseWeight[]): number {
  let f = 0;
  for (const l of layers) f += 6 * l.activeCount() * l.probeRows();
  return f;
}
