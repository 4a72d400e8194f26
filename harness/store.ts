import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { asDiskFull, UserError } from '../core/errors.js';
import { pidAlive, tryLock, waitLock, type Lock } from './lock.js';
import { stringify } from 'csv-stringify/sync';
import type { EpochMetrics, RunSummary, UpdateRecord } from './run-context.js';
import { variantLabel } from '../methods/index.js';
import { canonicalJson, runId, SPEC_VERSION, type RunSpec } from './spec.js';

export type RunStatus = 'done' | 'diverged' | 'failed';

export interface RunResult extends Partial<Omit<RunSummary, 'status'>> {
  run_id: string;
  status: RunStatus;
  error?: string;
  backend: string;
  finished: string;
}

export const resultColumns = [
  'run_id', 'status', 'sweep', 'method', 'variant', 'method_options', 'model', 'dataset', 'format', 'sparsity', 'width', 'seed',
  'epochs', 'test_accuracy', 'best_test_accuracy', 'train_accuracy', 'train_flops', 'dense_train_flops', 'active_params',
  'total_params', 'achieved_sparsity', 'param_bytes', 'peak_rss_mb', 'wall_s', 'step_ms', 'update_ms', 'backend',
] as const;

let tmpCounter = 0;
/** A temporary name next to `file`, unique across processes and hosts sharing the folder. */
export function tempName(file: string): string {
  return `${file}.${os.hostname()}.${process.pid}.${++tmpCounter}.${randomBytes(3).toString('hex')}.tmp`;
}

/**
 * Writes a file so that readers see either the old or the new content, never a part
 * (temp file + rename). With `durable`, the data reaches the disk before the rename.
 */
