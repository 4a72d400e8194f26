/**
 * The figures of the report. Each builder picks what it needs from the aggregated groups (or the
 * benchmark rows) and returns either a Vega-Lite spec with the rows it plots, or one line saying
 * what the inputs lack. Builders never draw an empty or one-point-per-line figure.
 */
import path from 'node:path';
import { epochCurve, flopsRatio, groupBy, isDense, layerDensities, logLogSlope, seriesName, stats, uniq, variantText, withoutOption } from './aggregate.js';
import type { Group, GroupKey, Stats } from './aggregate.js';
import { axisEncoding, barChart, colorEncoding, dashEncoding, groupRow, logAxis, meanChart, PANEL_HEIGHT, PANEL_WIDTH, spreadNote, topLevel } from './charts.js';
import type { AxisSpec, MeanRow } from './charts.js';
import type { KernelRow, ReportData, ScalingRow } from './load.js';
import type { VlSpec } from './render.js';
import { compareMethods, formatColors, pctLabel, siText } from './style.js';

export interface Figure {
  name: string;
  title: string;
  spec: VlSpec;
  /** the numbers plotted, one object per mark (written beside the figure as CSV) */
  rows: Record<string, unknown>[];
}
export interface Skipped {
  name: string;
  reason: string;
}
export type FigureResult = { figure: Figure } | { skipped: Skipped };

export interface FigureInput {
  data: ReportData;
  groups: Group[];
  /** method label → colour, report-wide */
  colors: Map<string, string>;
}

const byNumber = (a: number, b: number) => a - b;
const skip = (name: string, reason: string): FigureResult => ({ skipped: { name, reason } });
const done = (name: string, title: string, spec: VlSpec, rows: Record<string, unknown>[]): FigureResult => ({ figure: { name, title, spec, rows } });

/** What a panel of a run figure stands for; labels show only what tells panels apart. */
interface PanelKey {
  sweep: string;
  model: string;
  dataset: string;
  width?: number;
  /** a sparsity level, or 'dense' */
  sparsity?: number | 'dense';
}

function panelKey(k: GroupKey, fields: ('width' | 'sparsity')[]): PanelKey {
  return {
    sweep: k.sweep, model: k.model, dataset: k.dataset,
    ...(fields.includes('width') ? { width: k.width } : {}),
    ...(fields.includes('sparsity') ? { sparsity: k.sparsity === 0 ? 'dense' as const : k.sparsity } : {}),
  };
}
const pid = (k: PanelKey) => JSON.stringify(k);

/**
 * Panel titles for the panels shown: "mlp · mnist", preceded by the sweep when several sweeps are
 * shown, then "width 2×" when widths differ or are not 1×, then "90% sparse" when in the key.
 */
function panelLabeler(keys: PanelKey[]): (k: PanelKey) => string {
  const sweeps = uniq(keys.map((k) => k.sweep)).length > 1;
  const widths = uniq(keys.map((k) => k.width)).length > 1 || keys.some((k) => k.width !== undefined && k.width !== 1);
  return (k) => [
    sweeps ? `${k.sweep}:` : '',
    `${k.model} · ${k.dataset}`,
    widths && k.width !== undefined ? `· width ${k.width}×` : '',
    k.sparsity === undefined ? '' : k.sparsity === 'dense' ? '· dense' : `· ${pctLabel(k.sparsity)} sparse`,
  ].filter(Boolean).join(' ');
}

/** "gse (grabo) at 99% (0 of 3 seeds done; seeds 0, 1, 2 failed)": groups with no finished run, so not drawn. */
function notShown(groups: Group[], stat: (g: Group) => Stats): string[] {
  const missing = groups.filter((g) => stat(g).n === 0).map((g) => `${seriesName(g)} at ${pctLabel(g.key.sparsity)} (${g.note || 'no data'})`);
  return missing.length ? [`Not shown, no finished run: ${missing.join('; ')}.`] : [];
}

const PCT_AXIS = (title: string): AxisSpec => ({ title, type: 'quantitative' });

