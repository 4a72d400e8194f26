import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { models } from '../../models/index.js';
import { selectBackend } from '../backend.js';
import { loadSweep } from '../config.js';
import { UserError } from '../errors.js';
import { resolveShard } from '../shard.js';
import { exitCodeOf, runSweep, stoppedAtOnceMessage } from '../sweep.js';
import { backendOption, log, defineCommand } from './common.js';

function builder(y: Argv) {
  return y
    .positional('config', { type: 'string', demandOption: true, describe: 'config JSON file' })
    .option('out', { type: 'string', describe: 'output folder (default runs/<config name>, or runs/<name>-smoke with --smoke)' })
    .option('smoke', { type: 'boolean', default: false, describe: 'every grid cell for a few steps on a small slice of the data' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value (JSON or string)' })
    .option('data-dir', { type: 'string', describe: 'folder holding dataset files (CIFAR binaries)' })
    .option('jobs', { alias: 'j', type: 'number', default: os.availableParallelism(), defaultDescription: 'number of cores', describe: 'worker processes (1: in this process)' })
    .option('shard', { type: 'string', describe: 'run only slice i of n of the grid (i/n, 1-based; default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, plus 1, of --shards)' })
    .option('shards', { type: 'number', describe: 'shard count of a SLURM job array or Kubernetes Indexed Job whose task index picks the shard (or env SPARSEBENCH_SHARDS)' })
    .option('retry-failed', { type: 'boolean', default: false, describe: 'rerun runs that failed (an exception); diverged runs are results and are kept' })
    .option('lock-timeout', { type: 'number', default: 300, describe: 'seconds without heartbeat after which a run lock held on another host is stale' })
    .option('checkpoint-minutes', { type: 'number', default: 10, describe: 'also checkpoint inside an epoch this often (checkpoints are taken at every epoch end)' })
    .options(backendOption)
    .example('$0 run configs/quickstart.json', 'the quickstart sweep on MNIST')
    .example('$0 run configs/quickstart.json --smoke', 'check every cell in seconds')
    .example('$0 run configs/quickstart.json --set training.epochs=5 --set grid.seed=[0,1]', 'override fields')
    .example('$0 run configs/quickstart.json --jobs 4 --shard 2/3', 'the second third of the grid, 4 runs at a time');
}

export const runCommand = defineCommand({
  command: 'run <config>',
  describe: "run every cell of a config's grid (resumes unfinished runs, skips finished ones)",
  builder,
  handler: async (a) => {
    const sweep = loadSweep(a.config, { sets: a.set, smoke: a.smoke });
    if (!Number.isInteger(a.jobs) || a.jobs < 1) throw new UserError(`--jobs ${a.jobs}: expected a positive integer`);
    if (a.shards !== undefined && (!Number.isInteger(a.shards) || a.shards < 1)) throw new UserError(`--shards ${a.shards}: expected a positive integer`);
    if (!(a['lock-timeout'] > 0)) throw new UserError(`--lock-timeout ${a['lock-timeout']}: expected a positive number of seconds`);
    if (!(a['checkpoint-minutes'] >= 0)) throw new UserError(`--checkpoint-minutes ${a['checkpoint-minutes']}: expected a number >= 0`);
    const shard = resolveShard({ shard: a.shard, shards: a.shards });
    const out = a.out ?? path.join('runs', a.smoke ? `${sweep.name}-smoke` : sweep.name);
    const kernels = [...new Set(sweep.specs.flatMap((s) => models[s.model.name].kernels))];
    const backend = await selectBackend(a.backend, kernels);
    const where = shard ? ` (shard ${shard.index}/${shard.count} from ${shard.source.replace(/:$/, '')})` : '';
    log(`sweep ${sweep.name}: ${sweep.specs.length} runs${where}, backend ${backend}, output ${out}, jobs ${a.jobs}`);
    const staleMs = a['lock-timeout'] * 1000;
    const o = await runSweep(sweep, {
      out, backend, dataDir: a['data-dir'], log,
      jobs: a.jobs,
      shard,
      retryFailed: a['retry-failed'],
      lock: { staleMs, heartbeatMs: Math.max(100, Math.min(15_000, staleMs / 5)) },
      checkpointSeconds: a['checkpoint-minutes'] * 60,
      tty: process.stdout.isTTY ? { write: (s) => { process.stdout.write(s); }, columns: () => process.stdout.columns || 100 } : null,
      handleSignals: true,
    });
    if (o.signal) {
      process.stderr.write(o.stoppedAtOnce
        ? `${stoppedAtOnceMessage(o.signal)}\n`
        : `sparsebench: interrupted by ${o.signal}: ${o.interrupted} run(s) checkpointed, ${o.done + o.diverged + o.failed} finished; run the same command again to resume\n`);
      process.exitCode = exitCodeOf(o.signal);
      return;
    }
    const others = o.busy ? `, ${o.busy} left to other workers` : '';
    const lost = o.lost ? `, ${o.lost} lost to other workers` : '';
    log(`finished: ${o.done} done, ${o.diverged} diverged, ${o.failed} failed, ${o.skipped} skipped${others}${lost}; results in ${path.join(out, 'results.csv')}`);
    if (o.failed > 0 || o.crashed > 0) process.exitCode = 1;
  },
});
