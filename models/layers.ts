/**
 * Building blocks shared by the paper's models (ResNet-56, VGG-16, ViT) that are not prunable
 * weights: batch norm with running statistics, layer norm, dropout, attention helpers, and the
 * trainable non-sparse parameters they own (as Param objects, so SGD with momentum and weight
 * decay updates them like every other parameter, as in the authors' PyTorch code).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../core/rng.js';
import type { Model } from './model.js';
import { fit } from './sparse/conv.js';
import { readFloats, scratchCopy, tensorOf } from './sparse/csr.js';
import * as K from './sparse/kernels/index.js';
import type { Param, SparseLayer } from './sparse/types.js';

/**
 * A variable holding `init`'s values; takes ownership of `init`. tf.variable shares init's data
 * but leaves init alive as a tensor of its own, so without the dispose each one leaks a tensor.
 */
function ownedVariable(init: tf.Tensor, trainable: boolean): tf.Variable {
  const v = tf.variable(init, trainable);
  init.dispose();
  return v;
}

/** A trainable non-sparse parameter (its momentum buffer starts at 0); takes ownership of `init`. */
export function makeParam(name: string, init: tf.Tensor, decay = true): Param {
  const value = ownedVariable(init, true);
  return { name, value, velocity: ownedVariable(tf.zerosLike(value), false), decay };
}

/** Model state that is neither a sparse layer nor a trained parameter (checkpointed by name). */
export interface Buffer {
  name: string;
  value: tf.Variable;
}

/** A model with buffers (harness/run-context.ts saves and restores them for an exact resume). */
export type ModelWithBuffers = Model & { buffers(): Buffer[] };

export function disposeParams(params: Param[]): void {
  for (const p of params) { p.value.dispose(); p.velocity.dispose(); }
}

/** Integer width as the authors' code computes it (Python int(n * width)), at least 1. */
export function scaled(n: number, width: number): number {
  return Math.max(1, Math.floor(n * width + 1e-9));
}

type CustomOp = (...args: tf.Tensor[]) => tf.Tensor;

/** tf.customGrad for any number of tensor inputs, typed loosely. */
function customOp(f: (...args: any[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] }): CustomOp {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as CustomOp;
}

/**
 * Per-channel sums of a channels-last tensor over every other axis, [..., C] -> [C], as one
 * average pool over all M = size / C rows (times M): the wasm backend reduces a non-last axis by
 * transposing first, and a matMul with ones repacks its big operand; both are ~5-20x slower.
 */
export function channelSums(x: tf.Tensor): tf.Tensor1D {
  const c = x.shape[x.rank - 1];
  const m = x.size / c;
  return tf.tidy(() => tf.mul(tf.reshape(tf.avgPool(tf.reshape(x, [1, m, 1, c]) as tf.Tensor4D, [m, 1], 1, 'valid'), [c]), m) as tf.Tensor1D);
}

/**
 * Batch normalisation over every axis but the last (channels last), as PyTorch's BatchNorm:
 * training normalises with the batch mean and biased variance and moves the running statistics
 * (momentum 0.1, running variance unbiased); evaluation uses the running statistics only.
 *
 * Training runs as one op with a hand-written gradient that can also add a residual and apply
 * ReLU (y = relu(bn(x) + residual)), on fused two-thread kernels (the statistics, the normalise +
 * residual + ReLU pass, and the backward's sums and dx pass; ~20 single-threaded tfjs ops before):
 * it keeps only x and y for the backward pass (autodiff of the composed ops kept ~5
 * activation-sized tensors per call alive until the backward pass ends; the wasm heap is 4 GB).
 */
export class BatchNorm {
  readonly gamma: Param;
  readonly beta: Param;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  private readonly ops = new Map<string, CustomOp>();
  /** the last training pass's input and output (kernels' memory), for its backward pass */
  private xBuf: Float32Array | null = null;
  private yBuf: Float32Array | null = null;
  private generation = 0;

  constructor(readonly name: string, readonly channels: number, readonly momentum = 0.1, readonly eps = 1e-5) {
    this.gamma = makeParam(`${name}/gamma`, tf.ones([channels]));
    this.beta = makeParam(`${name}/beta`, tf.zeros([channels]));
    this.runningMean = ownedVariable(tf.zeros([channels]), false);
    this.runningVar = ownedVariable(tf.ones([channels]), false);
  }

