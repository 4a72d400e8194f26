import * as tf from '@tensorflow/tfjs';
import * as K from './kernels/index.js';
import { layerOp, type LayerGrads } from './op.js';
import { ProbedWeight, ProbeRecord } from './probe.js';
import type { Connections, LayerInit, LayerShape, LayerState, Param, SparseLayer, UnitSums } from './types.js';

/**
 * The always-sparse format: only the active connections are stored, as CSR
 * (rowPtr: rows + 1 offsets, colIdx: the column of each nonzero, sorted inside each row) with the
 * values in a 1-D tf.Variable of length nnz (so tf.variableGrads and the SGD step treat it like
 * any other parameter) and their momentum in a variable of the same length. Nothing of size
 * rows x cols is ever allocated, except by denseGradient() (RigL's real cost), and no flat index
 * row * cols is ever formed: connections are always (row, col) pairs.
 *
 * CsrWeight is the structure and the contract, shared by the two layer kinds: CsrLayer (linear,
 * below) and CsrConvLayer (./csr-conv.ts), which differ only in their forward/backward op.
 * On the wasm backend, tensors are read from and made from views of the heaps (no fresh arrays:
 * their page faults dominated wide layers); on other backends through dataSync / fresh copies.
 *
 * prune/grow rebuild the structure by merging sorted lists, O(nnz + rows + |c|) (plus a sort of c
 * when it is not sorted already), and replace the values/momentum variables by new ones of the
 * new length (the old ones are disposed; the training loop takes model.params() afresh after
 * every update). Grown connections get value 0 and momentum 0, pruned ones are dropped.
 *
 * The structure (rowPtr, colIdx, the row of each nonzero for the sddmm) and this layer's copy of
 * the values and of its input live in the kernels' memory, so that the kernels read them in
 * place; the kernels' memory is released by dispose().
 */
export abstract class CsrWeight extends ProbedWeight implements SparseLayer {
  readonly format = 'csr' as const;
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  /** CSR row offsets, rows + 1 (kernels' memory) */
  protected rowPtr: Int32Array;
  /** column of each nonzero, ascending inside a row (kernels' memory) */
  protected colIdx: Int32Array;
  /** row of each nonzero: the sddmm's pair list is (rowIdx, colIdx) (kernels' memory) */
  protected rowIdx: Int32Array;
  /** the values as of the last forward pass, for the kernels (kernels' memory) */
  protected vals: Float32Array;
  protected values: tf.Variable;
  protected velocity: tf.Variable;
  protected readonly bias: tf.Variable;
  protected readonly biasVelocity: tf.Variable;
  /** counts forward passes: a backward pass checks that its input and vals are still its own */
  protected generation = 0;
  /** counts structure changes: a backward pass across one is an error */
  protected structure = 0;
  private readonly paramList: Param[];
  private disposed = false;

  constructor(readonly shape: LayerShape, init: LayerInit) {
    super();
    this.name = shape.name;
    this.rows = shape.rows;
    this.cols = shape.cols;
    if (init.bias.length !== this.rows) throw new Error(`${this.name}: bias has ${init.bias.length} values, expected ${this.rows}`);
    const c = this.sorted(init.connections, 'init', init.values);
    const nnz = c.row.length;
    if (c.values!.length !== nnz) throw new Error(`${this.name}: ${c.values!.length} values for ${nnz} connections`);
    const s = this.buildStructure(c.row, c.col);
    this.rowPtr = s.rowPtr;
    this.colIdx = s.colIdx;
    this.rowIdx = s.rowIdx;
    this.vals = K.allocFloat32(nnz);
    this.values = variable(c.values!, true);
    this.velocity = variable(new Float32Array(nnz), false);
    this.bias = variable(init.bias, true);
    this.biasVelocity = variable(new Float32Array(this.rows), false);
    this.paramList = [
      { name: `${this.name}/weight`, value: this.values, velocity: this.velocity, decay: true },
      { name: `${this.name}/bias`, value: this.bias, velocity: this.biasVelocity, decay: true },
    ];
  }

  abstract apply(x: tf.Tensor, o?: { inputGradient: boolean }): tf.Tensor;

