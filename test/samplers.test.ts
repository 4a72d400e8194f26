/**
 * methods/samplers.ts on tiny layers with a scripted random source: which outcome each draw
 * gives, which connections come out, and exactly which random numbers are asked for (the stream
 * other consumers of ctx.rng see next). Every expected value is worked out by hand in the
 * comments. The statistical checks (draw frequencies, uniformity, no rows x cols allocation) are
 * in test/methods.test.ts; this file imports nothing heavy, so Stryker runs it first.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/rng.js';
import type { Connections, SparseWeight, UnitSums } from '../models/sparse/types.js';
import { allInactive, Categorical, inactiveOf, marginals, sampleSubset, uniformInactive } from '../methods/samplers.js';

/** Answers int() and float() from scripts, recording every call; anything unscripted throws. */
class ScriptedRng {
  calls: string[] = [];
  constructor(private ints: number[] = [], private floats: number[] = []) {}
  int(n: number): number {
    this.calls.push(`int(${n})`);
    const v = this.ints.shift();
    if (v === undefined) throw new Error(`unscripted int(${n})`);
    assert.ok(v >= 0 && v < n, `scripted ${v} outside [0, ${n})`);
    return v;
  }
  float(): number {
    this.calls.push('float');
    const v = this.floats.shift();
    if (v === undefined) throw new Error('unscripted float()');
    return v;
  }
  signs(n: number): Float32Array { throw new Error(`unscripted signs(${n})`); }
}
const scripted = (ints: number[] = [], floats: number[] = []) => new ScriptedRng(ints, floats);
const asRng = (r: ScriptedRng) => r as unknown as Rng;

const conn = (pairs: [number, number][]): Connections => ({ row: Int32Array.from(pairs, (p) => p[0]), col: Int32Array.from(pairs, (p) => p[1]) });
const pairs = (c: Connections): [number, number][] => Array.from(c.row, (r, i) => [r, c.col[i]]);

/** The parts of a layer the samplers use: shape, isActive, unit sums (recording their signs), probe rows. */
class ToyLayer {
  readonly name = 'toy';
  readonly format = 'csr' as const;
  signsSeen: (Float32Array | undefined)[] = [];
  private readonly on: Set<number>;
  constructor(readonly rows: number, readonly cols: number, active: Connections, private sums: UnitSums | null = null, private probe = 0) {
    this.on = new Set(Array.from(active.row, (r, i) => r * cols + active.col[i]));
  }
  isActive(c: Connections): Uint8Array { return Uint8Array.from(c.row, (r, i) => (this.on.has(r * this.cols + c.col[i]) ? 1 : 0)); }
  unitSums(signs?: Float32Array): UnitSums {
    this.signsSeen.push(signs);
    if (!this.sums) throw new Error('no probe');
    return this.sums;
  }
  probeRows(): number { return this.probe; }
}
const asLayer = (l: ToyLayer) => l as unknown as SparseWeight;

const probs = (c: Categorical) => Array.from({ length: c.n }, (_, i) => c.prob(i));
const sums = (out: number[], inn: number[]): UnitSums => ({ out: Float32Array.from(out), in: Float32Array.from(inn) });

/** The first `n` cells of a rows x cols layer in row-major order. */
const firstCells = (n: number, cols: number) => conn(Array.from({ length: n }, (_, k) => [Math.floor(k / cols), k % cols] as [number, number]));

