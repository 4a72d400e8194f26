import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);

function versionOf(pkg: string): string | null {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/**
 * The scheduler's ids of the job this process runs in, to find its log and accounting: a SLURM
 * job (array) task, or a Kubernetes Indexed Job pod; undefined elsewhere.
 */
export function schedulerIds(env: NodeJS.ProcessEnv = process.env): Record<string, string> | undefined {
  const pick = (names: Record<string, string>) => Object.fromEntries(Object.entries(names).filter(([, v]) => env[v]).map(([k, v]) => [k, env[v]!]));
  if (env.SLURM_JOB_ID) {
    return { scheduler: 'slurm', ...pick({ job_id: 'SLURM_JOB_ID', array_job_id: 'SLURM_ARRAY_JOB_ID', array_task_id: 'SLURM_ARRAY_TASK_ID', restart_count: 'SLURM_RESTART_COUNT', job_name: 'SLURM_JOB_NAME', node: 'SLURMD_NODENAME' }) };
  }
  if (env.JOB_COMPLETION_INDEX) {
    return { scheduler: 'kubernetes', pod: os.hostname(), ...pick({ job_completion_index: 'JOB_COMPLETION_INDEX', job_name: 'JOB_NAME' }) };
  }
  return undefined;
}

/** Where and with what a run was made, stored next to its config. */
export function provenance(backend: string): Record<string, unknown> {
  const scheduler = schedulerIds();
  return {
    ...(scheduler ? { scheduler } : {}),
    sparsebench: packageVersion(),
    package_versions: {
      '@tensorflow/tfjs': versionOf('@tensorflow/tfjs'),
      '@tensorflow/tfjs-backend-wasm': versionOf('@tensorflow/tfjs-backend-wasm'),
      '@tensorflow/tfjs-node': versionOf('@tensorflow/tfjs-node'),
    },
    backend,
    node: process.version,
    host: os.hostname(),
    platform: `${os.platform()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.availableParallelism(),
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    started: new Date().toISOString(),
  };
}
