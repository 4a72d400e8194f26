import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { sweepFromConfig } from '../harness/config.js';
import type { RunSpec } from '../harness/spec.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const cli = path.join(root, 'bin', 'sparsebench.js');

/** The float32 bit patterns of `a`: for bit-for-bit comparisons (-0 and NaN payloads included). */
export function bits(a: ArrayLike<number>): Uint32Array {
  return new Uint32Array(Float32Array.from(a).buffer);
}

/** The single resolved run of an inline config (no grid). */
export function specOf(config: Record<string, unknown>): RunSpec {
  const specs = sweepFromConfig(config, 'test.json', false).specs;
  if (specs.length !== 1) throw new Error(`expected one run, got ${specs.length}`);
  return specs[0];
}

/** A small learnable task for fast training tests. */
export const smallTask = {
  dataset: { name: 'synthetic', features: 64, classes: 4, trainSamples: 512, testSamples: 256, seed: 7 },
  model: { name: 'mlp', hidden: [48, 24] },
  training: { epochs: 2, batchSize: 32, lr: 0.05 },
};

export function runCli(args: string[], cwd = root): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
