/**
 * reports/aggregate.ts on hand-made runs: every number and note below is worked out by hand from
 * the runs written here (no fixture folder, no figure), so a mutation of the aggregation shows
 * up as a wrong value, a wrong order or a wrong note. Imports nothing heavy: it is the first
 * file Stryker runs against aggregate.ts mutants.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Run } from '../reports/load.js';
import type { Group } from '../reports/aggregate.js';
import {
  epochCurve, flopsRatio, groupBy, groupRuns, isDense, keyOf, layerDensities, logLogSlope, seriesName, stats, uniq, variantText,
  withoutOption,
} from '../reports/aggregate.js';

const close = (a: number | null | undefined, b: number, eps = 1e-12) =>
  assert.ok(typeof a === 'number' && Math.abs(a - b) <= eps, `${a} ≉ ${b}`);

/** A done run of dense MLP on MNIST, seed 0, unless told otherwise. */
function run(o: Partial<Run> = {}): Run {
  return {
    run_id: 'r', status: 'done', sweep: 's', method: 'dense', model: 'mlp', dataset: 'mnist', format: 'masked',
    sparsity: 0, width: 100, seed: 0, variant: o.method ?? 'dense', options: {}, epochs: 3, test_accuracy: 0.5,
    best_test_accuracy: null, train_accuracy: null, train_flops: null, dense_train_flops: null, active_params: null,
    total_params: null, param_bytes: null, peak_rss_mb: null, wall_s: null, step_ms: null, update_ms: null, backend: 'cpu',
    dir: '', config: null, metrics: [], updates: [], layers: [],
    ...o,
  };
}

/** The one group of runs that share a key. */
function only(runs: Run[]): Group {
  const gs = groupRuns(runs);
  assert.equal(gs.length, 1, 'one group');
  return gs[0];
}

describe('small helpers', () => {
  test('uniq keeps first-seen order; groupBy keeps first-seen groups and item order', () => {
    assert.deepEqual(uniq([3, 1, 3, 2, 1]), [3, 1, 2]);
    const g = groupBy(['b1', 'a1', 'b2', 'c1', 'a2'], (s) => s[0]);
    assert.deepEqual([...g.entries()], [['b', ['b1', 'b2']], ['a', ['a1', 'a2']], ['c', ['c1']]]);
  });

  test('stats: finite values only, sample std (n - 1), min and max', () => {
    // 1, 2, 6: mean 3, squared deviations 4 + 1 + 9 = 14, std sqrt(14 / 2)
    const s = stats([6, Number.NaN, 1, Number.POSITIVE_INFINITY, 2, Number.NEGATIVE_INFINITY]);
    assert.equal(s.n, 3);
    close(s.mean, 3);
    close(s.std, Math.sqrt(7));
    assert.equal(s.min, 1);
    assert.equal(s.max, 6);
    // two values: std = |a - b| / sqrt 2
    const two = stats([1, 3]);
    close(two.std, Math.SQRT2);
    close(two.mean, 2);
    assert.deepEqual(stats([5]), { n: 1, mean: 5, std: null, min: 5, max: 5 });
    assert.deepEqual(stats([Number.NaN]), { n: 0, mean: null, std: null, min: null, max: null });
  });

  test('keyOf: every field that defines an experiment apart from its seed', () => {
    const r = run({ sweep: 'w', method: 'gse', variant: 'gse(gamma=2)', format: 'csr', model: 'vit', dataset: 'cifar10', sparsity: 0.9, width: 64, epochs: 200, seed: 7 });
    assert.deepEqual(keyOf(r), { sweep: 'w', method: 'gse', variant: 'gse(gamma=2)', format: 'csr', model: 'vit', dataset: 'cifar10', sparsity: 0.9, width: 64, epochs: 200 });
  });

  test('isDense: sparsity 0 only', () => {
    assert.equal(isDense(only([run({ sparsity: 0 })])), true);
    assert.equal(isDense(only([run({ sparsity: 0.5 })])), false);
  });

  test('withoutOption: drops one option of a "name(a=1,b=2)" label, commas inside values kept', () => {
    assert.equal(withoutOption('gse(gamma=2,sampler=grabo)', 'gamma'), 'gse(sampler=grabo)');
    assert.equal(withoutOption('gse(gamma=2,sampler=grabo)', 'sampler'), 'gse(gamma=2)');
    assert.equal(withoutOption('gse(gamma=2)', 'gamma'), 'gse');
    assert.equal(withoutOption('m(a=1,bb=2,gamma=3)', 'bb'), 'm(a=1,gamma=3)');
    assert.equal(withoutOption('m(a=1,bb=2,gamma=3)', 'a'), 'm(bb=2,gamma=3)');
    // an option name is matched whole, at the start of its part
    assert.equal(withoutOption('m(xgamma=1,gamma=2)', 'gamma'), 'm(xgamma=1)');
    assert.equal(withoutOption('m(gammas=1)', 'gamma'), 'm(gammas=1)');
    // a comma splits only where an option name and "=" follow
    assert.equal(withoutOption('m(sizes=1,2,3,b=4)', 'b'), 'm(sizes=1,2,3)');
    assert.equal(withoutOption('m(names=a,b,k=1)', 'k'), 'm(names=a,b)');
    assert.equal(withoutOption('m(names=a,b,k=1)', 'names'), 'm(k=1)');
    assert.equal(withoutOption('m(p=1,_q=2,$r=3,s9=4)', 'p'), 'm(_q=2,$r=3,s9=4)');
    assert.equal(withoutOption('m(p=1,_q=2,$r=3,s9=4)', '_q'), 'm(p=1,$r=3,s9=4)');
    assert.equal(withoutOption('m(p=1,_q=2,$r=3,s9=4)', '$r'), 'm(p=1,_q=2,s9=4)');
    assert.equal(withoutOption('m(p=1,_q=2,$r=3,s9=4)', 's9'), 'm(p=1,_q=2,$r=3)');
    // not a "name(options)" label: unchanged
    assert.equal(withoutOption('set', 'gamma'), 'set');
    assert.equal(withoutOption('gse(gamma=2) x', 'gamma'), 'gse(gamma=2) x');
    assert.equal(withoutOption('(x(gamma=2))', 'gamma'), '(x(gamma=2))');
    assert.equal(withoutOption('(gamma=2)', 'gamma'), '(gamma=2)');
  });
});

