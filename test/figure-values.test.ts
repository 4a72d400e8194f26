/**
 * The numbers every figure plots, as the reporter writes them beside each figure
 * (figures/<name>.csv), against the runs' own numbers aggregated here, independently of
 * reports/aggregate.ts: means over seeds of done runs, error-bar and band half-widths equal to
 * the multiple of the sample std that the figure's subtitle claims, FLOPs as train / dense.
 * Inputs: the synthetic sweeps and benchmark CSVs of test/fixtures/report/synth.ts, each reported
 * on its own, read back from their raw files.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { report } from '../reports/index.js';
import { writeSynthetic } from './fixtures/report/synth.js';
import { withoutOption } from '../reports/aggregate.js';

type Row = Record<string, string>;

let tmp: string;
let synth: ReturnType<typeof writeSynthetic>;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsebench-figure-values-'));
  synth = writeSynthetic(path.join(tmp, 'in'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const readCsv = (file: string): Row[] => parse(fs.readFileSync(file, 'utf8'), { columns: true }) as Row[];

/** Reports `input` alone; returns each drawn figure's plotted rows and SVG text. */
async function figuresOf(input: string, tag: string): Promise<Map<string, { rows: Row[]; svg: string }>> {
  const out = path.join(tmp, `out-${tag}`);
  const summary = await report({ inputs: [input], out });
  return new Map(summary.figures.map((png) => {
    const base = png.replace(/\.png$/, '');
    return [path.basename(base), { rows: readCsv(`${base}.csv`), svg: fs.readFileSync(`${base}.svg`, 'utf8') }];
  }));
}

function figure(figures: Map<string, { rows: Row[]; svg: string }>, name: string) {
  const f = figures.get(name);
  assert.ok(f, `figure ${name} drawn`);
  assert.ok(f.rows.length > 0, `${name}: plotted rows`);
  return f;
}

/** Mean and sample std (n − 1; null below two values). */
function meanStd(values: number[]): { n: number; mean: number; std: number | null } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n < 2 ? null : Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return { n, mean, std };
}

/** The multiple of the std the subtitle claims for error bars or bands ("±1 std"). */
function claimedStds(svg: string, what: RegExp): number {
  const m = new RegExp(`${what.source}\\s*±(\\d+(?:\\.\\d+)?) std`).exec(svg);
  assert.ok(m, `the subtitle states the error bars (${what.source})`);
  return Number(m[1]);
}

