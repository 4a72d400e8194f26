import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LockLost, processStart, readLock, tryLock } from '../harness/lock.js';
import { root } from './helpers.js';
import { sweepFromConfig } from '../harness/config.js';
import { runId } from '../harness/spec.js';
import { csvRows, gridConfig, runCliAsync, runDirs, sleep, startCli, tmpDir, waitFor } from './sweep-util.js';

const fast = { staleMs: 60_000, heartbeatMs: 0 };

function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

function plant(file: string, info: { host: string; pid: number; pstart?: string; boot?: string }, ageS = 0): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ ...info, started: new Date().toISOString(), token: 'planted' }) + '\n');
  if (ageS) { const t = new Date(Date.now() - ageS * 1000); utimesSync(file, t, t); }
}

test('a lock is exclusive and says who holds it; release frees it', () => {
  const file = path.join(tmpDir('lock'), 'lock');
  const a = tryLock(file, fast);
  assert.ok(a.lock);
  const info = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(info.host, os.hostname());
  assert.equal(info.pid, process.pid);
  assert.ok(Date.parse(info.started) > Date.now() - 60_000);
  const b = tryLock(file, fast);
  assert.equal(b.lock, null);
  assert.equal(b.lock === null && b.holder?.info?.token, info.token);
  a.lock.release();
  assert.equal(existsSync(file), false);
  const c = tryLock(file, fast);
  assert.ok(c.lock);
  c.lock.release();
  assert.deepEqual(readdirSync(path.dirname(file)), [], 'no temporaries left');
});

test('stale locks are taken over: dead pid on this host, or no heartbeat; a fresh one elsewhere is not', () => {
  const dir = tmpDir('lock');
  const dead = path.join(dir, 'a', 'lock');
  plant(dead, { host: os.hostname(), pid: deadPid() });
  const a = tryLock(dead, fast);
  assert.ok(a.lock);
  assert.match(a.tookOver ?? '', /pid \d+ on .* is gone/);
  a.lock.release();

  const silent = path.join(dir, 'b', 'lock');
  plant(silent, { host: 'elsewhere', pid: 1 }, 120);
  const b = tryLock(silent, fast);
  assert.ok(b.lock);
  assert.match(b.tookOver ?? '', /elsewhere pid 1: no heartbeat for 1[12]\ds/);
  b.lock.release();

  const busy = path.join(dir, 'c', 'lock');
  plant(busy, { host: 'elsewhere', pid: 1 }, 10);
  const c = tryLock(busy, fast);
  assert.equal(c.lock, null);
  assert.equal(readLock(busy)?.info?.token, 'planted', 'a live lock is left alone');
});

test('stale by identity (Linux /proc): a live pid that is not the holder any more, a rebooted host; the holder with its start time is not stale', { skip: processStart(process.pid) === undefined ? 'no /proc/<pid>/stat here: process start times cannot be read' : false }, () => {
  const dir = tmpDir('lock');
  // a live pid that is not the holder any more (a restarted container reuses pids), a rebooted host
  const reused = path.join(dir, 'r', 'lock');
  plant(reused, { host: os.hostname(), pid: process.pid, pstart: '1' });
  const r = tryLock(reused, fast);
  assert.ok(r.lock);
  assert.match(r.tookOver ?? '', /reused by another process/);
  r.lock.release();
  const rebooted = path.join(dir, 'b2', 'lock');
  plant(rebooted, { host: os.hostname(), pid: process.pid, boot: 'another-boot' });
  const b2 = tryLock(rebooted, fast);
  assert.ok(b2.lock);
  assert.match(b2.tookOver ?? '', /rebooted/);
  b2.lock.release();
  const mine = path.join(dir, 'm', 'lock');
  plant(mine, { host: os.hostname(), pid: process.pid, pstart: processStart(process.pid) });
  assert.equal(tryLock(mine, fast).lock, null, 'the pid with its start time is the holder');
});

test('the heartbeat keeps a lock fresh; a holder whose lock was taken over notices and never deletes the new one', async () => {
  const file = path.join(tmpDir('lock'), 'lock');
  const a = tryLock(file, { staleMs: 60_000, heartbeatMs: 40 });
  assert.ok(a.lock);
  const old = new Date(Date.now() - 3600_000);
  utimesSync(file, old, old);
  await waitFor('a heartbeat', () => statSync(file).mtimeMs > Date.now() - 5_000, 5_000);
  assert.equal(a.lock.isLost(), false);
  a.lock.assertHeld();
  // another worker takes it over (as after a long stall)
  plant(file, { host: 'elsewhere', pid: 1 });
  await waitFor('the holder to notice', () => a.lock!.isLost(), 5_000);
  assert.throws(() => a.lock!.assertHeld(), LockLost);
  a.lock.release();
  assert.equal(readLock(file)?.info?.token, 'planted');
});

