/**
 * External method plugins (harness/plugins.ts, README "Add a method"): the README's worked
 * example is examples/plugins/sparse-momentum.js verbatim; named by a config's "plugins" it runs
 * in a sweep (worker processes included), shows up in `list`, in results.csv and in the report
 * under its own variants; a broken plugin (grows 2k, prunes k) fails its run with the harness's
 * one line and the sweep goes on; a plugin that does not load or has a malformed shape is one
 * line naming the file and the field; editing a plugin changes its runs' ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { defineMethod, type OptionsOf } from '../index.js';
import { methods } from '../methods/index.js';
import { loadSweepWithPlugins } from '../harness/plugins.js';
import { runId } from '../harness/spec.js';
import { root, runCli } from './helpers.js';

const example = path.join(root, 'examples/plugins/sparse-momentum.js');

/** A folder like a researcher's own repository, with sparsebench installed (node_modules/sparsebench). */
function userRepo(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(root, path.join(dir, 'node_modules', 'sparsebench'), 'dir');
  return dir;
}

test('README\'s "Add a method" walks through the shipped example plugin, verbatim', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = readme.match(/```js\n\/\/ examples\/plugins\/sparse-momentum\.js\n([\s\S]*?)```/);
  assert.ok(block, 'README has an examples/plugins/sparse-momentum.js code block');
  assert.equal(block![1], readFileSync(example, 'utf8'));
});

/** A plugin that grows twice what it prunes: the harness must stop it. */
const broken = `import { defineMethod, dstUpdatesAt, magnitudePools, pickByScope, uniformInactive } from 'sparsebench';
export default defineMethod({
  name: 'greedy', summary: 'grows 2k, prunes k', options: {}, sparse: true, alwaysSparse: true, updates: true,
  startsDense: () => false, updatesAt: (ctx) => dstUpdatesAt(ctx),
  update(ctx) {
    const active = ctx.layers.map((l) => l.active());
    const k = active.map((a) => Math.ceil(0.1 * a.row.length));
    const pruned = pickByScope(magnitudePools(ctx.layers, active), k, false, false);
    const grown = ctx.layers.map((l, i) => uniformInactive(l, active[i], 2 * k[i], ctx.rng));
    ctx.layers.forEach((l, i) => { l.prune(pruned[i]); l.grow(grown[i]); });
    const n = (c) => c.reduce((a, x) => a + x.row.length, 0);
    return { k: n(pruned), grown: n(grown), pruned: n(pruned), flops: 0 };
  },
});
`;

