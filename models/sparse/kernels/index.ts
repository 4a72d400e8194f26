/**
 * Sparse kernels for the always-sparse `csr` format: SpMM, transposed SpMM, SDDMM and a dense
 * transpose, in WebAssembly with SIMD (source: ./assembly/kernels.ts, built by ./build.mjs into
 * ./build/; the relaxed-SIMD build, which fuses multiply-adds, is used where the engine accepts it:
 * on Node 20 that means turning on V8's --experimental-wasm-relaxed-simd at load time;
 * SPARSEBENCH_RELAXED_SIMD=0 keeps the plain SIMD build).
 *
 * The API is synchronous (it is called from inside tfjs custom-gradient functions). Up to
 * `setThreads(n)` threads share one WebAssembly.Memory: a call large enough to split is cut into
 * chunks that the calling thread and the workers claim from a shared counter; the caller then waits
 * with Atomics.wait (allowed on Node's main thread) for chunks claimed by others, never for a worker
 * that claimed none; after a call where it waited for a helper that had lost its core to another
 * process, small calls run on one thread for a while (LateHelpers). Workers are started lazily and
 * never keep the process alive. Results do not depend on the number of threads (bit for bit).
 *
 * Activations are FEATURE-MAJOR: a layer input for a batch of B is passed as its transpose, an
 * (n x B) row-major Float32Array, so that one nonzero multiplies B contiguous floats.
 * `transpose` converts between the two layouts.
 *
 * Data movement: arguments are copied into the kernels' memory (into grow-only scratch buffers)
 * and results copied out, unless they already live there. Arrays obtained from `allocFloat32` /
 * `allocInt32` are views of the kernels' memory: passing them (as inputs or as `out`) costs no
 * copy, which is what a layer that calls the kernels every step should do with its structure and
 * its activations (at 99.9% sparsity the copies cost several times the multiply). An `out` must
 * not overlap any input. Column indices must lie in [0, cols); they need not be sorted within a
 * row, but sorted rows make the cache blocking of wide matrices effective.
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
  sddmm(row: number, col: number, a: number, b: number, out: number, batch: number, k0: number, k1: number, cols: number, shift: number, scratch: number): void;
  transpose(src: number, dst: number, rows: number, cols: number, c0: number, c1: number): void;
  convGather(rowPtr: number, offs: number, vals: number, x: number, y: number, ystride: number, r0: number, r1: number, p0: number, p1: number): void;
  convSddmm(aoff: number, boff: number, a: number, b: number, out: number, spans: number, nspans: number, k0: number, k1: number): void;
  pack(src: number, dst: number, pstride: number, H: number, W: number, C: number, s: number, top: number, left: number, Hg: number, Wg: number, N: number, g0: number, g1: number): void;
  unpack(src: number, dst: number, pstride: number, H: number, W: number, C: number, s: number, top: number, left: number, Hg: number, Wg: number, N: number, y0: number, y1: number, bias: number): void;
  sumRows(src: number, out: number, stride: number, len: number, r0: number, r1: number): void;
  channelSums(x: number, mean: number, out: number, C: number, m0: number, m1: number, mode: number): void;
  bnForward(x: number, res: number, y: number, scale: number, shift: number, C: number, relu: number, m0: number, m1: number): void;
  bnBackwardSums(dy: number, y: number, x: number, mean: number, out: number, C: number, relu: number, m0: number, m1: number): void;
  bnBackward(dy: number, y: number, x: number, mean: number, a: number, k1: number, k2: number, dx: number, dres: number, C: number, relu: number, m0: number, m1: number): void;
  maxPool2Grad(x: number, dy: number, dx: number, H: number, W: number, C: number, Ho: number, Wo: number, n0: number, n1: number): void;
  lnForward(x: number, y: number, gamma: number, beta: number, mean: number, invstd: number, D: number, eps: number, m0: number, m1: number): void;
  lnBackward(dy: number, x: number, gamma: number, mean: number, invstd: number, dx: number, partial: number, D: number, m0: number, m1: number): void;
  gelu(x: number, dy: number, y: number, mode: number, i0: number, i1: number): void;
  denseRows(A: number, ars: number, aks: number, B: number, boff: number, K: number, C: number, cs: number, r0: number, r1: number, p0: number, p1: number, acc: number): void;
  denseDots(A: number, aoff: number, rows: number, B: number, boff: number, C: number, crs: number, cjs: number, spans: number, nspans: number, j0: number, j1: number): void;
  attnForward(qkv: number, out: number, attn: number, T: number, H: number, D: number, scale: number, i0: number, i1: number, scratch: number): void;
  attnBackward(qkv: number, attn: number, dy: number, dqkv: number, T: number, H: number, D: number, scale: number, i0: number, i1: number, scratch: number): void;
  biasRelu(y: number, bias: number, batch: number, relu: number, r0: number, r1: number): void;
  reluGrad(g: number, x: number, i0: number, i1: number): void;
  sgdUpdate(w: number, g: number, v: number, i0: number, i1: number, lrBits: number, momentumBits: number, wdBits: number, flags: number): void;
  rowSums64(src: number, out: number, batch: number, r0: number, r1: number): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: the most a 32-bit memory addresses (declared by build.mjs too)
const HEAP_BASE = PAGE;  // the first page is left to the module (it has no static data today)
const ALIGN = 64;

// Operation codes shared with the worker source below.
const OP_SPMM = 1, OP_SPMMT = 2, OP_SDDMM = 3, OP_TRANSPOSE = 4, OP_CONV_GATHER = 5, OP_CONV_SDDMM = 6, OP_PACK = 7, OP_UNPACK = 8, OP_SUM_ROWS = 9,
  OP_CHANNEL_SUMS = 10, OP_BN_FORWARD = 11, OP_BN_BACKWARD_SUMS = 12, OP_BN_BACKWARD = 13, OP_MAXPOOL2_GRAD = 14, OP_LN_FORWARD = 16, OP_LN_BACKWARD = 17, OP_GELU = 18,
  OP_ATTN_FORWARD = 19, OP_ATTN_BACKWARD = 20, OP_DENSE_ROWS = 21, OP_DENSE_DOTS = 22;
const OP_BIAS_RELU = 40, OP_RELU_GRAD = 41, OP_ROW_SUMS64 = 42, OP_SGD = 43; // 19-39: the conv kernels' codes
/** The kernels' names by operation code (profiles). */
const OP_NAMES: Record<number, string> = {
  [OP_SPMM]: 'spmm', [OP_SPMMT]: 'spmmT', [OP_SDDMM]: 'sddmm', [OP_TRANSPOSE]: 'transpose', [OP_CONV_GATHER]: 'convGather', [OP_CONV_SDDMM]: 'convSddmm',
  [OP_PACK]: 'packPlanes', [OP_UNPACK]: 'unpackPlanes', [OP_SUM_ROWS]: 'sumRows', [OP_CHANNEL_SUMS]: 'channelSums', [OP_BN_FORWARD]: 'batchNormForward',
  [OP_BN_BACKWARD_SUMS]: 'batchNormBackwardSums', [OP_BN_BACKWARD]: 'batchNormBackward', [OP_MAXPOOL2_GRAD]: 'maxPool2Grad', [OP_LN_FORWARD]: 'layerNormForward',
  [OP_LN_BACKWARD]: 'layerNormBackward', [OP_GELU]: 'gelu', [OP_ATTN_FORWARD]: 'attentionForward', [OP_ATTN_BACKWARD]: 'attentionBackward',
  [OP_DENSE_ROWS]: 'denseRows', [OP_DENSE_DOTS]: 'denseDots', [OP_BIAS_RELU]: 'biasRelu', [OP_RELU_GRAD]: 'reluGrad', [OP_ROW_SUMS64]: 'rowSums64', [OP_SGD]: 'sgdUpdate',
};
// Control block: one 128-byte line of int32 per worker (wake-up counter, ready flag).
const SLOT = 32, SEQ = 0, READY = 1, MAX_WORKERS = 63;
// Job table: a kernel call is cut into chunks (argument lists) that the threads claim in turn, so
// a thread that runs late (another process on its core) simply takes fewer, and the caller never
// waits for a worker that has not claimed anything. CLAIM holds (generation << 16 | next chunk);
// a claim is a compare-and-swap of that word, so a late worker cannot take a chunk of a later call.
const J_CLAIM = 0, J_DONE = 16, J_COUNT = 32, J_OP = 33, J_ERR = 34, J_BASE = 48, J_STRIDE = 16, MAX_CHUNKS = 1024;

