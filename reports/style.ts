/**
 * The report's visual identity: one colour per method (stable across every figure and every
 * report), the order methods are listed in, the font, the shared Vega-Lite config, and the
 * number formats used by figures and tables alike.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

/** The font named in every spec; its TTF files ship in the dejavu-fonts-ttf package. */
export const FONT = 'DejaVu Sans';
/** What the interactive HTML asks the browser for (DejaVu when installed, else a sans-serif). */
export const WEB_FONT = "'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif";

/** The DejaVu Sans TTFs resvg loads (no system fonts are used, so PNGs look the same everywhere). */
export function fontFiles(): string[] {
  const dir = path.join(path.dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  return ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSans-Oblique.ttf'].map((f) => path.join(dir, f));
}

/**
 * The known methods' look. Families share a hue, so a figure reads by family first: dense black;
 * fixed masks (static and the pruning-at-init baselines) greens; dense-to-sparse pruning (gradual,
 * lottery) ochres; dynamic sparse training (SET, RigL, Top-KAST) blues; GSE and its sampler
 * variants reds and purple. Keys are variant labels (methods/index.ts variantLabel). Hues and lightness come from Paul Tol's colour-blind-safe schemes (bright, vibrant,
 * muted), and every method has its own marker shape, so none depends on colour alone. Aliases
 * share a style.
 */
/** Filled marker outlines that vega has no name for (paths in the unit square around 0). */
const PENTAGON = 'M0,-1L0.951,-0.309L0.588,0.809L-0.588,0.809L-0.951,-0.309Z';
const STAR = 'M0,-1L0.235,-0.324L0.951,-0.309L0.38,0.124L0.588,0.809L0,0.4L-0.588,0.809L-0.38,0.124L-0.951,-0.309L-0.235,-0.324Z';
const HEXAGON = 'M0.866,-0.5L0.866,0.5L0,1L-0.866,0.5L-0.866,-0.5L0,-1Z';
/** A filled "x" (the plus sign turned by 45°). */
const SALTIRE = 'M-1,-0.6L-0.6,-1L0,-0.4L0.6,-1L1,-0.6L0.4,0L1,0.6L0.6,1L0,0.4L-0.6,1L-1,0.6L-0.4,0Z';

const METHOD_STYLES: Record<string, { color: string; shape: string }> = {
  dense: { color: '#000000', shape: 'circle' },
  static: { color: '#117733', shape: 'square' },
  snip: { color: '#44AA99', shape: PENTAGON },
  grasp: { color: '#999933', shape: 'triangle-left' },
  synflow: { color: '#228833', shape: 'triangle-right' },
  gradual: { color: '#CCBB44', shape: 'cross' },
  lottery: { color: '#997700', shape: STAR },
  lth: { color: '#997700', shape: STAR },
  set: { color: '#66CCEE', shape: 'triangle-down' },
  rigl: { color: '#4477AA', shape: 'diamond' },
  topkast: { color: '#332288', shape: HEXAGON },
  'top-kast': { color: '#332288', shape: HEXAGON },
  gse: { color: '#EE6677', shape: 'triangle-up' },
  'gse(sampler=grabo)': { color: '#CC3311', shape: 'circle' },
  'gse(sampler=graest)': { color: '#AA3377', shape: SALTIRE },
};

/** Colours of the kernel benchmark's storage formats. */
const FORMAT_COLORS: Record<string, string> = { dense: '#000000', csr: '#CC3311', coo: '#4477AA', masked: '#117733' };

/** Colours left for methods the palette does not know (plugins): Tol's muted scheme, none equal to a fixed one. */
const SPARE_COLORS = ['#882255', '#DDCC77', '#88CCEE', '#CC6677', '#AA4499', '#EE7733', '#0077BB', '#009988', '#EE3377', '#BBBBBB'];
/** Marker shapes of plugins (vega shape names), by the same hash as their colour. */
const SPARE_SHAPES = ['cross', 'triangle-right', 'triangle-left', PENTAGON, STAR, HEXAGON, 'circle', 'square', 'diamond', 'triangle-up', 'triangle-down'];

/** Listing order: dense first, then baselines, the other plugins, and the reproduced method last (as papers list "ours"). */
const METHOD_ORDER = ['dense', 'static', 'snip', 'grasp', 'synflow', 'lottery', 'lth', 'gradual', 'set', 'rigl', 'topkast', 'top-kast'];
const LAST = ['gse'];

function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Colours for a set of names: fixed ones from `fixed`, the rest from the spare palette at a
 * position given by a hash of the name (probing past taken colours), so a plugin keeps its colour
 * from one report to the next as long as nothing else claims it.
 */
function colorMap(names: Iterable<string>, fixed: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  const unknown = [...new Set(names)].filter((n) => !(n in fixed)).sort();
  for (const n of new Set(names)) if (n in fixed) out.set(n, fixed[n]);
  const taken = new Set<string>();
  for (const n of unknown) {
    let i = hash(n) % SPARE_COLORS.length;
    for (let probe = 0; probe < SPARE_COLORS.length && taken.has(SPARE_COLORS[i]); probe++) i = (i + 1) % SPARE_COLORS.length;
    taken.add(SPARE_COLORS[i]);
    out.set(n, SPARE_COLORS[i]);
  }
  return out;
}

const METHOD_COLORS = Object.fromEntries(Object.entries(METHOD_STYLES).map(([m, st]) => [m, st.color]));

/** The report-wide method colours, keyed by method label ("gse (grabo)"). */
export function methodColors(labels: Iterable<string>): Map<string, string> {
  return colorMap(labels, METHOD_COLORS);
}

/** The marker shape of a method label (a plugin's from a hash of its name). */
export function methodShape(label: string): string {
  return METHOD_STYLES[label]?.shape ?? SPARE_SHAPES[hash(label) % SPARE_SHAPES.length];
}

export function formatColors(formats: Iterable<string>): Map<string, string> {
  return colorMap(formats, FORMAT_COLORS);
}

/**
 * Sort key of a variant label or series name ("gse(sampler=grabo) · csr"): known baselines in
 * paper order, then plugins, then GSE; within a method the default variant (the bare name) first,
 * then the rest of the label in natural order.
 */
export function methodRank(label: string): [number, string] {
  const method = /^[^ (]+/.exec(label)?.[0] ?? label;
  const rest = label.slice(method.length);
  const last = LAST.indexOf(method);
  if (last >= 0) return [2000 + last, rest];
  const i = METHOD_ORDER.indexOf(method);
  return [i < 0 ? 1000 : i, i < 0 ? label : rest];
}

export function compareMethods(a: string, b: string): number {
  const [ra, la] = methodRank(a);
  const [rb, lb] = methodRank(b);
  return ra - rb || compareNatural(la, lb);
}

/** Text with numbers compared by value ("γ=0.25" < "γ=0.5" < "γ=2"); '' first. */
export function compareNatural(a: string, b: string): number {
  const tokens = (s: string) => s.match(/\d+(?:\.\d+)?|\D+/g) ?? [];
  const [ta, tb] = [tokens(a), tokens(b)];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const [x, y] = [ta[i], tb[i]];
    const c = /^\d/.test(x) && /^\d/.test(y) ? Number(x) - Number(y) : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return ta.length - tb.length;
}

/** The Vega-Lite config shared by every figure: clean axes, light grid, legible sizes. */
export function vlConfig(font = FONT): Record<string, unknown> {
  return {
    font,
    background: 'white',
    padding: 12,
    view: { stroke: null },
    axis: {
      domainColor: '#333',
      tickColor: '#333',
      labelColor: '#222',
      titleColor: '#111',
      gridColor: '#ececec',
      labelFontSize: 11,
      titleFontSize: 12,
      titleFontWeight: 'normal',
      titlePadding: 8,
    },
    legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', symbolStrokeWidth: 2, symbolOpacity: 1, labelLimit: 320 },
    header: { labelFontSize: 12, titleFontSize: 12, labelFontWeight: 'bold', labelPadding: 6 },
    title: { fontSize: 14, fontWeight: 'bold', subtitleFontSize: 11, subtitleColor: '#555', anchor: 'start', offset: 10 },
    line: { strokeWidth: 2 },
    point: { size: 45, filled: true },
    rule: { strokeWidth: 1.5 },
  };
}

/** 0.9 → "90%", 0.999 → "99.9%". */
export function pctLabel(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(6))}%`;
}

/** An accuracy fraction as percent with two decimals ("98.12"). */
export function accText(fraction: number): string {
  return (fraction * 100).toFixed(2);
}

/** 26600 → "26.6k", 1.2e9 → "1.2G": compact counts for tooltips and notes. */
export function siText(x: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [v, u] of units) if (Math.abs(x) >= v) return `${Number((x / v).toPrecision(3))}${u}`;
  return `${Number(x.toPrecision(3))}`;
}
