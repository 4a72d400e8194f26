import path from 'node:path';
import type { Argv } from 'yargs';
import { CIFAR10, CIFAR100 } from '../data/cifar.js';
import { ARCHIVES, fetchDataset, isInstalled } from '../data/fetch.js';
import { UserError } from '../errors.js';
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

async function fetchHandler(a: { dataset: string; dir: string; url?: string; md5?: string }): Promise<void> {
  if (a.dataset !== 'cifar10' && a.dataset !== 'cifar100') throw new UserError(`data fetch: unknown dataset "${a.dataset}" (known: cifar10, cifar100)`);
  const layout = a.dataset === 'cifar10' ? CIFAR10 : CIFAR100;
  const target = path.join(a.dir, layout.dirName);
  if (isInstalled(layout, target)) {
    log(`${a.dataset}: already in ${target} (use --data-dir ${a.dir})`);
    return;
  }
  const url = a.url ?? ARCHIVES[a.dataset].url;
  log(`${a.dataset}: downloading ${url}`);
  const tty = process.stdout.isTTY ? { write: (s: string) => { process.stdout.write(s); }, columns: () => process.stdout.columns || 80 } : null;
  const progress = progressReporter(tty, log, ARCHIVES[a.dataset].file);
  try {
    await fetchDataset(a.dataset, a.dir, (done, total) => progress.update(done, total), { ...(a.url ? { url: a.url } : {}), ...(a.md5 ? { md5: a.md5 } : {}) });
  } finally {
    progress.finish();
  }
  log(`${a.dataset}: checksum ok, unpacked into ${target} (use --data-dir ${a.dir})`);
}

function builder(y: Argv) {
  return y
    .command('fetch <dataset>', 'download the official CIFAR binary archive (progress bar), verify its published MD5 and unpack it', (f: Argv) => f
      .positional('dataset', { type: 'string', demandOption: true, describe: 'cifar10 or cifar100' })
      .option('dir', { type: 'string', default: 'data', describe: 'folder to unpack into (then run with --data-dir DIR)' })
      .option('url', { type: 'string', describe: 'download from this mirror instead of the official URL (the same archive)' })
      .option('md5', { type: 'string', describe: 'expected MD5 of the archive (default: the published one)' })
      .example('$0 data fetch cifar10 --dir data', 'data/cifar-10-batches-bin/, then: $0 run ... --data-dir data'),
    (a) => fetchHandler(a as unknown as { dataset: string; dir: string; url?: string; md5?: string }))
    .demandCommand(1, 'name a data command: fetch');
}

export const dataCommand = defineCommand({
  command: 'data',
  describe: 'dataset files: data fetch cifar10|cifar100 [--dir DIR]',
  builder,
  handler: () => {},
});
