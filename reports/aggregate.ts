/**
 * Aggregation over seeds. Runs that differ only in their seed form a group; a group reports
 * mean, std and n over its `done` runs. A group is *incomplete* when it lacks a seed that its
 * family (same sweep, model and dataset) has elsewhere, or holds runs that are not done: such
 * groups carry a note and are flagged in every figure and table, never silently averaged.
 */
import type { Run } from './load.js';
import { compareMethods } from './style.js';

/** Distinct values, in first-seen order. */
export const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];

/** Items grouped by a string key, groups in first-seen order. */
export function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = m.get(k);
    if (list) list.push(t);
    else m.set(k, [t]);
  }
  return m;
}

export interface Stats {
  n: number;
  mean: number | null;
  /** sample standard deviation (n − 1); null when n < 2 */
  std: number | null;
  min: number | null;
  max: number | null;
}

export function stats(values: number[]): Stats {
  const v = values.filter(Number.isFinite);
  const n = v.length;
  if (n === 0) return { n, mean: null, std: null, min: null, max: null };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const std = n < 2 ? null : Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return { n, mean, std, min: Math.min(...v), max: Math.max(...v) };
}

/** What defines an experiment apart from its seed. Groups never mix sweeps: a sweep is one experiment. */
export interface GroupKey {
  sweep: string;
  method: string;
  /** the method with its non-default options, "gse(sampler=grabo)": two option settings are two groups */
  variant: string;
  format: string;
  model: string;
  dataset: string;
  sparsity: number;
  width: number;
  epochs: number | null;
}

/** Key fields that are shown next to a method's label only where that method has several values. */
export type VariantDim = 'format' | 'epochs';
const VARIANT_DIMS: VariantDim[] = ['format', 'epochs'];

export interface Group {
  key: GroupKey;
  /** the variant label, "gse(sampler=grabo)": what colours and table rows are keyed by */
  label: string;
  /** every option of the method, defaults included (its runs share them) */
  options: Record<string, unknown>;
  /** the varying key fields of this label, as text ("csr", "200 ep") */
  variants: Partial<Record<VariantDim, string>>;
  runs: Run[];
  /** done runs with a test accuracy: the only ones averaged */
  done: Run[];
  seeds: number[];
  expectedSeeds: number[];
  /** expected seeds without a done run (absent, failed, diverged, still running …) */
  missingSeeds: number[];
  statuses: Record<string, number>;
  incomplete: boolean;
  /** why the group is incomplete ('' when complete) */
  note: string;
  /** test accuracy (fraction) over the done runs */
  accuracy: Stats;
}

export const keyOf = (r: Run): GroupKey => ({
  sweep: r.sweep,
  method: r.method,
  variant: r.variant,
  format: r.format,
  model: r.model,
  dataset: r.dataset,
  sparsity: r.sparsity,
  width: r.width,
  epochs: r.epochs,
});

const keyId = (k: GroupKey) => JSON.stringify(k);
const familyId = (r: Run) => JSON.stringify([r.sweep, r.model, r.dataset]);
const uniqSorted = (xs: number[]) => uniq(xs).sort((a, b) => a - b);

export const isDense = (g: Group) => g.key.sparsity === 0;

function variantValue(dim: VariantDim, k: GroupKey): string {
  if (dim === 'format') return k.format;
  return k.epochs === null ? '' : `${k.epochs} ep`;
}

/**
 * A variant label without one option ("gse(gamma=2,sampler=grabo)" less gamma: "gse(sampler=grabo)"):
 * the series of a figure whose x axis is that option.
 */
