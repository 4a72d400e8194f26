// Correctness of the sparse kernels (models/sparse/kernels) against float64 dense references in
// plain JS, on fresh random inputs: odd sizes, empty rows, nnz = 0, batches that are not multiples
// of 4, unsorted rows, cache-blocked (panel) sizes, resident and copied arguments, 1 and 2 threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng } from '../core/rng.js';
import {
  spmm, spmmT, sddmm, transpose, setThreads, kernelInfo, allocFloat32, allocInt32, release, attentionForward, attentionBackward, geluOf, denseRows, denseDots, convSddmm, LateHelpers, distinct, sgdUpdate, type Csr,
} from '../models/sparse/kernels/index.js';
import { bits } from './helpers.js';

const U = 2 ** -24; // float32 unit roundoff

function randomCsr(rng: Rng, rows: number, cols: number, density: number, opts: { emptyEvery?: number; unsorted?: boolean } = {}): Csr {
  const rowPtr = new Int32Array(rows + 1);
  const ci: number[] = [];
  const vs: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (!(opts.emptyEvery && r % opts.emptyEvery === 0)) {
      const start = ci.length;
      for (let c = 0; c < cols; c++) if (rng.float() < density) { ci.push(c); vs.push(rng.uniform(-1, 1)); }
      if (opts.unsorted) {
        const seg = rng.shuffle(ci.slice(start));
        for (let i = 0; i < seg.length; i++) ci[start + i] = seg[i];
      }
    }
    rowPtr[r + 1] = ci.length;
  }
  return { rows, cols, rowPtr, colIdx: Int32Array.from(ci), values: Float32Array.from(vs) };
}

function randomArray(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(-1, 1);
  return a;
}

/** Float64 reference and, per output, the bound K·u·Σ|terms| (K = number of terms). */
interface Ref { value: Float64Array; bound: Float64Array }

function refSpmm(a: Csr, x: Float32Array, B: number): Ref {
  const value = new Float64Array(a.rows * B), abs = new Float64Array(a.rows * B), bound = new Float64Array(a.rows * B);
  for (let r = 0; r < a.rows; r++) {
    const k0 = a.rowPtr[r], k1 = a.rowPtr[r + 1];
    for (let k = k0; k < k1; k++) {
      const c = a.colIdx[k], v = a.values[k];
      for (let b = 0; b < B; b++) { const t = v * x[c * B + b]; value[r * B + b] += t; abs[r * B + b] += Math.abs(t); }
    }
    for (let b = 0; b < B; b++) bound[r * B + b] = (k1 - k0 + 2) * U * abs[r * B + b];
  }
  return { value, bound };
}

function refSpmmT(a: Csr, d: Float32Array, B: number): Ref {
  const value = new Float64Array(a.cols * B), abs = new Float64Array(a.cols * B), count = new Int32Array(a.cols);
  for (let r = 0; r < a.rows; r++) {
    for (let k = a.rowPtr[r]; k < a.rowPtr[r + 1]; k++) {
      const c = a.colIdx[k], v = a.values[k];
      count[c]++;
      for (let b = 0; b < B; b++) { const t = v * d[r * B + b]; value[c * B + b] += t; abs[c * B + b] += Math.abs(t); }
    }
  }
  const bound = abs.map((s, i) => (count[Math.floor(i / Math.max(1, B))] + 2) * U * s);
  return { value, bound };
}

function refSddmm(row: Int32Array, col: Int32Array, aT: Float32Array, bT: Float32Array, B: number): Ref {
  const value = new Float64Array(row.length), bound = new Float64Array(row.length);
  for (let k = 0; k < row.length; k++) {
    let s = 0, abs = 0;
    for (let i = 0; i < B; i++) { const t = aT[row[k] * B + i] * bT[col[k] * B + i]; s += t; abs += Math.abs(t); }
    value[k] = s; bound[k] = (B + 2) * U * abs;
  }
  return { value, bound };
}

function assertClose(got: Float32Array, ref: Ref, what: string): void {
  assert.equal(got.length, ref.value.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - ref.value[i]);
    if (!(err <= ref.bound[i] + 1e-30)) {
      assert.fail(`${what}: element ${i}: got ${got[i]}, want ${ref.value[i]} (error ${err.toExponential(3)} > bound ${ref.bound[i].toExponential(3)})`);
    }
  }
}

