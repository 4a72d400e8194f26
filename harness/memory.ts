/**
 * Memory pre-flight: a run's peak memory estimated from what it will allocate, before it starts,
 * so a run that cannot fit is refused with one line instead of climbing to the limit and dying
 * inside a kernel (`memory access out of bounds`), and two of them cannot take a machine down.
 *
 * The estimate (bytes, float32 = 4) adds up, per prunable layer of rows x cols = P weights with
 * A active, positions per sample p:
 * - weights, storage format `masked`: weight, momentum and the mask as a float tensor, and in a
 *   step the masked product, the weight gradient and the update's temporaries: 11 x 4P; the
 *   dense method (no mask, every weight trained, its layers are masked ones with all active):
 *   17 x 4P; format `csr`: values, column indices, momentum and gradient, kernel scratch:
 *   6 x 4A, plus row pointers. A csr conv layer (lowered to blocked im2col with a bounded block)
 *   is the same active-count cost; its block is part of the activations below.
 * - a method that is not always sparse builds something of size P: one that starts dense holds
 *   A = P (in csr too) until it prunes; the others (RigL) build the dense gradient at an update
 *   and select over it in place: 4P.
 * The coefficients are fitted to measured peaks (smoke runs of MLPs up to 6144 x 6144, masked and
 * csr, static, RigL and dense, wasm backend: within 0.8-1.25 of the measured peak RSS).
 * - activations: per sample the layer outputs (rows x p), kept for backward with their
 *   gradients and activation functions: 4 x 4 bytes each, times the training batch; evaluation
 *   the same forward at its own batch without the backward.
 * - an MLP in csr (one chain op, models/sparse/csr-chain.ts) keeps its activations outside tfjs'
 *   tensors: each layer's input and two gradient buffers, 2 x 4 bytes per unit and sample at the
 *   larger of the two batches, plus, when the method probes, the probe record of every layer
 *   (its input and output gradient over the update batch); only the input batch and the logits
 *   are tensors. Activations too large for the kernels' memory live outside it (plain arrays).
 * - the process itself (Node, tfjs, the WebAssembly modules) and the dataset's float arrays.
 * It is meant to be within a factor 1.5 of the measured peak RSS (test/memory.test.ts checks it).
 */
import os from 'node:os';
import { getMethod, variantLabel } from '../methods/index.js';
import { getModel } from '../models/index.js';
import type { LayerShape } from '../models/sparse/types.js';
import { datasets, featureSize, resolveOptions } from './data/index.js';
import { UserError } from '../core/errors.js';
import { SMOKE } from './run-context.js';
import { runId, type RunSpec } from './spec.js';

const F32 = 4;
/** Node + tfjs + the WebAssembly backends and kernels, measured on a tiny run. */
export const PROCESS_BYTES = 240 * 2 ** 20;
/** A 32-bit WebAssembly memory addresses at most 4 GiB: the wasm backend's tensors live in one. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

export interface MemoryEstimate {
  /** the whole process at its peak */
  bytes: number;
  /** what lives in tensors (the wasm backend's heap): weights, method buffers, activations */
  tensorBytes: number;
  parts: { process: number; data: number; weights: number; method: number; activations: number };
}

/** Everything the estimate needs to know about a run, so callers without a RunSpec can ask too. */
export interface MemoryInput {
  layers: LayerShape[];
  /** active connections in all layers together (from the sparsity target) */
  active: number;
  format: 'masked' | 'csr';
  batch: number;
  evalBatch: number;
  /** floats per sample of the dataset, and its sample count (train + test) */
  features: number;
  samples: number;
  method: { sparse: boolean; alwaysSparse: boolean; startsDense: boolean };
  /** the layers run as one csr chain op (an MLP in csr): activations outside the tensors */
  chain?: boolean;
  /** rows of the update batch a probing method records (0: it does not probe) */
  probeRows?: number;
}

/** The peak memory of a run described by its layer shapes, format, batch and method. */
export function estimatePeakBytes(m: MemoryInput): MemoryEstimate {
  const total = m.layers.reduce((a, l) => a + l.rows * l.cols, 0);
  const active = m.method.startsDense ? total : Math.min(total, m.active);
  const weights = !m.method.sparse ? 17 * F32 * total
    : m.format === 'masked' ? 11 * F32 * total
      : 6 * F32 * active + m.layers.reduce((a, l) => a + F32 * (l.rows + 1), 0);
  // RigL-like: the dense gradient at an update
  const method = m.method.sparse && !m.method.alwaysSparse && !m.method.startsDense ? F32 * total : 0;
  const perSample = m.layers.reduce((a, l) => a + l.rows * l.positions, 0) + m.features;
  const probe = F32 * (m.probeRows ?? 0) * m.layers.reduce((a, l) => a + l.rows + l.cols, 0);
  const activations = m.chain
    ? 2 * F32 * perSample * Math.max(m.batch, m.evalBatch) + probe
    : Math.max(4 * F32 * perSample * m.batch, 2 * F32 * perSample * m.evalBatch);
  const data = F32 * m.features * m.samples;
  const ends = m.chain ? 4 * F32 * (m.features + m.layers[m.layers.length - 1].rows) * Math.max(m.batch, m.evalBatch) : activations;
  const tensorBytes = weights + method + ends;
  return { bytes: PROCESS_BYTES + data + weights + method + activations, tensorBytes, parts: { process: PROCESS_BYTES, data, weights, method, activations } };
}

