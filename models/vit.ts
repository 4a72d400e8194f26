/**
 * The paper's ViT: the GSE authors' "simple-vit-tiny" (models/simple_vit.py, SimpleViT after
 * lucidrains/vit-pytorch; Beyer et al. 2022 "Better plain ViT baselines"): patch 4, dim 512,
 * depth 4, heads 6, MLP 256, with dim_head 64 (the SimpleViT default: 6 heads x 64 = 384 inner
 * attention width, which is why heads need not divide dim).
 *
 *   patches (p1 p2 c) -> LayerNorm -> Linear(p*p*c, dim) -> LayerNorm, + fixed 2-D sin-cos
 *   position embedding (not trained); no class token;
 *   depth x [ x += to_out(attention(to_qkv(LN(x))));  x += fc2(GELU(fc1(LN(x)))) ]
 *   mean over tokens -> LayerNorm -> Linear(dim, classes)
 *
 * to_qkv and to_out have no bias (as the authors'); every other linear has one. All six linear
 * kinds are prunable sparse layers. 4,237,930 parameters on CIFAR-10, 4,284,100 on CIFAR-100.
 * Width multiplier (authors' get_model): dim int(512w), heads int(6w), MLP int(256w); dim_head fixed.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../core/errors.js';
import { LayerNorm, dropBias, gelu, multiHeadAttention, scaled, sincosPositionEmbedding, trainableParams } from './layers.js';
import { declareOptions, type OptionsOf } from '../core/options.js';
import type { ModelEntry } from './model.js';
import type { LayerShape, SparseLayer } from './sparse/types.js';

interface Dims { patch: number; dim: number; depth: number; heads: number; dimHead: number; mlp: number; gh: number; gw: number; tokens: number; patchDim: number }

const vitOptions = declareOptions({
  width: { type: 'number', default: 1, exclusiveMinimum: 0, help: 'width multiplier of dim, heads and MLP (dim_head stays)' },
  patch: { type: 'integer', default: 4, minimum: 1, help: 'patch side in pixels' },
  dim: { type: 'integer', default: 512, minimum: 4, help: 'token width at width 1 (x width must be a multiple of 4)' },
  depth: { type: 'integer', default: 4, minimum: 1, help: 'transformer blocks' },
  heads: { type: 'integer', default: 6, minimum: 1, help: 'attention heads at width 1' },
  dimHead: { type: 'integer', default: 64, minimum: 1, help: 'width of one attention head' },
  mlp: { type: 'integer', default: 256, minimum: 1, help: 'hidden width of the feed-forward block at width 1' },
});
export type VitOptions = OptionsOf<typeof vitOptions>;

function dims(o: VitOptions, inputShape: number[]): Dims {
  if (inputShape.length !== 3) throw new UserError(`model vit needs image input [H, W, C], the dataset gives [${inputShape}]`);
  const [h, w, c] = inputShape;
  const patch = o.patch;
  if (h % patch !== 0 || w % patch !== 0) throw new UserError(`model vit: image ${h}x${w} is not divisible by patch ${patch}`);
  const dim = scaled(o.dim, o.width);
  if (dim % 4 !== 0) throw new UserError(`model vit: dim ${dim} (dim x width) must be a multiple of 4 for the sin-cos position embedding`);
  const gh = h / patch, gw = w / patch;
  return { patch, dim, depth: o.depth, heads: scaled(o.heads, o.width), dimHead: o.dimHead, mlp: scaled(o.mlp, o.width), gh, gw, tokens: gh * gw, patchDim: patch * patch * c };
}

export const vit: ModelEntry<VitOptions> = {
  name: 'vit',
  summary: 'vision transformer (the GSE authors\' simple-vit-tiny: patch 4, dim 512, depth 4, heads 6 x 64, MLP 256)',
  options: vitOptions,
  kernels: ['BatchMatMul', 'Transpose', 'Softmax', 'Erf', 'AvgPool', 'Slice', 'Concat'],
  layout(o, data) {
    const d = dims(o, data.inputShape);
    const T = d.tokens;
    const inner = d.heads * d.dimHead;
    const lin = (name: string, rows: number, cols: number, positions = T): LayerShape => ({ name, kind: 'linear', rows, cols, positions });
    const shapes: LayerShape[] = [lin('patch', d.dim, d.patchDim)];
    for (let b = 1; b <= d.depth; b++) {
      shapes.push(lin(`b${b}.qkv`, 3 * inner, d.dim), lin(`b${b}.out`, d.dim, inner), lin(`b${b}.fc1`, d.mlp, d.dim), lin(`b${b}.fc2`, d.dim, d.mlp));
    }
    shapes.push(lin('head', data.classes, d.dim, 1));
    return shapes;
  },
  build(o, data, layers) {
    const d = dims(o, data.inputShape);
    const byName = new Map(layers.map((l) => [l.name, l]));
    const get = (name: string): SparseLayer => byName.get(name)!;
    const biasFree = new Set<string>();
    for (let b = 1; b <= d.depth; b++) for (const n of [`b${b}.qkv`, `b${b}.out`]) { dropBias(get(n)); biasFree.add(n); }
    const norms = {
      patchIn: new LayerNorm('patch.ln1', d.patchDim),
      patchOut: new LayerNorm('patch.ln2', d.dim),
      attn: Array.from({ length: d.depth }, (_, i) => new LayerNorm(`b${i + 1}.attn.ln`, d.dim)),
      ff: Array.from({ length: d.depth }, (_, i) => new LayerNorm(`b${i + 1}.ff.ln`, d.dim)),
      head: new LayerNorm('head.ln', d.dim),
    };
    const allNorms = [norms.patchIn, norms.patchOut, ...norms.attn, ...norms.ff, norms.head];
    const params = trainableParams(layers, biasFree, allNorms.flatMap((n) => n.params()));
    const pe = tf.keep(tf.tensor2d(sincosPositionEmbedding(d.gh, d.gw, d.dim), [d.tokens, d.dim]));
    const [H, W, C] = data.inputShape;
    const P = d.patch, T = d.tokens;

    return {
      layers,
      params: () => params,
      forward: (x) => {
        const n = x.shape[0];
        // [N, H, W, C] -> [N, gh, P, gw, P, C] -> [N, gh, gw, P, P, C]: one row of (p1, p2, c) per token
        const patches = tf.reshape(tf.transpose(tf.reshape(x, [n, d.gh, P, d.gw, P, C]), [0, 1, 3, 2, 4, 5]), [n * T, d.patchDim]);
        let h = norms.patchOut.apply(get('patch').apply(norms.patchIn.apply(patches)));
        h = tf.reshape(tf.add(tf.reshape(h, [n, T, d.dim]), pe), [n * T, d.dim]);
        for (let b = 0; b < d.depth; b++) {
          const qkv = get(`b${b + 1}.qkv`).apply(norms.attn[b].apply(h));
          const att = multiHeadAttention(qkv as tf.Tensor2D, n, T, d.heads, d.dimHead);
          h = tf.add(get(`b${b + 1}.out`).apply(att), h);
          const ff = get(`b${b + 1}.fc2`).apply(gelu(get(`b${b + 1}.fc1`).apply(norms.ff[b].apply(h))));
          h = tf.add(ff, h);
        }
        const pooled = tf.mean(tf.reshape(h, [n, T, d.dim]), 1);
        return get('head').apply(norms.head.apply(pooled)) as tf.Tensor2D;
      },
      dispose: () => {
        layers.forEach((l) => l.dispose());
        allNorms.forEach((m) => m.dispose());
        pe.dispose();
      },
    };
  },
};
