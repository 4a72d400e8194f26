/**
 * Vega-Lite building blocks shared by the figures: the method colour and variant dash
 * encodings, the faceted "mean with error bars per series" chart, and the rows it plots.
 * Figures (figures.ts) choose the data; this file decides how every figure looks.
 */
import type { Group, Stats } from './aggregate.js';
import { uniq } from './aggregate.js';
import type { VlSpec } from './render.js';
import { compareMethods, compareNatural, methodShape, pctLabel, vlConfig } from './style.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
export const PANEL_WIDTH = 260;
export const PANEL_HEIGHT = 190;
const DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [10, 4], [3, 4, 9, 4]];

/** A plotted point: the mean of one group (or benchmark cell), in display units. */
export interface MeanRow {
  panel: string;
  /** what the colour encodes (method label or storage format) */
  label: string;
  /** a second distinction drawn as a dash pattern ('' when none) */
  variant: string;
  x: number | string;
  /** the x value as shown in tooltips */
  xText: string;
  mean: number;
  lo: number | null;
  hi: number | null;
  /** drawn as a horizontal reference rule instead of a line (e.g. dense on a sparsity axis) */
  reference: boolean;
  incomplete: boolean;
  /** "98.12 ± 0.05" */
  value: string;
  /** "3 of 3" */
  seeds: string;
  /** measurements averaged (seeds); error bars need two */
  n: number;
  note: string;
  [extra: string]: unknown;
}

/** A group's statistic as a row; `scale` converts to display units (100 for percent). */
export function groupRow(g: Group, s: Stats, at: { panel: string; x: number | string; xText: string; variant: string },
  scale = 1, digits = 2, reference = false): MeanRow | null {
  if (s.mean === null) return null;
  const mean = s.mean * scale;
  const std = s.std === null ? null : s.std * scale;
  return {
    ...at,
    label: g.label,
    mean,
    lo: std === null ? null : mean - std,
    hi: std === null ? null : mean + std,
    reference,
    incomplete: g.incomplete,
    value: std === null ? mean.toFixed(digits) : `${mean.toFixed(digits)} ± ${std.toFixed(digits)}`,
    seeds: `${s.n} of ${g.expectedSeeds.length}`,
    n: s.n,
    note: g.note,
  };
}

/** Colour by label with the report-wide colours; legend entries in method order. */
export function colorEncoding(rows: { label: string }[], colors: Map<string, string>, title: string, sortLabels = true) {
  const domain = uniq(rows.map((r) => r.label));
  if (sortLabels) domain.sort(compareMethods);
  return {
    field: 'label',
    type: 'nominal',
    title,
    scale: { domain, range: domain.map((l) => colors.get(l) ?? '#888') },
    legend: { symbolType: 'stroke', symbolStrokeWidth: 2.5, symbolSize: 400 },
  };
}

/** Marker shape by label (same field, title and order as the colour, so the legend shows both). */
export function shapeEncoding(rows: { label: string }[], title: string, sortLabels = true) {
  const domain = uniq(rows.map((r) => r.label));
  if (sortLabels) domain.sort(compareMethods);
  return { field: 'label', type: 'nominal', title, scale: { domain, range: domain.map(methodShape) } };
}

/**
 * "n = 3 seeds per point; error bars: ±1 std." — what the spread drawn stands for, and that
 * nothing is drawn where a point has one seed.
 */
export function spreadNote(rows: { n: number; reference?: boolean }[], spread: 'error bars' | 'bands'): string {
  const ns = uniq(rows.map((r) => r.n)).sort((a, b) => a - b);
  const range = ns.length === 1 ? `n = ${ns[0]}` : `n = ${ns[0]}–${ns[ns.length - 1]}`;
  const per = `${range} seed${ns[ns.length - 1] === 1 ? '' : 's'} per point`;
  if (ns[ns.length - 1] < 2) return `${per}: no ${spread} (they need two or more seeds).`;
  const where = ns[0] < 2 ? ' where n ≥ 2 (see tooltips)' : '';
  return `${per}; ${spread}: ±1 std over seeds${where}.`;
}

/**
 * Series of one panel that lie on top of each other at every x (within 0.5% of the panel's
 * y range, or a factor 1.005 on a log axis): "Coinciding: static, set, gse". Drawn with different
 * markers they stay visible; the note says why one line shows for several legend entries.
 */
