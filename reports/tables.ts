/**
 * The paper's main table — rows = methods, columns = dataset × sparsity (× model, × width when
 * several) — as one model rendered to Markdown, LaTeX (booktabs), CSV and HTML, plus a long-form
 * CSV of every group. Cells are test accuracy in percent, mean ± std over seeds; the best sparse
 * mean per column is bold (complete groups only); incomplete groups carry a † and a footnote.
 */
import { stringify } from 'csv-stringify/sync';
import { flopsRatio, isDense, seriesName, uniq } from './aggregate.js';
import type { Group } from './aggregate.js';
import { accText, compareMethods, pctLabel } from './style.js';

export interface TableColumn {
  /** the column group: dataset (· model, · width when several) */
  top: string;
  /** the sparsity level ("90%"; "dense" for a group with only dense runs) */
  sub: string;
}

export interface TableCell {
  text: string;
  mean: number | null;
  std: number | null;
  n: number;
  incomplete: boolean;
  note: string;
  best: boolean;
}

export interface TableRow {
  label: string;
  dense: boolean;
  /** one per column; a dense row holds the same cell in every column of a column group */
  cells: (TableCell | null)[];
}

export interface Table {
  /** the sweep the table shows */
  sweep: string;
  caption: string;
  columns: TableColumn[];
  rows: TableRow[];
  footnotes: string[];
}

function cellOf(g: Group): TableCell {
  const a = g.accuracy;
  const failed = Object.entries(g.statuses).filter(([s]) => s !== 'done').map(([s]) => s).join('/');
  const text = a.mean === null ? failed || '—' : a.std === null ? accText(a.mean) : `${accText(a.mean)} ± ${accText(a.std)}`;
  return { text, mean: a.mean, std: a.std, n: a.n, incomplete: g.incomplete, note: g.note, best: false };
}

/** The main accuracy table of one sweep's groups; null when there are none. */
export function accuracyTable(groups: Group[]): Table | null {
  if (groups.length === 0) return null;
  const several = (f: (g: Group) => unknown) => uniq(groups.map(f)).length > 1;
  const [byModel, byWidth] = [several((g) => g.key.model), several((g) => g.key.width)];
  const topOf = (g: Group) =>
    [g.key.dataset, byModel ? g.key.model : '', byWidth ? `width ${g.key.width}×` : ''].filter(Boolean).join(' · ');
  const ordered = [...groups].sort((a, b) => a.key.dataset.localeCompare(b.key.dataset) || a.key.model.localeCompare(b.key.model) ||
    a.key.width - b.key.width || a.key.sparsity - b.key.sparsity);
  const tops = uniq(ordered.map(topOf));
  const columns: TableColumn[] = tops.flatMap((top) => {
    const levels = uniq(ordered.filter((g) => topOf(g) === top && !isDense(g)).map((g) => g.key.sparsity));
    return levels.length ? levels.map((s) => ({ top, sub: pctLabel(s) })) : [{ top, sub: 'dense' }];
  });
  const labels = uniq(groups.map((g) => seriesName(g))).sort(compareMethods);
  const rows: TableRow[] = labels.map((label) => {
    const mine = groups.filter((g) => seriesName(g) === label);
    const dense = mine.every(isDense);
    const cells = columns.map((c) => {
      const g = mine.find((g) => topOf(g) === c.top && (isDense(g) || pctLabel(g.key.sparsity) === c.sub));
      return g ? cellOf(g) : null;
    });
    return { label, dense, cells };
  });
  markBest(rows, columns.length);
  const footnotes = rows.flatMap((r) => uniq(r.cells.map((c, i) => (c?.incomplete ? `† ${r.label}, ${columnName(columns[i], r.dense)}: ${c.note}.` : ''))).filter(Boolean));
  return {
    sweep: groups[0].key.sweep,
    caption: `${groups[0].key.sweep}: test accuracy (%) at the end of training, mean ± std over seeds. Bold: best sparse method per column (complete groups only).`,
    columns,
    rows,
    footnotes,
  };
}

