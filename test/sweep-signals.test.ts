/**
 * Stopping a `--jobs 2` sweep in the middle of an epoch by a signal to the process group (Ctrl-C,
 * scancel), to the sweep process only or to one worker, once or twice in quick succession: every
 * running run checkpoints, every lock is released, and the resumed sweep equals one never stopped.
 * A second signal well after the first stops at once (no checkpoint) and still leaves no lock.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { sweepFromConfig } from '../harness/config.js';
import { runId } from '../harness/spec.js';
import { comparable, csvRows, gridConfig, hasFile, runCliAsync, sleep, startCli, tmpDir, waitFor, type Proc } from './sweep-util.js';

const RUNS = 2;
const dir = tmpDir('signals');
const config = gridConfig(dir, RUNS);
const ids = sweepFromConfig(JSON.parse(readFileSync(config, 'utf8')), config, false).specs.map(runId).sort();
const ref = path.join(dir, 'ref');
const common = ['--backend', 'wasm', '--jobs', '2'];
/** 256 samples / batch 8 = 32 steps per epoch of 150 ms: a signal sent a few steps into the first epoch lands mid-epoch */
const slow = { SPARSEBENCH_STEP_DELAY_MS: '150' };
/** steps of 600 ms: a second signal shortly after the first reaches processes that have not stopped yet */
const slower = { SPARSEBENCH_STEP_DELAY_MS: '600' };

before(async () => {
  const r = await runCliAsync(['run', config, '--out', ref, '--jobs', '1', '--backend', 'wasm']);
  assert.equal(r.code, 0, r.stderr);
});

type Target = 'group' | 'parent' | 'worker';

/** Starts the sweep and returns once both workers are a few steps into their first epoch. */
async function startMidEpoch(out: string, env: Record<string, string>): Promise<{ p: Proc; workerPid: number }> {
  const p = startCli(['run', config, '--out', out, ...common], env);
  await waitFor('both runs locked', () => ids.every((id) => hasFile(out, id, 'lock')));
  await sleep(1300);
  const workerPid = (JSON.parse(readFileSync(path.join(out, ids[0], 'lock'), 'utf8')) as { pid: number }).pid;
  assert.notEqual(workerPid, p.child.pid, 'the runs are held by worker processes');
  return { p, workerPid };
}

function send(target: Target, sig: NodeJS.Signals, p: Proc, workerPid: number): void {
  if (target === 'group') process.kill(-p.child.pid!, sig);
  else if (target === 'parent') process.kill(p.child.pid!, sig);
  else process.kill(workerPid, sig);
}

/** No lock, temporary or stale lock in any run folder. */
function assertNoLocks(out: string): void {
  for (const id of ids) {
    const left = readdirSync(path.join(out, id)).filter((f) => f === 'lock' || f.startsWith('lock.') || f.endsWith('.tmp'));
    assert.deepEqual(left, [], `${id}: no lock left`);
  }
}

/** Resumes the sweep and checks every cell is done once and equals the uninterrupted reference. */
async function assertResumesToReference(out: string, midEpoch: boolean): Promise<void> {
  // in one process: resuming does not depend on the number of workers, and it is cheaper
  const r = await runCliAsync(['run', config, '--out', out, '--backend', 'wasm', '--jobs', '1']);
  assert.equal(r.code, 0, r.stderr);
  for (const id of ids) {
    assert.match(r.stdout, new RegExp(`\\[${id}\\] resumed from epoch \\d, step ${midEpoch ? '[1-9]\\d*' : '\\d+'}`), `${id} resumed from its checkpoint`);
  }
  assert.deepEqual(csvRows(out).map((row) => row.run_id).sort(), ids);
  for (const id of ids) assert.deepEqual(comparable(out, id), comparable(ref, id), `${id}: same metrics as the uninterrupted run`);
}

const cases: { target: Target; sig: NodeJS.Signals; times: 1 | 2 }[] = [];
for (const target of ['group', 'parent', 'worker'] as Target[]) {
  for (const sig of ['SIGINT', 'SIGTERM'] as NodeJS.Signals[]) cases.push({ target, sig, times: 1 });
  cases.push({ target, sig: target === 'worker' ? 'SIGINT' : 'SIGTERM', times: 2 });
}

for (const { target, sig, times } of cases) {
  test(`${sig} ${times === 2 ? 'twice in quick succession ' : ''}to ${target === 'group' ? 'the process group' : target === 'parent' ? 'the sweep process' : 'one worker'} mid-epoch: every run checkpointed, no lock left, resumes bit-identical`, async () => {
    const out = path.join(dir, `${target}-${sig}-${times}`);
    const { p, workerPid } = await startMidEpoch(out, times === 2 ? slower : slow);
    send(target, sig, p, workerPid);
    if (times === 2) {
      // the processes stop at the end of their current step (600 ms), so they are almost always
      // still there 30 ms later; when they are already gone, the stop was complete after one signal
      await sleep(30);
      try { send(target, sig, p, workerPid); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; }
    }
    const { code } = await p.exit;
    assert.equal(code, sig === 'SIGINT' ? 130 : 143, p.stderr());
    const lines = p.stderr().trim().split('\n');
    assert.deepEqual(lines, [`sparsebench: interrupted by ${sig}: ${RUNS} run(s) checkpointed, 0 finished; run the same command again to resume`]);
    for (const id of ids) {
      assert.ok(hasFile(out, id, 'checkpoint.bin'), `${id} checkpointed`);
      assert.equal(hasFile(out, id, 'result.json'), false);
    }
    assertNoLocks(out);
    await assertResumesToReference(out, true);
  });
}

test('a second SIGTERM well after the first stops at once: exit 143, no lock left, the last checkpoints resume bit-identical', async () => {
  const out = path.join(dir, 'hard');
  const p = startCli(['run', config, '--out', out, ...common], slow);
  await waitFor('both runs past their first epoch', () => ids.every((id) => hasFile(out, id, 'checkpoint.bin') && hasFile(out, id, 'lock')), 60_000);
  // the workers are frozen, so the stop asked by the first signal cannot happen before the second
  const workers = ids.map((id) => (JSON.parse(readFileSync(path.join(out, id, 'lock'), 'utf8')) as { pid: number }).pid);
  for (const pid of workers) process.kill(pid, 'SIGSTOP');
  process.kill(p.child.pid!, 'SIGTERM');
  await sleep(2500);
  process.kill(p.child.pid!, 'SIGTERM');
  const { code } = await p.exit;
  assert.equal(code, 143, p.stderr());
  assert.match(p.stderr(), /SIGTERM again: stopped at once/);
  assertNoLocks(out);
  for (const id of ids) assert.ok(hasFile(out, id, 'checkpoint.bin'), `${id}: its last checkpoint stays`);
  await assertResumesToReference(out, false);
});