  /**
   * The same two Param objects on every call; a structure change points the weight param at the
   * new values/momentum variables, so a model that keeps the list it got once (vit) stays current.
   */
  params(): Param[] {
    return this.paramList;
  }

  // -------------------------------------------------------------------------------------------
  // the contract

  activeCount(): number { return this.rowPtr[this.rows]; }

  active(): Connections {
    const nnz = this.activeCount();
    const row = new Int32Array(nnz);
    const col = new Int32Array(nnz);
    row.set(this.rowIdx);
    col.set(this.colIdx);
    return { row, col };
  }

  /** position of (r, c) among the nonzeros, or -1: binary search inside row r */
  private find(r: number, c: number): number {
    if (!(r >= 0 && r < this.rows)) return -1;
    let lo = this.rowPtr[r];
    let hi = this.rowPtr[r + 1];
    const idx = this.colIdx;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = idx[mid];
      if (v === c) return mid;
      if (v < c) lo = mid + 1; else hi = mid;
    }
    return -1;
  }

  isActive(c: Connections): Uint8Array {
    const out = new Uint8Array(c.row.length);
    for (let k = 0; k < out.length; k++) out[k] = this.find(c.row[k], c.col[k]) >= 0 ? 1 : 0;
    return out;
  }

  magnitudes(c: Connections): Float32Array {
    const w = this.values.dataSync() as Float32Array;
    const out = new Float32Array(c.row.length);
    for (let k = 0; k < out.length; k++) {
      const i = this.find(c.row[k], c.col[k]);
      out[k] = i >= 0 ? Math.abs(w[i]) : 0;
    }
    return out;
  }

  /** removes active connections: merge of the sorted structure with the sorted prune list */
  prune(c: Connections): void {
    if (c.row.length === 0) return;
    const p = this.sorted(c, 'prune');
    const nnz = this.activeCount();
    const m = p.row.length;
    const { rowPtr, colIdx } = this;
    // check first, change nothing on error
    const keep = new Uint8Array(nnz).fill(1);
    let j = 0;
    for (let r = 0; r < this.rows && j < m; r++) {
      let k = rowPtr[r];
      const end = rowPtr[r + 1];
      while (j < m && p.row[j] === r) {
        const col = p.col[j];
        while (k < end && colIdx[k] < col) k++;
        if (k >= end || colIdx[k] !== col) throw new Error(`${this.name}: connection (${r}, ${col}) is already inactive`);
        keep[k] = 0;
        k++;
        j++;
      }
    }
    if (j !== m) throw new Error(`${this.name}: connection (${p.row[j]}, ${p.col[j]}) is already inactive`);
    const w = this.values.dataSync() as Float32Array;
    const v = this.velocity.dataSync() as Float32Array;
    const n = nnz - m;
    const row = new Int32Array(n);
    const col = new Int32Array(n);
    const nw = new Float32Array(n);
    const nv = new Float32Array(n);
    let o = 0;
    for (let k = 0; k < nnz; k++) {
      if (!keep[k]) continue;
      row[o] = this.rowIdx[k];
      col[o] = colIdx[k];
      nw[o] = w[k];
      nv[o] = v[k];
      o++;
    }
    this.replace(row, col, nw, nv);
  }

  /** adds inactive connections with value 0 and momentum 0: merge of two sorted lists */
  grow(c: Connections): void {
    if (c.row.length === 0) return;
    const g = this.sorted(c, 'grow');
    const nnz = this.activeCount();
    const m = g.row.length;
    for (let j = 0; j < m; j++) {
      if (this.find(g.row[j], g.col[j]) >= 0) throw new Error(`${this.name}: connection (${g.row[j]}, ${g.col[j]}) is already active`);
    }
    const w = this.values.dataSync() as Float32Array;
    const v = this.velocity.dataSync() as Float32Array;
    const n = nnz + m;
    const row = new Int32Array(n);
    const col = new Int32Array(n);
    const nw = new Float32Array(n);
    const nv = new Float32Array(n);
    const { rowIdx, colIdx } = this;
    let a = 0;
    let j = 0;
    for (let o = 0; o < n; o++) {
      // take the old nonzero unless the next grown connection comes first
      const takeOld = j >= m || (a < nnz && (rowIdx[a] < g.row[j] || (rowIdx[a] === g.row[j] && colIdx[a] < g.col[j])));
      if (takeOld) {
        row[o] = rowIdx[a];
        col[o] = colIdx[a];
        nw[o] = w[a];
        nv[o] = v[a];
        a++;
      } else {
        row[o] = g.row[j];
        col[o] = g.col[j];
        j++; // value and momentum stay 0
      }
    }
    this.replace(row, col, nw, nv);
  }

  /** new structure and new values/momentum variables (the old ones are disposed) */
  private replace(row: Int32Array, col: Int32Array, values: Float32Array, velocity: Float32Array): void {
    const s = this.buildStructure(row, col);
    K.release(this.rowPtr);
    K.release(this.colIdx);
    K.release(this.rowIdx);
    K.release(this.vals);
    this.rowPtr = s.rowPtr;
    this.colIdx = s.colIdx;
    this.rowIdx = s.rowIdx;
    this.vals = K.allocFloat32(row.length);
    this.values.dispose();
    this.velocity.dispose();
    this.values = variable(values, true);
    this.velocity = variable(velocity, false);
    this.paramList[0].value = this.values;
    this.paramList[0].velocity = this.velocity;
    this.structure++;
  }

  /** CSR arrays in the kernels' memory from connections sorted by (row, col) */
  private buildStructure(row: Int32Array, col: Int32Array): { rowPtr: Int32Array; colIdx: Int32Array; rowIdx: Int32Array } {
    const nnz = row.length;
    const rowPtr = K.allocInt32(this.rows + 1);
    rowPtr.fill(0);
    for (let k = 0; k < nnz; k++) rowPtr[row[k] + 1]++;
    for (let r = 0; r < this.rows; r++) rowPtr[r + 1] += rowPtr[r];
    const colIdx = K.allocInt32(nnz);
    colIdx.set(col);
    const rowIdx = K.allocInt32(nnz);
    rowIdx.set(row);
    return { rowPtr, colIdx, rowIdx };
  }

  /**
   * The connections checked (in range, no duplicates) and sorted by (row, col): as given when
   * they already are (the usual case: O(n)), else through a sort of their order (with `values`
   * carried along).
   */
  private sorted(c: Connections, what: string, values?: Float32Array): Connections & { values?: Float32Array } {
    const n = c.row.length;
    if (c.col.length !== n) throw new Error(`${this.name}: ${what}: ${n} rows but ${c.col.length} cols`);
    let ordered = true;
    for (let k = 0; k < n; k++) {
      const r = c.row[k];
      const col = c.col[k];
      if (!(Number.isInteger(r) && r >= 0 && r < this.rows && Number.isInteger(col) && col >= 0 && col < this.cols)) {
        throw new Error(`${this.name}: ${what}: connection (${r}, ${col}) is outside ${this.rows} x ${this.cols}`);
      }
      if (k > 0 && (c.row[k - 1] > r || (c.row[k - 1] === r && c.col[k - 1] >= col))) ordered = false;
    }
    let out: Connections & { values?: Float32Array } = { row: c.row, col: c.col, values };
    if (!ordered) {
      const perm = Array.from({ length: n }, (_, i) => i);
      perm.sort((a, b) => c.row[a] - c.row[b] || c.col[a] - c.col[b]);
      out = {
        row: Int32Array.from(perm, (i) => c.row[i]),
        col: Int32Array.from(perm, (i) => c.col[i]),
        values: values ? Float32Array.from(perm, (i) => values[i]) : undefined,
      };
      for (let k = 1; k < n; k++) {
        if (out.row[k - 1] === out.row[k] && out.col[k - 1] === out.col[k]) {
          throw new Error(`${this.name}: ${what}: connection (${out.row[k]}, ${out.col[k]}) is listed twice`);
        }
      }
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // state

  saveState(): LayerState {
    return {
      connections: this.active(),
      values: copyOf(this.values.dataSync() as Float32Array),
      velocity: copyOf(this.velocity.dataSync() as Float32Array),
      bias: copyOf(this.bias.dataSync() as Float32Array),
      biasVelocity: copyOf(this.biasVelocity.dataSync() as Float32Array),
    };
  }

  loadState(s: LayerState): void {
    const n = s.connections.row.length;
    if (s.values.length !== n || s.velocity.length !== n) throw new Error(`${this.name}: state has ${n} connections, ${s.values.length} values, ${s.velocity.length} momenta`);
    if (s.bias.length !== this.rows || s.biasVelocity.length !== this.rows) throw new Error(`${this.name}: state bias has ${s.bias.length} values, expected ${this.rows}`);
    const c = this.sorted(s.connections, 'loadState', s.values);
    const v = c.values === s.values ? s.velocity : this.sorted(s.connections, 'loadState', s.velocity).values!;
    this.replace(Int32Array.from(c.row), Int32Array.from(c.col), Float32Array.from(c.values!), Float32Array.from(v));
    tf.tidy(() => {
      this.bias.assign(tf.tensor1d(s.bias));
      this.biasVelocity.assign(tf.tensor1d(s.biasVelocity));
    });
    this.keepProbe(null);
  }

  /** values and column indices per nonzero, row offsets, bias */
  paramBytes(): number {
    const nnz = this.activeCount();
    return 4 * nnz + 4 * nnz + 4 * (this.rows + 1) + 4 * this.rows;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [this.values, this.velocity, this.bias, this.biasVelocity]) t.dispose();
    for (const a of [this.rowPtr, this.colIdx, this.rowIdx, this.vals]) K.release(a);
    this.keepProbe(null);
    this.releaseBuffers();
  }

  /** gives back the kernels' memory a format variant keeps beside the structure */
  protected abstract releaseBuffers(): void;
}

