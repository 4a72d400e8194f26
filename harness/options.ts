/**
 * Typed option groups with defaults: methods, models and datasets declare their options this way;
 * the config schema, `sparsebench list` and default-filling are all derived from the declarations.
 */
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

export function withDefaults(specs: OptionSpecs, given: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) out[key] = given[key] === undefined ? spec.default : given[key];
  return out;
}

/** One line per option, for `sparsebench list`. */
export function describeOptions(specs: OptionSpecs, indent = '    '): string[] {
  return Object.entries(specs).map(([key, spec]) => {
    const range = spec.enum ? ` {${spec.enum.join('|')}}` : '';
    return `${indent}${key} = ${JSON.stringify(spec.default)}${range}  ${spec.help}`;
  });
}
