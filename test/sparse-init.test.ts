import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignActiveCounts, randomConnections, sparseInitialValues } from '../models/sparse/init.js';
import { Rng } from '../core/rng.js';

const lenet300 = [{ rows: 300, cols: 784 }, { rows: 100, cols: 300 }, { rows: 10, cols: 100 }];
const total = (s: { rows: number; cols: number }[]) => s.reduce((a, x) => a + x.rows * x.cols, 0);

test('uniform assignment gives every layer the same density and the exact total', () => {
  for (const density of [0.5, 0.1, 0.02, 0.01]) {
    const counts = assignActiveCounts(lenet300, density, 'uniform');
    assert.equal(counts.reduce((a, b) => a + b, 0), Math.round(density * total(lenet300)));
    counts.forEach((c, l) => assert.ok(Math.abs(c - density * lenet300[l].rows * lenet300[l].cols) <= 1));
  }
});

test('Erdős–Rényi assignment: density ∝ (rows+cols)/(rows*cols), exact total', () => {
  const density = 0.1;
  const counts = assignActiveCounts(lenet300, density, 'erdos-renyi');
  assert.equal(counts.reduce((a, b) => a + b, 0), Math.round(density * total(lenet300)));
  const d = counts.map((c, l) => c / (lenet300[l].rows * lenet300[l].cols));
  const score = lenet300.map((s) => (s.rows + s.cols) / (s.rows * s.cols));
  // ratios of densities follow the ratios of scores (within rounding of one connection)
  assert.ok(Math.abs(d[1] / d[0] - score[1] / score[0]) < 0.01);
  assert.ok(d[2] > d[1] && d[1] > d[0]);
});

test('densities above 1 are clipped and the surplus redistributed to the others', () => {
  // at 50% density ER would give the 10x100 layer density > 1
  const counts = assignActiveCounts(lenet300, 0.5, 'erdos-renyi');
  assert.equal(counts[2], 1000, 'small layer saturated to dense');
  assert.equal(counts.reduce((a, b) => a + b, 0), Math.round(0.5 * total(lenet300)));
  assert.ok(counts.every((c, l) => c <= lenet300[l].rows * lenet300[l].cols));
});

test('random connections are distinct, sorted, in range, and seeded', () => {
  const a = randomConnections(37, 53, 500, new Rng(1));
  const b = randomConnections(37, 53, 500, new Rng(1));
  const c = randomConnections(37, 53, 500, new Rng(2));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const keys = new Set<number>();
  for (let i = 0; i < 500; i++) {
    assert.ok(a.row[i] >= 0 && a.row[i] < 37 && a.col[i] >= 0 && a.col[i] < 53);
    keys.add(a.row[i] * 53 + a.col[i]);
    if (i > 0) assert.ok(a.row[i - 1] * 53 + a.col[i - 1] < a.row[i] * 53 + a.col[i]);
  }
  assert.equal(keys.size, 500);
  assert.throws(() => randomConnections(2, 3, 7, new Rng(1)), /cannot place 7 connections in a 2x3 matrix/);
});

test('connections of a layer with more than 2^32 positions need no rows*cols memory', () => {
  const rows = 100_000, cols = 100_000; // 1e10 positions
  const c = randomConnections(rows, cols, 1000, new Rng(3));
  assert.equal(c.row.length, 1000);
  assert.ok(Math.max(...c.row) < rows && Math.max(...c.col) < cols);
  assert.ok(Math.max(...c.row) > rows / 2, 'rows spread over the whole range');
});