// Below these amounts of work (multiply-adds or elements), one thread is faster than waking another.
const PAR_MIN_MACS = 1 << 19;
const PAR_MIN_ELEMS = 1 << 16;
// Chunks per thread of a parallel call (taken dynamically, see run()).
const CHUNKS_PER_THREAD = 4;
// See LateHelpers: calls this many times above a kernel's parallel minimum stay parallel even
// while helpers are late (a call of ~3 ms or more outlasts the wait for a descheduled helper).
const LATE_WORK_FACTOR = 64;
const LATE_BACKOFF_FIRST = 32, LATE_BACKOFF_MAX = 8192;
/** a wait shorter than this is noise, not a descheduled helper (ms) */
const LATE_MIN_WAIT_MS = 0.1;

/**
 * When another process runs on a helper's core, the helper can lose its core in the middle of a
 * chunk, and the calling thread, done with its own chunks, waits for it until the scheduler gives
 * it back (milliseconds): on a loaded machine a small call on two threads then takes several times
 * as long as on one. A call is *late* when the caller waited longer than it computed (had both
 * threads run, it would have waited at most one chunk). After a late call the next `backoff` calls
 * below LATE_WORK_FACTOR x their parallel minimum run on the calling thread alone; the backoff
 * doubles while parallel calls keep coming late and starts over after one that was not. Only the
 * thread count changes, never a result (every kernel gives the same bits on any number of threads).
 */
export class LateHelpers {
  private serialLeft = 0;
  private backoff = LATE_BACKOFF_FIRST;

  /** whether a call of `work` (the kernel's parallel minimum `min`) should run on one thread now */
  serial(work: number, min: number): boolean {
    if (this.serialLeft <= 0 || work >= min * LATE_WORK_FACTOR) return false;
    this.serialLeft--;
    return true;
  }

  /** after a parallel call: the caller's own compute time and its wait for the helpers (ms) */
  record(ownMs: number, waitedMs: number): void {
    if (waitedMs > LATE_MIN_WAIT_MS && waitedMs > ownMs) {
      this.serialLeft = this.backoff;
      this.backoff = Math.min(LATE_BACKOFF_MAX, this.backoff * 2);
    } else {
      this.backoff = LATE_BACKOFF_FIRST;
    }
  }
}
/** denseRows: products per call and floats of A per row block (see there) */
const DENSE_BLOCK_K = 256, DENSE_BLOCK_FLOATS = 65536;
const SPMMT_CHUNKS_PER_THREAD = 1;
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

/**
 * Compiles with V8's optimizing tier, eagerly. New wasm code otherwise runs in the baseline
 * compiler (Liftoff, about half the speed of these kernels), compiled lazily on first call, until
 * each function has run for ~20 ms, which a process doing a few hundred small calls never reaches.
 * The flags are put back (to V8's defaults) once this small module is compiled, unless the process
 * was started with them.
 */
