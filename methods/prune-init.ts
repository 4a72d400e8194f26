/**
 * Pruning by a score down to a count, shared by the pruning-at-initialisation methods (SNIP,
 * GraSP, SynFlow) and lottery: the machinery of methods/dst.ts (pickByScope, deterministic
 * tie-breaks: equal scores go in (layer, row, col) order; NaN scores are never picked) applied
 * to the active connections only, never growing anything.
 *
 * Budgets (`keep`): scope global keeps sum(targetCounts) connections over all layers ranked
 * together (per-layer densities fall where the scores put them, as in the papers' global
 * pruning); scope local keeps targetCounts[l] in layer l (the run's sparsity.distribution, e.g.
 * Erdős–Rényi). targetCounts are the counts a sparse initialisation of the run gets, so every
 * method ends with exactly the active count static/SET/RigL/GSE train with.
 */
import type { Connections, SparseWeight } from '../models/sparse/types.js';
import { pickByScope, type Pool } from './dst.js';

/** Per layer: the connections with their scores (aligned), as pools for pickByScope. */
export function scoredPools(layers: SparseWeight[], active: Connections[], scores: Float32Array[]): Pool[] {
  return layers.map((l, i) => {
    if (scores[i].length !== active[i].row.length) throw new Error(`${l.name}: ${scores[i].length} scores for ${active[i].row.length} connections`);
    return { cols: l.cols, row: active[i].row, col: active[i].col, value: scores[i] };
  });
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** The budget at the target: [total] (global) or per layer (local). */
export function targetKeep(targetCounts: number[], global: boolean): number[] {
  return global ? [sum(targetCounts)] : targetCounts.slice();
}

/**
 * The budget a fraction `f` of the way (0: dense, 1: the target) along an exponential schedule of
 * density, d_f = d_target^f (SynFlow's schedule): round(size * d_f), exactly the target at f = 1.
 */
export function exponentialKeep(sizes: number[], targetCounts: number[], global: boolean, f: number): number[] {
  const at = (size: number, target: number) => (f >= 1 ? target : Math.round(size * Math.pow(target / size, f)));
  return global ? [at(sum(sizes), sum(targetCounts))] : sizes.map((n, l) => at(n, targetCounts[l]));
}

/**
 * Prunes the scored active connections so that `keep` remain (global: [total]; local: per
 * layer): the lowest scores go, or with `removeLargest` the highest (GraSP). A budget at or above
 * the active count prunes nothing there. Throws unless the counts after are exactly the budget.
 * Returns the number pruned.
 */
export function pruneToKeep(layers: SparseWeight[], pools: Pool[], keep: number[], global: boolean, what: string, removeLargest = false): number {
  const before = layers.map((l) => l.activeCount());
  const k = global ? [Math.max(0, sum(before) - keep[0])] : before.map((n, l) => Math.max(0, n - keep[l]));
  const pruned = pickByScope(pools, k, global, removeLargest);
  layers.forEach((l, i) => { if (pruned[i].row.length) l.prune(pruned[i]); });
  const after = layers.map((l) => l.activeCount());
  if (global ? sum(after) !== Math.min(sum(before), keep[0]) : after.some((n, l) => n !== Math.min(before[l], keep[l]))) {
    throw new Error(`${what}: active counts ${after.join('/')} after pruning, expected ${global ? `${keep[0]} in total` : keep.join('/')}`);
  }
  return sum(k);
}

/** Whether the run uses scope global (the papers' default) or local. */
export function isGlobal(scope: string | undefined): boolean {
  return (scope ?? 'global') === 'global';
}
