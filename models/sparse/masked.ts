import * as tf from '@tensorflow/tfjs';
import { ConvProbeRecord, DenseConv, packInput, packOutputGrad, planeBuffers } from './conv.js';
import { readFloats, scratch, scratchCopy, tensorOf } from './csr.js';
import * as K from './kernels/index.js';
import { layerOp } from './op.js';
import { ProbedWeight, ProbeRecord } from './probe.js';
import type { Connections, LayerInit, LayerShape, LayerState, Param, SparseLayer, UnitSums } from './types.js';

/**
 * Dense weights times a 0/1 mask, for linear and conv layers: how research code usually simulates
 * sparsity, and it costs like dense. Weights are stored in tfjs layout ([cols, rows] for linear,
 * [kh, kw, in, out] for conv), so connection (row, col) lives at flat index col * rows + row.
 * Inactive weights are exactly 0 and their gradient and momentum are masked to 0.
 */
export class MaskedLayer extends ProbedWeight implements SparseLayer {
  readonly format = 'masked' as const;
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  private readonly weight: tf.Variable;
  private readonly velocity: tf.Variable;
  private readonly bias: tf.Variable;
  private readonly biasVelocity: tf.Variable;
  private readonly mask: Uint8Array;
  private maskTensor: tf.Tensor;
  private count: number;
  private readonly op: ReturnType<typeof layerOp>;

  constructor(readonly shape: LayerShape, init: LayerInit) {
    super();
    this.name = shape.name;
    this.rows = shape.rows;
    this.cols = shape.cols;
    const tfShape = shape.kind === 'conv'
      ? [shape.conv!.kh, shape.conv!.kw, shape.conv!.inChannels, shape.rows]
      : [shape.cols, shape.rows];
    const w = new Float32Array(this.rows * this.cols);
    this.mask = new Uint8Array(this.rows * this.cols);
    const { row, col } = init.connections;
    for (let k = 0; k < row.length; k++) {
      const i = col[k] * this.rows + row[k];
      w[i] = init.values[k];
      this.mask[i] = 1;
    }
    this.count = row.length;
    // in a tidy: the initial-value tensors would otherwise stay allocated next to the variables
    this.weight = tf.tidy(() => tf.variable(tf.tensor(w, tfShape), true));
    this.velocity = tf.tidy(() => tf.variable(tf.zeros(tfShape), false));
    this.bias = tf.tidy(() => tf.variable(tf.tensor1d(init.bias), true));
    this.biasVelocity = tf.tidy(() => tf.variable(tf.zeros([this.rows]), false));
    this.maskTensor = this.buildMaskTensor(tfShape);
    this.op = shape.kind === 'conv' ? this.convOp() : this.linearOp();
  }

  apply(x: tf.Tensor, o: { inputGradient: boolean } = { inputGradient: true }): tf.Tensor {
    return tf.add(this.op(x, [this.weight], o.inputGradient), this.bias);
  }

  /**
   * y = x · W on our two-thread dense product (tfjs-wasm's matMul runs on one thread, and ~12x
   * slower with the transposed operands its own gradient uses). x is [batch, cols], W is
   * [cols, rows]; each product reads rows of its right operand at offsets (i · row length).
   */
  private linearOp() {
    const { rows, cols } = this;
    return layerOp((x, [w], inputGradient, save) => {
      save([x]);
      const batch = x.shape[0];
      const wk = scratchCopy('maskedW', readFloats(w), cols * rows);
      const y = K.denseRows(readFloats(x), cols, 1, strideOffsets(cols, rows), cols, batch, wk, rows, scratch('out', batch * rows), rows);
      return {
        value: tensorOf(y, [batch, rows]),
        gradFunc: (dy, saved) => {
          const xs = saved[0] as tf.Tensor2D;
          if (this.probing) this.record(xs, dy as tf.Tensor2D);
          // every view of tfjs's heap is used before a tensor is made (a new tensor may grow the heap)
          const x = readFloats(xs), d = readFloats(dy);
          // dW[k, r] = Σ_b x[b, k] · dy[b, r]: rows k of xᵀ (read strided from x) times rows b of dy
          const dk = scratchCopy('maskedDy', d, batch * rows);
          const dwv = K.denseRows(x, 1, cols, strideOffsets(batch, rows), batch, cols, dk, rows, scratch('maskedDw', cols * rows), rows);
          // dx = dy · Wᵀ
          const dxv = inputGradient
            ? K.denseRows(d, rows, 1, strideOffsets(rows, cols), rows, batch, K.transpose(readFloats(w), cols, rows, scratch('maskedWT', rows * cols)), cols, scratch('out', batch * cols), cols)
            : null;
          const dw = tensorOf(dwv, [cols, rows]);
          const dx = dxv && tensorOf(dxv, [batch, cols]);
          return [dx, tf.mul(dw, this.maskTensor)];
        },
      };
    });
  }