function compile(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Module {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
    .some((f) => /^--(no-)?(liftoff|wasm-lazy-compilation)$/.test(f));
  let set = false;
  if (!given) {
    try { setFlagsFromString('--no-liftoff'); setFlagsFromString('--no-wasm-lazy-compilation'); set = true; } catch { /* default tiers */ }
  }
  try {
    return new WebAssembly.Module(bytes);
  } finally {
    if (set) { setFlagsFromString('--liftoff'); setFlagsFromString('--wasm-lazy-compilation'); }
  }
}

/** Relaxed SIMD (fused multiply-add) is in Node 20's engine behind a flag, on by default later. */
function relaxedModule(): WebAssembly.Module | null {
  if (process.env.SPARSEBENCH_RELAXED_SIMD === '0') return null;
  let bytes: Uint8Array<ArrayBuffer>;
  try { bytes = readBytes(findWasm('kernels-relaxed.wasm')); } catch { return null; }
  if (!WebAssembly.validate(bytes)) {
    try { setFlagsFromString('--experimental-wasm-relaxed-simd'); } catch { return null; }
    if (!WebAssembly.validate(bytes)) return null;
  }
  try { return compile(bytes); } catch { return null; }
}

// ---------------------------------------------------------------------------------------------
// Worker threads

// Runs in each worker (eval'd as CommonJS). It instantiates the module on the shared memory, then
// waits to be woken (spin a little, then Atomics.wait) and claims chunks of the current call.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, ctrl, jobs, index, port, spin } = workerData;
const c = new Int32Array(ctrl), J = new Int32Array(jobs);
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
  for (;;) {
    const w = Atomics.load(J, ${J_CLAIM});
    const i = w & 0xffff;
    if (i >= Atomics.load(J, ${J_COUNT})) break;
    if (Atomics.compareExchange(J, ${J_CLAIM}, w, w + 1) !== w) continue;
    // chunk i is ours: the call cannot end (nor the table change) before we count it done
    const a = ${J_BASE} + i * ${J_STRIDE}, op = J[${J_OP}];
    try {
      switch (op) {
        case ${OP_SPMM}: k.spmm(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10]); break;
        case ${OP_SPMMT}: k.spmmT(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10], J[a+11]); break;
        case ${OP_SDDMM}: k.sddmm(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10]); break;
        case ${OP_TRANSPOSE}: k.transpose(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5]); break;
        case ${OP_CONV_GATHER}: k.convGather(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9]); break;
        case ${OP_CONV_SDDMM}: k.convSddmm(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8]); break;
        case ${OP_PACK}: k.pack(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10], J[a+11], J[a+12], J[a+13]); break;
        case ${OP_UNPACK}: k.unpack(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10], J[a+11], J[a+12], J[a+13], J[a+14]); break;
        case ${OP_SUM_ROWS}: k.sumRows(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5]); break;
        case ${OP_CHANNEL_SUMS}: k.channelSums(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6]); break;
        case ${OP_BN_FORWARD}: k.bnForward(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8]); break;
        case ${OP_BN_BACKWARD_SUMS}: k.bnBackwardSums(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8]); break;
        case ${OP_BN_BACKWARD}: k.bnBackward(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10], J[a+11], J[a+12]); break;
        case ${OP_MAXPOOL2_GRAD}: k.maxPool2Grad(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9]); break;
        case ${OP_LN_FORWARD}: k.lnForward(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], new Float32Array(J.buffer, 4 * (a+7), 1)[0], J[a+8], J[a+9]); break;
        case ${OP_LN_BACKWARD}: k.lnBackward(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9]); break;
        case ${OP_GELU}: k.gelu(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5]); break;
        case ${OP_DENSE_ROWS}: k.denseRows(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10], J[a+11], J[a+12]); break;
        case ${OP_DENSE_DOTS}: k.denseDots(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8], J[a+9], J[a+10], J[a+11]); break;
        case ${OP_ATTN_FORWARD}: k.attnForward(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], new Float32Array(J.buffer, 4 * (a+6), 1)[0], J[a+7], J[a+8], J[a+9]); break;
        case ${OP_ATTN_BACKWARD}: k.attnBackward(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], new Float32Array(J.buffer, 4 * (a+7), 1)[0], J[a+8], J[a+9], J[a+10]); break;
        case ${OP_BIAS_RELU}: k.biasRelu(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5]); break;
        case ${OP_RELU_GRAD}: k.reluGrad(J[a], J[a+1], J[a+2], J[a+3]); break;
        case ${OP_ROW_SUMS64}: k.rowSums64(J[a], J[a+1], J[a+2], J[a+3], J[a+4]); break;
        case ${OP_SGD}: k.sgdUpdate(J[a], J[a+1], J[a+2], J[a+3], J[a+4], J[a+5], J[a+6], J[a+7], J[a+8]); break;
        default: throw new Error('unknown op ' + op);
      }
    } catch (e) {
      Atomics.store(J, ${J_ERR}, 1);
      port.postMessage(String(e && e.stack || e));
    }
    if (Atomics.add(J, ${J_DONE}, 1) + 1 === J[${J_COUNT}]) Atomics.notify(J, ${J_DONE});
  }
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
  private readonly jobs = new SharedArrayBuffer(4 * (J_BASE + J_STRIDE * MAX_CHUNKS));
  private readonly J = new Int32Array(this.jobs).fill(0xffff, J_CLAIM, J_CLAIM + 1); // closed
  private readonly workers: WorkerHandle[] = [];
  private gen = 0;
  private workersBroken = false;
  private readonly late = new LateHelpers();
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private buf!: ArrayBufferLike;
  // heap: first-fit over a sorted free list, bump at the top
  private top = HEAP_BASE;
  private free: { off: number; size: number }[] = [];
  private readonly live = new Map<number, number>();
  private readonly scratch = new Map<string, { off: number; size: number }>();

  constructor() {
    const relaxed = relaxedModule();
    this.module = relaxed ?? compile(readBytes(findWasm('kernels.wasm')));
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
    const copy = new Float32Array(len); // (slice() of a shared view is ~10x slower than set)
    copy.set(view);
    return copy;
  }

  /** Threads to use for this much work (1 below `min`). */
  fanout(work: number, min: number): number {
    if (this.threads <= 1 || this.workersBroken || work < min || this.late.serial(work, min)) return 1;
    return this.threads;
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
          workerData: { module: this.module, memory: this.memory, ctrl: this.ctrl, jobs: this.jobs, index, port: port2, spin: 20000 },
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
   * Runs one kernel cut in chunks (each the kernel's argument list) on up to `threads` threads:
   * this thread and the workers claim chunks until none is left; then this thread waits until
   * every claimed chunk is done (it never waits for a worker that claimed nothing).
   */
  run(op: number, chunks: number[][], threads: number): void {
    if (!kernelTimes) return this.runChunks(op, chunks, threads);
    const t0 = performance.now();
    try { this.runChunks(op, chunks, threads); } finally {
      const key = `${kernelTimes.scope}\0${OP_NAMES[op] ?? `op ${op}`}`;
      const e = kernelTimes.ops.get(key) ?? { calls: 0, ms: 0 };
      e.calls++;
      e.ms += performance.now() - t0;
      kernelTimes.ops.set(key, e);
    }
  }

  private runChunks(op: number, chunks: number[][], threads: number): void {
    const n = chunks.length;
    if (n > MAX_CHUNKS) throw new Error(`sparse kernels: ${n} chunks > ${MAX_CHUNKS}`);
    const helpers = Math.min(threads, n) - 1;
    if (helpers <= 0 || !this.ensureWorkers(helpers)) {
      for (const p of chunks) this.call(op, p);
      return;
    }
    const c = this.c, J = this.J;
    for (let i = 0; i < n; i++) {
      const p = chunks[i], a = J_BASE + i * J_STRIDE;
      for (let j = 0; j < p.length; j++) J[a + j] = p[j] | 0;
    }
    J[J_OP] = op;
    J[J_ERR] = 0;
    Atomics.store(J, J_COUNT, n);
    Atomics.store(J, J_DONE, 0);
    this.gen = (this.gen + 1) & 0x7fff;
    Atomics.store(J, J_CLAIM, this.gen << 16); // publishes the call
    for (let w = 1; w <= helpers; w++) {
      const h = this.workers[w - 1];
      h.seq = (h.seq + 1) | 0;
      Atomics.store(c, w * SLOT + SEQ, h.seq);
      Atomics.notify(c, w * SLOT + SEQ);
    }
    let error: unknown = null;
    const started = performance.now();
    for (;;) {
      const w = Atomics.load(J, J_CLAIM);
      const i = w & 0xffff;
      if (i >= n) break;
      if (Atomics.compareExchange(J, J_CLAIM, w, w + 1) !== w) continue;
      try { this.call(op, chunks[i]); } catch (e) { error ??= e; }
      Atomics.add(J, J_DONE, 1);
    }
    const ownDone = performance.now();
    let spins = 0;
    for (let d; (d = Atomics.load(J, J_DONE)) < n;) {
      if (++spins > 2000) Atomics.wait(J, J_DONE, d, 1000);
    }
    this.late.record(ownDone - started, performance.now() - ownDone);
    // Close the call: a worker that read the claim word before this fails its compare-and-swap,
    // one that reads it after sees no chunk left, until the next call publishes a new word.
    Atomics.store(J, J_CLAIM, (this.gen << 16) | 0xffff);
    if (error === null && J[J_ERR] !== 0) {
      let m: { message: unknown } | undefined;
      for (const h of this.workers) if ((m = receiveMessageOnPort(h.port))) break;
      error = new Error(`sparse kernels: a worker thread failed: ${m ? String(m.message) : 'unknown error'}`);
    }
    for (const h of this.workers) while (receiveMessageOnPort(h.port)); // drop other reports
    if (error !== null) throw error;
  }

  private call(op: number, p: number[]): void {
    const k = this.k;
    switch (op) {
      case OP_SPMM: k.spmm(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]); break;
      case OP_SPMMT: k.spmmT(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]); break;
      case OP_SDDMM: k.sddmm(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]); break;
      case OP_TRANSPOSE: k.transpose(p[0], p[1], p[2], p[3], p[4], p[5]); break;
      case OP_CONV_GATHER: k.convGather(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]); break;
      case OP_CONV_SDDMM: k.convSddmm(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]); break;
      case OP_PACK: k.pack(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13]); break;
      case OP_UNPACK: k.unpack(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14]); break;
      case OP_SUM_ROWS: k.sumRows(p[0], p[1], p[2], p[3], p[4], p[5]); break;
      case OP_CHANNEL_SUMS: k.channelSums(p[0], p[1], p[2], p[3], p[4], p[5], p[6]); break;
      case OP_BN_FORWARD: k.bnForward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]); break;
      case OP_BN_BACKWARD_SUMS: k.bnBackwardSums(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]); break;
      case OP_BN_BACKWARD: k.bnBackward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]); break;
      case OP_MAXPOOL2_GRAD: k.maxPool2Grad(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]); break;
      case OP_LN_FORWARD: k.lnForward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], floatOfBits(p[7]), p[8], p[9]); break;
      case OP_LN_BACKWARD: k.lnBackward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]); break;
      case OP_GELU: k.gelu(p[0], p[1], p[2], p[3], p[4], p[5]); break;
      case OP_DENSE_ROWS: k.denseRows(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]); break;
      case OP_DENSE_DOTS: k.denseDots(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]); break;
      case OP_ATTN_FORWARD: k.attnForward(p[0], p[1], p[2], p[3], p[4], p[5], floatOfBits(p[6]), p[7], p[8], p[9]); break;
      case OP_ATTN_BACKWARD: k.attnBackward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], floatOfBits(p[7]), p[8], p[9], p[10]); break;
      case OP_BIAS_RELU: k.biasRelu(p[0], p[1], p[2], p[3], p[4], p[5]); break;
      case OP_RELU_GRAD: k.reluGrad(p[0], p[1], p[2], p[3]); break;
      case OP_ROW_SUMS64: k.rowSums64(p[0], p[1], p[2], p[3], p[4]); break;
      case OP_SGD: k.sgdUpdate(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]); break;
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

/** The positions of [start, end) spans, each checked to lie in [0, len). */
function spanPositions(spans: readonly number[], len: number, what: string): number {
  let positions = 0;
  for (let i = 0; i < spans.length; i += 2) {
    if (!(Number.isInteger(spans[i]) && spans[i] >= 0 && spans[i] <= spans[i + 1] && spans[i + 1] <= len)) throw new RangeError(`${what}: position span [${spans[i]}, ${spans[i + 1]}) is outside [0, ${len})`);
    positions += spans[i + 1] - spans[i];
  }
  return positions;
}

/**
 * The position ranges ([p0, p1) pairs, flattened) a call over `spans` (pairs within [0, len)) is
 * cut into: with several threads, spans longer than their share are split at multiples of `step`
 * into about threads · CHUNKS_PER_THREAD pieces in all (none shorter than `minPiece`).
 */