/** One table per sweep (a sweep is one experiment; tables never mix them). */
export function accuracyTables(groups: Group[]): { sweep: string; table: Table }[] {
  const sweeps = uniq(groups.map((g) => g.key.sweep));
  return sweeps.map((sweep) => ({ sweep, table: accuracyTable(groups.filter((g) => g.key.sweep === sweep))! }));
}

const columnName = (c: TableColumn, dense: boolean) => (dense ? c.top : `${c.top} ${c.sub}`);

function markBest(rows: TableRow[], ncols: number): void {
  for (let i = 0; i < ncols; i++) {
    const candidates = rows.filter((r) => !r.dense).map((r) => r.cells[i]).filter((c): c is TableCell => !!c && c.mean !== null && !c.incomplete);
    const best = Math.max(...candidates.map((c) => Number(accText(c.mean!))));
    for (const c of candidates) if (Number(accText(c.mean!)) === best) c.best = true;
  }
}

const cellText = (c: TableCell | null) => (c ? `${c.text}${c.incomplete ? ' †' : ''}` : '—');

export function toMarkdown(t: Table): string {
  const head = ['Method', ...t.columns.map((c) => (c.sub === 'dense' ? c.top : `${c.top} ${c.sub}`))];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? ':---' : ':---:')).join('|')}|`,
    ...t.rows.map((r) => `| ${[r.label, ...r.cells.map((c) => (c?.best ? `**${cellText(c)}**` : cellText(c)))].join(' | ')} |`),
  ];
  return [`${t.caption}`, '', ...lines, '', ...t.footnotes.map((f) => `${f}  `), ''].join('\n');
}

/** LaTeX special characters escaped; γ, ×, ·, ± as math. */
export function latexEscape(s: string): string {
  return s
    .replace(/[\\{}]/g, (c) => (c === '\\' ? '\\textbackslash{}' : `\\${c}`))
    .replace(/[&%$#_]/g, (c) => `\\${c}`)
    .replace(/~/g, '\\textasciitilde{}')
    .replace(/\^/g, '\\textasciicircum{}')
    .replace(/γ/g, '$\\gamma$')
    .replace(/×/g, '$\\times$')
    .replace(/·/g, '$\\cdot$')
    .replace(/±/g, '$\\pm$')
    .replace(/†/g, '$^\\dagger$')
    .replace(/—/g, '---');
}

/** Consecutive columns sharing a column group: [top, first index, count]. */
function spans(columns: TableColumn[]): [string, number, number][] {
  const out: [string, number, number][] = [];
  columns.forEach((c, i) => {
    const last = out[out.length - 1];
    if (last && last[0] === c.top) last[2]++;
    else out.push([c.top, i, 1]);
  });
  return out;
}

export function toLatex(t: Table): string {
  const groups = spans(t.columns);
  const tex = (c: TableCell | null) => {
    const s = latexEscape(cellText(c));
    return c?.best ? `\\textbf{${s}}` : s;
  };
  const rowTex = (r: TableRow) => {
    const cells = r.dense
      ? groups.map(([, start, n]) => (n === 1 ? tex(r.cells[start]) : `\\multicolumn{${n}}{c}{${tex(r.cells[start])}}`))
      : r.cells.map(tex);
    return `${latexEscape(r.label)} & ${cells.join(' & ')} \\\\`;
  };
  const dense = t.rows.filter((r) => r.dense);
  const sparse = t.rows.filter((r) => !r.dense);
  return [
    '% generated by `sparsebench report`; needs \\usepackage{booktabs}',
    '\\begin{table}[t]',
    '\\centering',
    `\\caption{${latexEscape(t.caption)}}`,
    `\\label{tab:${t.sweep.replace(/[^A-Za-z0-9-]/g, '-')}}`,
    `\\begin{tabular}{l${'c'.repeat(t.columns.length)}}`,
    '\\toprule',
    ` & ${groups.map(([top, , n]) => `\\multicolumn{${n}}{c}{${latexEscape(top)}}`).join(' & ')} \\\\`,
    groups.map(([, start, n]) => `\\cmidrule(lr){${start + 2}-${start + n + 1}}`).join(' '),
    `Method & ${t.columns.map((c) => latexEscape(c.sub)).join(' & ')} \\\\`,
    '\\midrule',
    ...dense.map(rowTex),
    ...(dense.length && sparse.length ? ['\\midrule'] : []),
    ...sparse.map(rowTex),
    '\\bottomrule',
    '\\end{tabular}',
    ...(t.footnotes.length ? ['\\par\\smallskip', `{\\footnotesize ${t.footnotes.map(latexEscape).join(' \\\\ ')}\\par}`] : []),
    '\\end{table}',
    '',
  ].join('\n');
}

/** CSV in the same layout: per column its mean, std, n (accuracy in %) and a note when incomplete. */
export function toCsv(t: Table): string {
  const round = (x: number | null) => (x === null ? '' : Number((x * 100).toFixed(4)));
  const head = ['method', ...t.columns.flatMap((c) => {
    const name = c.sub === 'dense' ? c.top : `${c.top} ${c.sub}`;
    return [`${name} mean`, `${name} std`, `${name} n`, `${name} note`];
  })];
  const body = t.rows.map((r) => [r.label, ...r.cells.flatMap((c) => (c ? [round(c.mean), round(c.std), c.n, c.note] : ['', '', 0, 'no runs']))]);
  return stringify([head, ...body]);
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function toHtml(t: Table): string {
  const groups = spans(t.columns);
  const td = (c: TableCell | null, colspan = 1) => {
    const span = colspan > 1 ? ` colspan="${colspan}"` : '';
    const title = c?.incomplete ? ` title="${esc(c.note)}"` : '';
    const body = esc(cellText(c));
    return `<td${span}${title}${c?.incomplete ? ' class="incomplete"' : ''}>${c?.best ? `<b>${body}</b>` : body}</td>`;
  };
  const row = (r: TableRow) => `<tr${r.dense ? ' class="dense"' : ''}><th>${esc(r.label)}</th>${
    r.dense ? groups.map(([, start, n]) => td(r.cells[start], n)).join('') : r.cells.map((c) => td(c)).join('')}</tr>`;
  return [
    '<table class="results">',
    `<caption>${esc(t.caption)}</caption>`,
    `<thead><tr><th></th>${groups.map(([top, , n]) => `<th colspan="${n}">${esc(top)}</th>`).join('')}</tr>`,
    `<tr><th>Method</th>${t.columns.map((c) => `<th>${esc(c.sub)}</th>`).join('')}</tr></thead>`,
    `<tbody>${t.rows.map(row).join('\n')}</tbody>`,
    '</table>',
    t.footnotes.length ? `<p class="footnotes">${t.footnotes.map(esc).join('<br>')}</p>` : '',
  ].join('\n');
}

/** Every group in long form: one row per method × model × dataset × sparsity × width (× variant). */
export function groupsCsv(groups: Group[]): string {
  const head = ['label', 'method', 'variant', 'format', 'model', 'dataset', 'sparsity', 'width', 'epochs',
    'n', 'expected_seeds', 'seeds', 'test_accuracy_mean', 'test_accuracy_std', 'test_accuracy_min', 'test_accuracy_max',
    'flops_ratio_mean', 'incomplete', 'note', 'run_ids'];
  const body = groups.map((g) => {
    const k = g.key, a = g.accuracy;
    return [seriesName(g), k.method, k.variant, k.format, k.model, k.dataset, k.sparsity, k.width, k.epochs ?? '',
      a.n, g.expectedSeeds.length, g.seeds.join(' '), a.mean ?? '', a.std ?? '', a.min ?? '', a.max ?? '',
      flopsRatio(g).mean ?? '', g.incomplete, g.note, g.runs.map((r) => r.run_id).join(' ')];
  });
  return stringify([head, ...body]);
}
