/**
 * Training-step benchmark: the time of one SGD step of a model built exactly as a run builds it
 * (models registry, sparse init, the method's initial density and `initialize` hook, the storage
 * format), on synthetic input of the dataset's shape: no data is loaded. The step timed is the
 * training loop's own (harness/train.ts trainStep: forward, backward via tf.variableGrads, SGD
 * update, plus the method's per-step hooks); data gathering is included, augmentation is not.
 * One warm-up step, then `steps` timed steps; medians are reported.
 *
 * With several models or formats, every point runs in a fresh child process, so that its peak RSS
 * is its own. `profile` adds as many steps again under tf.profile(): the tfjs kernels' own times,
 * custom-gradient ops' forwards, and what tf.profile cannot attribute (step wall minus all
 * kernel time: the custom gradients' backward passes, i.e. our SIMD kernels and their JS glue).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { stringify } from 'csv-stringify/sync';
import { selectBackend, type BackendChoice } from '../harness/backend.js';
import { applySets, sweepFromConfig } from '../harness/config.js';
import { datasets, featureSize, gather, resolveOptions } from '../harness/data/index.js';
import type { Dataset, Split } from '../harness/data/types.js';
import { UserError } from '../core/errors.js';
import { median, peakRssMb } from '../harness/meters.js';
import { runInitialize, stepHooks } from '../harness/method-hooks.js';
import { Rng } from '../core/rng.js';
import { learningRate } from '../harness/sgd.js';
import type { RunSpec } from '../harness/spec.js';
import { buildModel, createRunContext } from '../harness/run-context.js';
import { trainStep } from '../harness/train.js';
import { getMethod } from '../methods/index.js';
import { getModel, models } from '../models/index.js';
import type { DataShape } from '../models/model.js';
import * as K from '../models/sparse/kernels/index.js';

export interface StepOptions {
  models: string[];
  dataset: string;
  sparsity: number;
  formats: string[];
  method: string;
  batch: number;
  steps: number;
  seed: number;
  /** model options (--width, --hidden, …): each model gets those it declares */
  modelOptions: Record<string, unknown>;
  /** config overrides path=value, as `run --set` (e.g. method.sampler=grabo) */
  sets: string[];
  backend: BackendChoice;
  threads: number;
  profile: boolean;
  /** profile rows printed */
  top: number;
  out?: string;
  log: (line: string) => void;
}

export interface StepRow {
  model: string;
  dataset: string;
  method: string;
  format: string;
  sparsity: number;
  batch: number;
  steps: number;
  step_ms: number;
  step_ms_min: number;
  cpu_ms: number;
  peak_rss_mb: number;
  active_params: number;
  total_params: number;
  backend: string;
}

export type ProfileKind = 'tfjs kernel' | 'custom op forward' | 'custom op backward' | 'our kernel (forward)' | 'our kernel (backward)' | 'our kernel (update)' | 'unattributed';

export interface ProfileRow {
  model: string;
  format: string;
  op: string;
  kind: ProfileKind;
  /** calls per step */
  calls: number;
  /** own time per step (a custom op: without the tfjs kernels and our kernels it ran) */
  ms_per_step: number;
  /** ms_per_step / profiled step wall */
  share: number;
}

/** A point's result, as a child process hands it back. */
interface PointResult { row: StepRow; profile: ProfileRow[] }

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/sparsebench.js');

/** Where the profile CSV of `out` goes: step.csv -> step-profile.csv. */
export function profilePath(out: string): string {
  return out.replace(/(\.csv)?$/i, '-profile.csv');
}

/** The options among `given` that this model declares. */
function optionsFor(model: string, given: Record<string, unknown>): Record<string, unknown> {
  const declared = models[model]?.options ?? {};
  return Object.fromEntries(Object.entries(given).filter(([k, v]) => v !== undefined && Object.prototype.hasOwnProperty.call(declared, k)));
}

