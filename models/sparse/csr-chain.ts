import * as tf from '@tensorflow/tfjs';
import * as K from './kernels/index.js';
import { layerOp, type LayerGrads } from './op.js';
import { CsrLayer, growBuffer, readFloats, releaseBuffer, rowSums, scratch, tensorOf } from './csr.js';

/** Rows of an activation staged per kernel call when it lives outside the kernels' memory: about this many bytes. */
const BLOCK_BYTES = 32 * 2 ** 20;

/**
 * The rows and columns a layer's connections touch, for activations held outside the kernels'
 * memory: the distinct columns (input features) with the column index of each nonzero remapped to
 * them, and the non-empty rows with a CSR over just those. Rebuilt when the structure changes.
 */
interface Touched {
  structure: number;
  cols: Int32Array;
  colIdx: Int32Array;
  rows: Int32Array;
  rowPtr: Int32Array;
  rowIdx: Int32Array;
}

/**
 * A chain of csr linear layers with ReLU between them (an MLP) as ONE op of tfjs: the activations
 * stay feature-major (n x B) in the kernels' layout from the first layer to the last, so a step
 * transposes only the input batch and the logits (and their gradients), and the bias add, the ReLU,
 * its gradient and the bias gradient run in the kernels. The tfjs tape holds only the input and the
 * logits; the activations live in this chain's buffers.
 *
 * An activation larger than the resident limit (csr.ts: growBuffer) is a plain array outside the
 * kernels' memory, so that width is bounded by the machine's memory, not by one 32-bit WebAssembly
 * memory: a layer then reads from it only the rows its connections touch (staged, at most one per
 * nonzero) and writes its output in blocks of rows. Every number is the same sum in the same order
 * as on the resident path and as the per-layer op (CsrLayer.apply followed by tf.relu), bit for bit.
 */
export class CsrChain {
  /** acts[l]: the input of layer l (feature-major cols x B); acts[L]: the logits, transposed */
  private readonly acts: (Float32Array | null)[];
  /** gradient buffers, alternating between layers */
  private readonly grads: (Float32Array | null)[] = [null, null];
  private readonly touched: (Touched | null)[];
  /** the rows of each layer's input its connections touch, staged by the last forward (resident) */
  private readonly staged: (Float32Array | null)[];
  private generation = 0;
  private readonly op: ReturnType<typeof layerOp>;

  constructor(private readonly layers: CsrLayer[]) {
    if (layers.length === 0) throw new Error('CsrChain: no layers');
    this.acts = new Array(layers.length + 1).fill(null);
    this.touched = new Array(layers.length).fill(null);
    this.staged = new Array(layers.length).fill(null);
    this.op = this.chainOp();
  }

  /**
   * logits (B x rows of the last layer) of x (B x cols of the first); `inputGradient: false` (an
   * MLP's input is the data batch) skips the first layer's Wᵀ·g and its transpose (./op.ts layerOp)
   */
  apply(x: tf.Tensor, o: { inputGradient: boolean } = { inputGradient: true }): tf.Tensor {
    const first = this.layers[0];
    if (x.rank !== 2 || x.shape[1] !== first.cols) throw new Error(`${first.name}: input of shape [${x.shape}], expected [B, ${first.cols}]`);
    const params: tf.Tensor[] = [];
    for (const l of this.layers) { const v = l.variables(); params.push(v.values, v.bias); }
    return this.op(x, params, o.inputGradient);
  }

  dispose(): void {
    for (const list of [this.acts, this.grads, this.staged]) {
      list.forEach((a, i) => { if (a) releaseBuffer(a); list[i] = null; });
    }
    this.touched.forEach((t, i) => { if (t) releaseTouched(t); this.touched[i] = null; });
  }

  private chainOp(): ReturnType<typeof layerOp> {
    const L = this.layers.length;
    return layerOp((x, weights, inputGradient) => {
      const B = x.shape[0];
      let ops = this.forward(x, weights, B);
      const generation = this.generation;
      const last = this.layers[L - 1];
      const logits = this.acts[L]!.subarray(0, last.rows * B);
      const value = tensorOf(K.transpose(logits, last.rows, B, scratch('out', last.rows * B)), [B, last.rows]);
      const gradFunc = (dy: tf.Tensor): LayerGrads => {
        ops.forEach((o, l) => {
          if (this.layers[l].structureVersion !== o.structure) throw new Error(`${this.layers[l].name}: the structure changed between a forward pass and its backward pass`);
        });
        if (this.generation !== generation) {
          // another forward pass of this chain came in between: redo this one
          if (x.isDisposed) throw new Error(`${this.layers[0].name}: the input of a forward pass was disposed before its backward pass`);
          ops = this.forward(x, weights, B);
        }
        return this.backward(dy, ops, B, inputGradient);
      };
      return { value, gradFunc };
    });
  }

