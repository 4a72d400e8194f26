import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { readCheckpoint } from '../harness/checkpoint.js';
import { sweepFromConfig } from '../harness/config.js';
import { runId } from '../harness/spec.js';
import { comparable, csvRows, gridConfig, hasFile, runCliAsync, runDirs, snapshot, startCli, tmpDir, waitFor } from './sweep-util.js';

const RUNS = 4;
const dir = tmpDir('kill');
const config = gridConfig(dir, RUNS);
const ids = sweepFromConfig(JSON.parse(readFileSync(config, 'utf8')), config, true).specs.map(runId).sort();
const ref = path.join(dir, 'ref');
const common = ['--smoke', '--backend', 'wasm'];
/** slows each step so that a test can stop the sweep in the middle of a run */
const slow = { SPARSEBENCH_STEP_DELAY_MS: '150' };

before(async () => {
  // the reference: the same grid, never interrupted
  const r = await runCliAsync(['run', config, '--out', ref, '--jobs', '1', ...common]);
  assert.equal(r.code, 0, r.stderr);
});

/** Every grid cell exactly once in results.csv, each folder complete and clean, each run equal to the reference. */
function assertComplete(out: string): void {
  const rows = csvRows(out);
  assert.deepEqual(rows.map((r) => r.run_id).sort(), ids, 'results.csv: every grid cell once');
  assert.ok(rows.every((r) => r.status === 'done'));
  assert.deepEqual(runDirs(out), ids);
  assert.deepEqual(readdirSync(out).filter((f) => !ids.includes(f)), ['results.csv'], 'no stray files in the sweep folder');
  for (const id of ids) {
    assert.deepEqual(readdirSync(path.join(out, id)).sort(), ['config.json', 'metrics.jsonl', 'result.json'], `${id}: no lock, checkpoint or temporary left`);
    assert.deepEqual(comparable(out, id), comparable(ref, id), `${id}: same metrics and result as the uninterrupted run`);
  }
}

/** How often each run id was started or resumed in a CLI output. */
function starts(stdout: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const hit = /\[([0-9a-f]{12})\] (started|resumed)/.exec(line);
    if (hit) m.set(hit[1], (m.get(hit[1]) ?? 0) + 1);
  }
  return m;
}

test('kill -9 of a sweep with 2 workers mid-way, then resume: every cell once, finished runs untouched, same metrics', async () => {
  const out = path.join(dir, 'killed');
  const p = startCli(['run', config, '--out', out, '--jobs', '2', ...common], slow);
  const finished = () => ids.filter((id) => hasFile(out, id, 'result.json') && !hasFile(out, id, 'lock') && !hasFile(out, id, 'checkpoint.bin'));
  await waitFor('a finished run and one in the middle', () => finished().length >= 1 && ids.some((id) => hasFile(out, id, 'checkpoint.bin') && !hasFile(out, id, 'result.json')));
  process.kill(-p.child.pid!, 'SIGKILL');
  await p.exit;
  const done = finished();
  const withResult = ids.filter((id) => hasFile(out, id, 'result.json'));
  assert.ok(done.length >= 1 && withResult.length < RUNS, `killed mid-way (${done.length} finished)`);
  const before = Object.fromEntries(done.map((id) => [id, snapshot(path.join(out, id))]));
  // nothing half-written: every file there parses (a run killed between taking its lock and
  // starting its files has a folder with only the lock in it)
  for (const id of runDirs(out)) {
    const d = path.join(out, id);
    if (existsSync(path.join(d, 'result.json'))) JSON.parse(readFileSync(path.join(d, 'result.json'), 'utf8'));
    if (existsSync(path.join(d, 'config.json'))) JSON.parse(readFileSync(path.join(d, 'config.json'), 'utf8'));
    if (existsSync(path.join(d, 'metrics.jsonl'))) readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).forEach((l) => JSON.parse(l));
    else assert.ok(!existsSync(path.join(d, 'config.json')), `${id}: config.json written but no metrics.jsonl`);
    readCheckpoint(path.join(d, 'checkpoint.bin'), id);
  }

  const r = await runCliAsync(['run', config, '--out', out, '--jobs', '2', ...common]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${withResult.length} of ${RUNS} runs already done`));
  const again = starts(r.stdout);
  assert.deepEqual([...again.keys()].sort(), ids.filter((id) => !withResult.includes(id)), 'only the unfinished runs ran again');
  assert.ok([...again.values()].every((n) => n === 1));
  assert.match(r.stdout, /resumed from epoch \d+, step \d+/);
  for (const id of done) assert.deepEqual(snapshot(path.join(out, id)), before[id], `${id} finished before the kill and stays untouched`);
  assertComplete(out);
});

test('SIGTERM: each worker finishes its step, checkpoints, exits non-zero with one line; the resumed sweep equals the uninterrupted one', async () => {
  const out = path.join(dir, 'term');
  const p = startCli(['run', config, '--out', out, '--jobs', '2', ...common], slow);
  await waitFor('runs in the middle', () => ids.filter((id) => hasFile(out, id, 'lock')).length === 2 && readdirSync(out).some((id) => existsSync(path.join(out, id, 'checkpoint.bin'))));
  process.kill(p.child.pid!, 'SIGTERM');
  const { code } = await p.exit;
  assert.equal(code, 143, p.stderr());
  const lines = p.stderr().trim().split('\n');
  assert.equal(lines.length, 1, p.stderr());
  const m = /^sparsebench: interrupted by SIGTERM: (\d+) run\(s\) checkpointed, \d+ finished; run the same command again to resume$/.exec(lines[0]);
  assert.ok(m, lines[0]);
  const unfinished = ids.filter((id) => existsSync(path.join(out, id)) && !hasFile(out, id, 'result.json'));
  assert.ok(unfinished.length >= 1, 'stopped in the middle of a run');
  assert.equal(Number(m[1]), unfinished.length);
  for (const id of unfinished) {
    assert.ok(hasFile(out, id, 'checkpoint.bin'), `${id} checkpointed`);
    assert.equal(hasFile(out, id, 'lock'), false, `${id} lock released`);
  }
  const r = await runCliAsync(['run', config, '--out', out, '--jobs', '2', ...common]);
  assert.equal(r.code, 0, r.stderr);
  for (const id of unfinished) assert.match(r.stdout, new RegExp(`\\[${id}\\] resumed from epoch \\d, step [1-9]\\d*`));
  assertComplete(out);
});

test('two invocations at once on one folder: each run trained once, no duplicate rows; with --wait both exit 0 once the grid is complete', async () => {
  const out = path.join(dir, 'twice');
  const a = startCli(['run', config, '--out', out, '--jobs', '1', '--wait', ...common], { SPARSEBENCH_STEP_DELAY_MS: '40' });
  const b = startCli(['run', config, '--out', out, '--jobs', '1', '--wait', ...common], { SPARSEBENCH_STEP_DELAY_MS: '40' });
  const [ea, eb] = await Promise.all([a.exit, b.exit]);
  assert.equal(ea.code, 0, a.stderr());
  assert.equal(eb.code, 0, b.stderr());
  const sa = starts(a.stdout());
  const sb = starts(b.stdout());
  for (const id of ids) assert.equal((sa.get(id) ?? 0) + (sb.get(id) ?? 0), 1, `${id} trained by exactly one invocation`);
  assertComplete(out);
});
