/**
 * synthetic: a seeded, learnable classification task of any input size, class count and size.
 *
 * Generator (class-conditional Gaussian clusters): every class c gets a random mean
 * mu_c = 4 * g_c / sqrt(features) with g_c ~ N(0, I), so |mu_c| ~ 4 and two means lie ~5.7 apart
 * whatever the feature count; a sample of class c is x = mu_c + noise * N(0, I). With the default
 * noise 1 every feature is roughly N(0, 1); on the default sizes a nearest-class-mean classifier
 * reaches ~97% test accuracy and LeNet-300-100 (SGD, momentum) ~90% after one epoch (chance is
 * 10%); raise noise to make the task harder (noise 1.5: nearest-class-mean ~75%).
 * Labels are balanced (sample i of a split has class i mod classes before the split is shuffled).
 *
 * Seed: the data comes from the option `seed` when it is >= 0, otherwise from the run's seed
 * (ctx.seed). Set `seed` to hold the data fixed across run seeds. Means, training and test
 * samples use separate forks of one Rng, so changing testSamples leaves the training set as is.
 */
import type { Dataset, DatasetEntry, Split } from './types.js';
import { Rng } from '../../core/rng.js';
import { UserError } from '../../core/errors.js';
import { declareOptions, withDefaults, type OptionsOf } from '../../core/options.js';

/** Norm of the class means (in units of the per-feature noise at noise = 1). */
const MEAN_NORM = 4;

/** Fills a with N(0, 1) samples (Box-Muller, both outputs used). */
function fillNormal(rng: Rng, a: Float32Array, scale: number, offset?: Float32Array, offsetAt = 0): void {
  const n = a.length;
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng.float();
    const r = Math.sqrt(-2 * Math.log(u)) * scale;
    const t = 2 * Math.PI * rng.float();
    a[i] = r * Math.cos(t) + (offset ? offset[offsetAt + i] : 0);
    if (i + 1 < n) a[i + 1] = r * Math.sin(t) + (offset ? offset[offsetAt + i + 1] : 0);
  }
}

/** "32x32x3" (or "32,32,3") -> [32, 32, 3]; '' -> undefined. */
export function parseShape(shape: string): number[] | undefined {
  const s = shape.trim();
  if (s === '') return undefined;
  const parts = s.split(/\s*[x×,*]\s*/i);
  const dims = parts.map(Number);
  if (!dims.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new UserError(`dataset synthetic option shape: ${JSON.stringify(shape)} is not a shape like "32x32x3"`);
  }
  return dims;
}

function makeSplit(rng: Rng, n: number, features: number, classes: number, noise: number, means: Float32Array): Split {
  const x = new Float32Array(n * features);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = i % classes;
  rng.fork('labels').shuffle(y);
  const noiseRng = rng.fork('noise');
  for (let i = 0; i < n; i++) {
    fillNormal(noiseRng, x.subarray(i * features, (i + 1) * features), noise, means, y[i] * features);
  }
  return { x, y, n };
}

const syntheticOptions = declareOptions({
  features: { type: 'integer', default: 784, minimum: 1, help: 'input size (ignored when shape is given)' },
  classes: { type: 'integer', default: 10, minimum: 2, help: 'number of classes (labels are balanced)' },
  trainSamples: { type: 'integer', default: 4000, minimum: 1, help: 'training samples' },
  testSamples: { type: 'integer', default: 1000, minimum: 1, help: 'test samples' },
  noise: { type: 'number', default: 1, minimum: 0, help: 'per-feature std of the within-class noise; class means are ~5.7 apart' },
  seed: { type: 'integer', default: -1, minimum: -1, help: 'data seed; -1 = the run seed, >= 0 holds the data fixed across run seeds' },
  shape: { type: 'string', default: '', help: 'input shape such as "32x32x3" (NHWC image); empty = [features]' },
});
export type SyntheticOptions = OptionsOf<typeof syntheticOptions>;

let cache: { key: string; data: Dataset } | undefined;

/** The synthetic dataset for fully resolved options and a data seed (the last one is cached). */
export function makeSynthetic(o: SyntheticOptions, seed: number): Dataset {
  const inputShape = parseShape(o.shape) ?? [o.features];
  const features = inputShape.reduce((a, b) => a * b, 1);
  const key = JSON.stringify([inputShape, o.classes, o.trainSamples, o.testSamples, o.noise, seed]);
  if (cache?.key === key) return { ...cache.data };
  const root = new Rng(seed, 'synthetic-data');
  const means = new Float32Array(o.classes * features);
  fillNormal(root.fork('means'), means, MEAN_NORM / Math.sqrt(features));
  const train = makeSplit(root.fork('train'), o.trainSamples, features, o.classes, o.noise, means);
  const test = makeSplit(root.fork('test'), o.testSamples, features, o.classes, o.noise, means);
  const data: Dataset = { name: 'synthetic', inputShape, classes: o.classes, train, test };
  cache = { key, data };
  return { ...data };
}

export const syntheticEntry: DatasetEntry = {
  name: 'synthetic',
  summary: 'seeded Gaussian class clusters of any size (for tests and width benchmarks); learnable, ~95% nearest-mean accuracy at the defaults',
  options: syntheticOptions,
  shape(options) {
    const o = withDefaults(syntheticOptions, options);
    return { inputShape: parseShape(o.shape) ?? [o.features], classes: o.classes, samples: o.trainSamples + o.testSamples };
  },
  load(options, ctx): Dataset {
    const o = withDefaults(syntheticOptions, options);
    const seed = o.seed >= 0 ? o.seed : ctx.seed;
    return makeSynthetic(o, seed);
  },
};
