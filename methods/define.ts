/**
 * `defineMethod`: the public way to declare a method (exported from the package entry, index.ts).
 * Its options table is the single declaration the TypeScript type of the options is derived from
 * (`OptionsOf`), as are the config schema, the defaults, `list` and the variant label; the object
 * is checked field by field at once, with the same check the plugin loader applies to a plain
 * object (harness/plugins.ts), so a malformed method fails with one line naming the field.
 */
import type { OptionSpec, OptionSpecs } from '../harness/options.js';
import type { Method } from './types.js';

/** The value type one option declaration stands for. */
export type OptionValue<S extends OptionSpec> =
  S['type'] extends 'number' | 'integer' ? number
    : S['type'] extends 'boolean' ? boolean
      : S['type'] extends 'integer[]' ? number[]
        : S extends { enum: readonly (infer E)[] } ? E : string;

/** The options type of a declaration: { gamma: { type: 'number', ... } } -> { gamma: number }. */
export type OptionsOf<S extends OptionSpecs> = { -readonly [K in keyof S]: OptionValue<S[K]> };

/** A method whose options type is derived from its `options` declaration. */
export function defineMethod<const S extends OptionSpecs>(m: Omit<Method<OptionsOf<S>>, 'options'> & { options: S }): Method<OptionsOf<S>> {
  const problem = checkMethodShape(m);
  if (problem) throw new Error(`defineMethod: ${problem}`);
  return m as unknown as Method<OptionsOf<S>>;
}

const OPTION_TYPES = ['number', 'integer', 'string', 'boolean', 'integer[]'];

function checkOption(key: string, o: unknown): string | null {
  const at = `field "options.${key}"`;
  if (!o || typeof o !== 'object') return `${at}: must be an option declaration { type, default, help }`;
  const s = o as Record<string, unknown>;
  if (!OPTION_TYPES.includes(s.type as string)) return `${at}.type: must be one of ${OPTION_TYPES.join(', ')} (got ${JSON.stringify(s.type)})`;
  if (typeof s.help !== 'string' || s.help === '') return `${at}.help: must be a one-line description`;
  const d = s.default;
  const ok = s.type === 'number' ? typeof d === 'number' && Number.isFinite(d)
    : s.type === 'integer' ? Number.isInteger(d)
      : s.type === 'boolean' ? typeof d === 'boolean'
        : s.type === 'integer[]' ? Array.isArray(d) && d.every(Number.isInteger)
          : typeof d === 'string';
  if (!ok) return `${at}.default: must be a ${s.type} (got ${JSON.stringify(d)})`;
  if (s.enum !== undefined && (!Array.isArray(s.enum) || !s.enum.includes(d))) return `${at}.enum: must be a list of strings that holds the default`;
  for (const b of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
    if (s[b] !== undefined && typeof s[b] !== 'number') return `${at}.${b}: must be a number`;
  }
  return null;
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
    const p = checkOption(k, s);
    if (p) return p;
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