/** The estimate for a resolved run spec. */
export function estimateRun(spec: RunSpec): MemoryEstimate {
  const { name: dataset, ...options } = spec.dataset;
  const shape = datasets[dataset].shape(resolveOptions(datasets[dataset], options));
  const model = getModel(spec.model.name);
  const layers = model.layout(spec.model, shape);
  const widthOne = spec.sparsity.holdActive ? model.layout({ ...spec.model, width: 1 }, shape) : layers;
  const method = getMethod(spec.method.name);
  const size = (ls: LayerShape[]) => ls.reduce((a, l) => a + l.rows * l.cols, 0);
  const t = spec.training;
  return estimatePeakBytes({
    layers,
    active: Math.ceil((1 - spec.sparsity.target) * size(widthOne)),
    format: spec.sparsity.format,
    batch: spec.smoke ? Math.min(SMOKE.batchSize, t.batchSize) : t.batchSize,
    evalBatch: spec.smoke ? Math.min(SMOKE.testSamples, t.evalBatchSize) : t.evalBatchSize,
    features: featureSize(shape.inputShape),
    samples: shape.samples,
    method: { sparse: method.sparse, alwaysSparse: method.alwaysSparse, startsDense: method.startsDense(spec.method as never) },
    chain: spec.model.name === 'mlp' && spec.sparsity.format === 'csr' && method.sparse,
    probeRows: method.updates && spec.update ? spec.update.samplesPerClass * shape.classes : 0,
  });
}

export interface MemoryLimit {
  /** bytes one run may use */
  bytes: number;
  /** how the limit came about, for the message ("62.8 GB of memory / --jobs 2") */
  source: string;
  /** the wasm backend runs tensors in one 4 GiB WebAssembly memory */
  wasm: boolean;
}

/** What a run may use: the given limit, else the machine's memory shared by the workers. */
export function memoryLimit(o: { jobs: number; backend: string; limitGb?: number }): MemoryLimit {
  const wasm = o.backend === 'wasm';
  if (o.limitGb !== undefined) return { bytes: o.limitGb * 1e9, source: `--memory-limit ${o.limitGb}`, wasm };
  const jobs = Math.max(1, o.jobs);
  return { bytes: os.totalmem() / jobs, source: `${gb(os.totalmem())} of memory${jobs > 1 ? ` / --jobs ${jobs}` : ''}`, wasm };
}

export const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(bytes < 1e9 ? 2 : 1)} GB`;

/** Why a run does not fit under the limit (one line), or null when it does. */
export function memoryProblem(e: MemoryEstimate, limit: MemoryLimit): string | null {
  if (e.bytes > limit.bytes) return `needs about ${gb(e.bytes)} at its peak (estimate), more than the ${gb(limit.bytes)} it may use (${limit.source})`;
  if (limit.wasm && e.tensorBytes > WASM_HEAP_BYTES) {
    return `needs about ${gb(e.tensorBytes)} of tensors (estimate), more than the 4 GiB WebAssembly memory of the wasm backend`;
  }
  return null;
}

/**
 * Refuses a sweep with a run that cannot fit: one line naming the first such run, its estimate
 * and the limit (and how many more there are). Runs are checked before any starts.
 */
export function checkSweepMemory(specs: RunSpec[], limit: MemoryLimit, file: string): void {
  const tooBig = specs.map((s) => ({ s, problem: memoryProblem(estimateRun(s), limit) })).filter((x) => x.problem);
  if (tooBig.length === 0) return;
  const more = tooBig.length > 1 ? ` (and ${tooBig.length - 1} more run${tooBig.length > 2 ? 's' : ''})` : '';
  throw new UserError(`${file}: run ${runLabel(tooBig[0].s)} ${tooBig[0].problem}${more}; use format csr, a smaller batch or width, fewer --jobs, or --memory-limit GB if the estimate is wrong`);
}

/** "rigl masked s=0.98 w=100 seed=0 [id]": a run as a message names it. */
export function runLabel(s: RunSpec): string {
  return `${variantLabel(s.method)} ${s.sparsity.format} s=${s.sparsity.target} w=${s.model.width ?? 1} seed=${s.seed} [${runId(s)}]`;
}
