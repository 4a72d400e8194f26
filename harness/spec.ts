import { createHash } from 'node:crypto';
import { getMethod } from '../methods/index.js';
import { getModel } from '../models/index.js';
import { datasets } from './data/index.js';
import { declareOptions, type OptionSpecs, type OptionsOf } from '../core/options.js';
import { updateOptions, type UpdateSchedule } from '../methods/schedule.js';
import type { SparseFormat } from '../models/sparse/types.js';
import type { SparsityDistribution } from '../models/sparse/init.js';

/** A named registry entry with its options, e.g. { name: 'gse', sampler: 'grabo', gamma: 1 }. */
export interface NamedOptions {
  name: string;
  [option: string]: unknown;
}

/** Everything that defines one run; its hash is the run id. */
export interface RunSpec {
  name: string;
  seed: number;
  dataset: NamedOptions;
  model: NamedOptions;
  method: NamedOptions;
  sparsity: SparsitySpec;
  /** the prune-grow schedule; present only for methods that update */
  update?: UpdateSchedule;
  training: TrainingSpec;
  /** a few steps on a small slice of the data, to check a sweep */
  smoke: boolean;
}

export const trainingOptions = declareOptions({
  epochs: { type: 'integer', default: 20, minimum: 1, help: 'training epochs' },
  batchSize: { type: 'integer', default: 128, minimum: 1, help: 'training batch size' },
  lr: { type: 'number', default: 0.1, exclusiveMinimum: 0, help: 'peak SGD learning rate' },
  momentum: { type: 'number', default: 0.9, minimum: 0, exclusiveMaximum: 1, help: 'SGD momentum' },
  weightDecay: { type: 'number', default: 1e-4, minimum: 0, help: 'L2 weight decay (added to the gradient, as in PyTorch SGD)' },
  warmupEpochs: { type: 'number', default: 0, minimum: 0, help: 'linear learning-rate warm-up from 0 over this many epochs' },
  lrDrops: { type: 'integer[]', default: [], minimum: 1, help: 'epochs at which the learning rate is multiplied by lrDropFactor' },
  lrDropFactor: { type: 'number', default: 0.1, exclusiveMinimum: 0, help: 'learning-rate multiplier at each drop' },
  evalBatchSize: { type: 'integer', default: 1000, minimum: 1, help: 'batch size for evaluation' },
  maxSteps: { type: 'integer', default: 0, minimum: 0, help: 'stop after this many steps (0: no limit)' },
});
export type TrainingSpec = OptionsOf<typeof trainingOptions>;

export const sparsityOptions = declareOptions({
  target: { type: 'number', default: 0.9, minimum: 0, exclusiveMaximum: 1, help: 'fraction of prunable weights that are zero' },
  distribution: { type: 'string', default: 'erdos-renyi', enum: ['erdos-renyi', 'uniform'] satisfies SparsityDistribution[], help: 'how the active connections are spread over layers' },
  format: { type: 'string', default: 'csr', enum: ['masked', 'csr'] satisfies SparseFormat[], help: 'storage: only the active connections (always sparse), or dense weights x a 0/1 mask (how research code simulates sparsity); methods without sparsity (dense) train dense weights either way' },
  holdActive: { type: 'boolean', default: false, help: 'keep the active connection count of width 1 as the model widens (sparsity rises with width)' },
});
export type SparsitySpec = OptionsOf<typeof sparsityOptions>;

/** The config groups other than the named entries (dataset, model, method), by config field. */
export const groupOptions = { sparsity: sparsityOptions, update: updateOptions, training: trainingOptions } as const;

/** Canonical JSON: keys sorted, so equal specs hash equally whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The version of what a run id hashes. Bump it when a default changes (the same config would then
 * define another run, so it must get another id); adding an option with a default needs no bump.
 * Version 1 hashed the whole resolved spec; version 2 hashes only the values that differ from
 * their defaults (as OpenLTH does), so adding an option leaves every existing id unchanged.
 */
export const SPEC_VERSION = 2;

/** The entries of `values` that differ from their declared defaults (undeclared ones are kept). */
function nonDefault(specs: OptionSpecs, values: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    if (!Object.prototype.hasOwnProperty.call(specs, k) || canonicalJson(v) !== canonicalJson(specs[k].default)) out[k] = v;
  }
  return out;
}

/**
 * What a run id hashes: the spec version, the seed, the names of dataset, model and method with
 * their non-default options, the non-default values of the option groups, smoke when set, and a
 * plugin method's source hash (editing a plugin re-runs its cells). The sweep name is not part of it.
 */
export function runIdentity(spec: RunSpec): Record<string, unknown> {
  const method = getMethod(spec.method.name);
  return {
    version: SPEC_VERSION,
    seed: spec.seed,
    dataset: { name: spec.dataset.name, ...nonDefault(datasets[spec.dataset.name].options, spec.dataset) },
    model: { name: spec.model.name, ...nonDefault(getModel(spec.model.name).options, spec.model) },
    method: { name: spec.method.name, ...nonDefault(method.options, spec.method), ...(method.source ? { source: method.source } : {}) },
    sparsity: nonDefault(sparsityOptions, spec.sparsity),
    ...(spec.update ? { update: nonDefault(updateOptions, spec.update) } : {}),
    training: nonDefault(trainingOptions, spec.training),
    ...(spec.smoke ? { smoke: true } : {}),
  };
}

/** The run id: a hash of the run's identity (runIdentity). */
export function runId(spec: RunSpec): string {
  return createHash('sha256').update(canonicalJson(runIdentity(spec))).digest('hex').slice(0, 12);
}
