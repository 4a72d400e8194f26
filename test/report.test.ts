/**
 * The reporter: loading, aggregation over seeds, figure specs (compiled by vega-lite, rendered by
 * vega and resvg), tables, the offline HTML, and the messages for missing data and bad input.
 * Inputs: the hand-made sweep in test/fixtures/report/mini (numbers checked by hand) and the
 * synthetic sweeps and benchmark CSVs of test/fixtures/report/synth.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import { UserError } from '../core/errors.js';
import { defaultOutDir, report } from '../reports/index.js';
import { groupRuns, logLogSlope, seriesName, stats } from '../reports/aggregate.js';
import type { Group } from '../reports/aggregate.js';
import { buildFigures, FIGURES } from '../reports/figures.js';
import type { Figure, FigureInput } from '../reports/figures.js';
import { bundlePaths, scriptSafe } from '../reports/html.js';
import { loadInputs } from '../reports/load.js';
import { compileSpec, renderSvg, svgToPng } from '../reports/render.js';
import { methodColors } from '../reports/style.js';
import { accuracyTable, toCsv, toLatex, toMarkdown } from '../reports/tables.js';
import { writeSynthetic } from './fixtures/report/synth.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/report/', import.meta.url));
const MINI = path.join(FIXTURES, 'mini');
const close = (a: number | null, b: number, eps = 1e-9) => assert.ok(a !== null && Math.abs(a - b) < eps, `${a} ≉ ${b}`);

let tmp: string;
let synth: ReturnType<typeof writeSynthetic>;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsebench-report-'));
  synth = writeSynthetic(path.join(tmp, 'in'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function miniGroups(): Group[] {
  return groupRuns(loadInputs([MINI]).runs);
}
const find = (groups: Group[], label: string, sparsity: number) => {
  const g = groups.find((x) => x.label === label && x.key.sparsity === sparsity);
  assert.ok(g, `no group ${label} at ${sparsity}`);
  return g;
};
function figureInput(inputs: string[]): FigureInput {
  const data = loadInputs(inputs);
  const groups = groupRuns(data.runs);
  return { data, groups, colors: methodColors([...groups.map((g) => g.label), ...data.scaling.map((r) => r.method)]) };
}

describe('loading', () => {
  test('a sweep folder: results.csv rows, run folders, configs, metrics, final layers', () => {
    const data = loadInputs([MINI]);
    assert.equal(data.sweeps.length, 1);
    assert.equal(data.runs.length, 23);
    const dense0 = data.runs.find((r) => r.run_id === 'dense-0')!;
    assert.equal(dense0.config?.provenance?.host, 'fixture-host');
    assert.deepEqual(dense0.metrics.map((m) => m.epoch), [1, 2, 3]);
    const gse0 = data.runs.find((r) => r.run_id === 'gse98-0')!;
    assert.equal(gse0.variant, 'gse(sampler=grabo)');
    assert.deepEqual(gse0.options, { gamma: 1, overlap: false, sampler: 'grabo' });
    assert.deepEqual(gse0.layers.map((l) => l.density), [0.014, 0.06, 0.5]);
    // no result.json: the last update's densities stand in
    assert.deepEqual(data.runs.find((r) => r.run_id === 'gse98-1')!.layers.map((l) => l.density), [0.014, 0.06, 0.5]);
    assert.equal(data.runs.find((r) => r.run_id === 'static90-2')!.test_accuracy, null);
  });

  test('a folder of sweeps and benchmark CSVs is read whole; kinds come from columns', () => {
    const data = loadInputs([path.join(tmp, 'in')]);
    assert.deepEqual(data.sweeps.map((s) => s.name).sort(), ['gamma', 'grid', 'width']);
    assert.ok(data.scaling.length > 0 && data.kernels.length > 0);
    assert.deepEqual(data.inputs.map((i) => i.kind).sort(), ['kernels', 'scaling', 'sweep', 'sweep', 'sweep']);
  });

  test('bad input is a UserError naming the file', () => {
    const missing = path.join(tmp, 'nope');
    assert.throws(() => loadInputs([missing]), (e: unknown) => e instanceof UserError && e.message.includes(missing) && !e.message.includes('\n'));
    const wrong = path.join(FIXTURES, 'wrong-columns.csv');
    assert.throws(() => loadInputs([wrong]), (e: unknown) => e instanceof UserError && e.message.startsWith(wrong) && /columns/.test(e.message));
    assert.throws(() => loadInputs([]), UserError);
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    assert.throws(() => loadInputs([empty]), (e: unknown) => e instanceof UserError && e.message.includes(empty));
    const badNumber = path.join(tmp, 'bad-number');
    fs.mkdirSync(badNumber);
    fs.writeFileSync(path.join(badNumber, 'results.csv'), 'run_id,status,method,model,dataset,sparsity,width,seed,test_accuracy\nr1,done,set,mlp,mnist,ninety,1,0,0.9\n');
    assert.throws(() => loadInputs([badNumber]), (e: unknown) => e instanceof UserError && /results\.csv line 2: sparsity "ninety"/.test(e.message));
  });

  test('default output folder: <first input>/report, beside a file input', () => {
    assert.equal(defaultOutDir([MINI, 'x']), path.join(MINI, 'report'));
    assert.equal(defaultOutDir([synth.scaling]), path.join(path.dirname(synth.scaling), 'report'));
  });
});

describe('aggregation over seeds', () => {
  test('sample statistics', () => {
    const s = stats([0.98, 0.97, 0.99]);
    close(s.mean, 0.98);
    close(s.std, 0.01);
    assert.equal(s.n, 3);
    assert.equal(stats([0.5]).std, null);
    assert.equal(stats([]).mean, null);
  });

  test('mean, std and n per method × sparsity on the hand-made sweep', () => {
    const groups = miniGroups();
    assert.equal(groups.length, 8);
    const dense = find(groups, 'dense', 0);
    close(dense.accuracy.mean, 0.98);
    close(dense.accuracy.std, 0.01);
    assert.equal(dense.incomplete, false);
    const gse90 = find(groups, 'gse(sampler=grabo)', 0.9);
    close(gse90.accuracy.mean, 0.97);
    close(gse90.accuracy.std, 0.005);
    const set98 = find(groups, 'set', 0.98);
    close(set98.accuracy.mean, 0.92);
    close(set98.accuracy.std, 0);
  });

  test('incomplete groups are flagged with what is missing, and only done runs are averaged', () => {
    const groups = miniGroups();
    const static90 = find(groups, 'static', 0.9);
    assert.equal(static90.incomplete, true);
    assert.equal(static90.accuracy.n, 2);
    close(static90.accuracy.mean, 0.955);
    assert.equal(static90.note, '2 of 3 seeds done; seed 2 failed');
    const set90 = find(groups, 'set', 0.9);
    assert.equal(set90.incomplete, true);
    assert.deepEqual(set90.missingSeeds, [2]);
    assert.equal(set90.note, '2 of 3 seeds done; no run for seed 2');
    close(set90.accuracy.std, Math.SQRT2 * 0.01);
    const rigl = find(groups, 'rigl', 0.98);
    assert.equal(rigl.incomplete, true);
    close(rigl.accuracy.mean, 0.94); // the diverged run's 0.098 is not averaged in
    assert.equal(rigl.note, '2 of 3 seeds done; seed 0 diverged');
    assert.deepEqual(groups.filter((g) => g.incomplete).map((g) => seriesName(g)).sort(), ['rigl', 'set', 'static']);
  });

  test('groups never mix sweeps; a key field is named only where it varies for a method', () => {
    const { groups } = figureInput([synth.grid, synth.gamma]);
    const gridGse = groups.filter((g) => g.key.sweep === 'grid' && g.label === 'gse(sampler=grabo)');
    assert.ok(gridGse.length > 0 && gridGse.every((g) => seriesName(g) === 'gse(sampler=grabo)'));
    // every option setting is its own group (only seeds are averaged), labelled by its non-default options
    const gammaGse = groups.filter((g) => g.key.sweep === 'gamma' && g.key.method === 'gse' && g.options.sampler === 'grabo');
    assert.deepEqual(gammaGse.map((g) => seriesName(g)).sort(), ['gse(gamma=0.25,sampler=grabo)', 'gse(gamma=0.5,sampler=grabo)', 'gse(gamma=2,sampler=grabo)', 'gse(gamma=4,sampler=grabo)', 'gse(sampler=grabo)']);
    assert.ok(gammaGse.every((g) => g.seeds.length === 2 && g.expectedSeeds.length === 2));
  });

  test('log-log slope', () => {
    close(logLogSlope([1, 2, 4, 8].map((x) => ({ x, y: 3 * x ** 2 }))), 2, 1e-12);
    assert.equal(logLogSlope([{ x: 4, y: 1 }, { x: 4, y: 2 }]), null);
  });
});

describe('colours', () => {
  test('fixed per known method, deterministic and distinct for plugins', () => {
    const a = methodColors(['rigl', 'gse(sampler=grabo)', 'my-plugin', 'other-plugin']);
    const b = methodColors(['my-plugin', 'set', 'other-plugin', 'rigl']);
    assert.equal(a.get('rigl'), b.get('rigl'));
    assert.equal(a.get('my-plugin'), b.get('my-plugin'));
    assert.notEqual(a.get('my-plugin'), a.get('other-plugin'));
    const fixed = new Set([...methodColors(['dense', 'static', 'set', 'rigl', 'gradual', 'gse', 'gse(sampler=grabo)', 'gse(sampler=graest)']).values()]);
    assert.equal(fixed.size, 8);
    assert.ok(!fixed.has(a.get('my-plugin')!));
  });

  test('a method has the same colour in every figure', () => {
    const figures = buildFigures(figureInput(Object.values(synth))).flatMap((r) => ('figure' in r ? [r.figure] : []));
    const colorOf = (f: Figure, label: string) => {
      const text = JSON.stringify(f.spec);
      const m = /"domain":(\[[^\]]*\]),"range":(\[[^\]]*\])/.exec(text);
      if (!m) return undefined;
      const domain = JSON.parse(m[1]) as string[], range = JSON.parse(m[2]) as string[];
      const i = domain.findIndex((d) => d === label || d.startsWith(`${label} —`));
      return i < 0 ? undefined : range[i];
    };
    const seen = figures.map((f) => colorOf(f, 'rigl')).filter(Boolean);
    assert.ok(seen.length >= 3, 'rigl appears in several figures');
    assert.equal(new Set(seen).size, 1);
  });
});

describe('figures', () => {
  test('every builder yields a spec that vega-lite compiles and vega renders, with its axis titles', async () => {
    const results = buildFigures(figureInput(Object.values(synth)));
    assert.deepEqual(results.map((r) => ('figure' in r ? r.figure.name : r.skipped.name)), FIGURES.map((f) => f.name));
    const expectTitles: Record<string, string[]> = {
      'accuracy-vs-sparsity': ['Sparsity', 'Test accuracy (%)'],
      'accuracy-vs-width': ['Width multiplier (log)'],
      'cost-vs-width': ['Training step (ms, log)', 'Prune-grow update (ms, log)', 'Peak memory (MB, log)', 'slope'],
      'accuracy-vs-epoch': ['Epoch'],
      'layer-density': ['Density (log)', 'Layer'],
      'flops-vs-sparsity': ['Training FLOPs / dense (log)'],
      'accuracy-vs-option': ['gamma (log)'],
      'kernel-time': ['Median time (ms, log)', 'Format'],
    };
    for (const r of results) {
      assert.ok('figure' in r, `figure skipped: ${'skipped' in r ? r.skipped.reason : ''}`);
      const warnings: string[] = [];
      const vg = compileSpec(r.figure.spec, warnings);
      assert.deepEqual(warnings, [], `${r.figure.name}: vega-lite warnings`);
      assert.ok(vega.parse(vg));
      const svg = await renderSvg(r.figure.spec);
      assert.ok(svg.startsWith('<svg'), r.figure.name);
      assert.match(svg, /font-family="DejaVu Sans"/);
      for (const t of expectTitles[r.figure.name]) assert.ok(svg.includes(t), `${r.figure.name}: SVG lacks "${t}"`);
      assert.ok(r.figure.rows.length > 0);
    }
  });

  test('layer densities: named bars for small models, a layer-index line plot for deep ones', async () => {
    const layerFigure = (depth: number) => {
      const data = loadInputs([MINI]);
      for (const r of data.runs) if (r.layers.length) r.layers = Array.from({ length: depth }, (_, i) => ({ name: `block${i}.conv`, density: 0.01 * (1 + (i % 5)) }));
      const groups = groupRuns(data.runs);
      const r = buildFigures({ data, groups, colors: methodColors(groups.map((g) => g.label)) }).find((x) => 'figure' in x && x.figure.name === 'layer-density');
      assert.ok(r && 'figure' in r);
      return r.figure;
    };
    const small = layerFigure(4);
    assert.match(JSON.stringify(small.spec), /"type":"bar"/);
    assert.ok((await renderSvg(small.spec)).includes('block3.conv'));
    const deep = layerFigure(40);
    assert.doesNotMatch(JSON.stringify(deep.spec), /"type":"bar"/);
    assert.ok((await renderSvg(deep.spec)).includes('Layer index (input → output)'));
  });

  test('PNG at 2× with text from the packaged font', async () => {
    const fig = buildFigures(figureInput([MINI])).find((r) => 'figure' in r && r.figure.name === 'accuracy-vs-sparsity');
    assert.ok(fig && 'figure' in fig);
    const svg = await renderSvg(fig.figure.spec);
    const png = svgToPng(svg);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const svgWidth = Number(/width="(\d+)"/.exec(svg)![1]);
    assert.equal(png.readUInt32BE(16), svgWidth * 2);
    assert.ok(png.length > 20_000, `PNG only ${png.length} bytes`);
  });

  test('incomplete groups are marked in the plotted rows and the subtitle', () => {
    const fig = buildFigures(figureInput([MINI])).find((r) => 'figure' in r && r.figure.name === 'accuracy-vs-sparsity');
    assert.ok(fig && 'figure' in fig);
    const flagged = fig.figure.rows.filter((r) => r.incomplete).map((r) => `${r.label} ${r.x}`).sort();
    assert.deepEqual(flagged, ['rigl 98%', 'set 90%', 'static 90%']);
    assert.match(JSON.stringify(fig.figure.spec.title), /Open markers: incomplete groups/);
  });

  test('missing data gives a one-line reason instead of a figure', () => {
    const results = buildFigures(figureInput([MINI]));
    const reasons = Object.fromEntries(results.flatMap((r) => ('skipped' in r ? [[r.skipped.name, r.skipped.reason]] : [])));
    assert.deepEqual(Object.keys(reasons).sort(), ['accuracy-vs-option', 'accuracy-vs-width', 'cost-vs-width', 'kernel-time']);
    assert.match(reasons['accuracy-vs-width'], /two or more width multipliers \(found widths: 1\)/);
    assert.match(reasons['accuracy-vs-option'], /no runs vary a numeric method option/);
    assert.match(reasons['kernel-time'], /no kernel-bench CSV/);
    assert.match(reasons['cost-vs-width'], /no scaling-bench CSV/);
    for (const r of Object.values(reasons)) assert.ok(!r.includes('\n'));

    // one sparsity level and no metrics: nothing to draw along sparsity or epochs
    const one = path.join(tmp, 'one-level');
    fs.mkdirSync(one);
    const csv = fs.readFileSync(path.join(MINI, 'results.csv'), 'utf8').split('\n').filter((l, i) => i === 0 || l.includes(',0.9,'));
    fs.writeFileSync(path.join(one, 'results.csv'), csv.join('\n'));
    const skipped = buildFigures(figureInput([one])).flatMap((r) => ('skipped' in r ? [r.skipped] : []));
    const names = skipped.map((s) => s.name);
    for (const n of ['accuracy-vs-sparsity', 'flops-vs-sparsity', 'accuracy-vs-epoch', 'layer-density']) assert.ok(names.includes(n), n);
    assert.match(skipped.find((s) => s.name === 'accuracy-vs-sparsity')!.reason, /two or more sparsity levels .*found: 90%/);
  });
});

describe('tables', () => {
  test('paper layout: rows = methods, columns = dataset × sparsity; best complete mean in bold; † for incomplete', () => {
    const t = accuracyTable(miniGroups())!;
    assert.deepEqual(t.columns.map((c) => `${c.top} ${c.sub}`), ['mnist 90%', 'mnist 98%']);
    assert.deepEqual(t.rows.map((r) => r.label), ['dense', 'static', 'set', 'rigl', 'gse(sampler=grabo)']);
    const md = toMarkdown(t);
    assert.match(md, /\| dense \| 98\.00 ± 1\.00 \| 98\.00 ± 1\.00 \|/);
    assert.match(md, /\| gse\(sampler=grabo\) \| \*\*97\.00 ± 0\.50\*\* \| \*\*94\.00 ± 1\.00\*\* \|/);
    assert.match(md, /\| rigl \| — \| 94\.00 ± 0\.71 † \|/); // as high as gse, but incomplete: not bold
    assert.ok(md.includes('† static, mnist 90%: 2 of 3 seeds done; seed 2 failed.'));
    const tex = toLatex(t);
    for (const s of ['\\toprule', '\\midrule', '\\bottomrule', '\\cmidrule(lr){2-3}', '\\multicolumn{2}{c}{98.00 $\\pm$ 1.00}', '\\textbf{94.00 $\\pm$ 1.00}', '90\\%', '$^\\dagger$']) {
      assert.ok(tex.includes(s), `LaTeX lacks ${s}`);
    }
    const csv = toCsv(t).trim().split('\n');
    assert.equal(csv[0], 'method,mnist 90% mean,mnist 90% std,mnist 90% n,mnist 90% note,mnist 98% mean,mnist 98% std,mnist 98% n,mnist 98% note');
    assert.match(csv[5], /^gse\(sampler=grabo\),97,0\.5,3,,94,1,3,$/);
  });
});

describe('report()', () => {
  test('writes figures (SVG, PNG, CSV), tables and a self-contained HTML; logs skipped figures', async () => {
    const out = path.join(tmp, 'out');
    const lines: string[] = [];
    const summary = await report({ inputs: Object.values(synth), out, log: (l) => lines.push(l) });
    assert.equal(summary.figures.length, FIGURES.length);
    assert.deepEqual(summary.skipped, []);
    for (const png of summary.figures) {
      const buf = fs.readFileSync(png);
      assert.equal(buf.toString('latin1', 1, 4), 'PNG');
      assert.ok(buf.length > 20_000, `${png}: ${buf.length} bytes`);
      assert.ok(fs.statSync(png.replace(/\.png$/, '.svg')).size > 5_000);
      assert.ok(fs.readFileSync(png.replace(/\.png$/, '.csv'), 'utf8').split('\n').length > 2);
    }
    assert.deepEqual(summary.tables.map((t) => path.basename(t)).sort(), [
      'accuracy-gamma.csv', 'accuracy-gamma.md', 'accuracy-gamma.tex', 'accuracy-grid.csv', 'accuracy-grid.md', 'accuracy-grid.tex',
      'accuracy-width.csv', 'accuracy-width.md', 'accuracy-width.tex', 'groups.csv']);
    const html = fs.readFileSync(summary.html, 'utf8');
    assert.doesNotMatch(html, /<script[^>]*\bsrc\s*=/i);
    assert.doesNotMatch(html, /<link[^>]*\bhref\s*=\s*["']?https?:/i);
    for (const lib of bundlePaths()) assert.ok(html.includes(scriptSafe(fs.readFileSync(lib, 'utf8')).slice(0, 2000)), `${lib} not inlined`);
    assert.ok(html.includes('vegaEmbed('));
    assert.ok(html.includes('<table class="results">'));
    assert.ok(html.includes('lab-box') && html.includes('@tensorflow/tfjs'), 'provenance: host and package versions');
    assert.ok(lines.some((l) => l.startsWith('figure accuracy-vs-sparsity: ')));
  });

  test('a lone scaling-bench CSV gives the cost figure and the HTML, and says why the rest is missing', async () => {
    const out = path.join(tmp, 'out-scaling');
    const summary = await report({ inputs: [synth.scaling], out });
    assert.deepEqual(summary.figures.map((f) => path.basename(f)), ['cost-vs-width.png']);
    assert.equal(summary.skipped.filter((s) => s.reason === 'no runs among the inputs').length, 6);
    assert.deepEqual(summary.tables, []);
    assert.ok(fs.readFileSync(summary.html, 'utf8').includes('no runs among the inputs'));
  });

  test('a report written over an earlier one leaves no stale figures or tables', async () => {
    const out = path.join(tmp, 'out-again');
    await report({ inputs: [MINI, synth.kernels], out });
    assert.ok(fs.existsSync(path.join(out, 'figures', 'kernel-time.png')));
    await report({ inputs: [MINI], out });
    const files = fs.readdirSync(path.join(out, 'figures'));
    assert.ok(!files.some((f) => f.startsWith('kernel-time.')));
    assert.deepEqual(fs.readdirSync(path.join(out, 'tables')).sort(), ['accuracy.csv', 'accuracy.md', 'accuracy.tex', 'groups.csv']);
  });

  test('figures without data are skipped and logged; default output folder', async () => {
    const copy = path.join(tmp, 'mini-copy');
    fs.cpSync(MINI, copy, { recursive: true });
    const lines: string[] = [];
    const summary = await report({ inputs: [copy], out: '', log: (l) => lines.push(l) });
    assert.equal(summary.html, path.join(copy, 'report', 'report.html'));
    assert.ok(summary.skipped.some((s) => s.figure === 'kernel-time' && /kernel-bench/.test(s.reason)));
    assert.ok(lines.some((l) => /^figure kernel-time: skipped: /.test(l)));
    assert.deepEqual(summary.tables.map((t) => path.basename(t)), ['accuracy.md', 'accuracy.tex', 'accuracy.csv', 'groups.csv']);
  });
});

describe('degenerate inputs: the report is written, a figure it cannot draw is listed with the reason', () => {
  interface Plan { method: string; sparsity: number; seed: number; status?: string; acc?: number; layers?: number[]; flops?: number }
  /** A sweep folder in the harness's format: results.csv plus result.json (final layers) per run. */
  const writeSweep = (name: string, plans: Plan[]): string => {
    const dir = path.join(tmp, 'degenerate', name);
    const header = 'run_id,status,sweep,method,model,dataset,format,sparsity,width,seed,test_accuracy,train_flops,dense_train_flops';
    const lines = plans.map((p, i) => {
      const id = `${name}-${i}`;
      const status = p.status ?? 'done';
      const acc = status === 'done' ? (p.acc ?? 0.9 - p.sparsity / 10 + p.seed / 1000) : '';
      fs.mkdirSync(path.join(dir, id), { recursive: true });
      const layers = (p.layers ?? []).map((density, l) => ({ name: `fc${l + 1}`, density }));
      fs.writeFileSync(path.join(dir, id, 'result.json'), JSON.stringify({ run_id: id, status, test_accuracy: acc, layers }));
      fs.writeFileSync(path.join(dir, id, 'metrics.jsonl'), [1, 2].map((epoch) => JSON.stringify({ epoch, test_accuracy: status === 'done' ? Number(acc) - 0.01 * (2 - epoch) : null })).join('\n') + '\n');
      return [id, status, name, p.method, 'mlp', 'mnist', 'masked', p.sparsity, 1, p.seed, acc, (p.flops ?? (p.sparsity ? 1 - p.sparsity : 1)) * 1e9, 1e9].join(',');
    });
    fs.writeFileSync(path.join(dir, 'results.csv'), [header, ...lines].join('\n') + '\n');
    return dir;
  };
  const figureOf = (inputs: string[], name: string) => {
    const r = buildFigures(figureInput(inputs)).find((x) => ('figure' in x ? x.figure.name : x.skipped.name) === name)!;
    return r;
  };

  test('a layer pruned to zero connections and a layer at density 1', async () => {
    const dir = writeSweep('pruned', [
      { method: 'dense', sparsity: 0, seed: 0 },
      { method: 'gradual', sparsity: 0.9, seed: 0, layers: [0.05, 0.3, 1] },
      { method: 'gradual', sparsity: 0.98, seed: 0, layers: [0, 0.1, 0.6] },
      { method: 'static', sparsity: 0.9, seed: 0, layers: [0.08, 0.2, 1] },
      { method: 'static', sparsity: 0.98, seed: 0, layers: [0.015, 0.04, 0.4] },
    ]);
    const summary = await report({ inputs: [dir], out: path.join(dir, 'report') });
    assert.ok(summary.figures.some((f) => f.endsWith('layer-density.png')), JSON.stringify(summary.skipped));
    const fig = figureOf([dir], 'layer-density');
    assert.ok('figure' in fig);
    assert.ok(fig.figure.rows.every((r) => Number(r.mean) > 0), 'no density 0 on the log axis');
    assert.match(JSON.stringify(fig.figure.spec.title), /Pruned away \(no connections left, not drawn\): gradual at 98% fc1/);
    // bars rise from well below the smallest density (0.015), so a layer at density 1 is the
    // tallest bar, not an empty one, and the smallest bar spans at least a factor 2 of the axis
    const base = /"y2":\{"datum":([0-9.e-]+)\}/.exec(JSON.stringify(fig.figure.spec));
    assert.ok(base && Number(base[1]) <= 0.015 / 2, `bar base ${base?.[1]}`);
  });

  test('one run, one seed, all diverged: no crash, every figure drawn or listed with a reason', async () => {
    const one = writeSweep('one', [{ method: 'static', sparsity: 0.9, seed: 0, layers: [0.1, 0.3, 1] }]);
    const diverged = writeSweep('diverged', [0.9, 0.98].flatMap((sparsity) => [0, 1].map((seed) => ({ method: 'rigl', sparsity, seed, status: 'diverged' }))));
    for (const dir of [one, diverged]) {
      const out = path.join(dir, 'report');
      const summary = await report({ inputs: [dir], out });
      assert.equal(summary.figures.length + summary.skipped.length, FIGURES.length);
      for (const s of summary.skipped) assert.ok(s.reason.length > 10 && !s.reason.includes('\n'), `${s.figure}: ${s.reason}`);
      const html = fs.readFileSync(summary.html, 'utf8');
      for (const s of summary.skipped) assert.ok(html.includes(`<b>${s.figure}</b>`), `${s.figure} listed under Not drawn`);
    }
  });

  test('subtitles state n; error bars only where n >= 2', () => {
    const plans = (seeds: number[]) => ['static', 'set'].flatMap((method, m) => [0.9, 0.98].flatMap((sparsity) => seeds.map((seed) => ({ method, sparsity, seed, acc: 0.9 - sparsity / 10 - m / 50 + seed / 500 }))));
    const single = figureOf([writeSweep('single', plans([0]))], 'accuracy-vs-sparsity');
    assert.ok('figure' in single);
    const singleTitle = JSON.stringify(single.figure.spec.title);
    assert.match(singleTitle, /n = 1 seed per point: no error bars/);
    assert.doesNotMatch(singleTitle, /±1 std/);
    assert.ok(single.figure.rows.every((r) => r.lo === null));
    const three = figureOf([writeSweep('three', plans([0, 1, 2]))], 'accuracy-vs-sparsity');
    assert.ok('figure' in three);
    assert.match(JSON.stringify(three.figure.spec.title), /n = 3 seeds per point; error bars: ±1 std over seeds/);
    assert.ok(three.figure.rows.every((r) => r.lo !== null && r.hi !== null && Number(r.hi) > Number(r.lo)));
  });

  test('series that coincide are named, and every method has its own marker and a colour-blind-safe colour', () => {
    const dir = writeSweep('coincide', ['dense', 'static', 'set', 'rigl', 'gse', 'gradual'].flatMap((method) => (method === 'dense' ? [0] : [0.9, 0.98]).map((sparsity) => ({
      method, sparsity, seed: 0, flops: method === 'rigl' ? 1.5 * (1 - sparsity) : method === 'gradual' ? 0.5 : sparsity ? 1 - sparsity : 1,
    }))));
    const flops = figureOf([dir], 'flops-vs-sparsity');
    assert.ok('figure' in flops);
    assert.match(JSON.stringify(flops.figure.spec.title), /Coinciding \(markers tell them apart\): static, set, gse/);
    const text = JSON.stringify(flops.figure.spec);
    const shape = /"shape":\{"field":"label","type":"nominal","title":"Method","scale":\{"domain":(\[[^\]]*\]),"range":(\[[^\]]*\])/.exec(text);
    assert.ok(shape, 'markers encode the method');
    const shapes = JSON.parse(shape[2]) as string[];
    assert.equal(new Set(shapes).size, shapes.length, `distinct markers: ${shape[2]}`);
    const colors = methodColors(['dense', 'static', 'set', 'rigl', 'gse', 'gradual', 'gse(sampler=grabo)', 'gse(sampler=graest)', 'snip', 'grasp', 'synflow', 'lottery', 'topkast']);
    const tol = new Set(['#000000', '#117733', '#44AA99', '#999933', '#228833', '#CCBB44', '#997700', '#66CCEE', '#4477AA', '#332288', '#CC3311', '#EE6677', '#AA3377']);
    for (const [m, c] of colors) assert.ok(tol.has(c), `${m}: ${c} is not from the colour-blind-safe schemes`);
  });
});
