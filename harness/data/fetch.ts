/**
 * Download, verify and unpack the official CIFAR binary archives (for `sparsebench data fetch`).
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
import { UserError } from '../errors.js';
import { CIFAR10, CIFAR100, recordSize, type CifarLayout } from './cifar.js';

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
    let res: Response;
    try {
      res = await fetch(info.url);
    } catch (e) {
      throw new UserError(`data fetch: cannot download ${info.url} (${firstLine(e)}; no network? ${manual})`);
    }
    if (!res.ok || !res.body) throw new UserError(`data fetch: ${info.url} answered HTTP ${res.status} ${res.statusText} (${manual})`);
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
      throw new UserError(`data fetch: download of ${info.url} broke off after ${done} bytes (${firstLine(e)})`);
    }
    out.end();
    await once(out, 'finish');
    if (total !== undefined && done !== total) throw new UserError(`data fetch: download of ${info.url} ended after ${done} of ${total} bytes`);
    const got = hash.digest('hex');
    if (info.md5 && got !== info.md5) throw new UserError(`data fetch: ${info.file} has MD5 ${got}, not the published ${info.md5} (corrupt download; try again)`);
    await installArchive(name, part, dir);
  } finally {
    rmSync(part, { force: true });
  }
}