function expandRows(a: Csr): Int32Array {
  const row = new Int32Array(a.rowPtr[a.rows]);
  for (let r = 0; r < a.rows; r++) row.fill(r, a.rowPtr[r], a.rowPtr[r + 1]);
  return row;
}

// [rows, cols, batch, density, options]
const CASES: [number, number, number, number, { emptyEvery?: number; unsorted?: boolean }][] = [
  [1, 1, 1, 1, {}],
  [7, 5, 3, 0.4, { emptyEvery: 3 }],
  [33, 65, 128, 0.1, { emptyEvery: 5 }],
  [100, 37, 67, 0.15, {}],
  [64, 64, 1, 0.1, { unsorted: true }],
  [9, 11, 6, 0, {}],                                 // nnz = 0
  [0, 4, 5, 0.5, {}],                                 // no rows
  [500, 701, 130, 0.1, { emptyEvery: 7 }],            // big enough for two threads
  [257, 1023, 61, 0.2, { unsorted: true }],
  [300, 3001, 131, 0.02, { emptyEvery: 11 }],         // dense operand > L2 budget: panels
  [211, 2999, 160, 0.03, { unsorted: true }],         // panels with unsorted rows
  [200, 6007, 136, 0.01, { emptyEvery: 6 }],          // wide: spmmT's output in panels, 1 and 2 threads
  [1500, 400, 24, 0.05, {}],                          // tall, narrow batch
];

for (const threads of [1, 2]) {
  test(`spmm and spmmT match a float64 reference (${threads} thread${threads > 1 ? 's' : ''})`, () => {
    setThreads(threads);
    assert.equal(kernelInfo().threads, threads);
    const rng = new Rng(1234 + threads, 'kernels-spmm');
    for (const [rows, cols, B, density, opts] of CASES) {
      const a = randomCsr(rng, rows, cols, density, opts);
      const what = `${rows}x${cols} B=${B} nnz=${a.rowPtr[rows]}`;
      const x = randomArray(rng, cols * B);
      const d = randomArray(rng, rows * B);
      assertClose(spmm(a, x, B), refSpmm(a, x, B), `spmm ${what}`);
      assertClose(spmmT(a, d, B), refSpmmT(a, d, B), `spmmT ${what}`);
    }
  });

  test(`sddmm matches a float64 reference (${threads} thread${threads > 1 ? 's' : ''})`, () => {
    setThreads(threads);
    const rng = new Rng(99 + threads, 'kernels-sddmm');
    for (const [rows, cols, B, density, opts] of CASES) {
      const a = randomCsr(rng, rows, cols, density, opts);
      const aT = randomArray(rng, rows * B), bT = randomArray(rng, cols * B);
      const row = expandRows(a);
      assertClose(sddmm(row, a.colIdx, aT, bT, B), refSddmm(row, a.colIdx, aT, bT, B), `sddmm csr ${rows}x${cols} B=${B}`);
      // arbitrary pairs, repeats allowed (GSE's sampled subsets)
      if (rows > 0 && cols > 0) {
        const m = 1 + rng.int(5000);
        const pr = new Int32Array(m), pc = new Int32Array(m);
        for (let k = 0; k < m; k++) { pr[k] = rng.int(rows); pc[k] = rng.int(cols); }
        assertClose(sddmm(pr, pc, aT, bT, B), refSddmm(pr, pc, aT, bT, B), `sddmm pairs ${rows}x${cols} B=${B}`);
      }
    }
  });

  test(`transpose is exact (${threads} thread${threads > 1 ? 's' : ''})`, () => {
    setThreads(threads);
    const rng = new Rng(5 + threads, 'kernels-transpose');
    for (const [rows, cols] of [[1, 1], [3, 5], [4, 4], [7, 33], [128, 784], [131, 1027], [0, 3], [2, 0], [1000, 97]]) {
      const src = randomArray(rng, rows * cols);
      const t = transpose(src, rows, cols);
      assert.equal(t.length, rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
        if (t[c * rows + r] !== src[r * cols + c]) assert.fail(`transpose ${rows}x${cols}: (${r},${c})`);
      }
    }
  });
}

