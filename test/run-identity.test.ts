/**
 * Run identity (harness/spec.ts): a run id is the hash of everything that defines the run and of
 * nothing else: the values that differ from their defaults, plus a spec version. README promises
 * that two sweeps sharing a run share its id (so the second sweep skips it in a shared output
 * folder); any defining difference gives another id; adding an option with a default changes no
 * id (a recorded fixture holds ids of this version), so a finished sweep stays finished.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { methods } from '../methods/index.js';
import { models } from '../models/index.js';
import { selectBackend } from '../harness/backend.js';
import { sweepFromConfig } from '../harness/config.js';
import { canonicalJson, runId, SPEC_VERSION, trainingOptions } from '../harness/spec.js';
import { collectResults } from '../harness/store.js';
import { runSweep } from '../harness/sweep.js';
import { root, runCli } from './helpers.js';

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

const recorded = JSON.parse(readFileSync(path.join(root, 'test/fixtures/run-ids.json'), 'utf8')) as { config: Record<string, unknown>; ids: string[] }[];
const idsOfFixture = () => recorded.map((r) => sweepFromConfig(structuredClone(r.config), 'fixture.json', false).specs.map(runId));

test(`run ids of spec version ${SPEC_VERSION} are the recorded ones`, () => {
  assert.equal(SPEC_VERSION, 2, 'a new spec version records new ids in test/fixtures/run-ids.json');
  assert.deepEqual(idsOfFixture(), recorded.map((r) => r.ids));
});

test('an option added with a default (to a method, a model or a config group) leaves every run id unchanged', () => {
  const added = [
    [methods.gse.options, 'newOption'], [methods.synflow.options, 'newOption'], [models.mlp.options, 'newOption'], [trainingOptions, 'newOption'],
  ] as const;
  for (const [options, k] of added) options[k] = { type: 'number', default: 3, minimum: 0, help: 'added later' };
  try {
    assert.deepEqual(idsOfFixture(), recorded.map((r) => r.ids));
    // a value other than the default is part of the identity
    const changed = sweepFromConfig({ ...recorded[1].config, method: { name: 'gse', sampler: 'grabo', gamma: 2, newOption: 4 } }, 'f.json', false).specs.map(runId);
    assert.notDeepEqual(changed, recorded[1].ids);
  } finally {
    for (const [options, k] of added) delete options[k];
  }
});

test('a finished sweep stays finished when an option is added with a default; folders of another id version are refused in one line', async () => {
  await selectBackend('cpu');
  const config = {
    dataset: { name: 'synthetic', features: 16, classes: 4, trainSamples: 64, testSamples: 32, seed: 3 },
    model: { name: 'mlp', hidden: [12] }, method: 'static', training: { epochs: 1, batchSize: 16 },
    grid: { method: ['static', 'set'] },
  };
  const out = mkdtempSync(path.join(os.tmpdir(), 'sparsebench-ids-'));
  const first = await runSweep(sweepFromConfig(config, 'ids.json', false), { out, backend: 'cpu', log: () => {} });
  assert.equal(first.done, 2);
  methods.set.options.newOption = { type: 'boolean', default: false, help: 'added later' };
  try {
    const again = await runSweep(sweepFromConfig(config, 'ids.json', false), { out, backend: 'cpu', log: () => {} });
    assert.equal(again.skipped, 2, 'nothing re-runs');
  } finally {
    delete methods.set.options.newOption;
  }
  // a run folder of version 1 (no spec_version in its config.json)
  mkdirSync(path.join(out, 'aaaaaaaaaaaa'));
  writeFileSync(path.join(out, 'aaaaaaaaaaaa', 'config.json'), JSON.stringify({ run_id: 'aaaaaaaaaaaa', spec: { name: 'ids' } }));
  const oneLine = /^.*: run folder aaaaaaaaaaaa is of run-id version 1, this sparsebench writes version 2 \(ids hash only non-default values now\); move the old run folders out of .*, or use another --out, and run again$/;
  await assert.rejects(runSweep(sweepFromConfig(config, 'ids.json', false), { out, backend: 'cpu', log: () => {} }), oneLine);
  assert.throws(() => collectResults(out), oneLine);
  const cli = runCli(['collect', out]);
  assert.equal(cli.status, 2);
  assert.match(cli.stderr.trim(), oneLine);
  assert.equal(cli.stderr.trim().split('\n').length, 1);
});