describe('Categorical', () => {
  test('probabilities: positive finite weights over their total; zero, negative and non-finite weights count 0', () => {
    const c = new Categorical(6, [1, 0, 3, -2, Number.NaN, Number.POSITIVE_INFINITY]);
    assert.equal(c.uniform, false);
    assert.deepEqual(probs(c), [0.25, 0, 0.75, 0, 0, 0]);
    assert.deepEqual(probs(new Categorical(2, [0, 2])), [0, 1]);
  });

  test('unusable weights fall back to uniform: none, all zero, all negative, a total that overflows', () => {
    for (const w of [null, [0, 0, 0, 0], [-1, -2, -3, -4], [1.7e308, 1.7e308, 0, 0]]) {
      const c = new Categorical(4, w);
      assert.equal(c.uniform, true, JSON.stringify(w));
      assert.deepEqual(probs(c), [0.25, 0.25, 0.25, 0.25], JSON.stringify(w));
    }
  });

  test('weights must match the outcome count', () => {
    assert.throws(() => new Categorical(4, [1, 2, 3]), { message: 'Categorical: 3 weights for 4 outcomes' });
  });

  test('a weighted draw is the smallest outcome whose cumulative weight exceeds u * total; one float per draw', () => {
    // weights 1, 0, 1, 2: cumulative 1, 1, 2, 4, total 4; u * 4 = 0, 0.8, 1 (the boundary: outcome 1 has
    // no interval, so 2), 1.6, 2 (boundary: 3), 3.96
    const floats = [0, 0.2, 0.25, 0.4, 0.5, 0.99];
    const rng = scripted([], floats.slice());
    const c = new Categorical(4, [1, 0, 1, 2]);
    assert.deepEqual(floats.map(() => c.draw(asRng(rng))), [0, 0, 2, 2, 3, 3]);
    assert.deepEqual(rng.calls, floats.map(() => 'float'));
    // outcomes 0..4, weight only on 4: every u gives 4; a single outcome is always 0
    const last = new Categorical(5, [0, 0, 0, 0, 3]);
    assert.deepEqual([0, 0.5, 0.999].map((u) => last.draw(asRng(scripted([], [u])))), [4, 4, 4]);
    assert.equal(new Categorical(1, [5]).draw(asRng(scripted([], [0.7]))), 0);
  });

  test('a uniform draw is one int(n)', () => {
    const rng = scripted([3, 0]);
    assert.equal(new Categorical(4, null).draw(asRng(rng)), 3);
    assert.equal(new Categorical(4, [0, 0, 0, 0]).draw(asRng(rng)), 0);
    assert.deepEqual(rng.calls, ['int(4)', 'int(4)']);
  });
});

describe('marginals', () => {
  const S = sums([1, 3], [2, 0, 2, 0, 4]);

  test('uniform: no unit sums, no randomness, no FLOPs', () => {
    const layer = new ToyLayer(2, 5, conn([]), S, 3);
    const m = marginals(asLayer(layer), 'uniform', asRng(scripted()));
    assert.equal(m.out.uniform && m.in.uniform, true);
    assert.deepEqual([m.out.n, m.in.n], [2, 5]);
    assert.equal(m.flops, 0);
    assert.deepEqual(layer.signsSeen, []);
  });

  test('grabo: the unit sums without signs, no randomness; FLOPs 2 P (rows + cols)', () => {
    const layer = new ToyLayer(2, 5, conn([]), S, 3);
    const m = marginals(asLayer(layer), 'grabo', asRng(scripted()));
    assert.deepEqual(probs(m.out), [0.25, 0.75]);
    assert.deepEqual(probs(m.in), [0.25, 0, 0.25, 0, 0.5]);
    assert.equal(m.flops, 2 * 3 * (2 + 5));
    assert.deepEqual(layer.signsSeen, [undefined]);
  });

  test('graest: the unit sums with probeRows() signs drawn from rng', () => {
    const layer = new ToyLayer(2, 5, conn([]), S, 3);
    const rng = new Rng(7);
    const m = marginals(asLayer(layer), 'graest', rng);
    const twin = new Rng(7);
    assert.deepEqual(layer.signsSeen, [twin.signs(3)]);
    assert.equal(rng.uint32(), twin.uint32(), 'exactly three signs drawn');
    assert.deepEqual(probs(m.in), [0.25, 0, 0.25, 0, 0.5]);
    assert.equal(m.flops, 42);
  });
});

describe('allInactive', () => {
  test('every inactive connection in (row, col) order', () => {
    assert.deepEqual(pairs(allInactive(asLayer(new ToyLayer(2, 3, conn([]))), conn([[0, 1], [1, 0], [1, 2]]))), [[0, 0], [0, 2], [1, 1]]);
    // the cursor matches row and col: (1, 0) active does not hide (0, 0), (0, 1) active does not hide (1, 1)
    assert.deepEqual(pairs(allInactive(asLayer(new ToyLayer(2, 2, conn([]))), conn([[1, 0]]))), [[0, 0], [0, 1], [1, 1]]);
    assert.deepEqual(pairs(allInactive(asLayer(new ToyLayer(2, 2, conn([]))), conn([[0, 1]]))), [[0, 0], [1, 0], [1, 1]]);
    assert.deepEqual(pairs(allInactive(asLayer(new ToyLayer(2, 2, conn([]))), conn([]))), [[0, 0], [0, 1], [1, 0], [1, 1]]);
    assert.deepEqual(pairs(allInactive(asLayer(new ToyLayer(1, 2, conn([]))), conn([[0, 0], [0, 1]]))), []);
  });

  test('active connections out of order or repeated are refused', () => {
    const layer = asLayer(new ToyLayer(2, 2, conn([])));
    const message = 'toy: active connections are not sorted and unique';
    assert.throws(() => allInactive(layer, conn([[1, 0], [0, 1]])), { message });
    assert.throws(() => allInactive(layer, conn([[0, 1], [0, 1]])), { message });
  });
});

