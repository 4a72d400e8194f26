/**
 * CIFAR ResNet-56 (He et al. 2016, section 4.2) as in the GSE authors' code (models/resnet_cifar.py,
 * taken from akamaster/pytorch_resnet_cifar10): conv3x3(16) - BN - ReLU, then 3 stages of 9 basic
 * blocks with 16/32/64 channels (stride 2 at the start of stages 2 and 3), global average pool,
 * linear. Convolutions have no bias (BN follows); the linear layer has one. Shortcuts are option A
 * (the authors' default): identity, or where the shape changes x[:, ::2, ::2] zero-padded in
 * channels (parameter-free); option B (1x1 conv + BN) is available. 853,018 parameters on CIFAR-10.
 *
 * Width multiplier: channels int(16w), int(32w), int(64w) as the authors' code. Stride-2
 * convolutions pad 1 pixel on every side as PyTorch does (TensorFlow's 'same' would pad only
 * below/right and shift the sampling grid against the option-A shortcut).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../core/errors.js';
import { BatchNorm, dropBias, scaled, trainableParams, type ModelWithBuffers } from './layers.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import type { ModelEntry } from './model.js';
import { readFloats } from './sparse/csr.js';
import type { LayerShape, Param, SparseLayer } from './sparse/types.js';

interface Block {
  conv1: string; conv2: string; shortcut?: string;
  inPlanes: number; planes: number; stride: number;
}

interface Plan {
  stem: number;
  blocks: Block[];
  widths: number[];
}

function plan(o: Resnet56Options): Plan {
  const widths = [16, 32, 64].map((c) => scaled(c, o.width));
  const blocks: Block[] = [];
  let inPlanes = widths[0];
  widths.forEach((planes, s) => {
    for (let b = 0; b < o.blocks; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      const name = `s${s + 1}b${b + 1}`;
      const block: Block = { conv1: `${name}.conv1`, conv2: `${name}.conv2`, inPlanes, planes, stride };
      if (o.shortcut === 'B' && (stride !== 1 || inPlanes !== planes)) block.shortcut = `${name}.shortcut`;
      blocks.push(block);
      inPlanes = planes;
    }
  });
  return { stem: widths[0], blocks, widths };
}

/** a k x k conv of an h x w map, padded (k-1)/2 on every side as PyTorch's padding=1: stride 1 as 'same', stride 2 explicitly */
function conv(name: string, inC: number, outC: number, k: number, stride: number, h: number, w: number): LayerShape {
  const pad = (k - 1) / 2;
  const [hOut, wOut] = [Math.floor((h + 2 * pad - k) / stride) + 1, Math.floor((w + 2 * pad - k) / stride) + 1];
  return { name, kind: 'conv', rows: outC, cols: k * k * inC, positions: hOut * wOut, conv: { kh: k, kw: k, inChannels: inC, stride, padding: stride === 1 ? 'same' : pad, inputSize: [h, w] } };
}

/**
 * Option-A shortcut: x[:, ::s, ::s, :] (PyTorch slicing: positions 0, s, 2s, ...) with `planes -
 * C` zero channels split evenly before and after; parameter-free, so a copy each way (its
 * gradient puts dy's middle channels back at the sampled positions, zeros elsewhere).
 */
