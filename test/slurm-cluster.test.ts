/**
 * The generated sbatch script on a real SLURM: where `sbatch` exists and a node answers (e.g.
 * Debian's slurm-wlm on one machine, docs/cluster.md), the quickstart smoke in two array tasks
 * runs every cell exactly once. Elsewhere the test is skipped with a notice saying why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadSweep } from '../harness/config.js';
import { runId } from '../harness/spec.js';
import { root } from './helpers.js';
import { csvRows, runCliAsync, sleep, tmpDir } from './sweep-util.js';

function sh(command: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** Why the real-scheduler test cannot run here, or null when it can. */
function noCluster(): string | null {
  if (!sh('sbatch', ['--version']).ok) return 'no sbatch on PATH (see docs/cluster.md: a single-node SLURM for this test)';
  const nodes = sh('sinfo', ['--noheader', '--responding', '--states=idle,mixed,allocated', '--format=%n']);
  if (!nodes.ok || !nodes.out) return `sbatch exists but no SLURM node answers (sinfo: ${nodes.out || 'no idle node'})`;
  return null;
}

const skip = noCluster();
if (skip) process.stdout.write(`NOTICE: real-SLURM test skipped: ${skip}\n`);

test('real SLURM: the quickstart smoke as two array tasks runs every cell once; a resubmit skips them all', { skip: skip ?? false, timeout: 600_000 }, async () => {
  const dir = tmpDir('slurm-real');
  const out = path.join(dir, 'runs');
  const config = path.join(root, 'configs', 'quickstart.json');
  const ids = loadSweep(config, { smoke: true }).specs.map(runId).sort();
  const made = await runCliAsync(['slurm', config, '--smoke', '--shards', '2', '--cpus', '1', '--time', '00:20:00', '--out', out]);
  assert.equal(made.code, 0, made.stderr);
  const script = path.join(dir, 'smoke.sbatch');
  writeFileSync(script, made.stdout);

  const submit = async (): Promise<string> => {
    const r = sh('sbatch', ['--parsable', script]);
    assert.ok(r.ok, `sbatch: ${r.out}`);
    const job = r.out.split(';')[0];
    for (const until = Date.now() + 540_000; sh('squeue', ['--noheader', '--jobs', job]).out !== '';) {
      assert.ok(Date.now() < until, `job ${job} still queued or running after 9 minutes`);
      await sleep(1000);
    }
    return job;
  };
  const job = await submit();
  const logs = [0, 1].map((task) => readFileSync(path.join(out, `slurm-${job}_${task}.log`), 'utf8'));
  const started = logs.map((log) => [...log.matchAll(/\[([0-9a-f]{12})\] started/g)].map((m) => m[1]));
  assert.deepEqual(started.flat().sort(), ids, 'every cell started once over the two tasks');
  logs.forEach((log, task) => {
    assert.match(log, new RegExp(`shard ${task + 1}/2 from SLURM_ARRAY_TASK_ID=${task}`));
    assert.match(log, /finished: \d+ done, 0 diverged, 0 failed, 0 skipped/);
  });
  const rows = csvRows(out);
  assert.deepEqual(rows.map((r) => r.run_id).sort(), ids);
  assert.ok(rows.every((r) => r.status === 'done'));
  const record = JSON.parse(readFileSync(path.join(out, ids[0], 'config.json'), 'utf8'));
  assert.equal(record.provenance.scheduler.array_job_id, job, 'runs record their array job');

  const again = await submit();
  for (const task of [0, 1]) {
    const log = readFileSync(path.join(out, `slurm-${again}_${task}.log`), 'utf8');
    assert.match(log, /runs already done/);
    assert.doesNotMatch(log, /started/);
  }
  assert.equal(readdirSync(out).filter((f) => f.startsWith('slurm-')).length, 4);
});
