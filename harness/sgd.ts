import * as tf from '@tensorflow/tfjs';
import { readFloats } from '../models/sparse/csr.js';
import type { Param } from '../models/sparse/types.js';

export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/**
 * PyTorch SGD semantics: g += wd * w; v = momentum * v + g; w -= lr * v. One loop per parameter
 * over views of the tensors (each operation rounded to float32, exactly as the tfjs ops it
 * replaces: the same bits), then two tensors: a chain of seven tfjs ops per parameter cost more
 * than the update of a small model's step (ResNet-56 has 170 parameter tensors).
 */
export function sgdStep(params: Param[], grads: tf.NamedTensorMap, o: SgdOptions): void {
  const f = Math.fround;
  const lr = f(o.lr), momentum = f(o.momentum), wd = f(o.weightDecay);
  tf.tidy(() => { for (const p of params) update(p); });
  function update(p: Param): void {
    const gt = grads[p.value.name];
    if (!gt) return;
    const decay = p.decay && o.weightDecay > 0;
    const withMomentum = o.momentum > 0;
    // read every view before making a tensor (a tfjs allocation may move the heap)
    const g = readFloats(gt), w = readFloats(p.value), v = withMomentum ? readFloats(p.velocity) : null;
    const n = g.length;
    const nw = new Float32Array(n), nv = withMomentum ? new Float32Array(n) : null;
    for (let i = 0; i < n; i++) {
      const gi = decay ? f(g[i] + f(w[i] * wd)) : g[i];
      const vi = withMomentum ? f(f(v![i] * momentum) + gi) : gi;
      if (nv) nv[i] = vi;
      nw[i] = w[i] - f(vi * lr);
    }
    if (nv) p.velocity.assign(tf.tensor(nv, p.velocity.shape, 'float32'));
    p.value.assign(tf.tensor(nw, p.value.shape, 'float32'));
  }
}

/** The learning rate at a step: linear warm-up, then multiplied by `factor` at each drop epoch. */
export function learningRate(step: number, stepsPerEpoch: number, t: { lr: number; warmupEpochs: number; lrDrops: number[]; lrDropFactor: number }): number {
  const epoch = step / stepsPerEpoch;
  if (epoch < t.warmupEpochs) return (t.lr * (step + 1)) / (t.warmupEpochs * stepsPerEpoch);
  const drops = t.lrDrops.filter((e) => epoch >= e).length;
  return t.lr * Math.pow(t.lrDropFactor, drops);
}
