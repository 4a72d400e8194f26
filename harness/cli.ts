import os from 'node:os';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { methods } from '../methods/index.js';
import { models } from '../models/index.js';
import { datasets } from './data/index.js';
import { backendChoices, selectBackend, type BackendChoice } from './backend.js';
import { configSchema, loadSweep } from './config.js';
import { UserError } from './errors.js';
import { describeOptions, type OptionSpecs } from './options.js';
import { packageVersion } from './provenance.js';
import { sparsityOptions, trainingOptions, updateOptions } from './spec.js';
import { collectResults } from './store.js';
import { runSweep } from './sweep.js';

const log = (line: string): void => { process.stdout.write(line + '\n'); };

function listText(): string {
  const lines: string[] = [];
  const section = (title: string, entries: { name: string; summary: string; options: OptionSpecs }[], tag?: (name: string) => string) => {
    lines.push(`${title}:`);
    for (const e of entries) {
      lines.push(`  ${e.name}${tag ? tag(e.name) : ''} — ${e.summary}`);
      lines.push(...describeOptions(e.options));
    }
    lines.push('');
  };
  section('methods', Object.values(methods), (n) => (methods[n].alwaysSparse ? ' [always sparse]' : methods[n].sparse ? '' : ' [dense]'));
  section('models', Object.values(models));
  section('datasets', Object.values(datasets) as unknown as { name: string; summary: string; options: OptionSpecs }[]);
  lines.push('samplers (gse option "sampler"): uniform, grabo, graest');
  lines.push('formats (sparsity.format): masked, csr');
  lines.push('');
  lines.push('config groups:');
  for (const [g, specs] of Object.entries({ training: trainingOptions, sparsity: sparsityOptions, update: updateOptions })) {
    lines.push(`  ${g}`);
    lines.push(...describeOptions(specs));
  }
  return lines.join('\n');
}

const backendOption = {
  backend: { choices: backendChoices, default: 'auto' as BackendChoice, describe: 'tfjs backend: auto = tensorflow if installed, else the fastest with every kernel the model needs' },
};

async function modelKernels(specModels: string[]): Promise<string[]> {
  return [...new Set(specModels.flatMap((m) => models[m]?.kernels ?? []))];
}

export function buildCli(argv: string[]): Argv {
  return yargs(argv)
    .scriptName('sparsebench')
    .usage('$0 <command> [options]')
    .command('run <config>', 'run every cell of a config\'s grid (skips runs already done)', (y) => y
      .positional('config', { type: 'string', demandOption: true, describe: 'config JSON file' })
      .option('out', { type: 'string', describe: 'output folder (default runs/<config name>, or runs/<name>-smoke with --smoke)' })
      .option('smoke', { type: 'boolean', default: false, describe: 'every grid cell for a few steps on a small slice of the data' })
      .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value (JSON or string)' })
      .option('data-dir', { type: 'string', describe: 'folder holding dataset files (CIFAR binaries)' })
      .options(backendOption)
      .example('$0 run configs/quickstart.json', 'the quickstart sweep on MNIST')
      .example('$0 run configs/quickstart.json --smoke', 'check every cell in seconds')
      .example('$0 run configs/quickstart.json --set training.epochs=5 --set grid.seed=[0,1]', 'override fields'),
    async (a) => {
      const sweep = loadSweep(a.config, { sets: a.set, smoke: a.smoke });
      const out = a.out ?? path.join('runs', a.smoke ? `${sweep.name}-smoke` : sweep.name);
      const backend = await selectBackend(a.backend, await modelKernels(sweep.specs.map((s) => s.model.name)));
      log(`sweep ${sweep.name}: ${sweep.specs.length} runs, backend ${backend}, output ${out}`);
      const o = await runSweep(sweep, { out, backend, dataDir: a['data-dir'], log });
      log(`finished: ${o.done} done, ${o.diverged} diverged, ${o.failed} failed, ${o.skipped} skipped; results in ${path.join(out, 'results.csv')}`);
      if (o.failed > 0) process.exitCode = 1;
    })
    .command('validate <config>', 'check a config and show the runs it expands to', (y) => y
      .positional('config', { type: 'string', demandOption: true })
      .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value' })
      .example('$0 validate configs/mnist-lenet300.json', 'check a config'),
    (a) => {
      const sweep = loadSweep(a.config, { sets: a.set });
      log(`${a.config}: valid, ${sweep.specs.length} runs`);
      const count = new Map<string, number>();
      for (const s of sweep.specs) count.set(s.method.name, (count.get(s.method.name) ?? 0) + 1);
      for (const [m, n] of count) log(`  ${m}: ${n}`);
    })
    .command('list', 'methods with their options and defaults, samplers, models, datasets', (y) => y
      .example('$0 list', ''),
    () => log(listText()))
    .command('info', 'backend, versions, cores, memory', (y) => y.options(backendOption).example('$0 info', ''), async (a) => {
      const backend = await selectBackend(a.backend);
      log(`sparsebench ${packageVersion()}`);
      log(`backend: ${backend} (tfjs ${tf.version.tfjs})`);
      log(`node: ${process.version}`);
      log(`cpu: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores`);
      log(`memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB total, ${(os.freemem() / 2 ** 30).toFixed(1)} GiB free`);
    })
    .command('collect <out>', 'rebuild <out>/results.csv from the run folders', (y) => y
      .positional('out', { type: 'string', demandOption: true })
      .example('$0 collect runs/quickstart', ''),
    (a) => log(`${collectResults(a.out)} runs in ${path.join(a.out, 'results.csv')}`))
    .command('schema [file]', 'print (or write) the config JSON Schema', (y) => y
      .positional('file', { type: 'string', describe: 'write here instead of printing' })
      .example('$0 schema configs/schema.json', ''),
    (a) => {
      const text = JSON.stringify(configSchema(), null, 2) + '\n';
      if (a.file) writeFileSync(a.file, text); else process.stdout.write(text);
    })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UserError(msg);
    });
}

export async function main(argv = hideBin(process.argv)): Promise<void> {
  try {
    await buildCli(argv).parseAsync();
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`sparsebench: ${e.message.split('\n')[0]}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`sparsebench: internal error: ${(e as Error).message}\n`);
      if (process.env.SPARSEBENCH_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 1;
    }
  }
}