/** Figures with sparsity on x (accuracy, FLOPs): one panel per sweep × model × dataset × width, dense as a rule. */
function sparsityFigure(ctx: FigureInput, o: { name: string; title: string; stat: (g: Group) => Stats; scale: number; digits: number; y: AxisSpec; what: string }): FigureResult {
  const key = (g: Group) => panelKey(g.key, ['width']);
  const sparse = ctx.groups.filter((g) => !isDense(g));
  const panels = [...groupBy(sparse, (g) => pid(key(g))).values()]
    .filter((gs) => uniq(gs.filter((g) => o.stat(g).n > 0).map((g) => g.key.sparsity)).length >= 2);
  if (panels.length === 0) {
    const levels = uniq(sparse.filter((g) => o.stat(g).n > 0).map((g) => pctLabel(g.key.sparsity)));
    return skip(o.name, `needs ${o.what} at two or more sparsity levels for one model and dataset (found: ${levels.join(', ') || 'none'})`);
  }
  const shown = panels.flat();
  const ids = new Set(shown.map((g) => pid(key(g))));
  const label = panelLabeler(shown.map(key));
  const at = (g: Group, x: string) => ({ panel: label(key(g)), x, xText: x, variant: variantText(g) });
  const rows: MeanRow[] = [
    ...shown.map((g) => groupRow(g, o.stat(g), at(g, pctLabel(g.key.sparsity)), o.scale, o.digits)),
    ...ctx.groups.filter((g) => isDense(g) && ids.has(pid(key(g)))).map((g) => groupRow(g, o.stat(g), at(g, 'dense'), o.scale, o.digits, true)),
  ].filter((r): r is MeanRow => r !== null);
  const levels = uniq(shown.map((g) => g.key.sparsity)).sort(byNumber).map(pctLabel);
  const subtitle = [`${spreadNote(rows, 'error bars')}${rows.some((r) => r.reference) ? ' Dashed rule: dense.' : ''}`, ...notShown(shown, o.stat)];
  const spec = meanChart({
    title: o.title, subtitle, rows, panels: uniq(shown.map((g) => label(key(g)))), colors: ctx.colors,
    x: { title: 'Sparsity', type: 'ordinal', domain: levels }, y: o.y,
  });
  return done(o.name, o.title, spec, rows);
}

function accuracyVsSparsity(ctx: FigureInput): FigureResult {
  return sparsityFigure(ctx, {
    name: 'accuracy-vs-sparsity', title: 'Test accuracy vs sparsity', what: 'finished runs',
    stat: (g) => g.accuracy, scale: 100, digits: 2, y: PCT_AXIS('Test accuracy (%)'),
  });
}

function flopsVsSparsity(ctx: FigureInput): FigureResult {
  return sparsityFigure(ctx, {
    name: 'flops-vs-sparsity', title: 'Training FLOPs relative to dense vs sparsity', what: 'finished runs with train_flops and dense_train_flops',
    stat: flopsRatio, scale: 1, digits: 4, y: { title: 'Training FLOPs / dense (log)', type: 'quantitative', log: 10, format: '~g' },
  });
}

/** Mean active parameters of a group's finished runs. */
const activeParams = (g: Group) => stats(g.done.map((r) => r.active_params ?? NaN)).mean;

