import * as tf from '@tensorflow/tfjs';
import { binaryOp } from './op.js';
import { ProbeRecord } from './probe.js';
import type { Connections, LayerInit, LayerShape, LayerState, Param, SparseLayer, UnitSums } from './types.js';

/**
 * Dense weights times a 0/1 mask, for linear and conv layers: how research code usually simulates
 * sparsity, and it costs like dense. Weights are stored in tfjs layout ([cols, rows] for linear,
 * [kh, kw, in, out] for conv), so connection (row, col) lives at flat index col * rows + row.
 * Inactive weights are exactly 0 and their gradient and momentum are masked to 0.
 */
export class MaskedLayer implements SparseLayer {
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
  private probing = false;
  private probe: ProbeRecord | null = null;
  private readonly op: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;

  constructor(readonly shape: LayerShape, init: LayerInit) {
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
    this.weight = tf.variable(tf.tensor(w, tfShape), true);
    this.velocity = tf.variable(tf.zeros(tfShape), false);
    this.bias = tf.variable(tf.tensor1d(init.bias), true);
    this.biasVelocity = tf.variable(tf.zeros([this.rows]), false);
    this.maskTensor = this.buildMaskTensor(tfShape);
    this.op = shape.kind === 'conv' ? this.convOp() : this.linearOp();
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.add(this.op(x, this.weight), this.bias);
  }

  private linearOp() {
    return binaryOp((x, w, save) => {
      save([x]);
      return {
        value: tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
        // explicit transposes: the wasm backend's transposed matMul is ~12x slower
        gradFunc: (dy, saved) => {
          const d = dy as tf.Tensor2D;
          const xs = saved[0] as tf.Tensor2D;
          if (this.probing) this.record(xs, d);
          const dx = tf.matMul(d, tf.transpose(w as tf.Tensor2D));
          const dw = tf.mul(tf.matMul(tf.transpose(xs), d), this.maskTensor);
          return [dx, dw];
        },
      };
    });
  }

  private convOp() {
    const { kh, kw, inChannels, stride, padding } = this.shape.conv!;
    const k = kh * kw * inChannels;
    // im2col as a convolution with a one-hot filter bank: patch feature (ky, kx, c) -> (ky*kw + kx)*in + c
    const eye = new Float32Array(k * k);
    for (let i = 0; i < k; i++) eye[i * k + i] = 1;
    const patchFilter = tf.keep(tf.tensor4d(eye, [kh, kw, inChannels, k]));
    return binaryOp((x, w, save) => {
      save([x]);
      return {
        value: tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, padding),
        gradFunc: (dy, saved) => {
          const d = dy as tf.Tensor4D;
          const xs = saved[0] as tf.Tensor4D;
          const patches = tf.reshape(tf.conv2d(xs, patchFilter, stride, padding), [-1, k]) as tf.Tensor2D;
          const d2 = tf.reshape(d, [-1, this.rows]) as tf.Tensor2D;
          if (this.probing) this.record(patches, d2);
          const dx = tf.conv2dTranspose(d, w as tf.Tensor4D, xs.shape as [number, number, number, number], stride, padding);
          const dw = tf.mul(tf.reshape(tf.matMul(tf.transpose(patches), d2), w.shape), this.maskTensor);
          return [dx, dw];
        },
      };
    });
  }

  private record(h: tf.Tensor2D, delta: tf.Tensor2D): void {
    const P = h.shape[0];
    this.probe = ProbeRecord.fromBatchMajor(h.dataSync() as Float32Array, delta.dataSync() as Float32Array, this.rows, this.cols, P);
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

  active(): Connections {
    const row = new Int32Array(this.count);
    const col = new Int32Array(this.count);
    let k = 0;
    for (let r = 0; r < this.rows; r++) {
      for (let c = 0; c < this.cols; c++) {
        if (this.mask[c * this.rows + r]) { row[k] = r; col[k] = c; k++; }
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
    this.weight.assign(tf.tensor(w, this.weight.shape));
    this.velocity.assign(tf.tensor(v, this.velocity.shape));
    this.maskTensor.dispose();
    this.maskTensor = this.buildMaskTensor(this.weight.shape);
  }

  setProbe(on: boolean): void { this.probing = on; }
  clearProbe(): void { this.probe = null; }
  hasProbe(): boolean { return this.probe !== null; }

  private recorded(): ProbeRecord {
    if (!this.probe) throw new Error(`${this.name}: no probe pass recorded`);
    return this.probe;
  }

  subsetGradient(c: Connections): Float32Array { return this.recorded().subsetGradient(c); }
  denseGradient(): Float32Array { return this.recorded().denseGradient(); }
  unitSums(signs?: Float32Array): UnitSums { return this.recorded().unitSums(signs); }
  probeRows(): number { return this.recorded().count; }

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
    this.weight.assign(tf.tensor(w, this.weight.shape));
    this.velocity.assign(tf.tensor(v, this.velocity.shape));
    this.bias.assign(tf.tensor1d(s.bias));
    this.biasVelocity.assign(tf.tensor1d(s.biasVelocity));
    this.maskTensor.dispose();
    this.maskTensor = this.buildMaskTensor(this.weight.shape);
    this.probe = null;
  }

  paramBytes(): number {
    return 4 * this.rows * this.cols + Math.ceil((this.rows * this.cols) / 8) + 4 * this.rows;
  }

  dispose(): void {
    for (const t of [this.weight, this.velocity, this.bias, this.biasVelocity, this.maskTensor]) t.dispose();
  }
}
