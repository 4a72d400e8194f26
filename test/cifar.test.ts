import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, truncateSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Rng } from '../core/rng.js';
import { UserError } from '../core/errors.js';
import { datasets, loadDataset } from '../harness/data/index.js';
import { padCropFlip, writeCifarFiles, CIFAR10, CIFAR100 } from '../harness/data/cifar.js';
import { installArchive, ARCHIVES } from '../harness/data/fetch.js';

const root = mkdtempSync(join(tmpdir(), 'sparsebench-cifar-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => { const d = join(root, `d${dirCount++}`); mkdirSync(d); return d; };

const userError = (re: RegExp) => (e: unknown) => e instanceof UserError && !e.message.includes('\n') && re.test(e.message);

/** Pixel byte of a hand-made image: record r, channel c, row i, column j. */
const pixel = (r: number, c: number, i: number, j: number) => (r * 31 + c * 80 + i * 7 + j * 3) % 256;

/** One record by hand: label bytes then channel-planar pixels. */
function record(labels: number[], r: number): Buffer {
  const b = Buffer.alloc(labels.length + 3072);
  labels.forEach((l, k) => { b[k] = l; });
  for (let c = 0; c < 3; c++) for (let i = 0; i < 32; i++) for (let j = 0; j < 32; j++) b[labels.length + c * 1024 + i * 32 + j] = pixel(r, c, i, j);
  return b;
}

/** A CIFAR-10 folder written by hand: data_batch_k holds records with labels trainLabels[k-1]. */
function writeCifar10(dir: string, trainLabels: number[][], testLabels: number[]): string {
  const d = join(dir, 'cifar-10-batches-bin');
  mkdirSync(d, { recursive: true });
  let r = 0;
  trainLabels.forEach((labels, k) => writeFileSync(join(d, `data_batch_${k + 1}.bin`), Buffer.concat(labels.map((l) => record([l], r++)))));
  writeFileSync(join(d, 'test_batch.bin'), Buffer.concat(testLabels.map((l) => record([l], r++))));
  return d;
}

function checkImage(x: Float32Array, sample: number, r: number, mean: number[], std: number[]) {
  for (const [i, j] of [[0, 0], [0, 1], [1, 0], [5, 17], [31, 31], [31, 0]]) {
    for (let c = 0; c < 3; c++) {
      const got = x[sample * 3072 + (i * 32 + j) * 3 + c];
      const want = (pixel(r, c, i, j) / 255 - mean[c]) / std[c];
      assert.ok(Math.abs(got - want) < 1e-5, `sample ${sample} (${i},${j},${c}): ${got} vs ${want}`);
    }
  }
}

test('cifar10: labels, planar -> NHWC pixel order, normalisation, file order', () => {
  const dir = freshDir();
  writeCifar10(dir, [[3, 9], [0], [], [1, 2, 3], [7]], [4, 5]);
  const ds = loadDataset('cifar10', {}, { dataDir: dir, seed: 0 });
  assert.deepEqual(ds.inputShape, [32, 32, 3]);
  assert.equal(ds.classes, 10);
  assert.equal(ds.train.n, 7);
  assert.equal(ds.test.n, 2);
  assert.equal(ds.train.x.length, 7 * 3072);
  assert.deepEqual(Array.from(ds.train.y), [3, 9, 0, 1, 2, 3, 7]);
  assert.deepEqual(Array.from(ds.test.y), [4, 5]);
  const mean = [0.4914, 0.4822, 0.4465], std = [0.2470, 0.2435, 0.2616];
  for (let s = 0; s < 7; s++) checkImage(ds.train.x, s, s, mean, std);
  checkImage(ds.test.x, 1, 8, mean, std);
  // one exact value: byte 0 of the red plane is pixel(0,0,0,0) = 0 -> -mean/std
  assert.ok(Math.abs(ds.train.x[0] - (0 - 0.4914) / 0.2470) < 1e-6);
  assert.equal(typeof ds.augment, 'function');
  // data-dir may also be the folder itself
  const direct = loadDataset('cifar10', { augment: false }, { dataDir: join(dir, 'cifar-10-batches-bin'), seed: 0 });
  assert.deepEqual(Array.from(direct.train.y), [3, 9, 0, 1, 2, 3, 7]);
  assert.equal(direct.augment, undefined);
});

test('cifar100: coarse + fine label bytes, fine labels used, its own statistics', () => {
  const dir = freshDir();
  const d = join(dir, 'cifar-100-binary');
  mkdirSync(d);
  writeFileSync(join(d, 'train.bin'), Buffer.concat([record([19, 99], 0), record([0, 42], 1), record([5, 7], 2)]));
  writeFileSync(join(d, 'test.bin'), record([3, 64], 3));
  const ds = loadDataset('cifar100', {}, { dataDir: dir, seed: 0 });
  assert.equal(ds.classes, 100);
  assert.deepEqual(Array.from(ds.train.y), [99, 42, 7]);
  assert.deepEqual(Array.from(ds.test.y), [64]);
  const mean = [0.5071, 0.4865, 0.4409], std = [0.2673, 0.2564, 0.2762];
  for (let s = 0; s < 3; s++) checkImage(ds.train.x, s, s, mean, std);
  checkImage(ds.test.x, 0, 3, mean, std);
});

test('cifar: missing --data-dir, missing folder, missing file, truncated file, bad labels', () => {
  assert.throws(() => loadDataset('cifar10', {}, { seed: 0 }), userError(/--data-dir.*cifar-10-batches-bin/));
  assert.throws(() => loadDataset('cifar100', {}, { seed: 0 }), userError(/--data-dir.*cifar-100-binary.*fetch cifar100/));
  const empty = freshDir();
  assert.throws(() => loadDataset('cifar10', {}, { dataDir: empty, seed: 0 }), userError(/--data-dir .*no cifar-10-batches-bin\/ folder/));
  assert.throws(() => loadDataset('cifar10', {}, { dataDir: join(empty, 'nope'), seed: 0 }), userError(/nope: no such directory/));

  const dir = freshDir();
  const d = writeCifar10(dir, [[1], [1], [1], [1], [1]], [1]);
  rmSync(join(d, 'data_batch_4.bin'));
  assert.throws(() => loadDataset('cifar10', {}, { dataDir: dir, seed: 0 }), userError(/data_batch_4\.bin: missing/));

  writeCifar10(dir, [[1, 2], [1], [1], [1], [1]], [1]);
  truncateSync(join(d, 'data_batch_1.bin'), 3073 * 2 - 100);
  assert.throws(() => loadDataset('cifar10', {}, { dataDir: dir, seed: 0 }),
    userError(/cifar-10-batches-bin\/data_batch_1\.bin: 6046 bytes is not a whole number of 3073-byte CIFAR-10 records/));

  writeCifar10(dir, [[1], [1], [1], [1], [1]], [1, 10]);
  assert.throws(() => loadDataset('cifar10', {}, { dataDir: dir, seed: 0 }), userError(/test_batch\.bin: record 1 has label 10, outside 0\.\.9/));

  const c100 = join(freshDir(), 'cifar-100-binary');
  mkdirSync(c100);
  writeFileSync(join(c100, 'train.bin'), Buffer.concat([record([1, 1], 0), record([1, 100], 1)]));
  writeFileSync(join(c100, 'test.bin'), record([1, 1], 0));
  assert.throws(() => loadDataset('cifar100', {}, { dataDir: c100, seed: 0 }), userError(/train\.bin: record 1 has fine label 100, outside 0\.\.99/));
  writeFileSync(join(c100, 'train.bin'), record([20, 1], 0));
  assert.throws(() => loadDataset('cifar100', {}, { dataDir: c100, seed: 0 }), userError(/train\.bin: record 0 has coarse label 20/));
  writeFileSync(join(c100, 'train.bin'), Buffer.alloc(3073)); // a CIFAR-10-sized record
  assert.throws(() => loadDataset('cifar100', {}, { dataDir: c100, seed: 0 }), userError(/train\.bin: 3073 bytes .* 3074-byte CIFAR-100/));
  writeFileSync(join(c100, 'train.bin'), Buffer.alloc(0));
  assert.throws(() => loadDataset('cifar100', {}, { dataDir: c100, seed: 0 }), userError(/train\.bin: no CIFAR-100 records/));
});

/** An Rng stand-in that replays fixed draws: ints for int(), floats for float(). */
function scripted(ints: number[], floats: number[]): Rng {
  return { int: () => ints.shift()!, float: () => floats.shift()! } as unknown as Rng;
}

test('padCropFlip: crop offsets, padding and flip on a hand-made image', () => {
  // 3x3 single-channel image, pad 1: offsets in 0..2, pad value -1
  const img = () => Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const aug = padCropFlip(3, 3, 1, 1, [-1]);
  let x = img();
  aug(x, 1, scripted([1, 1], [0.9])); // centre crop, no flip: unchanged
  assert.deepEqual(Array.from(x), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  x = img();
  aug(x, 1, scripted([1, 1], [0.1])); // centre crop, flip
  assert.deepEqual(Array.from(x), [3, 2, 1, 6, 5, 4, 9, 8, 7]);
  x = img();
  aug(x, 1, scripted([0, 0], [0.9])); // top-left crop of the padded image: shifted down-right
  assert.deepEqual(Array.from(x), [-1, -1, -1, -1, 1, 2, -1, 4, 5]);
  x = img();
  aug(x, 1, scripted([2, 1], [0.9])); // bottom-centre crop: shifted up
  assert.deepEqual(Array.from(x), [4, 5, 6, 7, 8, 9, -1, -1, -1]);
  x = img();
  aug(x, 1, scripted([1, 2], [0.3])); // right crop (shift left) then flip
  assert.deepEqual(Array.from(x), [-1, 3, 2, -1, 6, 5, -1, 9, 8]);
  // two images, two channels: each image gets its own draws, channels move together
  const two = Float32Array.from([1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60, 7, 70, 8, 80, 9, 90, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60, 7, 70, 8, 80, 9, 90]);
  padCropFlip(3, 3, 2, 1, [0, -5])(two, 2, scripted([1, 1, 0, 1], [0.1, 0.9]));
  assert.deepEqual(Array.from(two), [3, 30, 2, 20, 1, 10, 6, 60, 5, 50, 4, 40, 9, 90, 8, 80, 7, 70, 0, -5, 0, -5, 0, -5, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60]);
});

test('cifar augment: seeded, in place, pads with normalised black, keeps pixels', () => {
  const dir = freshDir();
  writeCifarFiles(dir, 'cifar10', { train: 10, test: 2, seed: 1 });
  const ds = loadDataset('cifar10', {}, { dataDir: dir, seed: 0 });
  assert.equal(ds.train.n, 10);
  const batch = () => ds.train.x.slice(0, 8 * 3072);
  const a = batch(), b = batch(), c = batch();
  ds.augment!(a, 8, new Rng(42));
  ds.augment!(b, 8, new Rng(42));
  ds.augment!(c, 8, new Rng(43));
  assert.deepEqual(Array.from(a), Array.from(b));
  assert.notDeepEqual(Array.from(a), Array.from(c));
  assert.notDeepEqual(Array.from(a), Array.from(batch()));
  // the dataset itself is untouched
  assert.deepEqual(Array.from(ds.train.x.subarray(0, 8 * 3072)), Array.from(batch()));
  // offsets (0, 0) = shift by 4 down and right: the top-left 4 rows/cols are black, the rest moved
  const x = batch();
  ds.augment!(x, 1, scripted([0, 0], [0.9]));
  const black = CIFAR10.mean.map((m, ch) => Math.fround(-m / CIFAR10.std[ch]));
  const orig = batch();
  for (let ch = 0; ch < 3; ch++) {
    assert.equal(x[(0 * 32 + 0) * 3 + ch], black[ch]);
    assert.equal(x[(3 * 32 + 20) * 3 + ch], black[ch]);
    assert.equal(x[(20 * 32 + 3) * 3 + ch], black[ch]);
    assert.equal(x[(4 * 32 + 4) * 3 + ch], orig[ch]);
    assert.equal(x[(31 * 32 + 31) * 3 + ch], orig[(27 * 32 + 27) * 3 + ch]);
  }
  // offsets (4, 4) + flip = mirror image
  const m = batch();
  ds.augment!(m, 1, scripted([4, 4], [0.2]));
  for (let i = 0; i < 32; i += 5) for (let j = 0; j < 32; j += 3) for (let ch = 0; ch < 3; ch++) {
    assert.equal(m[(i * 32 + j) * 3 + ch], orig[(i * 32 + 31 - j) * 3 + ch]);
  }
  // flips happen about half the time
  let flips = 0;
  const rng = new Rng(7);
  for (let k = 0; k < 400; k++) { rng.int(9); rng.int(9); if (rng.float() < 0.5) flips++; }
  assert.ok(flips > 150 && flips < 250);
});

test('writeCifarFiles produces loadable files in both layouts', () => {
  const dir = freshDir();
  writeCifarFiles(dir, 'cifar10', { train: 23, test: 7 });
  writeCifarFiles(dir, 'cifar100', { train: 120, test: 5 });
  const c10 = loadDataset('cifar10', {}, { dataDir: dir, seed: 0 });
  assert.equal(c10.train.n, 23); assert.equal(c10.test.n, 7);
  const c100 = loadDataset('cifar100', {}, { dataDir: dir, seed: 0 });
  assert.equal(c100.train.n, 120); assert.equal(c100.test.n, 5);
  assert.equal(Math.max(...c100.train.y), 99);
  assert.equal(CIFAR100.classes, 100);
  // what config validation reads without loading matches what loading gives
  // (samples: the official files' count for CIFAR, whatever these small files hold)
  for (const d of [c10, c100]) assert.deepEqual(datasets[d.name].shape({}), { inputShape: d.inputShape, classes: d.classes, samples: 60_000 });
  const mnist = loadDataset('mnist', {}, { seed: 0 });
  assert.deepEqual(datasets.mnist.shape({}), { inputShape: mnist.inputShape, classes: mnist.classes, samples: mnist.train.n + mnist.test.n });
  for (const o of [{}, { shape: '4x4x2', classes: 3 }, { features: 7 }]) {
    const s = loadDataset('synthetic', { ...o, trainSamples: 6, testSamples: 3 }, { seed: 0 });
    assert.deepEqual(datasets.synthetic.shape({ ...o, trainSamples: 6, testSamples: 3 }), { inputShape: s.inputShape, classes: s.classes, samples: 9 });
  }
});

test('installArchive: verifies the MD5 and unpacks atomically (local archive, no network)', async (t) => {
  assert.equal(ARCHIVES.cifar10.md5, 'c32a1d4ab5d03f1284b67883e8d87530');
  assert.equal(ARCHIVES.cifar100.md5, '03b5dce01913d631647c71ecec9e9cb8');
  const src = freshDir();
  writeCifarFiles(src, 'cifar10', { train: 5, test: 1 });
  const archive = join(src, 'cifar-10-binary.tar.gz');
  try {
    execFileSync('tar', ['-czf', archive, '-C', src, 'cifar-10-batches-bin']);
  } catch (e) {
    t.skip(`no system tar to build the test archive with (${(e as Error).message.split('\n')[0]})`);
    return;
  }
  const md5 = createHash('md5').update(execFileSync('cat', [archive])).digest('hex');
  const dest = freshDir();
  await assert.rejects(installArchive('cifar10', archive, dest, '0'.repeat(32)), userError(/cifar-10-binary\.tar\.gz: MD5 .* does not match/));
  assert.ok(!existsSync(join(dest, 'cifar-10-batches-bin')));
  await installArchive('cifar10', archive, dest, md5);
  assert.deepEqual(readdirSync(dest), ['cifar-10-batches-bin']);
  const ds = loadDataset('cifar10', {}, { dataDir: dest, seed: 0 });
  assert.equal(ds.train.n, 5);
  // installing again replaces the folder, leaving no temp files behind
  await installArchive('cifar10', archive, dest, md5);
  assert.deepEqual(readdirSync(dest), ['cifar-10-batches-bin']);
  // an archive without the expected folder is refused
  await assert.rejects(installArchive('cifar100', archive, dest), userError(/does not contain a complete cifar-100-binary\//));
});
