import * as tf from '@tensorflow/tfjs';
import { declareOptions, type OptionsOf } from '../core/options.js';
import { layerParams, type ModelEntry } from './model.js';
import { CsrLayer } from './sparse/csr.js';
import { CsrChain } from './sparse/csr-chain.js';

const mlpOptions = declareOptions({
  hidden: { type: 'integer[]', default: [300, 100], minimum: 1, help: 'hidden layer sizes at width 1' },
  width: { type: 'number', default: 1, exclusiveMinimum: 0, help: 'width multiplier of every hidden layer' },
});
export type MlpOptions = OptionsOf<typeof mlpOptions>;

/** Fully connected ReLU network; the default 300,100 is LeNet-300-100. */
export const mlp: ModelEntry<MlpOptions> = {
  name: 'mlp',
  summary: 'multi-layer perceptron with ReLU (default LeNet-300-100)',
  options: mlpOptions,
  kernels: [],
  layout(o, data) {
    const inputs = data.inputShape.reduce((a, b) => a * b, 1);
    const sizes = [inputs, ...o.hidden.map((h) => Math.max(1, Math.round(h * o.width))), data.classes];
    return sizes.slice(1).map((rows, i) => ({ name: `fc${i + 1}`, kind: 'linear' as const, rows, cols: sizes[i], positions: 1 }));
  },
  build(_o, _data, layers) {
    // csr layers run as one chain op: activations stay in the kernels' layout between layers
    const chain = layers.every((l) => l instanceof CsrLayer) ? new CsrChain(layers as CsrLayer[]) : null;
    return {
      layers,
      params: () => layerParams(layers),
      forward: (x) => {
        // the input is the data batch: no layer needs its gradient
        let h = tf.reshape(x, [x.shape[0], -1]);
        if (chain) return chain.apply(h, { inputGradient: false }) as tf.Tensor2D;
        layers.forEach((layer, i) => {
          h = layer.apply(h, { inputGradient: i > 0 });
          if (i < layers.length - 1) h = tf.relu(h);
        });
        return h as tf.Tensor2D;
      },
      dispose: () => { chain?.dispose(); layers.forEach((l) => l.dispose()); },
    };
  },
};
