import { UserError } from '../harness/errors.js';
import { lenet5 } from './lenet5.js';
import { mlp } from './mlp.js';
import type { ModelEntry } from './model.js';

/** The registry: the only list of models. */
export const models: Record<string, ModelEntry> = {
  [mlp.name]: mlp,
  [lenet5.name]: lenet5,
};

export function getModel(name: string): ModelEntry {
  const m = Object.prototype.hasOwnProperty.call(models, name) ? models[name] : undefined;
  if (!m) throw new UserError(`unknown model "${name}" (known: ${Object.keys(models).join(', ')})`);
  return m;
}
