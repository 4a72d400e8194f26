import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { variantLabel } from '../methods/index.js';
import type { Sweep } from './config.js';
import { UserError } from '../core/errors.js';
import { defaultLockOptions, tryLock, type LockOptions } from './lock.js';
import { Progress, type ProgressRun } from './progress.js';
import { shardSpecs, type Shard } from './shard.js';
import { runId, type RunSpec } from './spec.js';
import { checkSpecVersion, collectResults, RunFolder } from './store.js';
import { isFinished, limitKernelThreads, workLoop, type FromWorker, type RunOutcome, type ToWorker, type WorkOptions } from './worker.js';

export interface SweepOptions {
  out: string;
  backend: string;
  dataDir?: string;
  /** plain lines (and the live display's permanent lines) */
  log: (line: string) => void;
  /** worker processes (default 1: in this process) */
  jobs?: number;
  shard?: Shard | null;
  retryFailed?: boolean;
  /** wait for runs locked by live workers elsewhere instead of leaving them */
  wait?: boolean;
  lock?: LockOptions;
  checkpointSeconds?: number;
  /** live display: a TTY stream to redraw on (default: none, plain lines) */
  tty?: { write: (s: string) => void; columns: () => number } | null;
  /** install SIGINT/SIGTERM handlers (the CLI does): finish the step, checkpoint, stop */
  handleSignals?: boolean;
}

export interface SweepOutcome {
  /** runs in this invocation's grid (its shard) */
  total: number;
  /** finished before (done, diverged; failed unless retried) */
  skipped: number;
  done: number;
  diverged: number;
  failed: number;
  /** runs stopped at a checkpoint by a signal */
  interrupted: number;
  /** runs whose lock another worker took over */
  lost: number;
  /** the signal that stopped the sweep, if one did */
  signal: NodeJS.Signals | null;
  /** a second signal stopped the workers at once (their runs resume from their last checkpoint) */
  stoppedAtOnce: boolean;
  /** worker processes that died without reporting */
  crashed: number;
}

function label(spec: RunSpec, id: string): string {
  return `${variantLabel(spec.method)} s=${spec.sparsity.target} w=${spec.model.width ?? 1} seed=${spec.seed} [${id}]`;
}

function epochsOf(spec: RunSpec): number {
  return spec.smoke ? Math.min(2, spec.training.epochs) : spec.training.epochs;
}

/**
 * A signal at least this long after the first stops at once; closer ones are the same stop: a
 * signal to the process group reaches every process of the sweep, and schedulers may send one twice.
 */
const repeatSignalMs = 2000;

/**
 * The environment of a worker process: its thread count (OMP_NUM_THREADS, which the sparse
 * kernels follow, and TensorFlow's pools) is the cores shared out among the workers, at least
 * one, unless OMP_NUM_THREADS is set already (a cluster script sets it to one per CPU).
 */
function workerEnv(jobs: number): NodeJS.ProcessEnv {
  const threads = process.env.OMP_NUM_THREADS || String(Math.max(1, Math.floor(os.availableParallelism() / jobs)));
  return { TF_NUM_INTRAOP_THREADS: threads, TF_NUM_INTEROP_THREADS: '1', ...process.env, OMP_NUM_THREADS: threads };
}

const workerModule = fileURLToPath(new URL('./worker.js', import.meta.url));

/**
 * Runs every unfinished run of a sweep (or of its shard): in this process (jobs 1) or in `jobs`
 * worker processes that claim runs through per-run locks, so any number of invocations, here or
 * on other machines sharing the output folder, can work on it at once.
 */
