/**
 * `defineMethod`: the public way to declare a method (exported from the package entry, index.ts).
 * Its options table is the single declaration the TypeScript type of the options is derived from
 * (`OptionsOf`), as are the config schema, the defaults, `list` and the variant label; the object
 * is checked field by field at once, with the same check the plugin loader applies to a plain
 * object (harness/plugins.ts), so a malformed method fails with one line naming the field.
 */
import { declarationProblem, type OptionSpecs, type OptionsOf } from '../core/options.js';
import type { Method } from './types.js';

/** A method whose options type is derived from its `options` declaration. */
export function defineMethod<const S extends OptionSpecs>(m: Omit<Method<OptionsOf<S>>, 'options'> & { options: S }): Method<OptionsOf<S>> {
  const problem = checkMethodShape(m);
  if (problem) throw new Error(`defineMethod: ${problem}`);
  return m as unknown as Method<OptionsOf<S>>;
}

/** Why `m` is not a method of the documented shape (one phrase naming the field), or null. */
export function checkMethodShape(m: unknown): string | null {
  if (!m || typeof m !== 'object') return 'is not an object (a method: { name, summary, options, sparse, alwaysSparse, updates, startsDense, updatesAt, update })';
  const o = m as Record<string, unknown>;
  if (typeof o.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(o.name)) return `field "name": must be a name of letters, digits, ".", "_" or "-" (got ${JSON.stringify(o.name)})`;
  if (typeof o.summary !== 'string' || o.summary === '') return 'field "summary": must be a one-line description';
  if (!o.options || typeof o.options !== 'object' || Array.isArray(o.options)) return 'field "options": must be an object of option declarations ({} for none)';
  for (const [k, s] of Object.entries(o.options)) {
    if (k === 'name') return 'field "options.name": "name" is reserved for the method name';
    const p = declarationProblem(s);
    if (p) return `field "options.${k}"${p.field ? `.${p.field}` : ''}: ${p.problem}`;
  }
  for (const f of ['sparse', 'alwaysSparse', 'updates']) if (typeof o[f] !== 'boolean') return `field "${f}": must be true or false`;
  for (const f of ['startsDense', 'updatesAt', 'update']) if (typeof o[f] !== 'function') return `field "${f}": must be a function`;
  for (const f of ['initialize', 'afterStep']) if (o[f] !== undefined && typeof o[f] !== 'function') return `field "${f}": must be a function when given`;
  if (o.rounds !== undefined) {
    const r = o.rounds as Record<string, unknown> | null;
    if (!r || typeof r.rewindStep !== 'function' || typeof r.next !== 'function') return 'field "rounds": must be { rewindStep(options), next(ctx, options) }';
  }
  if (o.invariants !== undefined) {
    const i = o.invariants as Record<string, unknown> | null;
    if (!i || typeof i !== 'object') return 'field "invariants": must be { counts?, grownAtZero? }';
    if (i.counts !== undefined && i.counts !== 'kept' && i.counts !== 'pruning') return 'field "invariants.counts": must be "kept" or "pruning"';
    if (i.grownAtZero !== undefined && typeof i.grownAtZero !== 'boolean') return 'field "invariants.grownAtZero": must be true or false';
  }
  return null;
}