test('one and two threads give bit-identical results', () => {
  const rng = new Rng(77, 'kernels-determinism');
  const a = randomCsr(rng, 600, 3100, 0.03, { emptyEvery: 9 });
  for (const B of [128, 130, 61]) {
    const x = randomArray(rng, a.cols * B), d = randomArray(rng, a.rows * B);
    const row = expandRows(a);
    const run = (threads: number) => {
      setThreads(threads);
      return [spmm(a, x, B), spmmT(a, d, B), sddmm(row, a.colIdx, d, x, B), transpose(x, a.cols, B)];
    };
    const one = run(1), two = run(2);
    for (let i = 0; i < one.length; i++) assert.deepEqual(two[i], one[i], `kernel ${i}, B=${B}`);
  }
});

test('many consecutive parallel calls agree with one thread', () => {
  const rng = new Rng(11, 'kernels-stress');
  const a = randomCsr(rng, 256, 300, 0.1, { emptyEvery: 13 });
  const B = 128;
  const x = randomArray(rng, a.cols * B), d = randomArray(rng, a.rows * B);
  const row = expandRows(a);
  setThreads(1);
  const want = [spmm(a, x, B), spmmT(a, d, B), sddmm(row, a.colIdx, d, x, B)];
  setThreads(2);
  for (let i = 0; i < 300; i++) {
    const k = i % 3;
    const got = k === 0 ? spmm(a, x, B) : k === 1 ? spmmT(a, d, B) : sddmm(row, a.colIdx, d, x, B);
    assert.deepEqual(got, want[k], `call ${i}`);
  }
});

test('distinct: ascending distinct values and each entry\'s position among them, sorted or marked over a known domain', () => {
  const rng = new Rng(77);
  for (const [n, size] of [[0, 5], [1, 1], [50, 7], [200, 1000], [3000, 40000], [5000, 2 ** 20]]) {
    const idx = Int32Array.from({ length: n }, () => rng.int(size));
    if (n > 1) idx[n - 1] = size - 1;
    const values = Int32Array.from([...new Set(idx)].sort((a, b) => a - b));
    for (const d of [distinct(idx), distinct(idx, size)]) {
      assert.deepEqual(d.values, values, `values, n=${n} size=${size}`);
      assert.deepEqual(Int32Array.from(d.index, (i) => d.values[i]), idx, `index, n=${n} size=${size}`);
    }
  }
  assert.throws(() => distinct(Int32Array.of(3, 9), 9), /distinct: value 9 outside \[0, 9\)/);
});

test('sgdUpdate: PyTorch SGD (weight decay, momentum) with every operation rounded to float32, bit for bit against a float32 loop, any length, one and two threads', () => {
  const rng = new Rng(5);
  const f = Math.fround;
  for (const threads of [1, 2]) {
    setThreads(threads);
    for (const n of [1, 7, 64, 1001, 300_000]) {
      const w = Float32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? -0 : rng.uniform(-1, 1)));
      const g = Float32Array.from({ length: n }, () => rng.uniform(-0.5, 0.5));
      const v = Float32Array.from({ length: n }, () => rng.uniform(-0.2, 0.2));
      for (const [momentum, weightDecay, decay] of [[0.9, 1e-4, true], [0.9, 1e-4, false], [0, 5e-4, true], [0, 0, false]] as const) {
        const lr = f(0.1), m = f(momentum), wd = f(weightDecay);
        const wantW = new Float32Array(n), wantV = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          const gi = decay && wd > 0 ? f(g[i] + f(w[i] * wd)) : g[i];
          const vi = m > 0 ? f(f(v[i] * m) + gi) : gi;
          wantV[i] = vi;
          wantW[i] = w[i] - f(vi * lr);
        }
        const w0 = w.slice(), g0 = g.slice(), v0 = v.slice();
        const got = sgdUpdate(w, g, m > 0 ? v : null, { lr, momentum: m, weightDecay: wd, decay });
        const what = `n=${n} momentum=${m} wd=${wd} decay=${decay} threads=${threads}`;
        assert.deepEqual(bits(got.w), bits(wantW), `weights, ${what}`);
        if (m > 0) assert.deepEqual(bits(got.v!), bits(wantV), `velocity, ${what}`);
        else assert.equal(got.v, null, `no velocity without momentum, ${what}`);
        assert.deepEqual([w, g, v], [w0, g0, v0], `inputs untouched, ${what}`);
      }
    }
  }
  setThreads(2);
  assert.throws(() => sgdUpdate(new Float32Array(4), new Float32Array(3), null, { lr: 0.1, momentum: 0, weightDecay: 0, decay: false }), /sgdUpdate: g has 3 elements, needs 4/);
});

