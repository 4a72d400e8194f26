import { readFileSync } from 'node:fs';
import path from 'node:path';
import AjvModule, { type ErrorObject } from 'ajv';
import { methods, getMethod } from '../methods/index.js';
import { getModel, models } from '../models/index.js';
import { convPlan } from '../models/sparse/conv.js';
import { datasets, resolveOptions } from './data/index.js';
import { UserError } from '../core/errors.js';
import { optionSchema, optionsSchema, withDefaults, type OptionSpecs } from '../core/options.js';
import { groupOptions, runId, type NamedOptions, type RunSpec } from './spec.js';

const Ajv = AjvModule as unknown as typeof AjvModule.default;

interface Registry { [name: string]: { options: OptionSpecs } }

const registries: Record<'dataset' | 'model' | 'method', Registry> = {
  dataset: datasets,
  model: models,
  method: methods,
};
/** short grid keys */
const aliases: Record<string, string> = { sparsity: 'sparsity.target', width: 'model.width' };

/** Schema of a registry reference: a name, or an object with a name and that entry's options. */
function namedSchema(kind: string, registry: Registry): Record<string, unknown> {
  const names = Object.keys(registry);
  return {
    description: `the ${kind}: a name, or { "name": ..., options }`,
    type: ['string', 'object'],
    if: { type: 'string' },
    then: { enum: names },
    else: {
      required: ['name'],
      properties: { name: { type: 'string', enum: names } },
      allOf: names.map((n) => ({
        if: { properties: { name: { const: n } } },
        then: optionsSchema(registry[n].options, { name: { const: n } }),
      })),
    },
  };
}

/** Every option a registry's entries declare, by key (the first declaration's schema). */
function unionOptions(registry: Registry): OptionSpecs {
  const out: OptionSpecs = {};
  for (const entry of Object.values(registry)) for (const [k, s] of Object.entries(entry.options)) out[k] ??= s;
  return out;
}

/** The config JSON Schema, derived from the registries (written to configs/schema.json by the build). */
export function configSchema(): Record<string, unknown> {
  const gridProps: Record<string, unknown> = { seed: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 } };
  for (const kind of Object.keys(registries) as (keyof typeof registries)[]) {
    gridProps[kind] = { type: 'array', items: namedSchema(kind, registries[kind]), minItems: 1 };
    for (const [k, s] of Object.entries(unionOptions(registries[kind]))) gridProps[`${kind}.${k}`] = { type: 'array', items: optionSchema(s), minItems: 1 };
  }
  for (const [g, specs] of Object.entries(groupOptions)) {
    for (const [k, s] of Object.entries(specs)) gridProps[`${g}.${k}`] = { type: 'array', items: optionSchema(s), minItems: 1 };
  }
  for (const [alias, target] of Object.entries(aliases)) gridProps[alias] = gridProps[target];
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'sparsebench config',
    type: 'object',
    required: ['dataset', 'model', 'method'],
    additionalProperties: false,
    properties: {
      $schema: { type: 'string' },
      name: { type: 'string', pattern: '^[A-Za-z0-9._-]+$', description: 'sweep name (default: the file name); default output runs/<name>' },
      description: { type: 'string' },
      plugins: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'method plugin files (ES modules whose default export is a method), relative to this config file' },
      seed: { type: 'integer', minimum: 0, default: 0, description: 'run seed: every random choice flows from it' },
      dataset: namedSchema('dataset', registries.dataset),
      model: namedSchema('model', registries.model),
      method: namedSchema('method', registries.method),
      sparsity: optionsSchema(groupOptions.sparsity),
      update: optionsSchema(groupOptions.update),
      training: optionsSchema(groupOptions.training),
      grid: {
        type: 'object',
        description: 'lists that expand into runs (their product); keys are fields or dotted paths, e.g. "sparsity.target"',
        properties: gridProps,
        additionalProperties: false,
      },
    },
  };
}

let validator: { names: string; check: ReturnType<InstanceType<typeof Ajv>['compile']> } | null = null;
/** Validates against the schema of the registries as they are now (a plugin may register later, or add an option). */
function validate(config: unknown): ErrorObject[] {
  const names = JSON.stringify([
    Object.values(registries).map((r) => Object.entries(r).map(([n, e]) => [n, e.options])),
    Object.values(groupOptions),
  ]);
  if (validator?.names !== names) validator = { names, check: new Ajv({ allErrors: true, strict: false }).compile(configSchema()) };
  return validator.check(config) ? [] : (validator.check.errors ?? []);
}