/** `n` processes try to take the same lock at the same instant; returns how many got it. */
async function race(file: string, n: number): Promise<number> {
  const lockUrl = pathToFileURL(path.join(root, 'dist', 'harness', 'lock.js')).href;
  const at = Date.now() + 1000;
  // each racer holds what it got until every racer has tried (the test then writes to their stdin)
  const script = `
    import { tryLock } from ${JSON.stringify(lockUrl)};
    while (Date.now() < ${at}) {}
    const a = tryLock(${JSON.stringify(file)}, { staleMs: 60000, heartbeatMs: 0 });
    process.stdout.write(a.lock ? 'won' : 'lost');
    process.stdin.once('data', () => { a.lock?.release(); process.exit(0); });`;
  const racers = Array.from({ length: n }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const outs = await Promise.all(racers.map((c) => new Promise<string>((resolve) => c.stdout.once('data', (d) => resolve(String(d))))));
  await Promise.all(racers.map((c) => new Promise((resolve) => { c.on('close', resolve); c.stdin.end('go'); })));
  return outs.filter((o) => o === 'won').length;
}

test('racing workers: exactly one gets a free lock, exactly one takes over a stale one', async () => {
  const dir = tmpDir('lock-race');
  assert.equal(await race(path.join(dir, 'free'), 5), 1);
  const stale = path.join(dir, 'stale');
  plant(stale, { host: os.hostname(), pid: deadPid() });
  assert.equal(await race(stale, 5), 1);
  assert.deepEqual(readdirSync(dir).sort(), [], 'no lock or temporary left behind');
});

test('run takes over stale run locks, leaves a live one to its holder, and status shows it running', async () => {
  const dir = tmpDir('lock-cli');
  const config = gridConfig(dir, 4);
  const out = path.join(dir, 'out');
  const ids = sweepFromConfig(JSON.parse(readFileSync(config, 'utf8')), config, true).specs.map(runId);
  plant(path.join(out, ids[0], 'lock'), { host: os.hostname(), pid: deadPid() });
  plant(path.join(out, ids[1], 'lock'), { host: 'node17', pid: 4242 }, 3600);
  plant(path.join(out, ids[2], 'lock'), { host: 'node17', pid: 4243 });
  // temporaries of writers killed mid-write (kill -9): of the results lock's claims and of a run's lock
  const dead = deadPid();
  const killedTemps = [path.join(out, `.results.lock.takeover.0123456789abcdef.${os.hostname()}.${dead}.1a2b3c4d.tmp`), path.join(out, ids[3], `lock.${os.hostname()}.${dead}.5e6f7a8b.tmp`)];
  const liveTemp = path.join(out, `.results.lock.${os.hostname()}.${process.pid}.9c0d1e2f.tmp`);
  for (const f of [...killedTemps, liveTemp]) { mkdirSync(path.dirname(f), { recursive: true }); writeFileSync(f, '{}'); }
  const r = await runCliAsync(['run', config, '--smoke', '--out', out, '--backend', 'wasm', '--jobs', '1']);
  for (const f of killedTemps) assert.equal(existsSync(f), false, `${f}: a dead writer's temporary is swept`);
  assert.ok(existsSync(liveTemp), 'a live writer\'s fresh temporary is left alone');
  unlinkSync(liveTemp);
  assert.equal(r.code, 3, 'a run left to a live worker elsewhere: the grid is not complete');
  assert.equal(r.stderr, 'sparsebench: 1 of 4 runs not done: 1 locked by live workers elsewhere (--wait waits for them)\n');
  assert.match(r.stdout, new RegExp(`\\[${ids[0]}\\] started \\(took over a stale lock: .* is gone\\)`));
  assert.match(r.stdout, new RegExp(`\\[${ids[1]}\\] started \\(took over a stale lock: node17 pid 4242: no heartbeat`));
  assert.doesNotMatch(r.stdout, new RegExp(`\\[${ids[2]}\\] started`));
  assert.match(r.stdout, /finished: 3 done, 0 diverged, 0 failed, 0 skipped;/);
  assert.deepEqual(csvRows(out).map((row) => row.run_id).sort(), [ids[0], ids[1], ids[3]].sort());
  assert.deepEqual(runDirs(out), [...ids].sort());
  const s = await runCliAsync(['status', out, '--config', config]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /4 runs \(4 in .*\): 3 done, 1 running, 0 failed, 0 diverged, 0 pending/);
  assert.match(s.stdout, new RegExp(`${ids[2]}\\s+running .*node17 pid 4243`));
});

test('--wait: a run locked by a live worker elsewhere is waited for, then run once its lock is gone; exit 0', async () => {
  const dir = tmpDir('lock-wait');
  const config = gridConfig(dir, 2);
  const out = path.join(dir, 'out');
  const ids = sweepFromConfig(JSON.parse(readFileSync(config, 'utf8')), config, true).specs.map(runId);
  const held = path.join(out, ids[0], 'lock');
  // a live holder on another host: its heartbeat keeps the lock fresh until it lets go
  plant(held, { host: 'node17', pid: 4243 });
  const heartbeat = setInterval(() => { const t = new Date(); utimesSync(held, t, t); }, 200);
  const p = startCli(['run', config, '--smoke', '--out', out, '--backend', 'wasm', '--jobs', '1', '--wait', '--lock-timeout', '5']);
  try {
    await waitFor('the free run done', () => existsSync(path.join(out, ids[1], 'result.json')));
    await sleep(1500);
    assert.equal(existsSync(path.join(out, ids[0], 'result.json')), false, 'the held run is left to its holder meanwhile');
    assert.equal(p.child.exitCode, null, 'still waiting');
  } finally {
    clearInterval(heartbeat);
    unlinkSync(held);
  }
  const { code } = await p.exit;
  assert.equal(code, 0, p.stderr());
  assert.equal(p.stderr(), '');
  assert.match(p.stdout(), new RegExp(`\\[${ids[0]}\\] started\\n`));
  assert.deepEqual(csvRows(out).map((row) => row.run_id).sort(), [...ids].sort());
});
