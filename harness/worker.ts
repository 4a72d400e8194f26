import { existsSync, mkdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { CheckpointError, readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { asDiskFull, DiskFull } from '../core/errors.js';
import { defaultLockOptions, LockLost, tryLock, type Lock, type LockOptions } from './lock.js';
import type { WorkerEvent } from './progress.js';
import { kernelInfo, setThreads } from '../models/sparse/kernels/index.js';
import { provenance } from './provenance.js';
import type { RunSpec } from './spec.js';
import { collectResults, RunFolder, sweepTemporaries, type RunResult } from './store.js';
import type { TrainState } from './run-context.js';
import { RunInterrupted, trainRun } from './train.js';

export interface WorkOptions {
  out: string;
  backend: string;
  dataDir?: string;
  /** rerun runs whose result is `failed` (recorded before `startedAt`) */
  retryFailed: boolean;
  /** ISO time this invocation started: failures recorded after it are not retried again */
  startedAt: string;
  lock: LockOptions;
  /** checkpoint inside long epochs after this many seconds (default 600) */
  checkpointSeconds?: number;
  /** runs locked by live workers elsewhere: wait until they are finished (or their lock goes stale) instead of leaving them */
  wait?: boolean;
  /** plugin files a worker process loads before it trains (harness/plugins.ts) */
  plugins?: string[];
  /** polled often: true asks the worker to checkpoint its run and return */
  stop: () => boolean;
  emit: (e: WorkerEvent) => void;
}

/** Testing hook: SPARSEBENCH_STEP_DELAY_MS slows every training step (so tests can stop a sweep mid-run); results are unchanged. */
const stepDelayMs = Number(process.env.SPARSEBENCH_STEP_DELAY_MS) || 0;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export type RunOutcome = 'done' | 'diverged' | 'failed' | 'interrupted' | 'lost';

/** Sleeps `ms`, or less once `stop` says so. */
async function pause(ms: number, stop: () => boolean): Promise<void> {
  for (const until = Date.now() + ms; Date.now() < until && !stop();) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
}

/** Whether a run folder's result means the run needs nothing more. */
export function isFinished(r: RunResult | null, o: Pick<WorkOptions, 'retryFailed' | 'startedAt'>): boolean {
  if (!r) return false;
  if (r.status === 'failed') return !(o.retryFailed && r.finished < o.startedAt);
  return true;
}

/** Trains one run whose lock we hold: from its checkpoint when it has one, to its result. */
export async function executeRun(folder: RunFolder, lock: Lock, o: WorkOptions, tookOver?: string): Promise<RunOutcome> {
  sweepTemporaries(folder.dir);
  let resume: TrainState | null = null;
  try {
    resume = readCheckpoint(folder.checkpointFile, folder.id);
  } catch (e) {
    if (!(e instanceof CheckpointError)) throw e;
    o.emit({ type: 'note', text: `${e.message}; starting run ${folder.id} over` });
    folder.dropCheckpoint();
  }
  const id = folder.id;
  let lastStep = 0;
  let stepAt = 0;
  try {
    lock.assertHeld();
    folder.start(provenance(o.backend), resume ? { metrics: resume.metrics, updates: resume.updates, step: resume.step } : undefined);
    o.emit({ type: 'start', id, ...(resume ? { resumed: { epoch: resume.epoch, step: resume.step } } : {}), ...(tookOver ? { tookOver } : {}) });
    const summary = await trainRun(folder.spec, { dataDir: o.dataDir }, {
      onEpoch: (m) => {
        lock.assertHeld();
        folder.addEpoch(m);
        o.emit({ type: 'epoch', id, m });
      },
      onUpdate: (u) => folder.addUpdate(u),
      onStep: (step, total, loss) => {
        lastStep = step;
        if (stepDelayMs > 0) Atomics.wait(sleeper, 0, 0, stepDelayMs);
        const now = performance.now();
        if (now - stepAt > 250) { stepAt = now; o.emit({ type: 'step', id, step, total, loss }); }
      },
    }, {
      resume,
      checkpointSeconds: o.checkpointSeconds,
      onCheckpoint: (s) => {
        lock.assertHeld();
        writeCheckpoint(folder.checkpointFile, id, s);
      },
      shouldStop: () => o.stop() || lock.isLost(),
    });
    const result: RunResult = { run_id: id, ...summary, backend: o.backend, finished: new Date().toISOString() };
    lock.assertHeld();
    folder.finish(result);
    o.emit({ type: 'end', id, status: result.status, test_accuracy: result.test_accuracy, wall_s: result.wall_s, diverged_step: result.diverged_step, emptyLayers: (result.layers ?? []).filter((l) => l.active === 0).map((l) => l.name) });
    return result.status;
  } catch (e) {
    if (e instanceof LockLost || lock.isLost()) {
      o.emit({ type: 'end', id, status: 'lost', step: lastStep });
      return 'lost';
    }
    if (e instanceof RunInterrupted) {
      o.emit({ type: 'end', id, status: 'interrupted', step: e.step });
      return 'interrupted';
    }
    // a full disk is not the run's failure: the sweep stops, the run stays resumable
    const full = asDiskFull(e);
    if (full) throw full;
    const message = (e as Error).message?.split('\n')[0] || String(e);
    const result: RunResult = { run_id: id, status: 'failed', error: message, backend: o.backend, finished: new Date().toISOString() };
    try {
      lock.assertHeld();
      folder.finish(result);
    } catch (e2) {
      if (e2 instanceof LockLost) { o.emit({ type: 'end', id, status: 'lost', step: lastStep }); return 'lost'; }
      throw e2;
    }
    o.emit({ type: 'end', id, status: 'failed', error: message });
    return 'failed';
  }
}

/**
 * Works through `specs` in order: each run that is not finished and whose lock it gets, it
 * trains (resuming from a checkpoint) and then refreshes results.csv. Runs locked by live
 * workers are left to them, or with `wait` waited for. Passes repeat while they find work (a lock
 * may go stale meanwhile), and with `wait` until no run is left unfinished.
 */
export async function workLoop(specs: RunSpec[], o: WorkOptions): Promise<Record<RunOutcome, number>> {
  try {
    return await claimAndRun(specs, o);
  } catch (e) {
    // a full disk anywhere (folder, lock, checkpoint, results.csv) stops this worker's sweep
    throw asDiskFull(e) ?? e;
  }
}

async function claimAndRun(specs: RunSpec[], o: WorkOptions): Promise<Record<RunOutcome, number>> {
  const counts: Record<RunOutcome, number> = { done: 0, diverged: 0, failed: 0, interrupted: 0, lost: 0 };
  const busyReported = new Set<string>();
  const pollMs = Math.max(100, Math.min(5000, o.lock.staleMs / 10));
  let claimed = true;
  let held = false;
  while ((claimed || (o.wait && held)) && !o.stop()) {
    if (!claimed) await pause(pollMs, o.stop);
    claimed = false;
    held = false;
    for (const spec of specs) {
      // let signals and messages (a stop request) in before claiming another run
      await new Promise((r) => setImmediate(r));
      if (o.stop()) break;
      const folder = new RunFolder(o.out, spec);
      const before = folder.result();
      if (isFinished(before, o) && !(before && existsSync(folder.checkpointFile))) continue;
      mkdirSync(folder.dir, { recursive: true });
      const attempt = tryLock(folder.lockFile, o.lock);
      if (!attempt.lock) {
        held = true;
        if (!busyReported.has(folder.id)) {
          busyReported.add(folder.id);
          const h = attempt.holder?.info;
          o.emit({ type: 'busy', id: folder.id, holder: h ? `${h.host} pid ${h.pid}` : 'another worker', ...(h ? { host: h.host, pid: h.pid } : {}) });
        }
        continue;
      }
      const lock = attempt.lock;
      let outcome: RunOutcome | null = null;
      try {
        const r = folder.result(); // again, under the lock
        if (isFinished(r, o)) {
          folder.dropCheckpoint(); // left over by a worker killed between its result and this clean-up
          continue;
        }
        if (r?.status === 'failed') folder.clearResult();
        claimed = true;
        outcome = await executeRun(folder, lock, o, attempt.tookOver);
        counts[outcome]++;
      } finally {
        lock.release();
      }
      if (outcome === 'done' || outcome === 'diverged' || outcome === 'failed') collectResults(o.out, false);
    }
  }
  return counts;
}

/** The sparse kernels use no more threads than OMP_NUM_THREADS says (a worker's share of the cores, see runSweep). */
export function limitKernelThreads(): void {
  const threads = Number(process.env.OMP_NUM_THREADS);
  if (Number.isInteger(threads) && threads >= 1 && threads < kernelInfo().threads) setThreads(threads);
}

/** Messages between a sweep and its worker processes. */
export type ToWorker = { type: 'init'; specs: RunSpec[]; options: Omit<WorkOptions, 'stop' | 'emit'> } | { type: 'stop' };
export type FromWorker =
  | { type: 'event'; e: WorkerEvent }
  | { type: 'exit'; counts: Record<RunOutcome, number> }
  /** this worker got a signal of its own (kill of one worker, or one delivery of a signal to the process group) */
  | { type: 'signal'; signal: 'SIGINT' | 'SIGTERM' }
  /** the worker stopped the sweep (a full disk): its message, for the user */
  | { type: 'stop-sweep'; message: string };

/** Entry of a worker process (forked by runSweep with an IPC channel). */
async function childMain(): Promise<void> {
  // Every stop request (the sweep's stop message, a signal of its own, the sweep process gone)
  // means the same: checkpoint the run after its current step and leave. A worker never exits at
  // once on a signal: a signal to the process group reaches it next to the sweep's stop message,
  // in either order; stopping at once is the sweep process's call (it kills its workers).
  let stopping = false;
  // output goes to the sweep process through pipes; once it is gone, writes fail with EPIPE: ignore them
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => { /* sweep process gone */ });
  const send = (m: FromWorker) => {
    if (!process.connected) return;
    // with a callback, a failed send (the sweep process died meanwhile) is reported there, not thrown
    try { process.send!(m, undefined, undefined, () => { /* parent gone */ }); } catch { /* parent gone */ }
  };
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    // the sweep stops every worker, as if it had got the signal itself
    if (!stopping) send({ type: 'signal', signal });
    stopping = true;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('disconnect', () => { stopping = true; });
  const init = await new Promise<Extract<ToWorker, { type: 'init' }>>((resolve) => {
    process.on('message', (m: ToWorker) => {
      if (m.type === 'init') resolve(m);
      else if (m.type === 'stop') stopping = true;
    });
  });
  const { loadPlugins } = await import('./plugins.js');
  await loadPlugins(init.options.plugins ?? []);
  const { selectBackend } = await import('./backend.js');
  await selectBackend(init.options.backend as 'cpu');
  limitKernelThreads();
  let counts: Record<RunOutcome, number>;
  try {
    counts = await workLoop(init.specs, {
      ...init.options,
      lock: init.options.lock ?? defaultLockOptions,
      stop: () => stopping,
      emit: (e) => send({ type: 'event', e }),
    });
  } catch (e) {
    if (!(e instanceof DiskFull)) throw e;
    send({ type: 'stop-sweep', message: e.message });
    if (process.connected) process.disconnect();
    return;
  }
  send({ type: 'exit', counts });
  if (process.connected) process.disconnect();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.send) {
  childMain().catch((e) => {
    process.stderr.write(`sparsebench worker: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
