import { UserError } from '../harness/errors.js';
import { dense } from './dense.js';
import { staticSparse } from './static.js';
import type { Method } from './types.js';

/** The registry: the only list of methods. */
export const methods: Record<string, Method> = {
  [dense.name]: dense,
  [staticSparse.name]: staticSparse,
};

export function getMethod(name: string): Method {
  const m = Object.prototype.hasOwnProperty.call(methods, name) ? methods[name] : undefined;
  if (!m) throw new UserError(`unknown method "${name}" (known: ${Object.keys(methods).join(', ')})`);
  return m;
}
