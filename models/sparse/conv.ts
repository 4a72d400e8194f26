import * as K from './kernels/index.js';
import type { Connections, LayerShape, UnitSums } from './types.js';
import type { Probe } from './probe.js';

/**
 * A convolution lowered onto "planes" (see kernels/assembly/kernels.ts): the input batch stored
 * channel-major, one plane per (stride phase, channel) holding the whole batch on one padded
 * hg x wg grid with the images innermost (position (gy·wg + gx)·n + image). A connection (out
 * channel r, column j = (ky·kw + kx)·C + c) then reads its input plane at one fixed shift
 * ((ky·wg + kx)·n), so forward, input gradient and weight gradient are the sparse gather and the
 * offset SDDMM of the kernels, over all grid positions at once — no im2col, and memory linear in
 * the active connections. Output positions live on the same grid; its margins (padding columns
 * and rows) are not computed where spans skip them, never read, and hold zeros in an output
 * gradient. With the batch innermost a grid row of outputs is wo·n contiguous positions, so the
 * spans cover exactly the valid outputs in long runs, however small the map.
 *
 * Strides: a stride-s convolution splits the padded input into s² phase planes, where it becomes a
 * stride-1 convolution (tap (ky, kx) reads phase (ky mod s, kx mod s) at shift (ky div s, kx div s)).
 */
export interface ConvPlan {
  /** input planes: the NHWC input's geometry on the grid */
  input: K.PlaneGeometry;
  /** output planes: the NHWC output's geometry on the same grid */
  output: K.PlaneGeometry;
  ho: number; wo: number;
  /** positions per plane, n·hg·wg */
  length: number;
  /** the largest tap shift; output gradient planes keep this many zeros in front */
  maxShift: number;
  /** positions that can hold a valid output, length - maxShift */
  outLength: number;
  /** plane stride of output-gradient planes: maxShift + length */
  gradStride: number;
  /** valid output positions (patches), n·ho·wo */
  count: number;
  /**
   * Grid positions worth computing, as [start, end) pairs: of the output (< outLength) and of the
   * input (< length; what an input gradient needs): per grid row, its run of valid positions
   * (the whole range when runs are short: a batch of one or two).
   */
  outSpans: number[];
  inSpans: number[];
}

/**
 * Per grid row gy in [top, top + rows), positions [(gy·wg + left)·n, (gy·wg + left + cols)·n),
 * ends rounded up to whole SIMD blocks of SPAN_BLOCK positions (a shorter piece runs one lane at
 * a time) and merged where they meet; or [0, len) when a run is shorter than MIN_RUN positions.
 */
function rowSpans(n: number, wg: number, top: number, left: number, rows: number, cols: number, len: number): number[] {
  // runs shorter than a few SIMD blocks (a tiny batch) cost more per connection than they skip
  if (rows <= 0 || cols * n < MIN_RUN) return [0, len];
  const out: number[] = [];
  for (let gy = top; gy < top + rows; gy++) {
    const start = (gy * wg + left) * n;
    const end = Math.min(len, Math.ceil(((gy * wg + left + cols) * n) / SPAN_BLOCK) * SPAN_BLOCK);
    if (start >= end) break;
    if (out.length && out[out.length - 1] >= start) out[out.length - 1] = end;
    else out.push(start, end);
  }
  return out;
}
const MIN_RUN = 64;
const SPAN_BLOCK = 8;