export function coincidenceNote(rows: MeanRow[], log: boolean): string {
  const clusters: string[] = [];
  for (const panel of uniq(rows.map((r) => r.panel))) {
    const inPanel = rows.filter((r) => r.panel === panel && !r.reference);
    const v = (r: MeanRow) => (log ? Math.log(r.mean) : r.mean);
    const span = Math.max(...inPanel.map(v)) - Math.min(...inPanel.map(v));
    const tol = log ? Math.log(1.005) : 0.005 * span;
    const series = [...new Map(inPanel.map((r) => [`${r.label}|${r.variant}`, inPanel.filter((q) => q.label === r.label && q.variant === r.variant)])).entries()];
    const name = (key: string) => key.replace(/\|$/, '').replace('|', ' · ');
    const same = (a: MeanRow[], b: MeanRow[]) => a.length === b.length && a.length >= 2 &&
      a.every((p) => b.some((q) => q.x === p.x && Math.abs(v(q) - v(p)) <= tol));
    const taken = new Set<string>();
    for (const [key, pts] of series) {
      if (taken.has(key)) continue;
      const group = series.filter(([k, q]) => !taken.has(k) && same(pts, q)).map(([k]) => k);
      if (group.length < 2) continue;
      group.forEach((k) => taken.add(k));
      const text = group.map(name).join(', ');
      if (!clusters.includes(text)) clusters.push(text);
    }
  }
  return clusters.length ? `Coinciding (markers tell them apart): ${clusters.join('; ')}.` : '';
}

/** Dash pattern by variant, or nothing when no row has a variant. */
export function dashEncoding(rows: { variant: string }[], title = 'Variant') {
  const domain = uniq(rows.map((r) => r.variant)).sort(compareNatural);
  if (domain.every((v) => v === '')) return null;
  return {
    field: 'variant',
    type: 'nominal',
    title,
    scale: { domain, range: domain.map((_, i) => DASHES[i % DASHES.length]) },
    legend: { values: domain.filter((v) => v !== ''), symbolType: 'stroke', symbolStrokeColor: '#555', symbolStrokeWidth: 2, symbolSize: 700 },
  };
}

export interface AxisSpec {
  title: string;
  /** 'ordinal' for discrete levels (sparsity), else quantitative */
  type: 'ordinal' | 'quantitative';
  /** ordinal domain in order */
  domain?: string[];
  /** a fixed quantitative domain (no nice rounding) */
  extent?: [number, number];
  /** a log scale's base */
  log?: number;
  /** tick values for a quantitative axis */
  values?: number[];
  labelExpr?: string;
  format?: string;
  /** ordinal order taken from another field (e.g. layer index), when panels have different domains */
  sortBy?: string;
  labelAngle?: number;
  /** whole-number ticks only (epochs) */
  integer?: boolean;
  /** round the domain to nice numbers (default true; false: the data's own extent) */
  nice?: boolean;
  /** grid lines at the ticks (default true) */
  grid?: boolean;
}

/**
 * Ticks and a tight domain for a log axis: 1-2-5 steps when the data spans at most two decades,
 * 1-3 up to four, decades beyond; the domain runs from the tick below the data to the tick above.
 */
export function logAxis(values: number[]): { values: number[]; extent: [number, number] } {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  if (pos.length === 0) throw new RangeError(`a log axis needs a positive finite value (got ${values.slice(0, 5).join(', ')})`);
  const [min, max] = [Math.min(...pos), Math.max(...pos)];
  const hi = Math.ceil(Math.log10(max));
  // at least a decade, so bars from the lowest tick have height even when every value is equal
  const lo = Math.min(Math.floor(Math.log10(min)), hi - 1);
  const steps = hi - lo <= 2 ? [1, 2, 5] : hi - lo <= 4 ? [1, 3] : [1];
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) for (const s of steps) ticks.push(Number((s * 10 ** e).toPrecision(3)));
  const from = Math.max(...ticks.filter((t) => t <= min));
  const to = Math.min(...ticks.filter((t) => t >= max));
  return { values: ticks.filter((t) => t >= from && t <= to), extent: [from, to] };
}

export function axisEncoding(field: string, a: AxisSpec) {
  const scale: Record<string, unknown> = {};
  if (a.domain) scale.domain = a.domain;
  if (a.nice === false) scale.nice = false;
  if (a.extent) Object.assign(scale, { domain: a.extent, nice: false });
  else if (a.values && a.type === 'quantitative') Object.assign(scale, { domain: [Math.min(...a.values), Math.max(...a.values)], nice: false });
  // keep end points and error bars inside the plot, so panels line up (vega lays out by full bounds)
  if (a.type === 'ordinal') scale.paddingOuter = 0.3;
  else scale.padding = 8;
  if (a.log) Object.assign(scale, { type: 'log', base: a.log });
  else if (a.type === 'quantitative') scale.zero = false;
  const axis: Record<string, unknown> = { labelAngle: a.labelAngle ?? 0, grid: a.grid ?? true };
  if (a.values) axis.values = a.values;
  if (a.labelExpr) axis.labelExpr = a.labelExpr;
  if (a.format) axis.format = a.format;
  if (a.integer) Object.assign(axis, { tickMinStep: 1, format: 'd' });
  const sort = a.sortBy ? { field: a.sortBy, op: 'min' } : undefined;
  return { field, type: a.type, title: a.title, scale, axis, ...(sort ? { sort } : {}) };
}

