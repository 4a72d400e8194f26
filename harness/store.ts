import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import type { EpochMetrics, RunSummary, UpdateRecord } from './train.js';
import { runId, type RunSpec } from './spec.js';

export type RunStatus = 'done' | 'diverged' | 'failed';

export interface RunResult extends Partial<Omit<RunSummary, 'status'>> {
  run_id: string;
  status: RunStatus;
  error?: string;
  backend: string;
  finished: string;
}

export const resultColumns = [
  'run_id', 'status', 'sweep', 'method', 'model', 'dataset', 'format', 'sparsity', 'width', 'seed', 'sampler', 'gamma',
  'epochs', 'test_accuracy', 'best_test_accuracy', 'train_accuracy', 'train_flops', 'dense_train_flops', 'active_params',
  'total_params', 'param_bytes', 'peak_rss_mb', 'wall_s', 'step_ms', 'update_ms', 'backend',
] as const;

let tmpCounter = 0;
/** Writes a file so that readers see either the old or the new content, never a part. */
export function writeFileAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.${++tmpCounter}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

function readJson<T>(file: string): T | null {
  try { return JSON.parse(readFileSync(file, 'utf8')) as T; } catch { return null; }
}

/** One run's folder: config.json, metrics.jsonl, updates.jsonl, result.json (written last). */
export class RunFolder {
  readonly id: string;
  readonly dir: string;
  private metrics: string[] = [];
  private updates: string[] = [];

  constructor(readonly out: string, readonly spec: RunSpec) {
    this.id = runId(spec);
    this.dir = path.join(out, this.id);
  }

  result(): RunResult | null {
    return readJson<RunResult>(path.join(this.dir, 'result.json'));
  }

  isDone(): boolean {
    return this.result()?.status === 'done';
  }

  start(provenance: Record<string, unknown>): void {
    mkdirSync(this.dir, { recursive: true });
    this.metrics = [];
    this.updates = [];
    writeFileAtomic(path.join(this.dir, 'metrics.jsonl'), '');
    writeJsonAtomic(path.join(this.dir, 'config.json'), { run_id: this.id, spec: this.spec, provenance });
  }

  addEpoch(m: EpochMetrics): void {
    this.metrics.push(JSON.stringify(m));
    writeFileAtomic(path.join(this.dir, 'metrics.jsonl'), this.metrics.join('\n') + '\n');
  }

  addUpdate(u: UpdateRecord): void {
    this.updates.push(JSON.stringify(u));
  }

  finish(result: RunResult): void {
    if (this.updates.length) writeFileAtomic(path.join(this.dir, 'updates.jsonl'), this.updates.join('\n') + '\n');
    writeJsonAtomic(path.join(this.dir, 'result.json'), result);
  }
}

/** The results.csv row of a finished run folder. */
function resultRow(spec: RunSpec, r: RunResult): Record<string, unknown> {
  const isGse = spec.method.name === 'gse';
  return {
    ...r,
    sweep: spec.name,
    method: spec.method.name,
    model: spec.model.name,
    dataset: spec.dataset.name,
    format: spec.sparsity.format,
    sparsity: spec.sparsity.target,
    width: spec.model.width ?? 1,
    seed: spec.seed,
    sampler: isGse ? spec.method.sampler : '',
    gamma: isGse ? spec.method.gamma : '',
  };
}

/** Rebuilds <out>/results.csv from the run folders (the folders are the source of truth). */
export function collectResults(out: string): number {
  const rows: Record<string, unknown>[] = [];
  const entries = existsSync(out) ? readdirSync(out, { withFileTypes: true }) : [];
  for (const e of entries.filter((d) => d.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const config = readJson<{ spec: RunSpec }>(path.join(out, e.name, 'config.json'));
    const result = readJson<RunResult>(path.join(out, e.name, 'result.json'));
    if (config && result) rows.push(resultRow(config.spec, result));
  }
  const csv = stringify(rows, { header: true, columns: resultColumns as unknown as string[], cast: { number: (v) => (Number.isFinite(v) ? String(v) : '') } });
  writeFileAtomic(path.join(out, 'results.csv'), csv);
  return rows.length;
}
