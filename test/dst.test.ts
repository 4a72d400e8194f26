/**
 * methods/dst.ts, the shared prune-and-grow, on toy layers whose weights and gradients are set by
 * hand: the schedule's numbers, the picks (ties, NaN, signs, pools out of order), k and its caps,
 * scope global / local, the order in which prune() and grow() reach the layers, and the report.
 * Every expected decision is worked out in the comments. The updates go through the methods'
 * own entry points (set, rigl, gse); no tfjs, so Stryker runs this file before the slow ones.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import type { Connections, SparseWeight, UnitSums } from '../models/sparse/types.js';
import type { StatefulWeight, UpdateContext, UpdateSchedule } from '../methods/types.js';
import {
  assertActiveCounts, denseGradientPool, dstUpdatesAt, endStep, magnitudePools, momentumOf, pickByScope, pickExtreme, probeFlops, pruneAndGrow,
  scopesOf, selectLargest, sortConnections, topScoredPool, updateFraction,
} from '../methods/dst.js';
import { getMethod } from '../methods/index.js';

const conn = (pairs: [number, number][]): Connections => ({ row: Int32Array.from(pairs, (p) => p[0]), col: Int32Array.from(pairs, (p) => p[1]) });
const pairs = (c: Connections): [number, number][] => Array.from(c.row, (r, i) => [r, c.col[i]]);

/**
 * A rows x cols layer: active weights by (row, col), a fixed dense gradient (row-major), P probe
 * rows; prune() and grow() are logged as "prune a 0,1 1,0" and refuse what they must not do.
 */
class Toy implements SparseWeight {
  readonly format = 'csr' as const;
  private readonly w = new Map<number, number>();
  constructor(readonly name: string, readonly rows: number, readonly cols: number, weights: [number, number, number][],
    private readonly grad: number[], private readonly P: number, private readonly log: string[]) {
    for (const [r, c, v] of weights) this.w.set(r * cols + c, v);
    assert.equal(grad.length, rows * cols);
  }
  activeCount() { return this.w.size; }
  active(): Connections {
    const keys = [...this.w.keys()].sort((a, b) => a - b);
    return conn(keys.map((k) => [Math.floor(k / this.cols), k % this.cols]));
  }
  isActive(c: Connections) { return Uint8Array.from(c.row, (r, i) => (this.w.has(r * this.cols + c.col[i]) ? 1 : 0)); }
  magnitudes(c: Connections) { return Float32Array.from(c.row, (r, i) => Math.abs(this.w.get(r * this.cols + c.col[i]) ?? 0)); }
  private record(op: string, c: Connections) { this.log.push(`${op} ${this.name} ${pairs(c).map((p) => p.join(',')).join(' ')}`); }
  prune(c: Connections) {
    this.record('prune', c);
    c.row.forEach((r, i) => assert.ok(this.w.delete(r * this.cols + c.col[i]), 'pruning an inactive connection'));
  }
  grow(c: Connections) {
    this.record('grow', c);
    c.row.forEach((r, i) => { const k = r * this.cols + c.col[i]; assert.ok(!this.w.has(k), 'growing an active connection'); this.w.set(k, 0); });
  }
  hasProbe() { return true; }
  subsetGradient(c: Connections) { return Float32Array.from(c.row, (r, i) => this.grad[r * this.cols + c.col[i]]); }
  denseGradient() { return Float32Array.from(this.grad); }
  unitSums(): UnitSums { throw new Error('toy layers have no unit sums'); }
  probeRows() { return this.P; }
  weights(): string[] { return pairs(this.active()).map(([r, c]) => `${r},${c}=${this.w.get(r * this.cols + c)}`); }
}

function schedule(scope: UpdateSchedule['scope'], alpha: number): UpdateSchedule {
  return { delta: 10, end: 0.5, alpha, samplesPerClass: 1, scope };
}

/** An update context at step 0 (alpha_t = alpha) of 100 steps; counts probe passes. */
function ctxOf(layers: SparseWeight[], scope: UpdateSchedule['scope'], alpha: number, rng: Rng = new Rng(1), step = 0) {
  const probes = { n: 0 };
  const ctx: UpdateContext = {
    step, totalSteps: 100, stepsPerEpoch: 10, schedule: schedule(scope, alpha), layers: layers as StatefulWeight[], rng, sparsity: 0.5,
    probe: () => { probes.n++; },
    momentum: () => { throw new Error('no momentum here'); },
  };
  return { ctx, probes };
}

