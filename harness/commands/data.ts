import path from 'node:path';
import type { Argv } from 'yargs';
import { CIFAR10, CIFAR100 } from '../data/cifar.js';
import { ARCHIVES, fetchDataset, fetchIdx, idxInstalled, isInstalled } from '../data/fetch.js';
import { IDX_FILES, IDX_LAYOUTS } from '../data/idx.js';
import { UserError } from '../../core/errors.js';
import { log, defineCommand } from './common.js';

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/**
 * Download progress: on a TTY a bar redrawn in place (at most 10 times a second); otherwise a
 * plain line every 10% (or every 16 MiB when the size is unknown), so logs stay readable.
 */
export function progressReporter(tty: { write(s: string): void; columns(): number } | null, line: (s: string) => void, label: string) {
  const started = Date.now();
  let lastDraw = 0;
  let lastStep = -1;
  let drew = false;
  return {
    update(done: number, total?: number): void {
      const now = Date.now();
      const rate = done / Math.max(0.001, (now - started) / 1000);
      if (tty) {
        if (now - lastDraw < 100 && done !== total) return;
        lastDraw = now;
        const tail = total ? ` ${Math.floor((100 * done) / total)}% ${mb(done)}/${mb(total)} MiB ${mb(rate)} MiB/s` : ` ${mb(done)} MiB ${mb(rate)} MiB/s`;
        const room = Math.max(10, Math.min(40, tty.columns() - label.length - tail.length - 4));
        const filled = total ? Math.round((room * done) / total) : 0;
        const bar = total ? `[${'#'.repeat(filled)}${'.'.repeat(room - filled)}]` : '';
        tty.write(`\r${label} ${bar}${tail}\x1b[K`);
        drew = true;
        return;
      }
      const step = total ? Math.floor((10 * done) / total) : Math.floor(done / (16 * 2 ** 20));
      if (step === lastStep) return;
      lastStep = step;
      line(total ? `${label}: ${step * 10}% (${mb(done)} of ${mb(total)} MiB)` : `${label}: ${mb(done)} MiB`);
    },
    /** ends the bar's line (TTY) */
    finish(): void {
      if (tty && drew) tty.write('\n');
    },
  };
}

const FETCHABLE = ['cifar10', 'cifar100', ...IDX_LAYOUTS.map((l) => l.fetchName)];

async function fetchHandler(a: { dataset: string; dir: string; url?: string; md5?: string }): Promise<void> {
  if (!FETCHABLE.includes(a.dataset)) throw new UserError(`data fetch: unknown dataset "${a.dataset}" (known: ${FETCHABLE.join(', ')})`);
  const tty = process.stdout.isTTY ? { write: (s: string) => { process.stdout.write(s); }, columns: () => process.stdout.columns || 80 } : null;
  const idx = IDX_LAYOUTS.find((l) => l.fetchName === a.dataset);
  if (idx) {
    if (a.md5) throw new UserError(`data fetch ${a.dataset}: --md5 is for a CIFAR archive; the four ${idx.title} files are checked against their published MD5 sums`);
    const target = path.join(a.dir, idx.dirName);
    if (idxInstalled(idx, target)) {
      log(`${idx.name}: already in ${target} (use --data-dir ${a.dir})`);
      return;
    }
    log(`${idx.name}: downloading ${IDX_FILES.length} files from ${a.url ?? idx.baseUrl}`);
    const bars = new Map<string, ReturnType<typeof progressReporter>>();
    try {
      await fetchIdx(idx, a.dir, (file, done, total) => {
        if (!bars.has(file)) { [...bars.values()].forEach((b) => b.finish()); bars.set(file, progressReporter(tty, log, file)); }
        bars.get(file)!.update(done, total);
      }, a.url ? { url: a.url } : undefined);
    } finally {
      [...bars.values()].pop()?.finish();
    }
    log(`${idx.name}: checksums ok, ${IDX_FILES.map((f) => `${f}.gz`).join(', ')} in ${target} (use --data-dir ${a.dir})`);
    return;
  }
  const name = a.dataset as 'cifar10' | 'cifar100';
  const layout = name === 'cifar10' ? CIFAR10 : CIFAR100;
  const target = path.join(a.dir, layout.dirName);
  if (isInstalled(layout, target)) {
    log(`${name}: already in ${target} (use --data-dir ${a.dir})`);
    return;
  }
  const url = a.url ?? ARCHIVES[name].url;
  log(`${name}: downloading ${url}`);
  const progress = progressReporter(tty, log, ARCHIVES[name].file);
  try {
    await fetchDataset(name, a.dir, (done, total) => progress.update(done, total), { ...(a.url ? { url: a.url } : {}), ...(a.md5 ? { md5: a.md5 } : {}) });
  } finally {
    progress.finish();
  }
  log(`${name}: checksum ok, unpacked into ${target} (use --data-dir ${a.dir})`);
}

function builder(y: Argv) {
  return y
    .command('fetch <dataset>', 'download the official files (progress bar) and verify their published MD5 sums: the CIFAR binary archive (unpacked), or the four MNIST / Fashion-MNIST IDX files', (f: Argv) => f
      .positional('dataset', { type: 'string', demandOption: true, describe: FETCHABLE.join(', ') })
      .option('dir', { type: 'string', default: 'data', describe: 'folder to unpack into (then run with --data-dir DIR)' })
      .option('url', { type: 'string', describe: 'a mirror of the official files (MNIST, Fashion-MNIST: the URL of their folder)' })
      .option('md5', { type: 'string', describe: 'expected MD5 of a CIFAR archive (default: the published one)' })
      .example('$0 data fetch cifar10 --dir data', 'data/cifar-10-batches-bin/, then: sparsebench run ... --data-dir data')
      .example('$0 data fetch mnist --dir data', 'data/mnist/ for dataset mnist-full (fashion-mnist: data/fashion-mnist/)'),
    (a) => fetchHandler(a as unknown as { dataset: string; dir: string; url?: string; md5?: string }))
    .demandCommand(1, 'name a data command: fetch');
}

export const dataCommand = defineCommand({
  command: 'data',
  describe: 'dataset files: data fetch cifar10|cifar100|mnist|fashion-mnist [--dir DIR]',
  builder,
  handler: () => {},
});
