import type * as tf from '@tensorflow/tfjs';

/** A set of connections of one weight matrix, as (row, col) pairs; row = output unit, col = input unit. */
export interface Connections {
  row: Int32Array;
  col: Int32Array;
}

export type SparseFormat = 'masked' | 'csr';

/** Per-unit activity sums over the probe batch, for the GraBo / GraEst samplers. */
export interface UnitSums {
  /** length cols: sum_i |h[i,col]| (GraBo) or |sum_i s_i h[i,col]| (GraEst) */
  in: Float32Array;
  /** length rows: the same over the output gradient delta */
  out: Float32Array;
}

/** A trainable tensor with its SGD momentum buffer of the same shape. */
export interface Param {
  name: string;
  value: tf.Variable;
  velocity: tf.Variable;
  /** weight decay applies */
  decay: boolean;
}

/**
 * The sparse-weight contract: a prunable matrix seen as rows x cols
 * (a conv kernel is out_channels x in_channels*kh*kw). Every method is written against this only.
 */
export interface SparseWeight {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  readonly format: SparseFormat;
  activeCount(): number;
  /** the active connections, sorted by row then col */
  active(): Connections;
  /** the active connections' flags for the given pairs */
  isActive(c: Connections): Uint8Array;
  magnitudes(c: Connections): Float32Array;
  /** removes active connections (weight and optimizer state dropped) */
  prune(c: Connections): void;
  /** adds inactive connections with weight exactly 0 and optimizer state 0 */
  grow(c: Connections): void;
  /** whether a probe pass has been recorded since the last structure change */
  hasProbe(): boolean;
  /** gradient of the loss for the given connections, from the last probe pass: O(batch x |c|) */
  subsetGradient(c: Connections): Float32Array;
  /** the whole rows x cols gradient, row-major, from the last probe pass: O(rows x cols) memory and time */
  denseGradient(): Float32Array;
  /** per-unit sums over the probe batch; with signs (one per probe batch row) the AMS-sketch estimate */
  unitSums(signs?: Float32Array): UnitSums;
  /** rows of the recorded probe batch (conv: image patches count as rows) */
  probeRows(): number;
}

/** A model layer that owns one sparse weight: the training loop sees its parameters and probe switch. */
export interface SparseLayer extends SparseWeight {
  readonly shape: LayerShape;
  /**
   * x (linear: [B, cols]; conv: NHWC) -> y (linear: [B, rows]; conv: NHWC with rows channels), bias
   * included. `inputGradient: false` (a model's first layer, whose input is the data and has no
   * trained parameter below it): the backward pass skips the input's gradient (./op.ts layerOp).
   */
  apply(x: tf.Tensor, o?: { inputGradient: boolean }): tf.Tensor;
  params(): Param[];
  /** while on, the next backward pass records the layer input and output gradient */
  setProbe(on: boolean): void;
  clearProbe(): void;
  /** everything trainable about the layer, for checkpoints (format-independent) */
  saveState(): LayerState;
  /** restores a saved state exactly (structure, weights, momentum, bias) */
  loadState(s: LayerState): void;
  /** bytes of parameter storage (values, indices, mask, optimizer state) */
  paramBytes(): number;
  dispose(): void;
}

export function connectionCount(c: Connections): number {
  return c.row.length;
}

/** The geometry of one prunable weight, known before it is built (sparsity assignment needs all of them). */
export interface LayerShape {
  name: string;
  kind: 'linear' | 'conv';
  /** output units (conv: out channels) */
  rows: number;
  /** input units (conv: in_channels * kh * kw, ordered (ky, kx, channel)) */
  cols: number;
  /** output positions per sample: 1 for linear, Ho * Wo for conv (FLOP counting) */
  positions: number;
  /**
   * inputSize: the spatial size [H, W] of the input the layer receives; padding 'same'
   * (TensorFlow's rule), 'valid', or a number p: p zero rows and columns on every side, then
   * 'valid' (PyTorch's padding=p)
   */
  conv?: { kh: number; kw: number; inChannels: number; stride: number; padding: 'same' | 'valid' | number; inputSize: [number, number] };
}

/** Initial state of a layer: its sorted active connections, their weights, and the bias. */
export interface LayerInit {
  connections: Connections;
  values: Float32Array;
  bias: Float32Array;
}

/** A layer's trainable state in a format-independent form: sorted connections and per-connection values. */
export interface LayerState {
  connections: Connections;
  values: Float32Array;
  velocity: Float32Array;
  bias: Float32Array;
  biasVelocity: Float32Array;
}