function positionPieces(spans: readonly number[], len: number, threads: number, minPiece: number, step: number, what: string): number[] {
  const total = spanPositions(spans, len, what);
  if (threads <= 1) return [...spans];
  const share = Math.max(minPiece, Math.ceil(total / (threads * CHUNKS_PER_THREAD)));
  const out: number[] = [];
  for (let i = 0; i < spans.length; i += 2) {
    const n = spans[i + 1] - spans[i];
    const cuts = splitEven(spans[i], spans[i + 1], Math.max(1, Math.min(Math.round(n / share), Math.ceil(n / step))), step);
    for (let t = 0; t + 1 < cuts.length; t++) if (cuts[t + 1] > cuts[t]) out.push(cuts[t], cuts[t + 1]);
  }
  return out;
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
  // Chunks of rows with about equal nonzeros; panels of columns inside each chunk.
  const threads = e.fanout((nnz + rows) * batch, PAR_MIN_MACS);
  const cuts = threads > 1 ? splitRows(rowPtr, rows, Math.min(threads * CHUNKS_PER_THREAD, Math.ceil(rows / 8))) : [0, rows];
  const panel = panelFor(cols, batch * 4, nnz, rows);
  const cur = panel < cols ? e.scratchOff('cursor', rows * 4) : 0;
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([pr, pc, pv, px, py, batch, cuts[t], cuts[t + 1], cols, panel, cur]);
  e.run(OP_SPMM, chunks, threads);
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
  // Chunks split the batch columns (so no two write the same element), in multiples of 4 floats
  // (64 where the batch allows); each chunk has its own cursor.
  const threads = e.fanout((nnz + cols) * batch, PAR_MIN_MACS);
  const parts = Math.max(1, Math.min(threads * SPMMT_CHUNKS_PER_THREAD, Math.floor(batch / 4)));
  const cuts = parts > 1 ? splitEven(0, batch, parts, batch >= 64 * parts ? 64 : 4) : [0, batch];
  const panel = panelFor(cols, Math.ceil(batch / parts) * 4, nnz, rows);
  const cur = panel < cols ? e.scratchOff('cursorT', rows * 4 * parts) : 0;
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([pr, pc, pv, pd, px, batch, rows, cols, cuts[t], cuts[t + 1], panel, cur + t * rows * 4]);
  e.run(OP_SPMMT, chunks, threads);
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
  const threads = e.fanout(nnz * batch, PAR_MIN_MACS);
  const parts = threads > 1 ? Math.min(threads * CHUNKS_PER_THREAD, nnz) : 1;
  const cuts = splitEven(0, nnz, parts, 1);
  // Bucket the pairs by panels of bT's rows (a power of two of them) when bT exceeds the L2 budget.
  const cols = bT.length / Math.max(1, batch);
  let shift = 31, scratch = 0;
  if (cols * batch * 4 > 1.5 * PANEL_BYTES && nnz >= 4 * cols / Math.max(1, Math.floor(PANEL_BYTES / (batch * 4)))) {
    shift = Math.max(6, Math.floor(Math.log2(PANEL_BYTES / (batch * 4))));
    const panels = ((cols - 1) >>> shift) + 1;
    scratch = e.scratchOff('sddmmOrder', 4 * (nnz + parts * (panels + 2 + 16)));
  }
  const chunks: number[][] = [];
  for (let t = 0, at = scratch; t + 1 < cuts.length; t++) {
    chunks.push([pr, pc, pa, pb, po, batch, cuts[t], cuts[t + 1], cols, shift, at]);
    at += 4 * (cuts[t + 1] - cuts[t] + (((cols - 1) >>> Math.min(shift, 30)) + 2 + 16)); // +16: separate cache lines
  }
  e.run(OP_SDDMM, chunks, threads);
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
  const threads = e.fanout(len, PAR_MIN_ELEMS);
  const cuts = splitEven(0, cols, threads > 1 ? Math.min(threads * 2, Math.ceil(cols / 32)) : 1, 32);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([ps, pd, rows, cols, cuts[t], cuts[t + 1]]);
  e.run(OP_TRANSPOSE, chunks, threads);
  return e.result(pd, out, len);
}

// ---------------------------------------------------------------------------------------------
// Convolutions over planes (see the kernels' source): images stored channel-major on a padded grid

/**
 * Where the pixels of a batch of NHWC images (n x h x w x c) go in planes: stride-s phases, one
 * hg x wg grid for the whole batch with the images innermost (position (gy·wg + gx)·n + image,
 * n·hg·wg positions per plane), the images shifted by (top, left) on it.
 */
export interface PlaneGeometry { n: number; h: number; w: number; c: number; s: number; top: number; left: number; hg: number; wg: number }

export function planeCount(g: PlaneGeometry): number { return g.s * g.s * g.c; }
export function planeLength(g: PlaneGeometry): number { return g.n * g.hg * g.wg; }

function checkGeometry(g: PlaneGeometry, what: string): void {
  for (const k of ['n', 'h', 'w', 'c', 's', 'top', 'left', 'hg', 'wg'] as const) checkInt(g[k], `${what}: ${k}`);
  if (g.s < 1) throw new RangeError(`${what}: stride must be >= 1`);
}

/** [0, count) (grid rows, image rows, images) cut into chunks for threads, by the amount of work (elements). */
function splitForThreads(count: number, work: number): { cuts: number[]; threads: number } {
  const threads = E().fanout(work, PAR_MIN_ELEMS);
  return { cuts: splitEven(0, count, threads > 1 ? Math.min(count, threads * 2) : 1, 1), threads };
}

/**
 * NHWC src -> planes in dst: plane i at dst[base + i·pstride ...]; every position of the planes
 * not holding a pixel is set to 0. dst must be resident (allocFloat32).
 */
export function packPlanes(src: Float32Array, g: PlaneGeometry, dst: Float32Array, base: number, pstride: number): void {
  checkGeometry(g, 'packPlanes');
  const len = g.n * g.h * g.w * g.c;
  need(src, len, 'packPlanes: src');
  need(dst, base + (planeCount(g) - 1) * pstride + planeLength(g), 'packPlanes: dst');
  const e = E();
  if (!e.resident(dst)) throw new Error('packPlanes: dst must be an array of the kernels\' memory');
  const ps = e.input('packSrc', src, len);
  const pd = dst.byteOffset + 4 * base;
  const { cuts, threads } = splitForThreads(g.hg, len);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([ps, pd, pstride, g.h, g.w, g.c, g.s, g.top, g.left, g.hg, g.wg, g.n, cuts[t], cuts[t + 1]]);
  e.run(OP_PACK, chunks, threads);
}

/** planes (as packPlanes wrote them, at src[base ...]) -> NHWC, plus bias per channel when given. */
export function unpackPlanes(src: Float32Array, base: number, pstride: number, g: PlaneGeometry, bias?: Float32Array, out?: Float32Array): Float32Array {
  checkGeometry(g, 'unpackPlanes');
  const len = g.n * g.h * g.w * g.c;
  const e = E();
  if (!e.resident(src)) throw new Error('unpackPlanes: src must be an array of the kernels\' memory');
  need(src, base + (planeCount(g) - 1) * pstride + planeLength(g), 'unpackPlanes: src');
  if (bias) need(bias, g.c, 'unpackPlanes: bias');
  const pb = bias ? e.input('unpackBias', bias, g.c) : 0;
  const po = e.output('unpackOut', out, len, 'unpackPlanes');
  const { cuts, threads } = splitForThreads(g.h, len);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([src.byteOffset + 4 * base, po, pstride, g.h, g.w, g.c, g.s, g.top, g.left, g.hg, g.wg, g.n, cuts[t], cuts[t + 1], pb]);
  e.run(OP_UNPACK, chunks, threads);
  return e.result(po, out, len);
}

/**
 * y[r·ystride + p] = Σ_{k in row r} values[k] · x[offs[k] + p] for p < len (a sparse convolution
 * over planes: offs is a nonzero's plane start plus its tap's shift). x and out must be resident;
 * x must hold every x[offs[k] + p] read.
 */
