import { UserError } from '../core/errors.js';
import { dense } from './dense.js';
import { staticSparse } from './static.js';
import { set } from './set.js';
import { rigl } from './rigl.js';
import { gse } from './gse.js';
import { gradual } from './gradual.js';
import { snip } from './snip.js';
import { grasp } from './grasp.js';
import { synflow } from './synflow.js';
import { lottery } from './lottery.js';
import { topkast } from './topkast.js';
import type { Method } from './types.js';

/** The built-in methods. */
export const builtinMethods: Readonly<Record<string, Method>> = Object.freeze({
  [dense.name]: dense,
  [staticSparse.name]: staticSparse,
  [set.name]: set,
  [rigl.name]: rigl,
  [gse.name]: gse,
  [gradual.name]: gradual,
  [snip.name]: snip,
  [grasp.name]: grasp,
  [synflow.name]: synflow,
  [lottery.name]: lottery,
  [topkast.name]: topkast,
});

/** The registry: the only list of methods, the built-in ones and the plugins loaded (harness/plugins.ts). */
export const methods: Record<string, Method> = { ...builtinMethods };

/**
 * A method reference's variant label: its name, plus every option that differs from its default
 * in declaration order, "gse(sampler=grabo)", "synflow(biases=off)"; the bare name when all are
 * defaults. results.csv and every report grouping key on it, so two option settings are never
 * averaged together (only seeds are).
 */
export function variantLabel(ref: { name: string; [option: string]: unknown }): string {
  const method = getMethod(ref.name);
  const set = Object.entries(method.options)
    .filter(([k, spec]) => ref[k] !== undefined && JSON.stringify(ref[k]) !== JSON.stringify(spec.default))
    .map(([k]) => `${k}=${typeof ref[k] === 'string' ? ref[k] : JSON.stringify(ref[k])}`);
  return set.length ? `${ref.name}(${set.join(',')})` : ref.name;
}

export function getMethod(name: string): Method {
  const m = Object.prototype.hasOwnProperty.call(methods, name) ? methods[name] : undefined;
  if (!m) throw new UserError(`unknown method "${name}" (known: ${Object.keys(methods).join(', ')})`);
  return m;
}
