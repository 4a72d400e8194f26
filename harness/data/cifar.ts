/**
 * CIFAR-10 and CIFAR-100 from the official binary distributions on disk (--data-dir DIR):
 *   DIR/cifar-10-batches-bin/  data_batch_1.bin … data_batch_5.bin, test_batch.bin
 *       record = 1 label byte (0..9) + 3072 pixel bytes
 *   DIR/cifar-100-binary/      train.bin, test.bin
 *       record = 1 coarse label byte (0..19) + 1 fine label byte (0..99) + 3072 pixel bytes; we use FINE labels
 * Pixels in a record are channel-planar (R 1024, G 1024, B 1024), each plane row-major 32x32.
 * DIR may also be the cifar-10-batches-bin/ or cifar-100-binary/ folder itself.
 *
 * Any file whose size is a whole multiple of the record size is accepted (so small generated files
 * work); a size that is not, a label out of range or a missing file is a one-line UserError naming
 * the file. Samples come out NHWC ([32, 32, 3]) as floats normalised per channel with the paper's
 * statistics: (byte / 255 - mean[c]) / std[c]. Training order: the files in order
 * (data_batch_1 … 5), records in file order.
 *
 * Augmentation (option augment, default true), as torchvision's RandomCrop(32, padding=4) +
 * RandomHorizontalFlip() before Normalize: pad 4 pixels of black (byte 0, i.e. -mean[c]/std[c] in
 * normalised space, NOT 0), take a random 32x32 crop, flip left-right with p = 0.5. Per image, in
 * this order: row offset rng.int(9), column offset rng.int(9), flip rng.float() < 0.5.
 */
import { existsSync, readFileSync, statSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve, basename } from 'node:path';
import type { Dataset, DatasetEntry, Split } from './types.js';
import { declareOptions, withDefaults } from '../../core/options.js';
import { Rng } from '../../core/rng.js';
import { UserError } from '../../core/errors.js';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXELS = PLANE * 3;

export interface CifarLayout {
  name: 'cifar10' | 'cifar100';
  title: string;
  dirName: string;
  trainFiles: string[];
  testFiles: string[];
  /** label bytes before the pixels */
  labelBytes: number;
  /** which label byte is the class, and the range of each label byte */
  labelIndex: number;
  labelRanges: number[];
  classes: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export const CIFAR10: CifarLayout = {
  name: 'cifar10', title: 'CIFAR-10', dirName: 'cifar-10-batches-bin',
  trainFiles: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  testFiles: ['test_batch.bin'],
  labelBytes: 1, labelIndex: 0, labelRanges: [10], classes: 10,
  mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616],
};

export const CIFAR100: CifarLayout = {
  name: 'cifar100', title: 'CIFAR-100', dirName: 'cifar-100-binary',
  trainFiles: ['train.bin'],
  testFiles: ['test.bin'],
  labelBytes: 2, labelIndex: 1, labelRanges: [20, 100], classes: 100,
  mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762],
};

export function recordSize(layout: CifarLayout): number {
  return layout.labelBytes + PIXELS;
}

/** The folder holding the layout's files, or a UserError that says how to get it. */
export function cifarDir(layout: CifarLayout, dataDir: string | undefined): string {
  const fetchHint = `sparsebench data fetch ${layout.name} --dir ${dataDir ?? 'DIR'}`;
  if (dataDir === undefined || dataDir === '') {
    throw new UserError(`dataset ${layout.name} needs --data-dir DIR holding ${layout.dirName}/ (download it with: ${fetchHint})`);
  }
  const inside = join(dataDir, layout.dirName);
  if (existsSync(inside) && statSync(inside).isDirectory()) return inside;
  if (basename(resolve(dataDir)) === layout.dirName || existsSync(join(dataDir, layout.trainFiles[0]))) {
    if (existsSync(dataDir) && statSync(dataDir).isDirectory()) return dataDir;
  }
  if (!existsSync(dataDir)) throw new UserError(`--data-dir ${dataDir}: no such directory (${layout.name} expects ${layout.dirName}/ in it; download it with: ${fetchHint})`);
  throw new UserError(`--data-dir ${dataDir}: no ${layout.dirName}/ folder in it (download it with: ${fetchHint})`);
}