export function convGather(rowPtr: Int32Array, offs: Int32Array, values: Float32Array, rows: number, x: Float32Array, len: number, out: Float32Array, ystride: number, spans?: readonly number[]): Float32Array {
  checkInt(rows, 'convGather: rows'); checkInt(len, 'convGather: len'); checkInt(ystride, 'convGather: ystride');
  need(rowPtr, rows + 1, 'convGather: rowPtr');
  const nnz = rowPtr[rows];
  need(offs, nnz, 'convGather: offs'); need(values, nnz, 'convGather: values');
  need(out, (rows - 1) * ystride + len, 'convGather: out');
  const e = E();
  if (!e.resident(x) || !e.resident(out)) throw new Error('convGather: x and out must be arrays of the kernels\' memory');
  const pr = e.input('rowPtr', rowPtr, rows + 1);
  const po = e.input('colIdx', offs, nnz);
  const pv = e.input('values', values, nnz);
  const threads = e.fanout((nnz + rows) * len, PAR_MIN_MACS);
  const pieces = positionPieces(spans ?? [0, len], len, threads, 1024, 16, 'convGather');
  const chunks: number[][] = [];
  for (let t = 0; t < pieces.length; t += 2) chunks.push([pr, po, pv, x.byteOffset, out.byteOffset, ystride, 0, rows, pieces[t], pieces[t + 1]]);
  e.run(OP_CONV_GATHER, chunks, threads);
  return out;
}

/** Position spans [start, end) pairs, checked against [0, len), copied into the kernels' memory: their pointer, count and positions. */
function spanTable(spans: readonly number[], len: number, what: string): { ptr: number; count: number; positions: number } {
  const positions = spanPositions(spans, len, what);
  return { ptr: E().input('spans', Int32Array.from(spans), spans.length), count: spans.length / 2, positions };
}

/**
 * out[k] = Σ_p a[aoff[k] + p] · b[boff[k] + p] over the positions p of spans ([0, len) by default;
 * a and b resident). The summation order of a pair depends only on the spans: equal pairs give
 * equal bits whatever the list and the threads.
 */
export function convSddmm(aoff: Int32Array, boff: Int32Array, a: Float32Array, b: Float32Array, len: number, out?: Float32Array, spans?: readonly number[]): Float32Array {
  checkInt(len, 'convSddmm: len');
  const nnz = aoff.length;
  need(boff, nnz, 'convSddmm: boff');
  const e = E();
  if (!e.resident(a) || !e.resident(b)) throw new Error('convSddmm: a and b must be arrays of the kernels\' memory');
  const pa = e.input('row', aoff, nnz);
  const pb = e.input('col', boff, nnz);
  const ps = spanTable(spans ?? [0, len], len, 'convSddmm');
  const po = e.output('pairs', out, nnz, 'convSddmm');
  const threads = e.fanout(nnz * ps.positions, PAR_MIN_MACS);
  const cuts = splitEven(0, nnz, threads > 1 ? Math.min(threads * CHUNKS_PER_THREAD, nnz) : 1, 1);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([pa, pb, a.byteOffset, b.byteOffset, po, ps.ptr, ps.count, cuts[t], cuts[t + 1]]);
  e.run(OP_CONV_SDDMM, chunks, threads);
  return e.result(po, out, nnz);
}

/** out[r] = Σ_{p < len} src[base + r·stride + p] for r < rows (src resident). */
export function sumRows(src: Float32Array, base: number, rows: number, stride: number, len: number): Float32Array {
  checkInt(rows, 'sumRows: rows');
  const e = E();
  if (!e.resident(src)) throw new Error('sumRows: src must be an array of the kernels\' memory');
  if (rows > 0) need(src, base + (rows - 1) * stride + len, 'sumRows: src');
  const po = e.output('sums', undefined, rows, 'sumRows');
  const threads = e.fanout(rows * len, PAR_MIN_ELEMS * 8);
  const cuts = splitEven(0, rows, threads > 1 ? Math.min(rows, threads * 2) : 1, 1);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([src.byteOffset + 4 * base, po, stride, len, cuts[t], cuts[t + 1]]);
  e.run(OP_SUM_ROWS, chunks, threads);
  return e.result(po, undefined, rows);
}

// ---------------------------------------------------------------------------------------------
// Batch norm (channels last: M rows of C) and the 2x2 max pool's gradient

// Row chunks of a channel reduction: a fixed count, so that the sums (added in chunk order, in
// float64) do not depend on the number of threads.
const SUM_CHUNKS = 8;

function rowChunks(M: number, work: number, parts = 0): { cuts: number[]; threads: number } {
  const threads = E().fanout(work, PAR_MIN_ELEMS);
  const n = parts || (threads > 1 ? threads * 2 : 1);
  return { cuts: splitEven(0, M, Math.max(1, Math.min(M, n)), 1), threads };
}

/** Per-channel partial sums over fixed row chunks, added in chunk order in float64. */
function reduceChannels(op: number, M: number, C: number, width: number, args: (out: number, m0: number, m1: number) => number[]): Float64Array {
  const e = E();
  const { cuts, threads } = rowChunks(M, M * C, SUM_CHUNKS);
  const parts = cuts.length - 1;
  const po = e.scratchOff('channelSums', 4 * width * C * parts);
  const chunks: number[][] = [];
  for (let t = 0; t < parts; t++) chunks.push(args(po + 4 * width * C * t, cuts[t], cuts[t + 1]));
  e.run(op, chunks, threads);
  const partial = e.f32(po, width * C * parts);
  const out = new Float64Array(width * C);
  for (let t = 0; t < parts; t++) for (let i = 0; i < width * C; i++) out[i] += partial[t * width * C + i];
  return out;
}

/**
 * Channel means and biased variances of x (M x C, channels last): two passes (sum, then squared
 * deviations). `resident` is x in the kernels' memory (itself, or a scratch copy valid until the
 * next kernel call), for passing on to batchNormApply without a second copy.
 */
export function channelMoments(x: Float32Array, M: number, C: number): { mean: Float32Array; variance: Float32Array; resident: Float32Array } {
  checkInt(M, 'channelMoments: M'); checkInt(C, 'channelMoments: C');
  need(x, M * C, 'channelMoments: x');
  const e = E();
  const px = e.input('bnX', x, M * C);
  const sums = reduceChannels(OP_CHANNEL_SUMS, M, C, 1, (out, m0, m1) => [px, 0, out, C, m0, m1, 0]);
  const mean = Float32Array.from(sums, (s) => s / Math.max(1, M));
  const pm = e.input('bnMean', mean, C);
  const sq = reduceChannels(OP_CHANNEL_SUMS, M, C, 1, (out, m0, m1) => [px, pm, out, C, m0, m1, 1]);
  return { mean, variance: Float32Array.from(sq, (s) => s / Math.max(1, M)), resident: e.f32(px, M * C) };
}

/** y = x·scale + shift (+ residual), then ReLU if asked; x (and residual) M x C. */
export function batchNormApply(x: Float32Array, M: number, C: number, scale: Float32Array, shift: Float32Array, relu: boolean, residual?: Float32Array, out?: Float32Array): Float32Array {
  checkInt(M, 'batchNormApply: M'); checkInt(C, 'batchNormApply: C');
  need(x, M * C, 'batchNormApply: x'); need(scale, C, 'batchNormApply: scale'); need(shift, C, 'batchNormApply: shift');
  if (residual) need(residual, M * C, 'batchNormApply: residual');
  const e = E();
  const px = e.input('bnX', x, M * C);
  const pr = residual ? e.input('bnRes', residual, M * C) : 0;
  const ps = e.input('bnScale', scale, C);
  const pt = e.input('bnShift', shift, C);
  const py = e.output('bnY', out, M * C, 'batchNormApply');
  const { cuts, threads } = rowChunks(M, M * C);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([px, pr, py, ps, pt, C, relu ? 1 : 0, cuts[t], cuts[t + 1]]);
  e.run(OP_BN_FORWARD, chunks, threads);
  return e.result(py, out, M * C);
}

/**
 * The batch-norm backward pass for y = relu?(bn(x) + residual): with g = dy masked by y > 0
 * (relu), returns dbeta = Σ g, dgamma = Σ g·(x - mean)·invstd, dx, and dres = g (residual).
 */