test('sparse init: U(-1,1)*sqrt(3/fan_in) per output unit, bias with the same bound', () => {
  const c = randomConnections(50, 400, 4000, new Rng(4));
  const { values, bias } = sparseInitialValues(50, c, new Rng(5));
  const fanIn = new Array(50).fill(0);
  for (const r of c.row) fanIn[r]++;
  for (let k = 0; k < values.length; k++) assert.ok(Math.abs(values[k]) <= Math.sqrt(3 / fanIn[c.row[k]]) + 1e-7);
  for (let r = 0; r < 50; r++) assert.ok(Math.abs(bias[r]) <= Math.sqrt(3 / fanIn[r]) + 1e-7);
  // unit output variance: per row, sum of w^2 ≈ 1
  const sq = new Array(50).fill(0);
  for (let k = 0; k < values.length; k++) sq[c.row[k]] += values[k] ** 2;
  const mean = sq.reduce((a, b) => a + b, 0) / 50;
  assert.ok(Math.abs(mean - 1) < 0.1, `mean sum of squares ${mean}`);
});

test('rounding by largest remainder: the connections left over go to the largest fractional parts, ties to the first layer', () => {
  // uniform 0.37 of 10, 20, 30: exact 3.7, 7.4, 11.1; floors 21 of round(22.2) = 22: the one left goes to 3.7
  assert.deepEqual(assignActiveCounts([{ rows: 1, cols: 10 }, { rows: 1, cols: 20 }, { rows: 1, cols: 30 }], 0.37, 'uniform'), [4, 7, 11]);
  // 0.12 of 10, 20, 30: exact 1.2, 2.4, 3.6; floors 6 of round(7.2) = 7: to 3.6
  assert.deepEqual(assignActiveCounts([{ rows: 1, cols: 10 }, { rows: 1, cols: 20 }, { rows: 1, cols: 30 }], 0.12, 'uniform'), [1, 2, 4]);
  // 0.35 of 10, 10, 10: exact 3.5 each, floors 9 of round(10.5) = 11: the first two layers
  assert.deepEqual(assignActiveCounts([{ rows: 1, cols: 10 }, { rows: 1, cols: 10 }, { rows: 1, cols: 10 }], 0.35, 'uniform'), [4, 4, 3]);
  // 0.25 of 8, 2, 2, 2: exact 2, 0.5, 0.5, 0.5; floors 2 of 3.5 rounded to 4: the first two of the tied layers
  assert.deepEqual(assignActiveCounts([{ rows: 1, cols: 8 }, { rows: 1, cols: 2 }, { rows: 1, cols: 2 }, { rows: 1, cols: 2 }], 0.25, 'uniform'), [2, 1, 1, 0]);
});

test('random connections: every position equally likely (Floyd draws over the whole range)', () => {
  const hits = [0, 0, 0, 0, 0];
  const T = 2000;
  for (let seed = 0; seed < T; seed++) {
    const c = randomConnections(1, 5, 2, new Rng(seed));
    for (const col of c.col) hits[col]++;
  }
  for (const n of hits) assert.ok(Math.abs(n / T - 2 / 5) < 0.04, `hits ${hits}`);
});

test('sparse init draws the weights in connection order, then the biases, from the layer stream', () => {
  const c = randomConnections(3, 4, 5, new Rng(6));
  const { values, bias } = sparseInitialValues(3, c, new Rng(7));
  const rng = new Rng(7);
  const fanIn = [0, 0, 0];
  for (const r of c.row) fanIn[r]++;
  const bound = (r: number) => Math.sqrt(3 / Math.max(1, fanIn[r]));
  assert.deepEqual(Array.from(values), Array.from(c.row, (r) => Math.fround(rng.uniform(-1, 1) * bound(r))));
  assert.deepEqual(Array.from(bias), [0, 1, 2].map((r) => Math.fround(rng.uniform(-1, 1) * bound(r))));
});

test('a layer with every connection active draws nothing for its connections: its weights are the first draws of its stream', () => {
  const rng = new Rng(5, 'layer/dense');
  const all = randomConnections(3, 4, 12, rng);
  assert.deepEqual(Array.from(all.row), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  assert.deepEqual(Array.from(all.col), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  const untouched = new Rng(5, 'layer/dense');
  assert.equal(rng.uint32(), untouched.uint32(), 'no draw spent on a full layer');
});