function accuracyVsWidth(ctx: FigureInput): FigureResult {
  const name = 'accuracy-vs-width';
  const gs = ctx.groups.filter((g) => g.accuracy.n > 0);
  const key = (g: Group) => panelKey(g.key, []);
  // several groups of one series at one width (e.g. constant sparsity, not constant connections): split by sparsity
  const crowded = new Set([...groupBy(gs, (g) => `${pid(key(g))}|${seriesName(g)}|${g.key.width}`).values()]
    .filter((v) => v.length > 1).map((v) => `${pid(key(v[0]))}|${seriesName(v[0])}`));
  const variant = (g: Group) => {
    const split = crowded.has(`${pid(key(g))}|${seriesName(g)}`) ? `${pctLabel(g.key.sparsity)} sparse` : '';
    return [variantText(g), split].filter(Boolean).join(' · ');
  };
  const series = [...groupBy(gs, (g) => `${pid(key(g))}|${g.label}|${variant(g)}`).values()].filter((v) => uniq(v.map((g) => g.key.width)).length >= 2);
  if (series.length === 0) {
    return skip(name, `needs finished runs of one method at two or more width multipliers (found widths: ${uniq(gs.map((g) => g.key.width)).sort(byNumber).join(', ') || 'none'})`);
  }
  const shown = series.flat();
  const label = panelLabeler(shown.map(key));
  const rows = shown.map((g) => {
    const active = activeParams(g);
    return { ...groupRow(g, g.accuracy, { panel: label(key(g)), x: g.key.width, xText: `${g.key.width}×`, variant: variant(g) }, 100)!,
      sparsity: pctLabel(g.key.sparsity), active: active === null ? '' : siText(active) };
  });
  const widths = uniq(shown.map((g) => g.key.width)).sort(byNumber);
  const subtitle = [spreadNote(rows, 'error bars'), constantConnectionsNote(series)].filter(Boolean);
  const spec = meanChart({
    title: 'Test accuracy vs width multiplier', subtitle, rows, panels: uniq(rows.map((r) => r.panel)), colors: ctx.colors,
    x: { title: 'Width multiplier (log)', type: 'quantitative', log: 2, values: widths, labelExpr: "datum.value + '×'" },
    y: PCT_AXIS('Test accuracy (%)'),
    extraTooltip: [['sparsity', 'sparsity'], ['active', 'active params']],
  });
  return done(name, 'Test accuracy vs width multiplier', spec, rows);
}

/** "Sparse methods hold … constant" when every sparse series keeps its active count within 2%. */
function constantConnectionsNote(series: Group[][]): string {
  const sparse = series.filter((s) => s.every((g) => !isDense(g)));
  const constant = sparse.length > 0 && sparse.every((s) => {
    const a = s.map(activeParams).filter((x): x is number => x !== null);
    return a.length === s.length && Math.max(...a) <= 1.02 * Math.min(...a);
  });
  return constant ? 'Sparse methods hold their number of active connections constant across widths, so sparsity rises with width.' : '';
}

/**
 * Test accuracy against a numeric method option (GSE's gamma, Top-KAST's backwardFactor, a
 * plugin's): the first option, by name, whose value varies inside a series (the variant label
 * without that option) at a fixed model, dataset and sparsity.
 */
function accuracyVsOption(ctx: FigureInput): FigureResult {
  const name = 'accuracy-vs-option';
  const key = (g: Group) => panelKey(g.key, ['width', 'sparsity']);
  const numeric = (g: Group, option: string) => typeof g.options[option] === 'number';
  const options = uniq(ctx.groups.flatMap((g) => Object.keys(g.options).filter((o) => numeric(g, o)))).sort();
  for (const option of options) {
    const gs = ctx.groups.filter((g) => numeric(g, option) && g.accuracy.n > 0);
    const seriesOf = (g: Group) => [withoutOption(g.label, option), variantText(g)].filter(Boolean).join(' · ');
    const series = [...groupBy(gs, (g) => `${pid(key(g))}|${seriesOf(g)}`).values()]
      .filter((v) => uniq(v.map((g) => g.options[option])).length >= 2);
    if (series.length === 0) continue;
    const shown = series.flat();
    const label = panelLabeler(shown.map(key));
    const value = (g: Group) => g.options[option] as number;
    const rows = shown.map((g) => ({
      ...groupRow(g, g.accuracy, { panel: label(key(g)), x: value(g), xText: String(value(g)), variant: variantText(g) }, 100)!,
      label: withoutOption(g.label, option),
    }));
    const xs = uniq(shown.map(value)).sort(byNumber);
    const title = `Test accuracy vs method option ${option}`;
    const spec = meanChart({
      title, subtitle: [spreadNote(rows, 'error bars')], rows, panels: uniq(rows.map((r) => r.panel)), colors: ctx.colors,
      x: { title: `${option} (log)`, type: 'quantitative', values: xs, ...(xs[0] > 0 ? { log: 2 } : {}) },
      y: PCT_AXIS('Test accuracy (%)'),
    });
    return done(name, title, spec, rows);
  }
  return skip(name, 'no runs vary a numeric method option (e.g. gse gamma) at a fixed model, dataset and sparsity');
}

