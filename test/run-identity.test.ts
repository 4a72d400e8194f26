/**
 * Run identity (harness/spec.ts): a run id is the hash of everything that defines the run and of
 * nothing else. README promises that two sweeps sharing a run share its id (so the second sweep
 * skips it in a shared output folder); any defining difference gives another id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sweepFromConfig } from '../harness/config.js';
import { canonicalJson, runId } from '../harness/spec.js';

const base = {
  dataset: { name: 'synthetic', features: 16, classes: 4, trainSamples: 64, testSamples: 32, seed: 3 },
  model: { name: 'mlp', hidden: [12] },
  method: { name: 'gse', sampler: 'grabo' },
  training: { epochs: 2, batchSize: 8, lr: 0.05 },
};

const idsOf = (config: Record<string, unknown>, smoke = false) => new Map(sweepFromConfig(config, 'test.json', smoke).specs.map((s) => [`${s.seed}@${s.sparsity.target}`, runId(s)]));

test('two sweeps that share a run share its id, whatever their names, grids and key order', () => {
  const a = idsOf({ ...base, name: 'alpha', grid: { seed: [0, 1], 'sparsity.target': [0.5, 0.8] } });
  // the same runs written another way: other name, keys in another order, the shared cell spelled out
  const b = idsOf({
    name: 'beta',
    training: { lr: 0.05, batchSize: 8, epochs: 2 },
    method: { sampler: 'grabo', name: 'gse' },
    model: { hidden: [12], name: 'mlp' },
    dataset: { seed: 3, testSamples: 32, trainSamples: 64, classes: 4, features: 16, name: 'synthetic' },
    sparsity: { target: 0.8 },
    grid: { seed: [1, 2] },
  });
  assert.equal(a.size, 4);
  assert.equal(b.get('1@0.8'), a.get('1@0.8'), 'the shared run');
  assert.ok(![...a.values()].includes(b.get('2@0.8')!), 'a run only the second sweep has');
  assert.equal(new Set(a.values()).size, 4, 'distinct runs, distinct ids');
  for (const id of [...a.values(), ...b.values()]) assert.match(id, /^[0-9a-f]{12}$/);
});

test('every defining field changes the id; the sweep name alone does not', () => {
  const one = (config: Record<string, unknown>, smoke = false) => [...idsOf({ ...base, seed: 0, sparsity: { target: 0.8 }, ...config }, smoke).values()][0];
  const reference = one({ name: 'first' });
  assert.equal(one({ name: 'second' }), reference);
  const changed: Record<string, Record<string, unknown>> = {
    seed: { seed: 1 },
    dataset: { dataset: { ...base.dataset, seed: 4 } },
    model: { model: { name: 'mlp', hidden: [13] } },
    method: { method: { name: 'gse', sampler: 'uniform' } },
    sparsity: { sparsity: { target: 0.9 } },
    format: { sparsity: { target: 0.8, format: 'masked' } },
    training: { training: { ...base.training, lr: 0.1 } },
    update: { update: { delta: 7 } },
  };
  for (const [field, config] of Object.entries(changed)) assert.notEqual(one({ name: 'first', ...config }), reference, `${field} is part of the run's identity`);
  assert.notEqual(one({ name: 'first' }, true), reference, 'a --smoke run is another run');
});

test('canonical JSON: keys sorted at every depth, undefined fields dropped, arrays kept in order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: 'x' }, u: undefined }), '{"a":{"c":"x","d":[2,{"e":0,"f":1}]},"b":1}');
  assert.equal(canonicalJson([3, 1, 2]), '[3,1,2]');
  assert.equal(canonicalJson(null), 'null');
  assert.equal(canonicalJson('s'), '"s"');
});