/** Per channel, byte value -> normalised float. */
function normalisationTable(layout: CifarLayout): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - layout.mean[c]) / layout.std[c];
  return lut;
}

function fileSize(file: string, layout: CifarLayout): number {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch {
    throw new UserError(`${file}: missing (${layout.dirName}/ needs ${[...layout.trainFiles, ...layout.testFiles].join(', ')})`);
  }
  const rec = recordSize(layout);
  if (size % rec !== 0) {
    throw new UserError(`${file}: ${size} bytes is not a whole number of ${rec}-byte ${layout.title} records (truncated or corrupt file; re-download it)`);
  }
  return size;
}

/** Parse and normalise the given files (concatenated, in order) into one split. */
export function readCifarSplit(layout: CifarLayout, files: string[]): Split {
  const rec = recordSize(layout);
  const sizes = files.map((f) => fileSize(f, layout));
  const n = sizes.reduce((a, b) => a + b, 0) / rec;
  if (n === 0) throw new UserError(`${files.join(', ')}: no ${layout.title} records (empty file${files.length > 1 ? 's' : ''})`);
  const x = new Float32Array(n * PIXELS);
  const y = new Int32Array(n);
  const lut = normalisationTable(layout);
  let i = 0;
  for (let f = 0; f < files.length; f++) {
    const file = files[f];
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch (e) {
      throw new UserError(`${file}: cannot read (${(e as Error).message.split('\n')[0]})`);
    }
    if (buf.length !== sizes[f]) throw new UserError(`${file}: changed while being read`);
    const records = buf.length / rec;
    for (let r = 0; r < records; r++, i++) {
      const off = r * rec;
      for (let b = 0; b < layout.labelBytes; b++) {
        const v = buf[off + b];
        if (v >= layout.labelRanges[b]) {
          const what = layout.labelBytes > 1 ? (b === 0 ? 'coarse label' : 'fine label') : 'label';
          throw new UserError(`${file}: record ${r} has ${what} ${v}, outside 0..${layout.labelRanges[b] - 1} (corrupt file, or not ${layout.title})`);
        }
      }
      y[i] = buf[off + layout.labelIndex];
      const px = off + layout.labelBytes;
      const out = i * PIXELS;
      for (let p = 0; p < PLANE; p++) {
        const o = out + p * 3;
        x[o] = lut[buf[px + p]];
        x[o + 1] = lut[256 + buf[px + PLANE + p]];
        x[o + 2] = lut[512 + buf[px + 2 * PLANE + p]];
      }
    }
  }
  return { x, y, n };
}

/**
 * In-place pad + random crop + horizontal flip of `count` NHWC images of h x w x c, padding with
 * padValue[channel]. Draws per image: row offset int(2*pad+1), column offset int(2*pad+1), flip float()<0.5.
 */
export function padCropFlip(h: number, w: number, c: number, pad: number, padValue: ArrayLike<number>):
  (x: Float32Array, count: number, rng: Rng) => void {
  const size = h * w * c;
  const tmp = new Float32Array(size);
  return (x, count, rng) => {
    if (x.length < count * size) throw new RangeError(`augment: ${x.length} floats is fewer than ${count} images of ${h}x${w}x${c}`);
    for (let s = 0; s < count; s++) {
      const base = s * size;
      const dy = rng.int(2 * pad + 1) - pad;
      const dx = rng.int(2 * pad + 1) - pad;
      const flip = rng.float() < 0.5;
      if (dy === 0 && dx === 0 && !flip) continue;
      for (let i = 0; i < h; i++) {
        const si = i + dy;
        for (let j = 0; j < w; j++) {
          const sj = (flip ? w - 1 - j : j) + dx;
          const o = (i * w + j) * c;
          if (si >= 0 && si < h && sj >= 0 && sj < w) {
            const src = base + (si * w + sj) * c;
            for (let k = 0; k < c; k++) tmp[o + k] = x[src + k];
          } else {
            for (let k = 0; k < c; k++) tmp[o + k] = padValue[k];
          }
        }
      }
      x.set(tmp, base);
    }
  };
}

