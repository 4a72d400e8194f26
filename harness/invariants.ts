/**
 * The invariants the harness checks after every method hook (initialize, update, afterStep,
 * round) and at the end of training, whatever the method (methods/types.ts MethodInvariants): a
 * plugin that grows more than it prunes, edits layers behind the report's back, or ends at another
 * sparsity than its target fails its run with one line naming the method, the hook, the step, the
 * layer and the counts, and never reaches results.csv as if it had held its target.
 *
 * The one decision a reader may question: the check diffs every layer's full active set before
 * and after each hook (O(active) per layer and hook) instead of trusting the report. Updates
 * already cost O(active) and more; the diff is what makes "no connection both grown and pruned"
 * and "grown weights and momentum exactly 0" checkable for hooks the harness did not write.
 */
import { key, momentumOf } from '../methods/dst.js';
import type { Method, MethodInvariants, StatefulWeight, UpdateReport, UpdateSchedule } from '../methods/types.js';
import type { Connections } from '../models/sparse/types.js';

/** A method broke an invariant: the run fails with this one-line message (the sweep goes on). */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantViolation';
  }
}

export type Hook = 'initialize' | 'update' | 'afterStep' | 'round' | 'end of training';

/** Where a check runs, for the message. */
export interface CheckPoint {
  method: string;
  hook: Hook;
  step: number;
}

/** A method's declared invariants with the defaults filled in. */
export function invariantsOf(method: Method, options: Record<string, unknown>): MethodInvariants {
  return { counts: method.startsDense(options) ? 'pruning' : 'kept', grownAtZero: true, ...method.invariants };
}

/** The layers' active sets before a hook. */
export interface ActiveBefore {
  counts: number[];
  active: Connections[];
}

export function activeBefore(layers: StatefulWeight[]): ActiveBefore {
  return { counts: layers.map((l) => l.activeCount()), active: layers.map((l) => l.active()) };
}

const fail = (at: CheckPoint, what: string): never => {
  throw new InvariantViolation(`invariant broken: method "${at.method}", hook ${at.hook}, step ${at.step}: ${what}`);
};

/** a \ b for connection lists sorted by (row, col). */
function minus(a: Connections, b: Connections, cols: number): Connections {
  const row: number[] = [];
  const col: number[] = [];
  let j = 0;
  for (let i = 0; i < a.row.length; i++) {
    const ka = key(a.row[i], a.col[i], cols);
    while (j < b.row.length && key(b.row[j], b.col[j], cols) < ka) j++;
    if (j < b.row.length && key(b.row[j], b.col[j], cols) === ka) continue;
    row.push(a.row[i]);
    col.push(a.col[i]);
  }
  return { row: Int32Array.from(row), col: Int32Array.from(col) };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * Checks one hook's outcome: the active counts against the declaration (initialize: no layer
 * rises; 'kept': unchanged per layer under scope local, in total under global; 'pruning': no
 * layer rises), the report's grown / pruned against the connections that really became active /
 * inactive (a hook without a report changed nothing), and, with grownAtZero, that every newly
 * active connection has weight and momentum exactly 0.
 */
export function checkHook(at: CheckPoint, inv: MethodInvariants, scope: UpdateSchedule['scope'], layers: StatefulWeight[], before: ActiveBefore, report: UpdateReport | undefined): void {
  const after = layers.map((l) => l.activeCount());
  const change = (l: number) => `layer ${layers[l].name}: active count ${before.counts[l]} -> ${after[l]}`;
  if (at.hook === 'initialize' || inv.counts === 'pruning') {
    const l = after.findIndex((n, i) => n > before.counts[i]);
    if (l >= 0) fail(at, `${change(l)} (${at.hook === 'initialize' ? 'initialize' : 'a dense-to-sparse method'} may only prune)`);
  } else if (scope === 'local') {
    const l = after.findIndex((n, i) => n !== before.counts[i]);
    if (l >= 0) fail(at, `${change(l)} (scope local: must stay ${before.counts[l]})`);
  } else if (sum(after) !== sum(before.counts)) {
    const l = after.findIndex((n, i) => n !== before.counts[i]);
    fail(at, `model total active count ${sum(before.counts)} -> ${sum(after)} (must stay ${sum(before.counts)}; ${change(l)})`);
  }
  let grown = 0;
  let pruned = 0;
  layers.forEach((layer, l) => {
    if (after[l] === before.counts[l] && !report) return;
    const now = layer.active();
    const g = minus(now, before.active[l], layer.cols);
    grown += g.row.length;
    pruned += minus(before.active[l], now, layer.cols).row.length;
    if (!inv.grownAtZero || g.row.length === 0) return;
    const w = layer.magnitudes(g);
    const v = momentumOf(layer, g);
    for (let i = 0; i < g.row.length; i++) {
      if (w[i] !== 0 || v[i] !== 0) fail(at, `layer ${layer.name}: grown connection (${g.row[i]}, ${g.col[i]}) has |weight| ${w[i]} and momentum ${v[i]} (both must be exactly 0)`);
    }
  });
  const reported = report ? { grown: report.grown, pruned: report.pruned } : { grown: 0, pruned: 0 };
  if (reported.grown !== grown || reported.pruned !== pruned) {
    fail(at, `the report says grown ${reported.grown}, pruned ${reported.pruned}; the layers show ${grown} newly active and ${pruned} newly inactive connections${report ? ' (a connection grown and pruned in one update, or an unreported change)' : ' (a hook without an update report may not change the connectivity)'}`);
  }
}

/**
 * The achieved sparsity equals the target within one connection per layer: the model's total
 * active count against the sum of the per-layer counts of a sparse initialisation at the target
 * (`targetCounts`), or, for a method without sparsity (null), every connection active.
 */
export function checkTarget(at: CheckPoint, layers: StatefulWeight[], targetCounts: number[] | null): void {
  const active = sum(layers.map((l) => l.activeCount()));
  const size = sum(layers.map((l) => l.rows * l.cols));
  const target = targetCounts ? sum(targetCounts) : size;
  const slack = targetCounts ? layers.length : 0;
  if (Math.abs(active - target) > slack) {
    fail(at, `model total active count ${active} of ${size} (sparsity ${(1 - active / size).toFixed(6)}), target ${target} (sparsity ${(1 - target / size).toFixed(6)}) within ${slack}`);
  }
}
