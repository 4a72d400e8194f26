import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import { loadSweepWithPlugins } from '../plugins.js';
import { checkDataFiles } from '../data/index.js';
import { UserError } from '../../core/errors.js';
import { defineCommand, sweepArguments, sweepOptions } from './common.js';

const cliPath = fileURLToPath(new URL('../../../bin/sparsebench.js', import.meta.url));

/** Single-quotes a word for bash. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A folder inside a double-quoted #SBATCH value (sbatch strips the quotes): % doubled, as SLURM's file name patterns need. */
function sbatchFolder(p: string): string {
  if (/["\n\\]/.test(p)) throw new UserError(`--out ${p}: a folder for #SBATCH lines cannot hold a double quote, backslash or newline`);
  return p.replace(/%/g, '%%');
}

/**
 * Memory per run when `--mem` is not given: MNIST-sized runs peak at 250-310 MB per worker
 * process (the sweep process itself about as much), so 512 MB each leaves room. Larger models
 * need more (docs/runtime.md: ResNet-56 up to 2.1 GB, ViT 3.2 GB): pass --mem for them.
 * (Where a memory estimate per config exists, it replaces this constant.)
 */
export const defaultMemoryPerProcessMb = 512;

/** The --mem of an array task with `workers` worker processes: one share per worker and one for the sweep process. */
export function defaultTaskMemory(workers: number): string {
  return `${(workers + 1) * defaultMemoryPerProcessMb}M`;
}

export interface SlurmOptions {
  config: string;
  runs: number;
  name: string;
  smoke: boolean;
  out: string;
  shards: number;
  cpus: number;
  mem: string;
  partition?: string;
  time?: string;
  account?: string;
  /** the sweep options for `run` (sweepArguments) */
  runArgs: string[];
  node: string;
  cwd: string;
}

/**
 * An sbatch array script: array task k runs shard k+1 of the fixed shard count with one worker
 * per CPU. The time limit sends USR1 to the script 120 s before the end: it asks the sweep to
 * checkpoint (SIGTERM) and requeues the task, which resumes. Any other stop (scancel) only
 * checkpoints.
 */
export function slurmScript(o: SlurmOptions): string {
  const jobName = `sparsebench-${o.name}${o.smoke ? '-smoke' : ''}`;
  const run = [shellQuote(cliPath), 'run', shellQuote(o.config), '--out', shellQuote(o.out), '--shards', String(o.shards), ...o.runArgs.map(shellQuote)].join(' ');
  const lines = [
    '#!/bin/bash',
    `# sparsebench sweep "${o.name}"${o.smoke ? ' (smoke)' : ''}: ${o.runs} runs in ${o.shards} array tasks, ${o.cpus} worker(s) each.`,
    '# Submit: sbatch this-script.sh (its output folder exists: `sparsebench slurm` created it).',
    `# Task k runs shard k+1 of ${o.shards}, whichever tasks are submitted: \`sbatch --array=${o.shards - 1} this-script.sh\` reruns only shard ${o.shards}.`,
    '# Resubmitting resumes: finished runs are skipped, unfinished ones continue from their checkpoint.',
    '# Exit status of a task: that of `sparsebench run` (0 shard complete, 1 failed runs, 3 runs unfinished; see docs/cluster.md).',
    `#SBATCH --job-name=${jobName}`,
    `#SBATCH --array=0-${o.shards - 1}`,
    '#SBATCH --nodes=1',
    '#SBATCH --ntasks=1',
    `#SBATCH --cpus-per-task=${o.cpus}`,
    `#SBATCH --mem=${o.mem}`,
    ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
    ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
    ...(o.account ? [`#SBATCH --account=${o.account}`] : []),
    `#SBATCH --output="${sbatchFolder(o.out)}/slurm-%A_%a.log"`,
    '#SBATCH --open-mode=append',
    '# the time limit: USR1 to this script 120 s before it; the runs checkpoint and the task is requeued',
    '#SBATCH --signal=B:USR1@120',
    '#SBATCH --requeue',
    'set -uo pipefail',
    `cd ${shellQuote(o.cwd)}`,
    "# one thread per worker: each worker has one of the task's CPUs",
    'export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1',
    `NODE="\${NODE:-${o.node}}"`,
    `"$NODE" ${run} --jobs "\${SLURM_CPUS_PER_TASK:-${o.cpus}}" &`,
    'run=$!',
    'time_limit=0',
    'trap \'time_limit=1; kill -TERM "$run" 2>/dev/null\' USR1',
    '# scancel signals every process of the task; the sweep checkpoints once however often it is told',
    'trap \'kill -TERM "$run" 2>/dev/null\' TERM INT',
    '# a trapped signal cuts `wait` short: wait until the sweep is gone, then take its own exit status',
    'while kill -0 "$run" 2>/dev/null; do wait "$run"; done',
    'wait "$run"; status=$?',
    'if [ "$time_limit" = 1 ] && [ "$status" = 143 ]; then',
    '  echo "sparsebench: time limit: runs checkpointed; requeueing array task ${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-} (job $SLURM_JOB_ID)"',
    '  scontrol requeue "$SLURM_JOB_ID" && exit 0',
    'fi',
    'exit "$status"',
  ];
  return lines.join('\n') + '\n';
}

function builder(y: Argv) {
  return y
    .positional('config', { type: 'string', demandOption: true, describe: 'config JSON file' })
    .option('out', { type: 'string', describe: 'output folder on the shared file system, created now (default runs/<config name>, runs/<name>-smoke with --smoke)' })
    .option('partition', { type: 'string', describe: 'SLURM partition' })
    .option('time', { type: 'string', describe: 'time limit per array task, e.g. 24:00:00 (the task requeues itself at the limit)' })
    .option('cpus', { type: 'number', default: 4, describe: 'CPUs per array task (= worker processes, one thread each)' })
    .option('mem', { type: 'string', describe: `memory per array task, e.g. 16G (default ${defaultMemoryPerProcessMb} MB per worker and for the sweep process: enough for MNIST-sized runs)` })
    .option('account', { type: 'string', describe: 'SLURM account' })
    .option('shards', { type: 'number', describe: 'array tasks (default: runs / cpus, rounded up)' })
    .options(sweepOptions)
    .example('$0 slurm configs/quickstart.json --partition cpu --time 02:00:00 --cpus 8 > sweep.sbatch', 'an sbatch array script for the quickstart grid')
    .example('$0 slurm configs/paper/cifar10-resnet56.json --data-dir data --cpus 4 --mem 12G > resnet.sbatch', 'CIFAR needs --data-dir (and more memory per run)');
}

export const slurmCommand = defineCommand({
  command: 'slurm <config>',
  describe: 'print an sbatch array script that runs a sweep as SLURM array tasks (one shard each)',
  builder,
  handler: async (a) => {
    const sweep = await loadSweepWithPlugins(a.config, { sets: a.set, smoke: a.smoke, plugin: a.plugin });
    if (!Number.isInteger(a.cpus) || a.cpus < 1) throw new UserError(`--cpus ${a.cpus}: expected a positive integer`);
    const runs = sweep.specs.length;
    const shards = a.shards ?? Math.max(1, Math.ceil(runs / a.cpus));
    if (!Number.isInteger(shards) || shards < 1) throw new UserError(`--shards ${a.shards}: expected a positive integer`);
    if (shards > runs) throw new UserError(`--shards ${shards}: more than the ${runs} runs of the grid`);
    if (a.time !== undefined && !/^(\d+-)?\d+(:\d{1,2}){0,2}$/.test(a.time)) throw new UserError(`--time ${a.time}: expected a SLURM time such as 24:00:00 or 2-00:00:00`);
    if (a.mem !== undefined && !/^\d+[KMGT]?$/i.test(a.mem)) throw new UserError(`--mem ${a.mem}: expected a SLURM memory size such as 16G or 4000M`);
    const dataDir = a['data-dir'] === undefined ? undefined : path.resolve(a['data-dir']);
    checkDataFiles(sweep.specs.map((s) => s.dataset.name), dataDir);
    const out = path.resolve(a.out ?? path.join('runs', a.smoke ? `${sweep.name}-smoke` : sweep.name));
    const script = slurmScript({
      config: path.resolve(a.config), runs, name: sweep.name, smoke: a.smoke, out, shards, cpus: a.cpus,
      mem: a.mem ?? defaultTaskMemory(a.cpus), partition: a.partition, time: a.time, account: a.account,
      runArgs: sweepArguments({ ...a, 'data-dir': dataDir }), node: process.execPath, cwd: process.cwd(),
    });
    // SLURM opens each task's log in the output folder before the script runs: it must exist
    try { mkdirSync(out, { recursive: true }); } catch (e) { throw new UserError(`--out ${out}: cannot create it (${(e as NodeJS.ErrnoException).code})`); }
    process.stdout.write(script);
  },
});
