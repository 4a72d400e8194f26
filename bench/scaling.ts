/**
 * Width-scaling benchmark: an MLP 784 -> n -> n -> 10 (or a paper model with width multipliers, on
 * CIFAR-shaped synthetic input) with a fixed number of active connections as the width grows, one
 * fresh process per (method, width) point so that peak memory is the point's own.
 * Each point is a real run through the CLI (same code path as training): `steps` training steps
 * with a prune-grow update every `delta` steps; step_ms and update_ms are medians.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { sweepFromConfig } from '../harness/config.js';
import { estimateRun } from '../harness/memory.js';

export interface ScalingOptions {
  /** mlp: widths are hidden widths n; any other model: widths are its width multipliers, on CIFAR-shaped synthetic input */
  model: string;
  methods: string[];
  widths: number[];
  format: 'masked' | 'csr';
  /** hidden width at which `sparsity` holds; wider models keep its active count */
  baseWidth: number;
  sparsity: number;
  steps: number;
  delta: number;
  backend: string;
  /** skip dense-memory points (dense weights, RigL's dense gradient) above this many GiB */
  maxDenseGiB: number;
  timeoutS: number;
  out?: string;
  log: (line: string) => void;
}

export interface ScalingRow {
  method: string;
  format: string;
  width: number;
  active_params: number | null;
  total_params: number | null;
  step_ms: number | null;
  update_ms: number | null;
  peak_rss_mb: number | null;
  /** the run's peak memory as estimated before it starts (harness/memory.ts), beside the measured peak */
  estimate_mb: number | null;
  status: string;
}

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/sparsebench.js');

/** Methods whose cost includes rows x cols memory (weights or gradient). */
const denseMemory = new Set(['dense', 'rigl', 'gradual']);

function totalParams(n: number): number {
  return 784 * n + n * n + n * 10;
}

function point(o: ScalingOptions, method: string, width: number): ScalingRow {
  const mlp = o.model === 'mlp';
  const base: ScalingRow = { method, format: o.format, width, active_params: null, total_params: mlp ? totalParams(width) : null, step_ms: null, update_ms: null, peak_rss_mb: null, estimate_mb: null, status: '' };
  const denseGiB = (width * width * 4) / 2 ** 30;
  const format = method === 'dense' ? 'masked' : o.format;
  if (mlp && denseMemory.has(method) && denseGiB > o.maxDenseGiB) return { ...base, format, status: `skipped: ${denseGiB.toFixed(1)} GiB dense > ${o.maxDenseGiB}` };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sparsebench-scaling-'));
  try {
    const config = {
      name: 'scaling',
      dataset: mlp
        ? { name: 'synthetic', features: 784, classes: 10, trainSamples: 128 * o.steps, testSamples: 100, seed: 0 }
        : { name: 'synthetic', shape: '32x32x3', classes: 10, trainSamples: 128 * o.steps, testSamples: 100, seed: 0 },
      model: mlp ? { name: 'mlp', hidden: [o.baseWidth, o.baseWidth], width: width / o.baseWidth } : { name: o.model, width },
      method,
      sparsity: { target: o.sparsity, holdActive: true, format, distribution: 'erdos-renyi' },
      training: { epochs: 1, batchSize: 128, evalBatchSize: 128, maxSteps: o.steps, lr: 0.01 },
      update: { delta: o.delta, end: 1 },
    };
    const file = path.join(dir, 'scaling.json');
    writeFileSync(file, JSON.stringify(config));
    const estimate_mb = Math.round(estimateRun(sweepFromConfig(config, file, false).specs[0]).bytes / 2 ** 20);
    const r = spawnSync(process.execPath, [cli, 'run', file, '--out', path.join(dir, 'out'), '--backend', o.backend], {
      encoding: 'utf8', timeout: o.timeoutS * 1000, maxBuffer: 64 << 20,
    });
    if (r.status !== 0) {
      const why = r.error ? r.error.message : (r.stderr || r.stdout).trim().split('\n').pop();
      return { ...base, format, estimate_mb, status: `failed: ${why}` };
    }
    // results.csv quotes fields that hold commas (a method's variant): parse it as CSV
    const [row] = parse(readFileSync(path.join(dir, 'out', 'results.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    const get = (k: string) => { const v = row[k]; return v === '' || v === undefined ? null : Number(v); };
    return {
      ...base, format,
      active_params: get('active_params'),
      total_params: get('total_params'),
      step_ms: get('step_ms'),
      update_ms: get('update_ms'),
      peak_rss_mb: get('peak_rss_mb'),
      estimate_mb,
      status: row.status,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Least-squares slope of log(y) against log(x). */
export function logLogSlope(xs: number[], ys: number[]): number {
  const pts = xs.map((x, i) => [Math.log(x), Math.log(ys[i])]).filter(([, y]) => Number.isFinite(y));
  if (pts.length < 2) return NaN;
  const mx = pts.reduce((s, p) => s + p[0], 0) / pts.length;
  const my = pts.reduce((s, p) => s + p[1], 0) / pts.length;
  let num = 0, den = 0;
  for (const [x, y] of pts) { num += (x - mx) * (y - my); den += (x - mx) ** 2; }
  return num / den;
}

export function benchScaling(o: ScalingOptions): ScalingRow[] {
  const rows: ScalingRow[] = [];
  if (o.out) mkdirSync(path.dirname(o.out), { recursive: true });
  const total = o.methods.length * o.widths.length;
  for (const method of o.methods) {
    for (const width of o.widths) {
      const r = point(o, method, width);
      rows.push(r);
      const f = (v: number | null) => (v === null ? '-' : v.toFixed(2));
      o.log(`[${rows.length}/${total}] ${method} (${r.format}) n=${width}: step ${f(r.step_ms)} ms, update ${f(r.update_ms)} ms, peak RSS ${f(r.peak_rss_mb)} MB (estimate ${r.estimate_mb ?? '-'} MB), active ${r.active_params ?? '-'} ${r.status === 'done' ? '' : r.status}`);
      if (o.out) writeFileSync(o.out, stringify(rows, { header: true }));
    }
  }
  o.log('');
  o.log('fitted log-log slopes over the measured widths (1 = linear, 2 = quadratic):');
  o.log('method      step_ms  update_ms  peak_rss_mb');
  for (const method of o.methods) {
    const done = rows.filter((r) => r.method === method && r.status === 'done');
    const w = done.map((r) => r.width);
    const s = (k: 'step_ms' | 'update_ms' | 'peak_rss_mb') => logLogSlope(w, done.map((r) => r[k] ?? NaN));
    o.log(`${method.padEnd(10)} ${s('step_ms').toFixed(2).padStart(8)} ${s('update_ms').toFixed(2).padStart(10)} ${s('peak_rss_mb').toFixed(2).padStart(12)}`);
  }
  return rows;
}
