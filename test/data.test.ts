import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Rng } from '../core/rng.js';
import { UserError } from '../core/errors.js';
import {
  datasets, loadDataset, slicePerClass, batchOrder, gather, samplesPerClass,
} from '../harness/data/index.js';
import type { Split } from '../harness/data/types.js';

/** The package's raw data, read independently of harness/data/mnist.ts. */
function packageDigits(): number[][] {
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  return Array.from({ length: 10 }, (_, d) => (JSON.parse(readFileSync(join(dir, `${d}.json`), 'utf8')) as { data: number[] }).data);
}

test('registry lists the six datasets with summaries and option defaults', () => {
  assert.deepEqual(Object.keys(datasets).sort(), ['cifar10', 'cifar100', 'fashion-mnist', 'mnist', 'mnist-full', 'synthetic']);
  for (const [name, e] of Object.entries(datasets)) {
    assert.equal(e.name, name);
    assert.ok(e.summary.length > 10);
    for (const o of Object.values(e.options)) assert.ok(o.help.length > 0 && o.default !== undefined);
  }
});

test('mnist: exact stratified split sizes, labels, pixel range and order', () => {
  const ds = loadDataset('mnist', {}, { seed: 0 });
  assert.deepEqual(ds.inputShape, [28, 28, 1]);
  assert.equal(ds.classes, 10);
  assert.equal(ds.augment, undefined);

  const raw = packageDigits();
  const counts = raw.map((a) => a.length / 784);
  assert.deepEqual(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
  const trainPer = counts.map((m) => Math.floor(0.8 * m));
  assert.deepEqual(trainPer, [800, 901, 792, 825, 784, 690, 811, 856, 755, 782]);
  assert.equal(ds.train.n, 7996);
  assert.equal(ds.test.n, 2004);
  assert.equal(ds.train.x.length, 7996 * 784);
  assert.equal(ds.test.x.length, 2004 * 784);

  // labels per split
  for (const [split, expected] of [[ds.train, trainPer], [ds.test, counts.map((m, d) => m - trainPer[d])]] as const) {
    const seen = new Array(10).fill(0);
    for (let i = 0; i < split.n; i++) seen[split.y[i]]++;
    assert.deepEqual(seen, expected);
    // digit-major order
    for (let i = 1; i < split.n; i++) assert.ok(split.y[i] >= split.y[i - 1]);
  }

  // pixels in [0,1], exactly k/255, and not all zero
  let max = 0;
  for (const split of [ds.train, ds.test]) {
    for (let i = 0; i < split.x.length; i += 7) {
      const v = split.x[i];
      assert.ok(v >= 0 && v <= 1);
      if (v > max) max = v;
    }
  }
  assert.equal(max, 1);

  // the stratified rule: train = first 80% of each digit in package order, test = the rest
  const sameAsPackage = (split: Split, index: number, d: number, k: number) => {
    const a = split.x.subarray(index * 784, (index + 1) * 784);
    for (let p = 0; p < 784; p++) assert.ok(Math.abs(a[p] - raw[d][k * 784 + p]) < 0.0006, `digit ${d} sample ${k} pixel ${p}`);
  };
  let a = 0, b = 0;
  for (let d = 0; d < 10; d++) {
    const t = trainPer[d];
    sameAsPackage(ds.train, a, d, 0);
    sameAsPackage(ds.train, a + t - 1, d, t - 1);
    sameAsPackage(ds.test, b, d, t);
    sameAsPackage(ds.test, b + counts[d] - t - 1, d, counts[d] - 1);
    a += t; b += counts[d] - t;
  }

  // cached: a second load is instant and the same arrays
  const again = loadDataset('mnist', {}, { seed: 5 });
  assert.equal(again.train.x, ds.train.x);
});

/** A one-line UserError whose message matches re. */
const userError = (re: RegExp) => (e: unknown) => e instanceof UserError && !e.message.includes('\n') && re.test(e.message);

test('loadDataset: unknown dataset, unknown option and bad values are UserErrors', () => {
  assert.throws(() => loadDataset('imagenet', {}, { seed: 0 }), userError(/unknown dataset "imagenet".*mnist/));
  assert.throws(() => loadDataset('mnist', { foo: 1 }, { seed: 0 }), userError(/mnist.*"foo"/));
  assert.throws(() => loadDataset('synthetic', { featurs: 3 }, { seed: 0 }), userError(/featurs.*known: features/));
  assert.throws(() => loadDataset('synthetic', { features: 2.5 }, { seed: 0 }), userError(/features.*integer/));
  assert.throws(() => loadDataset('synthetic', { classes: 1 }, { seed: 0 }), userError(/classes.*minimum 2/));
  assert.throws(() => loadDataset('synthetic', { noise: 'lots' }, { seed: 0 }), userError(/noise.*number/));
  assert.throws(() => loadDataset('synthetic', { shape: '32xx3' }, { seed: 0 }), userError(/shape/));
  assert.throws(() => loadDataset('cifar10', { augment: 'yes' }, { seed: 0 }), userError(/augment.*true or false/));
});

const small = { features: 20, classes: 4, trainSamples: 200, testSamples: 80 };

test('synthetic: deterministic per seed, different across seeds, seed option holds it fixed', () => {
  const a = loadDataset('synthetic', small, { seed: 1 });
  const b = loadDataset('synthetic', { ...small, noise: 1 }, { seed: 1 });
  const c = loadDataset('synthetic', small, { seed: 2 });
  assert.deepEqual(a.inputShape, [20]);
  assert.equal(a.classes, 4);
  assert.equal(a.train.n, 200); assert.equal(a.test.n, 80);
  assert.equal(a.train.x.length, 200 * 20); assert.equal(a.test.x.length, 80 * 20);
  assert.deepEqual(Array.from(a.train.x), Array.from(b.train.x));
  assert.deepEqual(Array.from(a.test.y), Array.from(b.test.y));
  assert.notDeepEqual(Array.from(a.train.x), Array.from(c.train.x));
  // balanced labels
  const seen = [0, 0, 0, 0];
  for (const y of a.train.y) seen[y]++;
  assert.deepEqual(seen, [50, 50, 50, 50]);
  // seed option overrides the run seed
  const f1 = loadDataset('synthetic', { ...small, seed: 7 }, { seed: 1 });
  const f2 = loadDataset('synthetic', { ...small, seed: 7 }, { seed: 2 });
  assert.deepEqual(Array.from(f1.train.x), Array.from(f2.train.x));
  assert.notDeepEqual(Array.from(f1.train.x), Array.from(a.train.x));
  // shape
  const img = loadDataset('synthetic', { shape: '4x4x3', trainSamples: 10, testSamples: 10 }, { seed: 0 });
  assert.deepEqual(img.inputShape, [4, 4, 3]);
  assert.equal(img.train.x.length, 10 * 48);
  // the entry itself fills defaults
  assert.equal(datasets.synthetic.load({ trainSamples: 30, testSamples: 10 }, { seed: 0 }).train.x.length, 30 * 784);
});

function nearestMeanAccuracy(train: Split, test: Split, d: number, classes: number): number {
  const mu = new Float64Array(classes * d), cnt = new Float64Array(classes);
  for (let i = 0; i < train.n; i++) { cnt[train.y[i]]++; for (let j = 0; j < d; j++) mu[train.y[i] * d + j] += train.x[i * d + j]; }
  for (let c = 0; c < classes; c++) for (let j = 0; j < d; j++) mu[c * d + j] /= cnt[c];
  let ok = 0;
  for (let i = 0; i < test.n; i++) {
    let best = -1, bestD = Infinity;
    for (let c = 0; c < classes; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) { const q = test.x[i * d + j] - mu[c * d + j]; s += q * q; }
      if (s < bestD) { bestD = s; best = c; }
    }
    if (best === test.y[i]) ok++;
  }
  return ok / test.n;
}