  /** relu(bn(x) + residual), the residual and the ReLU optional */
  apply(x: tf.Tensor, training: boolean, o: { residual?: tf.Tensor; relu?: boolean } = {}): tf.Tensor {
    if (!training) {
      // tfjs ops: evaluation-mode batch norm must stay differentiable (SynFlow scores through it)
      const scale = tf.mul(tf.rsqrt(tf.add(this.runningVar, this.eps)), this.gamma.value);
      const shift = tf.sub(this.beta.value, tf.mul(this.runningMean, scale));
      let y = tf.add(tf.mul(x, scale), shift);
      if (o.residual) y = tf.add(y, o.residual);
      return o.relu ? tf.relu(y) : y;
    }
    const relu = o.relu ?? false;
    const key = `${relu}/${o.residual !== undefined}`;
    let op = this.ops.get(key);
    if (!op) { op = this.trainingOp(relu, o.residual !== undefined); this.ops.set(key, op); }
    return o.residual ? op(x, this.gamma.value, this.beta.value, o.residual) : op(x, this.gamma.value, this.beta.value);
  }

  private trainingOp(relu: boolean, residual: boolean): CustomOp {
    return customOp((...args: any[]) => {
      const [x, gamma, beta] = args as tf.Tensor[];
      const res = residual ? (args[3] as tf.Tensor) : undefined;
      const C = this.channels;
      const M = x.size / C;
      // x and y stay in this layer's buffers for the backward pass (tfjs's save() would copy both)
      const xs = (this.xBuf = fit(this.xBuf, x.size)).subarray(0, x.size);
      const ys = (this.yBuf = fit(this.yBuf, x.size)).subarray(0, x.size);
      xs.set(readFloats(x));
      const { mean, variance } = K.channelMoments(xs, M, C);
      const g = readFloats(gamma).slice();
      const b = readFloats(beta);
      const invstd = Float32Array.from(variance, (v) => 1 / Math.sqrt(v + this.eps));
      const scale = Float32Array.from(g, (v, c) => v * invstd[c]);
      const shift = Float32Array.from(b, (v, c) => v - mean[c] * scale[c]);
      K.batchNormApply(xs, M, C, scale, shift, relu, res ? readFloats(res) : undefined, ys);
      const generation = ++this.generation;
      this.moveRunning(mean, variance, M);
      return {
        value: tensorOf(ys, x.shape),
        gradFunc: (dy: tf.Tensor) => {
          if (this.generation !== generation || this.xBuf!.length < x.size) {
            throw new Error(`${this.name}: another training pass of this batch norm came between a forward pass and its backward pass`);
          }
          const r = K.batchNormBackward(readFloats(dy), this.yBuf!.subarray(0, x.size), this.xBuf!.subarray(0, x.size), M, C, mean, invstd, g, relu, residual);
          const dx = tensorOf(r.dx, x.shape);
          const grads = [dx, tf.tensor1d(r.dgamma), tf.tensor1d(r.dbeta)];
          return r.dres ? [...grads, tensorOf(r.dres, x.shape)] : grads;
        },
      };
    });
  }

  /** running mean and unbiased running variance, PyTorch's momentum rule */
  private moveRunning(mean: Float32Array, variance: Float32Array, count: number): void {
    const m = this.momentum;
    const rm = this.runningMean.dataSync();
    const rv = this.runningVar.dataSync();
    const unbias = count / Math.max(1, count - 1);
    const nm = Float32Array.from(rm, (v, c) => v * (1 - m) + mean[c] * m);
    const nv = Float32Array.from(rv, (v, c) => v * (1 - m) + variance[c] * unbias * m);
    tf.tidy(() => {
      this.runningMean.assign(tf.tensor1d(nm));
      this.runningVar.assign(tf.tensor1d(nv));
    });
  }

  params(): Param[] { return [this.gamma, this.beta]; }

  buffers(): Buffer[] {
    return [{ name: `${this.name}/running_mean`, value: this.runningMean }, { name: `${this.name}/running_var`, value: this.runningVar }];
  }

  dispose(): void {
    disposeParams(this.params());
    this.runningMean.dispose();
    this.runningVar.dispose();
    for (const b of [this.xBuf, this.yBuf]) if (b) K.release(b);
    this.xBuf = this.yBuf = null;
  }
}

/**
 * Layer normalisation over the last axis of a 2-D input [M, dim] (PyTorch nn.LayerNorm: eps
 * 1e-5, gain 1, bias 0), one op with a hand-written gradient on two-thread kernels of ours
 * (row statistics and normalisation; the backward's dx and the dgamma/dbeta sums).
 */
export class LayerNorm {
  readonly gamma: Param;
  readonly beta: Param;
  private readonly op: CustomOp;
  /** the last forward input (kernels' memory), for its backward pass */
  private xBuf: Float32Array | null = null;
  private generation = 0;