/** Tooltip entries for the fields that hold something in at least one row. */
const tooltip = (rows: Record<string, unknown>[], fields: [string, string][]) =>
  fields.filter(([f]) => rows.some((r) => r[f] !== '' && r[f] !== undefined && r[f] !== null))
    .map(([field, title]) => ({ field, title, type: 'nominal' }));

export interface MeanChartOptions {
  title: string;
  subtitle?: string[];
  rows: MeanRow[];
  panels: string[];
  x: AxisSpec;
  y: AxisSpec;
  colors: Map<string, string>;
  colorTitle?: string;
  /** extra tooltip fields [field, title] */
  extraTooltip?: [string, string][];
  /** a ±std band instead of error bars (for a dense x such as epochs) */
  band?: boolean;
  /** markers on the lines (default true) */
  points?: boolean;
  independentX?: boolean;
  columns?: number;
  /** panel width (default PANEL_WIDTH) */
  width?: number;
}

/** Faceted chart: one line per (label, variant) with points, ±std error bars or band, reference rules. */
export function meanChart(options: MeanChartOptions): VlSpec {
  // on a discrete x (sparsity levels) the series stand side by side in each band, so equal values
  // (RigL and GSE at one level) and their error bars never hide one another
  const seriesOf = (r: MeanRow) => (r.variant ? `${r.label} · ${r.variant}` : r.label);
  const order = uniq(options.rows.filter((r) => !r.reference).map(seriesOf)).sort(compareMethods);
  const levels = options.x.domain ?? [];
  const dodge = options.x.type === 'ordinal' && order.length > 1 && levels.length > 0;
  // x becomes the level's index plus the series' place in a band 0.7 wide; ticks keep the level names
  const step = 0.7 / order.length;
  const o: MeanChartOptions = dodge ? {
    ...options,
    rows: options.rows.map((r) => ({ ...r, position: levels.indexOf(String(r.x)) + (order.indexOf(seriesOf(r)) - (order.length - 1) / 2) * step })),
    x: { title: options.x.title, type: 'quantitative', extent: [-0.5, levels.length - 0.5], values: levels.map((_, i) => i),
      labelExpr: `${JSON.stringify(levels)}[datum.value]`, grid: false },
    width: options.width ?? Math.max(PANEL_WIDTH, 9 * levels.length * order.length),
  } : options;
  const points = o.points ?? true;
  const color = colorEncoding(o.rows, o.colors, o.colorTitle ?? 'Method');
  // with markers the legend shows each series' marker in its colour (merged with the shape legend)
  if (points) color.legend = { symbolSize: 90, symbolStrokeWidth: 1.6 } as typeof color.legend;
  const dash = dashEncoding(o.rows);
  const x = axisEncoding(dodge ? 'position' : 'x', o.x);
  const yAxis = o.y.log && !o.y.values ? { ...o.y, ...logAxis(o.rows.flatMap((r) => [r.mean, r.lo ?? r.mean, r.hi ?? r.mean])) } : o.y;
  const y = axisEncoding('mean', yAxis);
  const series = { color, ...(dash ? { strokeDash: dash } : {}) };
  const tips = tooltip(o.rows, [
    ['label', o.colorTitle ?? 'method'],
    ['variant', 'variant'],
    ['xText', o.x.title],
    ['value', o.y.title],
    ['seeds', 'seeds done'],
    ...(o.extraTooltip ?? []),
    ['note', 'incomplete'],
  ]);
  const notRef = { filter: '!datum.reference' };
  const hasStd = { filter: '!datum.reference && isValid(datum.lo)' };
  const shape = shapeEncoding(o.rows, o.colorTitle ?? 'Method');
  const layers: VlSpec[] = [{
    transform: [hasStd],
    mark: o.band ? { type: 'area', opacity: 0.15 } : { type: 'errorbar', ticks: { size: 6 }, thickness: 1.3 },
    encoding: { x, y: axisEncoding('lo', yAxis), y2: { field: 'hi' }, color },
  }];
  // without points, an incomplete group's line is faded instead of its markers being open
  const fade = points ? {} : { opacity: { condition: { test: 'datum.incomplete', value: 0.4 }, value: 1 } };
  layers.push({ transform: [notRef], mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, ...series, ...fade, tooltip: tips } });
  if (points) {
    // complete groups as filled markers, incomplete ones as open markers
    for (const incomplete of [false, true]) {
      layers.push({
        transform: [notRef, { filter: incomplete ? 'datum.incomplete' : '!datum.incomplete' }],
        mark: { type: 'point', filled: !incomplete, ...(incomplete ? { fill: 'white' } : {}), strokeWidth: 1.6, size: 60, opacity: 1 },
        encoding: { x, y, color, shape, tooltip: tips },
      });
    }
  }
  if (o.rows.some((r) => r.reference)) {
    layers.push({
      transform: [{ filter: 'datum.reference' }],
      mark: { type: 'rule', strokeDash: [5, 4], strokeWidth: 1.6 },
      encoding: { y, color, tooltip: tips },
    });
  }
  const subtitle = [...(o.subtitle ?? []), ...(points ? [coincidenceNote(o.rows, !!o.y.log)].filter(Boolean) : [])];
  if (o.rows.some((r) => r.incomplete && !r.reference)) {
    subtitle.push(`${points ? 'Open markers' : 'Faded lines'}: incomplete groups (missing seeds or runs not done; see tooltip and tables).`);
  }
  return facetSpec({ title: o.title, subtitle, rows: o.rows, panels: o.panels, layer: layers, independentX: o.independentX, columns: o.columns, width: o.width });
}

