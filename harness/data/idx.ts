/**
 * The standard MNIST (60,000 training / 10,000 test digits) and Fashion-MNIST from their official
 * IDX files on disk (--data-dir DIR), raw or gzipped, under their official names:
 *   DIR/mnist/          train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
 *   DIR/fashion-mnist/  t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
 * DIR may also be that folder itself. `sparsebench data fetch mnist|fashion-mnist` downloads the
 * .gz files and checks their published MD5 sums.
 *
 * IDX: a big-endian header (two zero bytes, the type byte 0x08 = unsigned byte, the number of
 * dimensions), one uint32 per dimension, then the bytes. Images are n x 28 x 28, labels n.
 * Pixels come out as byte / 255 in [0, 1] (as the shipped `mnist` dataset), 28x28x1, in file order.
 * A missing, truncated or malformed file is a one-line UserError naming the file.
 */
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { basename, join, resolve } from 'node:path';
import type { Dataset, DatasetEntry, Split } from './types.js';
import { UserError } from '../../core/errors.js';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

export interface IdxLayout {
  name: 'mnist-full' | 'fashion-mnist';
  /** what `data fetch` calls it */
  fetchName: 'mnist' | 'fashion-mnist';
  title: string;
  dirName: string;
  /** where the official .gz files are published, and their MD5 sums */
  baseUrl: string;
  md5: Record<IdxFile, string>;
}

export type IdxFile = 'train-images-idx3-ubyte' | 'train-labels-idx1-ubyte' | 't10k-images-idx3-ubyte' | 't10k-labels-idx1-ubyte';
export const IDX_FILES: IdxFile[] = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

export const MNIST_FULL: IdxLayout = {
  name: 'mnist-full', fetchName: 'mnist', title: 'MNIST', dirName: 'mnist',
  baseUrl: 'https://ossci-datasets.s3.amazonaws.com/mnist/',
  md5: {
    'train-images-idx3-ubyte': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    'train-labels-idx1-ubyte': 'd53e105ee54ea40749a09fcbcd1e9432',
    't10k-images-idx3-ubyte': '9fb629c4189551a2d022fa330f9573f3',
    't10k-labels-idx1-ubyte': 'ec29112dd5afa0611ce80d1b7f02629c',
  },
};

export const FASHION_MNIST: IdxLayout = {
  name: 'fashion-mnist', fetchName: 'fashion-mnist', title: 'Fashion-MNIST', dirName: 'fashion-mnist',
  baseUrl: 'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
  md5: {
    'train-images-idx3-ubyte': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
    'train-labels-idx1-ubyte': '25c81989df183df01b3e8a0aad5dffbe',
    't10k-images-idx3-ubyte': 'bef4ecab320f06d8554ea6380940ec79',
    't10k-labels-idx1-ubyte': 'bb300cfdad3c16e7a12a480ee83cd310',
  },
};

export const IDX_LAYOUTS = [MNIST_FULL, FASHION_MNIST];

const fetchHint = (layout: IdxLayout, dataDir: string | undefined) => `sparsebench data fetch ${layout.fetchName} --dir ${dataDir || 'DIR'}`;

/** The folder holding the layout's files (DIR/<name>/ or DIR itself), or a UserError saying how to get them. */
export function idxDir(layout: IdxLayout, dataDir: string | undefined): string {
  if (!dataDir) throw new UserError(`dataset ${layout.name} needs --data-dir DIR holding ${layout.dirName}/ with the ${layout.title} IDX files (download them with: ${fetchHint(layout, dataDir)})`);
  if (!existsSync(dataDir)) throw new UserError(`--data-dir ${dataDir}: no such directory (${layout.name} expects ${layout.dirName}/ in it; download with: ${fetchHint(layout, dataDir)})`);
  const inside = join(dataDir, layout.dirName);
  if (existsSync(inside) && statSync(inside).isDirectory()) return inside;
  if (basename(resolve(dataDir)) === layout.dirName || IDX_FILES.some((f) => existsSync(join(dataDir, f)) || existsSync(join(dataDir, `${f}.gz`)))) return dataDir;
  throw new UserError(`--data-dir ${dataDir}: no ${layout.dirName}/ folder in it (download it with: ${fetchHint(layout, dataDir)})`);
}

/** The file of `name` in dir: raw, else gzipped; a UserError naming both when neither is there. */
export function idxPath(dir: string, name: IdxFile, layout: IdxLayout): string {
  for (const f of [name, `${name}.gz`]) if (existsSync(join(dir, f))) return join(dir, f);
  throw new UserError(`${join(dir, name)}[.gz]: missing (${layout.title} needs ${IDX_FILES.join(', ')}, raw or .gz; download them with: sparsebench data fetch ${layout.fetchName})`);
}

