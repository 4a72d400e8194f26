import type { Rng } from '../../core/rng.js';
import { assignActiveCounts, randomConnections, sparseInitialValues, type SparsityDistribution } from './init.js';
import { CsrLayer } from './csr.js';
import { CsrConvLayer } from './csr-conv.js';
import { MaskedLayer } from './masked.js';
import type { LayerInit, LayerShape, SparseFormat, SparseLayer } from './types.js';

export type LayerFactory = (shape: LayerShape, init: LayerInit) => SparseLayer;

/** The storage formats of the sparse-weight contract. */
export const formats: Record<SparseFormat, LayerFactory> = {
  masked: (shape, init) => new MaskedLayer(shape, init),
  csr: (shape, init) => (shape.kind === 'conv' ? new CsrConvLayer(shape, init) : new CsrLayer(shape, init)),
};

export interface SparseInitOptions {
  density: number;
  distribution: SparsityDistribution;
  format: SparseFormat;
  rng: Rng;
}

/**
 * Builds every prunable layer of a model: active counts by the sparsity distribution, a random
 * bipartite graph per layer and the paper's sparse initialisation. The random stream of a layer
 * depends only on the run seed and the layer's name, so every format gets identical layers.
 */
export function buildSparseLayers(shapes: LayerShape[], o: SparseInitOptions): SparseLayer[] {
  const counts = o.density >= 1 ? shapes.map((s) => s.rows * s.cols) : assignActiveCounts(shapes, o.density, o.distribution);
  return shapes.map((shape, l) => {
    const rng = o.rng.fork(`layer/${shape.name}`);
    const connections = randomConnections(shape.rows, shape.cols, counts[l], rng);
    const { values, bias } = sparseInitialValues(shape.rows, connections, rng);
    return formats[o.format](shape, { connections, values, bias });
  });
}

/**
 * The overall density a sparse run starts at: 1 - target, or with `holdActive` the density that
 * keeps the active count of the width-1 model (the paper's model-scaling experiment: wider and
 * sparser at a constant number of connections).
 */
export function initialDensity(
  spec: { sparsity: { target: number; holdActive: boolean } },
  shapes: { rows: number; cols: number }[],
  baseShapes: { rows: number; cols: number }[],
): number {
  const density = 1 - spec.sparsity.target;
  if (!spec.sparsity.holdActive) return density;
  const size = (s: { rows: number; cols: number }[]) => s.reduce((a, x) => a + x.rows * x.cols, 0);
  return Math.min(1, (density * size(baseShapes)) / size(shapes));
}