function accuracyVsEpoch(ctx: FigureInput): FigureResult {
  const name = 'accuracy-vs-epoch';
  const curves = ctx.groups.map((g) => ({ g, curve: epochCurve(g) })).filter((c) => c.curve.length >= 2);
  if (curves.length === 0) return skip(name, 'no finished run has metrics.jsonl with two or more epochs');
  const key = (g: Group) => panelKey(g.key, ['width', 'sparsity']);
  const base = (k: PanelKey) => pid({ ...k, sparsity: undefined });
  const sparseKeys = uniq(curves.filter((c) => !isDense(c.g)).map((c) => pid(key(c.g)))).map((id) => JSON.parse(id) as PanelKey);
  // a dense curve is drawn in every panel of its sweep × model × dataset × width, as the reference
  const panelsOf = (g: Group): PanelKey[] => {
    if (!isDense(g)) return [key(g)];
    const mine = sparseKeys.filter((k) => base(k) === base(key(g)));
    return mine.length ? mine : [key(g)];
  };
  const allKeys = uniq(curves.flatMap(({ g }) => panelsOf(g).map(pid))).map((id) => JSON.parse(id) as PanelKey);
  const label = panelLabeler(allKeys);
  const rows: MeanRow[] = curves.flatMap(({ g, curve }) => panelsOf(g).flatMap((k) => curve.map((p) =>
    groupRow(g, { n: p.n, mean: p.mean, std: p.std, min: null, max: null }, { panel: label(k), x: p.epoch, xText: String(p.epoch), variant: variantText(g) }, 100)!)));
  const panels = allKeys.map(label);
  const spec = meanChart({
    title: 'Test accuracy vs epoch', subtitle: [`Mean over seeds: ${spreadNote(rows, 'bands')}`], rows, panels, colors: ctx.colors,
    x: { title: 'Epoch', type: 'quantitative', integer: true, nice: false }, y: PCT_AXIS('Test accuracy (%)'), band: true, points: false,
    columns: Math.min(4, panels.length),
    // sweeps trained for different lengths keep their own epoch axis
    independentX: uniq(panels.map((p) => Math.max(...rows.filter((r) => r.panel === p).map((r) => r.x as number)))).length > 1,
  });
  return done(name, 'Test accuracy vs epoch', spec, rows);
}

/** Up to this many layers a panel names each layer and draws bars; deeper models get a layer-index axis and lines. */
const NAMED_LAYERS = 12;

function layerDensity(ctx: FigureInput): FigureResult {
  const name = 'layer-density';
  const title = 'Layer-wise density at the end of training';
  const withLayers = ctx.groups.filter((g) => !isDense(g)).map((g) => ({ g, layers: layerDensities(g) })).filter((x) => x.layers.length > 0);
  if (withLayers.length === 0) return skip(name, 'no finished sparse run has per-layer densities (result.json layers or updates.jsonl)');
  const deep = Math.max(...withLayers.map((x) => x.layers.length)) > NAMED_LAYERS;
  const key = (g: Group) => panelKey(g.key, ['width', 'sparsity']);
  const label = panelLabeler(withLayers.map((x) => key(x.g)));
  const all = withLayers.flatMap(({ g, layers }) => layers.map((l) => ({ g, l })));
  // a layer pruned to no connections has no place on a log axis: it is named in the subtitle
  const empty = all.filter(({ l }) => !(l.density > 0));
  const drawn = all.filter(({ l }) => l.density > 0);
  if (drawn.length === 0) return skip(name, `every layer of every finished sparse run has density 0 (${empty.length} layers)`);
  const rows: MeanRow[] = drawn.map(({ g, l }) => ({
    ...groupRow(g, { n: l.n, mean: l.density, std: null, min: null, max: null },
      { panel: label(key(g)), x: deep ? l.index + 1 : l.layer, xText: `${l.index + 1}: ${l.layer}`, variant: variantText(g) }, 1, 4)!,
    index: l.index, density: l.density.toPrecision(4),
  }));
  const emptyNote = empty.length
    ? [`Pruned away (no connections left, not drawn): ${empty.map(({ g, l }) => `${seriesName(g)} at ${pctLabel(g.key.sparsity)} ${l.layer}`).join('; ')}.`]
    : [];
  const panels = uniq(rows.map((r) => r.panel));
  const perPanel = Math.max(...panels.map((p) => rows.filter((r) => r.panel === p).length));
  const common = {
    title, subtitle: ['Fraction of each layer’s weights active at the end, mean over seeds; global-scope methods move connections between layers.', ...emptyNote],
    rows, panels, colors: ctx.colors,
    y: { title: 'Density (log)', type: 'quantitative' as const, log: 10, format: '~g' },
    extraTooltip: [['density', 'density']] as [string, string][],
    columns: Math.min(4, panels.length),
  };
  const depth = Math.max(...withLayers.map((x) => x.layers.length));
  const spec = deep
    ? meanChart({ ...common, x: { title: 'Layer index (input → output)', type: 'quantitative', integer: true, extent: [1, depth] }, points: false,
      width: Math.max(PANEL_WIDTH, 8 * depth) })
    // bars side by side, so methods with equal densities stay visible
    : barChart({ ...common, width: Math.max(PANEL_WIDTH, 7 * perPanel), independentX: uniq(withLayers.map((x) => x.g.key.model)).length > 1,
      x: { title: 'Layer', type: 'ordinal', sortBy: 'index', labelAngle: rows.some((r) => String(r.x).length > 6) ? -35 : 0 } });
  return done(name, title, spec, rows);
}