/**
 * The run spec of one point, validated by the same code as a config (names, schema, format rules),
 * and the dataset's shape from its load-free shape().
 */
export function stepSpec(o: StepOptions, model: string, format: string): { spec: RunSpec; shape: DataShape } {
  getModel(model);
  getMethod(o.method);
  if (!Object.prototype.hasOwnProperty.call(datasets, o.dataset)) throw new UserError(`unknown dataset "${o.dataset}" (known: ${Object.keys(datasets).join(', ')})`);
  const config: Record<string, any> = {
    name: 'bench-step',
    seed: o.seed,
    dataset: o.dataset,
    model: { name: model, ...optionsFor(model, o.modelOptions) },
    method: o.method,
    sparsity: { target: o.sparsity, format },
    training: { batchSize: o.batch },
  };
  applySets(config, o.sets);
  const specs = sweepFromConfig(config, 'bench step', false).specs;
  if (specs.length !== 1) throw new UserError(`bench step: --set expands to ${specs.length} runs; give one value per field`);
  const spec = specs[0];
  const { name: dataset, ...dopts } = spec.dataset;
  const shape = datasets[dataset].shape(resolveOptions(datasets[dataset], dopts));
  getModel(spec.model.name).layout(spec.model, shape); // geometry errors here, before any work
  return { spec, shape };
}

function checkOptions(o: StepOptions): void {
  const int = (v: number, flag: string) => {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`--${flag} ${v}: expected a positive integer`);
  };
  int(o.batch, 'batch');
  int(o.steps, 'steps');
  int(o.threads, 'threads');
  int(o.top, 'top');
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new UserError(`--seed ${o.seed}: expected an integer >= 0`);
  if (!o.models.length || o.models.some((m) => !m)) throw new UserError('--model: expected a comma-separated list of model names');
  if (!o.formats.length || o.formats.some((f) => !f)) throw new UserError('--format: expected a comma-separated list of formats');
  const declared = new Set(o.models.flatMap((m) => Object.keys(models[m]?.options ?? {})));
  for (const [k, v] of Object.entries(o.modelOptions)) {
    if (v !== undefined && !declared.has(k)) throw new UserError(`--${k}: not an option of model ${o.models.join(', ')}`);
  }
}

/** A synthetic split of the dataset's shape: standard-normal inputs, uniform labels, from the seed. */
function syntheticSplit(shape: DataShape, n: number, rng: Rng): Split {
  const fs = featureSize(shape.inputShape);
  const x = new Float32Array(n * fs);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = rng.int(shape.classes);
  return { x, y, n };
}

interface Timed { name: string; ms: number; depth: number; custom: 'forward' | 'backward' | null }

/**
 * tf.profile's kernels with each one's nesting depth (a custom op's forward contains the kernels it
 * runs), and the backward passes of custom-gradient ops, which tf.profile does not see: their
 * gradient functions are timed by wrapping the tape nodes the engine records while profiling.
 */
