/**
 * Lottery ticket: iterative magnitude pruning with rewinding (Frankle & Carbin 2019; rewinding to
 * an early step: Frankle et al. 2020, "Linear mode connectivity and the lottery ticket
 * hypothesis"). Round 0 trains the dense network for the config's full schedule. After each
 * round, the `rate` fraction of the remaining weights with the smallest |w| of the trained
 * network is pruned (scope global by default: all layers ranked together; local: each layer on
 * its own, down to its sparse-initialisation count), every surviving weight, bias, momentum and
 * buffer is rewound to its value at training step `rewindStep` of round 0 (0: the
 * initialisation), and training runs again from that step (same data order) with the pruned
 * mask. Rounds continue until the target sparsity; the last pruning lands exactly on it
 * (round(active * (1 - rate)) per round, never below the target), so the number of rounds is
 * about log(1 - s) / log(1 - rate): 11 pruning rounds for s = 0.9 at rate 0.2, 21 for 0.99,
 * each a full training run (the config's epochs minus rewindStep steps).
 *
 * All rounds live in one run folder (harness/rounds.ts): metrics.jsonl lines and the
 * pruning records in updates.jsonl carry `round`, result.json lists every round under "rounds"
 * (round, sparsity, test_accuracy, ...: accuracy vs sparsity across rounds), and the run's
 * result (results.csv) is the last round's. Training FLOPs and wall time add up over all rounds.
 * Not always sparse: it starts dense, and every round but the last trains a denser network.
 */
import { magnitudePools } from './dst.js';
import { isGlobal, pruneToKeep } from './prune-init.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import { defineMethod } from './define.js';
import type { RoundContext, UpdateReport } from './types.js';

const lotteryOptions = declareOptions({
  rate: { type: 'number', default: 0.2, exclusiveMinimum: 0, exclusiveMaximum: 1, help: 'fraction of the remaining weights pruned after each round (Frankle & Carbin: 0.2)' },
  rewindStep: { type: 'integer', default: 0, minimum: 0, help: 'training step of round 0 whose weights every later round restarts from (0: the initialisation; late rewinding: a few hundred steps)' },
});
export type LotteryOptions = OptionsOf<typeof lotteryOptions>;

/**
 * The budget after the round that just ended, or null when the target is reached: each layer
 * (local) or the total (global) keeps round(active * (1 - rate)), at least one fewer than now,
 * never below its target.
 */
export function lotteryKeep(active: number[], targetCounts: number[], global: boolean, rate: number): number[] | null {
  const step = (now: number, target: number) => (now <= target ? now : Math.max(target, Math.min(now - 1, Math.round(now * (1 - rate)))));
  if (global) {
    const now = active.reduce((a, b) => a + b, 0);
    const target = targetCounts.reduce((a, b) => a + b, 0);
    return now <= target ? null : [step(now, target)];
  }
  return active.every((n, l) => n <= targetCounts[l]) ? null : active.map((n, l) => step(n, targetCounts[l]));
}

export function lotteryNext(ctx: RoundContext, o: LotteryOptions): UpdateReport | null {
  const global = isGlobal(ctx.schedule?.scope);
  const keep = lotteryKeep(ctx.layers.map((l) => l.activeCount()), ctx.targetCounts, global, o.rate);
  if (!keep) return null;
  const active = ctx.layers.map((l) => l.active());
  const pruned = pruneToKeep(ctx.layers, magnitudePools(ctx.layers, active), keep, global, 'lottery');
  return { k: pruned, grown: 0, pruned, flops: 0 };
}

export const lottery = defineMethod({
  name: 'lottery',
  summary: 'lottery ticket: train, prune the smallest |w| (rate of the remaining per round; update.scope, global by default), rewind to the weights at rewindStep, retrain, until the target; every round (a full training run) in one run folder, the last one is the result. Starts dense: not always sparse',
  options: lotteryOptions,
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => true,
  updatesAt: () => false,
  update: () => { throw new Error('lottery prunes only between rounds'); },
  rounds: {
    rewindStep: (o) => o.rewindStep,
    next: (ctx, o) => lotteryNext(ctx, o),
  },
});