/** Scaling rows from the runs themselves (a width sweep), used when no scaling CSV was given. */
function scalingFromRuns(groups: Group[]): ScalingRow[] {
  return groups.flatMap((g) => g.done.map((r) => ({
    source: r.sweep, method: g.label, format: variantText(g), width: r.width,
    active_params: r.active_params, step_ms: r.step_ms, update_ms: r.update_ms, peak_rss_mb: r.peak_rss_mb, status: 'done',
  })));
}

const COST_METRICS: { key: 'step_ms' | 'update_ms' | 'peak_rss_mb'; title: string; short: string; unit: string }[] = [
  { key: 'step_ms', title: 'Training step', short: 'step', unit: 'ms' },
  { key: 'update_ms', title: 'Prune-grow update', short: 'update', unit: 'ms' },
  { key: 'peak_rss_mb', title: 'Peak memory', short: 'memory', unit: 'MB' },
];

interface CostPoint {
  panel: string; label: string; series: string; variant: string; x: number; xText: string; mean: number;
  value: string; measurements: number; slope: string; active: string; legend?: string;
}

/** Mean of one cost metric per series × width, with the series' fitted log-log slope. */
function costPoints(rows: ScalingRow[], m: (typeof COST_METRICS)[number]): CostPoint[] {
  const valid = rows.filter((r) => (r.status === '' || r.status === 'done') && r[m.key] !== null && r[m.key]! > 0);
  // the format is a distinction only for a method measured in several formats
  const formats = new Map([...groupBy(valid, (r) => r.method).entries()].map(([k, v]) => [k, uniq(v.map((r) => r.format)).length]));
  const variant = (r: ScalingRow) => ((formats.get(r.method) ?? 0) > 1 ? r.format : '');
  return [...groupBy(valid, (r) => `${r.method}|${variant(r)}`).values()].filter((v) => uniq(v.map((r) => r.width)).length >= 2).flatMap((v) => {
    const byWidth = [...groupBy(v, (r) => String(r.width)).values()].map((ws) => ({
      width: ws[0].width, s: stats(ws.map((r) => r[m.key]!)), active: stats(ws.map((r) => r.active_params ?? NaN)).mean,
    })).sort((a, b) => a.width - b.width);
    const slope = logLogSlope(byWidth.map((p) => ({ x: p.width, y: p.s.mean! })));
    return byWidth.map((p) => ({
      panel: m.title, label: v[0].method, series: [v[0].method, variant(v[0])].filter(Boolean).join(' · '), variant: variant(v[0]),
      x: p.width, xText: String(p.width), mean: p.s.mean!, value: `${p.s.mean!.toPrecision(4)} ${m.unit}`, measurements: p.s.n,
      slope: slope === null ? '' : slope.toFixed(2), active: p.active === null ? '' : siText(p.active),
    }));
  });
}


/** Width tick labels: 1024 → "1k" (binary), multipliers → "2×". */
const WIDTH_LABELS = { csv: "datum.value >= 1024 && datum.value % 1024 === 0 ? (datum.value / 1024) + 'k' : datum.value", runs: "datum.value + '×'" };

