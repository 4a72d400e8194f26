import type * as tf from '@tensorflow/tfjs';
import type { OptionSpecs } from '../core/options.js';
import type { LayerShape, Param, SparseLayer } from './sparse/types.js';

export interface DataShape {
  inputShape: number[];
  classes: number;
}

export interface Model {
  /** every prunable weight, in forward order */
  readonly layers: SparseLayer[];
  params(): Param[];
  /** logits [B, classes] for a batch in the dataset's layout; training: batch statistics move, dropout on */
  forward(x: tf.Tensor, training: boolean): tf.Tensor2D;
  dispose(): void;
}

/**
 * A model family. Building is two-phase: `layout` names every prunable weight's geometry (the
 * sparsity assignment needs all of them at once), then `build` wires the layers made from it.
 * `options` is the one declaration of its options; `O`, what layout and build receive (defaults
 * filled in), is derived from it: `ModelEntry<OptionsOf<typeof options>>` (core/options.ts).
 */
export interface ModelEntry<O = Record<string, any>> {
  name: string;
  summary: string;
  options: OptionSpecs;
  /** kernels the model's training needs beyond matMul and elementwise ops (backend selection) */
  kernels: string[];
  layout(options: O, data: DataShape): LayerShape[];
  build(options: O, data: DataShape, layers: SparseLayer[]): Model;
}

export function layerParams(layers: SparseLayer[]): Param[] {
  return layers.flatMap((l) => l.params());
}
