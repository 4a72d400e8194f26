import type { Argv } from 'yargs';
import os from 'node:os';
import { benchKernels, DEFAULT_SIZES, DEFAULT_SPARSITIES, type KernelFormat } from '../../bench/kernels.js';
import { benchScaling } from '../../bench/scaling.js';
import { benchStep } from '../../bench/step.js';
import { models } from '../../models/index.js';
import type { OptionSpec } from '../../core/options.js';
import { UserError } from '../../core/errors.js';
import { getModel } from '../../models/index.js';
import { getMethod } from '../../methods/index.js';
import { backendOption, defineCommand, log, numberOption } from './common.js';

function numbers(list: string, flag: string): number[] {
  const xs = list.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x <= 0)) throw new UserError(`--${flag} ${list}: expected a comma-separated list of positive integers`);
  return xs;
}

function multipliers(list: string): number[] {
  const xs = list.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !(x > 0))) throw new UserError(`--widths ${list}: expected a comma-separated list of positive width multipliers`);
  return xs;
}

function sparsities(list: string): number[] {
  const xs = list.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !(x >= 0 && x < 1))) throw new UserError(`--sparsities ${list}: expected a comma-separated list of sparsities in [0, 1)`);
  return xs;
}

/** --smoke: the first two points of a size list, at 64 and 128. */
const smokeSizes = (xs: number[]) => xs.slice(0, 2).map((_, i) => 64 << i);

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
    .option('smoke', { type: 'boolean', default: false, describe: 'check the command in seconds: the first two sizes become 64 and 128, 2 repetitions (numbers mean nothing)' })
    .example('$0 bench kernels --sizes 2048,4096,8192,16384 --out kernels.csv', 'the paper\'s supplement figure'),
  handler: async (a) => {
    const formats: KernelFormat[] = [...(a.dense ? ['dense' as const] : []), 'csr', ...(a.copy ? ['csr-copy' as const] : [])];
    const sizes = numbers(a.sizes, 'sizes');
    await benchKernels({
      sizes: a.smoke ? smokeSizes(sizes) : sizes, sparsities: sparsities(a.sparsities), batch: a.smoke ? Math.min(16, a.batch) : a.batch, threads: a.threads,
      repeats: a.smoke ? 2 : a.repeats, out: a.out, formats, log,
    });
  },
});

const scaling = defineCommand({
  command: 'scaling',
  describe: 'step and update time and peak memory vs hidden width at constant active connections (fresh process per point)',
  builder: (y: Argv) => y
    .option('model', { type: 'string', default: 'mlp', describe: 'mlp (784 -> n -> n -> 10), or a conv/ViT model scaled by its width multiplier' })
    .option('methods', { type: 'string', default: 'gse,rigl,set,static,dense', describe: 'comma-separated methods' })
    .option('widths', { type: 'string', default: '1024,2048,4096,8192,16384', describe: 'comma-separated hidden widths n (mlp) or width multipliers (other models)' })
    .option('format', { choices: ['csr', 'masked'] as const, default: 'csr' as const, describe: 'storage format of the sparse methods' })
    .option('base-width', { type: 'number', default: 1024, describe: 'mlp: width at which --sparsity holds; wider models keep its active count (other models: multiplier 1)' })
    .option('sparsity', { type: 'number', default: 0.98, describe: 'sparsity at the base width' })
    .option('steps', numberOption('steps', 'training steps per point', { default: 30, integer: true, positive: true }))
    .option('delta', numberOption('delta', 'steps between prune-grow updates', { default: 5, integer: true, positive: true }))
    .option('max-dense-gib', { type: 'number', default: 4, describe: 'skip points needing a dense rows x cols matrix above this size' })
    .option('timeout', { type: 'number', default: 600, describe: 'seconds per point' })
    .option('out', { type: 'string', describe: 'CSV file' })
    .option('smoke', { type: 'boolean', default: false, describe: 'check the command quickly: every method at one small width (mlp 64, other models x0.125), 6 steps, an update every 2 (numbers mean nothing, no slopes)' })
    .options(backendOption)
    .example('$0 bench scaling --methods gse,rigl --widths 1024,4096,16384 --out scaling.csv', '')
    .example('$0 bench scaling --model vgg16 --methods gse,rigl --widths 1,2,4 --steps 6 --delta 2 --out vgg-scaling.csv', 'a paper model at constant active connections'),
  handler: (a) => {
    getModel(a.model);
    const [steps, delta] = a.smoke ? [6, 2] : [a.steps, a.delta];
    const updating = a.methods.split(',').filter((m) => getMethod(m).updates);
    if (updating.length && steps <= delta) {
      log(`note: --steps ${steps} is not more than --delta ${delta}: no prune-grow update runs, so ${updating.join(', ')} get no update time (shown as NaN in the slopes); use --steps > --delta`);
    }
    const given = a.model === 'mlp' ? numbers(a.widths, 'widths') : multipliers(a.widths);
    // --smoke: one small point per method (an MLP of width 64, another model at 1/8 of its width)
    const widths = a.smoke ? [a.model === 'mlp' ? 64 : 0.125] : given;
    benchScaling({
      model: a.model, methods: a.methods.split(','), widths, format: a.format, baseWidth: a.smoke && a.model === 'mlp' ? 64 : a.baseWidth,
      sparsity: a.sparsity, steps, delta, backend: a.backend, maxDenseGiB: a.maxDenseGib,
      timeoutS: a.timeout, out: a.out, log,
    });
    if (a.out) log(`wrote ${a.out}`);
  },
});

