/**
 * Download and verify the official CIFAR binary archives (and unpack them) and the MNIST /
 * Fashion-MNIST IDX files, for `sparsebench data fetch`.
 * Never used by tests against the network.
 *
 * fetchDataset(name, dir): if dir/<cifar folder>/ already holds valid files it does nothing.
 * Otherwise it streams the archive to a temp file in dir while computing its MD5, checks the
 * published checksum, unpacks it with the system `tar` into a temp folder in dir and renames the
 * result into place, so dir/<cifar folder>/ is either absent, the old one, or complete.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { UserError } from '../../core/errors.js';
import { CIFAR10, CIFAR100, recordSize, type CifarLayout } from './cifar.js';
import { IDX_FILES, idxPath, readIdx, type IdxLayout } from './idx.js';

export interface ArchiveInfo { url: string; file: string; md5: string }

/** The official archives and their published MD5 sums. */
export const ARCHIVES: Record<'cifar10' | 'cifar100', ArchiveInfo> = {
  cifar10: { url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', file: 'cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530' },
  cifar100: { url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz', file: 'cifar-100-binary.tar.gz', md5: '03b5dce01913d631647c71ecec9e9cb8' },
};

function layoutOf(name: string): CifarLayout {
  if (name === 'cifar10') return CIFAR10;
  if (name === 'cifar100') return CIFAR100;
  throw new UserError(`data fetch: unknown dataset "${name}" (known: cifar10, cifar100)`);
}

function firstLine(e: unknown): string {
  const err = e as { message?: string; cause?: { message?: string; code?: string } };
  const cause = err?.cause?.code ?? err?.cause?.message;
  const msg = String(err?.message ?? e).split('\n')[0];
  return cause ? `${msg}: ${String(cause).split('\n')[0]}` : msg;
}

/** True when folder holds every file of the layout, each a whole, non-zero number of records. */
export function isInstalled(layout: CifarLayout, folder: string): boolean {
  const rec = recordSize(layout);
  return [...layout.trainFiles, ...layout.testFiles].every((f) => {
    try { const st = statSync(join(folder, f)); return st.isFile() && st.size > 0 && st.size % rec === 0; } catch { return false; }
  });
}

export async function md5File(file: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Verify a local archive (when expectedMd5 is given) and unpack its <cifar folder>/ into dir,
 * atomically replacing what was there. Also the path for an archive downloaded by hand.
 */
export async function installArchive(name: 'cifar10' | 'cifar100', archive: string, dir: string, expectedMd5?: string): Promise<string> {
  const layout = layoutOf(name);
  if (expectedMd5 !== undefined) {
    const got = await md5File(archive);
    if (got !== expectedMd5) throw new UserError(`${archive}: MD5 ${got} does not match the published ${expectedMd5} (corrupt or incomplete download)`);
  }
  mkdirSync(dir, { recursive: true });
  const tmp = mkdtempSync(join(dir, `.unpack-${name}-`));
  try {
    try {
      await promisify(execFile)('tar', ['-xzf', archive, '-C', tmp]);
    } catch (e) {
      const err = e as { code?: string; stderr?: string };
      if (err.code === 'ENOENT') throw new UserError(`data fetch: the system "tar" command was not found (unpack ${archive} into ${dir} by hand)`);
      throw new UserError(`${archive}: cannot unpack (${(err.stderr ?? firstLine(e)).trim().split('\n')[0]})`);
    }
    const unpacked = join(tmp, layout.dirName);
    if (!isInstalled(layout, unpacked)) throw new UserError(`${archive}: does not contain a complete ${layout.dirName}/ folder`);
    const target = join(dir, layout.dirName);
    if (existsSync(target)) {
      const old = join(tmp, `old-${layout.dirName}`);
      renameSync(target, old);
    }
    renameSync(unpacked, target);
    return target;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Streams `url` into the file `part` while computing its MD5, and checks it against `md5` (when
 * given). Every failure is a UserError naming the URL; `manual` says how to do it by hand.
 */
async function downloadVerified(url: string, part: string, expected: { name: string; md5?: string }, manual: string, onProgress?: (done: number, total?: number) => void): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new UserError(`data fetch: cannot download ${url} (${firstLine(e)}; no network? ${manual})`);
  }
  if (!res.ok || !res.body) throw new UserError(`data fetch: ${url} answered HTTP ${res.status} ${res.statusText} (${manual})`);
  const lengthHeader = Number(res.headers.get('content-length'));
  const total = Number.isFinite(lengthHeader) && lengthHeader > 0 ? lengthHeader : undefined;
  const hash = createHash('md5');
  const out = createWriteStream(part);
  let done = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      done += chunk.length;
      if (!out.write(chunk)) await once(out, 'drain');
      onProgress?.(done, total);
    }
  } catch (e) {
    out.destroy();
    throw new UserError(`data fetch: download of ${url} broke off after ${done} bytes (${firstLine(e)})`);
  }
  out.end();
  await once(out, 'finish');
  if (total !== undefined && done !== total) throw new UserError(`data fetch: download of ${url} ended after ${done} of ${total} bytes`);
  const got = hash.digest('hex');
  if (expected.md5 && got !== expected.md5) throw new UserError(`data fetch: ${expected.name} has MD5 ${got}, not the published ${expected.md5} (corrupt download; try again)`);
}

/**
 * Download the official archive of `name` into `dir`, verify its MD5 and unpack it there
 * (dir/cifar-10-batches-bin/ or dir/cifar-100-binary/). onProgress gets bytes done and, when
 * the server says, the total. `source` overrides the URL/checksum (mirrors, tests).
 */
export async function fetchDataset(
  name: 'cifar10' | 'cifar100', dir: string, onProgress?: (done: number, total?: number) => void,
  source?: Partial<Pick<ArchiveInfo, 'url' | 'md5'>>,
): Promise<void> {
  const layout = layoutOf(name);
  const info = { ...ARCHIVES[name], ...source };
  if (isInstalled(layout, join(dir, layout.dirName))) return;
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UserError(`--dir ${dir}: cannot create it (${firstLine(e)})`);
  }
  const part = join(dir, `.${info.file}.part-${process.pid}`);
  const manual = `download ${info.url} by hand and unpack it into ${dir}`;
  try {
    await downloadVerified(info.url, part, { name: info.file, md5: info.md5 }, manual, onProgress);
    await installArchive(name, part, dir);
  } finally {
    rmSync(part, { force: true });
  }
}

