import * as tf from '@tensorflow/tfjs';
import { columnOffsets, ConvProbeRecord, convPlan, fit, packInput, packOutputGrad, planeBuffers as buffers, samePlan, type ConvPlan } from './conv.js';
import { CsrWeight, readFloats, scratch, tensorOf } from './csr.js';
import * as K from './kernels/index.js';
import { layerOp, type LayerGrads } from './op.js';
import type { LayerInit, LayerShape } from './types.js';

/**
 * The csr format of a conv layer: the kernel as an out_channels x (kh·kw·in_channels) CSR matrix
 * of its active connections (CsrWeight), run on planes (./conv.ts):
 *   forward      y planes  = gather(W, x planes)            unpack to NHWC, + bias
 *   input grad   dx planes = gather(Wᵀ, dy planes)          with the transposed index below
 *   values grad  dW[k]     = Σ_p dy[row_k, p] · x[off_k + p] (offset SDDMM), bias grad = row sums of dy
 * Every cost is O(active connections x positions) plus the packing, linear in the layer's
 * activations; nothing of size rows x cols exists (no im2col either: memory is the input's planes).
 *
 * Per structure and input geometry the layer keeps, in the kernels' memory: each nonzero's input
 * offset and output-gradient offset, and the transposed index (nonzeros grouped by input plane,
 * with their offsets into the output-gradient planes) for the input gradient.
 */
export class CsrConvLayer extends CsrWeight {
  private plan: ConvPlan | null = null;
  /** structure number the index arrays belong to (-1: none) */
  private indexed = -1;
  /** per nonzero: offset of its tap in the input planes / of its row in the output-gradient planes */
  private inputOffsets: Int32Array | null = null;
  private gradOffsets: Int32Array | null = null;
  /** transposed index: nonzeros grouped by input plane (tPtr), their position in vals, their dy offset */
  private tPtr: Int32Array | null = null;
  private tPerm: Int32Array | null = null;
  private tOffsets: Int32Array | null = null;
  private tVals: Float32Array | null = null;
  /** the last forward input as planes (kernels' memory) */
  private xPlanes: Float32Array | null = null;
  private readonly op: ReturnType<typeof layerOp>;

  constructor(shape: LayerShape, init: LayerInit) {
    super(shape, init);
    if (shape.kind !== 'conv' || !shape.conv) throw new Error(`layer ${shape.name}: CsrConvLayer is the conv variant`);
    this.op = this.convOp();
  }

  apply(x: tf.Tensor, o: { inputGradient: boolean } = { inputGradient: true }): tf.Tensor {
    const c = this.shape.conv!.inChannels;
    if (x.rank !== 4 || x.shape[3] !== c) throw new Error(`${this.name}: input of shape [${x.shape}], expected [N, H, W, ${c}]`);
    return this.op(x, [this.values, this.bias], o.inputGradient);
  }