/** An IDX file of unsigned bytes: its dimensions and data; anything else is a UserError naming the file. */
export function readIdx(file: string, expectDims: number): { dims: number[]; data: Uint8Array } {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new UserError(`${file}: not a complete gzip file (${(e as Error).message}; truncated download? fetch it again)`);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08) {
    throw new UserError(`${file}: not an IDX file of unsigned bytes (its first bytes should be 00 00 08 ${expectDims.toString(16).padStart(2, '0')})`);
  }
  const ndims = buf[3];
  if (ndims !== expectDims) throw new UserError(`${file}: ${ndims} dimensions, expected ${expectDims} (${expectDims === 3 ? 'images' : 'labels'})`);
  const header = 4 + 4 * ndims;
  if (buf.length < header) throw new UserError(`${file}: truncated inside its header (${buf.length} bytes)`);
  const dims = Array.from({ length: ndims }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length - header !== size) {
    const what = buf.length - header < size ? 'truncated' : 'longer than its header says';
    throw new UserError(`${file}: ${what}: the header promises ${dims.join(' x ')} = ${size} bytes of data, the file holds ${buf.length - header}`);
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, size) };
}

/** One split from its image and label files. */
export function readIdxSplit(images: string, labels: string, classes = 10): Split {
  const img = readIdx(images, 3);
  const lab = readIdx(labels, 1);
  const [n, h, w] = img.dims;
  if (h !== SIDE || w !== SIDE) throw new UserError(`${images}: images are ${h}x${w}, expected ${SIDE}x${SIDE}`);
  if (lab.dims[0] !== n) throw new UserError(`${labels}: ${lab.dims[0]} labels for the ${n} images of ${images}`);
  if (n === 0) throw new UserError(`${images}: no images`);
  const x = new Float32Array(n * PIXELS);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i] / 255;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (lab.data[i] >= classes) throw new UserError(`${labels}: label ${lab.data[i]} of sample ${i} is outside 0..${classes - 1}`);
    y[i] = lab.data[i];
  }
  return { x, y, n };
}

/** The parsed splits of the last IDX folder loaded (kept per process). */
let cache: { key: string; train: Split; test: Split } | undefined;

export function loadIdx(layout: IdxLayout, dataDir: string | undefined): Dataset {
  const dir = idxDir(layout, dataDir);
  const files = IDX_FILES.map((f) => idxPath(dir, f, layout));
  const key = JSON.stringify([layout.name, files.map((f) => { const st = statSync(f); return `${resolve(f)}:${st.size}:${st.mtimeMs}`; })]);
  if (cache?.key !== key) {
    cache = undefined;
    cache = { key, train: readIdxSplit(files[0], files[1]), test: readIdxSplit(files[2], files[3]) };
  }
  return { name: layout.name, inputShape: [SIDE, SIDE, 1], classes: 10, train: cache.train, test: cache.test };
}

function entry(layout: IdxLayout, summary: string): DatasetEntry {
  return {
    name: layout.name,
    summary,
    options: {},
    shape: () => ({ inputShape: [SIDE, SIDE, 1], classes: 10, samples: 70_000 }),
    load: (_options, ctx) => loadIdx(layout, ctx.dataDir),
  };
}

export const mnistFullEntry = entry(MNIST_FULL, 'the standard MNIST, 60,000 training / 10,000 test digits, from the official IDX files under --data-dir (mnist/); 28x28x1 in [0,1]');
export const fashionMnistEntry = entry(FASHION_MNIST, 'Fashion-MNIST, 60,000 / 10,000 clothing images, from the official IDX files under --data-dir (fashion-mnist/); 28x28x1 in [0,1]');

/**
 * Write small IDX files under the official names (tests and --smoke without the real data):
 * dataDir/<layout dir>/, `train` and `test` samples with labels cycling through the classes and
 * pixels from a simple per-class pattern, gzipped when `gzip` is set. Returns the folder.
 */
export function writeIdxFiles(dataDir: string, layout: IdxLayout, counts: { train: number; test: number; gzip?: boolean }): string {
  const dir = join(dataDir, layout.dirName);
  mkdirSync(dir, { recursive: true });
  const idx = (dims: number[], data: Uint8Array) => {
    const head = Buffer.alloc(4 + 4 * dims.length);
    head[2] = 0x08;
    head[3] = dims.length;
    dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
    return Buffer.concat([head, data]);
  };
  const write = (name: IdxFile, content: Buffer) => {
    const file = join(dir, counts.gzip ? `${name}.gz` : name);
    writeFileSync(`${file}.tmp`, counts.gzip ? gzipSync(content) : content);
    renameSync(`${file}.tmp`, file);
  };
  for (const [prefix, n] of [['train', counts.train], ['t10k', counts.test]] as const) {
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    const images = new Uint8Array(n * PIXELS);
    // class c lights rows 2c..2c+3, with a little per-sample variation
    for (let i = 0; i < n; i++) for (let p = 0; p < PIXELS; p++) images[i * PIXELS + p] = Math.floor(p / SIDE / 2.5) === labels[i] ? 200 + ((i * 7 + p) % 55) : (i + p) % 17;
    write(`${prefix}-images-idx3-ubyte`, idx([n, SIDE, SIDE], images));
    write(`${prefix}-labels-idx1-ubyte`, idx([n], labels));
  }
  return dir;
}
