import { linkSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
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
 * stale timeout; a stale lock is taken over by moving it aside under a unique name and checking
 * that what was moved is exactly what was judged stale (otherwise it is put back), so two workers
 * that both saw the same stale lock never both get it.
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

/** Removes the stale lock `seen`; false when what lay there was not it (someone took it over first). */
function removeStale(file: string, seen: SeenLock): boolean {
  const aside = `${file}.stale.${unique()}`;
  try {
    renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
  let raw = '';
  try { raw = readFileSync(aside, 'utf8'); } catch { /* vanished */ }
  if (raw === seen.raw) {
    try { unlinkSync(aside); } catch { /* ignore */ }
    return true;
  }
  // we moved a fresh lock: put it back, unless yet another one was created meanwhile
  try { linkSync(aside, file); } catch { /* its holder notices the loss at its next heartbeat */ }
  try { unlinkSync(aside); } catch { /* ignore */ }
  return false;
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

  constructor(readonly file: string, readonly info: LockInfo, o: LockOptions) {
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
    if (readLock(this.file)?.info?.token === this.info.token) {
      try { unlinkSync(this.file); } catch { /* ignore */ }
    }
  }
}

const myStart = processStart(process.pid);

export type LockAttempt = { lock: Lock; tookOver?: string } | { lock: null; holder: SeenLock | null };

/** Takes the lock `file` if it is free or stale; otherwise reports who holds it. Never blocks. */
export function tryLock(file: string, o: LockOptions = defaultLockOptions): LockAttempt {
  const info: LockInfo = {
    host, pid: process.pid, started: new Date().toISOString(), token: randomBytes(12).toString('hex'),
    ...(myStart ? { pstart: myStart } : {}), ...(bootId ? { boot: bootId } : {}),
  };
  const content = JSON.stringify(info) + '\n';
  let tookOver: string | undefined;
  for (let attempt = 0; attempt < 4; attempt++) {
    if (createExclusive(file, content)) return { lock: new Lock(file, info, o), tookOver };
    const seen = readLock(file);
    if (!seen) continue; // released meanwhile
    const why = staleReason(seen, o.staleMs);
    if (!why) return { lock: null, holder: seen };
    if (!removeStale(file, seen)) return { lock: null, holder: readLock(file) };
    tookOver = `${seen.info ? `${seen.info.host} pid ${seen.info.pid}` : 'unreadable lock'}: ${why}`;
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
