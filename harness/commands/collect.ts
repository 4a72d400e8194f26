import path from 'node:path';
import type { Argv } from 'yargs';
import { collectResults } from '../store.js';
import { log, defineCommand } from './common.js';

function builder(y: Argv) {
  return y.positional('out', { type: 'string', demandOption: true }).example('$0 collect runs/quickstart', '');
}

export const collectCommand = defineCommand({
  command: 'collect <out>',
  describe: 'rebuild <out>/results.csv from the run folders',
  builder,
  handler: (a) => log(`${collectResults(a.out)} runs in ${path.join(a.out, 'results.csv')}`),
});