/** The most specific ajv error as one line: where, what, and the bad value. */
function describeError(errors: ErrorObject[], config: unknown): string {
  const useful = errors.filter((e) => !['anyOf', 'if', 'allOf'].includes(e.keyword));
  // the deepest error wins; at equal depth a type mismatch (from the other branch of a
  // "name or object" choice) is the least informative
  const rank = (e: ErrorObject) => e.instancePath.split('/').length * 2 + (e.keyword === 'type' ? 0 : 1);
  const pick = (useful.length ? useful : errors).reduce((a, b) => (rank(b) > rank(a) ? b : a));
  let where = pick.instancePath || '/';
  let what = pick.message ?? 'is invalid';
  if (pick.keyword === 'additionalProperties') {
    const field = (pick.params as { additionalProperty: string }).additionalProperty;
    return `${where === '/' ? '' : where}/${field}: unknown field`;
  }
  if (pick.keyword === 'enum') what = `must be one of ${(pick.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  const value = where.split('/').slice(1).reduce<any>((v, k) => (v == null ? v : v[k.replace(/~1/g, '/').replace(/~0/g, '~')]), config);
  return `${where}: ${what} (got ${JSON.stringify(value)})`;
}

/** Names in registry references are checked first, for a message better than a schema mismatch. */
function checkNames(config: Record<string, unknown>, file: string): void {
  const check = (kind: keyof typeof registries, ref: unknown, where: string) => {
    const name = typeof ref === 'string' ? ref : ref && typeof ref === 'object' ? (ref as NamedOptions).name : undefined;
    if (typeof name !== 'string') return;
    if (!Object.prototype.hasOwnProperty.call(registries[kind], name)) {
      throw new UserError(`${file}: ${where}: unknown ${kind} "${name}" (known: ${Object.keys(registries[kind]).join(', ')})`);
    }
  };
  for (const kind of Object.keys(registries) as (keyof typeof registries)[]) {
    check(kind, config[kind], `/${kind}`);
    const list = (config.grid as Record<string, unknown> | undefined)?.[kind];
    if (Array.isArray(list)) list.forEach((ref, i) => check(kind, ref, `/grid/${kind}/${i}`));
  }
}

function named(ref: unknown): NamedOptions {
  return typeof ref === 'string' ? { name: ref } : { ...(ref as NamedOptions) };
}

/** Parses `--set path=value` (value as JSON when it parses, else a string) into the config. */
export function applySets(config: Record<string, any>, sets: string[]): void {
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new UserError(`--set ${s}: expected path=value`);
    const keys = s.slice(0, eq).split('.');
    const text = s.slice(eq + 1);
    let value: unknown;
    try { value = JSON.parse(text); } catch { value = text; }
    // grid keys are dotted themselves: --set grid.sparsity.target=[0.9]
    if (keys[0] === 'grid' && keys.length > 1) {
      config.grid = { ...(config.grid ?? {}), [keys.slice(1).join('.')]: value };
      continue;
    }
    overrideGrid(config, keys.join('.'), s);
    let o = config;
    for (const k of keys.slice(0, -1)) {
      if (typeof o[k] === 'string') o[k] = { name: o[k] };
      if (o[k] == null || typeof o[k] !== 'object') o[k] = {};
      o = o[k];
    }
    o[keys[keys.length - 1]] = value;
  }
}

/**
 * A --set of a field that the grid lists takes the grid's place: `--set method=gse` runs gse
 * only (the grid's method list is dropped), as `--set grid.method=["gse"]` would. A field inside
 * one that the grid replaces whole (`--set method.gamma=2` with a grid of methods) would be lost
 * in every run, so it is refused.
 */
function overrideGrid(config: Record<string, any>, field: string, set: string): void {
  const grid = config.grid as Record<string, unknown> | undefined;
  for (const key of Object.keys(grid ?? {})) {
    const target = aliases[key] ?? key;
    if (target === field) delete grid![key];
    else if (field.startsWith(`${target}.`)) {
      throw new UserError(`--set ${set}: the grid's "${key}" list replaces ${target} in every run, so this would be lost; change the list instead (--set grid.${key}=[...])`);
    }
  }
}

/** Fills defaults and normalises what a method ignores, so equal experiments get equal ids. */
export function resolveSpec(raw: Record<string, any>, name: string, smoke: boolean): RunSpec {
  const method = getMethod(named(raw.method).name);
  const m = named(raw.method);
  const spec: RunSpec = {
    name,
    seed: raw.seed ?? 0,
    dataset: { ...named(raw.dataset), ...withDefaults(datasets[named(raw.dataset).name].options, named(raw.dataset)) },
    model: { ...named(raw.model), ...withDefaults(models[named(raw.model).name].options, named(raw.model)) },
    method: { name: m.name, ...withDefaults(method.options, m) },
    sparsity: withDefaults(groupOptions.sparsity, raw.sparsity),
    update: withDefaults(groupOptions.update, raw.update),
    training: withDefaults(groupOptions.training, raw.training),
    smoke,
  };
  if (!method.sparse) spec.sparsity.target = 0;
  if (!method.updates) delete spec.update;
  return spec;
}

