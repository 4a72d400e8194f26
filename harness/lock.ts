import { linkSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { asDiskFull } from '../core/errors.js';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Exclusive locks on a shared folder (one machine or a shared file system), one file each.
 *
 * The lock file holds who holds it (host, pid, start time, a random token). It is created
 * complete and exclusively (written to a temporary name, then hard-linked to the lock name,
 * which fails when the name exists; that is atomic on local file systems and NFS). While held,
 * a heartbeat thread touches it (mtime), so a holder busy in a long computation stays fresh.
 * A lock is stale when its holder's pid is dead on this host, or its mtime is older than the
 * stale timeout.
 *
 * Taking over a stale lock, and releasing one, go through takeover claims. The claim on content
 * X is the file `<lock>.takeover.<hash of X>`, created exclusively like the lock. The rule:
 *
 *   the lock file, while its content is X, is replaced or removed only by the holder of the
 *   right over X, and that right belongs to the creator of the claim on X; when the claim's
 *   creator is itself stale, to the creator of the claim on the claim's content, and so on
 *   down the chain (a worker killed mid-takeover leaves a claim that the next one claims).
 *
 * Why no interleaving gives two holders:
 * 1. At any instant at most one live process holds the right over X: each link of the chain is
 *    created exclusively, a link is followed only when its creator is stale (dead, on this host
 *    exactly by pid and start time; elsewhere by the same timeout that judges the lock itself),
 *    and the only link removed while the lock may still read X is the remover's own last link,
 *    which gives the chain back as it was before.
 * 2. The lock's content changes in three ways only: an exclusive create (only while no file
 *    exists), a replacement (rename over it) or an unlink. Both of the last two are done by the
 *    holder of the right over the current content, after re-reading that the content is still X.
 *    Nobody else may change a file that reads X, and it cannot vanish to be re-created by another
 *    worker without an unlink, which needs the right. So between that re-read and the rename
 *    (or unlink) the file stays X: the takeover replaces exactly the lock judged stale.
 * 3. Contents never repeat (a random token each), so once the lock has moved past X, every claim
 *    on X, old or late, is harmless: its holder re-reads, sees another content, and backs off.
 *    That is what a worker still holding an old reading of a stale lock meets.
 * 4. release() takes the right over its own content before it unlinks, so it never removes a
 *    lock that replaced its own between its check and its unlink; if a takeover of its lock is
 *    under way (the claim exists), it leaves the file to that takeover.
 * The timeouts of other hosts are the one assumption (a holder silent for longer is dead), as
 * for any lease; on one host, or with live heartbeats, nothing depends on timing.
 */

export interface LockInfo {
  host: string;
  pid: number;
  started: string;
  token: string;
  /** Linux: the holder's process start time (clock ticks since boot), to tell a reused pid */
  pstart?: string;
  /** Linux: the boot id of the holder's host, to tell a reboot (or another machine with the same name) */
  boot?: string;
}

export interface LockOptions {
  /** a lock whose heartbeat is older than this is stale (ms) */
  staleMs: number;
  /** touch interval while held (ms); 0: no heartbeat (for locks held a short while) */
  heartbeatMs: number;
}

export const defaultLockOptions: LockOptions = { staleMs: 300_000, heartbeatMs: 15_000 };

export class LockLost extends Error {
  constructor(file: string) {
    super(`lock ${file} was taken over by another worker`);
    this.name = 'LockLost';
  }
}

const host = os.hostname();

function unique(): string {
  return `${host}.${process.pid}.${randomBytes(4).toString('hex')}`;
}

export interface SeenLock {
  raw: string;
  info: LockInfo | null;
  mtimeMs: number;
}

