import * as tf from '@tensorflow/tfjs';
import { readFloats, tensorOf } from '../models/sparse/csr.js';
import * as K from '../models/sparse/kernels/index.js';
import type { Param } from '../models/sparse/types.js';

export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/**
 * PyTorch SGD semantics: g += wd * w; v = momentum * v + g; w -= lr * v. One SIMD kernel call per
 * parameter (models/sparse/kernels sgdUpdate: each operation rounded to float32, exactly as the
 * tfjs ops it replaced, the same bits), then two tensors: a chain of seven tfjs ops per parameter
 * cost more than the update of a small model's step (ResNet-56 has 170 parameter tensors), and a
 * JavaScript loop over a masked MLP's dense weights took a fifth of its step.
 */
export function sgdStep(params: Param[], grads: tf.NamedTensorMap, o: SgdOptions): void {
  const f = Math.fround;
  const lr = f(o.lr), momentum = f(o.momentum), weightDecay = f(o.weightDecay);
  // (a profile books these kernel calls as the update's: bench step --profile)
  const scope = K.setKernelScope('update');
  try { tf.tidy(() => { for (const p of params) update(p); }); } finally { K.setKernelScope(scope); }
  function update(p: Param): void {
    const gt = grads[p.value.name];
    if (!gt) return;
    const withMomentum = o.momentum > 0;
    // read every view before making a tensor (a tfjs allocation may move the heap)
    const next = K.sgdUpdate(readFloats(p.value), readFloats(gt), withMomentum ? readFloats(p.velocity) : null, { lr, momentum, weightDecay, decay: p.decay });
    if (next.v) p.velocity.assign(tensorOf(next.v, p.velocity.shape));
    p.value.assign(tensorOf(next.w, p.value.shape));
  }
}

/** The learning rate at a step: linear warm-up, then multiplied by `factor` at each drop epoch. */
export function learningRate(step: number, stepsPerEpoch: number, t: { lr: number; warmupEpochs: number; lrDrops: number[]; lrDropFactor: number }): number {
  const epoch = step / stepsPerEpoch;
  if (epoch < t.warmupEpochs) return (t.lr * (step + 1)) / (t.warmupEpochs * stepsPerEpoch);
  const drops = t.lrDrops.filter((e) => epoch >= e).length;
  return t.lr * Math.pow(t.lrDropFactor, drops);
}
