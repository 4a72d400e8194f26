import { UserError } from '../core/errors.js';
import { lenet5 } from './lenet5.js';
import { mlp } from './mlp.js';
import type { ModelEntry } from './model.js';
import { resnet56 } from './resnet56.js';
import { vgg16 } from './vgg16.js';
import { vit } from './vit.js';

/** The registry: the only list of models. */
export const models: Record<string, ModelEntry> = {
  [mlp.name]: mlp,
  [lenet5.name]: lenet5,
  [resnet56.name]: resnet56,
  [vgg16.name]: vgg16,
  [vit.name]: vit,
};

export function getModel(name: string): ModelEntry {
  const m = Object.prototype.hasOwnProperty.call(models, name) ? models[name] : undefined;
  if (!m) throw new UserError(`unknown model "${name}" (known: ${Object.keys(models).join(', ')})`);
  return m;
}