test('late helpers: after a call whose caller waited longer than it computed, small calls run serial for a backoff that doubles and starts over', () => {
  const late = new LateHelpers();
  const min = 1000;
  const serialRun = () => { let n = 0; while (late.serial(min, min)) n++; return n; };
  assert.equal(late.serial(min, min), false, 'parallel at first');
  late.record(1, 0.5);
  assert.equal(late.serial(min, min), false, 'a wait shorter than the caller\'s own work is not late');
  late.record(0.01, 0.05);
  assert.equal(late.serial(min, min), false, 'a wait under 0.1 ms is noise');
  late.record(0.2, 3);
  assert.equal(late.serial(64 * min, min), false, 'a call 64x the minimum stays parallel');
  assert.equal(serialRun(), 32, 'first backoff: 32 calls');
  late.record(0.2, 3);
  assert.equal(serialRun(), 64, 'late again: doubled');
  late.record(1, 0.2);
  late.record(0.2, 3);
  assert.equal(serialRun(), 32, 'a parallel call in time starts the backoff over');
  for (let i = 0; i < 20; i++) late.record(0.2, 3);
  assert.equal(serialRun(), 8192, 'capped');
});

test('arrays in the kernels\' memory are used in place, and out is filled', () => {
  setThreads(2);
  const rng = new Rng(3, 'kernels-resident');
  const host = randomCsr(rng, 400, 900, 0.05, { emptyEvery: 4 });
  const nnz = host.rowPtr[host.rows];
  const B = 37;
  const a: Csr = {
    rows: host.rows, cols: host.cols,
    rowPtr: allocInt32(host.rows + 1), colIdx: allocInt32(nnz), values: allocFloat32(nnz),
  };
  a.rowPtr.set(host.rowPtr); a.colIdx.set(host.colIdx); a.values.set(host.values);
  const x = allocFloat32(host.cols * B); x.set(randomArray(rng, x.length));
  const y = allocFloat32(host.rows * B);
  const ref = refSpmm(host, x, B);
  assert.equal(spmm(a, x, B, y), y);
  assertClose(y, ref, 'spmm resident');
  // plain out
  const out = new Float32Array(host.rows * B);
  assert.equal(spmm(host, x.slice(), B, out), out);
  assertClose(out, ref, 'spmm copied');
  // transpose into a resident buffer, then feed spmmT from it
  const dy = randomArray(rng, B * host.rows); // batch-major B x rows
  const dyT = allocFloat32(host.rows * B);
  transpose(dy, B, host.rows, dyT);
  assertClose(spmmT(a, dyT, B), refSpmmT(host, dyT, B), 'spmmT resident');
  const freed = [a.rowPtr, a.colIdx, a.values, x, y, dyT];
  const lo = Math.min(...freed.map((v) => v.byteOffset)), hi = Math.max(...freed.map((v) => v.byteOffset + v.byteLength));
  for (const v of freed) release(v);
  // the heap is reused after release: a block of the freed size lands among the freed blocks,
  // and allocating and releasing 8 MiB many times does not grow the memory
  const again = allocFloat32(x.length);
  assert.ok(again.byteOffset >= lo && again.byteOffset + again.byteLength <= hi, `reallocated at ${again.byteOffset}, freed span [${lo}, ${hi})`);
  release(again);
  const big = allocFloat32(1 << 21);
  const size = big.buffer.byteLength;
  release(big);
  for (let i = 0; i < 50; i++) release(allocFloat32(1 << 21));
  assert.equal(allocFloat32(1).buffer.byteLength, size, 'memory did not grow');
});

test('workers see memory grown after they started', () => {
  setThreads(2);
  const rng = new Rng(21, 'kernels-grow');
  const a = randomCsr(rng, 300, 400, 0.1);
  const B = 64;
  const x0 = randomArray(rng, a.cols * B);
  spmm(a, x0, B); // workers exist
  const pad = allocFloat32(24 << 20); // 96 MiB: the memory grows
  const x = allocFloat32(a.cols * B);
  x.set(x0);
  const y = allocFloat32(a.rows * B);
  assertClose(spmm(a, x, B, y), refSpmm(a, x0, B), 'spmm after growth');
  for (const v of [pad, x, y]) release(v);
});

