import type { Rng } from '../core/rng.js';
import type { OptionSpecs } from '../core/options.js';
import type { Connections, SparseLayer, SparseWeight } from '../models/sparse/types.js';
import type { UpdateSchedule } from './schedule.js';

export type { UpdateSchedule };

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
  /** the sparsity the run is to reach: the config's target, or under sparsity.holdActive the one that holds the active count of width 1 */
  sparsity: number;
  /** one forward/backward pass over a fresh update batch that records every layer's probe */
  probe(): void;
  /**
   * The SGD momentum of the given connections of layer `layer` (index into `layers`), 0 for an
   * inactive one: O(active + |c| log active) (Sparse Momentum, MEST-style scores)
   */
  momentum(layer: number, c: Connections): Float32Array;
  /** per-run state of the method, kept in checkpoints (see MethodState); the harness always passes it */
  state?: MethodState;
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
  /**
   * Optional, e.g. pruning at initialisation: runs once, before the first training step of a fresh
   * run (never on resume: the checkpoint holds its outcome). Its report is recorded as an update
   * at step 0.
   */
  initialize?(ctx: InitContext, options: O): UpdateReport;
  /**
   * Optional (Top-KAST): when present, every training step's own forward/backward records each
   * layer's probe, and this runs after that step's SGD update, before the probe is cleared.
   */
  afterStep?(ctx: StepContext, options: O): StepReport;
  /**
   * Set by the harness for a plugin loaded from a file (harness/plugins.ts): the hash of its
   * source, part of every run id of the method, so editing the plugin re-runs its cells.
   */
  source?: string;
  /** Optional (lottery ticket): several training rounds in one run, see RoundHooks. */
  rounds?: RoundHooks<O>;
  /**
   * What the harness checks after every hook (harness/invariants.ts). Default: counts 'kept'
   * unless the method starts dense ('pruning'), grownAtZero true.
   */
  invariants?: Partial<MethodInvariants>;
}

/**
 * The invariants a method declares; the harness, not the method, checks them after
 * initialisation, every update, every afterStep and every round, and fails the run (one line:
 * method, hook, step, layer, counts) on a violation. Always checked: a hook's report says how
 * many connections it grew and pruned, and those are exactly the connections that became active
 * and inactive (so none was both grown and pruned in one update).
 */
export interface MethodInvariants {
  /**
   * 'kept' (dynamic sparse training, static): update, afterStep and round hooks leave the active
   * count unchanged (scope global: the model's total; scope local: every layer's), and the model
   * is at its target sparsity from initialisation on. 'pruning' (dense-to-sparse): no hook ever
   * raises a layer's count, and the model reaches the target by the end of training. Either way
   * `initialize` may only prune, and the achieved sparsity at the end equals the target within
   * one connection per layer.
   */
  counts: 'kept' | 'pruning';
  /** connections a hook activates start with weight and momentum exactly 0 (Top-KAST restores values: false) */
  grownAtZero: boolean;
}

/**
 * Per-run state of a method (methods themselves are shared, stateless objects): the harness
 * creates one empty object per run, passes it to every hook, and stores it in checkpoints, so it
 * may hold only JSON values and typed arrays.
 */
export type MethodState = Record<string, unknown>;

/**
 * A sparse weight whose whole trainable state can be read and replaced (the checkpoint half of
 * the SparseLayer contract): for methods that must restore values, not only structure.
 */
export type StatefulWeight = SparseWeight & Pick<SparseLayer, 'saveState' | 'loadState'>;

export interface ProbeOptions {
  /** the logits are divided by this before the cross-entropy (GraSP: 200); default 1 */
  temperature?: number;
  /** the same examples as the previous probe instead of a fresh update batch (finite differences) */
  sameBatch?: boolean;
  /**
   * SynFlow's data-free pass instead of the loss: every parameter and buffer replaced by its
   * absolute value, one all-ones input, evaluation mode, objective R = sum of the outputs; the
   * model is restored exactly afterwards
   */
  synflow?: boolean;
  /**
   * SynFlow pass with the layers' biases set to 0 (instead of |b|): the pass is then positively
   * homogeneous (ReLU, no offsets at initialisation), so when R or a gradient overflows float32
   * the harness rescales input and objective by powers of two, which scales every score alike
   */
  zeroBiases?: boolean;
}

export interface InitContext {
  layers: StatefulWeight[];
  rng: Rng;
  /** the sparsity the run is to reach: the config's target, or under sparsity.holdActive the one that holds the active count of width 1 */
  sparsity: number;
  /** the "update" group (samplesPerClass, scope), when the method uses it */
  schedule?: UpdateSchedule;
  /**
   * per layer, the active count a sparse initialisation at the target gets (sparsity.distribution,
   * holdActive): what scope local prunes each layer to; their sum is the global target count
   */
  targetCounts: number[];
  /** one forward/backward pass over a fresh update batch (samplesPerClass per class) recording every layer's probe */
  probe(o?: ProbeOptions): void;
  state: MethodState;
}

export interface StepContext extends ScheduleContext {
  layers: StatefulWeight[];
  sparsity: number;
  /** the learning rate, momentum and weight decay of the step that just ran */
  lr: number;
  momentum: number;
  weightDecay: number;
  state: MethodState;
}

export interface StepReport {
  /** floating-point operations the hook spent: counted as training cost */
  flops: number;
  /** set when the hook changed the active set: recorded as an update at this step */
  update?: UpdateReport;
}

/** What a multi-round method sees when a round has ended (its final evaluation is done). */
export interface RoundContext {
  layers: StatefulWeight[];
  /** the round that just ended: 0 is the first */
  round: number;
  sparsity: number;
  /** as InitContext.targetCounts */
  targetCounts: number[];
  schedule?: UpdateSchedule;
  state: MethodState;
}

/**
 * Several complete training runs inside one run folder (lottery ticket rewinding). Round 0 trains
 * from the initialisation; while it runs, the harness stores the whole training state (weights,
 * momentum, data and random streams) at step rewindStep. After each round, `next` prunes (or
 * answers null: that round was the last); the harness then rewinds every weight, bias and buffer
 * to the stored state, keeps the pruned structure, and trains again from that step. The last
 * round's metrics are the run's result; every round is reported.
 */
export interface RoundHooks<O> {
  rewindStep(options: O): number;
  next(ctx: RoundContext, options: O): UpdateReport | null;
}