export function convPlan(shape: LayerShape, inputShape: readonly number[]): ConvPlan {
  const conv = shape.conv;
  if (!conv) throw new Error(`${shape.name}: not a conv layer`);
  const [n, h, w, c] = inputShape;
  if (inputShape.length !== 4 || c !== conv.inChannels) throw new Error(`${shape.name}: input of shape [${inputShape}], expected [N, H, W, ${conv.inChannels}]`);
  const { kh, kw, stride: s, padding } = conv;
  let ho: number, wo: number, top = 0, left = 0;
  if (padding === 'same') {
    ho = Math.ceil(h / s); wo = Math.ceil(w / s);
    top = Math.floor(Math.max(0, (ho - 1) * s + kh - h) / 2);
    left = Math.floor(Math.max(0, (wo - 1) * s + kw - w) / 2);
  } else {
    const pad = padding === 'valid' ? 0 : padding;
    top = left = pad;
    ho = Math.floor((h + 2 * pad - kh) / s) + 1; wo = Math.floor((w + 2 * pad - kw) / s) + 1;
  }
  if (!(ho >= 1 && wo >= 1)) throw new Error(`${shape.name}: a ${kh}x${kw} kernel does not fit a ${h}x${w} input ${padding === 'same' || padding === 'valid' || padding === 0 ? 'without padding' : `padded by ${padding}`}`);
  const hg = ho - 1 + Math.ceil(kh / s);
  const wg = wo - 1 + Math.ceil(kw / s);
  const length = n * hg * wg;
  const maxShift = (Math.floor((kh - 1) / s) * wg + Math.floor((kw - 1) / s)) * n;
  if ((s * s * c + 1) * (length + maxShift) >= 2 ** 31 || (shape.rows + 1) * (length + maxShift) >= 2 ** 31) {
    throw new Error(`${shape.name}: a batch of ${n} inputs ${h}x${w}x${c} is too large for the conv kernels (2^31 floats)`);
  }
  // the input pixels on the grid (stride 1; a strided input is spread over phase planes: all of it)
  const inSpans = s === 1 ? rowSpans(n, wg, top, left, Math.min(h, hg - top), Math.min(w, wg - left), length) : [0, length];
  return {
    input: { n, h, w, c, s, top, left, hg, wg },
    output: { n, h: ho, w: wo, c: shape.rows, s: 1, top: 0, left: 0, hg, wg },
    ho, wo, length, maxShift, outLength: length - maxShift, gradStride: maxShift + length, count: n * ho * wo,
    outSpans: rowSpans(n, wg, 0, 0, ho, wo, length - maxShift), inSpans,
  };
}

export function samePlan(a: ConvPlan | null, b: ConvPlan): boolean {
  if (!a) return false;
  const k = ['n', 'h', 'w', 'c'] as const;
  return k.every((f) => a.input[f] === b.input[f]);
}

/** Input-plane offset (plane start + tap shift) of each column of the kernel matrix, cols long. */
export function columnOffsets(shape: LayerShape, p: ConvPlan): Int32Array {
  const { kh, kw, inChannels: c, stride: s } = shape.conv!;
  const out = new Int32Array(kh * kw * c);
  for (let ky = 0, j = 0; ky < kh; ky++) {
    for (let kx = 0; kx < kw; kx++) {
      const plane = ((ky % s) * s + (kx % s)) * c;
      const shift = (Math.floor(ky / s) * p.input.wg + Math.floor(kx / s)) * p.input.n;
      for (let ch = 0; ch < c; ch++, j++) out[j] = (plane + ch) * p.length + shift;
    }
  }
  return out;
}

/** Packs an NHWC input into resident planes (grown as needed); returns the buffer. */
export function packInput(x: Float32Array, p: ConvPlan, buf: Float32Array | null): Float32Array {
  const len = K.planeCount(p.input) * p.length;
  const planes = fit(buf, len);
  K.packPlanes(x, p.input, planes, 0, p.length);
  return planes;
}

/** Packs an NHWC output gradient into resident planes with maxShift zeros in front of each. */
export function packOutputGrad(dy: Float32Array, p: ConvPlan, buf: Float32Array | null): Float32Array {
  const rows = p.output.c;
  const planes = fit(buf, rows * p.gradStride);
  for (let r = 0; r < rows; r++) planes.fill(0, r * p.gradStride, r * p.gradStride + p.maxShift);
  K.packPlanes(dy, p.output, planes, p.maxShift, p.gradStride);
  return planes;
}

/** A resident buffer of at least len floats: buf itself when large enough, else a new one (buf released). */
export function fit(buf: Float32Array | null, len: number): Float32Array {
  if (buf && buf.length >= len) return buf;
  if (buf) K.release(buf);
  return K.allocFloat32(Math.max(16, Math.ceil(len * 1.1)));
}

/**
 * What a probe pass leaves for a conv layer: its input and output gradient as planes (copies in
 * the kernels' memory, released with the record). Both formats build it from the same NHWC
 * tensors, so masked and csr layers answer every gradient question with the same bits. Each
 * gradient entry is one offset dot product over the grid's spans of valid outputs, in the one
 * summation order of the kernels: subset and dense gradient agree bit for bit.
 * Probe rows are the patches: n·ho·wo, ordered (n, y, x) as an im2col would be.
 */
export class ConvProbeRecord implements Probe {
  readonly count: number;
  private x: Float32Array | null;
  private dy: Float32Array | null;
  private readonly offsets: Int32Array;

  /** takes ownership of x and dy, planes as packInput / packOutputGrad write them */
  private constructor(private readonly shape: LayerShape, private readonly plan: ConvPlan, x: Float32Array, dy: Float32Array) {
    this.count = plan.count;
    this.x = x;
    this.dy = dy;
    this.offsets = columnOffsets(shape, plan);
  }

