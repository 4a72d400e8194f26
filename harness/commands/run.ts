import path from 'node:path';
import type { Argv } from 'yargs';
import { models } from '../../models/index.js';
import { selectBackend } from '../backend.js';
import { loadSweep } from '../config.js';
import { runSweep } from '../sweep.js';
import { backendOption, log, defineCommand } from './common.js';

function builder(y: Argv) {
  return y
    .positional('config', { type: 'string', demandOption: true, describe: 'config JSON file' })
    .option('out', { type: 'string', describe: 'output folder (default runs/<config name>, or runs/<name>-smoke with --smoke)' })
    .option('smoke', { type: 'boolean', default: false, describe: 'every grid cell for a few steps on a small slice of the data' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value (JSON or string)' })
    .option('data-dir', { type: 'string', describe: 'folder holding dataset files (CIFAR binaries)' })
    .options(backendOption)
    .example('$0 run configs/quickstart.json', 'the quickstart sweep on MNIST')
    .example('$0 run configs/quickstart.json --smoke', 'check every cell in seconds')
    .example('$0 run configs/quickstart.json --set training.epochs=5 --set grid.seed=[0,1]', 'override fields');
}

export const runCommand = defineCommand({
  command: 'run <config>',
  describe: "run every cell of a config's grid (skips runs already done)",
  builder,
  handler: async (a) => {
    const sweep = loadSweep(a.config, { sets: a.set, smoke: a.smoke });
    const out = a.out ?? path.join('runs', a.smoke ? `${sweep.name}-smoke` : sweep.name);
    const kernels = [...new Set(sweep.specs.flatMap((s) => models[s.model.name].kernels))];
    const backend = await selectBackend(a.backend, kernels);
    log(`sweep ${sweep.name}: ${sweep.specs.length} runs, backend ${backend}, output ${out}`);
    const o = await runSweep(sweep, { out, backend, dataDir: a['data-dir'], log });
    log(`finished: ${o.done} done, ${o.diverged} diverged, ${o.failed} failed, ${o.skipped} skipped; results in ${path.join(out, 'results.csv')}`);
    if (o.failed > 0) process.exitCode = 1;
  },
});