export function writeFileAtomic(file: string, content: string | Uint8Array, durable = false): void {
  const tmp = tempName(file);
  try {
    if (durable) {
      const fd = openSync(tmp, 'w');
      try {
        const buf = typeof content === 'string' ? Buffer.from(content) : content;
        for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } else writeFileSync(tmp, content);
    renameSync(tmp, file);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* never written */ }
    throw asDiskFull(e, file) ?? e;
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

export function readJson<T>(file: string): T | null {
  try { return JSON.parse(readFileSync(file, 'utf8')) as T; } catch { return null; }
}

/** A run folder's config.json: the run's spec, its variant label (methods/index.ts variantLabel), and provenance. */
export interface RunConfigFile {
  run_id: string;
  /** what the run id hashes (harness/spec.ts SPEC_VERSION); absent in folders of version 1 */
  spec_version?: number;
  spec: RunSpec;
  variant: string;
  provenance: Record<string, unknown>;
  resumes?: unknown[];
}

/** What a run folder holds, as collect and status see it. */
export interface RunFolderContents {
  id: string;
  dir: string;
  config: RunConfigFile | null;
  result: RunResult | null;
  /** why the folder cannot be read: a config.json or result.json that is unreadable or not JSON, or a result without its config */
  problem: string | null;
}

/** The sub-folders of a sweep folder, sorted (an absent folder has none). */
export function runFolderNames(out: string): string[] {
  const entries = existsSync(out) ? readdirSync(out, { withFileTypes: true }) : [];
  return entries.filter((d) => d.isDirectory()).map((d) => d.name).sort();
}

/** A run folder's config.json and result.json; a file that exists but cannot be parsed is a problem, not an absence. */
export function readRunFolder(out: string, id: string): RunFolderContents {
  const dir = path.join(out, id);
  const problems: string[] = [];
  const read = <T>(name: string): T | null => {
    const file = path.join(dir, name);
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      return null;
    }
    try {
      const v = JSON.parse(text) as T;
      if (v && typeof v === 'object') return v;
      problems.push(`${file}: not a JSON object`);
    } catch (e) {
      problems.push(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
    return null;
  };
  const config = read<RunConfigFile>('config.json');
  const result = read<RunResult>('result.json');
  if (config && !config.spec) problems.push(`${path.join(dir, 'config.json')}: no "spec" in it`);
  if (result && !config && problems.length === 0) problems.push(`${path.join(dir, 'config.json')}: missing, but the run has a result.json`);
  return { id, dir, config: config?.spec ? config : null, result, problem: problems.length ? problems.join('; ') : null };
}

/**
 * One run's folder: config.json, metrics.jsonl, updates.jsonl, result.json (written last), and
 * while the run is unfinished checkpoint.bin (its last checkpoint) and lock (its worker).
 */
export class RunFolder {
  readonly id: string;
  readonly dir: string;
  private metrics: string[] = [];
  private updates: string[] = [];

  constructor(readonly out: string, readonly spec: RunSpec) {
    this.id = runId(spec);
    this.dir = path.join(out, this.id);
  }

  get lockFile(): string { return path.join(this.dir, 'lock'); }
  get checkpointFile(): string { return path.join(this.dir, 'checkpoint.bin'); }

  result(): RunResult | null {
    return readJson<RunResult>(path.join(this.dir, 'result.json'));
  }

  isDone(): boolean {
    return this.result()?.status === 'done';
  }

  /**
   * Starts the run's files. Fresh: config.json with the provenance, empty metrics. Resumed: metrics
   * and updates so far from its checkpoint, and config.json keeps the first start's provenance
   * with this resume appended under "resumes".
   */
  start(provenance: Record<string, unknown>, resumed?: { metrics: EpochMetrics[]; updates: UpdateRecord[]; step: number }): void {
    mkdirSync(this.dir, { recursive: true });
    this.metrics = (resumed?.metrics ?? []).map((m) => JSON.stringify(m));
    this.updates = (resumed?.updates ?? []).map((u) => JSON.stringify(u));
    writeFileAtomic(path.join(this.dir, 'metrics.jsonl'), this.metrics.length ? this.metrics.join('\n') + '\n' : '');
    const configFile = path.join(this.dir, 'config.json');
    const previous = resumed ? readJson<RunConfigFile>(configFile) : null;
    const variant = variantLabel(this.spec.method);
    if (previous && previous.run_id === this.id) {
      const resume = { step: resumed!.step, epoch: resumed!.metrics.length, ...provenance };
      writeJsonAtomic(configFile, { ...previous, spec: this.spec, variant, resumes: [...(previous.resumes ?? []), resume] });
    } else {
      writeJsonAtomic(configFile, { run_id: this.id, spec_version: SPEC_VERSION, spec: this.spec, variant, provenance } satisfies RunConfigFile);
    }
  }

  addEpoch(m: EpochMetrics): void {
    this.metrics.push(JSON.stringify(m));
    writeFileAtomic(path.join(this.dir, 'metrics.jsonl'), this.metrics.join('\n') + '\n');
  }

  addUpdate(u: UpdateRecord): void {
    this.updates.push(JSON.stringify(u));
  }

  /** Writes updates.jsonl and result.json (the run's end), then drops the checkpoint. */
  finish(result: RunResult): void {
    if (this.updates.length) writeFileAtomic(path.join(this.dir, 'updates.jsonl'), this.updates.join('\n') + '\n');
    writeFileAtomic(path.join(this.dir, 'result.json'), JSON.stringify(result, null, 2) + '\n', true);
    this.dropCheckpoint();
  }

  dropCheckpoint(): void {
    try { unlinkSync(this.checkpointFile); } catch { /* none */ }
  }

  /** Removes a previous result (before a retry). */
  clearResult(): void {
    try { unlinkSync(path.join(this.dir, 'result.json')); } catch { /* none */ }
  }
}

/** The results.csv row of a finished run folder. */
function resultRow(config: RunConfigFile, r: RunResult): Record<string, unknown> {
  const { spec } = config;
  const { name: _name, ...options } = spec.method;
  return {
    ...r,
    sweep: spec.name,
    method: spec.method.name,
    // written at the run's start, so a folder of a plugin's run is collected without the plugin
    variant: config.variant,
    method_options: canonicalJson(options),
    model: spec.model.name,
    dataset: spec.dataset.name,
    format: spec.sparsity.format,
    sparsity: spec.sparsity.target,
    width: spec.model.width ?? 1,
    seed: spec.seed,
  };
}

/** What a rebuild of results.csv found: its row count, and every run folder it could not read. */
export interface Collected {
  rows: number;
  unreadable: string[];
}

/**
 * Refuses, in one line that says what to do, a sweep folder holding run folders of another run-id
 * version: their ids would not match this version's, so a sweep would train those cells again
 * and results.csv would mix both.
 */
export function checkSpecVersion(out: string): void {
  for (const id of runFolderNames(out)) {
    const c = readJson<RunConfigFile>(path.join(out, id, 'config.json'));
    const version = c ? c.spec_version ?? 1 : SPEC_VERSION;
    if (version !== SPEC_VERSION) {
      throw new UserError(`${out}: run folder ${id} is of run-id version ${version}, this sparsebench writes version ${SPEC_VERSION} (ids hash only non-default values now); move the old run folders out of ${out}, or use another --out, and run again`);
    }
  }
}

function writeResults(out: string): Collected {
  checkSpecVersion(out);
  const rows: Record<string, unknown>[] = [];
  const unreadable: string[] = [];
  for (const id of runFolderNames(out)) {
    const f = readRunFolder(out, id);
    if (f.problem) unreadable.push(f.problem);
    else if (f.config && f.result) rows.push(resultRow(f.config, f.result));
  }
  const csv = stringify(rows, { header: true, columns: resultColumns as unknown as string[], cast: { number: (v) => (Number.isFinite(v) ? String(v) : '') } });
  writeFileAtomic(path.join(out, 'results.csv'), csv);
  return { rows: rows.length, unreadable };
}

/**
 * Removes temporary files that killed writers left behind in `dir` (call only while holding the
 * lock that guards it): those of a dead process on this host, and any older than a minute. Other
 * fresh ones are left alone: another worker may be creating a lock file right now.
 */
export function sweepTemporaries(dir: string): void {
  let names: string[] = [];
  try { names = readdirSync(dir); } catch { return; }
  const old = Date.now() - 60_000;
  const host = `.${os.hostname()}.`;
  for (const n of names) {
    if (!n.endsWith('.tmp')) continue;
    const file = path.join(dir, n);
    // temporary names hold <host>.<pid> of their writer
    const at = n.lastIndexOf(host);
    const pid = at >= 0 ? parseInt(n.slice(at + host.length), 10) : NaN;
    try {
      if ((Number.isInteger(pid) && !pidAlive(pid)) || statSync(file).mtimeMs < old) unlinkSync(file);
    } catch { /* raced */ }
  }
}

const collectLock = { staleMs: 60_000, heartbeatMs: 0 };

/**
 * Rebuilds <out>/results.csv from the run folders (the folders are the source of truth), safely
 * against other processes doing the same: a request is marked in <out>/.results.dirty, and the one
 * process holding <out>/.results.lock rebuilds until no request is left, so the last rebuild
 * always sees every result written before it was requested. With `wait` false, a process that
 * finds the lock held leaves its request to the holder and returns null at once; otherwise it
 * waits for its turn and returns the rows written and the folders it could not read.
 */
export function collectResults(out: string, wait = true): Collected | null {
  if (!existsSync(out)) throw new UserError(`${out}: no such folder`);
  const dirty = path.join(out, '.results.dirty');
  const lockFile = path.join(out, '.results.lock');
  writeFileSync(dirty, '');
  let rows: Collected | null = null;
  for (;;) {
    let lock: Lock | null;
    if (wait) lock = waitLock(lockFile, collectLock, 120_000);
    else lock = tryLock(lockFile, collectLock).lock;
    if (!lock) {
      if (wait) throw new Error(`${lockFile}: held by another process for over 2 minutes`);
      return rows;
    }
    try {
      sweepTemporaries(out);
      let force = wait && rows === null;
      while (force || existsSync(dirty)) {
        force = false;
        try { unlinkSync(dirty); } catch { /* served by an earlier holder */ }
        rows = writeResults(out);
      }
    } finally {
      lock.release();
    }
    // a request that arrived between our last check and the release is ours to serve
    if (!existsSync(dirty)) return rows;
  }
}
