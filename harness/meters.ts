import type { SparseLayer } from '../models/sparse/types.js';

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Peak resident memory of this process so far, in MB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * Training FLOPs of one step over `batch` samples, counted from the layers' current active
 * connections: forward 2 x active x positions per sample, backward twice that (input gradient
 * and weight gradient), biases and elementwise work left out.
 */
export function stepFlops(layers: SparseLayer[], batch: number, allActive = false): number {
  let forward = 0;
  for (const l of layers) forward += 2 * (allActive ? l.rows * l.cols : l.activeCount()) * l.shape.positions;
  return 3 * forward * batch;
}
