import { allocFloat32, allocInt32, release, sddmm, sddmmGathered } from './kernels/index.js';
import type { Connections, UnitSums } from './types.js';

/** What a layer's probe pass leaves behind: the answers to every gradient question of an update. */
export interface Probe {
  /** probe rows: batch rows (linear) or patches (conv) */
  readonly count: number;
  subsetGradient(c: Connections): Float32Array;
  denseGradient(): Float32Array;
  unitSums(signs?: Float32Array): UnitSums;
  /** gives back memory the record owns (called when the layer drops it) */
  release?(): void;
}

/**
 * What one probe pass over the update batch leaves behind for a linear layer: its input h and output
 * gradient delta, stored feature-major (hT: cols x P, deltaT: rows x P) so that the gradient of a
 * connection (row, col) is one contiguous dot product. Format-independent, so masked and csr
 * layers derive identical numbers from identical probes.
 *
 * Every gradient entry, subset or dense, is the same SDDMM dot product of the sparse kernels
 * (one fixed summation order per entry), so subsetGradient(S) is bit-equal to the entries of
 * denseGradient() at S on every backend: a GSE whose subset covers every inactive connection
 * decides exactly as RigL.
 */
export class ProbeRecord implements Probe {
  constructor(
    readonly hT: Float32Array,
    readonly deltaT: Float32Array,
    readonly rows: number,
    readonly cols: number,
    readonly count: number,
  ) {}

  /** from batch-major h (P x cols) and delta (P x rows) */
  static fromBatchMajor(h: Float32Array, delta: Float32Array, rows: number, cols: number, count: number): ProbeRecord {
    return new ProbeRecord(transpose(h, count, cols), transpose(delta, count, rows), rows, cols, count);
  }

  /**
   * grad(row, col) = sum_i delta[i,row] * h[i,col], O(P x |c|) (the kernels' SDDMM; records held
   * outside the kernels' memory, as a very wide layer's are, have just the touched rows staged)
   */
  subsetGradient(c: Connections): Float32Array {
    if (c.row.length === 0) return new Float32Array(0);
    this.check(c);
    return sddmmGathered(c.row, c.col, this.deltaT, this.hT, this.count);
  }

  /**
   * The full rows x cols gradient, row-major: deltaT (rows x P) times h (P x cols), computed as
   * the SDDMM over every (row, col) pair, a block of rows at a time (the pair lists of one block,
   * about 2^20 pairs, are the only memory beyond the result).
   */
  denseGradient(): Float32Array {
    const { rows, cols, count: P } = this;
    const out = new Float32Array(rows * cols);
    if (rows === 0 || cols === 0) return out;
    const block = Math.max(1, Math.min(rows, Math.floor((1 << 20) / cols)));
    const row = allocInt32(block * cols);
    const col = allocInt32(block * cols);
    const d = allocFloat32(this.deltaT.length);
    const h = allocFloat32(this.hT.length);
    try {
      d.set(this.deltaT);
      h.set(this.hT);
      for (let r = 0; r < block; r++) for (let c = 0; c < cols; c++) col[r * cols + c] = c;
      for (let r0 = 0; r0 < rows; r0 += block) {
        const m = Math.min(block, rows - r0);
        for (let r = 0; r < m; r++) row.fill(r0 + r, r * cols, (r + 1) * cols);
        sddmm(row.subarray(0, m * cols), col.subarray(0, m * cols), d, h, P, out.subarray(r0 * cols, (r0 + m) * cols));
      }
    } finally {
      release(h);
      release(d);
      release(col);
      release(row);
    }
    return out;
  }

  private check(c: Connections): void {
    const { rows, cols } = this;
    if (c.col.length !== c.row.length) throw new Error(`subsetGradient: ${c.row.length} rows but ${c.col.length} cols`);
    for (let k = 0; k < c.row.length; k++) {
      const r = c.row[k];
      const q = c.col[k];
      if (!(r >= 0 && r < rows && q >= 0 && q < cols)) throw new Error(`subsetGradient: connection (${r}, ${q}) is outside ${rows} x ${cols}`);
    }
  }

  unitSums(signs?: Float32Array): UnitSums {
    if (signs && signs.length !== this.count) throw new Error(`unitSums: ${signs.length} signs for ${this.count} probe rows`);
    return { in: rowSums(this.hT, this.cols, this.count, signs), out: rowSums(this.deltaT, this.rows, this.count, signs) };
  }
}

/** per feature: sum_i |x[f,i]|, or |sum_i s_i x[f,i]| with signs */
function rowSums(xT: Float32Array, features: number, P: number, signs?: Float32Array): Float32Array {
  const out = new Float32Array(features);
  for (let f = 0; f < features; f++) {
    let s = 0;
    const o = f * P;
    if (signs) {
      for (let i = 0; i < P; i++) s += signs[i] * xT[o + i];
      out[f] = Math.abs(s);
    } else {
      for (let i = 0; i < P; i++) s += Math.abs(xT[o + i]);
      out[f] = s;
    }
  }
  return out;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[o + c];
  }
  return out;
}

/**
 * The probe half of the sparse-weight contract, the same for every storage format: while probing
 * is on, the layer's backward pass stores a ProbeRecord, and the gradient questions of the update
 * are answered from it.
 */
export abstract class ProbedWeight {
  abstract readonly name: string;
  protected probing = false;
  private probe: Probe | null = null;

  setProbe(on: boolean): void { this.probing = on; }
  clearProbe(): void { this.keepProbe(null); }
  hasProbe(): boolean { return this.probe !== null; }

  /** replaces the recorded probe (the previous one gives back its memory) */
  protected keepProbe(p: Probe | null): void {
    if (this.probe && this.probe !== p) this.probe.release?.();
    this.probe = p;
  }

  protected recorded(): Probe {
    if (!this.probe) throw new Error(`${this.name}: no probe pass recorded`);
    return this.probe;
  }

  subsetGradient(c: Connections): Float32Array { return this.recorded().subsetGradient(c); }
  denseGradient(): Float32Array { return this.recorded().denseGradient(); }
  unitSums(signs?: Float32Array): UnitSums { return this.recorded().unitSums(signs); }
  probeRows(): number { return this.recorded().count; }
}