/**
 * The csr format of a linear layer. Forward y = x·Wᵀ + b and its gradients run on the sparse
 * kernels, on activations held FEATURE-MAJOR (n x B) in the kernels' memory:
 *   xT = transpose(x);  yT = spmm(W, xT);  y = transpose(yT)
 *   dyT = transpose(dy); dxT = spmmT(W, dyT) (= Wᵀ·dyT); dValues[k] = Σ_b dyT[row_k, b] · xT[col_k, b] (sddmm)
 * The bias is part of the same op: added to yT, its gradient the row sums of dyT (the masked format
 * leaves both to tfjs, whose batch reduction costs more than the sparse kernels in a wide layer).
 * A probe pass records the same h and delta as the masked format would, as a ProbeRecord built
 * directly from xT and dyT (already feature-major: no extra transpose).
 */
export class CsrLayer extends CsrWeight {
  /** the last forward input, feature-major (cols x B), grow-only (kernels' memory) */
  private xBuf: Float32Array | null = null;
  /** the probe record's hT and deltaT, grow-only (kernels' memory) */
  private probeBuf: Float32Array | null = null;
  private readonly op: ReturnType<typeof layerOp>;

  constructor(shape: LayerShape, init: LayerInit) {
    super(shape, init);
    if (shape.kind !== 'linear') throw new Error(`layer ${shape.name}: CsrLayer is the linear variant (conv layers: CsrConvLayer)`);
    this.op = this.linearOp();
  }

