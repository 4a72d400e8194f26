import * as tf from '@tensorflow/tfjs';
import { UserError } from '../core/errors.js';
import { maxPool2 } from './layers.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import { layerParams, type ModelEntry } from './model.js';

const lenet5Options = declareOptions({
  width: { type: 'number', default: 1, exclusiveMinimum: 0, help: 'width multiplier of every layer but the last' },
});
export type Lenet5Options = OptionsOf<typeof lenet5Options>;

/** LeNet-5: conv 5x5 (6) - pool - conv 5x5 (16) - pool - fc 120 - fc 84 - fc classes, ReLU. */
export const lenet5: ModelEntry<Lenet5Options> = {
  name: 'lenet5',
  summary: 'LeNet-5 convolutional network (conv6-conv16-fc120-fc84)',
  options: lenet5Options,
  kernels: ['Conv2D', 'Conv2DBackpropInput', 'MaxPool'],
  layout(o, data) {
    if (data.inputShape.length !== 3) throw new UserError(`model lenet5 needs image input [H, W, C], the dataset gives [${data.inputShape}]`);
    const [h, w, c] = data.inputShape;
    const ch = (n: number) => Math.max(1, Math.round(n * o.width));
    const c1 = ch(6), c2 = ch(16), f1 = ch(120), f2 = ch(84);
    const h1 = Math.floor(h / 2), w1 = Math.floor(w / 2);          // conv1 'same' then pool 2
    const h2 = Math.floor((h1 - 4) / 2), w2 = Math.floor((w1 - 4) / 2); // conv2 'valid' then pool 2
    return [
      { name: 'conv1', kind: 'conv', rows: c1, cols: 25 * c, positions: h * w, conv: { kh: 5, kw: 5, inChannels: c, stride: 1, padding: 'same', inputSize: [h, w] } },
      { name: 'conv2', kind: 'conv', rows: c2, cols: 25 * c1, positions: (h1 - 4) * (w1 - 4), conv: { kh: 5, kw: 5, inChannels: c1, stride: 1, padding: 'valid', inputSize: [h1, w1] } },
      { name: 'fc1', kind: 'linear', rows: f1, cols: h2 * w2 * c2, positions: 1 },
      { name: 'fc2', kind: 'linear', rows: f2, cols: f1, positions: 1 },
      { name: 'fc3', kind: 'linear', rows: data.classes, cols: f2, positions: 1 },
    ];
  },
  build(_o, data, layers) {
    const [conv1, conv2, fc1, fc2, fc3] = layers;
    return {
      layers,
      params: () => layerParams(layers),
      forward: (x) => {
        const [H, W, C] = data.inputShape;
        let h = tf.reshape(x, [x.shape[0], H, W, C]) as tf.Tensor4D;
        h = maxPool2(tf.relu(conv1.apply(h, { inputGradient: false })) as tf.Tensor4D, 'valid');
        h = maxPool2(tf.relu(conv2.apply(h)) as tf.Tensor4D, 'valid');
        let f: tf.Tensor = tf.reshape(h, [h.shape[0], -1]);
        f = tf.relu(fc1.apply(f));
        f = tf.relu(fc2.apply(f));
        return fc3.apply(f) as tf.Tensor2D;
      },
      dispose: () => layers.forEach((l) => l.dispose()),
    };
  },
};
