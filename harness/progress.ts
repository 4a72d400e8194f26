import type { EpochMetrics } from './run-context.js';
import type { RunStatus } from './store.js';

/** What a worker reports about the runs it handles (in-process, or over IPC from a child). */
export type WorkerEvent =
  | { type: 'start'; id: string; resumed?: { epoch: number; step: number }; tookOver?: string }
  | { type: 'step'; id: string; step: number; total: number; loss: number }
  | { type: 'epoch'; id: string; m: EpochMetrics }
  | { type: 'end'; id: string; status: RunStatus | 'interrupted' | 'lost'; test_accuracy?: number; error?: string; wall_s?: number; diverged_step?: number; step?: number; emptyLayers?: string[] }
  | { type: 'busy'; id: string; holder: string; host?: string; pid?: number }
  | { type: 'note'; text: string };

export interface ProgressRun {
  id: string;
  label: string;
  /** epochs this run trains (its share of the sweep's work) */
  epochs: number;
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

interface Active {
  worker: number;
  n: number;
  epoch: number;
  step: number;
  total: number;
  loss: number;
  /** multi-round methods (lottery): the round of the last finished epoch */
  round?: number;
}

const roundLabel = (round: number | undefined) => (round === undefined ? '' : `round ${round} `);

/**
 * Progress of a sweep. On a TTY a live block (runs done/total, each running run's epoch, step and
 * loss, the sweep's ETA) is redrawn in place under the log of finished runs. Elsewhere (CI,
 * cluster logs) one plain line per event (run started, epoch, run ended) and no control codes.
 */
export class Progress {
  private readonly runs = new Map<string, ProgressRun & { fraction: number; fraction0: number | null; counted: boolean }>();
  private readonly active = new Map<string, Active>();
  private readonly started = performance.now();
  private started_n = 0;
  readonly counts = { done: 0, diverged: 0, failed: 0, interrupted: 0, lost: 0 };
  private drawn = 0;
  private timer: NodeJS.Timeout | null = null;
  private dirty = false;

  constructor(
    todo: ProgressRun[],
    private readonly o: { total: number; alreadyDone: number; tty: boolean; write: (s: string) => void; columns?: () => number; workers: number },
  ) {
    for (const r of todo) this.runs.set(r.id, { ...r, fraction: 0, fraction0: null, counted: true });
  }

  /** A line that stays (above the live block on a TTY). */
  log(line: string): void {
    if (!this.o.tty) { this.o.write(line + '\n'); return; }
    this.clear();
    this.o.write(line + '\n');
    this.draw();
  }

  private prefix(id: string, worker: number): string {
    const a = this.active.get(id);
    const run = this.runs.get(id);
    const n = a?.n ?? '?';
    const w = this.o.workers > 1 ? ` w${worker}` : '';
    return `[${n}/${this.runs.size}${w}] ${run?.label ?? id}`;
  }

  private setFraction(id: string, f: number): void {
    const r = this.runs.get(id);
    if (!r) return;
    if (r.fraction0 === null) r.fraction0 = f;
    r.fraction = f;
  }