  // -------------------------------------------------------------------------------------------
  // forward / backward

  apply(x: tf.Tensor, o: { inputGradient: boolean } = { inputGradient: true }): tf.Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.cols) throw new Error(`${this.name}: input of shape [${x.shape}], expected [B, ${this.cols}]`);
    return this.op(x, [this.values, this.bias], o.inputGradient);
  }

  /**
   * y = x·Wᵀ + b as one custom op of (x, values, bias). The bias is added to yT and its gradient
   * (the batch sums of dy) is taken from dyT here: tfjs's broadcasting add would reduce dy over the
   * batch axis with a transpose of its own (on wasm, the largest cost of a wide layer's step).
   * Nothing is saved on the tape: the op keeps its input transposed (xT) in this layer's buffer.
   */
  private linearOp(): ReturnType<typeof layerOp> {
    return layerOp((x, [w, bias], inputGradient) => {
      const B = x.shape[0];
      const { rows, cols } = this;
      const xT = this.inputT(readFloats(x), B);
      this.vals.set(readFloats(w));
      const generation = ++this.generation;
      const structure = this.structure;
      const csr: K.Csr = { rows, cols, rowPtr: this.rowPtr, colIdx: this.colIdx, values: this.vals };
      const rowIdx = this.rowIdx;
      const yT = K.spmm(csr, xT, B, scratch('yT/dyT', rows * B));
      addRows(yT, readFloats(bias), B);
      const value = tensorOf(K.transpose(yT, rows, B, scratch('out', rows * B)), [B, rows]);
      const gradFunc = (dy: tf.Tensor): LayerGrads => {
        if (this.structure !== structure) throw new Error(`${this.name}: the structure changed between a forward pass and its backward pass`);
        let h = xT;
        if (this.generation !== generation) {
          // another forward pass of this layer came in between: redo this one's input
          if (x.isDisposed) throw new Error(`${this.name}: the input of a forward pass was disposed before its backward pass`);
          h = this.inputT(readFloats(x), B);
          this.vals.set(readFloats(w));
          this.generation++;
        }
        const dyT = K.transpose(readFloats(dy), B, rows, scratch('yT/dyT', rows * B));
        if (this.probing) this.keepProbe(this.record(h, dyT, B));
        const dbias = rowSums(dyT, rows, B);
        const dx = inputGradient ? tensorOf(K.transpose(K.spmmT(csr, dyT, B, scratch('dxT', cols * B)), cols, B, scratch('out', cols * B)), [B, cols]) : null;
        const dv = tensorOf(K.sddmm(rowIdx, csr.colIdx, dyT, h, B, scratch('out', rowIdx.length)), [rowIdx.length]);
        return [dx, dv, tf.tensor1d(dbias)];
      };
      return { value, gradFunc };
    });
  }

  /**
   * A probe record of copies of hT and deltaT, held in this layer's grow-only probe buffers in the
   * kernels' memory (reused by every probe pass: no fresh allocation, and the subset gradient
   * reads them in place).
   */
  private record(hT: Float32Array, deltaT: Float32Array, B: number): ProbeRecord {
    const hl = this.cols * B;
    const dl = this.rows * B;
    if (!this.probeBuf || this.probeBuf.length < hl + dl) {
      this.keepProbe(null);
      this.probeBuf = growBuffer(this.probeBuf, hl + dl);
    }
    const h = this.probeBuf.subarray(0, hl);
    const d = this.probeBuf.subarray(hl, hl + dl);
    h.set(hT);
    d.set(deltaT);
    return new ProbeRecord(h, d, this.rows, this.cols, B);
  }

  /** a backward pass of a chain of csr layers (./csr-chain.ts) hands the probe its h and delta */
  probeBackward(hT: Float32Array, deltaT: Float32Array, B: number): void {
    if (this.probing) this.keepProbe(this.record(hT, deltaT, B));
  }

  /** the kernels' view of this layer with the values of `w` (its values variable) loaded */
  operands(w: tf.Tensor): { csr: K.Csr; rowIdx: Int32Array; structure: number } {
    this.vals.set(readFloats(w));
    this.generation++;
    return { csr: { rows: this.rows, cols: this.cols, rowPtr: this.rowPtr, colIdx: this.colIdx, values: this.vals }, rowIdx: this.rowIdx, structure: this.structure };
  }

  /** this layer's values and bias variables, the inputs of its op */
  variables(): { values: tf.Variable; bias: tf.Variable } { return { values: this.values, bias: this.bias }; }

  /** counts structure changes (prune, grow, loadState) */
  get structureVersion(): number { return this.structure; }

  /** x (B x cols, batch-major) -> this layer's xT buffer (cols x B), a view of exactly cols*B */
  private inputT(x: Float32Array, B: number): Float32Array {
    const len = this.cols * B;
    if (!this.xBuf || this.xBuf.length < len) {
      if (this.xBuf) K.release(this.xBuf);
      this.xBuf = K.allocFloat32(len);
    }
    return K.transpose(x, B, this.cols, this.xBuf.subarray(0, len));
  }

  protected releaseBuffers(): void {
    if (this.xBuf) K.release(this.xBuf);
    if (this.probeBuf) releaseBuffer(this.probeBuf);
    this.xBuf = null;
    this.probeBuf = null;
  }
}