/**
 * Two layers, 4 active of 8 connections (P = 3 probe rows):
 *  a (2 x 2): active (0,0)=1 (1,1)=0.1; inactive (0,1) |g| 0.5, (1,0) |g| 0.45
 *  b (1 x 4): active (0,0)=0.05 (0,1)=-0.08; inactive (0,2) |g| 0.3, (0,3) |g| 0.01
 */
function twoLayers(log: string[]): Toy[] {
  return [
    new Toy('a', 2, 2, [[0, 0, 1], [1, 1, 0.1]], [5, -0.5, 0.45, 5], 3, log),
    new Toy('b', 1, 4, [[0, 0, 0.05], [0, 1, -0.08]], [5, 5, -0.3, 0.01], 3, log),
  ];
}

describe('schedule', () => {
  const at = (step: number, end = 0.5, delta = 10) =>
    ({ step, totalSteps: 100, stepsPerEpoch: 10, schedule: { ...schedule('global', 0.2), end, delta } });

  test('T_end = end x total steps; updates every delta steps, not at step 0, strictly before T_end', () => {
    assert.equal(endStep(at(0, 0.25)), 25);
    assert.deepEqual([0, 5, 10, 15, 20, 25, 30].map((s) => dstUpdatesAt(at(s, 0.25, 5))), [false, true, true, true, true, false, false]);
    assert.deepEqual([1, 3, 6, 9].map((s) => dstUpdatesAt(at(s, 0.5, 3))), [false, true, true, true]);
  });

  test('alpha_t: alpha at step 0, alpha/2 at T_end/2, 0 from T_end on', () => {
    const alpha = (step: number) => updateFraction(at(step));
    assert.equal(alpha(0), 0.2);
    assert.ok(Math.abs(alpha(25) - 0.1) < 1e-15);
    assert.ok(Math.abs(alpha(10) - 0.1 * (1 + Math.cos(Math.PI / 5))) < 1e-15);
    assert.equal(alpha(50), 0);
    assert.equal(alpha(70), 0);
  });
});