function costVsWidth(ctx: FigureInput): FigureResult {
  const name = 'cost-vs-width';
  const fromCsv = ctx.data.scaling.length > 0;
  const rows = fromCsv ? ctx.data.scaling : scalingFromRuns(ctx.groups);
  const metrics = COST_METRICS.map((m) => ({ m, points: costPoints(rows, m) })).filter((x) => x.points.length > 0);
  if (metrics.length === 0) {
    return skip(name, fromCsv ? 'the scaling-bench CSVs hold no method with timings at two or more widths'
      : 'no scaling-bench CSV among the inputs (and no finished runs of one method at two or more widths with step times)');
  }
  // one legend for all panels: each series with its slope in every panel ("gse  step 1.00 · update 1.06 · memory 0.37")
  const all = metrics.flatMap((x) => x.points);
  const seriesList = uniq(all.map((p) => p.series)).sort((a, b) => compareMethodsOf(all, a, b));
  const slopes = (sr: string) => metrics.map(({ m, points }) => [m.short, points.find((p) => p.series === sr)?.slope] as const)
    .filter(([, slope]) => slope).map(([what, slope]) => `${what} ${slope}`).join(', ');
  const legendOf = new Map(seriesList.map((sr) => [sr, `${sr} — ${slopes(sr)}`]));
  for (const p of all) p.legend = legendOf.get(p.series)!;
  const colorOfSeries = new Map(all.map((p) => [p.legend!, ctx.colors.get(p.label) ?? '#888']));
  const color = {
    ...colorEncoding(seriesList.map((sr) => ({ label: legendOf.get(sr)! })), colorOfSeries, 'Method and fitted log-log slope', false),
    field: 'legend',
  };
  Object.assign(color.legend, { labelLimit: 1000, titleLimit: 1000 });
  const dash = dashEncoding(all, 'Format');
  const widths = uniq(all.map((p) => p.x)).sort(byNumber);
  const x = axisEncoding('x', { title: fromCsv ? 'Width n (log)' : 'Width multiplier (log)', type: 'quantitative', log: 2, values: widths, labelExpr: fromCsv ? WIDTH_LABELS.csv : WIDTH_LABELS.runs });
  const tooltip = [['legend', 'method'], ['xText', 'width'], ['value', 'value'], ['measurements', 'measurements'], ['active', 'active params']]
    .map(([field, title]) => ({ field, title, type: 'nominal' }));
  const panels = metrics.map(({ m, points }) => {
    const y = axisEncoding('mean', { title: `${m.title} (${m.unit}, log)`, type: 'quantitative', log: 10, ...logAxis(points.map((p) => p.mean)), format: '~g' });
    return {
      width: PANEL_WIDTH, height: PANEL_HEIGHT,
      data: { values: points },
      layer: [
        { mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, color, ...(dash ? { strokeDash: dash } : {}), tooltip } },
        { mark: { type: 'point', filled: true, size: 40 }, encoding: { x, y, color, tooltip } },
      ],
    };
  });
  const source = fromCsv ? uniq(rows.map((r) => path.basename(r.source))).join(', ') : 'the runs’ own timings';
  const spec = topLevel('Cost vs width', [`Log-log axes; the legend gives each method's fitted log-log slope per panel. Source: ${source}.`], {
    hconcat: panels,
    resolve: { scale: { y: 'independent' } },
  });
  return done(name, 'Cost vs width', spec, all as unknown as Record<string, unknown>[]);
}

/** Series in method order (the method label of a series decides). */
function compareMethodsOf(points: CostPoint[], a: string, b: string): number {
  const label = (sr: string) => points.find((p) => p.series === sr)!.label;
  return compareMethods(label(a), label(b)) || a.localeCompare(b);
}