test('bad arguments are refused with a clear message', () => {
  const a: Csr = { rows: 2, cols: 3, rowPtr: new Int32Array([0, 1, 2]), colIdx: new Int32Array([0, 2]), values: new Float32Array([1, 2]) };
  assert.throws(() => spmm(a, new Float32Array(5), 2), /xT has 5 elements, needs 6/);
  assert.throws(() => spmm({ ...a, rowPtr: new Int32Array([0, 1]) }, new Float32Array(6), 2), /rowPtr/);
  assert.throws(() => spmmT(a, new Float32Array(6), 2, new Float32Array(5)), /out has 5 elements, needs 6/);
  assert.throws(() => spmm(a, new Float32Array(6), 1.5), /batch/);
  assert.throws(() => setThreads(0), /setThreads/);
  assert.throws(() => sddmm(new Int32Array(2), new Int32Array(1), new Float32Array(4), new Float32Array(4), 2), /col/);
});

test('worker threads do not keep the process alive', () => {
  const index = fileURLToPath(new URL('../models/sparse/kernels/index.js', import.meta.url));
  const script = `
    const K = await import(${JSON.stringify(index)});
    K.setThreads(2);
    const n = 2048, B = 128, per = 64;
    const rowPtr = new Int32Array(n + 1), colIdx = new Int32Array(n * per), values = new Float32Array(n * per).fill(1);
    for (let r = 0; r < n; r++) { rowPtr[r + 1] = (r + 1) * per; for (let j = 0; j < per; j++) colIdx[r * per + j] = (r * 7 + j * 31) % n; }
    const y = K.spmm({ rows: n, cols: n, rowPtr, colIdx, values }, new Float32Array(n * B).fill(1), B);
    if (y[0] !== per) throw new Error('wrong ' + y[0]);
    console.log('ok');`;
  // a process kept alive by its workers would be killed by the timeout (status null)
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `child failed or hung: ${r.stderr}`);
  assert.match(r.stdout, /ok/);
});

test('denseRows and denseDots (and convSddmm over spans): offset products against float64, row/column tails, position spans, any A layout, bit-equal on one and two threads', () => {
  const rng = new Rng(37);
  // the last: K cut into blocks whose sums are added in order, rows in blocks
  for (const [rows, K, len, span] of [[5, 7, 37, 50], [8, 144, 4099, 4200], [1, 3, 9, 12], [13, 20, 1030, 1100], [300, 700, 43, 60]]) {
    const x = allocFloat32(K * span);
    for (let i = 0; i < x.length; i++) x[i] = rng.uniform(-1, 1);
    // each of the K rows of the product reads x at its own offset (overlapping, unordered)
    const offs = Int32Array.from({ length: K }, () => Math.floor(rng.uniform(0, (K - 1) * span + (span - len))));
    const a = Float32Array.from({ length: rows * K }, () => rng.uniform(-1, 1));
    const out = allocFloat32(rows * len);
    const aoff = Int32Array.from({ length: rows }, () => Math.floor(rng.uniform(0, (K - 1) * span + (span - len))));
    const seen: Float32Array[] = [];
    for (const threads of [1, 2]) {
      setThreads(threads);
      for (const transposed of [false, true]) {
        // A(r, k) at r·K + k, or the same matrix stored k-major at k·rows + r
        const stored = transposed ? Float32Array.from({ length: rows * K }, (_, i) => a[(i % rows) * K + Math.floor(i / rows)]) : a;
        denseRows(stored, transposed ? 1 : K, transposed ? rows : 1, offs, K, rows, x, len, out, len);
        for (let r = 0; r < rows; r++) for (let p = 0; p < len; p++) {
          let want = 0;
          for (let k = 0; k < K; k++) want += a[r * K + k] * x[offs[k] + p];
          if (!(Math.abs(out[r * len + p] - want) <= 1e-6 * K)) assert.fail(`denseRows [${rows},${K},${len}] ${threads} threads${transposed ? ' transposed' : ''}: (${r}, ${p}) ${out[r * len + p]} vs ${want}`);
        }
        seen.push(out.slice());
      }
      // every (row, column) pair of dot products of `len` positions, written column-major
      const dots = denseDots(aoff, offs, x, x, len, 1, rows).slice();
      for (let r = 0; r < rows; r++) for (let j = 0; j < K; j++) {
        let want = 0;
        for (let p = 0; p < len; p++) want += x[aoff[r] + p] * x[offs[j] + p];
        if (!(Math.abs(dots[j * rows + r] - want) <= 1e-6 * len)) assert.fail(`denseDots [${rows},${K},${len}] ${threads} threads: (${r}, ${j}) ${dots[j * rows + r]} vs ${want}`);
      }
      seen.push(dots);
      // the same pairs over position spans only (a conv's rows of valid outputs), in both dot kernels
      const spans = len >= 9 ? [1, Math.floor(len / 3), Math.floor(len / 2), len - 1] : [2, len];
      const inSpan = (p: number) => spans.some((_, i) => i % 2 === 0 && p >= spans[i] && p < spans[i + 1]);
      const spanDots = denseDots(aoff, offs, x, x, len, 1, rows, undefined, spans).slice();
      const pairRows = Int32Array.from({ length: rows * K }, (_, i) => aoff[i % rows]);
      const pairCols = Int32Array.from({ length: rows * K }, (_, i) => offs[Math.floor(i / rows)]);
      const pairs = convSddmm(pairRows, pairCols, x, x, len, undefined, spans).slice();
      for (let r = 0; r < rows; r++) for (let j = 0; j < K; j++) {
        let want = 0;
        for (let p = 0; p < len; p++) if (inSpan(p)) want += x[aoff[r] + p] * x[offs[j] + p];
        if (!(Math.abs(spanDots[j * rows + r] - want) <= 1e-6 * len)) assert.fail(`denseDots over spans [${rows},${K},${len}] ${threads} threads: (${r}, ${j}) ${spanDots[j * rows + r]} vs ${want}`);
        if (!(Math.abs(pairs[j * rows + r] - want) <= 1e-6 * len)) assert.fail(`convSddmm over spans [${rows},${K},${len}] ${threads} threads: (${r}, ${j}) ${pairs[j * rows + r]} vs ${want}`);
      }
    }
    assert.deepEqual(seen[3], seen[0], 'denseRows bit-equal on 1 and 2 threads');
    assert.deepEqual(seen[5], seen[2], 'denseDots bit-equal on 1 and 2 threads');
    release(x); release(out);
  }
  setThreads(2);
});