/** Every model option (the first declaration of each key) as a flag; integer lists are comma-separated. */
function modelFlags(): Record<string, { type: 'number' | 'string' | 'boolean'; describe: string; spec: OptionSpec }> {
  const out: Record<string, { type: 'number' | 'string' | 'boolean'; describe: string; spec: OptionSpec }> = {};
  for (const entry of Object.values(models)) {
    for (const [key, spec] of Object.entries(entry.options)) {
      const owners = Object.values(models).filter((m) => Object.prototype.hasOwnProperty.call(m.options, key)).map((m) => m.name);
      out[key] ??= {
        type: spec.type === 'integer' || spec.type === 'number' ? 'number' : spec.type === 'boolean' ? 'boolean' : 'string',
        describe: `model option (${owners.join(', ')}): ${spec.help}${spec.type === 'integer[]' ? ', comma-separated' : ''}`,
        spec,
      };
    }
  }
  return out;
}

function modelOptionValues(a: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(modelFlags())) {
    const v = a[key];
    if (v === undefined) continue;
    out[key] = f.spec.type === 'integer[]' ? String(v).split(',').map((x) => Number(x.trim())) : v;
  }
  return out;
}

const step = defineCommand({
  command: 'step',
  describe: 'one training step (forward, backward, SGD) of a model as a run builds it, on synthetic input of the dataset\'s shape: wall and CPU time, peak memory, --profile op by op',
  builder: (y: Argv) => {
    const flags = modelFlags();
    let b = y
      .option('model', { type: 'string', demandOption: true, describe: 'model, or a comma-separated list (one row each, fresh process per row)' })
      .option('dataset', { type: 'string', demandOption: true, describe: 'dataset whose input shape and classes are used (nothing is loaded)' })
      .option('method', { type: 'string', default: 'static', describe: 'method: its initial density and initialisation' })
      .option('sparsity', { type: 'number', default: 0.9, describe: 'target sparsity' })
      .option('format', { type: 'string', default: 'masked', describe: 'storage format (masked, csr), or a comma-separated list' })
      .option('batch', { type: 'number', default: 128, describe: 'batch size' })
      .option('steps', { type: 'number', default: 10, describe: 'timed steps after one warm-up step (median reported)' })
      .option('seed', { type: 'number', default: 0, describe: 'run seed: model init and synthetic data' })
      .option('threads', { type: 'number', default: Math.min(2, os.availableParallelism()), describe: 'threads of our sparse kernels' })
      .option('profile', { type: 'boolean', default: false, describe: 'also profile as many steps again op by op (tf.profile); CSV beside --out (<out>-profile.csv)' })
      .option('top', { type: 'number', default: 15, describe: 'profile rows printed' })
      .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a config field: path=value (e.g. method.sampler=grabo)' })
      .option('out', { type: 'string', describe: 'CSV file' })
      .option('point-json', { type: 'string', hidden: true, describe: 'internal: measure one point and write it here as JSON' })
      .options(backendOption);
    for (const [key, f] of Object.entries(flags)) b = b.option(key, { type: f.type, describe: f.describe });
    return b
      .group(Object.keys(flags), 'Model options:')
      .example('$0 bench step --model vgg16 --dataset cifar10 --sparsity 0.9 --format masked --steps 3 --profile', 'one VGG-16 step at batch 128, op by op')
      .example('$0 bench step --model mlp --dataset mnist --format masked,csr --width 4 --out step.csv', 'both formats, one fresh process each');
  },
  handler: async (a) => {
    // a repeated flag arrives as an array: taken as one comma list
    const one = (v: string | string[]) => [v].flat().join(',');
    const list = (v: string | string[]) => one(v).split(',').map((x) => x.trim());
    await benchStep({
      models: list(a.model), dataset: one(a.dataset), sparsity: a.sparsity, formats: list(a.format), method: one(a.method),
      batch: a.batch, steps: a.steps, seed: a.seed, modelOptions: modelOptionValues(a as Record<string, unknown>), sets: a.set,
      backend: a.backend, threads: a.threads, profile: a.profile, top: a.top, out: a.out, log,
    }, a.pointJson);
  },
});

export const benchCommand = defineCommand({
  command: 'bench',
  describe: 'benchmarks: scaling (width), kernels (sparse x dense multiply) or step (one training step of a model)',
  builder: (y: Argv) => y.command(kernels).command(scaling).command(step).demandCommand(1).example('$0 bench scaling --out scaling.csv', ''),
  handler: () => {},
});