export function batchNormBackward(
  dy: Float32Array, y: Float32Array, x: Float32Array, M: number, C: number,
  mean: Float32Array, invstd: Float32Array, gamma: Float32Array, relu: boolean, residual: boolean,
): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array; dres?: Float32Array } {
  checkInt(M, 'batchNormBackward: M'); checkInt(C, 'batchNormBackward: C');
  for (const [a, n] of [[dy, 'dy'], [y, 'y'], [x, 'x']] as const) need(a, M * C, `batchNormBackward: ${n}`);
  const e = E();
  const pd = e.input('bnDy', dy, M * C);
  const py = e.input('bnY2', y, M * C);
  const px = e.input('bnX', x, M * C);
  const pm = e.input('bnMean', mean, C);
  const sums = reduceChannels(OP_BN_BACKWARD_SUMS, M, C, 2, (out, m0, m1) => [pd, py, px, pm, out, C, relu ? 1 : 0, m0, m1]);
  const dbeta = new Float32Array(C), dgamma = new Float32Array(C);
  const a = new Float32Array(C), k1 = new Float32Array(C), k2 = new Float32Array(C);
  const count = Math.max(1, M);
  for (let c = 0; c < C; c++) {
    dbeta[c] = sums[c];
    dgamma[c] = sums[C + c] * invstd[c];
    a[c] = gamma[c] * invstd[c];
    k1[c] = -(a[c] * invstd[c] * dgamma[c]) / count;
    k2[c] = -(a[c] * dbeta[c]) / count;
  }
  const pa = e.input('bnA', a, C), p1 = e.input('bnK1', k1, C), p2 = e.input('bnK2', k2, C);
  const pdx = e.scratchOff('bnDx', 4 * M * C);
  const pres = residual ? e.scratchOff('bnDres', 4 * M * C) : 0;
  const { cuts, threads } = rowChunks(M, M * C);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([pd, py, px, pm, pa, p1, p2, pdx, pres, C, relu ? 1 : 0, cuts[t], cuts[t + 1]]);
  e.run(OP_BN_BACKWARD, chunks, threads);
  return { dx: e.f32(pdx, M * C), dgamma, dbeta, ...(residual ? { dres: e.f32(pres, M * C) } : {}) };
}

/** Gradient of a 2x2 stride-2 max pool of NHWC x (n x h x w x c) into output ho x wo: views of scratch. */
export function maxPool2Grad(x: Float32Array, dy: Float32Array, n: number, h: number, w: number, c: number, ho: number, wo: number): Float32Array {
  for (const [v, k] of [[n, 'n'], [h, 'h'], [w, 'w'], [c, 'c'], [ho, 'ho'], [wo, 'wo']] as const) checkInt(v, `maxPool2Grad: ${k}`);
  if (ho > Math.ceil(h / 2) || wo > Math.ceil(w / 2)) throw new RangeError(`maxPool2Grad: ${ho}x${wo} output for a ${h}x${w} input`);
  need(x, n * h * w * c, 'maxPool2Grad: x'); need(dy, n * ho * wo * c, 'maxPool2Grad: dy');
  const e = E();
  const px = e.input('poolX', x, n * h * w * c);
  const pd = e.input('poolDy', dy, n * ho * wo * c);
  const po = e.scratchOff('poolDx', 4 * n * h * w * c);
  const { cuts, threads } = splitForThreads(n, n * h * w * c);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([px, pd, po, h, w, c, ho, wo, cuts[t], cuts[t + 1]]);
  e.run(OP_MAXPOOL2_GRAD, chunks, threads);
  return e.f32(po, n * h * w * c);
}

const bitsView = new DataView(new ArrayBuffer(4));
/** A float32 passed through the int32 job table as its bits. */
function bitsOfFloat(v: number): number { bitsView.setFloat32(0, v); return bitsView.getInt32(0); }
function floatOfBits(b: number): number { bitsView.setInt32(0, b); return bitsView.getFloat32(0); }

/**
 * Layer norm of M rows of D (over each row): y (a view of scratch, valid until the next kernel
 * call) and each row's mean and inverse std (copies). x must be resident.
 */
export function layerNormForward(x: Float32Array, M: number, D: number, gamma: Float32Array, beta: Float32Array, eps: number): { y: Float32Array; mean: Float32Array; invstd: Float32Array } {
  checkInt(M, 'layerNormForward: M'); checkInt(D, 'layerNormForward: D');
  need(x, M * D, 'layerNormForward: x'); need(gamma, D, 'layerNormForward: gamma'); need(beta, D, 'layerNormForward: beta');
  const e = E();
  if (!e.resident(x)) throw new Error('layerNormForward: x must be an array of the kernels\' memory');
  const pg = e.input('lnGamma', gamma, D), pb = e.input('lnBeta', beta, D);
  const py = e.scratchOff('lnY', 4 * M * D);
  const ps = e.scratchOff('lnStats', 8 * M);
  const { cuts, threads } = rowChunks(M, M * D);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([x.byteOffset, py, pg, pb, ps, ps + 4 * M, D, bitsOfFloat(eps), cuts[t], cuts[t + 1]]);
  e.run(OP_LN_FORWARD, chunks, threads);
  return { y: e.f32(py, M * D), mean: e.f32(ps, M).slice(), invstd: e.f32(ps + 4 * M, M).slice() };
}

/** The backward pass of layerNormForward: dx (a view of scratch), dgamma, dbeta. x must be resident. */
export function layerNormBackward(dy: Float32Array, x: Float32Array, M: number, D: number, gamma: Float32Array, mean: Float32Array, invstd: Float32Array): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  checkInt(M, 'layerNormBackward: M'); checkInt(D, 'layerNormBackward: D');
  need(dy, M * D, 'layerNormBackward: dy'); need(x, M * D, 'layerNormBackward: x');
  const e = E();
  if (!e.resident(x)) throw new Error('layerNormBackward: x must be an array of the kernels\' memory');
  const pd = e.input('lnDy', dy, M * D);
  const pg = e.input('lnGamma', gamma, D);
  const pm = e.input('lnMean', mean, M), pi = e.input('lnInv', invstd, M);
  const px = e.scratchOff('lnDx', 4 * M * D);
  const sums = reduceChannels(OP_LN_BACKWARD, M, D, 2, (out, m0, m1) => [pd, x.byteOffset, pg, pm, pi, px, out, D, m0, m1]);
  return { dx: e.f32(px, M * D), dgamma: Float32Array.from(sums.subarray(0, D)), dbeta: Float32Array.from(sums.subarray(D)) };
}

/**
 * Exact GELU of x (n floats; x resident), or with dy its gradient dy · gelu'(x): a view of
 * scratch, valid until the next kernel call.
 */
export function geluOf(x: Float32Array, n: number, dy?: Float32Array): Float32Array {
  checkInt(n, 'gelu: n');
  need(x, n, 'gelu: x');
  const e = E();
  if (!e.resident(x)) throw new Error('gelu: x must be an array of the kernels\' memory');
  const pd = dy ? e.input('geluDy', dy, n) : 0;
  const py = e.scratchOff('geluY', 4 * n);
  const threads = e.fanout(n * 8, PAR_MIN_ELEMS);
  const cuts = splitEven(0, n, threads > 1 ? threads * 2 : 1, 16);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([x.byteOffset, pd, py, dy ? 1 : 0, cuts[t], cuts[t + 1]]);
  e.run(OP_GELU, chunks, threads);
  return e.f32(py, n);
}

/**
 * out[r·ystride + p] = Σ_{k < K} A(r, k) · x[offs[k] + p] for rows r < rows and positions p < len,
 * A(r, k) = a[r·ars + k·aks]: a dense product whose K "rows" of x are picked by offsets (a
 * convolution over planes with dense weights, or a plain product with offsets k·stride). x and out
 * must be resident; threads split the positions.
 */