/**
 * The floats of a tensor, to be read at once: on the wasm backend a view of its heap (no copy;
 * valid until the next tfjs allocation), elsewhere dataSync().
 */
export function readFloats(t: tf.Tensor): Float32Array {
  if (tf.getBackend() === 'wasm' && t.dtype === 'float32') {
    const b = tf.backend() as unknown as { typedArrayFromHeap?: (t: tf.Tensor) => Float32Array };
    try {
      if (typeof b.typedArrayFromHeap === 'function') return b.typedArrayFromHeap(t);
    } catch {
      // data held by another backend: dataSync moves it
    }
  }
  return t.dataSync() as Float32Array;
}

/**
 * A tensor holding the floats of `a` (a view of the kernels' scratch). The wasm backend copies the
 * values into its heap when the tensor is made, so the view is passed as is; other backends may
 * keep the array they are given (cpu does), so they get a copy.
 */
export function tensorOf(a: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.getBackend() === 'wasm' ? a : copyOf(a), shape, 'float32');
}

/** yT[r, :] += bias[r] for a feature-major rows x B array */
export function addRows(yT: Float32Array, bias: Float32Array, B: number): void {
  const rows = bias.length;
  for (let r = 0; r < rows; r++) {
    const v = bias[r];
    if (v === 0) continue;
    const o = r * B;
    for (let b = 0; b < B; b++) yT[o + b] += v;
  }
}

