/**
 * SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
 * conserving synaptic flow"): data-free, iterative pruning at initialisation. Each of `iterations`
 * (100, the paper's) rounds scores every active connection by |∂R/∂w ⊙ w|, where
 * R = 1ᵀ f(1; |θ|) is the sum of the network's outputs on one all-ones input with every
 * parameter and buffer replaced by its absolute value (biases included, as in their code, which
 * abs()es the whole state dict; evaluation mode), then prunes to the density of an exponential
 * schedule, d_k = d^(k/N) for k = 1..N (d the target density), so the last round lands exactly on
 * the target. Then static. ReLU networks: R is then a sum over paths of |weight| products.
 *
 * The pass runs in float32 (the authors' code uses float64): R is a product over the depth and
 * overflows in deep networks (ResNet-56 at initialisation: R ~ 1e65). Option biases "off" sets
 * the layers' biases to 0 during scoring (the authors' ResNets have bias-free convolutions and
 * zero batch-norm offsets at initialisation); the pass is then positively homogeneous and the
 * harness rescales input and objective by powers of two, which changes no decision. With biases
 * "abs" (default, the authors' code) a non-finite R is an error, never scored.
 *
 * On a ViT the all-ones input is constant on every patch, and the patch LayerNorm maps a constant
 * patch to 0: every patch-embedding weight scores exactly 0 and is pruned first, so the patch layer
 * ends with no connections (layer collapse, which the authors' float64 code would reproduce; the
 * run's done line names the layer). Homogeneity, on which SynFlow's conservation argument rests,
 * does not hold through a normalisation of the input.
 *
 * Scope global (the paper's default) ranks every layer together; local keeps each layer's
 * sparse-initialisation count (and prunes each layer on its own exponential schedule). Equal
 * scores: lowest (layer, row, col) pruned first. Not always sparse: it starts dense and scores
 * every connection.
 */
import { probeFlops } from './dst.js';
import { exponentialKeep, isGlobal, pruneToKeep, scoredPools } from './prune-init.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import { defineMethod } from './define.js';
import type { InitContext, UpdateReport } from './types.js';

const synflowOptions = declareOptions({
  iterations: { type: 'integer', default: 100, minimum: 1, help: 'pruning rounds, density d^(k/iterations) after round k (paper: 100)' },
  biases: { type: 'string', default: 'abs', enum: ['abs', 'off'], help: 'layer biases in the scoring pass: |b| (the authors\' code) or 0 (exact float32 rescaling for deep nets such as ResNet-56, whose R overflows)' },
});
export type SynflowOptions = OptionsOf<typeof synflowOptions>;

/** |∂R/∂w ⊙ w| of every active connection, after one SynFlow probe pass; with its FLOPs. */
export function synflowScores(ctx: Pick<InitContext, 'layers' | 'probe'>, zeroBiases = false): { scores: Float32Array[]; flops: number } {
  ctx.probe({ synflow: true, zeroBiases });
  let flops = probeFlops(ctx.layers);
  const scores = ctx.layers.map((l) => {
    const a = l.active();
    const g = l.subsetGradient(a);
    const w = l.magnitudes(a);
    flops += 2 * l.probeRows() * a.row.length + a.row.length;
    const s = new Float32Array(g.length);
    for (let i = 0; i < s.length; i++) s[i] = Math.abs(g[i]) * w[i];
    return s;
  });
  return { scores, flops };
}

export function synflowInitialize(ctx: InitContext, o: SynflowOptions): UpdateReport {
  const global = isGlobal(ctx.schedule?.scope);
  const sizes = ctx.layers.map((l) => l.rows * l.cols);
  let flops = 0;
  let pruned = 0;
  for (let k = 1; k <= o.iterations; k++) {
    const r = synflowScores(ctx, o.biases === 'off');
    flops += r.flops;
    const pools = scoredPools(ctx.layers, ctx.layers.map((l) => l.active()), r.scores);
    pruned += pruneToKeep(ctx.layers, pools, exponentialKeep(sizes, ctx.targetCounts, global, k / o.iterations), global, 'synflow');
  }
  return { k: pruned, grown: 0, pruned, flops };
}

export const synflow = defineMethod({
  name: 'synflow',
  summary: 'SynFlow: data-free iterative pruning at initialisation by |dR/dw x w| (R = sum of the outputs on an all-ones input with |parameters|, eval mode), exponential density schedule over the rounds (update.scope, global by default); then static. Starts dense: not always sparse',
  options: synflowOptions,
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => true,
  updatesAt: () => false,
  update: () => { throw new Error('synflow prunes only at initialisation'); },
  initialize: (ctx, o) => synflowInitialize(ctx, o),
});
