import type { Argv } from 'yargs';
import { benchScaling } from '../../bench/scaling.js';
import { UserError } from '../errors.js';
import { backendOption, defineCommand, log } from './common.js';

function numbers(list: string, flag: string): number[] {
  const xs = list.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x <= 0)) throw new UserError(`--${flag} ${list}: expected a comma-separated list of positive integers`);
  return xs;
}

const scaling = defineCommand({
  command: 'scaling',
  describe: 'step and update time and peak memory vs hidden width at constant active connections (fresh process per point)',
  builder: (y: Argv) => y
    .option('methods', { type: 'string', default: 'gse,rigl,set,static,dense', describe: 'comma-separated methods' })
    .option('widths', { type: 'string', default: '1024,2048,4096,8192,16384', describe: 'comma-separated hidden widths n' })
    .option('format', { choices: ['csr', 'masked'] as const, default: 'csr' as const, describe: 'storage format of the sparse methods' })
    .option('base-width', { type: 'number', default: 1024, describe: 'width at which --sparsity holds; wider models keep its active count' })
    .option('sparsity', { type: 'number', default: 0.98, describe: 'sparsity at the base width' })
    .option('steps', { type: 'number', default: 30, describe: 'training steps per point' })
    .option('delta', { type: 'number', default: 5, describe: 'steps between prune-grow updates' })
    .option('max-dense-gib', { type: 'number', default: 4, describe: 'skip points needing a dense rows x cols matrix above this size' })
    .option('timeout', { type: 'number', default: 600, describe: 'seconds per point' })
    .option('out', { type: 'string', describe: 'CSV file' })
    .options(backendOption)
    .example('$0 bench scaling --methods gse,rigl --widths 1024,4096,16384 --out scaling.csv', ''),
  handler: (a) => {
    benchScaling({
      methods: a.methods.split(','), widths: numbers(a.widths, 'widths'), format: a.format, baseWidth: a.baseWidth,
      sparsity: a.sparsity, steps: a.steps, delta: a.delta, backend: a.backend, maxDenseGiB: a.maxDenseGib,
      timeoutS: a.timeout, out: a.out, log,
    });
    if (a.out) log(`wrote ${a.out}`);
  },
});

export const benchCommand = defineCommand({
  command: 'bench',
  describe: 'benchmarks: scaling (width) or kernels (sparse x dense multiply)',
  builder: (y: Argv) => y.command(scaling).demandCommand(1).example('$0 bench scaling --out scaling.csv', ''),
  handler: () => {},
});