  constructor(readonly name: string, readonly dim: number, readonly eps = 1e-5) {
    this.gamma = makeParam(`${name}/gamma`, tf.ones([dim]));
    this.beta = makeParam(`${name}/beta`, tf.zeros([dim]));
    this.op = customOp((x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D) => {
      const [M, D] = x.shape;
      // x stays in this layer's buffer for the backward pass (tfjs's save() would copy it)
      const xs = (this.xBuf = fit(this.xBuf, x.size)).subarray(0, x.size);
      xs.set(readFloats(x));
      const g = readFloats(gamma).slice();
      const { y, mean, invstd } = K.layerNormForward(xs, M, D, g, readFloats(beta).slice(), this.eps);
      const generation = ++this.generation;
      return {
        value: tensorOf(y, x.shape),
        gradFunc: (dy: tf.Tensor) => {
          if (this.generation !== generation) throw new Error(`${this.name}: another pass of this layer norm came between a forward pass and its backward pass`);
          const r = K.layerNormBackward(readFloats(dy), this.xBuf!.subarray(0, x.size), M, D, g, mean, invstd);
          return [tensorOf(r.dx, x.shape), tf.tensor1d(r.dgamma), tf.tensor1d(r.dbeta)];
        },
      };
    });
  }

  apply(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 2) throw new Error(`${this.name}: layer norm takes [rows, ${this.dim}], got [${x.shape}]`);
    return this.op(x, this.gamma.value, this.beta.value);
  }

  params(): Param[] { return [this.gamma, this.beta]; }
  dispose(): void {
    disposeParams(this.params());
    if (this.xBuf) K.release(this.xBuf);
    this.xBuf = null;
  }
}

/**
 * Inverted dropout (PyTorch semantics: zero with probability `rate`, scale the rest by
 * 1 / (1 - rate)), active in training only. Masks come from our seeded Rng, whose state lives in
 * a buffer so that a resumed run draws the same masks as an uninterrupted one.
 */
export class Dropout {
  private readonly rng: Rng;
  private readonly state: tf.Variable;

  constructor(readonly rate: number, seed: number, readonly label: string) {
    this.rng = new Rng(seed, `dropout/${label}`);
    this.state = ownedVariable(tf.tensor1d(this.rng.state().map((v) => v | 0), 'int32'), false);
  }

  apply(x: tf.Tensor, training: boolean): tf.Tensor {
    if (!training || this.rate <= 0) return x;
    this.rng.setState(Array.from(this.state.dataSync()));
    const keep = 1 - this.rate;
    const mask = new Float32Array(x.size);
    const scale = 1 / keep;
    for (let i = 0; i < mask.length; i++) mask[i] = this.rng.float() < keep ? scale : 0;
    this.state.assign(tf.tensor1d(this.rng.state().map((v) => v | 0), 'int32'));
    return tf.mul(x, tf.tensor(mask, x.shape));
  }

  buffers(): Buffer[] { return [{ name: `${this.label}/dropout_rng`, value: this.state }]; }
  dispose(): void { this.state.dispose(); }
}

/**
 * A seed for a model's own random streams (dropout) derived from its layers' initial weights,
 * which come from the run seed: different seeds give different streams, equal seeds equal ones.
 */
export function seedFromLayers(layers: SparseLayer[]): number {
  let h = 0x811c9dc5;
  const s = layers[0].saveState();
  const bytes = new Uint8Array(s.values.buffer, s.values.byteOffset, Math.min(s.values.byteLength, 4096));
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h;
}

/**
 * Makes a layer bias-free, like PyTorch's `bias=False`: its bias becomes exactly 0 and stays
 * there because `trainableParams` leaves it out of the trained parameters.
 */
export function dropBias(layer: SparseLayer): void {
  const s = layer.saveState();
  s.bias.fill(0);
  s.biasVelocity.fill(0);
  layer.loadState(s);
}

/** The parameters SGD trains: every layer's weight, the biases of layers not in `biasFree`, and `extra`. */
export function trainableParams(layers: SparseLayer[], biasFree: Set<string>, extra: Param[]): Param[] {
  const out: Param[] = [];
  for (const l of layers) {
    for (const p of l.params()) if (!(biasFree.has(l.name) && p.name.endsWith('/bias'))) out.push(p);
  }
  return out.concat(extra);
}