async function profiled(f: () => void, backend: string): Promise<{ timed: Timed[]; kernels: ReturnType<typeof K.stopKernelTimes> }> {
  type Node = { kernelName: string; gradient?: (dys: unknown[]) => unknown };
  const engine = tf.engine() as unknown as {
    profiler: { profileKernel: (...a: unknown[]) => unknown };
    addTapeNode: (...a: unknown[]) => void;
    state: { activeTape: Node[] | null };
  };
  const { profiler } = engine;
  const profileKernel = profiler.profileKernel;
  const addTapeNode = engine.addTapeNode;
  // in completion order (inner before outer): a tf.profile kernel (its depth) or a custom backward
  const events: ({ depth: number } | Timed)[] = [];
  let depth = 0;
  profiler.profileKernel = function (this: unknown, ...args: unknown[]) {
    const d = depth++;
    try { return profileKernel.apply(this, args); } finally { depth--; events.push({ depth: d }); }
  };
  engine.addTapeNode = function (this: unknown, ...args: unknown[]) {
    addTapeNode.apply(this, args);
    const tape = engine.state.activeTape;
    const node = tape?.[tape.length - 1];
    const gradient = node?.gradient;
    if (!node || !gradient || tf.getKernel(node.kernelName, backend) !== undefined) return;
    node.gradient = (dys) => {
      const d = depth++;
      const scope = K.setKernelScope('backward');
      const t0 = performance.now();
      try { return gradient(dys); } finally {
        K.setKernelScope(scope);
        depth--;
        events.push({ name: node.kernelName, ms: performance.now() - t0, depth: d, custom: 'backward' });
      }
    };
  };
  K.startKernelTimes('forward');
  try {
    const info = await tf.profile(f);
    const ours = K.stopKernelTimes();
    const kernels = events.filter((e) => !('ms' in e)).length;
    let k = 0;
    const timed = events.map((e): Timed => {
      if ('ms' in e) return e;
      const p = info.kernels[k++];
      const registered = tf.getKernel(p.name, backend) !== undefined;
      // if the lists disagree, every kernel is taken as top-level
      return { name: p.name, ms: typeof p.kernelTimeMs === 'number' ? p.kernelTimeMs : 0, depth: kernels === info.kernels.length ? e.depth : 0, custom: registered ? null : 'forward' };
    });
    return { timed, kernels: ours };
  } finally {
    K.stopKernelTimes();
    profiler.profileKernel = profileKernel;
    engine.addTapeNode = addTapeNode;
  }
}

const UNATTRIBUTED = 'unattributed: step wall - the above (JS: tape, tensor creation, readbacks)';

const CUSTOM_REST = (phase: string) => `customGrad ${phase}: JS around our kernels (copies in and out, tensor creation)`;

/**
 * Own time per op (a custom op without the tfjs kernels it ran, and without our kernels, which get
 * rows of their own), and the unattributed rest of the wall.
 */
function profileRows(spec: RunSpec, timed: Timed[], kernels: ReturnType<typeof K.stopKernelTimes>, wallMs: number, steps: number): ProfileRow[] {
  const byOp = new Map<string, { kind: ProfileKind; calls: number; ms: number }>();
  const childMs: number[] = [];
  let topMs = 0;
  for (const t of timed) {
    // post-order: the children of an entry at depth d are the entries at d + 1 since the last entry at depth d
    const own = t.ms - (childMs[t.depth + 1] ?? 0);
    childMs[t.depth + 1] = 0;
    childMs[t.depth] = (childMs[t.depth] ?? 0) + t.ms;
    if (t.depth === 0) topMs += t.ms;
    const op = t.custom ? CUSTOM_REST(t.custom) : t.name;
    const e = byOp.get(op) ?? { kind: t.custom ? `custom op ${t.custom}` : 'tfjs kernel', calls: 0, ms: 0 };
    e.calls++;
    e.ms += own;
    byOp.set(op, e);
  }
  // our kernels run inside the custom ops' forwards and backwards: booked to them, moved out here;
  // the SGD update's (scope 'update') run outside any op, in what tf.profile cannot attribute
  let updateMs = 0;
  for (const k of kernels) {
    const phase = k.scope === 'backward' || k.scope === 'update' ? k.scope : 'forward';
    byOp.set(`${k.kernel} (${phase})`, { kind: `our kernel (${phase})`, calls: k.calls, ms: k.ms });
    if (phase === 'update') { updateMs += k.ms; continue; }
    const rest = byOp.get(CUSTOM_REST(phase));
    if (rest) rest.ms = Math.max(0, rest.ms - k.ms);
  }
  byOp.set(UNATTRIBUTED, { kind: 'unattributed', calls: 0, ms: Math.max(0, wallMs - topMs - updateMs) });
  const perStep = wallMs / steps;
  return [...byOp.entries()]
    .map(([op, e]) => ({ model: spec.model.name, format: spec.sparsity.format, op, kind: e.kind, calls: e.calls / steps, ms_per_step: e.ms / steps, share: perStep > 0 ? e.ms / steps / perStep : 0 }))
    .sort((a, b) => b.ms_per_step - a.ms_per_step);
}