const near = (actual: string | number, expected: number, what: string) => {
  const a = Number(actual);
  assert.ok(Math.abs(a - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: plotted ${actual}, expected ${expected}`);
};

/** mean, lo and hi of a plotted row against `scale` × the statistics of `values`, bars at ±k std. */
function checkMean(row: Row, values: number[], scale: number, k: number, what: string): void {
  assert.ok(values.length > 0, `${what}: runs behind the point`);
  const s = meanStd(values);
  near(row.mean, scale * s.mean, `${what} mean`);
  if (s.std === null) {
    assert.equal(row.lo, '', `${what}: no error bar from one seed`);
  } else {
    near(Number(row.hi) - Number(row.mean), k * scale * s.std, `${what} upper half-width`);
    near(Number(row.mean) - Number(row.lo), k * scale * s.std, `${what} lower half-width`);
  }
}

const pct = (fraction: number) => `${Number((fraction * 100).toPrecision(6))}%`;
const label = (r: Row) => r.variant;
/** done runs with an accuracy: the only ones a figure averages */
const doneRuns = (dir: string) => readCsv(path.join(dir, 'results.csv')).filter((r) => r.status === 'done' && r.test_accuracy !== '');
const panelSparsity = (panel: string) => {
  const m = /([\d.]+)% sparse/.exec(panel);
  return m ? Number(m[1]) / 100 : 0;
};

test('accuracy and FLOPs vs sparsity: means over done seeds, ±k std as the subtitle says, FLOPs as train / dense', async () => {
  const figures = await figuresOf(synth.grid, 'grid');
  const runs = doneRuns(synth.grid);
  const runsAt = (row: Row) => runs.filter((r) => label(r) === row.label && (Number(r.sparsity) === 0 ? 'dense' : pct(Number(r.sparsity))) === row.x);

  const accuracy = figure(figures, 'accuracy-vs-sparsity');
  const k = claimedStds(accuracy.svg, /error bars:/);
  assert.equal(k, 1, 'the subtitle claims ±1 std');
  for (const row of accuracy.rows) checkMean(row, runsAt(row).map((r) => Number(r.test_accuracy)), 100, k, `accuracy ${row.label} ${row.x}`);
  assert.ok(accuracy.rows.some((r) => r.x === 'dense'), 'the dense reference is plotted');
  assert.ok(accuracy.rows.every((r) => r.lo !== ''), 'every point has several seeds, so its error bar was checked');

  const flops = figure(figures, 'flops-vs-sparsity');
  const kf = claimedStds(flops.svg, /error bars:/);
  for (const row of flops.rows) {
    checkMean(row, runsAt(row).map((r) => Number(r.train_flops) / Number(r.dense_train_flops)), 1, kf, `FLOPs ${row.label} ${row.x}`);
    if (row.x !== 'dense') assert.ok(Number(row.mean) < 1, `${row.label} ${row.x}: a sparse run costs less than dense (${row.mean})`);
  }
});

test('accuracy vs epoch: per-epoch means over done seeds with a ±k std band as the subtitle says', async () => {
  const figures = await figuresOf(synth.grid, 'grid-epochs');
  const runs = doneRuns(synth.grid);
  const epochs = figure(figures, 'accuracy-vs-epoch');
  const k = claimedStds(epochs.svg, /bands:/);
  assert.equal(k, 1);
  const accuracyAt = (r: Row, epoch: number) => {
    const lines = fs.readFileSync(path.join(synth.grid, r.run_id, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    return lines.find((m) => m.epoch === epoch)?.test_accuracy as number;
  };
  for (const row of epochs.rows) {
    const sparsity = row.label === 'dense' ? 0 : panelSparsity(row.panel);
    const group = runs.filter((r) => label(r) === row.label && Number(r.sparsity) === sparsity);
    checkMean(row, group.map((r) => accuracyAt(r, Number(row.x))), 100, k, `${row.panel} ${row.label} epoch ${row.x}`);
  }
});

test('layer density: the mean final density of each layer over done seeds', async () => {
  const figures = await figuresOf(synth.grid, 'grid-layers');
  const runs = doneRuns(synth.grid);
  const layers = figure(figures, 'layer-density');
  for (const row of layers.rows) {
    const group = runs.filter((r) => label(r) === row.label && Number(r.sparsity) === panelSparsity(row.panel));
    const densities = group.map((r) => {
      const result = JSON.parse(fs.readFileSync(path.join(synth.grid, r.run_id, 'result.json'), 'utf8')) as { layers: { name: string; density: number }[] };
      return result.layers.find((l) => l.name === row.x)!.density;
    });
    assert.ok(densities.length > 0, `${row.panel} ${row.label} ${row.x}`);
    near(row.mean, meanStd(densities).mean, `${row.panel} ${row.label} ${row.x} density`);
  }
});

test('accuracy vs width and vs a method option (gamma): means over done seeds, ±k std as the subtitle says', async () => {
  const cases = [
    [synth.width, 'accuracy-vs-width', label, (r: Row) => Number(r.width)],
    [synth.gamma, 'accuracy-vs-option', (r: Row) => withoutOption(r.variant, 'gamma'), (r: Row) => Number(JSON.parse(r.method_options).gamma)],
  ] as const;
  for (const [input, name, series, x] of cases) {
    const f = figure(await figuresOf(input, name), name);
    const k = claimedStds(f.svg, /error bars:/);
    assert.equal(k, 1);
    const runs = doneRuns(input);
    for (const row of f.rows) {
      const group = runs.filter((r) => series(r) === row.label && x(r) === Number(row.x));
      assert.ok(group.length > 0, `${name} ${row.label} ${row.x}`);
      checkMean(row, group.map((r) => Number(r.test_accuracy)), 100, k, `${name} ${row.label} ${row.x}`);
    }
  }
});

test('cost vs width and kernel time: means of the benchmark rows behind each point', async () => {
  const cost = figure(await figuresOf(synth.scaling, 'scaling'), 'cost-vs-width');
  const scaling = readCsv(synth.scaling).filter((r) => r.status === 'done');
  const metric: Record<string, string> = { 'Training step': 'step_ms', 'Prune-grow update': 'update_ms', 'Peak memory': 'peak_rss_mb' };
  assert.deepEqual([...new Set(cost.rows.map((r) => r.panel))].sort(), Object.keys(metric).sort());
  for (const row of cost.rows) {
    const values = scaling.filter((r) => r.method === row.label && Number(r.width) === Number(row.x) && r[metric[row.panel]] !== '').map((r) => Number(r[metric[row.panel]]));
    assert.ok(values.length > 0, `${row.panel} ${row.label} ${row.x}`);
    near(row.mean, meanStd(values).mean, `${row.panel} ${row.label} ${row.x}`);
  }

  const kernels = figure(await figuresOf(synth.kernels, 'kernels'), 'kernel-time');
  const bench = readCsv(synth.kernels);
  for (const row of kernels.rows) {
    const values = bench.filter((r) => `n = ${r.n}` === row.panel && r.format === row.label && pct(Number(r.sparsity)) === row.x).map((r) => Number(r.median_ms));
    assert.ok(values.length > 0, `${row.panel} ${row.label} ${row.x}`);
    near(row.mean, meanStd(values).mean, `kernel time ${row.panel} ${row.label} ${row.x}`);
  }
});
