/** Shared helpers of the sweep tests (test/sweep-*.test.ts). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cli, root } from './helpers.js';

export function tmpDir(tag: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `sparsebench-${tag}-`));
}

/** A small fast grid: synthetic 4-class data, a small MLP, `seeds` runs of the static method. */
export function gridConfig(dir: string, seeds: number, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, 'grid.json');
  writeFileSync(file, JSON.stringify({
    name: 'sweeptest',
    dataset: { name: 'synthetic', features: 32, classes: 4, trainSamples: 256, testSamples: 128, seed: 3 },
    model: { name: 'mlp', hidden: [24] },
    method: 'static',
    sparsity: { target: 0.5 },
    training: { epochs: 2, batchSize: 8, lr: 0.05 },
    grid: { seed: Array.from({ length: seeds }, (_, i) => i) },
    ...extra,
  }));
  return file;
}

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a command in its own process group (so a test can signal it with all its children). */
export function startCommand(command: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exit };
}

/** Starts the CLI in its own process group (so a test can kill the sweep with all its workers). */
export function startCli(args: string[], env: Record<string, string> = {}): Proc {
  return startCommand(process.execPath, [cli, ...args], env);
}

export async function runCliAsync(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startCli(args, env);
  const { code } = await p.exit;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(15);
  }
}

export function runDirs(out: string): string[] {
  if (!existsSync(out)) return [];
  return readdirSync(out, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
}

export function hasFile(out: string, id: string, file: string): boolean {
  return existsSync(path.join(out, id, file));
}

/** Every file of a run folder with its content and mtime. */
export function snapshot(dir: string): Record<string, { content: string; mtimeMs: number }> {
  const out: Record<string, { content: string; mtimeMs: number }> = {};
  for (const f of readdirSync(dir).sort()) out[f] = { content: readFileSync(path.join(dir, f), 'utf8'), mtimeMs: statSync(path.join(dir, f)).mtimeMs };
  return out;
}

export function csvRows(out: string): Record<string, string>[] {
  const lines = readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n');
  const header = lines[0].split(',');
  return lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
}

/** A run's metrics without wall time, and its result without timings: what must not depend on interruptions. */
export function comparable(out: string, id: string): { metrics: unknown[]; result: Record<string, unknown> } {
  const metrics = readFileSync(path.join(out, id, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const m = JSON.parse(l);
    delete m.wall_s;
    return m;
  });
  const result = JSON.parse(readFileSync(path.join(out, id, 'result.json'), 'utf8'));
  for (const k of ['wall_s', 'step_ms', 'update_ms', 'peak_rss_mb', 'finished']) delete result[k];
  return { metrics, result };
}
