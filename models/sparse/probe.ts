import * as tf from '@tensorflow/tfjs';
import type { Connections, UnitSums } from './types.js';

/**
 * What one probe pass over the update batch leaves behind for a layer: its input h and output
 * gradient delta, stored feature-major (hT: cols x P, deltaT: rows x P) so that the gradient of a
 * connection (row, col) is one contiguous dot product. Format-independent, so masked and csr
 * layers derive identical numbers from identical probes.
 */
export class ProbeRecord {
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

  /** grad(row, col) = sum_i delta[i,row] * h[i,col], O(P x |c|) */
  subsetGradient(c: Connections): Float32Array {
    const P = this.count;
    const out = new Float32Array(c.row.length);
    for (let k = 0; k < out.length; k++) {
      const d = c.row[k] * P;
      const h = c.col[k] * P;
      let s = 0;
      for (let i = 0; i < P; i++) s += this.deltaT[d + i] * this.hT[h + i];
      out[k] = s;
    }
    return out;
  }

  /** the full rows x cols gradient, row-major: deltaT (rows x P) times h (P x cols) */
  denseGradient(): Float32Array {
    return tf.tidy(() => {
      const d = tf.tensor2d(this.deltaT, [this.rows, this.count]);
      const h = tf.transpose(tf.tensor2d(this.hT, [this.cols, this.count]));
      return tf.matMul(d, h).dataSync() as Float32Array;
    });
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
