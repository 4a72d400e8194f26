import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sweepFromConfig } from '../harness/config.js';
import { UserError } from '../core/errors.js';
import { Progress } from '../harness/progress.js';
import { resolveShard, shardSpecs, parseShard } from '../harness/shard.js';
import { runId, type RunSpec } from '../harness/spec.js';
import { csvRows, gridConfig, hasFile, runCliAsync, runDirs, sleep, startCommand, tmpDir, waitFor } from './sweep-util.js';
import { buildCli } from '../harness/cli.js';
import { statusText, sweepStatus } from '../harness/commands/status.js';
import { writeCifarFiles } from '../harness/data/cifar.js';

function gridOf(file: string): RunSpec[] {
  return sweepFromConfig(JSON.parse(readFileSync(file, 'utf8')), file, true).specs;
}

test('shards i/n cut the sorted run ids into n disjoint slices that cover the grid, whatever the grid order', () => {
  const specs = gridOf(gridConfig(tmpDir('shard'), 10));
  const all = specs.map(runId).sort();
  for (const n of [1, 3, 4, 10]) {
    const parts = Array.from({ length: n }, (_, i) => shardSpecs(specs, parseShard(`${i + 1}/${n}`)).map(runId));
    assert.deepEqual(parts.flat().sort(), all, `${n} shards cover the grid exactly`);
    const sizes = parts.map((p) => p.length);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `balanced: ${sizes}`);
    const reversed = Array.from({ length: n }, (_, i) => shardSpecs([...specs].reverse(), parseShard(`${i + 1}/${n}`)).map(runId).sort());
    assert.deepEqual(reversed, parts.map((p) => [...p].sort()), 'stable under the grid order');
  }
});

test('the shard comes from --shard, or a SLURM array task id or Kubernetes completion index of the count given by --shards / SPARSEBENCH_SHARDS', () => {
  assert.deepEqual(resolveShard({}, {}), null);
  assert.equal(resolveShard({ shard: '2/3' }, { SLURM_ARRAY_TASK_ID: '0', SPARSEBENCH_SHARDS: '3' })!.index, 2, '--shard wins');
  const slurm = resolveShard({ shards: 3 }, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '3' })!;
  assert.deepEqual([slurm.index, slurm.count], [3, 3]);
  // a partial resubmit (sbatch --array=0,2 of a 3-shard script): task 2 is still shard 3 of 3,
  // whatever SLURM counts and whichever task is the lowest submitted
  const partial = resolveShard({ shards: 3 }, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '2', SLURM_ARRAY_TASK_COUNT: '2' })!;
  assert.deepEqual([partial.index, partial.count], [3, 3]);
  const alone = resolveShard({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '1', SPARSEBENCH_SHARDS: '3' })!;
  assert.deepEqual([alone.index, alone.count], [2, 3]);
  assert.throws(() => resolveShard({}, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '3' }), /SLURM_ARRAY_TASK_ID=2 is set but the shard count is not: pass --shards N/);
  assert.throws(() => resolveShard({ shards: 3 }, { SLURM_ARRAY_TASK_ID: '3' }), /SLURM_ARRAY_TASK_ID=3 of 3 shards: 4\/3: need 1 <= i <= n/);
  const k8s = resolveShard({}, { JOB_COMPLETION_INDEX: '0', SPARSEBENCH_SHARDS: '3' })!;
  assert.deepEqual([k8s.index, k8s.count], [1, 3]);
  const flag = resolveShard({ shards: 5 }, { JOB_COMPLETION_INDEX: '4' })!;
  assert.deepEqual([flag.index, flag.count], [5, 5]);
  assert.throws(() => resolveShard({}, { JOB_COMPLETION_INDEX: '1' }), /--shards N/);
  assert.throws(() => resolveShard({}, { JOB_COMPLETION_INDEX: '3', SPARSEBENCH_SHARDS: '3' }), UserError);
  assert.throws(() => resolveShard({ shards: 3 }, {}), /--shards needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX/);
  for (const bad of ['0/3', '4/3', '1/0', 'two/3', '1']) assert.throws(() => parseShard(bad), UserError, bad);
});