  /** from the layer's NHWC input and output gradient */
  static fromTensors(shape: LayerShape, plan: ConvPlan, x: Float32Array, dy: Float32Array): ConvProbeRecord {
    return new ConvProbeRecord(shape, plan, packInput(x, plan, null), packOutputGrad(dy, plan, null));
  }

  /** from planes already packed (copied: the record outlives the buffers) */
  static fromPlanes(shape: LayerShape, plan: ConvPlan, x: Float32Array, dy: Float32Array): ConvProbeRecord {
    const copy = (a: Float32Array, len: number) => { const c = K.allocFloat32(len); c.set(a.subarray(0, len)); return c; };
    return new ConvProbeRecord(shape, plan, copy(x, K.planeCount(plan.input) * plan.length), copy(dy, shape.rows * plan.gradStride));
  }

  private planes(): { x: Float32Array; dy: Float32Array } {
    if (!this.x || !this.dy) throw new Error(`${this.shape.name}: probe record used after release`);
    return { x: this.x, dy: this.dy };
  }

  subsetGradient(c: Connections): Float32Array {
    const n = c.row.length;
    if (n === 0) return new Float32Array(0);
    const { rows, cols } = this.shape;
    const aoff = new Int32Array(n);
    const boff = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const r = c.row[k], q = c.col[k];
      if (!(r >= 0 && r < rows && q >= 0 && q < cols)) throw new Error(`subsetGradient: connection (${r}, ${q}) is outside ${rows} x ${cols}`);
      aoff[k] = r * this.plan.gradStride + this.plan.maxShift;
      boff[k] = this.offsets[q];
    }
    const { x, dy } = this.planes();
    return K.convSddmm(aoff, boff, dy, x, this.plan.outLength, undefined, this.plan.outSpans);
  }

  /** every (row, col) pair, row-major, a block of rows at a time (about 2^18 pairs per call) */
  denseGradient(): Float32Array {
    const { rows, cols } = this.shape;
    const out = new Float32Array(rows * cols);
    if (rows === 0 || cols === 0) return out;
    const { x, dy } = this.planes();
    const block = Math.max(1, Math.min(rows, Math.floor((1 << 18) / cols)));
    const aoff = new Int32Array(block * cols);
    const boff = new Int32Array(block * cols);
    for (let r = 0; r < block; r++) boff.set(this.offsets, r * cols);
    for (let r0 = 0; r0 < rows; r0 += block) {
      const m = Math.min(block, rows - r0);
      for (let r = 0; r < m; r++) aoff.fill((r0 + r) * this.plan.gradStride + this.plan.maxShift, r * cols, (r + 1) * cols);
      K.convSddmm(aoff.subarray(0, m * cols), boff.subarray(0, m * cols), dy, x, this.plan.outLength, out.subarray(r0 * cols, (r0 + m) * cols), this.plan.outSpans);
    }
    return out;
  }

  unitSums(signs?: Float32Array): UnitSums {
    if (signs && signs.length !== this.count) throw new Error(`unitSums: ${signs.length} signs for ${this.count} probe rows`);
    const { x, dy } = this.planes();
    const { rows, cols } = this.shape;
    const inSums = new Float32Array(cols);
    for (let j = 0; j < cols; j++) inSums[j] = this.validSum(x, this.offsets[j], signs);
    const outSums = new Float32Array(rows);
    for (let r = 0; r < rows; r++) outSums[r] = this.validSum(dy, r * this.plan.gradStride + this.plan.maxShift, signs);
    return { in: inSums, out: outSums };
  }

  /** Σ |a[base + p]| over the valid output positions p, or |Σ s_i a[base + p_i]| with signs (i in patch order n, y, x) */
  private validSum(a: Float32Array, base: number, signs?: Float32Array): number {
    const { n, wg } = this.plan.output;
    const { ho, wo } = this.plan;
    let s = 0;
    for (let b = 0, i = 0; b < n; b++) {
      for (let y = 0; y < ho; y++) {
        const o = base + y * wg * n + b;
        if (signs) for (let x = 0; x < wo; x++, i++) s += signs[i] * a[o + x * n];
        else for (let x = 0; x < wo; x++) s += Math.abs(a[o + x * n]);
      }
    }
    return signs ? Math.abs(s) : s;
  }

  release(): void {
    if (this.x) K.release(this.x);
    if (this.dy) K.release(this.dy);
    this.x = null;
    this.dy = null;
  }
}

/** Planes shared by every conv layer of either format for results consumed at once (grow-only, kernels' memory). */
export const planeBuffers: { y: Float32Array | null; dy: Float32Array | null; dx: Float32Array | null } = { y: null, dy: null, dx: null };