  private act(l: number, len: number): Float32Array {
    return (this.acts[l] = growBuffer(this.acts[l], len)).subarray(0, len);
  }

  private grad(parity: number, len: number): Float32Array {
    return (this.grads[parity] = growBuffer(this.grads[parity], len)).subarray(0, len);
  }

  private forward(x: tf.Tensor, weights: tf.Tensor[], B: number): ReturnType<CsrLayer['operands']>[] {
    this.generation++;
    const L = this.layers.length;
    const a0 = this.act(0, this.layers[0].cols * B);
    K.transpose(readFloats(x), B, this.layers[0].cols, a0);
    const ops = this.layers.map((layer, l) => {
      const o = layer.operands(weights[2 * l]);
      this.forwardLayer(l, o, readFloats(weights[2 * l + 1]), this.acts[l]!.subarray(0, layer.cols * B), this.act(l + 1, layer.rows * B), B, l < L - 1);
      return o;
    });
    return ops;
  }

  /** output = relu?(W · input + bias), feature-major */
  private forwardLayer(l: number, o: ReturnType<CsrLayer['operands']>, bias: Float32Array, input: Float32Array, output: Float32Array, B: number, relu: boolean): void {
    const { rows } = o.csr;
    let a: K.Csr = o.csr;
    let x = input;
    if (!K.isResident(input)) {
      const t = this.touch(l, o);
      x = this.stage(l, input, t.cols, B);
      a = { ...o.csr, cols: t.cols.length, colIdx: t.colIdx };
    }
    if (K.isResident(output)) {
      K.spmm(a, x, B, output);
      K.biasRelu(output, bias, rows, B, relu);
      return;
    }
    const block = Math.max(1, Math.floor(BLOCK_BYTES / (4 * B)));
    const y = scratch('yT/dyT', Math.min(rows, block) * B);
    for (let r0 = 0; r0 < rows; r0 += block) {
      const m = Math.min(block, rows - r0);
      const yb = y.subarray(0, m * B);
      K.spmm({ ...a, rows: m, rowPtr: a.rowPtr.subarray(r0) }, x, B, yb);
      K.biasRelu(yb, bias.subarray(r0, r0 + m), m, B, relu);
      output.set(yb, r0 * B);
    }
  }

  /** [dx (null without `inputGradient`), then per layer the values' and the bias's gradients] */
  private backward(dy: tf.Tensor, ops: ReturnType<CsrLayer['operands']>[], B: number, inputGradient: boolean): LayerGrads {
    const L = this.layers.length;
    const out: LayerGrads = [null];
    const last = this.layers[L - 1];
    let g = this.grad(L % 2, last.rows * B);
    K.transpose(readFloats(dy), B, last.rows, g);
    let sums: Float32Array | null = null;
    for (let l = L - 1; l >= 0; l--) {
      const layer = this.layers[l];
      const o = ops[l];
      const h = this.acts[l]!.subarray(0, layer.cols * B);
      layer.probeBackward(h, g, B);
      const dbias = sums ?? (K.isResident(g) ? K.rowSums64(g, layer.rows, B) : rowSums(g, layer.rows, B));
      const dx = l > 0 || inputGradient ? this.grad(l % 2, layer.cols * B) : null;
      const r = this.backwardLayer(l, o, g, h, dx, B, l > 0);
      out[1 + 2 * l] = tensorOf(r.dv, [r.dv.length]);
      out[2 + 2 * l] = tf.tensor1d(dbias);
      sums = r.sums;
      if (dx) g = dx;
    }
    const first = this.layers[0];
    if (inputGradient) out[0] = tensorOf(K.transpose(g, first.cols, B, scratch('out', first.cols * B)), [B, first.cols]);
    return out;
  }