export function optionA(inC: number, planes: number, stride: number): (x: tf.Tensor4D) => tf.Tensor4D {
  const lo = Math.floor((planes - inC) / 2);
  /** calls f(o, p) for each output pixel: o its first kept channel in y, p its source pixel in x */
  const eachSample = (n: number, h: number, w: number, f: (o: number, p: number) => void) => {
    const ho = Math.ceil(h / stride), wo = Math.ceil(w / stride);
    for (let b = 0, o = lo; b < n; b++) {
      for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++, o += planes) f(o, ((b * h + i * stride) * w + j * stride) * inC);
    }
    return [ho, wo];
  };
  const op = tf.customGrad(((x: tf.Tensor4D) => {
    const [n, h, w] = x.shape;
    const src = readFloats(x);
    const y = new Float32Array(n * Math.ceil(h / stride) * Math.ceil(w / stride) * planes);
    const [ho, wo] = eachSample(n, h, w, (o, p) => y.set(src.subarray(p, p + inC), o));
    return {
      value: tf.tensor4d(y, [n, ho, wo, planes]),
      gradFunc: (dy: tf.Tensor4D) => {
        const g = readFloats(dy);
        const dx = new Float32Array(n * h * w * inC);
        eachSample(n, h, w, (o, p) => dx.set(g.subarray(o, o + inC), p));
        return tf.tensor4d(dx, [n, h, w, inC]);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor4D) => tf.Tensor4D;
  return op;
}

const resnet56Options = declareOptions({
  width: { type: 'number', default: 1, exclusiveMinimum: 0, help: 'width multiplier of every layer but the last (channels int(16w), int(32w), int(64w))' },
  blocks: { type: 'integer', default: 9, minimum: 1, help: 'basic blocks per stage (9: ResNet-56; 3: ResNet-20, 5: ResNet-32)' },
  shortcut: { type: 'string', default: 'A', enum: ['A', 'B'], help: 'A: zero-padding/subsample identity (the authors\' default); B: 1x1 conv + BN' },
});
export type Resnet56Options = OptionsOf<typeof resnet56Options>;

export const resnet56: ModelEntry<Resnet56Options> = {
  name: 'resnet56',
  summary: 'CIFAR ResNet-56 (3 stages x 9 basic blocks, 16/32/64 channels, batch norm; ~0.85M parameters)',
  options: resnet56Options,
  kernels: ['Conv2D', 'PadV2', 'Transpose', 'Reverse', 'AvgPool', 'Step'],
  layout(o, data) {
    if (data.inputShape.length !== 3) throw new UserError(`model resnet56 needs image input [H, W, C], the dataset gives [${data.inputShape}]`);
    const [h0, w0, c0] = data.inputShape;
    const p = plan(o);
    let h = h0, w = w0;
    const shapes: LayerShape[] = [conv('conv1', c0, p.stem, 3, 1, h, w)];
    for (const b of p.blocks) {
      const ho = b.stride === 1 ? h : Math.floor((h + 2 - 3) / b.stride) + 1;
      const wo = b.stride === 1 ? w : Math.floor((w + 2 - 3) / b.stride) + 1;
      shapes.push(conv(b.conv1, b.inPlanes, b.planes, 3, b.stride, h, w));
      shapes.push(conv(b.conv2, b.planes, b.planes, 3, 1, ho, wo));
      if (b.shortcut) {
        shapes.push({ name: b.shortcut, kind: 'conv', rows: b.planes, cols: b.inPlanes, positions: ho * wo, conv: { kh: 1, kw: 1, inChannels: b.inPlanes, stride: b.stride, padding: 'valid', inputSize: [h, w] } });
      }
      h = ho; w = wo;
    }
    shapes.push({ name: 'fc', kind: 'linear', rows: data.classes, cols: p.widths[2], positions: 1 });
    return shapes;
  },
  build(o, data, layers) {
    const p = plan(o);
    const byName = new Map(layers.map((l) => [l.name, l]));
    const get = (name: string): SparseLayer => {
      const l = byName.get(name);
      if (!l) throw new Error(`resnet56: no layer ${name}`);
      return l;
    };
    const bns = new Map<string, BatchNorm>();
    const bn = (name: string, c: number) => { const b = new BatchNorm(`${name}.bn`, c); bns.set(name, b); return b; };
    const convs = layers.filter((l) => l.shape.kind === 'conv');
    for (const l of convs) { bn(l.name, l.rows); dropBias(l); }
    const biasFree = new Set(convs.map((l) => l.name));
    const extra: Param[] = [...bns.values()].flatMap((b) => b.params());
    const params = trainableParams(layers, biasFree, extra);
    const fc = get('fc');
    const shortcuts = new Map<string, ReturnType<typeof optionA>>();
    for (const b of p.blocks) if (!b.shortcut && (b.stride !== 1 || b.inPlanes !== b.planes)) shortcuts.set(b.conv1, optionA(b.inPlanes, b.planes, b.stride));
    const [H, W, C] = data.inputShape;

    /** the layer's conv, then BN [+ residual] [+ ReLU] */
    const convBn = (name: string, x: tf.Tensor4D, training: boolean, o: { residual?: tf.Tensor; relu?: boolean } = {}): tf.Tensor4D =>
      // conv1's input is the data batch: no input gradient
      bns.get(name)!.apply(get(name).apply(x, { inputGradient: name !== 'conv1' }), training, o) as tf.Tensor4D;

    const model: ModelWithBuffers = {
      layers,
      params: () => params,
      buffers: () => [...bns.values()].flatMap((b) => b.buffers()),
      forward: (x, training) => {
        let h = convBn('conv1', tf.reshape(x, [x.shape[0], H, W, C]) as tf.Tensor4D, training, { relu: true });
        for (const b of p.blocks) {
          const out = convBn(b.conv1, h, training, { relu: true });
          const short = b.shortcut ? convBn(b.shortcut, h, training) : shortcuts.get(b.conv1)?.(h) ?? h;
          h = convBn(b.conv2, out, training, { residual: short, relu: true });
        }
        return fc.apply(tf.mean(h, [1, 2])) as tf.Tensor2D;
      },
      dispose: () => {
        layers.forEach((l) => l.dispose());
        for (const b of bns.values()) b.dispose();
      },
    };
    return model;
  },
};