/** Measures one point in this process. */
export async function stepPoint(o: StepOptions, model: string, format: string): Promise<PointResult> {
  const { spec, shape } = stepSpec(o, model, format);
  const backend = await selectBackend(o.backend, getModel(spec.model.name).kernels);
  try { K.setThreads(o.threads); } catch (e) { throw new UserError(`--threads ${o.threads}: ${(e as Error).message}`); }
  const method = getMethod(spec.method.name);
  const rng = new Rng(spec.seed);
  const schedule = spec.update;
  // enough samples for the method's update batch (samplesPerClass per class) and one training batch
  const n = Math.max(o.batch, shape.classes * (schedule?.samplesPerClass ?? 0));
  const train = syntheticSplit(shape, n, rng.fork('bench-step/data'));
  const data: Dataset = { name: spec.dataset.name, inputShape: shape.inputShape, classes: shape.classes, train, test: train };
  const m = buildModel(spec, shape);
  try {
    const run = createRunContext({ spec, data, model: m, train, test: train });
    if (method.initialize) runInitialize(run);
    const trainable = m.params().map((p) => p.value);
    const hooks = stepHooks(run);
    const fs = featureSize(shape.inputShape);
    const idx = Int32Array.from({ length: o.batch }, (_, i) => i);
    const t = spec.training;
    const totalSteps = 1 + o.steps * (o.profile ? 2 : 1);
    let stepNo = 0;
    // the training loop's step (harness/train.ts trainPrepared), without augmentation
    const step = () => {
      const batch = gather(train, fs, idx);
      const lr = learningRate(stepNo, totalSteps, t);
      hooks.before();
      trainStep(m, trainable, shape, batch, { lr, momentum: t.momentum, weightDecay: t.weightDecay });
      hooks.after({ step: stepNo, totalSteps, stepsPerEpoch: totalSteps, schedule: schedule! }, lr);
      stepNo++;
    };
    step(); // warm-up
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let s = 0; s < o.steps; s++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      step();
      wall.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
    }
    const row: StepRow = {
      model: spec.model.name,
      dataset: spec.dataset.name,
      method: spec.method.name,
      format: spec.sparsity.format,
      sparsity: spec.sparsity.target,
      batch: o.batch,
      steps: o.steps,
      step_ms: median(wall),
      step_ms_min: Math.min(...wall),
      cpu_ms: median(cpu),
      peak_rss_mb: peakRssMb(),
      active_params: m.layers.reduce((a, l) => a + l.activeCount(), 0),
      total_params: m.layers.reduce((a, l) => a + l.rows * l.cols, 0),
      backend,
    };
    let profile: ProfileRow[] = [];
    if (o.profile) {
      let wallMs = 0;
      const { timed, kernels } = await profiled(() => {
        const t0 = performance.now();
        for (let s = 0; s < o.steps; s++) step();
        wallMs = performance.now() - t0;
      }, backend);
      profile = profileRows(spec, timed, kernels, wallMs, o.steps);
    }
    return { row, profile };
  } finally {
    m.dispose();
  }
}

