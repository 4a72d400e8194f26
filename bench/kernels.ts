/**
 * Kernel benchmark (the paper's supplement figure): time of a sparse (n x n) times dense (n x B)
 * multiply vs sparsity, for
 *   dense     tfjs `wasm` backend matMul (B x n) · (n x n), once per n (its time does not depend on
 *             the sparsity; its row is repeated for each sparsity so that it plots as a line);
 *             GFLOP/s = 2·n·n·B / t. Skipped where the weights would exceed `denseMaxMiB`.
 *   csr       our SpMM (models/sparse/kernels) on feature-major activations, with the matrix and
 *             activations held in the kernels' memory as a csr layer keeps them; GFLOP/s = 2·nnz·B / t.
 *   csr-copy  (only when asked) the same SpMM called with plain JS arrays, so every call copies
 *             the structure and activations in and the result out.
 * The matrix has exactly round((1 - s)·n²) nonzeros at uniformly random positions (like
 * torch.randperm in /work/shared/peers/torch_spmm.py), sorted columns within rows.
 *
 * Run it with `sparsebench bench kernels [--sizes 2048,4096] [--sparsities 0.9,0.99] [--batch 128]
 *   [--threads 2] [--repeats 20] [--out kernels.csv] [--copy] [--no-dense]` (harness/commands/bench.ts).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { stringify } from 'csv-stringify/sync';
import { Rng } from '../core/rng.js';
import * as K from '../models/sparse/kernels/index.js';

export type KernelFormat = 'dense' | 'csr' | 'csr-copy';

export interface Row {
  format: KernelFormat;
  n: number;
  sparsity: number;
  batch: number;
  threads: number;
  median_ms: number;
  gflops: number;
}

export interface BenchKernelsOptions {
  sizes: number[];
  sparsities: number[];
  batch: number;
  threads: number;
  repeats: number;
  out?: string;
  /** default ['dense', 'csr'] */
  formats?: KernelFormat[];
  /** skip dense where its n x n float32 weights exceed this (default 512 MiB: n <= 11585) */
  denseMaxMiB?: number;
  log?: (line: string) => void;
}

export const DEFAULT_SIZES = [2048, 4096, 8192];
export const DEFAULT_SPARSITIES = [0.9, 0.95, 0.98, 0.99, 0.999];
export const CSV_COLUMNS = ['format', 'n', 'sparsity', 'batch', 'threads', 'median_ms', 'gflops'] as const;

/** A random n x n CSR with exactly `nnz` nonzeros, uniform positions, sorted columns in rows. */
function randomCsr(n: number, nnz: number, rng: Rng): K.Csr {
  // Rows' counts: a uniform multinomial (each nonzero falls in a random row), capped at n.
  const counts = new Int32Array(n);
  for (let k = 0; k < nnz; k++) counts[rng.int(n)]++;
  let over = 0;
  for (let r = 0; r < n; r++) if (counts[r] > n) { over += counts[r] - n; counts[r] = n; }
  for (let r = 0; over > 0; r = (r + 1) % n) if (counts[r] < n) { counts[r]++; over--; }
  const rowPtr = new Int32Array(n + 1);
  for (let r = 0; r < n; r++) rowPtr[r + 1] = rowPtr[r] + counts[r];
  const colIdx = new Int32Array(nnz);
  const values = new Float32Array(nnz);
  const mark = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const m = counts[r], k0 = rowPtr[r];
    if (m * 4 < n) { // rejection, then sort
      let k = k0;
      while (k < k0 + m) { const c = rng.int(n); if (!mark[c]) { mark[c] = 1; colIdx[k++] = c; } }
      colIdx.subarray(k0, k0 + m).sort();
      for (let k2 = k0; k2 < k0 + m; k2++) mark[colIdx[k2]] = 0;
    } else { // selection sampling: sorted by construction
      let need = m, k = k0;
      for (let c = 0; c < n && need > 0; c++) if (rng.float() * (n - c) < need) { colIdx[k++] = c; need--; }
    }
  }
  for (let k = 0; k < nnz; k++) values[k] = rng.uniform(-1, 1);
  return { rows: n, cols: n, rowPtr, colIdx, values };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Times fn: one warm-up call, then `repeats` calls (fewer if they exceed `budgetMs`, at least 3). */
function timeIt(fn: () => void, repeats: number, budgetMs: number): number {
  fn();
  const ts: number[] = [];
  const end = performance.now() + budgetMs;
  while (ts.length < repeats && (ts.length < 3 || performance.now() < end)) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

type Tf = typeof import('@tensorflow/tfjs');

async function loadTfWasm(): Promise<Tf> {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs wasm backend did not initialise');
  await tf.ready();
  return tf;
}

function denseMs(tf: Tf, n: number, batch: number, repeats: number): number {
  const x = tf.randomNormal([batch, n], 0, 1, 'float32', 1);
  const w = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  try {
    return timeIt(() => { const y = tf.matMul(x, w); y.dataSync(); y.dispose(); }, repeats, 8000);
  } finally {
    x.dispose(); w.dispose();
  }
}

interface CsrCase { resident: K.Csr; x: Float32Array; y: Float32Array; host: K.Csr; nnz: number }

function csrCase(n: number, sparsity: number, batch: number, rng: Rng): CsrCase {
  const nnz = Math.max(1, Math.round((1 - sparsity) * n * n));
  const host = randomCsr(n, nnz, rng);
  const resident: K.Csr = {
    rows: n, cols: n, rowPtr: K.allocInt32(n + 1), colIdx: K.allocInt32(nnz), values: K.allocFloat32(nnz),
  };
  resident.rowPtr.set(host.rowPtr); resident.colIdx.set(host.colIdx); resident.values.set(host.values);
  const x = K.allocFloat32(n * batch);
  for (let i = 0; i < x.length; i++) x[i] = rng.uniform(-1, 1);
  return { resident, x, y: K.allocFloat32(n * batch), host, nnz };
}

function freeCase(c: CsrCase): void {
  for (const a of [c.resident.rowPtr, c.resident.colIdx, c.resident.values, c.x, c.y]) K.release(a);
}

function fmtRow(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i])).join('  ');
}