/** The grid's lists, expanded into the product of raw configs (first key varies slowest). */
function expandGrid(base: Record<string, any>): Record<string, any>[] {
  const grid: Record<string, unknown[]> = base.grid ?? {};
  let out: Record<string, any>[] = [structuredClone({ ...base, grid: undefined })];
  for (const [key, values] of Object.entries(grid)) {
    const p = aliases[key] ?? key;
    out = out.flatMap((cfg) => values.map((v) => {
      const next = structuredClone(cfg);
      const [group, option] = p.split('.');
      if (option === undefined) next[group] = structuredClone(v);
      else if (group === 'method' || group === 'model' || group === 'dataset') {
        const ref = named(next[group]);
        // an option that the chosen entry does not have is left out: one run serves all its values
        if (Object.prototype.hasOwnProperty.call(registries[group][ref.name]?.options ?? {}, option)) ref[option] = v;
        next[group] = ref;
      } else next[group] = { ...(next[group] ?? {}), [option]: v };
      return next;
    }));
  }
  return out;
}

export interface Sweep {
  name: string;
  file: string;
  specs: RunSpec[];
  /** the plugin files (absolute) its methods may come from: workers load them too (harness/plugins.ts) */
  plugins: string[];
}

export function readConfigFile(file: string): Record<string, any> {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    throw new UserError(`${file}: cannot read config file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new UserError(`${file}: a config is a JSON object ({ "dataset": …, "model": …, "method": … }), not ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
  }
  return v as Record<string, any>;
}

/** Reads, overrides, validates and expands a config into its runs (deduplicated by run id). */
export function loadSweep(file: string, opts: { sets?: string[]; smoke?: boolean; plugins?: string[] } = {}): Sweep {
  const config = readConfigFile(file);
  applySets(config, opts.sets ?? []);
  return sweepFromConfig(config, file, opts.smoke ?? false, opts.plugins);
}

/** `plugins`: the plugin files already loaded for this config (harness/plugins.ts). */
export function sweepFromConfig(config: Record<string, any>, file: string, smoke: boolean, plugins: string[] = []): Sweep {
  checkNames(config, file);
  const errors = validate(config);
  if (errors.length) throw new UserError(`${file}: ${describeError(errors, config)}`);
  const name = config.name ?? path.basename(file).replace(/\.json$/i, '');
  const specs = new Map<string, RunSpec>();
  for (const raw of expandGrid(config)) {
    const errs = validate(raw);
    if (errs.length) throw new UserError(`${file}: grid value ${describeError(errs, raw)}`);
    const spec = resolveSpec(raw, name, smoke);
    checkTraining(spec, file);
    checkFormat(spec, file);
    specs.set(runId(spec), spec);
  }
  return { name, file, specs: [...specs.values()], plugins };
}

/**
 * A csr conv layer runs on the conv kernels' planes: a geometry they cannot take (a kernel larger
 * than its padded input, a batch too large for 32-bit offsets) fails here, naming the layer, and
 * not at run start.
 */
function checkFormat(spec: RunSpec, file: string): void {
  if (spec.sparsity.format !== 'csr') return;
  const { name: dataset, ...options } = spec.dataset;
  const shape = datasets[dataset].shape(resolveOptions(datasets[dataset], options));
  for (const layer of getModel(spec.model.name).layout(spec.model, shape)) {
    if (layer.kind !== 'conv') continue;
    const [h, w] = layer.conv!.inputSize;
    try {
      convPlan(layer, [spec.training.batchSize, h, w, layer.conv!.inChannels]);
    } catch (e) {
      throw new UserError(`${file}: /sparsity/format: csr cannot run model ${spec.model.name}: ${(e as Error).message}`);
    }
  }
}

function checkTraining(spec: RunSpec, file: string): void {
  const late = spec.training.lrDrops.find((e) => e >= spec.training.epochs);
  if (late !== undefined) {
    throw new UserError(`${file}: /training/lrDrops: epoch ${late} is not before the last epoch (epochs ${spec.training.epochs}); shorten the list too, e.g. --set training.lrDrops=[]`);
  }
}
