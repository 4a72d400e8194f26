import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { checkpointSummary } from '../checkpoint.js';
import { loadSweepWithPlugins } from '../plugins.js';
import { UserError } from '../../core/errors.js';
import { readLock, staleReason } from '../lock.js';
import { variantLabel } from '../../methods/index.js';
import { runId, type RunSpec } from '../spec.js';
import { readRunFolder, runFolderNames } from '../store.js';
import { log, defineCommand, pluginOption } from './common.js';

export type FolderStatus = 'done' | 'running' | 'failed' | 'diverged' | 'pending' | 'unreadable';

export interface StatusRow {
  id: string;
  status: FolderStatus;
  spec: RunSpec | null;
  /** the method's variant label (methods/index.ts variantLabel) */
  variant: string;
  epochs: string;
  test_accuracy: string;
  note: string;
}

function metricsCount(dir: string): number {
  try { return readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).length; } catch { return 0; }
}

function epochsOf(spec: RunSpec | null): number | '?' {
  if (!spec) return '?';
  return spec.smoke ? Math.min(2, spec.training.epochs) : spec.training.epochs;
}

/** The status of every run folder in `out` (and, given the grid, of every grid run without one). */
export function sweepStatus(out: string, grid: RunSpec[] | null, staleMs: number): StatusRow[] {
  const rows: StatusRow[] = [];
  const inGrid = new Map((grid ?? []).map((s) => [runId(s), s]));
  const seen = new Set<string>();
  for (const id of runFolderNames(out)) {
    const { dir, config, result, problem } = readRunFolder(out, id);
    const lock = readLock(path.join(dir, 'lock'));
    const isRunFolder = ['config.json', 'result.json', 'metrics.jsonl', 'checkpoint.bin', 'lock'].some((f) => existsSync(path.join(dir, f)));
    if (!isRunFolder) continue;
    seen.add(id);
    const spec = config?.spec ?? inGrid.get(id) ?? null;
    const total = epochsOf(spec);
    let status: FolderStatus;
    let note = '';
    if (problem) {
      status = 'unreadable';
      note = problem;
    } else if (result) {
      status = result.status;
      if (result.status === 'failed') note = result.error ?? '';
      if (result.status === 'diverged') note = `loss not finite at step ${result.diverged_step}`;
    } else if (lock && !staleReason(lock, staleMs)) {
      status = 'running';
      note = lock.info ? `${lock.info.host} pid ${lock.info.pid} since ${lock.info.started}` : 'locked';
    } else {
      status = 'pending';
      const c = checkpointSummary(path.join(dir, 'checkpoint.bin'));
      note = c ? `resumable from epoch ${c.epoch}, step ${c.step}` : 'started, no checkpoint yet';
      if (lock) note += ` (stale lock: ${staleReason(lock, staleMs)})`;
    }
    if (grid && !inGrid.has(id)) note = `${note ? note + '; ' : ''}not in the config's grid`;
    const acc = result?.test_accuracy;
    rows.push({
      id, status, spec, note,
      variant: config?.variant ?? (spec ? variantLabel(spec.method) : '?'),
      epochs: `${result?.epochs ?? metricsCount(dir)}/${total}`,
      test_accuracy: typeof acc === 'number' && Number.isFinite(acc) ? acc.toFixed(4) : '',
    });
  }
  for (const [id, spec] of inGrid) {
    if (!seen.has(id)) rows.push({ id, status: 'pending', spec, variant: variantLabel(spec.method), epochs: `0/${epochsOf(spec)}`, test_accuracy: '', note: 'not started' });
  }
  return rows;
}

const order: FolderStatus[] = ['done', 'running', 'failed', 'diverged', 'pending', 'unreadable'];

export function statusText(out: string, rows: StatusRow[], gridNote: string): string {
  const counts = Object.fromEntries(order.map((s) => [s, rows.filter((r) => r.status === s).length])) as Record<FolderStatus, number>;
  const lines = [`${out}: ${rows.length} runs${gridNote}: ${order.map((s) => `${counts[s]} ${s}`).join(', ')}`];
  if (rows.length === 0) return lines[0];
  const table = [['run', 'status', 'method', 'sparsity', 'width', 'seed', 'epochs', 'test_acc', 'note']];
  const sorted = [...rows].sort((a, b) => order.indexOf(a.status) - order.indexOf(b.status) || a.id.localeCompare(b.id));
  for (const r of sorted) {
    const s = r.spec;
    table.push([r.id, r.status, r.variant, s ? String(s.sparsity.target) : '', s ? String(s.model.width ?? 1) : '', s ? String(s.seed) : '', r.epochs, r.test_accuracy, r.note]);
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  lines.push('');
  for (const row of table) lines.push(row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ').trimEnd());
  return lines.join('\n');
}

function folderSpecs(out: string): RunSpec[] {
  return runFolderNames(out).map((id) => readRunFolder(out, id).config?.spec).filter((s): s is RunSpec => !!s);
}

function builder(y: Argv) {
  return y
    .positional('out', { type: 'string', demandOption: true, describe: 'a sweep output folder' })
    .option('config', { type: 'string', describe: 'the sweep config: grid runs without a folder count as pending' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'overrides, as given to run' })
    .option('smoke', { type: 'boolean', default: false, describe: 'the config was run with --smoke (default: when every run folder is a smoke run)' })
    .option('lock-timeout', { type: 'number', default: 300, describe: 'seconds without heartbeat after which a lock counts as stale' })
    .options(pluginOption)
    .example('$0 status runs/quickstart', 'counts and a table of the run folders')
    .example('$0 status runs/quickstart --config configs/quickstart.json', 'also the grid runs not started yet');
}

export const statusCommand = defineCommand({
  command: 'status <out>',
  describe: 'done / running / failed / diverged / pending runs of a sweep folder',
  builder,
  handler: async (a) => {
    if (!existsSync(a.out)) {
      // a folder that is not there is a typo far more often than a sweep not started yet
      const writes = a.config ? `; ${a.config} writes to ${path.join('runs', (await loadSweepWithPlugins(a.config, { sets: a.set, plugin: a.plugin })).name)} unless run with --out` : '';
      throw new UserError(`${a.out}: no such folder${writes}`);
    }
    // a smoke sweep's folder: its runs have smoke ids, so the grid must be expanded with --smoke
    const specs = folderSpecs(a.out);
    const smoke = a.smoke || (specs.some((s) => s.smoke) && !specs.some((s) => !s.smoke));
    const grid = a.config ? (await loadSweepWithPlugins(a.config, { sets: a.set, smoke, plugin: a.plugin })).specs : null;
    const rows = sweepStatus(a.out, grid, a['lock-timeout'] * 1000);
    log(statusText(a.out, rows, grid ? ` (${grid.length} in ${a.config})` : ' (folders; pass --config to count runs not started)'));
    const unreadable = rows.filter((r) => r.status === 'unreadable');
    for (const r of unreadable) process.stderr.write(`sparsebench: ${r.note}\n`);
    if (unreadable.length) process.exitCode = 1;
  },
});
