/**
 * Typed option groups with defaults: methods, models, datasets and the config groups (training,
 * sparsity, update) declare their options this way, once. Everything else is derived from that
 * declaration: the TypeScript type of the values (`OptionsOf`, from a declaration written
 * `as const satisfies OptionSpecs`), the config schema, the defaults, the check of values that
 * did not come through the schema (`checkedOptions`), `sparsebench list` and the variant label.
 *
 * The one decision a reader may question: a list option (`integer[]`) has no minimum length, so
 * an empty list is valid wherever the default is one (`"lrDrops": []` means no drops); a grid
 * list of such values still needs at least one value.
 */
import { UserError } from './errors.js';

export interface OptionSpec {
  type: 'number' | 'integer' | 'string' | 'boolean' | 'integer[]';
  default: unknown;
  help: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  enum?: readonly string[];
}

export type OptionSpecs = Record<string, OptionSpec>;

/** The value type one option declaration stands for. */
export type OptionValue<S extends OptionSpec> =
  S['type'] extends 'number' | 'integer' ? number
    : S['type'] extends 'boolean' ? boolean
      : S['type'] extends 'integer[]' ? number[]
        : S extends { enum: readonly (infer E)[] } ? E : string;

/**
 * The values type of a declaration: { gamma: { type: 'number', ... } } -> { gamma: number } (an
 * index signature, as declareOptions' result has, contributes no key).
 */
export type OptionsOf<S extends OptionSpecs> = { -readonly [K in keyof S as string extends K ? never : K]: OptionValue<S[K]> };

export const optionTypes: readonly OptionSpec['type'][] = ['number', 'integer', 'string', 'boolean', 'integer[]'];

/** Why `o` is not an option declaration: the field at fault (none: the whole) and a phrase; or null. */
export function declarationProblem(o: unknown): { field?: string; problem: string } | null {
  if (!o || typeof o !== 'object') return { problem: 'must be an option declaration { type, default, help }' };
  const s = o as Record<string, unknown>;
  if (!optionTypes.includes(s.type as OptionSpec['type'])) return { field: 'type', problem: `must be one of ${optionTypes.join(', ')} (got ${JSON.stringify(s.type)})` };
  if (typeof s.help !== 'string' || s.help === '') return { field: 'help', problem: 'must be a one-line description' };
  if (s.enum !== undefined && (!Array.isArray(s.enum) || !s.enum.every((e) => typeof e === 'string'))) return { field: 'enum', problem: 'must be a list of strings' };
  for (const b of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
    if (s[b] !== undefined && typeof s[b] !== 'number') return { field: b, problem: 'must be a number' };
  }
  const problem = valueProblem(s as unknown as OptionSpec, s.default);
  return problem ? { field: 'default', problem } : null;
}

/**
 * The one declaration of an option group, checked at once (a default of the wrong type or out of
 * its bounds throws). Its result keeps the literal types (`OptionsOf<typeof g>` is the values type)
 * and is still an open OptionSpecs table.
 */
export function declareOptions<const S extends OptionSpecs>(specs: S): S & OptionSpecs {
  for (const [key, spec] of Object.entries(specs)) {
    const p = declarationProblem(spec);
    if (p) throw new Error(`option "${key}"${p.field ? `.${p.field}` : ''}: ${p.problem}`);
  }
  return specs;
}

/** JSON Schema of one option. */
export function optionSchema(spec: OptionSpec): Record<string, unknown> {
  const bounds: Record<string, unknown> = {};
  for (const key of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const) {
    if (spec[key] !== undefined) bounds[key] = spec[key];
  }
  const base = { description: `${spec.help} (default ${JSON.stringify(spec.default)})`, default: spec.default };
  if (spec.type === 'integer[]') return { ...base, type: 'array', items: { type: 'integer', ...bounds } };
  if (spec.enum) return { ...base, type: spec.type, enum: spec.enum };
  return { ...base, type: spec.type, ...bounds };
}

/** JSON Schema of an option group; `extra` adds properties that are not options (e.g. "name"). */
export function optionsSchema(specs: OptionSpecs, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const properties: Record<string, unknown> = { ...extra };
  for (const [key, spec] of Object.entries(specs)) properties[key] = optionSchema(spec);
  return { type: 'object', properties, additionalProperties: false };
}

/** Every declared option, given or its default (other given keys are dropped). */
export function withDefaults<S extends OptionSpecs>(specs: S, given: Record<string, unknown> = {}): OptionsOf<S> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) out[key] = given[key] === undefined ? spec.default : given[key];
  return out as OptionsOf<S>;
}

/** Why `v` is not a value of `spec` (a phrase), or null. */
export function valueProblem(spec: OptionSpec, v: unknown): string | null {
  const shown = JSON.stringify(v);
  const bounds = (x: number): string | null => {
    if (spec.minimum !== undefined && x < spec.minimum) return `${x} is below the minimum ${spec.minimum}`;
    if (spec.maximum !== undefined && x > spec.maximum) return `${x} is above the maximum ${spec.maximum}`;
    if (spec.exclusiveMinimum !== undefined && x <= spec.exclusiveMinimum) return `${x} must be above ${spec.exclusiveMinimum}`;
    if (spec.exclusiveMaximum !== undefined && x >= spec.exclusiveMaximum) return `${x} must be below ${spec.exclusiveMaximum}`;
    return null;
  };
  switch (spec.type) {
    case 'integer':
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v) || (spec.type === 'integer' && !Number.isInteger(v))) return `must be ${spec.type === 'integer' ? 'an integer' : 'a number'} (got ${shown})`;
      return bounds(v);
    case 'integer[]':
      if (!Array.isArray(v) || !v.every(Number.isInteger)) return `must be a list of integers (got ${shown})`;
      for (const x of v) { const p = bounds(x); if (p) return p; }
      return null;
    case 'string':
      if (typeof v !== 'string') return `must be a string (got ${shown})`;
      if (spec.enum && !spec.enum.includes(v)) return `must be one of ${spec.enum.join(', ')} (got ${shown})`;
      return null;
    case 'boolean':
      return typeof v === 'boolean' ? null : `must be true or false (got ${shown})`;
  }
}

/**
 * `given` with the defaults filled in, every value checked against its declaration: for values
 * that did not come through the config schema (a direct call, a dataset loaded by name). An
 * unknown key or a bad value is a UserError naming `where` (e.g. "dataset synthetic") and the
 * option; "name" (a registry reference's, never an option) is passed over.
 */
export function checkedOptions<S extends OptionSpecs>(specs: S, given: Record<string, unknown>, where: string): OptionsOf<S> {
  for (const key of Object.keys(given)) {
    if (key !== 'name' && !Object.prototype.hasOwnProperty.call(specs, key)) {
      const known = Object.keys(specs);
      throw new UserError(`${where}: unknown option "${key}" (${known.length ? `known: ${known.join(', ')}` : 'it takes no options'})`);
    }
  }
  const out = withDefaults(specs, given);
  for (const [key, spec] of Object.entries(specs)) {
    const problem = valueProblem(spec, (out as Record<string, unknown>)[key]);
    if (problem) throw new UserError(`${where} option ${key}: ${problem}`);
  }
  return out;
}

/** One line per option, for `sparsebench list`. */
export function describeOptions(specs: OptionSpecs, indent = '    '): string[] {
  return Object.entries(specs).map(([key, spec]) => {
    const range = spec.enum ? ` {${spec.enum.join('|')}}` : '';
    return `${indent}${key} = ${JSON.stringify(spec.default)}${range}  ${spec.help}`;
  });
}
