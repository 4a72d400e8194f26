import * as tf from '@tensorflow/tfjs';
import type { Param } from '../models/sparse/types.js';

export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/** PyTorch SGD semantics: g += wd * w; v = momentum * v + g; w -= lr * v. */
export function sgdStep(params: Param[], grads: tf.NamedTensorMap, o: SgdOptions): void {
  tf.tidy(() => {
    for (const p of params) {
      let g = grads[p.value.name];
      if (!g) continue;
      if (p.decay && o.weightDecay > 0) g = tf.add(g, tf.mul(p.value, o.weightDecay));
      const v = o.momentum > 0 ? tf.add(tf.mul(p.velocity, o.momentum), g) : g;
      if (o.momentum > 0) p.velocity.assign(v);
      p.value.assign(tf.sub(p.value, tf.mul(v, o.lr)));
    }
  });
}

/** The learning rate at a step: linear warm-up, then multiplied by `factor` at each drop epoch. */
export function learningRate(step: number, stepsPerEpoch: number, t: { lr: number; warmupEpochs: number; lrDrops: number[]; lrDropFactor: number }): number {
  const epoch = step / stepsPerEpoch;
  if (epoch < t.warmupEpochs) return (t.lr * (step + 1)) / (t.warmupEpochs * stepsPerEpoch);
  const drops = t.lrDrops.filter((e) => epoch >= e).length;
  return t.lr * Math.pow(t.lrDropFactor, drops);
}
