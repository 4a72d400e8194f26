import type { Argv } from 'yargs';
import { loadSweep } from '../config.js';
import { log, defineCommand } from './common.js';

function builder(y: Argv) {
  return y
    .positional('config', { type: 'string', demandOption: true })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value' })
    .example('$0 validate configs/mnist-lenet300.json', 'check a config and count its runs');
}

export const validateCommand = defineCommand({
  command: 'validate <config>',
  describe: 'check a config and show the runs it expands to',
  builder,
  handler: (a) => {
    const sweep = loadSweep(a.config, { sets: a.set });
    log(`${a.config}: valid, ${sweep.specs.length} runs`);
    const count = new Map<string, number>();
    for (const s of sweep.specs) count.set(s.method.name, (count.get(s.method.name) ?? 0) + 1);
    for (const [m, n] of count) log(`  ${m}: ${n}`);
  },
});