/** Attention of every head in float64: out [n·t, h·d] and dqkv for an upstream gradient g. */
function attentionRef(qkv: Float32Array, g: Float32Array, n: number, t: number, h: number, d: number): { out: Float64Array; dqkv: Float64Array } {
  const row = 3 * h * d, orow = h * d, scale = 1 / Math.sqrt(d);
  const out = new Float64Array(n * t * orow), dqkv = new Float64Array(n * t * row);
  const at = (b: number, i: number, part: number, hh: number, j: number) => (b * t + i) * row + (part * h + hh) * d + j;
  for (let b = 0; b < n; b++) for (let hh = 0; hh < h; hh++) {
    const A = Array.from({ length: t }, () => new Float64Array(t));
    for (let i = 0; i < t; i++) {
      for (let j = 0; j < t; j++) { let s = 0; for (let c = 0; c < d; c++) s += qkv[at(b, i, 0, hh, c)] * qkv[at(b, j, 1, hh, c)]; A[i][j] = s * scale; }
      const mx = Math.max(...A[i]);
      let sum = 0;
      for (let j = 0; j < t; j++) { A[i][j] = Math.exp(A[i][j] - mx); sum += A[i][j]; }
      for (let j = 0; j < t; j++) A[i][j] /= sum;
      for (let c = 0; c < d; c++) { let s = 0; for (let j = 0; j < t; j++) s += A[i][j] * qkv[at(b, j, 2, hh, c)]; out[(b * t + i) * orow + hh * d + c] = s; }
    }
    const G = (i: number, c: number) => g[(b * t + i) * orow + hh * d + c];
    for (let i = 0; i < t; i++) {
      const dA = new Float64Array(t);
      for (let j = 0; j < t; j++) { let s = 0; for (let c = 0; c < d; c++) s += G(i, c) * qkv[at(b, j, 2, hh, c)]; dA[j] = s; }
      let dot = 0;
      for (let j = 0; j < t; j++) dot += dA[j] * A[i][j];
      for (let j = 0; j < t; j++) {
        const dS = A[i][j] * (dA[j] - dot) * scale;
        for (let c = 0; c < d; c++) {
          dqkv[at(b, i, 0, hh, c)] += dS * qkv[at(b, j, 1, hh, c)];
          dqkv[at(b, j, 1, hh, c)] += dS * qkv[at(b, i, 0, hh, c)];
          dqkv[at(b, j, 2, hh, c)] += A[i][j] * G(i, c);
        }
      }
    }
  }
  return { out, dqkv };
}

