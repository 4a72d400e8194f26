/**
 * Reading what the harness and the benchmarks wrote: sweep folders (results.csv plus one folder
 * per run with config.json, metrics.jsonl, updates.jsonl, result.json), scaling-bench CSVs and
 * kernel-bench CSVs. The kind of each input is detected from its files and columns.
 * Bad input (a missing path, a CSV that is none of the known kinds) is a UserError naming the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { UserError } from '../core/errors.js';

export type RunStatus = 'done' | 'diverged' | 'failed' | 'running' | 'pending' | string;

/** One run: its results.csv row, typed, plus what its folder holds. */
export interface Run {
  run_id: string;
  status: RunStatus;
  sweep: string;
  method: string;
  model: string;
  dataset: string;
  format: string;
  sparsity: number;
  width: number;
  seed: number;
  /** the method's variant label, "gse(sampler=grabo)": its non-default options (results.csv "variant") */
  variant: string;
  /** every option of the method, defaults included (results.csv "method_options", JSON) */
  options: Record<string, unknown>;
  epochs: number | null;
  test_accuracy: number | null;
  best_test_accuracy: number | null;
  train_accuracy: number | null;
  train_flops: number | null;
  dense_train_flops: number | null;
  active_params: number | null;
  total_params: number | null;
  param_bytes: number | null;
  peak_rss_mb: number | null;
  wall_s: number | null;
  step_ms: number | null;
  update_ms: number | null;
  backend: string;
  /** the run's folder (may not exist) */
  dir: string;
  config: RunConfig | null;
  metrics: EpochMetrics[];
  updates: UpdateRecord[];
  /** final per-layer connectivity (result.json, else the last update's densities) */
  layers: LayerDensity[];
}

export interface RunConfig {
  run_id?: string;
  spec?: Record<string, unknown> & { name?: string; seed?: number };
  variant?: string;
  provenance?: Provenance;
}

export interface Provenance {
  package_versions?: Record<string, string>;
  backend?: string;
  node?: string;
  host?: string;
  cpus?: number;
  memory_gb?: number;
  started?: string;
  [k: string]: unknown;
}

export interface EpochMetrics {
  epoch: number;
  step?: number;
  lr?: number;
  train_loss?: number;
  train_accuracy?: number;
  test_loss?: number;
  test_accuracy?: number;
  active_params?: number;
  wall_s?: number;
  /** lottery: the training round the line belongs to */
  round?: number;
}

export interface UpdateRecord {
  step: number;
  alpha?: number;
  k?: number;
  grown?: number;
  pruned?: number;
  active?: number;
  density?: Record<string, number>;
  overlap?: number;
}

export interface LayerDensity {
  name: string;
  rows?: number;
  cols?: number;
  active?: number;
  density: number;
}

export interface Sweep {
  dir: string;
  name: string;
  runs: Run[];
  /** the sweep-level config.json, when the sweep folder has one */
  config: unknown;
}

/** A row of `sparsebench bench scaling` (or a run standing in for one). */
export interface ScalingRow {
  source: string;
  method: string;
  format: string;
  width: number;
  active_params: number | null;
  step_ms: number | null;
  update_ms: number | null;
  peak_rss_mb: number | null;
  /** 'done', or why the point has no numbers ('skipped: …', 'failed: …'); '' when the CSV has no status column */
  status: string;
}

/** A row of `sparsebench bench kernels`. */
export interface KernelRow {
  source: string;
  format: string;
  n: number;
  sparsity: number;
  batch: number;
  threads: number;
  median_ms: number;
  gflops: number | null;
}

export type InputKind = 'sweep' | 'scaling' | 'kernels';

export interface ReportData {
  sweeps: Sweep[];
  /** every run of every sweep, duplicates (same sweep and run_id) removed */
  runs: Run[];
  scaling: ScalingRow[];
  kernels: KernelRow[];
  /** what was read, for the report's provenance section */
  inputs: { path: string; kind: InputKind }[];
  /** notes about skipped or damaged files */
  warnings: string[];
}

const RESULTS_REQUIRED = ['run_id', 'status', 'method', 'model', 'dataset', 'sparsity', 'width', 'seed', 'test_accuracy'];
const SCALING_REQUIRED = ['method', 'width', 'step_ms'];
const KERNEL_REQUIRED = ['format', 'n', 'sparsity', 'median_ms'];