test('a plugin named in a config runs in a sweep, shows in list, results.csv and the report under its variants; a broken one fails in one line and the sweep goes on', () => {
  const dir = userRepo('sparsebench-plugin-');
  copyFileSync(example, path.join(dir, 'sparse-momentum.js'));
  writeFileSync(path.join(dir, 'greedy.js'), broken);
  const config = {
    name: 'plugins',
    plugins: ['./sparse-momentum.js', './greedy.js'],
    dataset: { name: 'synthetic', features: 32, classes: 4, trainSamples: 128, testSamples: 64, seed: 1 },
    model: { name: 'mlp', hidden: [24] },
    method: 'set',
    sparsity: { target: 0.8, format: 'masked' },
    training: { epochs: 1, batchSize: 16 },
    update: { delta: 2, end: 1 },
    grid: { method: ['set', 'sparse-momentum', { name: 'sparse-momentum', redistribute: 'none' }, 'greedy'] },
  };
  const file = path.join(dir, 'plugins.json');
  writeFileSync(file, JSON.stringify(config));
  const list = runCli(['list', '--plugin', 'examples/plugins/sparse-momentum.js']);
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /sparse-momentum — Sparse Momentum: prune smallest/);
  assert.match(list.stdout, /redistribute = "momentum" \{momentum\|none\}/);

  const out = path.join(dir, 'out');
  const run = runCli(['run', file, '--out', out, '--jobs', '2', '--backend', 'cpu']);
  assert.equal(run.status, 1, `one run failed: ${run.stderr}`);
  const rows = parse(readFileSync(path.join(out, 'results.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
  const byVariant = Object.fromEntries(rows.map((r) => [r.variant, r]));
  assert.deepEqual(Object.keys(byVariant).sort(), ['greedy', 'set', 'sparse-momentum', 'sparse-momentum(redistribute=none)']);
  for (const v of ['set', 'sparse-momentum', 'sparse-momentum(redistribute=none)']) assert.equal(byVariant[v].status, 'done', v);
  assert.equal(byVariant.greedy.status, 'failed');
  const id = byVariant.greedy.run_id;
  const error = JSON.parse(readFileSync(path.join(out, id, 'result.json'), 'utf8')).error;
  assert.match(error, /^invariant broken: method "greedy", hook update, step 2: model total active count \d+ -> \d+ \(must stay \d+; layer fc1: active count \d+ -> \d+\)$/);
  // the momentum-weighted regrowth moved connections between layers; without it every layer kept its count
  const layers = (v: string) => JSON.parse(readFileSync(path.join(out, byVariant[v].run_id, 'result.json'), 'utf8')).layers.map((l: { active: number }) => l.active);
  assert.notDeepEqual(layers('sparse-momentum'), layers('sparse-momentum(redistribute=none)'));
  assert.equal(Number(byVariant['sparse-momentum'].achieved_sparsity), Number(byVariant.set.achieved_sparsity));

  const report = runCli(['report', out, '--out', path.join(dir, 'report')]);
  assert.equal(report.status, 0, report.stderr);
  const table = readFileSync(path.join(dir, 'report', 'tables', 'accuracy.md'), 'utf8');
  assert.match(table, /\| sparse-momentum \| (\*\*)?\d/);
  assert.match(table, /\| sparse-momentum\(redistribute=none\) \| (\*\*)?\d/);
});

test('a plugin that cannot load, is malformed or shadows a built-in is one line naming the file and the field', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sparsebench-badplugin-'));
  const cases: [string, string, RegExp][] = [
    ['syntax.js', 'export default {', /syntax\.js: cannot load plugin: /],
    ['shape.js', "export default { name: 'x', summary: 's', options: {}, sparse: true, alwaysSparse: true, updates: true, startsDense: () => false, updatesAt: () => false, update: 3 };", /shape\.js: plugin field "update": must be a function$/],
    ['option.js', "export default { name: 'x', summary: 's', options: { a: { type: 'number', default: 'one', help: 'h' } }, sparse: true, alwaysSparse: true, updates: true, startsDense: () => false, updatesAt: () => false, update() {} };", /option\.js: plugin field "options\.a"\.default: must be a number \(got "one"\)$/],
    ['shadow.js', "export default { name: 'set', summary: 's', options: {}, sparse: true, alwaysSparse: true, updates: true, startsDense: () => false, updatesAt: () => false, update() {} };", /shadow\.js: plugin field "name": "set" is a built-in method; give the plugin another name$/],
    ['none.js', 'export const method = 1;', /none\.js: plugin no default export/],
  ];
  for (const [name, source, expected] of cases) {
    writeFileSync(path.join(dir, name), source);
    const r = runCli(['list', '--plugin', path.join(dir, name)]);
    assert.equal(r.status, 2, name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr.trim(), expected);
  }
  const missing = runCli(['list', '--plugin', path.join(dir, 'absent.js')]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr.trim(), /absent\.js: cannot read plugin \(ENOENT\)$/);
});

test('editing a plugin changes the ids of its runs (its source is part of the identity)', async () => {
  const dir = userRepo('sparsebench-edit-');
  const plugin = path.join(dir, 'edited.js');
  const source = readFileSync(example, 'utf8').replace("name: 'sparse-momentum'", "name: 'edited'");
  const config = path.join(dir, 'c.json');
  writeFileSync(config, JSON.stringify({ plugins: ['./edited.js'], dataset: 'mnist', model: 'mlp', method: 'edited' }));
  try {
    writeFileSync(plugin, source);
    const a = runId((await loadSweepWithPlugins(config)).specs[0]);
    delete methods.edited;
    writeFileSync(plugin, source.replace('let flops', 'let  flops'));
    const b = runId((await loadSweepWithPlugins(config)).specs[0]);
    assert.notEqual(a, b);
  } finally {
    delete methods.edited;
  }
});

test('defineMethod derives the options type from its declaration and checks the shape at once', () => {
  const options = { gamma: { type: 'number', default: 1, help: 'g' }, kind: { type: 'string', default: 'a', enum: ['a', 'b'], help: 'k' }, drops: { type: 'integer[]', default: [], help: 'd' } } as const;
  const typed: OptionsOf<typeof options> = { gamma: 2, kind: 'b', drops: [] };
  assert.equal(typed.kind, 'b');
  const m = defineMethod({
    name: 'typed', summary: 's', options, sparse: true, alwaysSparse: true, updates: false,
    startsDense: (o) => o.kind === 'a' && o.gamma > 0 && o.drops.length === 0,
    updatesAt: () => false,
    update: () => { throw new Error('no updates'); },
  });
  assert.equal(m.startsDense({ gamma: 1, kind: 'a', drops: [] }), true);
  assert.throws(() => defineMethod({ ...m, name: 'bad name' } as never), /^Error: defineMethod: field "name": must be a name/);
});
