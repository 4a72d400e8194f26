import type { Rng } from '../../core/rng.js';
import type { Connections } from './types.js';

export type SparsityDistribution = 'erdos-renyi' | 'uniform';

export interface MatrixShape {
  rows: number;
  cols: number;
}

/**
 * Active connection count per layer for a global density.
 * erdos-renyi: density_l ∝ (rows + cols) / (rows * cols); uniform: the same density everywhere.
 * Densities above 1 are clipped and the surplus redistributed over the other layers; the counts
 * are rounded by largest remainder so that their total is exactly round(density * total)
 * (when that is reachable).
 */
export function assignActiveCounts(shapes: MatrixShape[], density: number, distribution: SparsityDistribution): number[] {
  const sizes = shapes.map((s) => s.rows * s.cols);
  const total = sizes.reduce((a, b) => a + b, 0);
  const target = Math.round(density * total);
  const score = shapes.map((s) => (distribution === 'uniform' ? 1 : (s.rows + s.cols) / (s.rows * s.cols)));
  const dense = new Array<boolean>(shapes.length).fill(false);
  const layerDensity = new Array<number>(shapes.length).fill(0);
  for (;;) {
    let budget = target;
    let weighted = 0;
    for (let l = 0; l < shapes.length; l++) {
      if (dense[l]) budget -= sizes[l];
      else weighted += score[l] * sizes[l];
    }
    const scale = weighted > 0 ? budget / weighted : 0;
    let clipped = false;
    for (let l = 0; l < shapes.length; l++) {
      if (dense[l]) { layerDensity[l] = 1; continue; }
      layerDensity[l] = scale * score[l];
      if (layerDensity[l] > 1) { dense[l] = true; clipped = true; }
    }
    if (!clipped) break;
  }
  const exact = layerDensity.map((d, l) => Math.min(1, Math.max(0, d)) * sizes[l]);
  const counts = exact.map(Math.floor);
  let missing = target - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((e, l) => l).sort((a, b) => (exact[b] - counts[b]) - (exact[a] - counts[a]) || a - b);
  for (const l of order) {
    if (missing <= 0) break;
    if (counts[l] < sizes[l]) { counts[l]++; missing--; }
  }
  return counts;
}

/**
 * `count` distinct connections of a rows x cols matrix, uniformly at random (Floyd's algorithm
 * over flat positions held as doubles: exact for rows * cols up to 2^53, memory O(count)).
 * Sorted by row, then col.
 */
export function randomConnections(rows: number, cols: number, count: number, rng: Rng): Connections {
  const size = rows * cols;
  if (count > size) throw new Error(`cannot place ${count} connections in a ${rows}x${cols} matrix`);
  let flat: Float64Array;
  if (count === size) {
    flat = new Float64Array(size);
    for (let i = 0; i < size; i++) flat[i] = i;
  } else {
    const chosen = new Set<number>();
    for (let j = size - count; j < size; j++) {
      const t = rng.int(j + 1);
      chosen.add(chosen.has(t) ? j : t);
    }
    flat = Float64Array.from(chosen).sort();
  }
  return fromSortedKeys(flat, cols);
}

/** Connections from sorted flat keys row * cols + col (doubles: exact below 2^53). */
export function fromSortedKeys(keys: Float64Array, cols: number): Connections {
  const n = keys.length;
  const row = new Int32Array(n);
  const col = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = Math.floor(keys[i] / cols);
    row[i] = r;
    col[i] = keys[i] - r * cols;
  }
  return { row, col };
}

/**
 * Initial weights for sorted connections: U(-1, 1) * sqrt(3 / fan_in) per output unit, fan-in
 * counted over active inputs only, so outputs have unit variance; biases use the same bound.
 */
export function sparseInitialValues(rows: number, c: Connections, rng: Rng): { values: Float32Array; bias: Float32Array } {
  const fanIn = new Int32Array(rows);
  for (let i = 0; i < c.row.length; i++) fanIn[c.row[i]]++;
  const bound = (r: number) => Math.sqrt(3 / Math.max(1, fanIn[r]));
  const values = new Float32Array(c.row.length);
  for (let i = 0; i < values.length; i++) values[i] = rng.uniform(-1, 1) * bound(c.row[i]);
  const bias = new Float32Array(rows);
  for (let r = 0; r < rows; r++) bias[r] = rng.uniform(-1, 1) * bound(r);
  return { values, bias };
}