  /**
   * The value gradient (a view of scratch, consumed at once) and dx = Wᵀ·g, masked by the ReLU
   * of the layer below when `relu` (its output h > 0), into `dx` (null: not wanted); on the
   * touched-rows path also the row sums of dx (the bias gradient of the layer below), from its
   * touched rows.
   */
  private backwardLayer(l: number, o: ReturnType<CsrLayer['operands']>, g: Float32Array, h: Float32Array, dx: Float32Array | null, B: number, relu: boolean): { dv: Float32Array; sums: Float32Array | null } {
    const { csr } = o;
    const t = this.touch(l, o);
    if (K.isResident(g) && K.isResident(h) && (!dx || K.isResident(dx)) && 8 * t.cols.length > csr.cols) {
      const dv = K.sddmm(o.rowIdx, csr.colIdx, g, h, B, scratch('dv', o.rowIdx.length));
      if (!dx) return { dv, sums: null };
      K.spmmT(csr, g, B, dx);
      if (relu) K.reluGrad(dx, h, csr.cols * B);
      return { dv, sums: null };
    }
    // only the rows the connections touch (an activation outside the kernels' memory, or a wide
    // layer whose connections touch few of its inputs): g's non-empty rows, h's (and dx's) touched
    // columns; the other rows of dx are 0
    const hU = K.isResident(h) ? this.stage(l, h, t.cols, B) : this.staged[l]!.subarray(0, t.cols.length * B);
    let rowsOf: K.Csr = csr, gR = g, rowIdx = o.rowIdx;
    if (!K.isResident(g)) {
      gR = K.gatherRows(g, t.rows, B, scratch('gRows', t.rows.length * B));
      rowsOf = { ...csr, rows: t.rows.length, rowPtr: t.rowPtr };
      rowIdx = t.rowIdx;
    }
    const dv = K.sddmm(rowIdx, t.colIdx, gR, hU, B, scratch('dv', rowIdx.length));
    if (!dx) return { dv, sums: null };
    const dxU = K.spmmT({ ...rowsOf, cols: t.cols.length, colIdx: t.colIdx }, gR, B, scratch('dxT', t.cols.length * B));
    if (relu) K.reluGrad(dxU, hU, t.cols.length * B);
    dx.fill(0);
    for (let u = 0; u < t.cols.length; u++) dx.set(dxU.subarray(u * B, (u + 1) * B), t.cols[u] * B);
    if (!relu) return { dv, sums: null };
    const sums = new Float32Array(csr.cols);
    const touched = K.rowSums64(dxU, t.cols.length, B);
    for (let u = 0; u < t.cols.length; u++) sums[t.cols[u]] = touched[u];
    return { dv, sums };
  }

  /** layer l's touched rows and columns for its current structure */
  private touch(l: number, o: ReturnType<CsrLayer['operands']>): Touched {
    const old = this.touched[l];
    if (old && old.structure === o.structure) return old;
    if (old) releaseTouched(old);
    const { rows, rowPtr, colIdx } = o.csr;
    const nnz = rowPtr[rows];
    const c = K.distinct(colIdx.subarray(0, nnz), o.csr.cols);
    const r = K.distinct(o.rowIdx.subarray(0, nnz), rows);
    const t: Touched = {
      structure: o.structure,
      cols: c.values,
      colIdx: residentCopy(c.index),
      rows: r.values,
      rowPtr: K.allocInt32(r.values.length + 1),
      rowIdx: residentCopy(r.index),
    };
    for (let i = 0; i < r.values.length; i++) t.rowPtr[i] = rowPtr[r.values[i]];
    t.rowPtr[r.values.length] = nnz;
    return (this.touched[l] = t);
  }

  /** the rows `cols` of layer l's input, into its staging buffer (resident) */
  private stage(l: number, input: Float32Array, cols: Int32Array, B: number): Float32Array {
    const len = cols.length * B;
    let s = this.staged[l];
    if (!s || s.length < len) {
      if (s) K.release(s);
      s = this.staged[l] = K.allocFloat32(len);
    }
    return K.gatherRows(input, cols, B, s.subarray(0, len));
  }
}

function residentCopy(a: Int32Array): Int32Array {
  const r = K.allocInt32(a.length);
  r.set(a);
  return r;
}

function releaseTouched(t: Touched): void {
  for (const a of [t.colIdx, t.rowPtr, t.rowIdx]) K.release(a);
}