type CsvRow = Record<string, string>;

/** Parse a CSV with a header row; any parse failure is a UserError naming the file. */
export function readCsv(file: string): { columns: string[]; rows: CsvRow[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const records = parse(text, { bom: true, skip_empty_lines: true, trim: true }) as string[][];
    if (records.length === 0) throw new UserError(`${file}: empty CSV (no header row)`);
    const columns = records[0];
    const rows = records.slice(1).map((r) => Object.fromEntries(columns.map((c, i) => [c, r[i] ?? ''])));
    return { columns, rows };
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: cannot parse CSV: ${(e as Error).message.split('\n')[0]}`);
  }
}

function csvKind(columns: string[]): InputKind | null {
  const has = (req: string[]) => req.every((c) => columns.includes(c));
  if (has(RESULTS_REQUIRED)) return 'sweep';
  if (has(KERNEL_REQUIRED)) return 'kernels';
  if (has(SCALING_REQUIRED)) return 'scaling';
  return null;
}

/** A cell as a number: empty → null; anything else not finite is a UserError naming file and line. */
function num(row: CsvRow, col: string, where: string): number | null {
  const v = (row[col] ?? '').trim();
  if (v === '' || v.toLowerCase() === 'nan' || v.toLowerCase() === 'null') return null;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new UserError(`${where}: ${col} "${v}" is not a number`);
  return x;
}

function reqNum(row: CsvRow, col: string, where: string): number {
  const x = num(row, col, where);
  if (x === null) throw new UserError(`${where}: ${col} is empty`);
  return x;
}

const str = (row: CsvRow, col: string) => (row[col] ?? '').trim();

/** A results.csv / result.json record (all values as strings) → the typed fields of a Run. */
function runFields(row: CsvRow, where: string, sweepName: string): Omit<Run, 'dir' | 'config' | 'metrics' | 'updates' | 'layers'> {
  return {
    run_id: str(row, 'run_id'),
    status: str(row, 'status') || 'pending',
    sweep: str(row, 'sweep') || sweepName,
    method: str(row, 'method'),
    model: str(row, 'model'),
    dataset: str(row, 'dataset'),
    format: str(row, 'format'),
    sparsity: num(row, 'sparsity', where) ?? 0,
    width: num(row, 'width', where) ?? 1,
    seed: reqNum(row, 'seed', where),
    variant: str(row, 'variant') || str(row, 'method'),
    options: jsonObject(row, 'method_options', where),
    epochs: num(row, 'epochs', where),
    test_accuracy: num(row, 'test_accuracy', where),
    best_test_accuracy: num(row, 'best_test_accuracy', where),
    train_accuracy: num(row, 'train_accuracy', where),
    train_flops: num(row, 'train_flops', where),
    dense_train_flops: num(row, 'dense_train_flops', where),
    active_params: num(row, 'active_params', where),
    total_params: num(row, 'total_params', where),
    param_bytes: num(row, 'param_bytes', where),
    peak_rss_mb: num(row, 'peak_rss_mb', where),
    wall_s: num(row, 'wall_s', where),
    step_ms: num(row, 'step_ms', where),
    update_ms: num(row, 'update_ms', where),
    backend: str(row, 'backend'),
  };
}

/** A cell holding a JSON object (empty: {}); anything else is a UserError naming file and line. */
function jsonObject(row: CsvRow, col: string, where: string): Record<string, unknown> {
  const v = str(row, col);
  if (v === '') return {};
  let o: unknown;
  try { o = JSON.parse(v); } catch { o = null; }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new UserError(`${where}: ${col} is not a JSON object: ${v}`);
  return o as Record<string, unknown>;
}

function readJson(file: string, warnings: string[]): unknown {
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    warnings.push(`${file}: not valid JSON, ignored (${(e as Error).message})`);
    return null;
  }
}

/** JSON lines; a damaged line (e.g. one being appended while we read) is skipped with a warning. */
function readJsonl<T>(file: string, warnings: string[]): T[] {
  if (!fs.existsSync(file)) return [];
  const out: T[] = [];
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      warnings.push(`${file}:${i + 1}: not valid JSON, line ignored`);
    }
  });
  return out;
}

/** Final per-layer connectivity: result.json's layers, else the densities of the last update. */
function finalLayers(result: unknown, updates: UpdateRecord[]): LayerDensity[] {
  const layers = (result as { layers?: unknown } | null)?.layers;
  if (Array.isArray(layers)) {
    return layers.filter((l): l is LayerDensity => typeof l?.name === 'string' && Number.isFinite(l?.density));
  }
  const last = [...updates].reverse().find((u) => u.density && Object.keys(u.density).length > 0);
  return last ? Object.entries(last.density!).map(([name, density]) => ({ name, density })) : [];
}

function stringRecord(o: Record<string, unknown>): CsvRow {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)]));
}

/** A results row for a run that has a config but no result yet (in progress or never started). */
function rowFromConfig(config: RunConfig, runId: string): CsvRow {
  const spec = (config.spec ?? {}) as Record<string, any>;
  const { name: _name, ...options } = spec.method ?? {};
  return stringRecord({
    run_id: runId,
    status: 'running',
    sweep: spec.name,
    method: spec.method?.name,
    variant: config.variant ?? spec.method?.name,
    method_options: JSON.stringify(options),
    model: spec.model?.name,
    dataset: spec.dataset?.name,
    format: spec.sparsity?.format,
    sparsity: spec.sparsity?.target ?? 0,
    width: spec.model?.width ?? 1,
    seed: spec.seed ?? 0,
    epochs: spec.training?.epochs,
  });
}

/** A run trained in rounds (lottery) reports its last round: its curve is that round's. */
function finalRound(metrics: EpochMetrics[]): EpochMetrics[] {
  const last = Math.max(...metrics.map((m) => m.round ?? 0));
  return metrics.filter((m) => (m.round ?? 0) === last);
}

function loadRunFolder(dir: string, fields: ReturnType<typeof runFields>, warnings: string[]): Run {
  const updates = readJsonl<UpdateRecord>(path.join(dir, 'updates.jsonl'), warnings);
  return {
    ...fields,
    dir,
    config: readJson(path.join(dir, 'config.json'), warnings) as RunConfig | null,
    metrics: finalRound(readJsonl<EpochMetrics>(path.join(dir, 'metrics.jsonl'), warnings))
      .filter((m) => Number.isFinite(m.epoch))
      .sort((a, b) => a.epoch - b.epoch),
    updates,
    layers: finalLayers(readJson(path.join(dir, 'result.json'), warnings), updates),
  };
}

const isDir = (p: string) => fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
const childDirs = (dir: string) =>
  fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => path.join(dir, d.name)).sort();

/** A run folder: one that holds what a run writes. */
const isRunDir = (dir: string) => ['result.json', 'metrics.jsonl', 'config.json'].some((f) => fs.existsSync(path.join(dir, f)));

/** A sweep folder: results.csv, or run folders with metrics or results in them. */
function isSweepDir(dir: string): boolean {
  if (fs.existsSync(path.join(dir, 'results.csv'))) return true;
  return childDirs(dir).some((d) => fs.existsSync(path.join(d, 'result.json')) || fs.existsSync(path.join(d, 'metrics.jsonl')));
}

/** Load a sweep: rows from results.csv, else from each run folder's result.json (or config.json). */
function loadSweep(dir: string, warnings: string[]): Sweep {
  const name = path.basename(path.resolve(dir));
  const csv = path.join(dir, 'results.csv');
  let runs: Run[];
  if (fs.existsSync(csv)) {
    const { columns, rows } = readCsv(csv);
    const missing = RESULTS_REQUIRED.filter((c) => !columns.includes(c));
    if (missing.length) throw new UserError(`${csv}: not a results.csv (missing columns: ${missing.join(', ')})`);
    runs = rows.map((row, i) => {
      const fields = runFields(row, `${csv} line ${i + 2}`, name);
      return loadRunFolder(path.join(dir, fields.run_id), fields, warnings);
    });
  } else {
    runs = childDirs(dir).filter(isRunDir).map((runDir) => {
      const id = path.basename(runDir);
      const result = readJson(path.join(runDir, 'result.json'), warnings) as Record<string, unknown> | null;
      const config = readJson(path.join(runDir, 'config.json'), warnings) as RunConfig | null;
      // result.json holds the outcome, config.json what the run is; either may be missing
      const row = result || config ? { ...(config ? rowFromConfig(config, id) : {}), ...(result ? stringRecord({ run_id: id, ...result }) : {}) } : null;
      if (!row) return null;
      return loadRunFolder(runDir, runFields(row, path.join(runDir, result ? 'result.json' : 'config.json'), name), warnings);
    }).filter((r): r is Run => r !== null);
  }
  return { dir, name, runs, config: readJson(path.join(dir, 'config.json'), warnings) };
}

function scalingRows(file: string, rows: CsvRow[]): ScalingRow[] {
  return rows.map((row, i) => {
    const where = `${file} line ${i + 2}`;
    return {
      source: file,
      method: str(row, 'variant') || str(row, 'method'),
      format: str(row, 'format'),
      width: reqNum(row, 'width', where),
      active_params: num(row, 'active_params', where),
      step_ms: num(row, 'step_ms', where),
      update_ms: num(row, 'update_ms', where),
      peak_rss_mb: num(row, 'peak_rss_mb', where),
      status: str(row, 'status'),
    };
  });
}

function kernelRows(file: string, rows: CsvRow[]): KernelRow[] {
  return rows.map((row, i) => {
    const where = `${file} line ${i + 2}`;
    return {
      source: file,
      format: str(row, 'format'),
      n: reqNum(row, 'n', where),
      sparsity: reqNum(row, 'sparsity', where),
      batch: num(row, 'batch', where) ?? 0,
      threads: num(row, 'threads', where) ?? 1,
      median_ms: reqNum(row, 'median_ms', where),
      gflops: num(row, 'gflops', where),
    };
  });
}

/** Everything the report reads, from run folders, folders of sweeps and benchmark CSVs. */
export function loadInputs(inputs: string[]): ReportData {
  if (inputs.length === 0) throw new UserError('report: no inputs given (run folders or benchmark CSV files)');
  const data: ReportData = { sweeps: [], runs: [], scaling: [], kernels: [], inputs: [], warnings: [] };

  const addCsv = (file: string, explicit: boolean) => {
    const { columns, rows } = readCsv(file);
    const kind = csvKind(columns);
    if (kind === 'sweep') return addSweep(path.dirname(file));
    if (kind === 'scaling') data.scaling.push(...scalingRows(file, rows));
    if (kind === 'kernels') data.kernels.push(...kernelRows(file, rows));
    if (kind) return data.inputs.push({ path: file, kind });
    const msg = `${file}: not a results, scaling-bench or kernel-bench CSV (columns: ${columns.join(',')}; ` +
      `scaling needs ${SCALING_REQUIRED.join(',')}; kernels need ${KERNEL_REQUIRED.join(',')})`;
    if (explicit) throw new UserError(msg);
    data.warnings.push(`${msg}, ignored`);
  };
  const addSweep = (dir: string) => {
    if (data.sweeps.some((s) => path.resolve(s.dir) === path.resolve(dir))) return;
    data.sweeps.push(loadSweep(dir, data.warnings));
    data.inputs.push({ path: dir, kind: 'sweep' });
  };

  for (const input of inputs) {
    const stat = fs.statSync(input, { throwIfNoEntry: false });
    if (!stat) throw new UserError(`${input}: no such file or folder`);
    if (stat.isFile()) {
      addCsv(input, true);
      continue;
    }
    if (isSweepDir(input)) {
      addSweep(input);
      continue;
    }
    // a folder of sweeps and/or benchmark CSVs
    const before = data.inputs.length;
    for (const d of childDirs(input)) if (isSweepDir(d)) addSweep(d);
    for (const f of fs.readdirSync(input).filter((f) => f.toLowerCase().endsWith('.csv')).sort()) addCsv(path.join(input, f), false);
    if (data.inputs.length === before) {
      throw new UserError(`${input}: no results.csv, run folders or benchmark CSV found`);
    }
  }

  const seen = new Set<string>();
  for (const s of data.sweeps) {
    for (const r of s.runs) {
      const id = `${r.sweep}\u0000${r.run_id}`;
      if (r.run_id && seen.has(id)) continue;
      seen.add(id);
      data.runs.push(r);
    }
  }
  return data;
}

/** Where the report goes when no --out is given: `<first input>/report` (beside it for a file). */
export function defaultOutDir(inputs: string[]): string {
  const first = inputs[0] ?? '.';
  return path.join(isDir(first) ? first : path.dirname(first), 'report');
}
