import { UserError } from './errors.js';
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
 * The shard this process runs: --shard i/n; else a SLURM array task (SLURM_ARRAY_TASK_ID,
 * relative to SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT); else a Kubernetes Indexed Job
 * pod (JOB_COMPLETION_INDEX of --shards or SPARSEBENCH_SHARDS); else null (the whole grid).
 */
export function resolveShard(o: { shard?: string; shards?: number }, env: NodeJS.ProcessEnv = process.env): Shard | null {
  if (o.shard !== undefined) return parseShard(o.shard);
  const slurmId = envInt(env, 'SLURM_ARRAY_TASK_ID');
  if (slurmId !== undefined) {
    const min = envInt(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
    const max = envInt(env, 'SLURM_ARRAY_TASK_MAX');
    const count = envInt(env, 'SLURM_ARRAY_TASK_COUNT') ?? (max !== undefined ? max - min + 1 : undefined);
    if (count === undefined) throw new UserError('SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard i/n');
    return parseShard(`${slurmId - min + 1}/${count}`, `SLURM array task ${slurmId} (min ${min}, count ${count}):`);
  }
  const k8sIndex = envInt(env, 'JOB_COMPLETION_INDEX');
  if (k8sIndex !== undefined) {
    const count = o.shards ?? envInt(env, 'SPARSEBENCH_SHARDS');
    if (count === undefined) throw new UserError(`JOB_COMPLETION_INDEX=${k8sIndex} is set but the shard count is not: set SPARSEBENCH_SHARDS (the Job's completions) or pass --shards`);
    return parseShard(`${k8sIndex + 1}/${count}`, `Kubernetes JOB_COMPLETION_INDEX=${k8sIndex} of ${count}:`);
  }
  if (o.shards !== undefined) throw new UserError('--shards needs JOB_COMPLETION_INDEX (Kubernetes Indexed Job); elsewhere use --shard i/n');
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