function kernelTime(ctx: FigureInput): FigureResult {
  const name = 'kernel-time';
  const k = ctx.data.kernels;
  if (k.length === 0) return skip(name, 'no kernel-bench CSV among the inputs');
  const batches = uniq(k.map((r) => r.batch));
  const panel = (r: KernelRow) => [`n = ${r.n}`, batches.length > 1 ? `batch ${r.batch}` : ''].filter(Boolean).join(' · ');
  // thread counts tell series apart only for a format timed with several
  const threadsOf = (f: string) => uniq(k.filter((r) => r.format === f).map((r) => r.threads)).sort(byNumber);
  const threadText = (t: number) => `${t} thread${t === 1 ? '' : 's'}`;
  const variant = (r: KernelRow) => (threadsOf(r.format).length > 1 ? threadText(r.threads) : '');
  const cells = [...groupBy(k, (r) => `${panel(r)}|${r.format}|${variant(r)}|${r.sparsity}`).values()];
  const levelsOf = (c: KernelRow) => uniq(k.filter((r) => panel(r) === panel(c) && r.format === c.format && variant(r) === variant(c)).map((r) => r.sparsity));
  const panels = uniq(k.filter((r) => levelsOf(r).length >= 2).map(panel));
  if (panels.length === 0) return skip(name, 'the kernel-bench CSVs hold no format timed at two or more sparsity levels');
  const rows: MeanRow[] = cells.filter((c) => panels.includes(panel(c[0]))).map((c) => {
    const r = c[0];
    const ms = stats(c.map((x) => x.median_ms)).mean!;
    const gf = stats(c.map((x) => x.gflops ?? NaN)).mean;
    return {
      panel: panel(r), label: r.format, variant: variant(r), x: pctLabel(r.sparsity), xText: pctLabel(r.sparsity), mean: ms, lo: null, hi: null,
      reference: levelsOf(r).length === 1, incomplete: false, value: `${ms.toPrecision(4)} ms`, seeds: '', n: c.length, note: '',
      gflops: gf === null ? '' : gf.toFixed(2), threads: threadText(r.threads),
    };
  });
  const levels = uniq(rows.filter((r) => !r.reference).map((r) => r.x as string)).sort((a, b) => parseFloat(a) - parseFloat(b));
  const formats = uniq(rows.map((r) => r.label));
  const setup = `batch ${batches.join('/')}; ${formats.map((f) => `${f}: ${threadsOf(f).map(threadText).join(', ')}`).join(', ')}`;
  const spec = meanChart({
    title: 'Sparse × dense matrix multiply time vs sparsity',
    subtitle: [`Median time per multiply (${setup}).${rows.some((r) => r.reference) ? ' Dashed rule: a format timed at one sparsity only.' : ''}`],
    rows, panels, colors: formatColors(formats), colorTitle: 'Format',
    x: { title: 'Sparsity', type: 'ordinal', domain: levels }, y: { title: 'Median time (ms, log)', type: 'quantitative', log: 10, format: '~g' },
    extraTooltip: [['gflops', 'GFLOP/s'], ['threads', 'threads']], columns: Math.min(4, panels.length),
  });
  return done(name, 'Sparse × dense matrix multiply time vs sparsity', spec, rows);
}

/** Every figure of the report, in the order they appear; `runs`: drawn from runs only. */
export const FIGURES: { name: string; runs: boolean; build: (ctx: FigureInput) => FigureResult }[] = [
  { name: 'accuracy-vs-sparsity', runs: true, build: accuracyVsSparsity },
  { name: 'accuracy-vs-width', runs: true, build: accuracyVsWidth },
  { name: 'cost-vs-width', runs: false, build: costVsWidth },
  { name: 'accuracy-vs-epoch', runs: true, build: accuracyVsEpoch },
  { name: 'layer-density', runs: true, build: layerDensity },
  { name: 'flops-vs-sparsity', runs: true, build: flopsVsSparsity },
  { name: 'accuracy-vs-option', runs: true, build: accuracyVsOption },
  { name: 'kernel-time', runs: false, build: kernelTime },
];

/** A figure that failed on these inputs, for the "Not drawn" list: the report goes on without it. */
export function notDrawn(name: string, e: unknown): Skipped {
  return { name, reason: `could not be drawn from these inputs (${String((e as Error)?.message ?? e).split('\n')[0]})` };
}

export function buildFigures(ctx: FigureInput): FigureResult[] {
  return FIGURES.map((f) => {
    if (f.runs && ctx.groups.length === 0) return skip(f.name, 'no runs among the inputs');
    try {
      return f.build(ctx);
    } catch (e) {
      return { skipped: notDrawn(f.name, e) };
    }
  });
}
