/**
 * Sparse kernels for the always-sparse `csr` format: SpMM, transposed SpMM, SDDMM and a dense
 * transpose, in WebAssembly with SIMD (source: ./assembly/kernels.ts, built by ./build.mjs into
 * ./build/), run on up to `setThreads(n)` threads that share one WebAssembly.Memory.
 *
 * The API is synchronous (it is called from inside tfjs custom-gradient functions): the calling
 * thread runs its share of the work and waits for the worker threads with Atomics.wait, which Node
 * allows on the main thread. Workers are started lazily, on the first call large enough to split,
 * and never keep the process alive.
 *
 * Activations are FEATURE-MAJOR: a layer input for a batch of B is passed as its transpose, an
 * (n x B) row-major Float32Array, so that one nonzero multiplies B contiguous floats.
 *
 * Data movement: arguments are copied into the kernels' memory (into grow-only scratch buffers)
 * and results copied out, unless they already live there. Arrays obtained from `allocFloat32` /
 * `allocInt32` are views of the kernels' memory: passing them (as inputs or as `out`) costs no
 * copy, which is what a layer that calls the kernels every step should do with its structure and
 * its activations. An `out` must not overlap any input.
 */
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

export interface Csr { rows: number; cols: number; rowPtr: Int32Array; colIdx: Int32Array; values: Float32Array }