describe('picking', () => {
  const pool = (pairsIn: [number, number][], value: number[], cols = 10) => ({ cols, ...conn(pairsIn), value: Float32Array.from(value) });
  const flat = (cs: Connections[]) => cs.map((c) => pairs(c).map((p) => p.join(',')));

  test('k must be a whole number no larger than the candidates; k = 0 picks nothing in every pool', () => {
    const pools = [pool([[0, 0], [0, 1]], [1, 2]), pool([[1, 1]], [3])];
    assert.throws(() => pickExtreme(pools, -1, true), { message: 'pickExtreme: bad k -1' });
    assert.throws(() => pickExtreme(pools, 1.5, true), { message: 'pickExtreme: bad k 1.5' });
    assert.throws(() => pickExtreme(pools, 4, true), { message: 'pickExtreme: asked for 4 of 3 candidates' });
    assert.deepEqual(flat(pickExtreme(pools, 0, true)), [[], []]);
    assert.deepEqual(flat(pickExtreme(pools, 3, false)), [['0,0', '0,1'], ['1,1']]);
  });

  test('signs and specials: negative before positive for smallest, -0 ties +0, infinities at the ends, NaN last either way', () => {
    const p = [pool([[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [0, 6]], [-2, 3, 0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])];
    const order = (largest: boolean) => [1, 2, 3, 4, 5, 6, 7].map((k) => flat(pickExtreme(p, k, largest))[0]);
    // smallest: -inf (0,6), -2 (0,0), then 0 and -0 tie -> (0,2) before (0,3), 3 (0,1), +inf (0,5), NaN (0,4)
    const small = order(false);
    assert.deepEqual(small[0], ['0,6']);
    assert.deepEqual(small[1], ['0,0', '0,6']);
    assert.deepEqual(small[2], ['0,0', '0,2', '0,6']);
    assert.deepEqual(small[3], ['0,0', '0,2', '0,3', '0,6']);
    assert.deepEqual(small[4], ['0,0', '0,1', '0,2', '0,3', '0,6']);
    assert.deepEqual(small[5], ['0,0', '0,1', '0,2', '0,3', '0,5', '0,6']);
    // largest: +inf, 3, then the zeros (0,2) before (0,3), -2, -inf, NaN
    const large = order(true);
    assert.deepEqual(large[0], ['0,5']);
    assert.deepEqual(large[1], ['0,1', '0,5']);
    assert.deepEqual(large[2], ['0,1', '0,2', '0,5']);
    assert.deepEqual(large[4], ['0,0', '0,1', '0,2', '0,3', '0,5']);
    assert.deepEqual(large[5], ['0,0', '0,1', '0,2', '0,3', '0,5', '0,6']);
  });

  test('ties across pools go to the lower layer; picked and tied positions merge in (row, col) order', () => {
    // value 1 everywhere but (0,1)=5 in pool 0 and (0,0)=5 in pool 1: k = 4 largest -> both 5s, then ties by
    // (layer, row, col): pool 0's (0,0) and (0,2); pool 1's ties untouched
    const pools = [pool([[0, 0], [0, 1], [0, 2], [1, 0]], [1, 5, 1, 1]), pool([[0, 0], [0, 1]], [5, 1])];
    assert.deepEqual(flat(pickExtreme(pools, 4, true)), [['0,0', '0,1', '0,2'], ['0,0']]);
    assert.deepEqual(flat(pickExtreme(pools, 5, true)), [['0,0', '0,1', '0,2', '1,0'], ['0,0']]);
    // a tie after the picked one in the same pool: (0,1) picked, (0,2) tied, (0,3) tied but not taken
    assert.deepEqual(flat(pickExtreme([pool([[0, 0], [0, 1], [0, 2], [0, 3]], [0, 9, 4, 4])], 2, true)), [['0,1', '0,2']]);
    assert.deepEqual(flat(pickExtreme([pool([[0, 0], [0, 1], [0, 2], [0, 3]], [4, 9, 4, 0])], 2, true)), [['0,0', '0,1']]);
  });

  test('a pool out of (row, col) order: ties still by lowest (row, col), output sorted', () => {
    // listed (2,0) (0,3) (1,1) (0,1) (0,0) with values 7 1 7 7 3: largest 2 of the three 7s -> (1,1), (0,1) win over (2,0)
    const p = pool([[2, 0], [0, 3], [1, 1], [0, 1], [0, 0]], [7, 1, 7, 7, 3], 4);
    assert.deepEqual(flat(pickExtreme([p], 2, true)), [['0,1', '1,1']]);
    assert.deepEqual(flat(pickExtreme([p], 4, true)), [['0,0', '0,1', '1,1', '2,0']]);
    assert.deepEqual(flat(pickExtreme([p], 1, false)), [['0,3']]);
    // two tied entries listed against (row, col) order, by column and by row: the lower (row, col) wins
    assert.deepEqual(flat(pickExtreme([pool([[1, 2], [1, 0]], [1, 1], 4)], 1, true)), [['1,0']]);
    assert.deepEqual(flat(pickExtreme([pool([[1, 0], [0, 3]], [1, 1], 4)], 1, true)), [['0,3']]);
  });

  test('pickByScope: local picks k[l] in each pool, global k[0] over all', () => {
    const pools = [pool([[0, 0], [0, 1]], [1, 4]), pool([[0, 0], [0, 1]], [3, 2])];
    assert.deepEqual(flat(pickByScope(pools, [2], true, true)), [['0,1'], ['0,0']]);
    assert.deepEqual(flat(pickByScope(pools, [2, 0], false, true)), [['0,0', '0,1'], []]);
    assert.deepEqual(flat(pickByScope(pools, [0, 2], false, false)), [[], ['0,0', '0,1']]);
    assert.deepEqual(flat(pickByScope(pools, [1], true, false)), [['0,0'], []]);
  });

  test('selectLargest: the q-th largest key and its ties among the q largest, keys split in both 16-bit halves', () => {
    const keys = Uint32Array.from([0x00010002, 0x00020001, 0x00010002, 0x00010001, 0xffff0000, 0x00000005]);
    // sorted down: ffff0000, 00020001, 00010002 x2, 00010001, 00000005
    assert.deepEqual(selectLargest(keys, 1), { threshold: 0xffff0000, ties: 1 });
    assert.deepEqual(selectLargest(keys, 2), { threshold: 0x00020001, ties: 1 });
    assert.deepEqual(selectLargest(keys, 3), { threshold: 0x00010002, ties: 1 });
    assert.deepEqual(selectLargest(keys, 4), { threshold: 0x00010002, ties: 2 });
    assert.deepEqual(selectLargest(keys, 5), { threshold: 0x00010001, ties: 1 });
    assert.deepEqual(selectLargest(keys, 6), { threshold: 5, ties: 1 });
    assert.deepEqual(selectLargest(Uint32Array.from([7, 7, 7]), 2), { threshold: 7, ties: 2 });
    assert.deepEqual(selectLargest(Uint32Array.from([0xffffffff, 0]), 2), { threshold: 0, ties: 1 });
    assert.throws(() => selectLargest(keys, 0), { message: 'selectLargest: q = 0 outside 1..6' });
    assert.throws(() => selectLargest(keys, 7), { message: 'selectLargest: q = 7 outside 1..6' });
  });
});

describe('candidate pools from a score of every connection', () => {
  // 2 x 3, (0,0) active; P = 2
  const layer = () => new Toy('t', 2, 3, [[0, 0, 1]], [9, -5, 1, Number.NaN, 4, Number.NEGATIVE_INFINITY], 2, []);
  const of = (p: { row: Int32Array; col: Int32Array; value: Float32Array }) => [pairs(p), Array.from(p.value)];

  test('by |score|: the quota largest inactive, NaN scored as 0, infinity first; sorted, with |score| as value', () => {
    const l = layer();
    const scores = () => Float32Array.from([9, -5, 1, Number.NaN, 4, Number.NEGATIVE_INFINITY]);
    // |score| of the inactive: (0,1) 5, (0,2) 1, (1,0) NaN -> 0, (1,1) 4, (1,2) inf
    assert.deepEqual(of(topScoredPool(l, l.active(), 2, scores, true)), [[[0, 1], [1, 2]], [5, Number.POSITIVE_INFINITY]]);
    assert.deepEqual(of(topScoredPool(l, l.active(), 4, scores, true)), [[[0, 1], [0, 2], [1, 1], [1, 2]], [5, 1, 4, Number.POSITIVE_INFINITY]]);
    // a quota beyond the inactive count: every inactive connection, never the active one
    assert.deepEqual(of(topScoredPool(l, l.active(), 10, scores, true)), [[[0, 1], [0, 2], [1, 0], [1, 1], [1, 2]], [5, 1, 0, 4, Number.POSITIVE_INFINITY]]);
    assert.deepEqual(of(topScoredPool(l, l.active(), 0, () => { throw new Error('not asked'); }, true)), [[], []]);
    assert.throws(() => topScoredPool(l, l.active(), 1, () => new Float32Array(5), true), { message: 't: 5 scores, expected 6' });
  });

  test('signed scores (magnitude false): largest first, -0 as 0, negative values kept', () => {
    const l = layer();
    const scores = () => Float32Array.from([9, -5, 1, -0, 4, -2]);
    // inactive: (0,1) -5, (0,2) 1, (1,0) -0, (1,1) 4, (1,2) -2: top 3 = 4, 1, 0
    assert.deepEqual(of(topScoredPool(l, l.active(), 3, scores, false)), [[[0, 2], [1, 0], [1, 1]], [1, 0, 4]]);
    assert.deepEqual(of(topScoredPool(l, l.active(), 4, scores, false)), [[[0, 2], [1, 0], [1, 1], [1, 2]], [1, 0, 4, -2]]);
    assert.deepEqual(of(topScoredPool(l, l.active(), 5, scores, false)), [[[0, 1], [0, 2], [1, 0], [1, 1], [1, 2]], [-5, 1, 0, 4, -2]]);
  });

  test('denseGradientPool: RigL\'s candidates by |dense gradient|, FLOPs 2 x rows x cols x P when any is asked', () => {
    const l = layer();
    const r = denseGradientPool(l, l.active(), 2);
    assert.deepEqual(of(r.pool), [[[0, 1], [1, 2]], [5, Number.POSITIVE_INFINITY]]);
    assert.equal(r.flops, 2 * 2 * 3 * 2);
    assert.equal(denseGradientPool(l, l.active(), 0).flops, 0);
  });

  test('rigl counts a layer\'s dense-gradient FLOPs only when it has candidates', () => {
    // a as in twoLayers (k = 1) beside a full 1 x 2 layer d (nothing inactive): probe 6 x 4 x 3, a's 2 x 4 x 3
    const log: string[] = [];
    const layers = [twoLayers(log)[0], new Toy('d', 1, 2, [[0, 0, 1], [0, 1, 2]], [1, 1], 3, log)];
    const report = getMethod('rigl').update(ctxOf(layers, 'local', 0.5).ctx, {});
    assert.deepEqual(log, ['prune a 1,1', 'grow a 0,1']);
    assert.deepEqual(report, { alpha: 0.5, k: 1, grown: 1, pruned: 1, flops: 72 + 24 });
  });
});

describe('small parts', () => {
  test('sortConnections by (row, col) with the layer\'s column count', () => {
    assert.deepEqual(pairs(sortConnections(conn([[1, 0], [0, 2], [0, 1], [2, 1]]), 3)), [[0, 1], [0, 2], [1, 0], [2, 1]]);
  });

  test('momentumOf: the saved velocity of each asked connection, 0 for an inactive one', () => {
    const state = { connections: conn([[0, 1], [1, 0], [2, 3]]), velocity: Float32Array.from([0.5, -1, 2]) };
    const layer = { cols: 4, saveState: () => state } as unknown as StatefulWeight;
    const asked = conn([[2, 3], [0, 0], [1, 0], [0, 1], [3, 3], [2, 2], [0, 2]]);
    assert.deepEqual(Array.from(momentumOf(layer, asked)), [2, 0, -1, 0.5, 0, 0, 0]);
    const none = { cols: 4, saveState: () => ({ connections: conn([]), velocity: new Float32Array(0) }) } as unknown as StatefulWeight;
    assert.deepEqual(Array.from(momentumOf(none, conn([[0, 0]]))), [0]);
  });

  test('magnitudePools and probeFlops (6 x active x probe rows per layer)', () => {
    const layers = twoLayers([]);
    const pools = magnitudePools(layers, layers.map((l) => l.active()));
    assert.deepEqual(pools.map((p) => [p.cols, pairs(p), Array.from(p.value)]), [
      [2, [[0, 0], [1, 1]], [1, Math.fround(0.1)]],
      [4, [[0, 0], [0, 1]], [Math.fround(0.05), Math.fround(0.08)]],
    ]);
    assert.equal(probeFlops(layers), 6 * 2 * 3 + 6 * 2 * 3);
  });

  test('assertActiveCounts: global keeps the total, local every layer; the message names the change', () => {
    const layers = [{ name: 'a', activeCount: () => 3 }, { name: 'b', activeCount: () => 2 }] as unknown as SparseWeight[];
    assertActiveCounts(layers, [2, 3], true, 'm');
    assertActiveCounts(layers, [3, 2], false, 'm');
    assert.throws(() => assertActiveCounts(layers, [2, 2], true, 'm'), { message: 'm: total active count changed from 4 to 5' });
    assert.throws(() => assertActiveCounts(layers, [3, 3], false, 'm'), { message: 'm: layer b active count changed from 3 to 2' });
    assert.throws(() => assertActiveCounts(layers, [2, 3], false, 'm'), { message: 'm: layer a active count changed from 2 to 3' });
  });

  test('a scorer must return one pool per layer', () => {
    const { ctx } = ctxOf(twoLayers([]), 'local', 0.5);
    const grower = { order: 'prune-first' as const, score: () => ({ pools: [], flops: 0 }) };
    assert.throws(() => pruneAndGrow(ctx, grower, 'toy'), { message: 'toy: scorer returned 0 pools for 2 layers' });
  });
});

describe('pruneAndGrow through rigl, gse and set', () => {
  test('rigl, scope global: k = ceil(alpha x 4) = 2 over both layers; prune first, only the layers that change are called', () => {
    const log: string[] = [];
    const layers = twoLayers(log);
    const { ctx, probes } = ctxOf(layers, 'global', 0.5);
    const report = getMethod('rigl').update(ctx, {});
    // smallest |w|: b's 0.05 and 0.08; largest |g| of the inactive: a's 0.5 and 0.45
    assert.deepEqual(log, ['prune b 0,0 0,1', 'grow a 0,1 1,0']);
    assert.deepEqual(layers.map((l) => l.weights()), [['0,0=1', '0,1=0', '1,0=0', '1,1=0.1'], []]);
    // FLOPs: the probe pass 6 x 4 active x 3 rows, plus each layer's dense gradient 2 x rows x cols x 3
    assert.deepEqual(report, { alpha: 0.5, k: 2, grown: 2, pruned: 2, flops: 72 + 24 + 24 });
    assert.equal(probes.n, 1);
  });

  test('rigl, scope local: k_l = ceil(alpha x 2) = 1 in each layer', () => {
    const log: string[] = [];
    const layers = twoLayers(log);
    const report = getMethod('rigl').update(ctxOf(layers, 'local', 0.5).ctx, {});
    assert.deepEqual(log, ['prune a 1,1', 'prune b 0,0', 'grow a 0,1', 'grow b 0,2']);
    assert.deepEqual(report, { alpha: 0.5, k: 2, grown: 2, pruned: 2, flops: 120 });
  });

  test('k rounds up: alpha 0.3 of 4 active is ceil(1.2) = 2 (global), ceil(0.6) = 1 per layer (local)', () => {
    assert.equal(getMethod('rigl').update(ctxOf(twoLayers([]), 'global', 0.3).ctx, {}).k, 2);
    assert.equal(getMethod('rigl').update(ctxOf(twoLayers([]), 'local', 0.3).ctx, {}).k, 2);
    assert.equal(getMethod('rigl').update(ctxOf(twoLayers([]), 'global', 0.2).ctx, {}).k, 1);
  });

  test('gse, grow first: with every inactive connection in S (both layers are 50% sparse) it decides as rigl', () => {
    for (const scope of ['global', 'local'] as const) {
      const log: string[] = [];
      const layers = twoLayers(log);
      const report = getMethod('gse').update(ctxOf(layers, scope, 0.5).ctx, { gamma: 1 });
      // FLOPs: probe 72, subset gradients 2 x 3 rows x |S| = 2 x 3 x 2 per layer, no sampling
      if (scope === 'global') {
        assert.deepEqual(log, ['grow a 0,1 1,0', 'prune b 0,0 0,1']);
      } else {
        assert.deepEqual(log, ['grow a 0,1', 'grow b 0,2', 'prune a 1,1', 'prune b 0,0']);
      }
      assert.deepEqual(report, { alpha: 0.5, k: 2, grown: 2, pruned: 2, flops: 72 + 12 + 12 });
    }
  });

  test('gse with overlap: the diagnostic comes back in the report', () => {
    const report = getMethod('gse').update(ctxOf(twoLayers([]), 'global', 0.5).ctx, { overlap: true });
    assert.equal(report.overlap, 1);
  });

  test('caps: prune-first grows at most the inactive-before connections; grow-first at most |S|', () => {
    for (const scope of ['global', 'local'] as const) {
      // 2 x 2 with 3 active, alpha 1: ceil(3) = 3 wanted, 1 inactive -> k = 1
      const log: string[] = [];
      const full = [new Toy('f', 2, 2, [[0, 0, 3], [0, 1, 1], [1, 1, 2]], [0, 0, 1, 0], 2, log)];
      assert.deepEqual(getMethod('rigl').update(ctxOf(full, scope, 1).ctx, {}), { alpha: 1, k: 1, grown: 1, pruned: 1, flops: 6 * 3 * 2 + 2 * 4 * 2 });
      assert.deepEqual(log, ['prune f 0,1', 'grow f 1,0']);
      const set = [new Toy('f', 2, 2, [[0, 0, 3], [0, 1, 1], [1, 1, 2]], [0, 0, 0, 0], 2, [])];
      assert.equal(getMethod('set').update(ctxOf(set, scope, 1).ctx, {}).k, 1);
      // 4 x 4 with 2 active, gamma 0.5: one pair drawn, (2,3); alpha 1 wants 2, S has 1 -> k = 1
      const glog: string[] = [];
      const sparse = [new Toy('s', 4, 4, [[0, 0, 1], [3, 3, -2]], Array(16).fill(1), 2, glog)];
      let rngCalls = 0;
      const rng = { int: (n: number) => (n === 4 ? [2, 3][rngCalls++ % 2] : 0) } as unknown as Rng;
      const report = getMethod('gse').update(ctxOf(sparse, scope, 1, rng).ctx, { gamma: 0.5 });
      assert.deepEqual(glog, ['grow s 2,3', 'prune s 0,0']);
      // FLOPs: probe 6 x 2 x 2, one subset gradient 2 x 2 x 1, uniform sampling 0
      assert.deepEqual(report, { alpha: 1, k: 1, grown: 1, pruned: 1, flops: 24 + 4 });
    }
  });

  test('grow-first caps over two layers: global by the sum of the subsets, local by each layer\'s own', () => {
    for (const scope of ['global', 'local'] as const) {
      // q (2 x 2, 50% sparse): S = its 2 inactive connections; p (4 x 4, 2 active, gamma 0.5): one pair drawn, (2,3).
      // alpha 1: global wants ceil(4) = 4, S holds 3 -> k = 3 (not q's 2 alone); local wants 2 and 2 -> 2 and 1
      const log: string[] = [];
      const layers = [
        new Toy('q', 2, 2, [[0, 0, 0.5], [1, 1, 0.25]], [1, 0.3, 0.2, 1], 2, log),
        new Toy('p', 4, 4, [[0, 0, 1], [3, 3, -2]], Array(16).fill(1), 2, log),
      ];
      let rngCalls = 0;
      const rng = { int: (n: number) => (n === 4 ? [2, 3][rngCalls++ % 2] : 0) } as unknown as Rng;
      const report = getMethod('gse').update(ctxOf(layers, scope, 1, rng).ctx, { gamma: 0.5 });
      // everything in S is grown; global prunes the 3 smallest |w| of all: q's 0.25 and 0.5, p's 1
      assert.deepEqual(log, ['grow q 0,1 1,0', 'grow p 2,3', 'prune q 0,0 1,1', 'prune p 0,0'], scope);
      // FLOPs: probe 6 x 4 x 2, subset gradients 2 x 2 x 2 (q) and 2 x 2 x 1 (p)
      assert.deepEqual(report, { alpha: 1, k: 3, grown: 3, pruned: 3, flops: 48 + 8 + 4 }, scope);
    }
  });

  test('prune-local: each layer prunes its own ceil(alpha |A_l|), the grow ranks all layers together', () => {
    assert.deepEqual(scopesOf('prune-local'), { prune: 'local', grow: 'global' });
    assert.deepEqual(scopesOf('local'), { prune: 'local', grow: 'local' });
    assert.deepEqual(scopesOf('global'), { prune: 'global', grow: 'global' });
    // alpha 0.5: a and b prune 1 each (a's 0.1, b's 0.05); the 2 grown are a's (|g| 0.5 and 0.45 beat b's 0.3)
    const log: string[] = [];
    const layers = twoLayers(log);
    const report = getMethod('rigl').update(ctxOf(layers, 'prune-local', 0.5).ctx, {});
    assert.deepEqual(log, ['prune a 1,1', 'prune b 0,0', 'grow a 0,1 1,0']);
    assert.deepEqual(report, { alpha: 0.5, k: 2, grown: 2, pruned: 2, flops: 120 });
    assert.deepEqual(layers.map((l) => l.activeCount()), [3, 1]);
  });

  test('prune-local with fewer connections to grow than to prune: the per-layer prunes are cut from the last layer back', () => {
    // alpha 1: A (1 x 2, 1 active) wants 1, B (2 x 2, 3 active) wants 3; only 2 connections are inactive,
    // so k = 2 and the prunes 1 + 3 are cut to 1 + 1 (B loses 2 of its 3 first)
    const log: string[] = [];
    const layers = [
      new Toy('A', 1, 2, [[0, 0, 0.7]], [0, 1], 2, log),
      new Toy('B', 2, 2, [[0, 0, 3], [0, 1, 1], [1, 1, 2]], [0, 0, 1, 0], 2, log),
    ];
    const report = getMethod('rigl').update(ctxOf(layers, 'prune-local', 1).ctx, {});
    assert.deepEqual(log, ['prune A 0,0', 'prune B 0,1', 'grow A 0,1', 'grow B 1,0']);
    assert.deepEqual({ k: report.k, grown: report.grown, pruned: report.pruned }, { k: 2, grown: 2, pruned: 2 });
    // cut further: one inactive connection, prunes 1 + 3 cut to 1 + 0
    const log2: string[] = [];
    const tight = [
      new Toy('A', 1, 2, [[0, 0, 0.7]], [0, 1], 2, log2),
      new Toy('B', 1, 3, [[0, 0, 3], [0, 1, 1], [0, 2, 2]], [0, 0, 0], 2, log2),
    ];
    const r2 = getMethod('rigl').update(ctxOf(tight, 'prune-local', 1).ctx, {});
    assert.deepEqual(log2, ['prune A 0,0', 'grow A 0,1']);
    assert.deepEqual({ k: r2.k, grown: r2.grown, pruned: r2.pruned }, { k: 1, grown: 1, pruned: 1 });
    // a cut over two layers: A (1 x 3, 2 active) wants 2, B (1 x 1, full) wants 1, one connection can grow:
    // B is cut to 0 and A to 1 (its 0.2 pruned, its (0,2) grown)
    const log3: string[] = [];
    const two = [
      new Toy('A', 1, 3, [[0, 0, 0.5], [0, 1, 0.2]], [0, 0, 1], 2, log3),
      new Toy('B', 1, 1, [[0, 0, 0.9]], [0], 2, log3),
    ];
    const r3 = getMethod('rigl').update(ctxOf(two, 'prune-local', 1).ctx, {});
    assert.deepEqual(log3, ['prune A 0,1', 'grow A 0,2']);
    assert.deepEqual({ k: r3.k, grown: r3.grown, pruned: r3.pruned }, { k: 1, grown: 1, pruned: 1 });
  });

  test('a global prune with a local grow is refused', () => {
    const { ctx } = ctxOf(twoLayers([]), 'global', 0.5);
    const grower = { order: 'prune-first' as const, score: () => { throw new Error('not reached'); } };
    assert.throws(() => pruneAndGrow(ctx, grower, 'toy', { prune: 'global', grow: 'local' }),
      { message: 'toy: a global prune with a local grow is not defined (how much would each layer grow?)' });
  });

  test('nothing to do: no probe, no calls, k 0 (alpha 0 after T_end; a dense layer for gse and rigl)', () => {
    for (const name of ['rigl', 'gse', 'set']) {
      for (const scope of ['global', 'local'] as const) {
        const log: string[] = [];
        const late = ctxOf(twoLayers(log), scope, 0.5, new Rng(1), 60);
        assert.deepEqual(getMethod(name).update(late.ctx, {}), { alpha: 0, k: 0, grown: 0, pruned: 0, flops: 0 }, `${name} ${scope}`);
        assert.deepEqual(log, []);
        assert.equal(late.probes.n, 0);
        if (name === 'set') continue;
        const dense = ctxOf([new Toy('d', 1, 2, [[0, 0, 1], [0, 1, 2]], [1, 1], 2, log)], scope, 0.5);
        assert.deepEqual(getMethod(name).update(dense.ctx, {}), { alpha: 0.5, k: 0, grown: 0, pruned: 0, flops: 0 }, `${name} ${scope} dense`);
        assert.deepEqual(log, []);
        assert.equal(dense.probes.n, 0);
      }
    }
  });

  test('set: the k smallest |w| pruned, k grown among the inactive-before, per layer or over both', () => {
    for (const scope of ['global', 'local'] as const) {
      const log: string[] = [];
      const layers = twoLayers(log);
      const before = layers.map((l) => new Set(pairs(l.active()).map((p) => p.join(','))));
      const report = getMethod('set').update(ctxOf(layers, scope, 0.5, new Rng(3)).ctx, {});
      assert.deepEqual({ k: report.k, grown: report.grown, pruned: report.pruned, flops: report.flops }, { k: 2, grown: 2, pruned: 2, flops: 0 });
      const prunes = log.filter((s) => s.startsWith('prune'));
      assert.deepEqual(prunes, scope === 'global' ? ['prune b 0,0 0,1'] : ['prune a 1,1', 'prune b 0,0']);
      const grows = log.filter((s) => s.startsWith('grow'));
      assert.equal(log.indexOf(grows[0]), prunes.length, 'prune first');
      const grown = grows.flatMap((s) => { const [, name, ...at] = s.split(' '); return at.map((p) => `${name}:${p}`); });
      assert.equal(grown.length, 2);
      for (const g of grown) {
        const [name, p] = g.split(':');
        assert.ok(!before[name === 'a' ? 0 : 1].has(p), `${g} was active before`);
      }
      if (scope === 'local') assert.deepEqual(layers.map((l) => l.activeCount()), [2, 2]);
      else assert.equal(layers[0].activeCount() + layers[1].activeCount(), 4);
    }
  });
});