export async function benchKernels(opts: BenchKernelsOptions): Promise<Row[]> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const formats = opts.formats ?? ['dense', 'csr'];
  const denseMaxBytes = (opts.denseMaxMiB ?? 512) * 2 ** 20;
  const { batch, repeats } = opts;
  K.setThreads(opts.threads);
  const info = K.kernelInfo();
  log(`kernels: wasm SIMD${info.relaxedSimd ? ' + relaxed SIMD (FMA)' : ''}, ${info.threads} thread(s); batch ${batch}; ` +
    `${os.cpus()[0]?.model ?? 'cpu'} x${os.availableParallelism()}; load ${os.loadavg()[0].toFixed(2)}`);
  const rows: Row[] = [];
  const widths = [8, 6, 8, 6, 8, 10, 9, 8];
  log(fmtRow(['format', 'n', 'sparsity', 'threads', 'nnz', 'median_ms', 'GFLOP/s', 'GB/s'], widths));
  const emit = (r: Row, nnz: number, bytes: number) => {
    rows.push(r);
    log(fmtRow([r.format, r.n, r.sparsity, r.threads, nnz, r.median_ms.toFixed(3), r.gflops.toFixed(2),
      bytes > 0 ? (bytes / r.median_ms / 1e6).toFixed(1) : '-'], widths));
  };
  let tf: Tf | null = null;
  const rng = new Rng(0, 'bench-kernels');
  for (const n of opts.sizes) {
    let dense: number | null = null;
    if (formats.includes('dense')) {
      if (n * n * 4 > denseMaxBytes) {
        log(`dense n=${n}: skipped (${(n * n * 4 / 2 ** 20).toFixed(0)} MiB of weights > ${(denseMaxBytes / 2 ** 20).toFixed(0)} MiB; ` +
          `about ${(2 * n * n * batch / 12e9).toFixed(0)} s per multiply at the ~12 GFLOP/s measured at this size)`);
      } else {
        try {
          tf ??= await loadTfWasm();
          dense = denseMs(tf, n, batch, repeats);
        } catch (e) {
          log(`dense n=${n}: skipped (${(e as Error).message})`);
        }
      }
    }
    for (const s of opts.sparsities) {
      if (dense !== null) {
        emit({ format: 'dense', n, sparsity: s, batch, threads: 1, median_ms: dense, gflops: (2 * n * n * batch) / dense / 1e6 }, n * n, 0);
      }
      if (!formats.includes('csr') && !formats.includes('csr-copy')) continue;
      const c = csrCase(n, s, batch, rng);
      // bytes a pass must move at least: structure, x and y once
      const bytes = c.nnz * 8 + (n + 1) * 4 + 2 * n * batch * 4;
      const flops = 2 * c.nnz * batch;
      if (formats.includes('csr')) {
        const ms = timeIt(() => K.spmm(c.resident, c.x, batch, c.y), repeats, 4000);
        emit({ format: 'csr', n, sparsity: s, batch, threads: opts.threads, median_ms: ms, gflops: flops / ms / 1e6 }, c.nnz, bytes);
      }
      if (formats.includes('csr-copy')) {
        const xHost = c.x.slice();
        const ms = timeIt(() => K.spmm(c.host, xHost, batch), repeats, 4000);
        emit({ format: 'csr-copy', n, sparsity: s, batch, threads: opts.threads, median_ms: ms, gflops: flops / ms / 1e6 }, c.nnz, bytes);
      }
      freeCase(c);
    }
  }
  if (opts.out) {
    const csv = stringify(rows.map((r) => ({ ...r, median_ms: +r.median_ms.toFixed(4), gflops: +r.gflops.toFixed(3) })),
      { header: true, columns: [...CSV_COLUMNS] });
    mkdirSync(path.dirname(opts.out), { recursive: true });
    const tmp = `${opts.out}.${process.pid}.tmp`;
    writeFileSync(tmp, csv);
    renameSync(tmp, opts.out);
    const json = opts.out.replace(/\.csv$/i, '') + '.json';
    writeFileSync(`${json}.${process.pid}.tmp`, JSON.stringify({ kernel: info, load: os.loadavg(), rows }, null, 2) + '\n');
    renameSync(`${json}.${process.pid}.tmp`, json);
    log(`wrote ${opts.out} and ${json}`);
  }
  return rows;
}
