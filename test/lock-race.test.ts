/**
 * Stress test of the stale-lock takeover (harness/lock.ts): several processes race, round after
 * round, for a stale lock (a dead holder on this host, or a silent holder elsewhere). In every
 * round exactly one racer may believe it holds the lock, and the lock file must be that racer's.
 * Winners keep their lock until every racer is through all rounds, so a second winner is a
 * double holder, never a later legitimate one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { claimFile, readLock, tryLock } from '../harness/lock.js';
import { root } from './helpers.js';
import { tmpDir } from './sweep-util.js';

const RACERS = 6;
const ROUNDS = 150;
/** ms between the rounds' start instants: every racer tries round r at start + r * ROUND_MS */
const ROUND_MS = 25;
/** the lock code's file system calls, each delayed by up to JITTER_MS in the racers */
const JITTERED = ['readFileSync', 'statSync', 'writeFileSync', 'linkSync', 'renameSync', 'unlinkSync'];
const JITTER_MS = 1;

interface Win { round: number; token: string }

function racerScript(dir: string, start: number): string {
  const lockUrl = pathToFileURL(path.join(root, 'dist', 'harness', 'lock.js')).href;
  return `
    import path from 'node:path';
    import { createRequire, syncBuiltinESMExports } from 'node:module';
    // every file system call of the lock code first waits a random while, so the racers interleave
    // their steps in ever new orders (not only in the one their equal start favours)
    const fs = createRequire(import.meta.url)('node:fs');
    for (const name of ${JSON.stringify(JITTERED)}) {
      const call = fs[name];
      fs[name] = (...args) => {
        const until = performance.now() + Math.random() * ${JITTER_MS};
        while (performance.now() < until) {}
        return call(...args);
      };
    }
    syncBuiltinESMExports();
    const { tryLock } = await import(${JSON.stringify(lockUrl)});
    const won = [];
    for (let round = 0; round < ${ROUNDS}; round++) {
      while (Date.now() < ${start} + round * ${ROUND_MS}) {}
      const a = tryLock(path.join(${JSON.stringify(dir)}, 'lock-' + round), { staleMs: 60000, heartbeatMs: 0 });
      if (a.lock) won.push({ round, token: a.lock.info.token });
    }
    process.stdout.write(JSON.stringify(won) + '\\n');
    // a holder that exits leaves a stale lock (dead pid) that a late racer may rightly take: stay until told
    process.stdin.once('data', () => process.exit(0));`;
}

/** Starts a racer; resolves with its wins once it is through all rounds (it keeps its locks until `release`). */
function startRacer(script: string): { wins: Promise<Win[]>; release: () => Promise<void> } {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const closed = new Promise<void>((resolve, reject) => child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`racer exited with ${code}`)))));
  let out = '';
  const wins = new Promise<Win[]>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.endsWith('\n')) resolve(JSON.parse(out) as Win[]);
    });
    closed.catch(reject);
  });
  return { wins, release: () => { child.stdin.end('exit'); return closed; } };
}

test(`${RACERS} processes race for a stale lock ${ROUNDS} times: one holder per round, the lock file is the winner's`, async () => {
  const dir = tmpDir('lock-stress');
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const hourAgo = new Date(Date.now() - 3600_000);
  for (let round = 0; round < ROUNDS; round++) {
    const file = path.join(dir, `lock-${round}`);
    // even rounds: the holder's pid is dead on this host; odd rounds: a holder elsewhere went silent an hour ago
    const holder = round % 2 === 0 ? { host: os.hostname(), pid: deadPid } : { host: 'elsewhere', pid: 1 };
    writeFileSync(file, JSON.stringify({ ...holder, started: hourAgo.toISOString(), token: `stale-${round}` }) + '\n');
    if (round % 2 === 1) utimesSync(file, hourAgo, hourAgo);
  }
  // time for every racer to start and load the module before round 0
  const start = Date.now() + 1500;
  const script = racerScript(dir, start);
  const racers = Array.from({ length: RACERS }, () => startRacer(script));
  const wins = (await Promise.all(racers.map((r) => r.wins))).flat();
  await Promise.all(racers.map((r) => r.release()));

  const winnersOf = (round: number) => wins.filter((w) => w.round === round);
  const doubles = Array.from({ length: ROUNDS }, (_, round) => round).filter((round) => winnersOf(round).length > 1);
  assert.deepEqual(doubles, [], 'rounds with more than one holder');
  for (let round = 0; round < ROUNDS; round++) {
    const [winner] = winnersOf(round);
    assert.ok(winner, `round ${round}: nobody took over the stale lock`);
    assert.equal(readLock(path.join(dir, `lock-${round}`))?.info?.token, winner.token, `round ${round}: the lock file is the winner's`);
  }
  assert.deepEqual(readdirSync(dir).filter((f) => !/^lock-\d+$/.test(f)), [], 'no claim or temporary left behind');
});

test('a takeover claim left by a killed worker is claimed in turn; a live one keeps others off', () => {
  const dir = tmpDir('lock-claims');
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const plant = (file: string, holder: { host: string; pid: number }, token: string): string => {
    const raw = JSON.stringify({ ...holder, started: new Date().toISOString(), token }) + '\n';
    writeFileSync(file, raw);
    return raw;
  };
  const dead = { host: os.hostname(), pid: deadPid };

  // a stale lock whose first taker was killed mid-takeover, and so was the taker of that claim
  const file = path.join(dir, 'lock');
  const firstClaim = claimFile(file, plant(file, dead, 'stale'));
  const secondClaim = claimFile(file, plant(firstClaim, dead, 'killed-taker'));
  plant(secondClaim, dead, 'killed-taker-of-the-claim');
  const a = tryLock(file, { staleMs: 60_000, heartbeatMs: 0 });
  assert.ok(a.lock, 'the chain of dead claims does not block the lock forever');
  assert.match(a.tookOver ?? '', /is gone/);
  assert.deepEqual(readdirSync(dir), ['lock'], 'the claims passed on the way are removed');
  a.lock.release();
  assert.deepEqual(readdirSync(dir), [], 'release removes the lock and its own claim');

  // a live worker is taking the stale lock over right now: others leave it alone
  const busy = path.join(dir, 'busy');
  const liveClaim = claimFile(busy, plant(busy, dead, 'stale'));
  plant(liveClaim, { host: os.hostname(), pid: process.pid }, 'taking-over');
  const b = tryLock(busy, { staleMs: 60_000, heartbeatMs: 0 });
  assert.equal(b.lock, null);
  assert.equal(readLock(busy)?.info?.token, 'stale', 'the lock is left to the live claim');
});

test('release leaves the lock alone while a live takeover of it is under way', () => {
  const dir = tmpDir('lock-release');
  const file = path.join(dir, 'lock');
  const a = tryLock(file, { staleMs: 60_000, heartbeatMs: 0 });
  assert.ok(a.lock);
  const claim = claimFile(file, readLock(file)!.raw);
  writeFileSync(claim, JSON.stringify({ host: 'elsewhere', pid: 1, started: new Date().toISOString(), token: 'taker' }) + '\n');
  a.lock.release();
  assert.equal(readLock(file)?.info?.token, a.lock.info.token, 'the taker replaces it, release does not unlink it under the taker');
});
