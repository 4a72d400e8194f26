import path from 'node:path';
import type { Argv } from 'yargs';
import { collectResults } from '../store.js';
import { log, defineCommand } from './common.js';

function builder(y: Argv) {
  return y.positional('out', { type: 'string', demandOption: true, describe: 'a sweep output folder' })
    .example('$0 collect runs/quickstart', 'rebuild runs/quickstart/results.csv');
}

export const collectCommand = defineCommand({
  command: 'collect <out>',
  describe: 'rebuild <out>/results.csv from the run folders (names every folder it cannot read, and then exits 1)',
  builder,
  handler: (a) => {
    const { rows, unreadable } = collectResults(a.out)!;
    for (const problem of unreadable) process.stderr.write(`sparsebench: ${problem}\n`);
    log(`${rows} runs in ${path.join(a.out, 'results.csv')}${unreadable.length ? `; ${unreadable.length} run folder(s) could not be read and are not in it (listed above)` : ''}`);
    if (unreadable.length) process.exitCode = 1;
  },
});
