/**
 * `sparsebench report <runs-dir…> [--out DIR]`: runs and benchmark CSVs → figures (SVG, PNG at 2×
 * and the plotted numbers as CSV), tables (Markdown, LaTeX, CSV) and one offline report.html.
 *
 *   out/figures/<name>.{png,svg,csv}   out/report.html
 *   out/tables/accuracy.{md,tex,csv} (accuracy-<sweep>.* when several sweeps), groups.csv
 */
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { groupRuns, withoutOption } from './aggregate.js';
import { buildFigures, notDrawn } from './figures.js';
import type { Figure, Skipped } from './figures.js';
import { renderHtml } from './html.js';
import { defaultOutDir, loadInputs } from './load.js';
import { writeFigureFiles, writeFileAtomic } from './render.js';
import { methodColors } from './style.js';
import { accuracyTables, groupsCsv, toCsv, toLatex, toMarkdown } from './tables.js';

export { defaultOutDir } from './load.js';

export interface ReportOptions {
  inputs: string[];
  /** output folder; '' means `<first input>/report` */
  out: string;
  log?: (line: string) => void;
}

export interface ReportSummary {
  /** one PNG per figure drawn (its SVG and CSV lie beside it) */
  figures: string[];
  skipped: { figure: string; reason: string }[];
  tables: string[];
  html: string;
}

function packageVersion(): string {
  try {
    const pkg = new URL('../../package.json', import.meta.url); // from dist/reports/
    return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Remove what an earlier report wrote and this one will not (a figure now skipped, another sweep's table). */
function removeStale(dir: string, ours: (file: string) => boolean): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) if (ours(f)) fs.rmSync(path.join(dir, f), { force: true });
}

const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-');
const relative = (out: string, p: string) => path.relative(out, p).split(path.sep).join('/');

export async function report(opts: ReportOptions): Promise<ReportSummary> {
  const log = opts.log ?? (() => {});
  const data = loadInputs(opts.inputs);
  const out = opts.out || defaultOutDir(opts.inputs);
  for (const w of data.warnings) log(`warning: ${w}`);
  log(`read ${data.runs.length} runs from ${data.sweeps.length} sweep(s), ${data.scaling.length} scaling-bench rows, ${data.kernels.length} kernel-bench rows`);

  const groups = groupRuns(data.runs);
  const incomplete = groups.filter((g) => g.incomplete).length;
  if (incomplete) log(`${incomplete} of ${groups.length} groups are incomplete (flagged in figures and tables)`);
  // a figure over one option draws its series under the label without that option
  const colors = methodColors([...groups.flatMap((g) => [g.label, ...Object.keys(g.options).map((k) => withoutOption(g.label, k))]), ...data.scaling.map((r) => r.method)]);

  const figures: Figure[] = [];
  const skipped: Skipped[] = [];
  const files = new Map<string, string[]>();
  const pngs: string[] = [];
  const skip = (s: Skipped) => {
    skipped.push(s);
    removeStale(path.join(out, 'figures'), (f) => f.startsWith(`${s.name}.`));
    log(`figure ${s.name}: skipped: ${s.reason}`);
  };
  for (const result of buildFigures({ data, groups, colors })) {
    if ('skipped' in result) {
      skip(result.skipped);
      continue;
    }
    const f = result.figure;
    const base = path.join(out, 'figures', f.name);
    let written: { svg: string; png: string };
    try {
      written = await writeFigureFiles(f.spec, base);
    } catch (e) {
      // one figure the inputs cannot make is listed, the rest of the report still comes
      skip(notDrawn(f.name, e));
      continue;
    }
    const { svg, png } = written;
    writeFileAtomic(`${base}.csv`, f.rows.length ? stringify(f.rows, { header: true }) : '');
    figures.push(f);
    pngs.push(png);
    files.set(f.name, [png, svg, `${base}.csv`].map((p) => relative(out, p)));
    log(`figure ${f.name}: ${png}`);
  }

  const tables: string[] = [];
  const sweepTables = accuracyTables(groups);
  const dir = path.join(out, 'tables');
  removeStale(dir, (f) => /^(accuracy(-.*)?\.(md|tex|csv)|groups\.csv)$/.test(f));
  for (const { sweep, table } of sweepTables) {
    const base = sweepTables.length === 1 ? 'accuracy' : `accuracy-${fileSafe(sweep)}`;
    for (const [ext, text] of [['md', toMarkdown(table)], ['tex', toLatex(table)], ['csv', toCsv(table)]]) {
      writeFileAtomic(path.join(dir, `${base}.${ext}`), text);
      tables.push(path.join(dir, `${base}.${ext}`));
    }
  }
  if (groups.length) {
    writeFileAtomic(path.join(dir, 'groups.csv'), groupsCsv(groups));
    tables.push(path.join(dir, 'groups.csv'));
    log(`tables: ${tables.join(', ')}`);
  }

  const html = path.join(out, 'report.html');
  writeFileAtomic(html, renderHtml({
    data, figures, files, skipped, tables: sweepTables.map((t) => t.table), tableFiles: tables.map((t) => relative(out, t)), generated: new Date(), version: packageVersion(),
  }));
  log(`report: ${html}`);
  return { figures: pngs, skipped: skipped.map((s) => ({ figure: s.name, reason: s.reason })), tables, html };
}