  event(worker: number, e: WorkerEvent): void {
    switch (e.type) {
      case 'note':
        this.log(e.text);
        return;
      case 'busy': {
        // held by a live worker elsewhere: not ours to count while it is
        const r = this.runs.get(e.id);
        if (r && !this.active.has(e.id) && r.fraction < 1) r.counted = false;
        return;
      }
      case 'start': {
        const r = this.runs.get(e.id);
        if (r) { r.counted = true; r.fraction0 = null; }
        this.active.set(e.id, { worker, n: ++this.started_n, epoch: e.resumed?.epoch ?? 0, step: e.resumed?.step ?? 0, total: 0, loss: NaN });
        const how = e.resumed ? `resumed from epoch ${e.resumed.epoch}, step ${e.resumed.step}` : 'started';
        const over = e.tookOver ? ` (took over a stale lock: ${e.tookOver})` : '';
        if (!this.o.tty || e.tookOver) this.log(`${this.prefix(e.id, worker)} ${how}${over}`);
        else this.schedule();
        return;
      }
      case 'step': {
        const a = this.active.get(e.id);
        if (!a) return;
        a.step = e.step; a.total = e.total; a.loss = e.loss;
        const r = this.runs.get(e.id);
        if (r && e.total > 0) this.setFraction(e.id, e.step / e.total);
        this.schedule();
        return;
      }
      case 'epoch': {
        const a = this.active.get(e.id);
        if (a) { a.epoch = e.m.epoch; a.step = e.m.step; a.round = e.m.round; }
        const r = this.runs.get(e.id);
        if (r && r.fraction0 === null) r.fraction0 = (e.m.epoch - 1) / r.epochs;
        if (r) this.setFraction(e.id, Math.max(r.fraction, e.m.epoch / r.epochs));
        if (!this.o.tty) {
          this.log(`${this.prefix(e.id, worker)} ${roundLabel(e.m.round)}epoch ${e.m.epoch}/${r?.epochs ?? '?'} loss ${e.m.train_loss.toFixed(4)} test_acc ${e.m.test_accuracy.toFixed(4)} | sweep ETA ${formatSeconds(this.eta())}`);
        } else this.schedule();
        return;
      }
      case 'end': {
        const prefix = this.prefix(e.id, worker);
        this.active.delete(e.id);
        const r = this.runs.get(e.id);
        if (e.status === 'done' || e.status === 'diverged' || e.status === 'failed') {
          if (r) this.setFraction(e.id, 1);
        }
        this.counts[e.status]++;
        let what: string = e.status;
        if (e.status === 'done') what += ` test_acc ${(e.test_accuracy ?? NaN).toFixed(4)}`;
        // a method may prune a layer away (SynFlow on the ViT's patch embedding): the run is valid, but say so
        if (e.emptyLayers?.length) what += `; layers pruned to no connections: ${e.emptyLayers.join(', ')}`;
        if (e.status === 'diverged') what += ` at step ${e.diverged_step}`;
        if (e.status === 'failed') what += `: ${e.error}`;
        if (e.status === 'interrupted') what += ` at step ${e.step} (checkpointed)`;
        if (e.status === 'lost') what += ` its lock to another worker; stopped without writing`;
        const time = e.wall_s !== undefined ? ` (${e.wall_s.toFixed(1)}s)` : '';
        this.log(`${prefix} ${what}${time}`);
        return;
      }
    }
  }

  /** Seconds left for the runs this invocation does, from the rate of its progress so far. */
  eta(): number {
    let left = 0;
    let done = 0;
    for (const r of this.runs.values()) {
      if (!r.counted) continue;
      left += r.epochs * (1 - r.fraction);
      done += r.epochs * (r.fraction - (r.fraction0 ?? r.fraction));
    }
    const elapsed = (performance.now() - this.started) / 1000;
    if (left <= 0) return 0;
    return done > 0 ? (left * elapsed) / done : NaN;
  }

  private summary(): string {
    const c = this.counts;
    const finished = this.o.alreadyDone + c.done + c.diverged + c.failed;
    return `runs ${finished}/${this.o.total} finished (${c.done} done, ${c.diverged} diverged, ${c.failed} failed this time) · ${this.active.size} running · ETA ${formatSeconds(this.eta())}`;
  }

  private block(): string[] {
    const width = Math.max(20, (this.o.columns?.() ?? 100) - 1);
    const lines = [this.summary()];
    const byWorker = [...this.active.entries()].sort((a, b) => a[1].worker - b[1].worker);
    for (const [id, a] of byWorker) {
      const r = this.runs.get(id);
      const step = a.total ? `step ${a.step}/${a.total}` : `step ${a.step}`;
      const loss = Number.isFinite(a.loss) ? ` loss ${a.loss.toFixed(4)}` : '';
      lines.push(`  ${this.prefix(id, a.worker)}  ${roundLabel(a.round)}epoch ${Math.min(a.epoch + 1, r?.epochs ?? Infinity)}/${r?.epochs ?? '?'} ${step}${loss}`);
    }
    return lines.map((l) => (l.length > width ? l.slice(0, width - 1) + '…' : l));
  }

  private clear(): void {
    if (this.drawn > 0) this.o.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    const lines = this.block();
    this.o.write(lines.join('\n') + '\n');
    this.drawn = lines.length;
  }

  /** Redraws at most ten times a second. */
  private schedule(): void {
    if (!this.o.tty) return;
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.dirty) return;
      this.dirty = false;
      this.clear();
      this.draw();
    }, 100);
    this.timer.unref();
  }

  /** Removes the live block (before the final lines). */
  close(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.o.tty) this.clear();
  }
}