/** Exact GELU (PyTorch nn.GELU default): 0.5 x (1 + erf(x / sqrt 2)), on our kernel, with a hand-written gradient. */
export const gelu: (x: tf.Tensor) => tf.Tensor = customOp((x: tf.Tensor, save: tf.GradSaveFunc) => {
  // saved through tfjs (a copy): evaluation runs the forward pass alone, so a buffer of ours
  // kept for a backward pass that never comes would leak
  save([x]);
  return {
    value: tensorOf(K.geluOf(scratchCopy('geluX', readFloats(x), x.size), x.size), x.shape),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tensorOf(K.geluOf(scratchCopy('geluX', readFloats(saved[0]), x.size), x.size, readFloats(dy)), x.shape)],
  };
});

const attentionOps = new Map<string, CustomOp>();

/**
 * Multi-head scaled dot-product attention (softmax(q k^T / sqrt(d)) v per head) from packed
 * projections qkv [N*T, 3*heads*dimHead], features ordered (q|k|v, head, d) as PyTorch's
 * `chunk(3)` + rearrange 'b n (h d)'; returns [N*T, heads*dimHead] ordered (head, d).
 * One op on our fused kernel (each head read from and written to the token-major arrays in place;
 * wasm's 4-D transposes, BatchMatMul and softmax cost most of a ViT step), with a hand-written
 * gradient; it keeps qkv and the attention matrix for the backward pass.
 */
export function multiHeadAttention(qkv: tf.Tensor2D, n: number, t: number, heads: number, dimHead: number): tf.Tensor2D {
  const key = `${n}/${t}/${heads}/${dimHead}`;
  let op = attentionOps.get(key);
  if (!op) {
    const scale = 1 / Math.sqrt(dimHead);
    op = customOp((x: tf.Tensor2D, save: tf.GradSaveFunc) => {
      const { out, attn } = K.attentionForward(readFloats(x), n, t, heads, dimHead, scale);
      const kept = tensorOf(attn, [n * heads, t, t]);
      save([x, kept]);
      return {
        value: tensorOf(out, [n * t, heads * dimHead]) as tf.Tensor2D,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
          tensorOf(K.attentionBackward(readFloats(saved[0]), readFloats(saved[1]), readFloats(dy), n, t, heads, dimHead, scale), [n * t, 3 * heads * dimHead]),
        ],
      };
    });
    attentionOps.set(key, op);
  }
  return op(qkv) as tf.Tensor2D;
}

/**
 * Fixed 2-D sine-cosine position embedding of an h x w token grid (SimpleViT's posemb_sincos_2d):
 * [h*w, dim], tokens row-major, features (sin x, cos x, sin y, cos y) with dim/4 frequencies each.
 */
export function sincosPositionEmbedding(h: number, w: number, dim: number, temperature = 10000): Float32Array {
  if (dim % 4 !== 0) throw new Error(`sincos position embedding: dim ${dim} is not a multiple of 4`);
  const q = dim / 4;
  const omega = new Float64Array(q);
  for (let i = 0; i < q; i++) omega[i] = 1 / Math.pow(temperature, q > 1 ? i / (q - 1) : 0);
  const pe = new Float32Array(h * w * dim);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * dim;
      for (let i = 0; i < q; i++) {
        pe[o + i] = Math.sin(x * omega[i]);
        pe[o + q + i] = Math.cos(x * omega[i]);
        pe[o + 2 * q + i] = Math.sin(y * omega[i]);
        pe[o + 3 * q + i] = Math.cos(y * omega[i]);
      }
    }
  }
  return pe;
}

/**
 * 2x2 max pool with stride 2 (NHWC; 'same' clips the windows at odd edges, 'valid' drops them):
 * tfjs's forward, and a gradient on our kernel (wasm's MaxPoolGrad took a quarter of a VGG-16
 * step): each output's gradient goes to the first maximum of its window, as tfjs's does.
 */
export const maxPool2: (x: tf.Tensor4D, padding: 'same' | 'valid') => tf.Tensor4D = (x, padding) => maxPoolOps[padding](x) as tf.Tensor4D;

const maxPoolOps = {
  same: maxPoolOp('same'),
  valid: maxPoolOp('valid'),
};

function maxPoolOp(padding: 'same' | 'valid'): CustomOp {
  return customOp((x: tf.Tensor4D, save: tf.GradSaveFunc) => {
    save([x]);
    const y = tf.maxPool(x, 2, 2, padding);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [n, h, w, c] = saved[0].shape;
        const [, ho, wo] = dy.shape;
        return [tensorOf(K.maxPool2Grad(readFloats(saved[0]), readFloats(dy), n, h, w, c, ho, wo), saved[0].shape)];
      },
    };
  });
}