export async function runSweep(sweep: Sweep, o: SweepOptions): Promise<SweepOutcome> {
  const startedAt = new Date().toISOString();
  checkSpecVersion(o.out);
  const specs = shardSpecs(sweep.specs, o.shard ?? null);
  const retry = { retryFailed: o.retryFailed ?? false, startedAt };
  const results = specs.map((spec) => new RunFolder(o.out, spec).result());
  const todo = specs.filter((_, i) => !isFinished(results[i], retry));
  const failedKept = results.filter((r) => r?.status === 'failed').length;
  const outcome: SweepOutcome = {
    total: specs.length, skipped: specs.length - todo.length, done: 0, diverged: 0, failed: 0,
    interrupted: 0, lost: 0, signal: null, stoppedAtOnce: false, crashed: 0,
  };
  if (outcome.skipped) {
    const failedNote = !retry.retryFailed && failedKept ? ` (${failedKept} failed; --retry-failed reruns them)` : '';
    o.log(`${outcome.skipped} of ${specs.length} runs already done in ${o.out}${failedNote}`);
  }
  mkdirSync(o.out, { recursive: true });
  const jobs = Math.max(1, Math.min(o.jobs ?? 1, todo.length));
  const progressRuns: ProgressRun[] = todo.map((spec) => ({ id: runId(spec), label: label(spec, runId(spec)), epochs: epochsOf(spec) }));
  const progress = new Progress(progressRuns, {
    total: specs.length, alreadyDone: outcome.skipped, tty: !!o.tty, workers: jobs,
    write: o.tty ? o.tty.write : (s) => o.log(s.replace(/\n$/, '')),
    columns: o.tty?.columns,
  });
  /** the run each worker trains now */
  const runsInWorkers = new Map<number, string>();
  const host = os.hostname();
  const tally = (worker: number, e: Parameters<Progress['event']>[1]) => {
    // a run held by a sibling worker of ours is no news
    if (e.type === 'busy' && e.host === host && children.some((c) => c.pid === e.pid)) return;
    if (e.type === 'start') runsInWorkers.set(worker, e.id);
    if (e.type === 'end') runsInWorkers.delete(worker);
    progress.event(worker, e);
  };

  let stopping: NodeJS.Signals | null = null;
  let stoppingAt = 0;
  /** why a worker stopped the whole sweep (a full disk), for the user */
  let stopSweep: string | null = null;
  let children: ChildProcess[] = [];
  const onSignal = (sig: NodeJS.Signals, from: 'self' | 'worker') => {
    if (stopping) {
      // the same stop delivered again (to the group, by the scheduler twice) is no news; a signal
      // of our own well after the first means: kill the workers now (their locks are released
      // once they are gone, below). With no workers this process trains the run, and it can only
      // see a signal between two steps, where it checkpoints and stops anyway.
      if (from === 'self' && children.length && !outcome.stoppedAtOnce && Date.now() - stoppingAt >= repeatSignalMs) {
        outcome.stoppedAtOnce = true;
        for (const c of children) c.kill('SIGKILL');
      }
      return;
    }
    stopping = sig;
    stoppingAt = Date.now();
    progress.log(`${sig}${from === 'worker' ? ' to a worker' : ''}: finishing the current step of each run, then checkpointing (a signal ${repeatSignalMs / 1000} s or more after this one stops at once)`);
    for (const c of children) tell(c, { type: 'stop' });
  };
  const handlers = { SIGINT: () => onSignal('SIGINT', 'self'), SIGTERM: () => onSignal('SIGTERM', 'self') };
  if (o.handleSignals) for (const [s, h] of Object.entries(handlers)) process.on(s, h);

  const options: Omit<WorkOptions, 'stop' | 'emit'> = {
    out: o.out, backend: o.backend, dataDir: o.dataDir, ...retry, wait: o.wait, plugins: sweep.plugins,
    lock: o.lock ?? defaultLockOptions, checkpointSeconds: o.checkpointSeconds,
  };
  const add = (counts: Record<RunOutcome, number>) => {
    for (const k of Object.keys(counts) as RunOutcome[]) outcome[k] += counts[k];
  };
  try {
    if (todo.length === 0) {
      // nothing to do
    } else if (jobs === 1) {
      limitKernelThreads();
      add(await workLoop(todo, { ...options, stop: () => stopping !== null, emit: (e) => tally(1, e) }));
    } else {
      children = Array.from({ length: jobs }, () => fork(workerModule, [], { silent: true, serialization: 'advanced', env: workerEnv(jobs) }));
      await Promise.all(children.map((child, i) => new Promise<void>((resolve) => {
        let reported = false;
        for (const stream of [child.stdout, child.stderr]) {
          if (stream) createInterface({ input: stream }).on('line', (line) => progress.log(`[w${i + 1}] ${line}`));
        }
        child.on('message', (m: FromWorker) => {
          if (m.type === 'event') tally(i + 1, m.e);
          else if (m.type === 'exit') { reported = true; add(m.counts); }
          else if (m.type === 'signal' && o.handleSignals) onSignal(m.signal, 'worker');
          else if (m.type === 'stop-sweep') {
            // e.g. a full disk: every other worker checkpoints its run and stops too
            reported = true;
            stopSweep ??= m.message;
            for (const c of children) if (c !== child) tell(c, { type: 'stop' });
          }
        });
        child.on('exit', (code, signal) => {
          if (!reported && !stopping) {
            outcome.crashed++;
            progress.log(`worker ${i + 1} exited unexpectedly (${signal ?? `code ${code}`}); its run stays resumable`);
          }
          resolve();
        });
        tell(child, { type: 'init', specs: todo, options });
        if (stopping) tell(child, { type: 'stop' });
      })));
      // workers killed by a stop at once left the locks of their runs: every one is gone now
      if (outcome.stoppedAtOnce) for (const id of runsInWorkers.values()) tryLock(path.join(o.out, id, 'lock'), options.lock).lock?.release();
    }
  } finally {
    if (o.handleSignals) for (const [s, h] of Object.entries(handlers)) process.off(s, h);
    progress.close();
  }
  if (stopSweep) throw new UserError(stopSweep, 1);
  outcome.signal = stopping;
  for (const problem of collectResults(o.out)!.unreadable) o.log(`warning: ${problem}; that run is not in results.csv`);
  return outcome;
}

/**
 * Sends a message to a worker unless its channel is closed. A worker that exits while a message is
 * on its way (EPIPE) needs none: its exit is handled by its 'exit' event.
 */
function tell(child: ChildProcess, m: ToWorker): void {
  if (child.connected) child.send(m, () => { /* sent, or the worker is gone */ });
}