describe('groups', () => {
  test('seeds average within a group; statuses counted; a complete group has no note', () => {
    const g = only([run({ seed: 2, test_accuracy: 0.9 }), run({ seed: 0, test_accuracy: 0.7 }), run({ seed: 1, test_accuracy: 0.8 })]);
    assert.deepEqual(g.seeds, [0, 1, 2]);
    assert.deepEqual(g.expectedSeeds, [0, 1, 2]);
    assert.deepEqual(g.missingSeeds, []);
    assert.deepEqual(g.statuses, { done: 3 });
    assert.equal(g.incomplete, false);
    assert.equal(g.note, '');
    assert.equal(g.accuracy.n, 3);
    close(g.accuracy.mean, 0.8);
    close(g.accuracy.std, 0.1, 1e-9);
    assert.equal(g.label, 'dense');
    assert.equal(g.runs.length, 3);
    assert.equal(g.done.length, 3);
  });

  test('seeds sort as numbers, not as text', () => {
    const g = only([run({ seed: 10 }), run({ seed: 2 }), run({ seed: 1 })]);
    assert.deepEqual(g.seeds, [1, 2, 10]);
    assert.deepEqual(g.expectedSeeds, [1, 2, 10]);
  });

  test('an incomplete group names what is missing; only done runs with an accuracy are averaged', () => {
    // family seeds 0..4 (seed 4 from the dense group); this group: 0 failed, 1 diverged, 2 failed,
    // 3 done without accuracy, 5 done; no run for 4
    const sparse = (seed: number, status: string, acc: number | null) =>
      run({ seed, status, test_accuracy: acc, method: 'set', variant: 'set', sparsity: 0.9 });
    const groups = groupRuns([
      sparse(2, 'failed', null), sparse(1, 'diverged', 0.1), sparse(0, 'failed', null), sparse(3, 'done', null), sparse(5, 'done', 0.6),
      run({ seed: 4 }),
    ]);
    const g = groups.find((x) => x.key.method === 'set')!;
    assert.deepEqual(g.seeds, [5]);
    assert.deepEqual(g.expectedSeeds, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(g.missingSeeds, [0, 1, 2, 3, 4]);
    assert.deepEqual(g.statuses, { failed: 2, diverged: 1, done: 2 });
    assert.equal(g.incomplete, true);
    assert.equal(g.note, '1 of 6 seeds done; no run for seed 4; seeds 0, 2 failed; seed 1 diverged; seed 3 done without accuracy');
    assert.deepEqual(g.done.map((r) => r.seed), [5]);
    assert.deepEqual(g.accuracy, { n: 1, mean: 0.6, std: null, min: 0.6, max: 0.6 });
    const dense = groups.find((x) => x.key.method === 'dense')!;
    assert.equal(dense.note, '1 of 6 seeds done; no run for seed 0, 1, 2, 3, 5');
  });

  test('a done run without accuracy makes the group incomplete even when every seed has a run', () => {
    const g = only([run({ seed: 0, test_accuracy: null }), run({ seed: 1 })]);
    assert.equal(g.note, '1 of 2 seeds done; seed 0 done without accuracy');
    assert.deepEqual(g.missingSeeds, [0]);
    const two = only([run({ seed: 0, test_accuracy: null }), run({ seed: 1, test_accuracy: null })]);
    assert.equal(two.note, '0 of 2 seeds done; seeds 0, 1 done without accuracy');
    assert.equal(two.accuracy.mean, null);
  });

  test('a run that is not done makes its group incomplete even with every seed done elsewhere', () => {
    // seed 0 has a done run and a running one (a rerun): every expected seed is done, yet one run is not
    const g = only([run({ seed: 0 }), run({ seed: 0, status: 'running', test_accuracy: null })]);
    assert.deepEqual(g.missingSeeds, []);
    assert.equal(g.note, 'seed 0 running');
    assert.equal(g.incomplete, true);
    assert.deepEqual(g.statuses, { done: 1, running: 1 });
  });

  test('families: expected seeds come from the same sweep, model and dataset only', () => {
    const groups = groupRuns([
      run({ seed: 0 }), run({ seed: 1 }),
      run({ seed: 5, model: 'lenet' }),
      run({ seed: 6, dataset: 'fashion' }),
      run({ seed: 7, sweep: 't' }),
      run({ seed: 0, method: 'set', sparsity: 0.9, width: 200 }),
    ]);
    const byKey = (f: (g: Group) => boolean) => groups.find(f)!;
    assert.deepEqual(byKey((g) => g.key.model === 'lenet').expectedSeeds, [5]);
    assert.deepEqual(byKey((g) => g.key.dataset === 'fashion').expectedSeeds, [6]);
    assert.deepEqual(byKey((g) => g.key.sweep === 't').expectedSeeds, [7]);
    const set = byKey((g) => g.key.method === 'set');
    assert.deepEqual(set.expectedSeeds, [0, 1]);
    assert.equal(set.note, '1 of 2 seeds done; no run for seed 1');
    assert.equal(byKey((g) => g.key.method === 'dense' && g.key.model === 'mlp' && g.key.sweep === 's' && g.key.dataset === 'mnist').incomplete, false);
  });

  test('the label is the variant and the options are the runs\' own; groups split on every key field', () => {
    const opts = { gamma: 2, sampler: 'grabo' };
    const g = only([run({ method: 'gse', variant: 'gse(gamma=2)', options: opts })]);
    assert.equal(g.label, 'gse(gamma=2)');
    assert.deepEqual(g.options, opts);
    const fields: Partial<Run>[] = [{ sweep: 'x' }, { method: 'set' }, { variant: 'dense(a=1)' }, { format: 'csr' }, { model: 'vit' }, { dataset: 'cifar10' }, { sparsity: 0.5 }, { width: 7 }, { epochs: 9 }];
    for (const f of fields) assert.equal(groupRuns([run(), run({ seed: 1, ...f })]).length, 2, JSON.stringify(f));
  });

  test('sorted by sweep, model, dataset, width, sparsity, method, format, epochs', () => {
    // each run differs from the base in one field only and comes before it: sorting must move it after
    const later: Partial<Run>[] = [
      { sweep: 't' }, { model: 'vit' }, { dataset: 'svhn' }, { width: 200 }, { sparsity: 0.5 },
      { method: 'set', variant: 'set' }, { format: 'masked2' }, { epochs: 4 },
    ];
    for (const f of later) {
      for (const input of [[run(f), run({ epochs: 3 })], [run({ epochs: 3 }), run(f)]]) {
        assert.deepEqual(groupRuns(input).map((g) => g.key), [keyOf(run({ epochs: 3 })), keyOf(run(f))], JSON.stringify(f));
      }
    }
    // no epochs sorts before any number of epochs, 0 included
    for (const n of [0, 1]) {
      for (const input of [[run({ epochs: n }), run({ epochs: null })], [run({ epochs: null }), run({ epochs: n })]]) {
        assert.deepEqual(groupRuns(input).map((g) => g.key.epochs), [null, n]);
      }
    }
    // an earlier field decides over every later one
    const mixed = groupRuns([run({ width: 50, sparsity: 0.9, epochs: 9 }), run({ width: 60, sparsity: 0.1, epochs: 1 })]);
    assert.deepEqual(mixed.map((g) => g.key.width), [50, 60]);
    const wide = groupRuns([run({ width: 60 }), run({ width: 50 }), run({ width: 1000 })]);
    assert.deepEqual(wide.map((g) => g.key.width), [50, 60, 1000]);
  });
});

describe('variants: a key field named only where a label has several values of it', () => {
  test('format and epochs per label and sweep', () => {
    const groups = groupRuns([
      run({ method: 'gse', variant: 'gse', format: 'csr', epochs: 200 }),
      run({ method: 'gse', variant: 'gse', format: 'masked', epochs: 200 }),
      run({ method: 'set', variant: 'set', format: 'masked', epochs: 200 }),
      run({ method: 'set', variant: 'set', format: 'masked', epochs: null }),
      run({ method: 'rigl', variant: 'rigl', format: 'csr', epochs: 200 }),
      // another sweep: the same label with another format is not a variant of this sweep's
      run({ sweep: 't', method: 'rigl', variant: 'rigl', format: 'masked', epochs: 200 }),
    ]);
    const names = groups.map((g) => `${g.key.sweep}/${seriesName(g)}`);
    assert.deepEqual(names, ['s/set · no epochs', 's/set · 200 ep', 's/rigl', 's/gse · csr', 's/gse · masked', 't/rigl']);
    const gseCsr = groups.find((g) => g.label === 'gse' && g.key.format === 'csr')!;
    assert.deepEqual(gseCsr.variants, { format: 'csr' });
    assert.equal(variantText(gseCsr), 'csr');
    assert.equal(seriesName(gseCsr, ['format']), 'gse');
    assert.deepEqual(groups.find((g) => g.key.sweep === 't')!.variants, {});
  });

  test('both fields vary: joined with " · ", format first; either can be left out', () => {
    const groups = groupRuns([
      run({ format: 'csr', epochs: 10 }),
      run({ format: 'masked', epochs: 20 }),
    ]);
    const g = groups.find((x) => x.key.format === 'csr')!;
    assert.equal(variantText(g), 'csr · 10 ep');
    assert.equal(seriesName(g), 'dense · csr · 10 ep');
    assert.equal(variantText(g, ['format']), '10 ep');
    assert.equal(variantText(g, ['epochs']), 'csr');
    assert.equal(variantText(g, ['format', 'epochs']), '');
    assert.equal(seriesName(g, ['format', 'epochs']), 'dense');
  });
});

describe('per-group curves and ratios (done runs only)', () => {
  test('epochCurve: mean and std per epoch over the done runs, epochs ascending, non-finite values skipped', () => {
    const g = only([
      // epoch 4 has no finite accuracy in any done run, epoch 5 none at all: neither is a point
      run({ seed: 0, metrics: [{ epoch: 2, test_accuracy: 0.6 }, { epoch: 1, test_accuracy: 0.2 }, { epoch: 3, test_accuracy: Number.NaN }, { epoch: 4, test_accuracy: Number.NaN }] }),
      run({ seed: 1, metrics: [{ epoch: 1, test_accuracy: 0.4 }, { epoch: 2, test_accuracy: 0.8 }, { epoch: 3 }, { epoch: 4, test_accuracy: Number.POSITIVE_INFINITY }, { epoch: 5 }] }),
      run({ seed: 2, metrics: [{ epoch: 3, test_accuracy: 0.9 }, { epoch: 1, test_accuracy: 0.9 }] }),
      run({ seed: 3, status: 'failed', test_accuracy: null, metrics: [{ epoch: 1, test_accuracy: 0.99 }, { epoch: 4, test_accuracy: 0.99 }] }),
    ]);
    const c = epochCurve(g);
    assert.deepEqual(c.map((p) => [p.epoch, p.n]), [[1, 3], [2, 2], [3, 1]]);
    close(c[0].mean, 0.5, 1e-12); // (0.2 + 0.4 + 0.9) / 3
    close(c[0].std, Math.sqrt((0.09 + 0.01 + 0.16) / 2), 1e-12);
    close(c[1].mean, 0.7, 1e-12);
    close(c[1].std, Math.sqrt(0.02), 1e-12);
    close(c[2].mean, 0.9);
    assert.equal(c[2].std, null);
  });

  test('flopsRatio: train / dense FLOPs over done runs that have both numbers', () => {
    const g = only([
      run({ seed: 0, train_flops: 2, dense_train_flops: 8 }),
      run({ seed: 1, train_flops: 3, dense_train_flops: 6 }),
      run({ seed: 2, train_flops: null, dense_train_flops: 6 }),
      run({ seed: 3, train_flops: 5, dense_train_flops: null }),
      run({ seed: 4, train_flops: 5, dense_train_flops: 0 }),
      run({ seed: 5, train_flops: 1, dense_train_flops: 1, status: 'diverged' }),
    ]);
    const s = flopsRatio(g);
    assert.equal(s.n, 2);
    close(s.mean, 0.375); // (1/4 + 1/2) / 2
    assert.equal(s.min, 0.25);
    assert.equal(s.max, 0.5);
  });

  test('layerDensities: mean final density per layer in the runs\' layer order, with n', () => {
    const g = only([
      run({ seed: 0, layers: [{ name: 'fc1', density: 0.1 }, { name: 'fc2', density: 0.5 }] }),
      run({ seed: 1, layers: [{ name: 'fc1', density: 0.3 }, { name: 'fc2', density: 0.7 }, { name: 'out', density: 1 }] }),
      run({ seed: 2, status: 'failed', test_accuracy: null, layers: [{ name: 'fc1', density: 0.9 }, { name: 'extra', density: 0.9 }] }),
    ]);
    const d = layerDensities(g);
    assert.deepEqual(d.map((x) => [x.layer, x.index, x.n]), [['fc1', 0, 2], ['fc2', 1, 2], ['out', 2, 1]]);
    close(d[0].density, 0.2, 1e-12);
    close(d[1].density, 0.6, 1e-12);
    assert.equal(d[2].density, 1);
  });
});

describe('logLogSlope', () => {
  test('the least-squares slope of log y on log x over the positive points', () => {
    // y = 5 x^-1.5 exactly; points with x or y <= 0 are left out
    const pts = [0.5, 2, 8, 32].map((x) => ({ x, y: 5 * x ** -1.5 }));
    const junk = [{ x: 0, y: 1 }, { x: 1, y: 0 }, { x: -1, y: 2 }, { x: 2, y: -3 }, { x: -2, y: -2 }];
    close(logLogSlope([...junk.slice(0, 2), ...pts, ...junk.slice(2)]), -1.5, 1e-12);
    // not on a line: log x = 0, 1, 2 (x = 1, e, e^2), log y = 0, 2, 1 -> slope 1/2
    close(logLogSlope([{ x: 1, y: 1 }, { x: Math.E, y: Math.E ** 2 }, { x: Math.E ** 2, y: Math.E }]), 0.5, 1e-12);
    // exactly two distinct x
    close(logLogSlope([{ x: 2, y: 3 }, { x: 8, y: 12 }, { x: 8, y: 12 }]), 1, 1e-12);
    assert.equal(logLogSlope([{ x: 4, y: 1 }, { x: 4, y: 2 }, { x: 0, y: 5 }]), null);
    assert.equal(logLogSlope([]), null);
  });
});