/** out[r] = Σ_b dT[r, b] for a feature-major rows x B array (the bias gradient) */
export function rowSums(dT: Float32Array, rows: number, B: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * B;
    let s = 0;
    for (let b = 0; b < B; b++) s += dT[o + b];
    out[r] = s;
  }
  return out;
}

/** A 1-D variable holding a copy of `a` (and no stray tensor). */
export function variable(a: Float32Array, trainable: boolean): tf.Variable {
  const t = tf.tensor1d(a);
  const v = tf.variable(t, trainable);
  t.dispose();
  return v;
}

/** A plain (non-shared) copy: tfjs and ProbeRecord may keep what they are given. */
export function copyOf(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  out.set(a);
  return out;
}

/**
 * Buffers of activations (and probe records) up to this many bytes live in the kernels' memory, so
 * that the kernels read and write them in place; larger ones are plain arrays outside it, of which
 * the kernels see only blocks and the rows a layer's connections touch. One 32-bit WebAssembly
 * memory holds 4 GiB, and a batch of 128 at width 2^20 is 512 MiB per activation.
 */
let residentLimit = 64 * 2 ** 20;

/** Sets the limit (bytes; tests force the outside path at small widths); returns the previous one. */
export function setResidentLimit(bytes: number): number {
  const old = residentLimit;
  residentLimit = bytes;
  return old;
}

/** `old` when it holds `len` floats, else a new buffer (in the kernels' memory up to the limit; `old` is released). */
export function growBuffer(old: Float32Array | null, len: number): Float32Array {
  if (old && old.length >= len) return old;
  if (old) releaseBuffer(old);
  return 4 * len <= residentLimit ? K.allocFloat32(len) : new Float32Array(len);
}

/** Gives a buffer of growBuffer back (a plain array is left to the garbage collector). */
export function releaseBuffer(a: Float32Array): void {
  if (K.isResident(a)) K.release(a);
}

/**
 * Grow-only buffers in the kernels' memory shared by every csr layer, for results consumed at
 * once: 'yT/dyT' (yT until its transpose; dyT through one backward pass), 'dxT', and 'out' (y,
 * dx, dValues until they are made tensors). Views of exactly `len`.
 */
const shared = new Map<string, Float32Array>();
export function scratch(name: string, len: number): Float32Array {
  let a = shared.get(name);
  if (!a || a.length < len) {
    if (a) K.release(a);
    a = K.allocFloat32(Math.ceil(len * 1.25));
    shared.set(name, a);
  }
  return a.subarray(0, len);
}

/** The first len floats of a copied into scratch `name` (valid until the next use of that name). */
export function scratchCopy(name: string, a: Float32Array, len: number): Float32Array {
  const r = scratch(name, len);
  r.set(a.subarray(0, len));
  return r;
}