test('three shards run at once (--shard, SLURM, Kubernetes) on one folder cover the grid exactly once', async () => {
  const dir = tmpDir('shard-cli');
  const config = gridConfig(dir, 5);
  const out = path.join(dir, 'out');
  const specs = gridOf(config);
  const common = ['run', config, '--out', out, '--smoke', '--backend', 'wasm', '--jobs', '1'];
  const [a, b, c] = await Promise.all([
    runCliAsync([...common, '--shard', '1/3']),
    runCliAsync(common, { SLURM_JOB_ID: '8', SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '1', SPARSEBENCH_SHARDS: '3' }),
    runCliAsync(common, { JOB_COMPLETION_INDEX: '2', SPARSEBENCH_SHARDS: '3' }),
  ]);
  const started = (s: string) => [...s.matchAll(/\[([0-9a-f]{12})\] started/g)].map((m) => m[1]).sort();
  [a, b, c].forEach((r, i) => {
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`shard ${i + 1}/3`));
    assert.deepEqual(started(r.stdout), shardSpecs(specs, parseShard(`${i + 1}/3`)).map(runId).sort());
    assert.doesNotMatch(r.stdout, /\x1b/, 'no control codes off a TTY');
  });
  assert.deepEqual(csvRows(out).map((r) => r.run_id).sort(), specs.map(runId).sort(), 'results.csv: the whole grid, once each');
  const scheduler = (shard: number) => shardSpecs(specs, parseShard(`${shard}/3`)).map((spec) => JSON.parse(readFileSync(path.join(out, runId(spec), 'config.json'), 'utf8')).provenance.scheduler);
  assert.ok(scheduler(1).every((x) => x === undefined), 'no scheduler, no ids');
  assert.ok(scheduler(2).every((x) => x.scheduler === 'slurm' && x.job_id === '8' && x.array_task_id === '1'), 'the SLURM job and task in each run record');
  assert.ok(scheduler(3).every((x) => x.scheduler === 'kubernetes' && x.job_completion_index === '2' && x.pod), 'the Indexed Job pod and index');
});

test('a diverging run is marked diverged with its step, an exception marks a run failed with its message; the rest complete; exit 1 while a failed run stays, also when a rerun only skips it; --retry-failed reruns only failed runs; status shows them', async () => {
  const dir = tmpDir('fail');
  const config = gridConfig(dir, 1, {
    // lr 1e6 diverges; cifar10 from a truncated file throws while loading
    grid: { 'training.lr': [0.05, 1e6], dataset: [{ name: 'synthetic', features: 32, classes: 4, trainSamples: 256, testSamples: 128, seed: 3 }, 'cifar10'] },
  });
  const data = path.join(dir, 'data');
  const cifar = writeCifarFiles(data, 'cifar10', { train: 20, test: 10 });
  appendFileSync(path.join(cifar, 'test_batch.bin'), Buffer.alloc(7));
  const out = path.join(dir, 'out');
  const args = ['run', config, '--out', out, '--smoke', '--backend', 'wasm', '--jobs', '1', '--data-dir', data];
  const r = await runCliAsync(args);
  assert.equal(r.code, 1, 'failed runs make the exit code 1');
  assert.match(r.stdout, /finished: 1 done, 1 diverged, 2 failed, 0 skipped/);
  assert.equal(r.stderr, 'sparsebench: 2 of 4 runs not done: 2 failed (--retry-failed reruns them)\n');
  const rows = csvRows(out);
  assert.equal(rows.length, 4);
  const byStatus = (s: string) => rows.filter((row) => row.status === s);
  assert.equal(byStatus('done').length, 1);
  assert.equal(byStatus('diverged').length, 1);
  assert.equal(byStatus('failed').length, 2);
  const diverged = JSON.parse(readFileSync(path.join(out, byStatus('diverged')[0].run_id, 'result.json'), 'utf8'));
  assert.ok(Number.isInteger(diverged.diverged_step) && diverged.diverged_step >= 1, `diverged_step ${diverged.diverged_step}`);
  const failed = JSON.parse(readFileSync(path.join(out, byStatus('failed')[0].run_id, 'result.json'), 'utf8'));
  assert.match(failed.error, /test_batch\.bin: 30737 bytes is not a whole number/);

  const skip = await runCliAsync(args);
  assert.match(skip.stdout, /4 of 4 runs already done in .* \(2 failed; --retry-failed reruns them\)/);
  assert.doesNotMatch(skip.stdout, /started/);
  assert.equal(skip.code, 1, 'a rerun that only skips failed runs leaves the grid failed');
  assert.equal(skip.stderr, 'sparsebench: 2 of 4 runs not done: 2 failed (--retry-failed reruns them)\n');
  const strict = await runCliAsync([...args, '--fail-on-diverged']);
  assert.equal(strict.code, 1);
  assert.equal(strict.stderr, 'sparsebench: 3 of 4 runs not done: 2 failed (--retry-failed reruns them), 1 diverged (--fail-on-diverged)\n');

  const retry = await runCliAsync([...args, '--retry-failed']);
  assert.equal(retry.code, 1);
  const again = [...retry.stdout.matchAll(/\[([0-9a-f]{12})\] started/g)].map((m) => m[1]).sort();
  assert.deepEqual(again, byStatus('failed').map((row) => row.run_id).sort(), 'only the failed runs rerun');
  assert.equal(csvRows(out).length, 4);

  // status: the grid given two more seeds has 4 runs without a folder (pending)
  const s = await runCliAsync(['status', out, '--config', config, '--set', 'grid.seed=[0,1]']);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /8 runs \(8 in .*\): 1 done, 0 running, 2 failed, 1 diverged, 4 pending/);
  assert.match(s.stdout, /failed .*not a whole number of 3073-byte CIFAR-10 records/);
  assert.match(s.stdout, /diverged .*loss not finite at step \d+/);
  assert.match(s.stdout, /pending .*0\/2 .*not started/);
  const bare = statusText(out, sweepStatus(out, null, 60_000), '');
  assert.match(bare, /4 runs: 1 done, 0 running, 2 failed, 1 diverged, 0 pending/);
  await assert.rejects(async () => buildCli(['status', path.join(dir, 'nope')]).parseAsync(), /no such folder/);
});