export function denseRows(a: Float32Array, ars: number, aks: number, offs: Int32Array, K: number, rows: number, x: Float32Array, len: number, out: Float32Array, ystride: number, spans?: readonly number[]): Float32Array {
  for (const [v, k] of [[ars, 'ars'], [aks, 'aks'], [K, 'K'], [rows, 'rows'], [len, 'len'], [ystride, 'ystride']] as const) checkInt(v, `denseRows: ${k}`);
  need(offs, K, 'denseRows: offs');
  const an = rows > 0 && K > 0 ? (rows - 1) * ars + (K - 1) * aks + 1 : 0;
  need(a, an, 'denseRows: a');
  if (rows > 0) need(out, (rows - 1) * ystride + len, 'denseRows: out');
  const e = E();
  if (!e.resident(x) || !e.resident(out)) throw new Error('denseRows: x and out must be arrays of the kernels\' memory');
  const pa = e.input('denseA', a, an);
  const po = e.input('denseOffs', offs, K);
  const threads = e.fanout(rows * K * len, PAR_MIN_MACS);
  // blocks of A that stay in L2 (~256 KiB) while every column block passes over them: up to
  // DENSE_BLOCK_K of the K products per call (the calls add up in order), rows in blocks of A
  const kb = K <= 2 * DENSE_BLOCK_K ? K : DENSE_BLOCK_K;
  const rb = Math.max(4, Math.floor(DENSE_BLOCK_FLOATS / Math.max(1, kb)) & ~3);
  const pieces = positionPieces(spans ?? [0, len], len, threads, 256, 8, 'denseRows');
  for (let k0 = 0; ; k0 += kb) {
    const k = Math.min(kb, K - k0);
    let chunks: number[][] = [];
    for (let r0 = 0; r0 < rows; r0 += rb) {
      for (let t = 0; t < pieces.length; t += 2) {
        chunks.push([pa + 4 * k0 * aks, ars, aks, x.byteOffset, po + 4 * k0, k, out.byteOffset, ystride, r0, Math.min(rows, r0 + rb), pieces[t], pieces[t + 1], k0 > 0 ? 1 : 0]);
        if (chunks.length === MAX_CHUNKS) { e.run(OP_DENSE_ROWS, chunks, threads); chunks = []; }
      }
    }
    if (chunks.length) e.run(OP_DENSE_ROWS, chunks, threads);
    if (k0 + kb >= K) break;
  }
  return out;
}

/**
 * Every pair of an offset dot product: out[r·rowStride + j·colStride] = Σ_p a[aoff[r] + p] · b[boff[j] + p]
 * for r < aoff.length, j < boff.length, p over the positions of spans ([0, len) by default; a and
 * b resident; threads split the columns j). A view of scratch, valid until the next kernel call,
 * unless `out` is given.
 */
export function denseDots(aoff: Int32Array, boff: Int32Array, a: Float32Array, b: Float32Array, len: number, rowStride: number, colStride: number, out?: Float32Array, spans?: readonly number[]): Float32Array {
  checkInt(len, 'denseDots: len'); checkInt(rowStride, 'denseDots: rowStride'); checkInt(colStride, 'denseDots: colStride');
  const rows = aoff.length, cols = boff.length;
  const size = rows && cols ? (rows - 1) * rowStride + (cols - 1) * colStride + 1 : 0;
  const e = E();
  if (!e.resident(a) || !e.resident(b)) throw new Error('denseDots: a and b must be arrays of the kernels\' memory');
  const pa = e.input('row', aoff, rows);
  const pb = e.input('col', boff, cols);
  const ps = spanTable(spans ?? [0, len], len, 'denseDots');
  const po = e.output('pairs', out, size, 'denseDots');
  const threads = e.fanout(rows * cols * ps.positions, PAR_MIN_MACS);
  const cuts = splitEven(0, cols, threads > 1 ? Math.min(threads * CHUNKS_PER_THREAD, Math.ceil(cols / 2)) : 1, 2);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([a.byteOffset, pa, rows, b.byteOffset, pb, po, rowStride, colStride, ps.ptr, ps.count, cuts[t], cuts[t + 1]]);
  e.run(OP_DENSE_DOTS, chunks, threads);
  return out !== undefined ? e.result(po, out, size) : e.f32(po, size);
}

/** The calls that split heads [0, heads) of an attention, and the scratch each call needs (floats). */
function headChunks(heads: number, t: number, d: number): { cuts: number[]; threads: number; scratch: number } {
  const e = E();
  const threads = e.fanout(heads * t * t * d * 4, PAR_MIN_MACS);
  const cuts = splitEven(0, heads, threads > 1 ? Math.min(heads, threads * CHUNKS_PER_THREAD) : 1, 1);
  return { cuts, threads, scratch: 8 * t * d + t * t + t + d + 16 };
}

function checkAttention(what: string, qkv: Float32Array, n: number, t: number, heads: number, d: number): void {
  for (const [v, k] of [[n, 'n'], [t, 't'], [heads, 'heads'], [d, 'd']] as const) checkInt(v, `${what}: ${k}`);
  need(qkv, n * t * 3 * heads * d, `${what}: qkv`);
}

/**
 * Multi-head attention softmax(scale · q kᵀ) v of every head from the packed projections qkv
 * [n·t, 3·heads·d] (q|k|v, head, d): out [n·t, heads·d] (head, d) and the attention [n·heads, t, t],
 * both views of scratch, valid until the next kernel call.
 */
export function attentionForward(qkv: Float32Array, n: number, t: number, heads: number, d: number, scale: number): { out: Float32Array; attn: Float32Array } {
  checkAttention('attentionForward', qkv, n, t, heads, d);
  const e = E();
  const pq = e.input('attnQkv', qkv, n * t * 3 * heads * d);
  const po = e.scratchOff('attnOut', 4 * n * t * heads * d);
  const pa = e.scratchOff('attnA', 4 * n * heads * t * t);
  const { cuts, threads, scratch } = headChunks(n * heads, t, d);
  const ps = e.scratchOff('attnScratch', 4 * (cuts.length - 1) * scratch);
  const chunks: number[][] = [];
  for (let c = 0; c + 1 < cuts.length; c++) chunks.push([pq, po, pa, t, heads, d, bitsOfFloat(scale), cuts[c], cuts[c + 1], ps + 4 * c * scratch]);
  e.run(OP_ATTN_FORWARD, chunks, threads);
  return { out: e.f32(po, n * t * heads * d), attn: e.f32(pa, n * heads * t * t) };
}

/** The gradient of attentionForward's out (dy [n·t, heads·d]) with respect to qkv: a view of scratch. */
export function attentionBackward(qkv: Float32Array, attn: Float32Array, dy: Float32Array, n: number, t: number, heads: number, d: number, scale: number): Float32Array {
  checkAttention('attentionBackward', qkv, n, t, heads, d);
  need(attn, n * heads * t * t, 'attentionBackward: attn'); need(dy, n * t * heads * d, 'attentionBackward: dy');
  const e = E();
  const pq = e.input('attnQkv', qkv, n * t * 3 * heads * d);
  const pa = e.input('attnA', attn, n * heads * t * t);
  const pd = e.input('attnDy', dy, n * t * heads * d);
  const pg = e.scratchOff('attnDqkv', 4 * n * t * 3 * heads * d);
  const { cuts, threads, scratch } = headChunks(n * heads, t, d);
  const ps = e.scratchOff('attnScratch', 4 * (cuts.length - 1) * scratch);
  const chunks: number[][] = [];
  for (let c = 0; c + 1 < cuts.length; c++) chunks.push([pq, pa, pd, pg, t, heads, d, bitsOfFloat(scale), cuts[c], cuts[c + 1], ps + 4 * c * scratch]);
  e.run(OP_ATTN_BACKWARD, chunks, threads);
  return e.f32(pg, n * t * 3 * heads * d);
}

/** Threads the kernels may use (1 = the calling thread only). Default: min(2, available cores). */
/** Wall time of every kernel call by scope and kernel, while a profile is on (bench step --profile). */
let kernelTimes: { scope: string; ops: Map<string, { calls: number; ms: number }> } | null = null;

/** Starts timing every kernel call; calls are booked under `scope` (see setKernelScope). */
export function startKernelTimes(scope: string): void { kernelTimes = { scope, ops: new Map() }; }

/** The scope later kernel calls are booked under; returns the previous one. */
export function setKernelScope(scope: string): string {
  if (!kernelTimes) return scope;
  const prev = kernelTimes.scope;
  kernelTimes.scope = scope;
  return prev;
}

/** Stops timing; what was timed, per scope and kernel. */
export function stopKernelTimes(): { scope: string; kernel: string; calls: number; ms: number }[] {
  const ops = kernelTimes?.ops ?? new Map<string, { calls: number; ms: number }>();
  kernelTimes = null;
  return [...ops.entries()].map(([key, e]) => { const [scope, kernel] = key.split('\0'); return { scope, kernel, ...e }; });
}

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

