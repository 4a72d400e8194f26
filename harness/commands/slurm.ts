import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import { loadSweep } from '../config.js';
import { UserError } from '../errors.js';
import { backendChoices } from '../backend.js';
import { defineCommand } from './common.js';

const cliPath = fileURLToPath(new URL('../../../bin/sparsebench.js', import.meta.url));

/** Single-quotes a word for bash. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface SlurmOptions {
  config: string;
  runs: number;
  name: string;
  out: string;
  shards: number;
  cpus: number;
  partition?: string;
  time?: string;
  mem?: string;
  account?: string;
  sets: string[];
  smoke: boolean;
  backend: string;
  retryFailed: boolean;
  node: string;
  cwd: string;
}

/** An sbatch array script: array task k runs shard k+1 of the grid with one worker per CPU. */
export function slurmScript(o: SlurmOptions): string {
  const args = ['run', o.config, '--out', o.out, '--backend', o.backend, ...o.sets.flatMap((s) => ['--set', s]), ...(o.smoke ? ['--smoke'] : []), ...(o.retryFailed ? ['--retry-failed'] : [])];
  const lines = [
    '#!/bin/bash',
    `# sparsebench sweep "${o.name}": ${o.runs} runs in ${o.shards} array tasks, ${o.cpus} worker(s) each.`,
    `# Submit:  mkdir -p ${shellQuote(o.out)} && sbatch this-script.sh`,
    '# Each task runs the slice SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT of the grid (sparsebench reads both).',
    '# Resubmitting the same script resumes: finished runs are skipped, unfinished ones continue from their checkpoint.',
    `#SBATCH --job-name=sparsebench-${o.name}`,
    `#SBATCH --array=0-${o.shards - 1}`,
    '#SBATCH --nodes=1',
    '#SBATCH --ntasks=1',
    `#SBATCH --cpus-per-task=${o.cpus}`,
    ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
    ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
    ...(o.mem ? [`#SBATCH --mem=${o.mem}`] : []),
    ...(o.account ? [`#SBATCH --account=${o.account}`] : []),
    `#SBATCH --output=${o.out}/slurm-%A_%a.log`,
    '# SIGTERM two minutes before the time limit: every worker finishes its step, checkpoints and exits',
    '#SBATCH --signal=B:TERM@120',
    'set -euo pipefail',
    `cd ${shellQuote(o.cwd)}`,
    `NODE="\${NODE:-${o.node}}"`,
    `exec "$NODE" ${shellQuote(cliPath)} ${args.map(shellQuote).join(' ')} --jobs "\${SLURM_CPUS_PER_TASK:-${o.cpus}}"`,
  ];
  return lines.join('\n') + '\n';
}

function builder(y: Argv) {
  return y
    .positional('config', { type: 'string', demandOption: true, describe: 'config JSON file' })
    .option('out', { type: 'string', describe: 'output folder on the shared file system (default runs/<config name>)' })
    .option('partition', { type: 'string', describe: 'SLURM partition' })
    .option('time', { type: 'string', describe: 'time limit per array task, e.g. 24:00:00' })
    .option('cpus', { type: 'number', default: 4, describe: 'CPUs per array task (= worker processes)' })
    .option('mem', { type: 'string', describe: 'memory per array task, e.g. 16G' })
    .option('account', { type: 'string', describe: 'SLURM account' })
    .option('shards', { type: 'number', describe: 'array tasks (default: runs / cpus, rounded up)' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value (passed on to run)' })
    .option('smoke', { type: 'boolean', default: false, describe: 'a smoke sweep' })
    .option('retry-failed', { type: 'boolean', default: false, describe: 'pass --retry-failed to run' })
    .option('backend', { choices: backendChoices, default: 'auto', describe: 'tfjs backend of the runs' })
    .example('$0 slurm configs/quickstart.json --partition cpu --time 02:00:00 --cpus 8 > sweep.sbatch', 'an sbatch array script for the quickstart grid');
}

export const slurmCommand = defineCommand({
  command: 'slurm <config>',
  describe: 'print an sbatch array script that runs a sweep as SLURM array tasks (one shard each)',
  builder,
  handler: (a) => {
    const sweep = loadSweep(a.config, { sets: a.set, smoke: a.smoke });
    if (!Number.isInteger(a.cpus) || a.cpus < 1) throw new UserError(`--cpus ${a.cpus}: expected a positive integer`);
    const runs = sweep.specs.length;
    const shards = a.shards ?? Math.max(1, Math.ceil(runs / a.cpus));
    if (!Number.isInteger(shards) || shards < 1) throw new UserError(`--shards ${a.shards}: expected a positive integer`);
    if (shards > runs) throw new UserError(`--shards ${shards}: more than the ${runs} runs of the grid`);
    if (a.time !== undefined && !/^(\d+-)?\d+(:\d{1,2}){0,2}$/.test(a.time)) throw new UserError(`--time ${a.time}: expected a SLURM time such as 24:00:00 or 2-00:00:00`);
    const out = path.resolve(a.out ?? path.join('runs', a.smoke ? `${sweep.name}-smoke` : sweep.name));
    process.stdout.write(slurmScript({
      config: path.resolve(a.config), runs, name: sweep.name, out, shards, cpus: a.cpus,
      partition: a.partition, time: a.time, mem: a.mem, account: a.account, sets: a.set, smoke: a.smoke,
      backend: a.backend, retryFailed: a['retry-failed'], node: process.execPath, cwd: process.cwd(),
    }));
  },
});
