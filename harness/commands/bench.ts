import type { Argv } from 'yargs';
import os from 'node:os';
import { benchKernels, DEFAULT_SIZES, DEFAULT_SPARSITIES, type KernelFormat } from '../../bench/kernels.js';
import { benchScaling } from '../../bench/scaling.js';
import { UserError } from '../errors.js';
import { backendOption, defineCommand, log } from './common.js';

function numbers(list: string, flag: string): number[] {
  const xs = list.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x <= 0)) throw new UserError(`--${flag} ${list}: expected a comma-separated list of positive integers`);
  return xs;
}

function sparsities(list: string): number[] {
  const xs = list.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !(x >= 0 && x < 1))) throw new UserError(`--sparsities ${list}: expected a comma-separated list of sparsities in [0, 1)`);
  return xs;
}

const kernels = defineCommand({
  command: 'kernels',
  describe: 'sparse x dense multiply time vs sparsity: dense (tfjs wasm matMul) and csr (our SIMD kernel), GFLOP/s',
  builder: (y: Argv) => y
    .option('sizes', { type: 'string', default: DEFAULT_SIZES.join(','), describe: 'matrix sizes n (n x n weights)' })
    .option('sparsities', { type: 'string', default: DEFAULT_SPARSITIES.join(','), describe: 'sparsities' })
    .option('batch', { type: 'number', default: 128, describe: 'batch size (columns of the dense operand)' })
    .option('threads', { type: 'number', default: Math.min(2, os.availableParallelism()), describe: 'kernel threads' })
    .option('repeats', { type: 'number', default: 20, describe: 'timed repetitions per point (median reported)' })
    .option('dense', { type: 'boolean', default: true, describe: 'also time dense matMul (--no-dense to skip)' })
    .option('copy', { type: 'boolean', default: false, describe: 'also time csr including the copy into wasm memory' })
    .option('out', { type: 'string', describe: 'CSV file (a .json with the kernel info beside it)' })
    .example('$0 bench kernels --sizes 2048,4096,8192,16384 --out kernels.csv', 'the paper\'s supplement figure'),
  handler: async (a) => {
    const formats: KernelFormat[] = [...(a.dense ? ['dense' as const] : []), 'csr', ...(a.copy ? ['csr-copy' as const] : [])];
    await benchKernels({
      sizes: numbers(a.sizes, 'sizes'), sparsities: sparsities(a.sparsities), batch: a.batch, threads: a.threads,
      repeats: a.repeats, out: a.out, formats, log,
    });
  },
});

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
  builder: (y: Argv) => y.command(kernels).command(scaling).demandCommand(1).example('$0 bench scaling --out scaling.csv', ''),
  handler: () => {},
});
