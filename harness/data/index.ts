/**
 * Datasets: the registry, and the helpers the training loop uses to shuffle, batch and sample.
 *
 * A dataset's arrays are shared between loads (MNIST and CIFAR are parsed once per process and
 * cached): treat `train`/`test` as read-only. `gather` and `slicePerClass` return fresh arrays, so
 * augmentation always works on copies.
 */
import type { Rng } from '../../core/rng.js';
import { UserError } from '../../core/errors.js';
import { checkedOptions } from '../../core/options.js';
import type { Dataset, DatasetEntry, Split } from './types.js';
import { mnistEntry } from './mnist.js';
import { syntheticEntry } from './synthetic.js';
import { cifar10Entry, cifar100Entry } from './cifar.js';
import { fashionMnistEntry, mnistFullEntry } from './idx.js';

/** The registry: the only list of datasets. */
export const datasets: Record<string, DatasetEntry> = {
  mnist: mnistEntry,
  'mnist-full': mnistFullEntry,
  'fashion-mnist': fashionMnistEntry,
  synthetic: syntheticEntry,
  cifar10: cifar10Entry,
  cifar100: cifar100Entry,
};

/** Number of floats per sample of a dataset. */
export function featureSize(inputShape: number[]): number {
  return inputShape.reduce((a, b) => a * b, 1);
}

/**
 * Load a dataset by name. Missing options get their defaults; unknown options, wrong types and
 * out-of-range values are UserErrors, as is an unknown name.
 */
export function loadDataset(name: string, options: Record<string, unknown>, ctx: { dataDir?: string; seed: number }): Dataset {
  const entry = Object.prototype.hasOwnProperty.call(datasets, name) ? datasets[name] : undefined;
  if (!entry) throw new UserError(`unknown dataset "${name}" (known: ${Object.keys(datasets).join(', ')})`);
  return entry.load(resolveOptions(entry, options ?? {}), ctx);
}

/** Defaults filled in and every value checked against the entry's option declaration. */
export function resolveOptions(entry: DatasetEntry, options: Record<string, unknown>): Record<string, unknown> {
  return checkedOptions(entry.options, options, `dataset ${entry.name}`);
}

/**
 * Before a sweep: every dataset of its runs that is read from files finds them under `dataDir`,
 * else one UserError (a sweep without --data-dir would otherwise mark every CIFAR run failed).
 */
export function checkDataFiles(datasetNames: string[], dataDir: string | undefined): void {
  for (const name of new Set(datasetNames)) datasets[name]?.checkFiles?.(dataDir);
}

/** Floats per sample of a split (0 for an empty split). */
function sampleSize(split: Split): number {
  return split.n === 0 ? 0 : split.x.length / split.n;
}

/**
 * The first `count` samples of each class of a split, kept in the split's own order
 * (fresh arrays), at most `limit` in all. A class with fewer samples contributes all it has.
 */
export function slicePerClass(split: Split, classes: number, count: number, limit = Infinity): Split {
  const fs = sampleSize(split);
  const taken = new Int32Array(classes);
  const keep: number[] = [];
  for (let i = 0; i < split.n && keep.length < limit; i++) {
    const c = split.y[i];
    if (c >= 0 && c < classes && taken[c] < count) { taken[c]++; keep.push(i); }
  }
  const { x, y } = gather(split, fs, Int32Array.from(keep));
  return { x, y, n: keep.length };
}

/**
 * One epoch's batches: a fresh permutation of 0..n-1 drawn from rng, cut into index arrays of
 * batchSize (the last, partial batch is kept). Every index appears exactly once.
 */
export function batchOrder(n: number, batchSize: number, rng: Rng): Int32Array[] {
  if (!(batchSize >= 1)) throw new RangeError(`batchOrder: batchSize must be >= 1, got ${batchSize}`);
  const perm = rng.permutation(n);
  const out: Int32Array[] = [];
  for (let s = 0; s < n; s += batchSize) out.push(perm.slice(s, Math.min(n, s + batchSize)));
  return out;
}

/** Samples idx[0], idx[1], … of a split copied into fresh (count x featureSize) arrays. */
export function gather(split: Split, featureSize: number, idx: Int32Array): { x: Float32Array; y: Int32Array } {
  const count = idx.length;
  const x = new Float32Array(count * featureSize);
  const y = new Int32Array(count);
  for (let k = 0; k < count; k++) {
    const i = idx[k];
    if (!(i >= 0 && i < split.n)) throw new RangeError(`gather: index ${i} outside 0..${split.n - 1}`);
    const start = i * featureSize;
    x.set(split.x.subarray(start, start + featureSize), k * featureSize);
    y[k] = split.y[i];
  }
  return { x, y };
}

/** Per split (keyed by its label array): the indices of each class, in order. */
const classIndexCache = new WeakMap<Int32Array, Map<number, Int32Array[]>>();

function classIndices(split: Split, classes: number): Int32Array[] {
  let byClasses = classIndexCache.get(split.y);
  const hit = byClasses?.get(classes);
  if (hit) return hit;
  const counts = new Int32Array(classes);
  for (let i = 0; i < split.n; i++) { const c = split.y[i]; if (c >= 0 && c < classes) counts[c]++; }
  const lists = Array.from(counts, (m) => new Int32Array(m));
  counts.fill(0);
  for (let i = 0; i < split.n; i++) { const c = split.y[i]; if (c >= 0 && c < classes) lists[c][counts[c]++] = i; }
  if (!byClasses) { byClasses = new Map(); classIndexCache.set(split.y, byClasses); }
  byClasses.set(classes, lists);
  return lists;
}

/**
 * `perClass` distinct random samples of every class (the DST update batch), drawn with rng.
 * Result is class-major: class 0's picks first, then class 1's, …; a class with fewer than
 * perClass samples contributes all of them.
 */
export function samplesPerClass(split: Split, classes: number, perClass: number, rng: Rng): Int32Array {
  const lists = classIndices(split, classes);
  let total = 0;
  for (const l of lists) total += Math.min(perClass, l.length);
  const out = new Int32Array(total);
  let o = 0;
  for (const list of lists) {
    const m = list.length;
    const k = Math.min(perClass, m);
    // partial Fisher-Yates on a copy: the first k entries become a uniform random k-subset
    const a = list.slice();
    for (let i = 0; i < k; i++) {
      const j = i + rng.int(m - i);
      const t = a[i]; a[i] = a[j]; a[j] = t;
      out[o++] = a[i];
    }
  }
  return out;
}