  /**
   * On planes with our dense product (./conv.ts DenseConv): tfjs-wasm's convolution runs on one
   * thread and has no filter gradient of its own. The input planes of the last forward pass are
   * kept for its backward pass (packed again if another forward pass of this layer came between).
   */
  private convOp() {
    const conv = new DenseConv(this.shape);
    let xPlanes: Float32Array | null = null;
    let generation = 0;
    return layerOp((x, [w], inputGradient, save) => {
      save([x]);
      const plan = conv.planFor(x.shape);
      xPlanes = packInput(readFloats(x), plan, xPlanes);
      const mine = ++generation;
      const y = conv.forward(readFloats(w), xPlanes, plan);
      const o = plan.output;
      return {
        value: tensorOf(K.unpackPlanes(y, 0, plan.length, o, undefined, scratch('out', o.n * o.h * o.w * o.c)), [o.n, o.h, o.w, o.c]),
        gradFunc: (dy, saved) => {
          if (generation !== mine) {
            xPlanes = packInput(readFloats(saved[0]), conv.planFor(saved[0].shape), xPlanes);
            generation++;
          }
          const dyPlanes = (planeBuffers.dy = packOutputGrad(readFloats(dy), plan, planeBuffers.dy));
          // the same record a csr conv layer makes from the same planes
          if (this.probing) this.keepProbe(ConvProbeRecord.fromPlanes(this.shape, plan, xPlanes!, dyPlanes));
          const dw = tf.mul(tensorOf(conv.weightGrad(dyPlanes, xPlanes!, plan), w.shape), this.maskTensor);
          if (!inputGradient) return [null, dw];
          const g = plan.input;
          const dxPlanes = conv.inputGrad(readFloats(w), dyPlanes, plan);
          const dx = tensorOf(K.unpackPlanes(dxPlanes, 0, plan.length, g, undefined, scratch('out', g.n * g.h * g.w * g.c)), [g.n, g.h, g.w, g.c]);
          return [dx, dw];
        },
      };
    });
  }

  private record(h: tf.Tensor2D, delta: tf.Tensor2D): void {
    const P = h.shape[0];
    this.keepProbe(ProbeRecord.fromBatchMajor(h.dataSync() as Float32Array, delta.dataSync() as Float32Array, this.rows, this.cols, P));
  }

  private buildMaskTensor(shape: number[]): tf.Tensor {
    return tf.tensor(Float32Array.from(this.mask), shape);
  }

  params(): Param[] {
    return [
      { name: `${this.name}/weight`, value: this.weight, velocity: this.velocity, decay: true },
      { name: `${this.name}/bias`, value: this.bias, velocity: this.biasVelocity, decay: true },
    ];
  }

  activeCount(): number { return this.count; }

  /** in (row, col) order, from two passes over the column-major mask in memory order */
  active(): Connections {
    const { rows, cols, mask } = this;
    const next = new Int32Array(rows + 1);
    for (let c = 0, i = 0; c < cols; c++) for (let r = 0; r < rows; r++, i++) if (mask[i]) next[r + 1]++;
    for (let r = 0; r < rows; r++) next[r + 1] += next[r];
    const row = new Int32Array(this.count);
    const col = new Int32Array(this.count);
    for (let c = 0, i = 0; c < cols; c++) {
      for (let r = 0; r < rows; r++, i++) {
        if (mask[i]) { const k = next[r]++; row[k] = r; col[k] = c; }
      }
    }
    return { row, col };
  }

