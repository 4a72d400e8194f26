/**
 * One option declaration, typed (issue 14, item 4): every option group (a method's, a model's, a
 * dataset's, and the config groups training / sparsity / update) is declared once, and its
 * TypeScript type, config schema, defaults, `list` lines, variant label and direct-call checks
 * all come from that declaration; empty lists are valid where the default is empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applySets, configSchema, sweepFromConfig } from '../harness/config.js';
import { listText } from '../harness/commands/list.js';
import { UserError } from '../core/errors.js';
import { checkedOptions, declareOptions, optionsSchema, type OptionSpecs } from '../core/options.js';
import { learningRate } from '../harness/sgd.js';
import { groupOptions, runId, type RunSpec, type SparsitySpec, type TrainingSpec } from '../harness/spec.js';
import type { GseOptions } from '../methods/gse.js';
import { getMethod, methods, variantLabel } from '../methods/index.js';
import type { SamplerName } from '../methods/samplers.js';
import type { UpdateSchedule } from '../methods/schedule.js';
import { models } from '../models/index.js';
import type { MlpOptions } from '../models/mlp.js';

// the types are derived from the declarations: these lines stop compiling when they drift
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
const derived: [
  Equal<TrainingSpec['lrDrops'], number[]>, Equal<TrainingSpec['epochs'], number>, Equal<SparsitySpec['format'], 'masked' | 'csr'>,
  Equal<SparsitySpec['holdActive'], boolean>, Equal<UpdateSchedule['scope'], 'global' | 'local' | 'prune-local'>, Equal<GseOptions['sampler'], SamplerName>,
  Equal<MlpOptions['hidden'], number[]>,
] = [true, true, true, true, true, true, true];

const base = {
  dataset: { name: 'synthetic', features: 8, classes: 2, trainSamples: 40, testSamples: 10 },
  model: { name: 'mlp', hidden: [4] },
  method: 'static',
  training: { epochs: 4 },
};

test('"lrDrops": [] (the default) is valid in a config, a grid list and --set, and means no drops', () => {
  assert.ok(derived.every(Boolean));
  const plain = sweepFromConfig(base, 'c.json', false).specs;
  const empty = sweepFromConfig({ ...base, training: { epochs: 4, lrDrops: [] } }, 'c.json', false).specs;
  assert.deepEqual(empty[0].training.lrDrops, []);
  assert.equal(runId(empty[0]), runId(plain[0]), 'the default written out is the same run');
  const grid = sweepFromConfig({ ...base, grid: { 'training.lrDrops': [[], [2]] } }, 'c.json', false).specs;
  assert.deepEqual(grid.map((s) => s.training.lrDrops), [[], [2]]);
  assert.equal(runId(grid[0]), runId(plain[0]));
  const set = structuredClone(base) as Record<string, any>;
  applySets(set, ['training.lrDrops=[]']);
  assert.deepEqual(sweepFromConfig(set, 'c.json', false).specs[0].training.lrDrops, []);
  // no drops: the learning rate stays at its peak through every epoch
  const t = empty[0].training;
  for (let step = 0; step < 40; step++) assert.equal(learningRate(step, 10, t), t.lr);
  assert.equal(learningRate(25, 10, grid[1].training), t.lr * t.lrDropFactor);
});

test('an option declared once is in the schema, the defaults, list, the variant label and the checks, for every kind of group', () => {
  // each group's config, with the added option set to v (left out when v is undefined)
  const added = (v?: number) => (v === undefined ? {} : { added: v });
  const groups: [string, OptionSpecs, (v?: number) => Record<string, unknown>, (spec: RunSpec) => Record<string, unknown>][] = [
    ['training', groupOptions.training, (v) => ({ ...base, training: { epochs: 4, ...added(v) } }), (s) => s.training],
    ['sparsity', groupOptions.sparsity, (v) => ({ ...base, sparsity: added(v) }), (s) => s.sparsity],
    ['method', methods.gse.options, (v) => ({ ...base, method: { name: 'gse', ...added(v) } }), (s) => s.method],
    ['model', models.mlp.options, (v) => ({ ...base, model: { name: 'mlp', hidden: [4], ...added(v) } }), (s) => s.model],
  ];
  for (const [what, specs, withAdded, group] of groups) {
    specs.added = { type: 'integer', default: 3, minimum: 1, help: 'an option added later' };
    try {
      assert.match(JSON.stringify(configSchema()), /an option added later \(default 3\)/, `${what}: in the schema`);
      assert.match(listText(), /added = 3 {2}an option added later/, `${what}: in list`);
      assert.equal(group(sweepFromConfig(withAdded(), 'c.json', false).specs[0]).added, 3, `${what}: the default`);
      assert.equal(group(sweepFromConfig(withAdded(5), 'c.json', false).specs[0]).added, 5, `${what}: a given value reaches the spec`);
      assert.throws(() => sweepFromConfig(withAdded(0), 'c.json', false), new RegExp(`/${what}/added: must be >= 1 \\(got 0\\)`), `${what}: its bounds are checked`);
    } finally {
      delete specs.added;
    }
  }
  methods.gse.options.added = { type: 'integer', default: 3, minimum: 1, help: 'an option added later' };
  try {
    assert.equal(variantLabel({ name: 'gse', added: 5 }), 'gse(added=5)');
    assert.equal(variantLabel({ name: 'gse', added: 3 }), 'gse');
  } finally {
    delete methods.gse.options.added;
  }
  // the groups' schemas are their declarations' and nothing else
  const props = (configSchema() as { properties: Record<string, unknown> }).properties;
  for (const [g, specs] of Object.entries(groupOptions)) assert.deepEqual(props[g], optionsSchema(specs), g);
});

test('a declaration is checked at once; values from a direct call are checked against it', () => {
  assert.throws(() => declareOptions({ n: { type: 'integer', default: 0, minimum: 1, help: 'h' } }), /option "n".default: 0 is below the minimum 1/);
  assert.throws(() => declareOptions({ s: { type: 'string', default: 'c', enum: ['a', 'b'], help: 'h' } }), /option "s".default: must be one of a, b \(got "c"\)/);
  const specs = declareOptions({
    gamma: { type: 'number', default: 1, exclusiveMinimum: 0, help: 'g' },
    drops: { type: 'integer[]', default: [], minimum: 1, help: 'd' },
  });
  assert.deepEqual(checkedOptions(specs, { name: 'x' }, 'm'), { gamma: 1, drops: [] });
  assert.deepEqual(checkedOptions(specs, { drops: [2, 3] }, 'm'), { gamma: 1, drops: [2, 3] });
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ gama: 1 }, /^m: unknown option "gama" \(known: gamma, drops\)$/],
    [{ gamma: 0 }, /^m option gamma: 0 must be above 0$/],
    [{ gamma: '1' }, /^m option gamma: must be a number \(got "1"\)$/],
    [{ drops: [0] }, /^m option drops: 0 is below the minimum 1$/],
    [{ drops: [1.5] }, /^m option drops: must be a list of integers \(got \[1.5\]\)$/],
  ];
  for (const [given, message] of refused) {
    assert.throws(() => checkedOptions(specs, given, 'm'), (e: unknown) => e instanceof UserError && message.test(e.message), JSON.stringify(given));
  }
  // a built-in method called directly (not through a config) is checked by its declaration
  const ctx = { step: 1, totalSteps: 10, stepsPerEpoch: 10, schedule: { delta: 1, end: 1, alpha: 0.5, samplesPerClass: 1, scope: 'global' as const } };
  assert.throws(() => getMethod('gse').update({ ...ctx, layers: [], rng: null!, sparsity: 0.5, probe: () => {}, momentum: () => new Float32Array(0) }, { gamma: 0 }), /gse option gamma: 0 must be above 0/);
});
