/**
 * report.html: one self-contained file that works offline. vega, vega-lite and vega-embed are
 * inlined from their built bundles; every figure is interactive (tooltips) and followed by its
 * numbers; then the tables, what was skipped and why, and the runs' provenance.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Figure, Skipped } from './figures.js';
import type { ReportData, Run } from './load.js';
import type { Table } from './tables.js';
import { toHtml } from './tables.js';
import { vlConfig, WEB_FONT } from './style.js';

/** The browser bundles, resolved from each package's entry point (its build/ folder). */
const BUNDLES: [pkg: string, file: string][] = [
  ['vega', 'vega.min.js'],
  ['vega-lite', 'vega-lite.min.js'],
  ['vega-embed', 'vega-embed.min.js'],
];

export function bundlePaths(): string[] {
  return BUNDLES.map(([pkg, file]) => path.join(path.dirname(fileURLToPath(import.meta.resolve(pkg))), file));
}

/** Script text made safe inside <script>: no "</script" or "<!--" can end or confuse the element. */
export function scriptSafe(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const jsonForScript = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

export interface HtmlInput {
  data: ReportData;
  figures: Figure[];
  /** figure name → files written for it, relative to the report folder */
  files: Map<string, string[]>;
  skipped: Skipped[];
  tables: Table[];
  tableFiles: string[];
  generated: Date;
  version: string;
}

const MAX_NUMBER_ROWS = 400;

function numbersTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '';
  if (rows.length > MAX_NUMBER_ROWS) return `<p class="muted">${rows.length} rows: see the CSV file.</p>`;
  const cols = Object.keys(rows[0]).filter((c) => !['reference', 'lo', 'hi', 'x'].includes(c));
  const cell = (v: unknown) => esc(typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v ?? ''));
  return `<table class="numbers"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${
    rows.map((r) => `<tr>${cols.map((c) => `<td>${cell(r[c])}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function figureSection(f: Figure, files: string[]): string {
  const links = files.map((p) => `<a href="${esc(p)}">${esc(path.extname(p).slice(1).toUpperCase())}</a>`).join(' · ');
  return `<section class="figure" id="${esc(f.name)}">
<h3>${esc(f.title)}</h3>
<div class="vis" id="vis-${esc(f.name)}"></div>
<p class="muted">${links}</p>
<details><summary>Numbers plotted (${f.rows.length})</summary>${numbersTable(f.rows)}</details>
</section>`;
}

/** Distinct machine/software set-ups among the runs, with how many runs used each and when. */
function environments(runs: Run[]): string {
  const envs = new Map<string, { p: Record<string, unknown>; runs: number; first: string; last: string }>();
  for (const r of runs) {
    const p = r.config?.provenance;
    if (!p) continue;
    const { started, ...rest } = p;
    const key = JSON.stringify(rest);
    const e = envs.get(key) ?? { p: rest, runs: 0, first: started ?? '', last: started ?? '' };
    e.runs++;
    if (started && (!e.first || started < e.first)) e.first = started;
    if (started && started > e.last) e.last = started;
    envs.set(key, e);
  }
  if (envs.size === 0) return '<p class="muted">No run folder held a config.json with provenance.</p>';
  const rows = [...envs.values()].map(({ p, runs, first, last }) => {
    const versions = Object.entries((p.package_versions ?? {}) as Record<string, string | null>)
      .map(([k, v]) => `${esc(k)} ${v === null ? '<span class="muted">not installed</span>' : esc(String(v))}`).join('<br>');
    const other = Object.entries(p).filter(([k]) => !['package_versions', 'backend', 'node', 'host', 'cpus', 'memory_gb'].includes(k))
      .map(([k, v]) => `${esc(k)}: ${esc(typeof v === 'string' ? v : JSON.stringify(v))}`).join('<br>');
    return `<tr><td>${runs}</td><td>${esc(String(p.backend ?? ''))}</td><td>${esc(String(p.host ?? ''))}</td><td>${esc(String(p.cpus ?? ''))}</td>` +
      `<td>${esc(String(p.memory_gb ?? ''))}</td><td>${esc(String(p.node ?? ''))}</td><td>${versions}</td><td>${esc(first)}<br>${esc(last)}</td><td>${other}</td></tr>`;
  });
  return `<table class="numbers"><thead><tr><th>runs</th><th>backend</th><th>host</th><th>cpus</th><th>memory (GB)</th><th>node</th><th>packages</th><th>first / last start</th><th>other</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function sweepsSection(data: ReportData): string {
  return data.sweeps.map((s) => {
    const statuses: Record<string, number> = {};
    for (const r of s.runs) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const counts = Object.entries(statuses).map(([k, v]) => `${v} ${esc(k)}`).join(', ');
    const sweepConfig = s.config ? `<details><summary>sweep config</summary><pre>${esc(JSON.stringify(s.config, null, 2))}</pre></details>` : '';
    const runs = s.runs.map((r) => {
      const head = `${esc(r.run_id)} — ${esc(r.variant)}, ${esc(r.model)}, ${esc(r.dataset)}, sparsity ${r.sparsity}, width ${r.width}, seed ${r.seed}: ${esc(r.status)}`;
      return r.config ? `<details><summary>${head}</summary><pre>${esc(JSON.stringify(r.config, null, 2))}</pre></details>` : `<div>${head} <span class="muted">(no config.json)</span></div>`;
    }).join('\n');
    return `<h4>${esc(s.name)}</h4><p class="muted">${esc(s.dir)} — ${s.runs.length} runs: ${counts}</p>${sweepConfig}<details><summary>run configs</summary>${runs}</details>`;
  }).join('\n');
}

const STYLE = `
body { font-family: ${WEB_FONT}; margin: 0 auto; max-width: 1400px; padding: 16px 24px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; } .muted { color: #666; font-size: 12px; } nav a { margin-right: 12px; }
.figure { margin-bottom: 28px; } .vis { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
table.results th, table.results td { padding: 4px 10px; text-align: center; }
table.results thead tr:last-child th { border-bottom: 1px solid #333; } table.results { border-top: 2px solid #333; border-bottom: 2px solid #333; }
table.results tbody th { text-align: left; font-weight: normal; } table.results tr.dense { border-bottom: 1px solid #999; }
table.results caption { caption-side: top; text-align: left; font-size: 13px; color: #444; padding-bottom: 6px; }
td.incomplete { color: #8a5a00; } .footnotes { font-size: 12px; color: #555; }
table.numbers th, table.numbers td { border: 1px solid #ddd; padding: 2px 6px; font-size: 12px; text-align: left; vertical-align: top; }
pre { background: #f7f7f7; padding: 8px; font-size: 12px; overflow-x: auto; } details { margin: 4px 0; } summary { cursor: pointer; }
`;

/** The whole report as one HTML string. */
export function renderHtml(h: HtmlInput): string {
  const libs = bundlePaths().map((p) => `<script>/* ${esc(path.basename(p))} */\n${scriptSafe(fs.readFileSync(p, 'utf8'))}\n</script>`).join('\n');
  const webConfig = vlConfig(WEB_FONT);
  const specs = Object.fromEntries(h.figures.map((f) => [f.name, { ...f.spec, config: webConfig }]));
  const embed = `<script>
const SPECS = ${jsonForScript(specs)};
// each chart as wide as the page allows, up to twice its drawn size (the text stays in proportion)
function fit(el) {
  const svg = el.querySelector('svg.marks');
  if (!svg) return;
  const natural = Number(svg.getAttribute('width'));
  // vega-embed makes the chart's own element shrink to its content: the figure section gives the room
  svg.style.width = Math.min(el.parentElement.clientWidth, 2 * natural) + 'px';
  svg.style.height = 'auto';
}
for (const [name, spec] of Object.entries(SPECS)) {
  const el = document.getElementById('vis-' + name);
  vegaEmbed(el, spec, { renderer: 'svg', actions: { export: true, source: false, compiled: false, editor: false } })
    .then(() => { fit(el); window.addEventListener('resize', () => fit(el)); })
    .catch((e) => { el.textContent = 'Could not draw this figure: ' + e.message; });
}
</script>`;
  const skipped = h.skipped.length
    ? `<ul>${h.skipped.map((s) => `<li><b>${esc(s.name)}</b>: ${esc(s.reason)}</li>`).join('')}</ul>`
    : '<p class="muted">None.</p>';
  const tableLinks = h.tableFiles.map((p) => `<a href="${esc(p)}">${esc(path.basename(p))}</a>`).join(' · ');
  const warnings = h.data.warnings.length ? `<h2>Warnings while reading</h2><ul>${h.data.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sparsebench report</title>
<style>${STYLE}</style>
</head>
<body>
<h1>sparsebench report</h1>
<p class="muted">Generated ${esc(h.generated.toISOString())} by sparsebench ${esc(h.version)} from ${h.data.inputs.length} input(s): ${h.data.inputs.map((i) => `${esc(i.path)} (${i.kind})`).join(', ')}.</p>
<nav><a href="#figures">Figures</a><a href="#tables">Tables</a><a href="#provenance">Provenance</a></nav>
<h2 id="figures">Figures</h2>
${h.figures.map((f) => figureSection(f, h.files.get(f.name) ?? [])).join('\n')}
<h3>Not drawn</h3>
${skipped}
<h2 id="tables">Tables</h2>
${h.tables.length ? h.tables.map(toHtml).join('\n') : '<p class="muted">No runs among the inputs.</p>'}
<p class="muted">${tableLinks}</p>
<h2 id="provenance">Provenance</h2>
<h3>Environments</h3>
${environments(h.data.runs)}
<h3>Benchmark CSVs</h3>
<ul>${h.data.inputs.filter((i) => i.kind !== 'sweep').map((i) => `<li>${esc(i.path)} (${i.kind})</li>`).join('') || '<li class="muted">none</li>'}</ul>
<h3>Sweeps and run configs</h3>
${sweepsSection(h.data) || '<p class="muted">No sweeps among the inputs.</p>'}
${warnings}
${libs}
${embed}
</body>
</html>
`;
}
