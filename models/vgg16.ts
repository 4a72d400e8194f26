/**
 * The CIFAR "small" VGG-16 with batch norm of the GSE authors' code (models/vgg_cifar.py,
 * vgg16_bn_small): VGG-16's configuration D with every conv width divided by 4 —
 * 16,16,M,32,32,M,64,64,64,M,128,128,128,M,128,128,128,M — each conv 3x3 pad 1 (with bias) + BN +
 * ReLU, max-pool 2x2; classifier Linear(128, 512) - ReLU - Dropout - Linear(512, 512) - ReLU -
 * Dropout - Linear(512, classes) (the linear widths divided by 8). 1,256,730 parameters on
 * CIFAR-10, 1,302,900 on CIFAR-100.
 *
 * Width multiplier: every conv and hidden linear width int(n * w), as the authors' code. Pools
 * round up (so a 1x1 map stays 1x1 on tiny inputs); on 32x32 inputs every map is even and this
 * equals PyTorch's MaxPool2d(2, 2).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../core/errors.js';
import { BatchNorm, Dropout, maxPool2, scaled, seedFromLayers, trainableParams, type ModelWithBuffers } from './layers.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import type { ModelEntry } from './model.js';
import type { LayerShape } from './sparse/types.js';

const CFG_D: (number | 'M')[] = [16, 16, 'M', 32, 32, 'M', 64, 64, 64, 'M', 128, 128, 128, 'M', 128, 128, 128, 'M'];

const vgg16Options = declareOptions({
  width: { type: 'number', default: 1, exclusiveMinimum: 0, help: 'width multiplier of every layer but the last' },
  dropout: { type: 'number', default: 0.5, minimum: 0, exclusiveMaximum: 1, help: 'dropout rate in the classifier (PyTorch nn.Dropout default 0.5)' },
});
export type Vgg16Options = OptionsOf<typeof vgg16Options>;

export const vgg16: ModelEntry<Vgg16Options> = {
  name: 'vgg16',
  summary: 'CIFAR VGG-16 "small" with batch norm (convs 16..128, classifier 512-512; the GSE authors\' vgg16_bn_small)',
  options: vgg16Options,
  kernels: ['Conv2D', 'PadV2', 'Transpose', 'Reverse', 'AvgPool', 'Step', 'MaxPool'],
  layout(o, data) {
    if (data.inputShape.length !== 3) throw new UserError(`model vgg16 needs image input [H, W, C], the dataset gives [${data.inputShape}]`);
    let [h, w, c] = data.inputShape;
    const shapes: LayerShape[] = [];
    let k = 0;
    for (const v of CFG_D) {
      if (v === 'M') { h = Math.ceil(h / 2); w = Math.ceil(w / 2); continue; }
      const out = scaled(v, o.width);
      shapes.push({ name: `conv${++k}`, kind: 'conv', rows: out, cols: 9 * c, positions: h * w, conv: { kh: 3, kw: 3, inChannels: c, stride: 1, padding: 'same', inputSize: [h, w] } });
      c = out;
    }
    const hidden = scaled(512, o.width);
    shapes.push({ name: 'fc1', kind: 'linear', rows: hidden, cols: h * w * c, positions: 1 });
    shapes.push({ name: 'fc2', kind: 'linear', rows: hidden, cols: hidden, positions: 1 });
    shapes.push({ name: 'fc3', kind: 'linear', rows: data.classes, cols: hidden, positions: 1 });
    return shapes;
  },
  build(o, data, layers) {
    const convs = layers.filter((l) => l.shape.kind === 'conv');
    const [fc1, fc2, fc3] = layers.filter((l) => l.shape.kind === 'linear');
    const bns = convs.map((l) => new BatchNorm(`${l.name}.bn`, l.rows));
    const seed = seedFromLayers(layers);
    const drop1 = new Dropout(o.dropout, seed, 'fc1');
    const drop2 = new Dropout(o.dropout, seed, 'fc2');
    const params = trainableParams(layers, new Set(), bns.flatMap((b) => b.params()));
    const [H, W, C] = data.inputShape;
    const model: ModelWithBuffers = {
      layers,
      params: () => params,
      buffers: () => [...bns.flatMap((b) => b.buffers()), ...drop1.buffers(), ...drop2.buffers()],
      forward: (x, training) => {
        let h = tf.reshape(x, [x.shape[0], H, W, C]) as tf.Tensor4D;
        let k = 0;
        for (const v of CFG_D) {
          if (v === 'M') { h = maxPool2(h, 'same'); continue; }
          // the first conv's input is the data batch: no input gradient
          h = bns[k].apply(convs[k].apply(h, { inputGradient: k > 0 }), training, { relu: true }) as tf.Tensor4D;
          k++;
        }
        let f: tf.Tensor = tf.reshape(h, [h.shape[0], -1]);
        f = drop1.apply(tf.relu(fc1.apply(f)), training);
        f = drop2.apply(tf.relu(fc2.apply(f)), training);
        return fc3.apply(f) as tf.Tensor2D;
      },
      dispose: () => {
        layers.forEach((l) => l.dispose());
        bns.forEach((b) => b.dispose());
        drop1.dispose();
        drop2.dispose();
      },
    };
    return model;
  },
};
