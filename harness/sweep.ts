import { collectResults, RunFolder, type RunResult } from './store.js';
import { provenance } from './provenance.js';
import { trainRun } from './train.js';
import type { Sweep } from './config.js';

export interface SweepOptions {
  out: string;
  backend: string;
  dataDir?: string;
  log: (line: string) => void;
}

export interface SweepOutcome {
  total: number;
  skipped: number;
  done: number;
  diverged: number;
  failed: number;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

function label(f: RunFolder): string {
  const s = f.spec;
  const extra = s.method.sampler ? `(${s.method.sampler})` : '';
  return `${s.method.name}${extra} s=${s.sparsity.target} w=${s.model.width ?? 1} seed=${s.seed} [${f.id}]`;
}

/** Runs every unfinished run of a sweep in this process, one after another. */
export async function runSweep(sweep: Sweep, o: SweepOptions): Promise<SweepOutcome> {
  const folders = sweep.specs.map((spec) => new RunFolder(o.out, spec));
  const todo = folders.filter((f) => !f.isDone());
  const outcome: SweepOutcome = { total: folders.length, skipped: folders.length - todo.length, done: 0, diverged: 0, failed: 0 };
  if (outcome.skipped) o.log(`${outcome.skipped} of ${folders.length} runs already done in ${o.out}`);
  const started = performance.now();
  let epochsDone = 0;
  const epochsTotal = todo.reduce((s, f) => s + (f.spec.smoke ? Math.min(2, f.spec.training.epochs) : f.spec.training.epochs), 0);
  for (const [i, f] of todo.entries()) {
    const prefix = `[${i + 1}/${todo.length}] ${label(f)}`;
    o.log(`${prefix} started`);
    f.start(provenance(o.backend));
    let result: RunResult;
    try {
      const summary = await trainRun(f.spec, { dataDir: o.dataDir }, {
        onEpoch: (m) => {
          f.addEpoch(m);
          epochsDone++;
          const elapsed = (performance.now() - started) / 1000;
          const eta = (elapsed / epochsDone) * (epochsTotal - epochsDone);
          o.log(`${prefix} epoch ${m.epoch}/${f.spec.training.epochs} loss ${m.train_loss.toFixed(4)} test_acc ${m.test_accuracy.toFixed(4)} | sweep ETA ${formatSeconds(eta)}`);
        },
        onUpdate: (u) => f.addUpdate(u),
      });
      result = { run_id: f.id, ...summary, backend: o.backend, finished: new Date().toISOString() };
    } catch (e) {
      result = { run_id: f.id, status: 'failed', error: (e as Error).message, backend: o.backend, finished: new Date().toISOString() };
    }
    f.finish(result);
    outcome[result.status]++;
    const acc = result.test_accuracy !== undefined ? ` test_acc ${result.test_accuracy.toFixed(4)}` : '';
    o.log(`${prefix} ${result.status}${acc}${result.error ? `: ${result.error}` : ''} (${(result.wall_s ?? 0).toFixed(1)}s)`);
    collectResults(o.out);
  }
  collectResults(o.out);
  return outcome;
}