interface KernelExports {
  spmm(rowPtr: number, colIdx: number, vals: number, x: number, y: number, batch: number, r0: number, r1: number, cols: number, panel: number, cursor: number): void;
  spmmT(rowPtr: number, colIdx: number, vals: number, dy: number, dx: number, batch: number, rows: number, cols: number, b0: number, b1: number, panel: number, cursor: number): void;
  sddmm(row: number, col: number, a: number, b: number, out: number, batch: number, k0: number, k1: number): void;
  transpose(src: number, dst: number, rows: number, cols: number, c0: number, c1: number): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: the most a 32-bit memory addresses (declared by build.mjs too)
const HEAP_BASE = PAGE;  // the first page is left to the module (it has no static data today)
const ALIGN = 64;

// Operation codes shared with the worker source below.
const OP_SPMM = 1, OP_SPMMT = 2, OP_SDDMM = 3, OP_TRANSPOSE = 4;
// Control block: one 128-byte line of int32 per worker.
const SLOT = 32, SEQ = 0, DONE = 1, OP = 2, ERR = 3, READY = 4, ARGS = 8, MAX_WORKERS = 63;

// Below these amounts of work (multiply-adds or elements), one thread is faster than waking another.
const PAR_MIN_MACS = 1 << 19;
const PAR_MIN_ELEMS = 1 << 16;
// Cache blocking: the rows of the dense operand that one pass may touch should stay in L2 (2 MiB
// per core here). Panels are used when the operand is larger and a row has enough nonzeros in a
// panel to pay for revisiting its outputs.
const PANEL_BYTES = 1 << 20;
const PANEL_MIN_NNZ = 4;

/** Columns of A per panel for an operand of `cols` rows of `rowBytes` each (>= cols: no panels). */
function panelFor(cols: number, rowBytes: number, nnz: number, rows: number): number {
  if (cols * rowBytes <= 1.5 * PANEL_BYTES || rows === 0) return cols;
  const p = Math.max(64, Math.floor(PANEL_BYTES / Math.max(4, rowBytes)));
  if (nnz / rows / Math.ceil(cols / p) < PANEL_MIN_NNZ) return cols;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Loading

function findWasm(file: string): string {
  const candidates = [
    new URL(`../../../../models/sparse/kernels/build/${file}`, import.meta.url), // from dist/
    new URL(`./build/${file}`, import.meta.url),                                  // from source
  ].map((u) => fileURLToPath(u));
  for (const p of candidates) if (existsSync(p)) return p;
  throw new Error(`sparse kernels are not built (looked for ${candidates.join(', ')}): run "npm run build:wasm"`);
}

function readBytes(path: string): Uint8Array<ArrayBuffer> { return new Uint8Array(readFileSync(path)); }

/** Relaxed SIMD (fused multiply-add) is in Node 20's engine behind a flag, on by default later. */
function relaxedModule(): WebAssembly.Module | null {
  if (process.env.SPARSEBENCH_RELAXED_SIMD === '0') return null;
  let bytes: Uint8Array<ArrayBuffer>;
  try { bytes = readBytes(findWasm('kernels-relaxed.wasm')); } catch { return null; }
  if (!WebAssembly.validate(bytes)) {
    try { setFlagsFromString('--experimental-wasm-relaxed-simd'); } catch { return null; }
    if (!WebAssembly.validate(bytes)) return null;
  }
  try { return new WebAssembly.Module(bytes); } catch { return null; }
}

// ---------------------------------------------------------------------------------------------
// Worker threads

// Runs in each worker (eval'd as CommonJS). It instantiates the module on the shared memory, then
// waits for jobs in its control line: spin a little, then Atomics.wait.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, ctrl, index, port, spin } = workerData;
const c = new Int32Array(ctrl);
const base = index * ${SLOT};
const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
Atomics.store(c, base + ${READY}, 1); Atomics.notify(c, base + ${READY});
let seen = 0;
for (;;) {
  let s, n = 0;
  while ((s = Atomics.load(c, base + ${SEQ})) === seen) {
    if (++n > spin) { Atomics.wait(c, base + ${SEQ}, seen); n = 0; }
  }
  seen = s;
  const a = base + ${ARGS};
  try {
    switch (c[base + ${OP}]) {
      case ${OP_SPMM}: k.spmm(c[a], c[a+1], c[a+2], c[a+3], c[a+4], c[a+5], c[a+6], c[a+7], c[a+8], c[a+9], c[a+10]); break;
      case ${OP_SPMMT}: k.spmmT(c[a], c[a+1], c[a+2], c[a+3], c[a+4], c[a+5], c[a+6], c[a+7], c[a+8], c[a+9], c[a+10], c[a+11]); break;
      case ${OP_SDDMM}: k.sddmm(c[a], c[a+1], c[a+2], c[a+3], c[a+4], c[a+5], c[a+6], c[a+7]); break;
      case ${OP_TRANSPOSE}: k.transpose(c[a], c[a+1], c[a+2], c[a+3], c[a+4], c[a+5]); break;
      default: throw new Error('unknown op ' + c[base + ${OP}]);
    }
    c[base + ${ERR}] = 0;
  } catch (e) {
    c[base + ${ERR}] = 1;
    port.postMessage(String(e && e.stack || e));
  }
  Atomics.store(c, base + ${DONE}, seen); Atomics.notify(c, base + ${DONE});
}
`;

interface WorkerHandle { worker: Worker; port: MessagePort; seq: number }

// ---------------------------------------------------------------------------------------------
// The engine: memory, heap, scratch buffers, workers

class Engine {
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  readonly k: KernelExports;
  readonly relaxed: boolean;
  threads: number;
  private readonly ctrl = new SharedArrayBuffer(4 * SLOT * (MAX_WORKERS + 1));
  private readonly c = new Int32Array(this.ctrl);
  private readonly workers: WorkerHandle[] = [];
  private workersBroken = false;
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private buf!: ArrayBufferLike;
  // heap: first-fit over a sorted free list, bump at the top
  private top = HEAP_BASE;
  private free: { off: number; size: number }[] = [];
  private readonly live = new Map<number, number>();
  private readonly scratch = new Map<string, { off: number; size: number }>();

  constructor() {
    const relaxed = relaxedModule();
    this.module = relaxed ?? new WebAssembly.Module(readBytes(findWasm('kernels.wasm')));
    this.relaxed = relaxed !== null;
    this.memory = new WebAssembly.Memory({ initial: 256, maximum: MAX_PAGES, shared: true });
    this.k = new WebAssembly.Instance(this.module, { env: { memory: this.memory } }).exports as unknown as KernelExports;
    this.threads = Math.max(1, Math.min(2, availableParallelism()));
    this.refresh();
  }

  private refresh(): void {
    this.buf = this.memory.buffer;
    this.buffers.add(this.buf);
  }

  resident(a: ArrayBufferView): boolean { return this.buffers.has(a.buffer); }

  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      if (f.size >= size) {
        const off = f.off;
        if (f.size === size) this.free.splice(i, 1); else { f.off += size; f.size -= size; }
        this.live.set(off, size);
        return off;
      }
    }
    const off = this.top;
    const end = off + size;
    if (end > this.buf.byteLength) {
      const pages = Math.ceil((end - this.buf.byteLength) / PAGE);
      const want = Math.max(pages, Math.min(MAX_PAGES - this.buf.byteLength / PAGE, this.buf.byteLength / PAGE / 4) | 0);
      try { this.memory.grow(want); } catch {
        try { this.memory.grow(pages); } catch {
          throw new RangeError(`sparse kernels: out of memory (asked for ${bytes} bytes with ${this.buf.byteLength} in use; the limit is 4 GiB)`);
        }
      }
      this.refresh();
    }
    this.top = end;
    this.live.set(off, size);
    return off;
  }

  release(off: number): void {
    const size = this.live.get(off);
    if (size === undefined) throw new Error('sparse kernels: release of an array not obtained from allocFloat32/allocInt32');
    this.live.delete(off);
    if (off + size === this.top) {
      this.top = off;
      // merge a free block that now touches the top
      const last = this.free[this.free.length - 1];
      if (last && last.off + last.size === this.top) { this.top = last.off; this.free.pop(); }
      return;
    }
    let i = 0;
    while (i < this.free.length && this.free[i].off < off) i++;
    this.free.splice(i, 0, { off, size });
    // coalesce with the neighbours
    if (i + 1 < this.free.length && off + size === this.free[i + 1].off) {
      this.free[i].size += this.free[i + 1].size; this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].off + this.free[i - 1].size === off) {
      this.free[i - 1].size += this.free[i].size; this.free.splice(i, 1);
    }
  }

  f32(off: number, len: number): Float32Array { return new Float32Array(this.memory.buffer, off, len); }
  i32(off: number, len: number): Int32Array { return new Int32Array(this.memory.buffer, off, len); }

  /** A grow-only scratch buffer of at least `bytes`, named by its role in a call. */
  scratchOff(name: string, bytes: number): number {
    const s = this.scratch.get(name);
    if (s && s.size >= bytes) return s.off;
    if (s) this.release(s.off);
    const size = Math.ceil(Math.max(bytes, 256) * 1.25);
    const off = this.alloc(size);
    this.scratch.set(name, { off, size });
    return off;
  }

  /** The kernels' address of an input: itself if resident, else a copy in scratch `name`. */
  input(name: string, a: Float32Array | Int32Array, len: number): number {
    if (this.resident(a)) return a.byteOffset;
    const off = this.scratchOff(name, len * 4);
    if (len > 0) {
      const src = a.length === len ? a : a.subarray(0, len);
      if (a instanceof Float32Array) this.f32(off, len).set(src as Float32Array);
      else this.i32(off, len).set(src as Int32Array);
    }
    return off;
  }

  /** Where a result of `len` floats is written: `out` itself if resident, else scratch. */
  output(name: string, out: Float32Array | undefined, len: number, what: string): number {
    if (out !== undefined) {
      if (!(out instanceof Float32Array)) throw new TypeError(`${what}: out must be a Float32Array`);
      if (out.length < len) throw new RangeError(`${what}: out has ${out.length} elements, needs ${len}`);
      if (this.resident(out)) return out.byteOffset;
    }
    return this.scratchOff(name, len * 4);
  }

  /** The result, moved out of scratch when it is not already in `out`. */
  result(off: number, out: Float32Array | undefined, len: number): Float32Array {
    if (out !== undefined && this.resident(out)) return out;
    const view = this.f32(off, len);
    if (out !== undefined) { out.set(view); return out; }
    return view.slice();
  }

  /** Number of threads to use for this much work. */
  fanout(work: number, min: number, parts: number): number {
    if (this.threads <= 1 || this.workersBroken || work < min) return 1;
    return Math.max(1, Math.min(this.threads, parts));
  }

  private ensureWorkers(n: number): boolean {
    while (this.workers.length < n) {
      const index = this.workers.length + 1;
      const { port1, port2 } = new MessageChannel();
      let worker: Worker;
      try {
        worker = new Worker(WORKER_SOURCE, {
          eval: true,
          execArgv: [], // the source is CommonJS, whatever flags (--input-type=module) the parent has
          workerData: { module: this.module, memory: this.memory, ctrl: this.ctrl, index, port: port2, spin: 20000 },
          transferList: [port2],
        });
      } catch (e) {
        this.disableWorkers(`cannot start a worker thread: ${(e as Error).message}`);
        return false;
      }
      worker.on('error', (e) => this.disableWorkers(`worker thread ${index} failed: ${e.message}`));
      worker.unref();
      port1.unref();
      const base = index * SLOT;
      // The worker starts on its own thread; wait (synchronously) until it is ready.
      const t0 = Date.now();
      while (Atomics.load(this.c, base + READY) === 0) {
        if (Date.now() - t0 > 20000) {
          void worker.terminate();
          this.disableWorkers('a worker thread did not start within 20 s');
          return false;
        }
        Atomics.wait(this.c, base + READY, 0, 50);
      }
      this.workers.push({ worker, port: port1, seq: 0 });
    }
    return true;
  }

  private disableWorkers(why: string): void {
    if (this.workersBroken) return;
    this.workersBroken = true;
    process.emitWarning(`sparse kernels: running on one thread: ${why}`);
  }

  /**
   * Runs one kernel split in `parts.length` parts: parts[1..] on workers, parts[0] here, and waits.
   * Each part is the argument list of the kernel.
   */
  run(op: number, parts: number[][]): void {
    const n = parts.length;
    if (n > 1 && !this.ensureWorkers(n - 1)) {
      // fall back: run every part here
      for (const p of parts) this.call(op, p);
      return;
    }
    const c = this.c;
    for (let w = 1; w < n; w++) {
      const h = this.workers[w - 1];
      const base = w * SLOT;
      c[base + OP] = op;
      const p = parts[w];
      for (let i = 0; i < p.length; i++) c[base + ARGS + i] = p[i] | 0;
      h.seq = (h.seq + 1) | 0;
      Atomics.store(c, base + SEQ, h.seq);
      Atomics.notify(c, base + SEQ);
    }
    let error: unknown = null;
    try { this.call(op, parts[0]); } catch (e) { error = e; }
    for (let w = 1; w < n; w++) {
      const h = this.workers[w - 1];
      const base = w * SLOT;
      let spins = 0;
      while (Atomics.load(c, base + DONE) !== h.seq) {
        if (++spins > 2000) Atomics.wait(c, base + DONE, Atomics.load(c, base + DONE), 1000);
      }
      if (c[base + ERR] !== 0 && error === null) {
        const m = receiveMessageOnPort(h.port);
        error = new Error(`sparse kernels: worker ${w} failed: ${m ? m.message : 'unknown error'}`);
      }
    }
    if (error !== null) throw error;
  }

  private call(op: number, p: number[]): void {
    const k = this.k;
    switch (op) {
      case OP_SPMM: k.spmm(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]); break;
      case OP_SPMMT: k.spmmT(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]); break;
      case OP_SDDMM: k.sddmm(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]); break;
      case OP_TRANSPOSE: k.transpose(p[0], p[1], p[2], p[3], p[4], p[5]); break;
      default: throw new Error(`unknown op ${op}`);
    }
  }
}

let engine: Engine | null = null;
function E(): Engine { return (engine ??= new Engine()); }

// ---------------------------------------------------------------------------------------------
// Helpers

function checkInt(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new RangeError(`${what} must be a non-negative int32, got ${v}`);
}

function need(a: ArrayLike<number>, len: number, what: string): void {
  if (a.length < len) throw new RangeError(`${what} has ${a.length} elements, needs ${len}`);
}

/** Splits [lo, hi) into `parts` contiguous ranges at multiples of `step` (the last takes the rest). */
function splitEven(lo: number, hi: number, parts: number, step: number): number[] {
  const cuts = [lo];
  for (let t = 1; t < parts; t++) {
    const at = lo + Math.round(((hi - lo) * t) / parts / step) * step;
    cuts.push(Math.min(hi, Math.max(cuts[t - 1], at)));
  }
  cuts.push(hi);
  return cuts;
}

/** Splits rows so that each part has about the same nonzeros + rows (a row costs about a nonzero). */
function splitRows(rowPtr: Int32Array, rows: number, parts: number): number[] {
  const p0 = rowPtr[0];
  const total = rowPtr[rows] - p0 + rows;
  const cuts = [0];
  for (let t = 1; t < parts; t++) {
    const target = (total * t) / parts;
    let lo = cuts[t - 1], hi = rows; // first r with cost(r) >= target
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (rowPtr[mid] - p0 + mid < target) lo = mid + 1; else hi = mid;
    }
    cuts.push(lo);
  }
  cuts.push(rows);
  return cuts;
}

// ---------------------------------------------------------------------------------------------
// Public API

/** yT = A · xT: A is rows x cols CSR, xT is cols x batch, the result rows x batch (feature-major). */
export function spmm(a: Csr, xT: Float32Array, batch: number, out?: Float32Array): Float32Array {
  const { rows, cols, rowPtr, colIdx, values } = a;
  checkInt(rows, 'spmm: rows'); checkInt(cols, 'spmm: cols'); checkInt(batch, 'spmm: batch');
  need(rowPtr, rows + 1, 'spmm: rowPtr');
  const nnz = rowPtr[rows];
  need(colIdx, nnz, 'spmm: colIdx'); need(values, nnz, 'spmm: values'); need(xT, cols * batch, 'spmm: xT');
  const e = E();
  const ylen = rows * batch;
  const pr = e.input('rowPtr', rowPtr, rows + 1);
  const pc = e.input('colIdx', colIdx, nnz);
  const pv = e.input('values', values, nnz);
  const px = e.input('x', xT, cols * batch);
  const py = e.output('y', out, ylen, 'spmm');
  const n = e.fanout((nnz + rows) * batch, PAR_MIN_MACS, rows);
  const cuts = n > 1 ? splitRows(rowPtr, rows, n) : [0, rows];
  const panel = panelFor(cols, batch * 4, nnz, rows);
  const cur = panel < cols ? e.scratchOff('cursor', rows * 4) : 0;
  const parts: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) parts.push([pr, pc, pv, px, py, batch, cuts[t], cuts[t + 1], cols, panel, cur]);
  e.run(OP_SPMM, parts);
  return e.result(py, out, ylen);
}

/** dxT = Aᵀ · dyT: dyT is rows x batch, the result cols x batch (feature-major). */
export function spmmT(a: Csr, dyT: Float32Array, batch: number, out?: Float32Array): Float32Array {
  const { rows, cols, rowPtr, colIdx, values } = a;
  checkInt(rows, 'spmmT: rows'); checkInt(cols, 'spmmT: cols'); checkInt(batch, 'spmmT: batch');
  need(rowPtr, rows + 1, 'spmmT: rowPtr');
  const nnz = rowPtr[rows];
  need(colIdx, nnz, 'spmmT: colIdx'); need(values, nnz, 'spmmT: values'); need(dyT, rows * batch, 'spmmT: dyT');
  const e = E();
  const xlen = cols * batch;
  const pr = e.input('rowPtr', rowPtr, rows + 1);
  const pc = e.input('colIdx', colIdx, nnz);
  const pv = e.input('values', values, nnz);
  const pd = e.input('dy', dyT, rows * batch);
  const px = e.output('dx', out, xlen, 'spmmT');
  // Threads split the batch columns (so no two write the same element), in multiples of 4 floats.
  const n = e.fanout((nnz + cols) * batch, PAR_MIN_MACS, Math.floor(batch / 4));
  const cuts = n > 1 ? splitEven(0, batch, n, batch >= 64 * n ? 64 : 4) : [0, batch];
  const parts: number[][] = [];
  const panel = panelFor(cols, Math.ceil(batch / (cuts.length - 1)) * 4, nnz, rows);
  const cur = panel < cols ? e.scratchOff('cursorT', rows * 4 * (cuts.length - 1)) : 0;
  for (let t = 0; t + 1 < cuts.length; t++) parts.push([pr, pc, pv, pd, px, batch, rows, cols, cuts[t], cuts[t + 1], panel, cur + t * rows * 4]);
  e.run(OP_SPMMT, parts);
  return e.result(px, out, xlen);
}

/** out[k] = Σ_i aT[row[k]·batch + i] · bT[col[k]·batch + i], for k < row.length. */
export function sddmm(row: Int32Array, col: Int32Array, aT: Float32Array, bT: Float32Array, batch: number, out?: Float32Array): Float32Array {
  checkInt(batch, 'sddmm: batch');
  const nnz = row.length;
  need(col, nnz, 'sddmm: col');
  if (aT.length % Math.max(1, batch) !== 0 || bT.length % Math.max(1, batch) !== 0) {
    throw new RangeError(`sddmm: aT (${aT.length}) and bT (${bT.length}) must be multiples of batch (${batch})`);
  }
  const e = E();
  const pr = e.input('row', row, nnz);
  const pc = e.input('col', col, nnz);
  const pa = e.input('a', aT, aT.length);
  const pb = e.input('b', bT, bT.length);
  const po = e.output('pairs', out, nnz, 'sddmm');
  const n = e.fanout(nnz * batch, PAR_MIN_MACS, nnz);
  const cuts = splitEven(0, nnz, n, 1);
  const parts: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) parts.push([pr, pc, pa, pb, po, batch, cuts[t], cuts[t + 1]]);
  e.run(OP_SDDMM, parts);
  return e.result(po, out, nnz);
}

/** (rows x cols) row-major -> (cols x rows) row-major. */
export function transpose(src: Float32Array, rows: number, cols: number, out?: Float32Array): Float32Array {
  checkInt(rows, 'transpose: rows'); checkInt(cols, 'transpose: cols');
  const len = rows * cols;
  need(src, len, 'transpose: src');
  const e = E();
  const ps = e.input('tsrc', src, len);
  const pd = e.output('tdst', out, len, 'transpose');
  const n = e.fanout(len, PAR_MIN_ELEMS, Math.ceil(cols / 32));
  const cuts = splitEven(0, cols, n, 32);
  const parts: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) parts.push([ps, pd, rows, cols, cuts[t], cuts[t + 1]]);
  e.run(OP_TRANSPOSE, parts);
  return e.result(pd, out, len);
}

/** Threads the kernels may use (1 = the calling thread only). Default: min(2, available cores). */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS + 1) throw new RangeError(`setThreads: expected an integer in 1..${MAX_WORKERS + 1}, got ${n}`);
  E().threads = n;
}

export function kernelInfo(): { simd: boolean; threads: number; relaxedSimd: boolean } {
  const e = E();
  return { simd: true, threads: e.threads, relaxedSimd: e.relaxed };
}

/**
 * A Float32Array that lives in the kernels' memory: passing it to a kernel (as input or `out`)
 * costs no copy. It stays valid until `release`d; do not keep views of it after that.
 */
export function allocFloat32(length: number): Float32Array {
  checkInt(length, 'allocFloat32: length');
  const e = E();
  return e.f32(e.alloc(length * 4), length);
}

/** An Int32Array in the kernels' memory (see allocFloat32). */
export function allocInt32(length: number): Int32Array {
  checkInt(length, 'allocInt32: length');
  const e = E();
  return e.i32(e.alloc(length * 4), length);
}

/** Returns an array from allocFloat32/allocInt32 to the kernels' heap. */
export function release(a: Float32Array | Int32Array): void {
  const e = E();
  if (!e.resident(a)) throw new Error('release: not an array of the kernels\' memory');
  e.release(a.byteOffset);
}