describe('sampleSubset', () => {
  // 4 x 5 = 20 connections, 3 active
  const ACTIVE = conn([[0, 0], [1, 2], [3, 3]]);

  test('uniform: draws row then col per pair; active pairs and repeats dropped; sorted', () => {
    const layer = new ToyLayer(4, 5, ACTIVE);
    // pairs (2,1) (0,0)=active (2,1)=repeat (3,0) (1,1)
    const rng = scripted([2, 1, 0, 0, 2, 1, 3, 0, 1, 1]);
    const s = sampleSubset(asLayer(layer), ACTIVE, 5, 'uniform', asRng(rng));
    assert.deepEqual(pairs(s.connections), [[1, 1], [2, 1], [3, 0]]);
    assert.deepEqual({ exhaustive: s.exhaustive, draws: s.draws, flops: s.flops }, { exhaustive: false, draws: 5, flops: 0 });
    assert.deepEqual(rng.calls, Array.from({ length: 5 }, () => ['int(4)', 'int(5)']).flat());
  });

  test('grabo: pairs from the unit sums (here only row 1 and col 4 have weight); FLOPs of the sums', () => {
    const layer = new ToyLayer(4, 5, ACTIVE, sums([0, 1, 0, 0], [0, 0, 0, 0, 1]), 2);
    const rng = scripted([], [0.1, 0.9, 0.5, 0.5, 0.9, 0.1]);
    const s = sampleSubset(asLayer(layer), ACTIVE, 3, 'grabo', asRng(rng));
    assert.deepEqual(pairs(s.connections), [[1, 4]]);
    assert.deepEqual({ exhaustive: s.exhaustive, draws: s.draws, flops: s.flops }, { exhaustive: false, draws: 3, flops: 2 * 2 * (4 + 5) });
    assert.equal(rng.calls.length, 6);
  });

  test('exhaustive at 50% sparse or when the draws reach the inactive count, and only then', () => {
    const layer = new ToyLayer(4, 5, conn([]), sums([1, 1, 1, 1], [1, 1, 1, 1, 1]), 2);
    // 10 of 20 active: exactly 50% sparse -> every inactive connection, no randomness
    const half = firstCells(10, 5);
    const all = sampleSubset(asLayer(layer), half, 1, 'grabo', asRng(scripted()));
    assert.deepEqual({ exhaustive: all.exhaustive, draws: all.draws, flops: all.flops }, { exhaustive: true, draws: 0, flops: 0 });
    assert.deepEqual(pairs(all.connections), pairs(allInactive(asLayer(layer), half)));
    // 9 active, 11 inactive: 11 draws cover them, 10 draws sample
    const nine = firstCells(9, 5);
    const covered = sampleSubset(asLayer(layer), nine, 11, 'uniform', asRng(scripted()));
    assert.equal(covered.exhaustive, true);
    assert.equal(covered.connections.row.length, 11);
    const sampled = sampleSubset(asLayer(new ToyLayer(4, 5, nine)), nine, 10, 'uniform', new Rng(2));
    assert.equal(sampled.exhaustive, false);
    assert.equal(sampled.draws, 10);
  });
});

