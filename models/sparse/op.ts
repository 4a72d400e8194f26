import * as tf from '@tensorflow/tfjs';

/** The gradients of a layer op: its input's (null when not asked for), then its parameters'. */
export type LayerGrads = [tf.Tensor | null, ...tf.Tensor[]];

/**
 * A layer op's forward pass: `inputGradient` says whether the backward pass must give the
 * input's gradient (otherwise it returns null there and may skip its computation).
 */
export type LayerOpBody = (x: tf.Tensor, params: tf.Tensor[], inputGradient: boolean, save: tf.GradSaveFunc) => {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => LayerGrads;
};

/**
 * A layer op y = f(x, params) with a hand-written gradient, as tf.customGrad with honest types.
 * Called with `inputGradient: false` (a model's first layer: its input is the data batch, and no
 * trained parameter lies below it), x is not an input of the op on the tape: the backward pass
 * skips the input's gradient (for an MLP's first layer the largest product of its backward pass),
 * and a gradient asked for x fails in tfjs instead of coming back as zeros.
 */
export function layerOp(body: LayerOpBody): (x: tf.Tensor, params: tf.Tensor[], inputGradient: boolean) => tf.Tensor {
  type Custom = (...inputs: tf.Tensor[]) => tf.Tensor;
  const custom = (f: (...args: (tf.Tensor | tf.GradSaveFunc)[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] }) =>
    tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as Custom;
  const withInput = custom((...args) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [x, ...params] = args as tf.Tensor[];
    const { value, gradFunc } = body(x, params, true, save);
    return { value, gradFunc: (dy, saved) => gradFunc(dy, saved) as tf.Tensor[] };
  });
  // the input of the call under way when the op does not take it (no input gradient)
  let pending: tf.Tensor | null = null;
  const withoutInput = custom((...args) => {
    const save = args.pop() as tf.GradSaveFunc;
    const { value, gradFunc } = body(pending!, args as tf.Tensor[], false, save);
    return { value, gradFunc: (dy, saved) => gradFunc(dy, saved).slice(1) as tf.Tensor[] };
  });
  return (x, params, inputGradient) => {
    if (inputGradient) return withInput(x, ...params);
    pending = x;
    try { return withoutInput(...params); } finally { pending = null; }
  };
}
