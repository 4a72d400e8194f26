import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { models } from '../../models/index.js';
import { selectBackend } from '../backend.js';
import { loadSweepWithPlugins } from '../plugins.js';
import { UserError } from '../../core/errors.js';
import { checkDataFiles } from '../data/index.js';
import { resolveShard, shardSpecs } from '../shard.js';
import { runId } from '../spec.js';
import { checkSweepMemory, memoryLimit } from '../memory.js';
import { runSweep } from '../sweep.js';
import { defineCommand, log, numberOption, sweepOptions } from './common.js';
import { sweepStatus, type StatusRow } from './status.js';

function builder(y: Argv) {
  return y
    .positional('config', { type: 'string', demandOption: true, describe: 'config JSON file' })
    .option('out', { type: 'string', describe: 'output folder (default runs/<config name>, or runs/<name>-smoke with --smoke)' })
    .option('jobs', numberOption('jobs', 'worker processes (1: in this process)', { alias: 'j', default: os.availableParallelism(), defaultDescription: 'number of cores', integer: true, positive: true }))
    .option('shard', { type: 'string', describe: 'run only slice i of n of the grid (i/n, 1-based; default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, plus 1, of --shards)' })
    .option('shards', numberOption('shards', 'shard count of a SLURM job array or Kubernetes Indexed Job whose task index picks the shard (or env SPARSEBENCH_SHARDS)', { integer: true, positive: true }))
    .options(sweepOptions)
    .option('memory-limit', numberOption('memory-limit', 'GB one run may use (default: the machine\'s memory / --jobs); runs estimated above it are refused before any starts', { positive: true }))
    .example('$0 run configs/quickstart.json', 'the quickstart sweep on MNIST')
    .example('$0 run configs/quickstart.json --smoke', 'check every cell in seconds')
    .example('$0 run configs/quickstart.json --set training.epochs=5 --set training.lrDrops=[3] --set grid.seed=[0,1]', 'override fields')
    .example('$0 run configs/quickstart.json --jobs 4 --shard 2/3', 'the second third of the grid, 4 runs at a time');
}

/**
 * Exit status of a sweep that was not interrupted, from what its run folders hold afterwards: 0
 * when every run of the grid (shard) is done or diverged; 1 when one failed (in this invocation or
 * an earlier one), diverged under --fail-on-diverged, or a worker process crashed; 3 when none of
 * that but runs are unfinished (locked by live workers elsewhere, or left resumable). With a line
 * saying which and how many.
 */
function sweepExit(rows: StatusRow[], o: { crashed: number; retryFailed: boolean; failOnDiverged: boolean; where: string }): { code: number; line: string | null } {
  const count = (s: StatusRow['status']) => rows.filter((r) => r.status === s).length;
  const failed = count('failed');
  const diverged = o.failOnDiverged ? count('diverged') : 0;
  const running = count('running');
  const pending = count('pending');
  const parts = [
    ...(failed ? [`${failed} failed (${o.retryFailed ? 'their errors: sparsebench status' : '--retry-failed reruns them'})`] : []),
    ...(diverged ? [`${diverged} diverged (--fail-on-diverged)`] : []),
    ...(running ? [`${running} locked by live workers elsewhere (--wait waits for them)`] : []),
    ...(pending ? [`${pending} unfinished (run again to resume)`] : []),
  ];
  const crashed = o.crashed ? `${o.crashed} worker process(es) crashed` : '';
  const code = failed || diverged || o.crashed ? 1 : running || pending ? 3 : 0;
  if (code === 0) return { code, line: null };
  const notDone = failed + diverged + running + pending;
  const runs = notDone ? `${notDone} of ${rows.length} runs${o.where} not done: ${parts.join(', ')}` : '';
  return { code, line: `sparsebench: ${[runs, crashed].filter(Boolean).join('; ')}` };
}

export const runCommand = defineCommand({
  command: 'run <config>',
  describe: "run every cell of a config's grid (resumes unfinished runs, skips finished ones)",
  builder,
  handler: async (a) => {
    const sweep = await loadSweepWithPlugins(a.config, { sets: a.set, smoke: a.smoke, plugin: a.plugin });
    const shard = resolveShard({ shard: a.shard, shards: a.shards });
    checkDataFiles(sweep.specs.map((s) => s.dataset.name), a['data-dir']);
    const out = a.out ?? path.join('runs', a.smoke ? `${sweep.name}-smoke` : sweep.name);
    const kernels = [...new Set(sweep.specs.flatMap((s) => models[s.model.name].kernels))];
    const backend = await selectBackend(a.backend, kernels);
    const mine = shardSpecs(sweep.specs, shard);
    checkSweepMemory(mine, memoryLimit({ jobs: Math.min(a.jobs, mine.length), backend, limitGb: a['memory-limit'] }), a.config);
    const where = shard ? ` (shard ${shard.index}/${shard.count} from ${shard.source.replace(/:$/, '')})` : '';
    log(`sweep ${sweep.name}: ${sweep.specs.length} runs${where}, backend ${backend}, output ${out}, jobs ${a.jobs}`);
    const staleMs = a['lock-timeout'] * 1000;
    const o = await runSweep(sweep, {
      out, backend, dataDir: a['data-dir'], log,
      jobs: a.jobs,
      shard,
      retryFailed: a['retry-failed'],
      wait: a.wait,
      lock: { staleMs, heartbeatMs: Math.max(100, Math.min(15_000, staleMs / 5)) },
      checkpointSeconds: a['checkpoint-minutes'] * 60,
      tty: process.stdout.isTTY ? { write: (s) => { process.stdout.write(s); }, columns: () => process.stdout.columns || 100 } : null,
      handleSignals: true,
    });
    if (o.signal) {
      process.stderr.write(o.stoppedAtOnce
        ? `sparsebench: ${o.signal} again: stopped at once; the last checkpoints stay, run the same command again to resume\n`
        : `sparsebench: interrupted by ${o.signal}: ${o.interrupted} run(s) checkpointed, ${o.done + o.diverged + o.failed} finished; run the same command again to resume\n`);
      process.exitCode = o.signal === 'SIGINT' ? 130 : 143;
      return;
    }
    log(`finished: ${o.done} done, ${o.diverged} diverged, ${o.failed} failed, ${o.skipped} skipped; results in ${path.join(out, 'results.csv')}`);
    const ids = new Set(shardSpecs(sweep.specs, shard).map(runId));
    const rows = sweepStatus(out, shardSpecs(sweep.specs, shard), staleMs).filter((r) => ids.has(r.id));
    const exit = sweepExit(rows, {
      crashed: o.crashed, retryFailed: a['retry-failed'], failOnDiverged: a['fail-on-diverged'],
      where: shard ? ` of shard ${shard.index}/${shard.count}` : '',
    });
    if (exit.line) process.stderr.write(exit.line + '\n');
    process.exitCode = exit.code;
  },
});