export function withoutOption(label: string, option: string): string {
  const m = /^([^(]+)\((.*)\)$/.exec(label);
  if (!m) return label;
  const kept = m[2].split(/,(?=[A-Za-z_$][\w$]*=)/).filter((p) => !p.startsWith(`${option}=`));
  return kept.length ? `${m[1]}(${kept.join(',')})` : m[1];
}

/** The series a group belongs to in a figure: its label plus its variants (minus the figure's x field). */
export function seriesName(g: Group, exclude: VariantDim[] = []): string {
  const v = variantText(g, exclude);
  return v ? `${g.label} · ${v}` : g.label;
}

export function variantText(g: Group, exclude: VariantDim[] = []): string {
  return VARIANT_DIMS.filter((d) => !exclude.includes(d) && g.variants[d]).map((d) => g.variants[d]).join(' · ');
}

/** "2 of 3 seeds done; no run for seed 2; seed 0 diverged" ('' for a complete group). */
function describeIncomplete(runs: Run[], seeds: number[], expected: number[]): string {
  const parts: string[] = [];
  if (seeds.length < expected.length) parts.push(`${seeds.length} of ${expected.length} seeds done`);
  const absent = expected.filter((s) => !runs.some((r) => r.seed === s));
  if (absent.length) parts.push(`no run for seed ${absent.join(', ')}`);
  const seedList = (rs: Run[]) => `seed${rs.length > 1 ? 's' : ''} ${uniqSorted(rs.map((r) => r.seed)).join(', ')}`;
  const notDone = runs.filter((r) => r.status !== 'done');
  for (const status of uniq(notDone.map((r) => r.status))) parts.push(`${seedList(notDone.filter((r) => r.status === status))} ${status}`);
  const noAcc = runs.filter((r) => r.status === 'done' && r.test_accuracy === null);
  if (noAcc.length) parts.push(`${seedList(noAcc)} done without accuracy`);
  return parts.join('; ');
}

/** Group runs over seeds, flagging incomplete groups; sorted by model, dataset, width, sparsity, method. */
export function groupRuns(runs: Run[]): Group[] {
  const familySeeds = new Map<string, Set<number>>();
  for (const r of runs) {
    const f = familySeeds.get(familyId(r)) ?? new Set<number>();
    f.add(r.seed);
    familySeeds.set(familyId(r), f);
  }
  const groups: Group[] = [...groupBy(runs, (r) => keyId(keyOf(r))).values()].map((rs) => {
    const key = keyOf(rs[0]);
    const done = rs.filter((r) => r.status === 'done' && r.test_accuracy !== null);
    const seeds = uniqSorted(done.map((r) => r.seed));
    const expectedSeeds = uniqSorted(rs.flatMap((r) => [...familySeeds.get(familyId(r))!]));
    const missingSeeds = expectedSeeds.filter((s) => !seeds.includes(s));
    const statuses: Record<string, number> = {};
    for (const r of rs) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const note = describeIncomplete(rs, seeds, expectedSeeds);
    return {
      key,
      label: key.variant,
      options: rs[0].options,
      variants: {},
      runs: rs,
      done,
      seeds,
      expectedSeeds,
      missingSeeds,
      statuses,
      incomplete: note !== '',
      note,
      accuracy: stats(done.map((r) => r.test_accuracy!)),
    };
  });
  assignVariants(groups);
  return groups.sort(compareGroups);
}

/** A key field is shown for a label when that label's groups in the same sweep hold more than one value of it. */
function assignVariants(groups: Group[]): void {
  const id = (g: Group) => `${g.key.sweep}|${g.label}`;
  for (const dim of VARIANT_DIMS) {
    const values = new Map<string, Set<string>>();
    for (const g of groups) values.set(id(g), (values.get(id(g)) ?? new Set()).add(variantValue(dim, g.key)));
    for (const g of groups) if (values.get(id(g))!.size > 1) g.variants[dim] = variantValue(dim, g.key) || `no ${dim}`;
  }
}

function compareGroups(a: Group, b: Group): number {
  const ka = a.key, kb = b.key;
  return ka.sweep.localeCompare(kb.sweep) || ka.model.localeCompare(kb.model) || ka.dataset.localeCompare(kb.dataset) || ka.width - kb.width ||
    ka.sparsity - kb.sparsity || compareMethods(a.label, b.label) ||
    ka.format.localeCompare(kb.format) || (ka.epochs ?? -1) - (kb.epochs ?? -1);
}

/** Mean ± std over seeds of test accuracy at every epoch (done runs only). */
export function epochCurve(g: Group): { epoch: number; n: number; mean: number; std: number | null }[] {
  const byEpoch = new Map<number, number[]>();
  for (const r of g.done) {
    for (const m of r.metrics) {
      if (m.test_accuracy === undefined || !Number.isFinite(m.test_accuracy)) continue;
      byEpoch.set(m.epoch, (byEpoch.get(m.epoch) ?? []).concat(m.test_accuracy));
    }
  }
  return [...byEpoch.entries()].sort((a, b) => a[0] - b[0]).map(([epoch, v]) => {
    const s = stats(v);
    return { epoch, n: s.n, mean: s.mean!, std: s.std };
  });
}

/** Training FLOPs relative to dense (train_flops / dense_train_flops) over the done runs. */
export function flopsRatio(g: Group): Stats {
  return stats(g.done.filter((r) => r.train_flops !== null && r.dense_train_flops).map((r) => r.train_flops! / r.dense_train_flops!));
}

/** Mean over seeds of each layer's final density, in the order the runs list their layers. */
export function layerDensities(g: Group): { layer: string; index: number; density: number; n: number }[] {
  const order: string[] = [];
  const values = new Map<string, number[]>();
  for (const r of g.done) {
    for (const l of r.layers) {
      if (!values.has(l.name)) order.push(l.name);
      values.set(l.name, (values.get(l.name) ?? []).concat(l.density));
    }
  }
  return order.map((layer, index) => {
    const s = stats(values.get(layer)!);
    return { layer, index, density: s.mean!, n: s.n };
  });
}

/** Least-squares slope of log y on log x (positive points only); null with fewer than two distinct x. */
export function logLogSlope(points: { x: number; y: number }[]): number | null {
  const p = points.filter((q) => q.x > 0 && q.y > 0).map((q) => ({ x: Math.log(q.x), y: Math.log(q.y) }));
  if (new Set(p.map((q) => q.x)).size < 2) return null;
  const mx = p.reduce((a, q) => a + q.x, 0) / p.length;
  const my = p.reduce((a, q) => a + q.y, 0) / p.length;
  const sxy = p.reduce((a, q) => a + (q.x - mx) * (q.y - my), 0);
  const sxx = p.reduce((a, q) => a + (q.x - mx) ** 2, 0);
  return sxy / sxx;
}