/**
 * Faceted grouped bars: x bands (e.g. layers), one bar per series side by side (so equal values
 * never hide one another), on a log y axis whose bars rise from the axis' lowest tick, at least a
 * factor 3 below the smallest value (so every bar has height, the smallest and a value at the top
 * of the range alike).
 */
export function barChart(o: Omit<MeanChartOptions, 'band' | 'points'>): VlSpec {
  const stroke = colorEncoding(o.rows, o.colors, o.colorTitle ?? 'Method');
  const color = { ...stroke, legend: { symbolType: 'square' } };
  const rows = o.rows.map((r) => ({ ...r, series: r.variant ? `${r.label} · ${r.variant}` : r.label }));
  const order = uniq(rows.map((r) => r.series)).sort(compareMethods);
  // the bars rise from a tick at least a factor 3 below the smallest value: a value just above a
  // tick (a density of 1.07e-4 over 1e-4) would otherwise get a bar of no visible height
  const means = rows.map((r) => r.mean).filter((v) => v > 0);
  const yAxis = { ...o.y, ...logAxis([...means, Math.min(...means) / 3]) };
  const base = yAxis.extent[0];
  const tips = tooltip(rows, [['label', o.colorTitle ?? 'method'], ['variant', 'variant'], ['xText', o.x.title], ['value', o.y.title], ['seeds', 'seeds done'],
    ...(o.extraTooltip ?? []), ['note', 'incomplete']]);
  const layer: VlSpec[] = [{
    mark: { type: 'bar', stroke: 'white', strokeWidth: 0.5 },
    encoding: {
      x: { ...axisEncoding('x', o.x), scale: { paddingInner: 0.25, paddingOuter: 0.1 } },
      xOffset: { field: 'series', type: 'nominal', sort: order },
      y: axisEncoding('mean', yAxis),
      y2: { datum: base },
      color,
      opacity: { condition: { test: 'datum.incomplete', value: 0.45 }, value: 1 },
      tooltip: tips,
    },
  }];
  const subtitle = [...(o.subtitle ?? [])];
  if (rows.some((r) => r.incomplete)) subtitle.push('Faded bars: incomplete groups (missing seeds or runs not done; see tooltip and tables).');
  const spec = facetSpec({ title: o.title, subtitle, rows, panels: o.panels, layer, independentX: o.independentX, columns: o.columns, width: o.width });
  // each panel spreads only its own series over a band
  return { ...spec, resolve: { scale: { ...(spec.resolve as { scale: object }).scale, xOffset: 'independent' } } };
}

const heading = (title: string, subtitle: string[]) => ({ text: title, ...(subtitle.length ? { subtitle } : {}) });

/** Wrap layers in a facet over the `panel` field (one panel per model × dataset …). */
function facetSpec(o: { title: string; subtitle: string[]; rows: object[]; panels: string[]; layer: VlSpec[]; independentX?: boolean; columns?: number; width?: number }): VlSpec {
  return {
    $schema: SCHEMA,
    title: heading(o.title, o.subtitle),
    config: vlConfig(),
    data: { values: o.rows },
    facet: { field: 'panel', type: 'nominal', title: null, sort: o.panels },
    columns: o.columns ?? Math.min(3, o.panels.length),
    spec: { width: o.width ?? PANEL_WIDTH, height: PANEL_HEIGHT, layer: o.layer },
    resolve: { scale: { x: o.independentX ? 'independent' : 'shared', y: 'shared' } },
  };
}

/** A non-faceted top-level spec (for concatenations). */
export function topLevel(title: string, subtitle: string[], body: VlSpec): VlSpec {
  return { $schema: SCHEMA, title: heading(title, subtitle), config: vlConfig(), ...body };
}