/** The lock file's content and heartbeat, or null when there is none. */
export function readLock(file: string): SeenLock | null {
  try {
    const raw = readFileSync(file, 'utf8');
    const mtimeMs = statSync(file).mtimeMs;
    let info: LockInfo | null = null;
    try { info = JSON.parse(raw) as LockInfo; } catch { info = null; }
    return { raw, info, mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function readText(file: string): string | undefined {
  try { return readFileSync(file, 'utf8').trim(); } catch { return undefined; }
}

/** A process's start time in clock ticks since boot (Linux), or undefined elsewhere. */
export function processStart(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // the fields after "(comm)": state is field 3, starttime field 22
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

const bootId = readText('/proc/sys/kernel/random/boot_id');

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // a killed process not yet reaped by its parent (a zombie) is dead too (Linux)
  const stat = readText(`/proc/${pid}/stat`);
  return !(stat && stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z'));
}

/** Why a lock is stale, or null when its holder looks alive. */
export function staleReason(seen: SeenLock, staleMs: number, now = Date.now()): string | null {
  const info = seen.info;
  if (info && info.host === host && Number.isInteger(info.pid)) {
    if (info.boot && bootId && info.boot !== bootId) return `${host} was rebooted since`;
    if (!pidAlive(info.pid)) return `pid ${info.pid} on ${host} is gone`;
    // the pid lives, but is it still the holder? (pids are reused, e.g. by a restarted container)
    if (info.pstart) {
      const now = processStart(info.pid);
      if (now !== undefined && now !== info.pstart) return `pid ${info.pid} on ${host} is gone (reused by another process)`;
    }
  }
  const age = now - seen.mtimeMs;
  if (age > staleMs) return `no heartbeat for ${Math.round(age / 1000)}s`;
  return null;
}

/** Creates `file` with `content` only if it does not exist; true when created. */
function createExclusive(file: string, content: string): boolean {
  for (let attempt = 0; ; attempt++) {
    const tmp = `${file}.${unique()}.tmp`;
    try {
      // inside the try: a write that fails part-way (a full disk) leaves no temporary behind
      writeFileSync(tmp, content);
      linkSync(tmp, file);
      return true;
    } catch (e) {
      const full = asDiskFull(e, file);
      if (full) throw full;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      // our temporary was swept away by a clean-up in between: write it again
      if (code === 'ENOENT' && attempt < 3) continue;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
      // a file system without hard links: exclusive create (content written right after)
      try {
        writeFileSync(file, content, { flag: 'wx' });
        return true;
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e2;
      }
    } finally {
      try { unlinkSync(tmp); } catch { /* already gone */ }
    }
  }
}

/** The takeover claim on a lock (or claim) whose content is `raw`. */
export function claimFile(file: string, raw: string): string {
  return `${file}.takeover.${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`;
}

function unlinkQuietly(file: string): void {
  try { unlinkSync(file); } catch { /* already gone */ }
}

/** A chain of stale claims longer than this is left alone (each link is a worker killed mid-takeover). */
const MAX_CLAIM_CHAIN = 8;

/**
 * Takes the right over the lock content `raw` (see the header): creates the claim on it, or,
 * while the claim found there is stale, the claim on that claim. Returns the claim created and
 * the stale claims passed on the way (root first), or null when a live worker holds the right.
 */
function claimRight(file: string, raw: string, claimer: LockInfo, staleMs: number): { mine: string; passed: string[] } | null {
  // a token of its own: a claim never reads like the lock, or another claim, it is keyed by
  const content = lockContent({ ...claimer, token: randomBytes(12).toString('hex') });
  const passed: string[] = [];
  let target = raw;
  for (let attempt = 0; attempt < 2 * MAX_CLAIM_CHAIN && passed.length < MAX_CLAIM_CHAIN; attempt++) {
    const claim = claimFile(file, target);
    if (createExclusive(claim, content)) return { mine: claim, passed };
    const blocker = readLock(claim);
    if (!blocker) continue; // its holder just removed it: try again
    if (!staleReason(blocker, staleMs)) return null;
    passed.push(claim);
    target = blocker.raw;
  }
  return null;
}

/**
 * Under the right over `raw`: if the lock file still reads `raw` and `act` agrees, `act` replaces
 * or removes it. The claims are removed afterwards: all of them once the lock has moved on, only
 * our own when it still reads `raw` (the stale chain stays as it was). False without the right or
 * when the lock had changed.
 */
function withRight(file: string, raw: string, claimer: LockInfo, staleMs: number, act: (now: SeenLock) => boolean): boolean {
  const right = claimRight(file, raw, claimer, staleMs);
  if (!right) return false;
  const now = readLock(file);
  const acted = now !== null && now.raw === raw && act(now);
  unlinkQuietly(right.mine);
  if (acted || now?.raw !== raw) for (const claim of right.passed) unlinkQuietly(claim);
  return acted;
}

/** Replaces the stale lock `seen` with a lock held by `info`; false when someone else is taking it over or it changed. */
function takeOver(file: string, seen: SeenLock, info: LockInfo, staleMs: number): boolean {
  return withRight(file, seen.raw, info, staleMs, (now) => {
    if (!staleReason(now, staleMs)) return false; // its holder came back to life meanwhile
    const tmp = `${file}.${unique()}.tmp`;
    try {
      writeFileSync(tmp, lockContent(info));
      renameSync(tmp, file);
    } catch (e) {
      try { unlinkSync(tmp); } catch { /* not written */ }
      throw asDiskFull(e, file) ?? e;
    }
    return true;
  });
}

const heartbeatCode = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { file, token, intervalMs, flags } = workerData;
const f = new Int32Array(flags);
const pause = new Int32Array(new SharedArrayBuffer(4));
const held = () => {
  for (let attempt = 0; attempt < 3; attempt++) {
    try { if (JSON.parse(fs.readFileSync(file, 'utf8')).token === token) return true; } catch {}
    Atomics.wait(pause, 0, 0, 200);
  }
  return false;
};
const timer = setInterval(() => {
  if (Atomics.load(f, 1)) { clearInterval(timer); return; }
  if (!held()) { Atomics.store(f, 0, 1); clearInterval(timer); return; }
  const now = new Date();
  try { fs.utimesSync(file, now, now); } catch {}
}, intervalMs);
`;

/** A held lock. Its heartbeat runs in its own thread, so it stays fresh while the main thread computes. */
export class Lock {
  /** [0]: 1 once the lock was found taken over; [1]: 1 once released */
  private readonly flags = new Int32Array(new SharedArrayBuffer(8));
  private heartbeat: Worker | null = null;
  private released = false;

  constructor(readonly file: string, readonly info: LockInfo, private readonly o: LockOptions) {
    if (o.heartbeatMs > 0) {
      this.heartbeat = new Worker(heartbeatCode, {
        eval: true,
        workerData: { file, token: info.token, intervalMs: o.heartbeatMs, flags: this.flags.buffer },
      });
      this.heartbeat.unref();
      this.heartbeat.on('error', () => { /* a failed heartbeat only makes the lock go stale */ });
    }
  }

  /** Whether the heartbeat found another worker's lock in place of this one. */
  isLost(): boolean {
    return Atomics.load(this.flags, 0) === 1;
  }

  /** Throws LockLost unless the lock file still holds this lock (checked before every write to the run). */
  assertHeld(): void {
    if (this.isLost()) throw new LockLost(this.file);
    for (let attempt = 0; attempt < 3; attempt++) {
      const seen = readLock(this.file);
      if (seen?.info?.token === this.info.token) return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
    Atomics.store(this.flags, 0, 1);
    throw new LockLost(this.file);
  }

  /** Touches the lock now (the heartbeat thread does this periodically). */
  touch(): void {
    const now = new Date();
    try { utimesSync(this.file, now, now); } catch { /* ignore */ }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    Atomics.store(this.flags, 1, 1);
    void this.heartbeat?.terminate();
    this.heartbeat = null;
    withRight(this.file, lockContent(this.info), this.info, this.o.staleMs, () => {
      unlinkSync(this.file);
      return true;
    });
  }
}

const myStart = processStart(process.pid);

/** What a lock file holds: its holder, one JSON line. */
function lockContent(info: LockInfo): string {
  return JSON.stringify(info) + '\n';
}

export type LockAttempt = { lock: Lock; tookOver?: string } | { lock: null; holder: SeenLock | null };

/** Takes the lock `file` if it is free or stale; otherwise reports who holds it. Never blocks. */
export function tryLock(file: string, o: LockOptions = defaultLockOptions): LockAttempt {
  const info: LockInfo = {
    host, pid: process.pid, started: new Date().toISOString(), token: randomBytes(12).toString('hex'),
    ...(myStart ? { pstart: myStart } : {}), ...(bootId ? { boot: bootId } : {}),
  };
  for (let attempt = 0; attempt < 4; attempt++) {
    if (createExclusive(file, lockContent(info))) return { lock: new Lock(file, info, o) };
    const seen = readLock(file);
    if (!seen) continue; // released meanwhile
    const why = staleReason(seen, o.staleMs);
    if (!why) return { lock: null, holder: seen };
    if (takeOver(file, seen, info, o.staleMs)) {
      return { lock: new Lock(file, info, o), tookOver: `${seen.info ? `${seen.info.host} pid ${seen.info.pid}` : 'unreadable lock'}: ${why}` };
    }
    const holder = readLock(file);
    if (holder) return { lock: null, holder };
  }
  return { lock: null, holder: readLock(file) };
}

/** Blocks (polling) until the lock is taken, at most `waitMs`. */
export function waitLock(file: string, o: LockOptions, waitMs: number): Lock | null {
  const until = Date.now() + waitMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const a = tryLock(file, o);
    if (a.lock) return a.lock;
    if (Date.now() > until) return null;
    Atomics.wait(pause, 0, 0, 50);
  }
}