test('a grid with a dataset read from files and no --data-dir is refused before anything runs: one line, exit 2, nothing written', async () => {
  const dir = tmpDir('nodata');
  const config = gridConfig(dir, 2, { dataset: 'cifar10', model: { name: 'mlp', hidden: [8] } });
  const out = path.join(dir, 'out');
  const r = await runCliAsync(['run', config, '--out', out, '--smoke', '--backend', 'wasm', '--jobs', '1']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'sparsebench: dataset cifar10 needs --data-dir DIR holding cifar-10-batches-bin/ (download it with: sparsebench data fetch cifar10 --dir DIR)\n');
  assert.equal(r.stdout, '');
  assert.equal(existsSync(out), false, 'no run marked failed');
  const missing = await runCliAsync(['run', config, '--out', out, '--data-dir', path.join(dir, 'nope'), '--backend', 'wasm']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^sparsebench: --data-dir \S+nope: no such directory \(cifar10 expects cifar-10-batches-bin\/ in it; .*\)\n$/);
  assert.equal(existsSync(out), false);
});

test('slurm prints an sbatch array script: one array task per shard of a fixed count, every sweep option passed on, paths quoted, memory and threads set, the output folder created', async () => {
  const dir = tmpDir('slurm');
  const config = gridConfig(dir, 5);
  const out = path.join(dir, 'o ut%1');
  const r = await runCliAsync(['slurm', config, '--partition', 'cpu', '--time', '02:00:00', '--cpus', '2', '--set', 'training.lr=0.1', '--out', out,
    '--smoke', '--backend', 'wasm', '--lock-timeout', '60', '--checkpoint-minutes', '2', '--retry-failed', '--wait', '--fail-on-diverged', '--data-dir', 'data']);
  assert.equal(r.code, 0, r.stderr);
  const s = r.stdout;
  assert.match(s, /^#!\/bin\/bash\n/);
  assert.match(s, /#SBATCH --job-name=sparsebench-sweeptest-smoke\n/, 'a smoke job is named apart');
  assert.match(s, /#SBATCH --array=0-2\n/, '5 runs / 2 cpus = 3 tasks');
  assert.match(s, /#SBATCH --partition=cpu\n/);
  assert.match(s, /#SBATCH --time=02:00:00\n/);
  assert.match(s, /#SBATCH --cpus-per-task=2\n/);
  assert.match(s, /#SBATCH --mem=1536M\n/, '512 MB for each of 2 workers and the sweep process');
  assert.ok(s.includes(`#SBATCH --output="${out.replace('%', '%%')}/slurm-%A_%a.log"\n`), 'the log path quoted, % doubled');
  assert.match(s, /#SBATCH --signal=B:USR1@120\n#SBATCH --requeue\n/);
  assert.match(s, /export OMP_NUM_THREADS=1 /);
  const runLine = s.split('\n').find((l) => l.includes(' run '))!;
  assert.ok(runLine.includes(`run ${config} --out '${out}' --shards 3 --smoke --set training.lr=0.1 --data-dir ${path.resolve('data')} --backend wasm --retry-failed --fail-on-diverged --wait --lock-timeout 60 --checkpoint-minutes 2 --jobs "\${SLURM_CPUS_PER_TASK:-2}" &`), runLine);
  assert.ok(existsSync(out), 'the output folder exists before sbatch opens the logs in it');
  const plain = await runCliAsync(['slurm', config, '--out', path.join(dir, 'p')]);
  assert.match(plain.stdout, /#SBATCH --job-name=sparsebench-sweeptest\n/);
  assert.match(plain.stdout, /#SBATCH --mem=2560M\n/, 'default --cpus 4');
  assert.match(plain.stdout, /sparsebench\.js run \S+grid\.json --out \S+\/p --shards 2 --jobs "\$\{SLURM_CPUS_PER_TASK:-4\}" &\n/, 'defaults are not repeated');
  assert.doesNotMatch(plain.stdout, /--partition|--time/);
  const e = await runCliAsync(['slurm', config, '--shards', '6']);
  assert.equal(e.code, 2);
  assert.equal(e.stderr.trim(), 'sparsebench: --shards 6: more than the 5 runs of the grid');
  for (const bad of [['--time', 'soon'], ['--cpus', '0'], ['--mem', 'lots'], ['--lock-timeout', '0'], ['--checkpoint-minutes', '-1']]) {
    await assert.rejects(async () => buildCli(['slurm', config, ...bad]).parseAsync(), UserError, bad.join(' '));
  }
  const cifar = gridConfig(tmpDir('slurm-cifar'), 2, { dataset: 'cifar10' });
  const noData = await runCliAsync(['slurm', cifar, '--out', path.join(dir, 'c')]);
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /^sparsebench: dataset cifar10 needs --data-dir DIR/);
  assert.equal(noData.stdout, '');
  assert.equal(existsSync(path.join(dir, 'c')), false);
});

test('the slurm script: at the time limit (USR1) the runs checkpoint and the task requeues itself; scancel (TERM to every process) only checkpoints', async () => {
  const dir = tmpDir('slurm-run');
  const config = gridConfig(dir, 4);
  const out = path.join(dir, 'out');
  const r = await runCliAsync(['slurm', config, '--out', out, '--cpus', '1', '--shards', '2', '--smoke', '--backend', 'wasm']);
  assert.equal(r.code, 0, r.stderr);
  const script = path.join(dir, 'sweep.sbatch');
  writeFileSync(script, r.stdout);
  // a stand-in for scontrol that records how it was called
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'scontrol'), `#!/bin/sh\necho "$@" >> ${path.join(dir, 'scontrol.log')}\n`, { mode: 0o755 });
  const env = { PATH: `${bin}:${process.env.PATH}`, SLURM_JOB_ID: '41', SLURM_ARRAY_JOB_ID: '40', SLURM_ARRAY_TASK_ID: '1', SLURM_CPUS_PER_TASK: '1', SPARSEBENCH_STEP_DELAY_MS: '300' };
  const task = (sig: NodeJS.Signals, group: boolean) => async () => {
    const p = startCommand('bash', [script], env);
    await waitFor('the run started', () => runDirs(out).some((id) => hasFile(out, id, 'lock')));
    await sleep(800);
    process.kill(group ? -p.child.pid! : p.child.pid!, sig);
    return { ...(await p.exit), stdout: p.stdout(), stderr: p.stderr() };
  };
  const limit = await task('SIGUSR1', false)();
  assert.equal(limit.code, 0, limit.stderr);
  assert.match(limit.stdout, /shard 2\/2 from SLURM_ARRAY_TASK_ID=1/);
  assert.match(limit.stdout, /sparsebench: time limit: runs checkpointed; requeueing array task 40_1 \(job 41\)/);
  assert.equal(readFileSync(path.join(dir, 'scontrol.log'), 'utf8'), 'requeue 41\n');
  const id = runDirs(out).find((d) => hasFile(out, d, 'checkpoint.bin'));
  assert.ok(id && !hasFile(out, id, 'lock'), 'checkpointed, lock released');
  assert.equal(JSON.parse(readFileSync(path.join(out, id, 'config.json'), 'utf8')).provenance.scheduler.job_id, '41', 'the run records its SLURM job');

  const cancel = await task('SIGTERM', true)();
  assert.equal(cancel.code, 143, cancel.stderr);
  assert.match(cancel.stderr, /interrupted by SIGTERM: 1 run\(s\) checkpointed/);
  assert.equal(readFileSync(path.join(dir, 'scontrol.log'), 'utf8'), 'requeue 41\n', 'no requeue after scancel');
  assert.ok(!hasFile(out, id, 'lock'));

  const rest = startCommand('bash', [script], { ...env, SPARSEBENCH_STEP_DELAY_MS: '0' });
  assert.equal((await rest.exit).code, 0, rest.stderr());
  assert.match(rest.stdout(), new RegExp(`\\[${id}\\] resumed from epoch \\d, step [1-9]`));
  const config0 = JSON.parse(readFileSync(path.join(out, id, 'config.json'), 'utf8'));
  assert.equal(config0.resumes.length, 2);
  assert.equal(config0.resumes[1].scheduler.array_task_id, '1');
});

test('progress: plain lines off a TTY, a block redrawn in place on one', async () => {
  const runs = [{ id: 'aaaaaaaaaaaa', label: 'static [aaaaaaaaaaaa]', epochs: 2 }];
  const plain: string[] = [];
  const p = new Progress(runs, { total: 3, alreadyDone: 2, tty: false, workers: 1, write: (s) => plain.push(s) });
  p.event(1, { type: 'start', id: 'aaaaaaaaaaaa' });
  p.event(1, { type: 'step', id: 'aaaaaaaaaaaa', step: 1, total: 4, loss: 1 });
  p.event(1, { type: 'epoch', id: 'aaaaaaaaaaaa', m: { epoch: 1, step: 2, lr: 0.1, train_loss: 1, train_accuracy: 0.5, test_loss: 1, test_accuracy: 0.5, active_params: 1, wall_s: 1 } });
  p.event(1, { type: 'end', id: 'aaaaaaaaaaaa', status: 'done', test_accuracy: 0.5, wall_s: 1 });
  p.event(1, { type: 'epoch', id: 'aaaaaaaaaaaa', m: { epoch: 2, step: 4, lr: 0.1, train_loss: 1, train_accuracy: 0.5, test_loss: 1, test_accuracy: 0.5, active_params: 1, wall_s: 1, round: 2 } });
  p.close();
  assert.match(plain.pop()!, /round 2 epoch 2\/2 loss/);
  assert.equal(plain.length, 3, 'one line per start, epoch and end; none per step');
  assert.ok(plain.every((l) => !l.includes('\x1b') && l.endsWith('\n')));
  assert.match(plain[1], /epoch 1\/2 loss 1\.0000 test_acc 0\.5000 \| sweep ETA/);

  let screen = '';
  const t = new Progress(runs, { total: 3, alreadyDone: 2, tty: true, workers: 1, write: (s) => { screen += s; }, columns: () => 80 });
  t.event(1, { type: 'start', id: 'aaaaaaaaaaaa' });
  t.event(1, { type: 'step', id: 'aaaaaaaaaaaa', step: 1, total: 4, loss: 0.75 });
  await new Promise((r) => setTimeout(r, 150));
  assert.match(screen, /runs 2\/3 finished .* 1 running · ETA/);
  assert.match(screen, /epoch 1\/2 step 1\/4 loss 0\.7500/);
  t.event(1, { type: 'epoch', id: 'aaaaaaaaaaaa', m: { epoch: 1, step: 2, lr: 0.1, train_loss: 1, train_accuracy: 0.5, test_loss: 1, test_accuracy: 0.5, active_params: 1, wall_s: 1, round: 3 } });
  t.event(1, { type: 'step', id: 'aaaaaaaaaaaa', step: 3, total: 4, loss: 0.5 });
  await new Promise((r) => setTimeout(r, 150));
  assert.match(screen, /round 3 epoch 2\/2 step 3\/4 loss 0\.5000/, 'a multi-round run shows its round');
  t.event(1, { type: 'end', id: 'aaaaaaaaaaaa', status: 'done', test_accuracy: 0.5, wall_s: 1, emptyLayers: ['patch', 'fc1'] });
  t.close();
  assert.match(screen, /\x1b\[\d+F\x1b\[J/, 'redrawn in place');
  assert.match(screen, /\[1\/1\] static \[aaaaaaaaaaaa\] done test_acc 0\.5000; layers pruned to no connections: patch, fc1 \(1\.0s\)/);
});
