import { UserError } from '../core/errors.js';
import { runId, type RunSpec } from './spec.js';

/** Shard `index` (1-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
  /** where it came from: --shard, SLURM, Kubernetes */
  source: string;
}

/** Parses "i/n" (1-based, 1 <= i <= n). */
export function parseShard(text: string, source = '--shard'): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new UserError(`${source} ${text}: expected i/n, e.g. 2/3`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index < 1 || index > count) throw new UserError(`${source} ${text}: need 1 <= i <= n`);
  return { index, count, source };
}

function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v.trim())) throw new UserError(`${name}=${v}: expected a non-negative integer`);
  return Number(v);
}

/**
 * The shard this process runs: --shard i/n; else a scheduler's 0-based task index (a SLURM array
 * task's SLURM_ARRAY_TASK_ID, a Kubernetes Indexed Job pod's JOB_COMPLETION_INDEX) plus one, of
 * the shard count given by --shards or SPARSEBENCH_SHARDS; else null (the whole grid). The count
 * is never taken from the scheduler: SLURM_ARRAY_TASK_COUNT counts the tasks actually submitted,
 * so a partial resubmit (--array=0,2 of 3) would cut the grid differently.
 */
export function resolveShard(o: { shard?: string; shards?: number }, env: NodeJS.ProcessEnv = process.env): Shard | null {
  if (o.shard !== undefined) return parseShard(o.shard);
  const count = o.shards ?? envInt(env, 'SPARSEBENCH_SHARDS');
  for (const name of ['SLURM_ARRAY_TASK_ID', 'JOB_COMPLETION_INDEX']) {
    const index = envInt(env, name);
    if (index === undefined) continue;
    if (count === undefined) throw new UserError(`${name}=${index} is set but the shard count is not: pass --shards N (the number of array tasks or completions the job was made for) or --shard i/n`);
    return parseShard(`${index + 1}/${count}`, `${name}=${index} of ${count} shards:`);
  }
  if (o.shards !== undefined) throw new UserError('--shards needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX (a job array or an Indexed Job); elsewhere use --shard i/n');
  return null;
}

/**
 * The runs of one shard: the grid's run ids sorted, cut into `count` contiguous slices of
 * (nearly) equal size, slice `index`. Stable: it depends only on the set of run ids.
 * The returned specs keep the grid's order.
 */
export function shardSpecs(specs: RunSpec[], shard: Shard | null): RunSpec[] {
  if (!shard) return specs;
  const ids = specs.map((s) => runId(s)).sort();
  const n = ids.length;
  const from = Math.floor(((shard.index - 1) * n) / shard.count);
  const to = Math.floor((shard.index * n) / shard.count);
  const mine = new Set(ids.slice(from, to));
  return specs.filter((s) => mine.has(runId(s)));
}
