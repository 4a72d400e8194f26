import { UserError } from '../harness/errors.js';
import { dense } from './dense.js';
import { staticSparse } from './static.js';
import { set } from './set.js';
import { rigl } from './rigl.js';
import { gse } from './gse.js';
import { gradual } from './gradual.js';
import type { Method } from './types.js';

/** The registry: the only list of methods. */
export const methods: Record<string, Method> = {
  [dense.name]: dense,
  [staticSparse.name]: staticSparse,
  [set.name]: set,
  [rigl.name]: rigl,
  [gse.name]: gse,
  [gradual.name]: gradual,
};

export function getMethod(name: string): Method {
  const m = Object.prototype.hasOwnProperty.call(methods, name) ? methods[name] : undefined;
  if (!m) throw new UserError(`unknown method "${name}" (known: ${Object.keys(methods).join(', ')})`);
  return m;
}
