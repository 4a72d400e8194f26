import type { Rng } from '../harness/rng.js';
import type { OptionSpecs } from '../harness/options.js';
import type { SparseWeight } from '../models/sparse/types.js';

/** The shared prune-grow schedule group of a run (config field "update"). */
export interface UpdateSchedule {
  /** steps between updates */
  delta: number;
  /** fraction of training after which no update runs (T_end) */
  end: number;
  /** initial update fraction, cosine-decayed to 0 at T_end */
  alpha: number;
  /** training examples per class in the update batch */
  samplesPerClass: number;
  scope: 'global' | 'local';
}

export interface ScheduleContext {
  step: number;
  totalSteps: number;
  stepsPerEpoch: number;
  schedule: UpdateSchedule;
}

export interface UpdateContext extends ScheduleContext {
  layers: SparseWeight[];
  /** the method's own random stream (forked from the run seed) */
  rng: Rng;
  /** the run's target sparsity */
  sparsity: number;
  /** one forward/backward pass over a fresh update batch that records every layer's probe */
  probe(): void;
}

export interface UpdateReport {
  /** the update fraction used (alpha_t), if any */
  alpha?: number;
  /** connections moved per layer (local) or in total (global) */
  k: number;
  grown: number;
  pruned: number;
  /** floating-point operations the update itself cost (gradients, scores), beyond training steps */
  flops: number;
  /** GSE diagnostic: |grown ∩ RigL's top-k| / k at this step */
  overlap?: number;
}

/**
 * A sparsification method: one file each, listed only in methods/index.ts.
 * `update` may touch the model only through the sparse-weight contract.
 */
export interface Method<O extends Record<string, unknown> = Record<string, any>> {
  name: string;
  summary: string;
  options: OptionSpecs;
  /** false for dense: the run ignores the sparsity target */
  sparse: boolean;
  /** the model stays sparse throughout training (shown by `list`) */
  alwaysSparse: boolean;
  /** true when the method uses the "update" schedule group */
  updates: boolean;
  /** dense-to-sparse methods start with every connection active */
  startsDense(options: O): boolean;
  updatesAt(ctx: ScheduleContext, options: O): boolean;
  update(ctx: UpdateContext, options: O): UpdateReport;
}
