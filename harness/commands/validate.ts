import os from 'node:os';
import type { Argv } from 'yargs';
import { models } from '../../models/index.js';
import { selectBackend } from '../backend.js';
import { loadSweepWithPlugins } from '../plugins.js';
import { checkSweepMemory, estimateRun, gb, memoryLimit } from '../memory.js';
import { backendOption, log, defineCommand, numberOption, pluginOption } from './common.js';

function builder(y: Argv) {
  return y
    .positional('config', { type: 'string', demandOption: true })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value' })
    .option('jobs', numberOption('jobs', 'worker processes the sweep will run with (memory check)', { alias: 'j', default: os.availableParallelism(), defaultDescription: 'number of cores', integer: true, positive: true }))
    .option('memory-limit', numberOption('memory-limit', 'GB one run may use (default: the machine\'s memory / --jobs)', { positive: true }))
    .options(backendOption)
    .options(pluginOption)
    .example('$0 validate configs/mnist-lenet300.json', 'check a config, count its runs and estimate their peak memory');
}

export const validateCommand = defineCommand({
  command: 'validate <config>',
  describe: 'check a config, show the runs it expands to and whether they fit in memory',
  builder,
  handler: async (a) => {
    const sweep = await loadSweepWithPlugins(a.config, { sets: a.set, plugin: a.plugin });
    const backend = await selectBackend(a.backend, [...new Set(sweep.specs.flatMap((s) => models[s.model.name].kernels))]);
    const limit = memoryLimit({ jobs: Math.min(a.jobs, sweep.specs.length), backend, limitGb: a['memory-limit'] });
    checkSweepMemory(sweep.specs, limit, a.config);
    const peak = Math.max(...sweep.specs.map((s) => estimateRun(s).bytes));
    log(`${a.config}: valid, ${sweep.specs.length} runs; peak memory up to about ${gb(peak)} per run (estimate; limit ${gb(limit.bytes)}: ${limit.source})`);
    const count = new Map<string, number>();
    for (const s of sweep.specs) count.set(s.method.name, (count.get(s.method.name) ?? 0) + 1);
    for (const [m, n] of count) log(`  ${m}: ${n}`);
  },
});