  private convOp(): ReturnType<typeof layerOp> {
    return layerOp((x, [w, bias], inputGradient) => {
      const plan = this.planFor(x.shape);
      this.index(plan);
      this.xPlanes = packInput(readFloats(x), plan, this.xPlanes);
      this.vals.set(readFloats(w));
      const generation = ++this.generation;
      const structure = this.structure;
      const rows = this.rows;
      const yPlanes = (buffers.y = fit(buffers.y, rows * plan.length));
      K.convGather(this.rowPtr, this.inputOffsets!, this.vals, rows, this.xPlanes, plan.outLength, yPlanes, plan.length, plan.outSpans);
      const o = plan.output;
      const y = K.unpackPlanes(yPlanes, 0, plan.length, o, readFloats(bias), scratch('out', o.n * o.h * o.w * o.c));
      const value = tensorOf(y, [o.n, o.h, o.w, o.c]);
      const gradFunc = (dy: tf.Tensor): LayerGrads => {
        if (this.structure !== structure) throw new Error(`${this.name}: the structure changed between a forward pass and its backward pass`);
        if (this.generation !== generation) {
          // another forward pass of this layer came in between: redo this one's input
          if (x.isDisposed) throw new Error(`${this.name}: the input of a forward pass was disposed before its backward pass`);
          this.index(this.planFor(x.shape));
          this.xPlanes = packInput(readFloats(x), plan, this.xPlanes);
          this.vals.set(readFloats(w));
          this.generation++;
        }
        const xPlanes = this.xPlanes!;
        const dyPlanes = (buffers.dy = packOutputGrad(readFloats(dy), plan, buffers.dy));
        if (this.probing) this.keepProbe(ConvProbeRecord.fromPlanes(this.shape, plan, xPlanes, dyPlanes));
        const dv = tensorOf(K.convSddmm(this.gradOffsets!, this.inputOffsets!, dyPlanes, xPlanes, plan.outLength, scratch('out', this.activeCount()), plan.outSpans), [this.activeCount()]);
        const dbias = tf.tensor1d(K.sumRows(dyPlanes, plan.maxShift, rows, plan.gradStride, plan.length));
        if (!inputGradient) return [null, dv, dbias];
        const tVals = this.tVals!;
        const perm = this.tPerm!;
        for (let j = 0; j < perm.length; j++) tVals[j] = this.vals[perm[j]];
        const planes = K.planeCount(plan.input);
        const dxPlanes = (buffers.dx = fit(buffers.dx, planes * plan.length));
        K.convGather(this.tPtr!, this.tOffsets!, tVals, planes, dyPlanes, plan.length, dxPlanes, plan.length, plan.inSpans);
        const g = plan.input;
        const dx = tensorOf(K.unpackPlanes(dxPlanes, 0, plan.length, g, undefined, scratch('out', g.n * g.h * g.w * g.c)), [g.n, g.h, g.w, g.c]);
        return [dx, dv, dbias];
      };
      return { value, gradFunc };
    });
  }

  private planFor(shape: number[]): ConvPlan {
    const p = convPlan(this.shape, shape);
    if (!samePlan(this.plan, p)) { this.plan = p; this.indexed = -1; }
    return this.plan!;
  }

  /** the index arrays for the current structure and input geometry */
  private index(plan: ConvPlan): void {
    if (this.indexed === this.structure) return;
    this.releaseIndex();
    const nnz = this.activeCount();
    const colOffsets = columnOffsets(this.shape, plan);
    const planes = K.planeCount(plan.input);
    const inputOffsets = K.allocInt32(nnz);
    const gradOffsets = K.allocInt32(nnz);
    const tPtr = K.allocInt32(planes + 1);
    const tPerm = K.allocInt32(nnz);
    const tOffsets = K.allocInt32(nnz);
    tPtr.fill(0);
    const planeOf = new Int32Array(nnz);
    for (let k = 0; k < nnz; k++) {
      const off = colOffsets[this.colIdx[k]];
      inputOffsets[k] = off;
      gradOffsets[k] = this.rowIdx[k] * plan.gradStride + plan.maxShift;
      planeOf[k] = Math.floor(off / plan.length);
      tPtr[planeOf[k] + 1]++;
    }
    for (let i = 0; i < planes; i++) tPtr[i + 1] += tPtr[i];
    const next = Int32Array.from(tPtr.subarray(0, planes));
    for (let k = 0; k < nnz; k++) {
      const j = next[planeOf[k]]++;
      tPerm[j] = k;
      // dx[plane][q] += w · dy[row][q - shift]: read from the row's gradient plane, shift positions back
      tOffsets[j] = gradOffsets[k] - (inputOffsets[k] - planeOf[k] * plan.length);
    }
    Object.assign(this, { inputOffsets, gradOffsets, tPtr, tPerm, tOffsets, tVals: K.allocFloat32(nnz) });
    this.indexed = this.structure;
  }

  private releaseIndex(): void {
    for (const a of [this.inputOffsets, this.gradOffsets, this.tPtr, this.tPerm, this.tOffsets, this.tVals]) if (a) K.release(a);
    this.inputOffsets = this.gradOffsets = this.tPtr = this.tPerm = this.tOffsets = null;
    this.tVals = null;
  }

  protected releaseBuffers(): void {
    this.releaseIndex();
    if (this.xPlanes) K.release(this.xPlanes);
    this.xPlanes = null;
  }
}