/** The layout's augmentation: pad 4 with black (normalised), random 32x32 crop, flip p = 0.5. */
export function cifarAugment(layout: CifarLayout): (x: Float32Array, count: number, rng: Rng) => void {
  const black = layout.mean.map((m, c) => Math.fround((0 - m) / layout.std[c]));
  return padCropFlip(SIDE, SIDE, 3, 4, black);
}

/** The parsed splits of the last CIFAR folder loaded (they are large: one kept per process). */
let cache: { key: string; train: Split; test: Split } | undefined;

export function loadCifar(layout: CifarLayout, dataDir: string | undefined, augment = true): Dataset {
  const dir = cifarDir(layout, dataDir);
  const trainFiles = layout.trainFiles.map((f) => join(dir, f));
  const testFiles = layout.testFiles.map((f) => join(dir, f));
  const signature = [...trainFiles, ...testFiles].map((f) => {
    try { const st = statSync(f); return `${st.size}:${st.mtimeMs}`; } catch { return 'missing'; }
  });
  const key = JSON.stringify([layout.name, resolve(dir), signature]);
  let splits = cache?.key === key ? cache : undefined;
  if (!splits) {
    cache = undefined; // let the previous one go before allocating the next
    const train = readCifarSplit(layout, trainFiles);
    const test = readCifarSplit(layout, testFiles);
    splits = cache = { key, train, test };
  }
  const data: Dataset = { name: layout.name, inputShape: [SIDE, SIDE, 3], classes: layout.classes, train: splits.train, test: splits.test };
  if (augment) data.augment = cifarAugment(layout);
  return data;
}

const cifarOptions = declareOptions({
  augment: { type: 'boolean', default: true, help: 'training augmentation: pad 4 + random 32x32 crop + horizontal flip (p=0.5)' },
});

function entry(layout: CifarLayout): DatasetEntry {
  return {
    name: layout.name,
    summary: `${layout.title} from the official binary files under --data-dir (${layout.dirName}/), 32x32x3 normalised; pad-4 crop + flip augmentation`,
    options: cifarOptions,
    shape: () => ({ inputShape: [SIDE, SIDE, 3], classes: layout.classes, samples: 60_000 }),
    load(options, ctx) {
      return loadCifar(layout, ctx.dataDir, withDefaults(cifarOptions, options).augment);
    },
    checkFiles(dataDir) {
      cifarDir(layout, dataDir);
    },
  };
}

export const cifar10Entry = entry(CIFAR10);
export const cifar100Entry = entry(CIFAR100);

/**
 * Write small CIFAR-format files with random pixels (for tests and --smoke runs without the real
 * data): dataDir/<layout dir>/… with `train` training records (spread over the training files)
 * and `test` test records; labels cycle through the classes. Returns the folder written.
 */
export function writeCifarFiles(dataDir: string, name: 'cifar10' | 'cifar100', counts: { train: number; test: number; seed?: number }): string {
  const layout = name === 'cifar10' ? CIFAR10 : CIFAR100;
  const dir = join(dataDir, layout.dirName);
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(counts.seed ?? 0, `cifar-files-${name}`);
  const rec = recordSize(layout);
  let label = 0;
  const write = (file: string, records: number) => {
    const buf = Buffer.alloc(records * rec);
    for (let r = 0; r < records; r++) {
      const off = r * rec;
      const fine = label++ % layout.classes;
      if (layout.labelBytes === 2) { buf[off] = fine % 20; buf[off + 1] = fine; } else buf[off] = fine;
      for (let p = 0; p < PIXELS; p++) buf[off + layout.labelBytes + p] = rng.uint32() & 255;
    }
    const tmp = `${join(dir, file)}.tmp-${process.pid}`;
    writeFileSync(tmp, buf);
    renameSync(tmp, join(dir, file));
  };
  const k = layout.trainFiles.length;
  layout.trainFiles.forEach((f, i) => write(f, Math.floor((counts.train * (i + 1)) / k) - Math.floor((counts.train * i) / k)));
  write(layout.testFiles[0], counts.test);
  return dir;
}