/** The taps of one stride phase: for the input gradient, the kernel's columns that read its planes. */
interface Phase {
  /** first input plane of the phase (C planes follow) */
  plane: number;
  /** per tap: its column base (ky·kw + kx)·C and its shift on the grid */
  columns: number[];
  /** per (row r, tap t), r-major: the output-gradient offset the tap reads, r·gradStride + maxShift − shift */
  offsets: Int32Array;
}

/**
 * A convolution with dense weights on planes (the masked format's conv layers): the same lowering
 * as csr's, with the dense product of the kernels in place of the sparse gather:
 *   forward      y planes  = W · (x planes at each column's offset)
 *   input grad   dx planes = per stride phase, (W regrouped by input plane) · (dy planes at each tap's shift back)
 *   weight grad  dW        = every (row, column) pair of the offset dot product of dy and x planes
 * The weights are in tfjs's conv layout [kh, kw, in, out]: column j of row r at j·rows + r.
 */
export class DenseConv {
  private plan: ConvPlan | null = null;
  private columns: Int32Array | null = null;
  private gradRows: Int32Array | null = null;
  private phases: Phase[] = [];
  private regrouped = new Float32Array(0);

  constructor(private readonly shape: LayerShape) {}

  /** the plan of an input shape, with the offsets it needs */
  planFor(inputShape: readonly number[]): ConvPlan {
    const p = convPlan(this.shape, inputShape);
    if (samePlan(this.plan, p)) return this.plan!;
    this.plan = p;
    this.columns = columnOffsets(this.shape, p);
    this.gradRows = Int32Array.from({ length: this.shape.rows }, (_, r) => r * p.gradStride + p.maxShift);
    const { kh, kw, inChannels: c, stride: s } = this.shape.conv!;
    this.phases = [];
    for (let py = 0; py < s; py++) {
      for (let px = 0; px < s; px++) {
        const columns: number[] = [], shifts: number[] = [];
        for (let ky = py; ky < kh; ky += s) {
          for (let kx = px; kx < kw; kx += s) {
            columns.push((ky * kw + kx) * c);
            shifts.push((Math.floor(ky / s) * p.input.wg + Math.floor(kx / s)) * p.input.n);
          }
        }
        const offsets = new Int32Array(this.shape.rows * columns.length);
        for (let r = 0, i = 0; r < this.shape.rows; r++) for (const shift of shifts) offsets[i++] = this.gradRows[r] - shift;
        this.phases.push({ plane: (py * s + px) * c, columns, offsets });
      }
    }
    return p;
  }

  /** y planes (planeBuffers.y, rows x length) of weights w and input planes x */
  forward(w: Float32Array, x: Float32Array, p: ConvPlan): Float32Array {
    const rows = this.shape.rows;
    const y = (planeBuffers.y = fit(planeBuffers.y, rows * p.length));
    K.denseRows(w, 1, rows, this.columns!, this.shape.cols, rows, x, p.outLength, y, p.length, p.outSpans);
    return y;
  }

  /** dx planes (planeBuffers.dx) of weights w and output-gradient planes dy */
  inputGrad(w: Float32Array, dy: Float32Array, p: ConvPlan): Float32Array {
    const rows = this.shape.rows;
    const c = this.shape.conv!.inChannels;
    const dx = (planeBuffers.dx = fit(planeBuffers.dx, K.planeCount(p.input) * p.length));
    for (const ph of this.phases) {
      const taps = ph.columns.length;
      const k = rows * taps;
      if (k === 0) { dx.fill(0, ph.plane * p.length, (ph.plane + c) * p.length); continue; }
      // A(ch, (r, t)) = W[(column_t + ch)·rows + r], row-major per input channel
      if (this.regrouped.length < c * k) this.regrouped = new Float32Array(c * k);
      const a = this.regrouped;
      for (let ch = 0, i = 0; ch < c; ch++) {
        for (let r = 0; r < rows; r++) for (let t = 0; t < taps; t++) a[i++] = w[(ph.columns[t] + ch) * rows + r];
      }
      K.denseRows(a, k, 1, ph.offsets, k, c, dy, p.length, dx.subarray(ph.plane * p.length), p.length, p.inSpans);
    }
    return dx;
  }

  /** dW in the weights' layout (a view of scratch) from output-gradient planes dy and input planes x */
  weightGrad(dy: Float32Array, x: Float32Array, p: ConvPlan): Float32Array {
    return K.denseDots(this.gradRows!, this.columns!, dy, x, p.outLength, 1, this.shape.rows, undefined, p.outSpans);
  }
}