test('synthetic: learnable well above chance at the defaults and at small sizes', () => {
  const ds = loadDataset('synthetic', {}, { seed: 11 });
  assert.deepEqual(ds.inputShape, [784]);
  assert.equal(ds.train.n, 4000); assert.equal(ds.test.n, 1000); assert.equal(ds.classes, 10);
  const acc = nearestMeanAccuracy(ds.train, ds.test, 784, 10);
  assert.ok(acc > 0.8, `nearest-mean accuracy ${acc} at the defaults (chance 0.1)`);
  const s = loadDataset('synthetic', small, { seed: 3 });
  const accSmall = nearestMeanAccuracy(s.train, s.test, 20, 4);
  assert.ok(accSmall > 0.7, `nearest-mean accuracy ${accSmall} on 20 features (chance 0.25)`);
  // more noise makes it harder
  const hard = loadDataset('synthetic', { ...small, noise: 4 }, { seed: 3 });
  assert.ok(nearestMeanAccuracy(hard.train, hard.test, 20, 4) < accSmall);
});

test('batchOrder: every index exactly once per epoch, partial last batch, seeded', () => {
  const rng = new Rng(5);
  const e1 = batchOrder(103, 10, rng);
  const e2 = batchOrder(103, 10, rng);
  for (const epoch of [e1, e2]) {
    assert.equal(epoch.length, 11);
    assert.deepEqual(epoch.map((b) => b.length), [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);
    const all = epoch.flatMap((b) => Array.from(b)).sort((p, q) => p - q);
    assert.deepEqual(all, Array.from({ length: 103 }, (_, i) => i));
  }
  assert.notDeepEqual(e1.map((b) => Array.from(b)), e2.map((b) => Array.from(b)));
  const again = batchOrder(103, 10, new Rng(5));
  assert.deepEqual(again.map((b) => Array.from(b)), e1.map((b) => Array.from(b)));
  assert.deepEqual(batchOrder(4, 10, new Rng(1)).map((b) => b.length), [4]);
  assert.deepEqual(batchOrder(0, 10, new Rng(1)), []);
});

function tinySplit(): Split {
  // 12 samples of 2 floats; sample i = [i, -i]; labels cycle 0,1,2 except the last three are 0
  const y = Int32Array.from([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 0]);
  const x = new Float32Array(24);
  for (let i = 0; i < 12; i++) { x[2 * i] = i; x[2 * i + 1] = -i; }
  return { x, y, n: 12 };
}

test('gather copies samples by index into fresh arrays', () => {
  const s = tinySplit();
  const g = gather(s, 2, Int32Array.from([5, 0, 5]));
  assert.deepEqual(Array.from(g.x), [5, -5, 0, -0, 5, -5]);
  assert.deepEqual(Array.from(g.y), [2, 0, 2]);
  g.x[0] = 99;
  assert.equal(s.x[10], 5);
  assert.throws(() => gather(s, 2, Int32Array.from([12])), RangeError);
});

test('slicePerClass keeps the first count of each class in split order', () => {
  const s = tinySplit();
  const sl = slicePerClass(s, 3, 2);
  assert.equal(sl.n, 6);
  assert.deepEqual(Array.from(sl.y), [0, 1, 2, 0, 1, 2]);
  assert.deepEqual(Array.from(sl.x.filter((_, i) => i % 2 === 0)), [0, 1, 2, 3, 4, 5]);
  const four = slicePerClass(s, 3, 4);
  assert.deepEqual(Array.from(four.y), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
  const mn = loadDataset('mnist', {}, { seed: 0 });
  const smoke = slicePerClass(mn.train, 10, 5);
  assert.equal(smoke.n, 50);
  assert.equal(smoke.x.length, 50 * 784);
});

test('samplesPerClass: perClass distinct samples of each class, seeded', () => {
  const s = tinySplit();
  const pick = samplesPerClass(s, 3, 2, new Rng(9));
  assert.equal(pick.length, 6);
  assert.deepEqual(Array.from(pick).map((i) => s.y[i]), [0, 0, 1, 1, 2, 2]);
  assert.equal(new Set(pick).size, 6);
  assert.deepEqual(Array.from(samplesPerClass(s, 3, 2, new Rng(9))), Array.from(pick));
  // a class with fewer samples gives all it has
  const many = samplesPerClass(s, 3, 5, new Rng(1));
  assert.deepEqual(Array.from(many).map((i) => s.y[i]), [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
  // uniform-ish over a class: every class-0 sample is picked at some point
  const rng = new Rng(2);
  const hit = new Set<number>();
  for (let r = 0; r < 200; r++) for (const i of samplesPerClass(s, 3, 1, rng)) hit.add(i);
  assert.equal(hit.size, 12);
  // on real data
  const mn = loadDataset('mnist', {}, { seed: 0 });
  const batch = samplesPerClass(mn.train, 10, 8, new Rng(4));
  const per = new Array(10).fill(0);
  for (const i of batch) per[mn.train.y[i]]++;
  assert.deepEqual(per, new Array(10).fill(8));
  assert.equal(new Set(batch).size, 80);
});
