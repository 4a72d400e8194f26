/**
 * What collect and status say about a sweep folder a user hands them: a damaged run folder is
 * named and makes them exit 1 (never silently dropped or called pending); a folder that is not
 * there is an error that says where the config writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadSweep } from '../harness/config.js';
import { runCli } from './helpers.js';
import { gridConfig, tmpDir } from './sweep-util.js';

test('collect and status name a run folder whose result.json is damaged, and exit 1', () => {
  const dir = tmpDir('folders');
  const config = gridConfig(dir, 3);
  const out = path.join(dir, 'out');
  const run = runCli(['run', config, '--out', out, '--jobs', '1', '--backend', 'cpu']);
  assert.equal(run.status, 0, run.stderr);
  const ids = readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[0]);
  assert.equal(ids.length, 3);
  const damaged = path.join(out, ids[1], 'result.json');
  writeFileSync(damaged, readFileSync(damaged, 'utf8').slice(0, 40));

  const c = runCli(['collect', out]);
  assert.equal(c.status, 1);
  assert.equal(c.stderr.trim().split('\n').length, 1, c.stderr);
  assert.match(c.stderr, new RegExp(`^sparsebench: ${damaged.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON`));
  assert.match(c.stdout, /2 runs in .*results\.csv; 1 run folder\(s\) could not be read/);

  const s = runCli(['status', out, '--config', config]);
  assert.equal(s.status, 1);
  assert.match(s.stdout, /3 runs \(3 in .*\): 2 done, 0 running, 0 failed, 0 diverged, 0 pending, 1 unreadable/);
  assert.match(s.stdout, new RegExp(`${ids[1]}\\s+unreadable .*not valid JSON`));
  assert.match(s.stderr, /result\.json: not valid JSON/);
});

test('status of a folder that is not there names it and where the config writes', () => {
  const dir = tmpDir('folders');
  const config = gridConfig(dir, 2);
  const r = runCli(['status', path.join(dir, 'typo'), '--config', config]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^sparsebench: \S*typo: no such folder; \S*grid\.json writes to runs\/sweeptest unless run with --out\n$/);
});

test('--set of a field the grid lists replaces the grid list; one inside a listed object is refused', () => {
  const dir = tmpDir('folders');
  const file = path.join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({
    dataset: 'mnist', model: 'mlp', method: 'dense', training: { epochs: 2 },
    grid: { method: ['dense', 'static', 'gse'], sparsity: [0.9, 0.98] },
  }));
  const only = loadSweep(file, { sets: ['method=gse'] });
  assert.deepEqual([...new Set(only.specs.map((s) => s.method.name))], ['gse']);
  assert.equal(only.specs.length, 2);
  const level = loadSweep(file, { sets: ['sparsity.target=0.95'] });
  assert.deepEqual([...new Set(level.specs.map((s) => s.sparsity.target))].sort(), [0, 0.95]);
  assert.throws(() => loadSweep(file, { sets: ['method.gamma=2'] }), /--set method\.gamma=2: the grid's "method" list replaces method in every run/);
});