/** One point in a fresh process (the same command, one model and format). */
function childPoint(o: StepOptions, model: string, format: string): PointResult {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sparsebench-step-'));
  try {
    const file = path.join(dir, 'point.json');
    const args = [cli, 'bench', 'step', '--model', model, '--format', format, '--dataset', o.dataset, '--method', o.method,
      '--sparsity', String(o.sparsity), '--batch', String(o.batch), '--steps', String(o.steps), '--seed', String(o.seed),
      '--backend', o.backend, '--threads', String(o.threads), '--top', String(o.top), `--profile=${o.profile}`, '--point-json', file];
    for (const [k, v] of Object.entries(optionsFor(model, o.modelOptions))) args.push(`--${k}`, Array.isArray(v) ? v.join(',') : String(v));
    for (const s of o.sets) args.push('--set', s);
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) {
      const why = r.error ? r.error.message : (r.stderr || r.stdout).trim().split('\n').pop()?.replace(/^sparsebench: /, '');
      throw new UserError(`bench step ${model} (${format}): ${why ?? `exit ${r.status ?? r.signal}`}`);
    }
    return JSON.parse(readFileSync(file, 'utf8')) as PointResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function table(rows: Record<string, unknown>[], columns: string[], fmt: (k: string, v: unknown) => string): string[] {
  const cells = rows.map((r) => columns.map((c) => fmt(c, r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (xs: string[]) => xs.map((x, i) => (i === xs.length - 1 ? x : x.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(columns), ...cells.map(line)];
}

const number = (v: unknown, digits: number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(digits)) : String(v));

/** Runs every (model, format) point, writes the CSVs and prints the tables; `pointJson`: a child's hand-back file. */
export async function benchStep(o: StepOptions, pointJson?: string): Promise<StepRow[]> {
  checkOptions(o);
  const points = o.models.flatMap((m) => o.formats.map((f) => [m, f] as const));
  for (const [m, f] of points) stepSpec(o, m, f); // every point valid before any is measured
  if (pointJson) {
    if (points.length !== 1) throw new UserError('--point-json: one model and one format');
    writeFileSync(pointJson, JSON.stringify(await stepPoint(o, points[0][0], points[0][1])));
    return [];
  }
  const results: PointResult[] = [];
  for (const [m, f] of points) {
    if (points.length === 1) { results.push(await stepPoint(o, m, f)); continue; }
    const r = childPoint(o, m, f);
    results.push(r);
    o.log(`[${results.length}/${points.length}] ${m} (${f}): step ${r.row.step_ms.toFixed(1)} ms, peak RSS ${r.row.peak_rss_mb.toFixed(0)} MB`);
  }
  if (points.length > 1) o.log('');
  const rows = results.map((r) => r.row);
  const profile = results.flatMap((r) => r.profile);
  if (o.out) {
    mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    writeFileSync(o.out, stringify(rows, { header: true }));
    if (o.profile) writeFileSync(profilePath(o.out), stringify(profile, { header: true, columns: ['model', 'format', 'op', 'kind', 'calls', 'ms_per_step', 'share'] }));
  }
  const columns = Object.keys(rows[0]);
  for (const l of table(rows as unknown as Record<string, unknown>[], columns, (k, v) => number(v, k === 'sparsity' ? 3 : 1))) o.log(l);
  if (o.profile) {
    for (const r of results) {
      const ops = r.profile;
      const wall = ops.reduce((a, p) => a + p.ms_per_step, 0);
      o.log('');
      o.log(`profile ${r.row.model} (${r.row.format}): top ${Math.min(o.top, ops.length)} of ${ops.length} ops by own time per step, over ${o.steps} profiled steps (${wall.toFixed(1)} ms/step under tf.profile)`);
      const shown = ops.slice(0, o.top);
      // the unattributed rest is always shown
      const rest = ops.find((p) => p.kind === 'unattributed');
      if (rest && !shown.includes(rest)) shown.push(rest);
      const fmt = (k: string, v: unknown) => (k === 'share' ? `${((v as number) * 100).toFixed(1)}%` : k === 'calls' ? number(v, 1) : k === 'ms_per_step' ? (v as number).toFixed(2) : String(v));
      for (const l of table(shown as unknown as Record<string, unknown>[], ['ms_per_step', 'share', 'calls', 'kind', 'op'], fmt)) o.log(`  ${l}`);
    }
  }
  if (o.out) o.log(`wrote ${o.out}${o.profile ? ` and ${profilePath(o.out)}` : ''}`);
  return rows;
}