test('attention: forward and gradient against float64 for odd and SIMD-sized heads, one and two threads, bit-equal across threads', () => {
  const rng = new Rng(31);
  for (const [n, t, h, d] of [[2, 3, 2, 4], [3, 17, 2, 20], [2, 64, 3, 64], [1, 5, 1, 33]]) {
    const qkv = Float32Array.from({ length: n * t * 3 * h * d }, () => rng.uniform(-1.5, 1.5));
    const g = Float32Array.from({ length: n * t * h * d }, () => rng.uniform(-1, 1));
    const ref = attentionRef(qkv, g, n, t, h, d);
    const seen: Float32Array[] = [];
    for (const threads of [1, 2]) {
      setThreads(threads);
      const { out, attn } = attentionForward(qkv, n, t, h, d, 1 / Math.sqrt(d));
      const o = out.slice(), a = attn.slice();
      const dq = attentionBackward(qkv, a, g, n, t, h, d, 1 / Math.sqrt(d)).slice();
      for (let i = 0; i < o.length; i++) if (!(Math.abs(o[i] - ref.out[i]) <= 2e-6 * (1 + Math.abs(ref.out[i])) * t)) assert.fail(`[${n},${t},${h},${d}] ${threads} threads: out[${i}] ${o[i]} vs ${ref.out[i]}`);
      for (let i = 0; i < dq.length; i++) if (!(Math.abs(dq[i] - ref.dqkv[i]) <= 2e-6 * (1 + Math.abs(ref.dqkv[i])) * t * d)) assert.fail(`[${n},${t},${h},${d}] ${threads} threads: dqkv[${i}] ${dq[i]} vs ${ref.dqkv[i]}`);
      // every attention row is a distribution
      for (let r = 0; r < n * h * t; r++) { let s = 0; for (let j = 0; j < t; j++) s += a[r * t + j]; assert.ok(Math.abs(s - 1) < 1e-5, `row ${r} sums to ${s}`); }
      seen.push(o, dq);
    }
    assert.deepEqual(seen[2], seen[0], 'out bit-equal on 1 and 2 threads');
    assert.deepEqual(seen[3], seen[1], 'dqkv bit-equal on 1 and 2 threads');
  }
  setThreads(2);
});

/** erf in float64 (series / continued fraction via the complementary function), to 1e-12. */
function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax, sum = ax;
    for (let k = 1; k < 200; k++) { term *= -ax * ax / k; sum += term / (2 * k + 1); if (Math.abs(term) < 1e-17) break; }
    return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
  }
  // erfc continued fraction (Lentz), converges fast for |x| >= 3
  let f = ax, c = ax, dd = 0;
  for (let k = 1; k < 100; k++) {
    const an = k / 2;
    dd = ax + an * dd; dd = 1 / dd; c = ax + an / c; f *= c * dd;
  }
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / f / Math.sqrt(Math.PI));
}

test('gelu: value and gradient against float64 from -12 to 12, in every lane position and tail', () => {
  const n = 4803; // not a multiple of 4 or 16: tails on one and two threads
  const x = allocFloat32(n);
  for (let i = 0; i < n; i++) x[i] = -12 + (24 * i) / (n - 1);
  const dy = Float32Array.from({ length: n }, (_, i) => 1 + (i % 7) / 7);
  for (const threads of [1, 2]) {
    setThreads(threads);
    const y = geluOf(x, n).slice();
    const g = geluOf(x, n, dy).slice();
    for (let i = 0; i < n; i++) {
      const v = x[i];
      const cdf = 0.5 * (1 + erf64(v / Math.SQRT2));
      const pdf = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
      if (!(Math.abs(y[i] - v * cdf) <= 3e-7 * (1 + Math.abs(v)))) assert.fail(`${threads} threads: gelu(${v}) ${y[i]} vs ${v * cdf}`);
      const want = dy[i] * (cdf + v * pdf);
      if (!(Math.abs(g[i] - want) <= 5e-7 * (1 + Math.abs(want)) * (1 + Math.abs(v)))) assert.fail(`${threads} threads: gelu'(${v}) ${g[i]} vs ${want}`);
    }
  }
  release(x);
  setThreads(2);
});
