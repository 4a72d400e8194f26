/**
 * What a dataset is (Split, Dataset) and what a dataset family declares (DatasetEntry): apart
 * from the registry (index.ts), which lists the families, so the families' files and the
 * registry do not import each other.
 */
import type { Rng } from '../../core/rng.js';
import type { OptionSpecs } from '../../core/options.js';

export interface Split { x: Float32Array; y: Int32Array; n: number }      // x: n samples, each prod(inputShape) floats, NHWC order for images
export interface Dataset {
  name: string;
  inputShape: number[];            // mnist [28,28,1]; cifar [32,32,3]; synthetic [features] or given shape
  classes: number;
  train: Split; test: Split;
  /** in-place training augmentation of one batch (images NHWC), seeded; absent when the dataset has none */
  augment?: (x: Float32Array, count: number, rng: Rng) => void;
}
/**
 * A dataset family. `options` is the one declaration of its options (core/options.ts, made
 * with declareOptions); `shape` and `load` read them through `withDefaults(options, given)`,
 * whose type is derived from it, so a direct call with some options left out works too.
 */
export interface DatasetEntry {
  name: string;
  summary: string;
  options: OptionSpecs;
  /** input shape, class count and samples (train + test; for files, the official dataset's) without loading anything (config validation, memory estimates) */
  shape(options: Record<string, unknown>): { inputShape: number[]; classes: number; samples: number };
  load(options: Record<string, unknown>, ctx: { dataDir?: string; seed: number }): Dataset;
  /** datasets read from files: throws a UserError unless `dataDir` holds them (checked before a sweep starts) */
  checkFiles?(dataDir: string | undefined): void;
}