/** Whether an array is a view of the kernels' memory (kernels read it in place). */
export function isResident(a: ArrayBufferView): boolean {
  return E().resident(a);
}

/** Returns an array from allocFloat32/allocInt32 to the kernels' heap. */
export function release(a: Float32Array | Int32Array): void {
  const e = E();
  if (!e.resident(a)) throw new Error('release: not an array of the kernels\' memory');
  e.release(a.byteOffset);
}

// ---------------------------------------------------------------------------------------------
// The elementwise parts of a csr MLP step on feature-major activations (rows x batch, resident)

function residentOnly(a: Float32Array, what: string): void {
  if (!E().resident(a)) throw new Error(`${what} must be an array of the kernels' memory`);
}

/** yT[r, :] += bias[r], then ReLU when asked, in place (yT resident, rows x batch). */
export function biasRelu(yT: Float32Array, bias: Float32Array, rows: number, batch: number, relu: boolean): void {
  checkInt(rows, 'biasRelu: rows'); checkInt(batch, 'biasRelu: batch');
  need(yT, rows * batch, 'biasRelu: yT'); need(bias, rows, 'biasRelu: bias');
  residentOnly(yT, 'biasRelu: yT');
  const e = E();
  const pb = e.input('bias', bias, rows);
  const threads = e.fanout(rows * batch, PAR_MIN_ELEMS * 4);
  const cuts = splitEven(0, rows, threads > 1 ? Math.min(rows, threads * 2) : 1, 1);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([yT.byteOffset, pb, batch, relu ? 1 : 0, cuts[t], cuts[t + 1]]);
  e.run(OP_BIAS_RELU, chunks, threads);
}

/** g[i] *= (x[i] > 0 ? 1 : 0) for i < n, in place (both resident): the ReLU's gradient. */
export function reluGrad(g: Float32Array, x: Float32Array, n: number): void {
  checkInt(n, 'reluGrad: n');
  need(g, n, 'reluGrad: g'); need(x, n, 'reluGrad: x');
  residentOnly(g, 'reluGrad: g'); residentOnly(x, 'reluGrad: x');
  const e = E();
  const threads = e.fanout(n, PAR_MIN_ELEMS * 4);
  const cuts = splitEven(0, n, threads > 1 ? threads * 2 : 1, 16);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([g.byteOffset, x.byteOffset, cuts[t], cuts[t + 1]]);
  e.run(OP_RELU_GRAD, chunks, threads);
}

/**
 * One SGD step of a parameter with PyTorch's semantics (g += wd·w when `decay`; v = momentum·v + g
 * when `momentum` > 0; w -= lr·v, or lr·g without momentum), each operation rounded to float32
 * exactly as a float32 loop would: the new weights, and the new velocity (null without momentum),
 * as views of scratch, valid until the next kernel call. `w`, `g`, `v` may live anywhere.
 */
export function sgdUpdate(w: Float32Array, g: Float32Array, v: Float32Array | null, o: { lr: number; momentum: number; weightDecay: number; decay: boolean }): { w: Float32Array; v: Float32Array | null } {
  const n = w.length;
  need(g, n, 'sgdUpdate: g');
  const withMomentum = o.momentum > 0;
  if (withMomentum) { if (!v) throw new RangeError('sgdUpdate: momentum without a velocity'); need(v, n, 'sgdUpdate: v'); }
  const e = E();
  const pw = e.scratchOff('sgdW', 4 * n), pg = e.input('sgdG', g, n);
  e.f32(pw, n).set(w);
  let pv = 0;
  if (withMomentum) { pv = e.scratchOff('sgdV', 4 * n); e.f32(pv, n).set(v!); }
  const flags = (o.decay && o.weightDecay > 0 ? 1 : 0) | (withMomentum ? 2 : 0);
  const threads = e.fanout(n, PAR_MIN_ELEMS * 4);
  const cuts = splitEven(0, n, threads > 1 ? threads * 2 : 1, 16);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([pw, pg, pv, cuts[t], cuts[t + 1], bitsOfFloat(o.lr), bitsOfFloat(o.momentum), bitsOfFloat(o.weightDecay), flags]);
  e.run(OP_SGD, chunks, threads);
  return { w: e.f32(pw, n), v: withMomentum ? e.f32(pv, n) : null };
}

/** out[r] = Σ_b src[r, b], summed in float64 in batch order (src resident, rows x batch): a fresh array. */
export function rowSums64(src: Float32Array, rows: number, batch: number): Float32Array {
  checkInt(rows, 'rowSums64: rows'); checkInt(batch, 'rowSums64: batch');
  need(src, rows * batch, 'rowSums64: src');
  residentOnly(src, 'rowSums64: src');
  const e = E();
  const po = e.output('sums', undefined, rows, 'rowSums64');
  const threads = e.fanout(rows * batch, PAR_MIN_ELEMS * 4);
  const cuts = splitEven(0, rows, threads > 1 ? Math.min(rows, threads * 2) : 1, 1);
  const chunks: number[][] = [];
  for (let t = 0; t + 1 < cuts.length; t++) chunks.push([src.byteOffset, po, batch, cuts[t], cuts[t + 1]]);
  e.run(OP_ROW_SUMS64, chunks, threads);
  return e.result(po, undefined, rows);
}

/**
 * The distinct values of `idx` (ascending) and each entry's position among them: the rows of a
 * feature-major operand that a list of pairs touches, for staging just those rows. With `size`
 * (every value lies in [0, size)) and a domain not much larger than the list, one marking pass
 * over the domain replaces the sort (a layer's columns after every update: O(nnz + size)).
 */
export function distinct(idx: Int32Array, size?: number): { values: Int32Array; index: Int32Array } {
  if (size !== undefined && size <= DISTINCT_MARK_FACTOR * idx.length) return distinctMarked(idx, size);
  const sorted = Int32Array.from(idx).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i];
  const values = sorted.slice(0, n);
  const index = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    let lo = 0, hi = n - 1;
    const v = idx[k];
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (values[mid] < v) lo = mid + 1; else hi = mid; }
    index[k] = lo;
  }
  return { values, index };
}

/** a domain up to this many times the list's length is marked rather than sorted (distinct) */
const DISTINCT_MARK_FACTOR = 16;

function distinctMarked(idx: Int32Array, size: number): { values: Int32Array; index: Int32Array } {
  const position = new Int32Array(size);
  for (let k = 0; k < idx.length; k++) {
    const v = idx[k];
    if (!(v >= 0 && v < size)) throw new RangeError(`distinct: value ${v} outside [0, ${size})`);
    position[v] = 1;
  }
  let n = 0;
  for (let v = 0; v < size; v++) if (position[v]) position[v] = ++n;
  const values = new Int32Array(n);
  for (let v = 0; v < size; v++) if (position[v]) values[position[v] - 1] = v;
  const index = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) index[k] = position[idx[k]] - 1;
  return { values, index };
}

/** out[i, :] = src[rows[i], :] for a feature-major src of `batch` columns. */
export function gatherRows(src: Float32Array, rows: Int32Array, batch: number, out: Float32Array): Float32Array {
  need(out, rows.length * batch, 'gatherRows: out');
  for (let i = 0; i < rows.length; i++) out.set(src.subarray(rows[i] * batch, (rows[i] + 1) * batch), i * batch);
  return out;
}

/**
 * sddmm of operands that need not live in the kernels' memory (nor fit in it): only the rows the
 * pairs touch are staged there, so the cost is O(|pairs| x batch) whatever the operands' size.
 * Every output is the same dot product as sddmm's (bit for bit).
 */
export function sddmmGathered(row: Int32Array, col: Int32Array, aT: Float32Array, bT: Float32Array, batch: number): Float32Array {
  const e = E();
  if (e.resident(aT) && e.resident(bT)) return sddmm(row, col, aT, bT, batch);
  need(col, row.length, 'sddmm: col');
  const r = distinct(row), c = distinct(col);
  const pa = e.scratchOff('gatherA', 4 * r.values.length * batch);
  const a = gatherRows(aT, r.values, batch, e.f32(pa, r.values.length * batch));
  const pb = e.scratchOff('gatherB', 4 * c.values.length * batch);
  const b = gatherRows(bT, c.values, batch, e.f32(pb, c.values.length * batch));
  return sddmm(r.index, c.index, a, b, batch);
}