  isActive(c: Connections): Uint8Array {
    const out = new Uint8Array(c.row.length);
    for (let k = 0; k < out.length; k++) out[k] = this.mask[c.col[k] * this.rows + c.row[k]];
    return out;
  }

  magnitudes(c: Connections): Float32Array {
    const w = this.weight.dataSync();
    const out = new Float32Array(c.row.length);
    for (let k = 0; k < out.length; k++) out[k] = Math.abs(w[c.col[k] * this.rows + c.row[k]]);
    return out;
  }

  prune(c: Connections): void { this.setConnections(c, 0); }
  grow(c: Connections): void { this.setConnections(c, 1); }

  /** flips the given connections to `state`; their weight and momentum become exactly 0 either way */
  private setConnections(c: Connections, state: 0 | 1): void {
    if (c.row.length === 0) return;
    const w = this.weight.dataSync().slice() as Float32Array;
    const v = this.velocity.dataSync().slice() as Float32Array;
    for (let k = 0; k < c.row.length; k++) {
      const i = c.col[k] * this.rows + c.row[k];
      if (this.mask[i] === state) {
        throw new Error(`${this.name}: connection (${c.row[k]}, ${c.col[k]}) is already ${state ? 'active' : 'inactive'}`);
      }
      this.mask[i] = state;
      w[i] = 0;
      v[i] = 0;
    }
    this.count += state ? c.row.length : -c.row.length;
    // in a tidy: an assigned tensor not disposed keeps the variable's previous buffer alive (a leak per call)
    tf.tidy(() => {
      this.weight.assign(tf.tensor(w, this.weight.shape));
      this.velocity.assign(tf.tensor(v, this.velocity.shape));
    });
    this.maskTensor.dispose();
    this.maskTensor = this.buildMaskTensor(this.weight.shape);
  }


  saveState(): LayerState {
    const connections = this.active();
    const w = this.weight.dataSync();
    const v = this.velocity.dataSync();
    const values = new Float32Array(connections.row.length);
    const velocity = new Float32Array(connections.row.length);
    for (let k = 0; k < values.length; k++) {
      const i = connections.col[k] * this.rows + connections.row[k];
      values[k] = w[i];
      velocity[k] = v[i];
    }
    return { connections, values, velocity, bias: this.bias.dataSync().slice() as Float32Array, biasVelocity: this.biasVelocity.dataSync().slice() as Float32Array };
  }

  loadState(s: LayerState): void {
    const w = new Float32Array(this.rows * this.cols);
    const v = new Float32Array(this.rows * this.cols);
    this.mask.fill(0);
    for (let k = 0; k < s.connections.row.length; k++) {
      const i = s.connections.col[k] * this.rows + s.connections.row[k];
      w[i] = s.values[k];
      v[i] = s.velocity[k];
      this.mask[i] = 1;
    }
    this.count = s.connections.row.length;
    tf.tidy(() => {
      this.weight.assign(tf.tensor(w, this.weight.shape));
      this.velocity.assign(tf.tensor(v, this.velocity.shape));
      this.bias.assign(tf.tensor1d(s.bias));
      this.biasVelocity.assign(tf.tensor1d(s.biasVelocity));
    });
    this.maskTensor.dispose();
    this.maskTensor = this.buildMaskTensor(this.weight.shape);
    this.keepProbe(null);
  }

  paramBytes(): number {
    return 4 * this.rows * this.cols + Math.ceil((this.rows * this.cols) / 8) + 4 * this.rows;
  }

  dispose(): void {
    this.keepProbe(null);
    for (const t of [this.weight, this.velocity, this.bias, this.biasVelocity, this.maskTensor]) t.dispose();
  }
}

const offsetTables = new Map<string, Int32Array>();
/** [0, stride, 2·stride, ...] (n entries): the offsets of the rows of a row-major matrix. */
function strideOffsets(n: number, stride: number): Int32Array {
  const key = `${n}/${stride}`;
  let t = offsetTables.get(key);
  if (!t) { t = Int32Array.from({ length: n }, (_, i) => i * stride); offsetTables.set(key, t); }
  return t;
}