/** True when folder holds all four IDX files of the layout, each complete (raw or .gz). */
export function idxInstalled(layout: IdxLayout, folder: string): boolean {
  try {
    for (const f of IDX_FILES) readIdx(idxPath(folder, f, layout), f.includes('images') ? 3 : 1);
    return true;
  } catch {
    return false;
  }
}

/**
 * Download the four official .gz files of an IDX dataset into dir/<layout dir>/ under their
 * official names, each checked against its published MD5 before it takes its name (so the folder
 * never holds a partial file). `source.url` replaces the base URL (a mirror of the same files).
 */
export async function fetchIdx(layout: IdxLayout, dir: string, onProgress?: (file: string, done: number, total?: number) => void,
  source?: { url?: string }): Promise<string> {
  const target = join(dir, layout.dirName);
  try {
    mkdirSync(target, { recursive: true });
  } catch (e) {
    throw new UserError(`--dir ${dir}: cannot create ${target} (${firstLine(e)})`);
  }
  const base = source?.url ?? layout.baseUrl;
  for (const f of IDX_FILES) {
    const file = `${f}.gz`;
    const url = `${base.replace(/\/?$/, '/')}${file}`;
    const part = join(target, `.${file}.part-${process.pid}`);
    try {
      await downloadVerified(url, part, { name: file, md5: layout.md5[f] }, `download ${url} by hand into ${target}`, (d, t) => onProgress?.(file, d, t));
      readIdx(part, f.includes('images') ? 3 : 1); // a complete IDX file, not an error page
      renameSync(part, join(target, file));
    } finally {
      rmSync(part, { force: true });
    }
  }
  return target;
}