describe('uniformInactive', () => {
  const ACTIVE = conn([[0, 0], [1, 2], [3, 3]]);

  test('asking for more than the inactive connections is refused; 0 asks for nothing', () => {
    const layer = asLayer(new ToyLayer(2, 2, conn([])));
    assert.throws(() => uniformInactive(layer, conn([[0, 1]]), 4, asRng(scripted())), { message: 'toy: cannot grow 4 of 3 inactive connections' });
    const none = uniformInactive(layer, conn([[0, 1]]), 0, asRng(scripted()));
    assert.deepEqual(pairs(none), []);
  });

  test('a sparse layer: batches of 2 * need + 8 flat positions, active and repeated ones rejected', () => {
    const layer = asLayer(new ToyLayer(4, 5, ACTIVE));
    // flat positions (row = flat div 5): 0=(0,0) active, 7=(1,2) active, 6=(1,1), 6 again, 19=(3,4), 10=(2,0);
    // then 11=(2,1) is not taken, 3 are enough; the batch of 2 * 3 + 8 = 14 is drawn whole
    const rng = scripted([0, 7, 6, 6, 19, 10, 11, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(pairs(uniformInactive(layer, ACTIVE, 3, asRng(rng))), [[1, 1], [2, 0], [3, 4]]);
    assert.deepEqual(rng.calls, Array(14).fill('int(20)'));
    // a first batch with only 2 new positions: a second batch of 2 * 1 + 8 = 10
    const again = scripted([6, 19, ...Array(12).fill(0), 17, ...Array(9).fill(6)]);
    assert.deepEqual(pairs(uniformInactive(layer, ACTIVE, 3, asRng(again))), [[1, 1], [3, 2], [3, 4]]);
    assert.deepEqual(again.calls, Array(24).fill('int(20)'));
  });

  test('half full after growing (active + m = rows * cols / 2): still the rejection path', () => {
    // one batch of 2 * 7 + 8 = 22 flat positions, the first 7 all new
    const layer = asLayer(new ToyLayer(4, 5, ACTIVE));
    const rng = scripted([1, 2, 3, 4, 5, 6, 8, ...Array(15).fill(0)]);
    assert.deepEqual(pairs(uniformInactive(layer, ACTIVE, 7, asRng(rng))), [[0, 1], [0, 2], [0, 3], [0, 4], [1, 0], [1, 1], [1, 3]]);
    assert.deepEqual(rng.calls, Array(22).fill('int(20)'));
  });

  test('a denser layer: a partial Fisher-Yates over the enumerated inactive connections', () => {
    // 2 x 2 with (0,1) active: inactive (0,0) (1,0) (1,1); m = 2, 2 (1 + 2) > 4.
    // i = 0: j = 0 + 2 -> idx 2,1,0, take (1,1); i = 1: j = 1 + 1 -> idx 2,0,1, take (0,0)
    const layer = asLayer(new ToyLayer(2, 2, conn([])));
    const rng = scripted([2, 1]);
    assert.deepEqual(pairs(uniformInactive(layer, conn([[0, 1]]), 2, asRng(rng))), [[0, 0], [1, 1]]);
    assert.deepEqual(rng.calls, ['int(3)', 'int(2)']);
    // every inactive connection: j = i each time, all three taken
    const all = scripted([0, 0, 0]);
    assert.deepEqual(pairs(uniformInactive(layer, conn([[0, 1]]), 3, asRng(all))), [[0, 0], [1, 0], [1, 1]]);
    assert.deepEqual(all.calls, ['int(3)', 'int(2)', 'int(1)']);
    // 4 x 5 with 3 active and m = 8: 2 (3 + 8) > 20, so the enumeration (17 inactive) is sampled
    const dense = scripted(Array(8).fill(0));
    assert.equal(uniformInactive(asLayer(new ToyLayer(4, 5, ACTIVE)), ACTIVE, 8, asRng(dense)).row.length, 8);
    assert.deepEqual(dense.calls, [17, 16, 15, 14, 13, 12, 11, 10].map((n) => `int(${n})`));
  });
});

test('inactiveOf: the distinct drawn pairs outside the active list, sorted, against a set-based reference', () => {
  const rng = new Rng(12);
  for (const [rows, cols, nActive, nDrawn] of [[1, 1, 0, 3], [3, 4, 12, 20], [5, 7, 0, 0], [40, 30, 300, 900], [200, 300, 5000, 6000]]) {
    const all = Array.from({ length: rows * cols }, (_, i) => i);
    const activeKeys = rng.shuffle(all).slice(0, nActive).sort((a, b) => a - b);
    const active: Connections = { row: Int32Array.from(activeKeys, (k) => Math.floor(k / cols)), col: Int32Array.from(activeKeys, (k) => k % cols) };
    const drawnKeys = Array.from({ length: nDrawn }, () => (nActive > 0 && rng.float() < 0.3 ? activeKeys[rng.int(nActive)] : rng.int(rows * cols)));
    const drawn: Connections = { row: Int32Array.from(drawnKeys, (k) => Math.floor(k / cols)), col: Int32Array.from(drawnKeys, (k) => k % cols) };
    const on = new Set(activeKeys);
    const want = [...new Set(drawnKeys)].filter((k) => !on.has(k)).sort((a, b) => a - b);
    const got = inactiveOf(drawn, active, cols);
    assert.deepEqual(Array.from(got.row, (r, i) => r * cols + got.col[i]), want, `${rows}x${cols}, ${nActive} active, ${nDrawn} drawn`);
  }
});
