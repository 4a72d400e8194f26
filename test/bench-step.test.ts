import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { sweepFromConfig } from '../harness/config.js';
import { UserError } from '../core/errors.js';
import { benchStep, stepSpec, type StepOptions } from '../bench/step.js';
import { runCli } from './helpers.js';

const COLUMNS = ['model', 'dataset', 'method', 'format', 'sparsity', 'batch', 'steps', 'step_ms', 'step_ms_min', 'cpu_ms', 'peak_rss_mb', 'active_params', 'total_params', 'backend'];
const shape = ['--dataset', 'mnist', '--sparsity', '0.9', '--batch', '16', '--steps', '2'];
const tiny = [...shape, '--method', 'static'];

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'sparsebench-step-test-'));
}

function readCsv(file: string): Record<string, string>[] {
  return parse(readFileSync(file, 'utf8'), { columns: true }) as Record<string, string>[];
}

function checkRow(r: Record<string, string>, expect: { model: string; format: string; total: number }): void {
  assert.deepEqual(Object.keys(r), COLUMNS);
  assert.equal(r.model, expect.model);
  assert.equal(r.format, expect.format);
  assert.equal(r.dataset, 'mnist');
  assert.equal(r.method, 'static');
  assert.equal(Number(r.sparsity), 0.9);
  assert.equal(Number(r.batch), 16);
  assert.equal(Number(r.steps), 2);
  for (const k of ['step_ms', 'step_ms_min', 'cpu_ms', 'peak_rss_mb']) assert.ok(Number(r[k]) > 0 && Number.isFinite(Number(r[k])), `${k} = ${r[k]}`);
  assert.ok(Number(r.step_ms_min) <= Number(r.step_ms), 'min <= median');
  const active = Number(r.active_params);
  const total = Number(r.total_params);
  assert.equal(total, expect.total);
  assert.ok(active > 0 && active <= total);
  // erdos-renyi spreads 10% of the weights over the layers: a few connections of rounding per layer
  assert.ok(Math.abs(active - 0.1 * total) <= 0.005 * total, `active ${active} of ${total}`);
  assert.ok(['wasm', 'cpu', 'tensorflow'].includes(r.backend));
}

test('bench step: one row per format (fresh process each), columns and values consistent', () => {
  const dir = tmp();
  try {
    const out = path.join(dir, 'step.csv');
    const r = runCli(['bench', 'step', '--model', 'mlp', '--hidden', '64,32', '--format', 'masked,csr', ...tiny, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const rows = readCsv(out);
    assert.equal(rows.length, 2);
    const total = 784 * 64 + 64 * 32 + 32 * 10;
    checkRow(rows[0], { model: 'mlp', format: 'masked', total });
    checkRow(rows[1], { model: 'mlp', format: 'csr', total });
    // the same seed builds the same connectivity in both formats
    assert.equal(rows[0].active_params, rows[1].active_params);
    assert.match(r.stdout, /^model\s+dataset\s+method\s+format/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bench step --profile: top ops printed, profile CSV beside --out, own times add up to the step', () => {
  const dir = tmp();
  try {
    const out = path.join(dir, 'step.csv');
    const r = runCli(['bench', 'step', '--model', 'lenet5', '--width', '0.5', '--format', 'masked', ...tiny, '--profile', '--top', '5', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const [row] = readCsv(out);
    assert.ok(Number(row.total_params) > 0);
    assert.equal(row.model, 'lenet5');
    assert.ok(Math.abs(Number(row.active_params) - 0.1 * Number(row.total_params)) <= 0.01 * Number(row.total_params));
    const prof = readCsv(path.join(dir, 'step-profile.csv'));
    assert.deepEqual(Object.keys(prof[0]), ['model', 'format', 'op', 'kind', 'calls', 'ms_per_step', 'share']);
    // masked conv layers run on our kernels (custom ops); max pooling's forward is a tfjs kernel
    assert.ok(prof.some((p) => p.kind === 'custom op forward') && prof.some((p) => p.kind === 'custom op backward'), 'our ops profiled');
    assert.ok(prof.some((p) => p.kind === 'tfjs kernel' && p.op === 'MaxPool'), 'MaxPool profiled');
    // our kernels get rows of their own, booked by phase: the masked products of 2 convs and 3
    // linear layers once each per step forward; the weight gradient dots of the convs backward
    const kernel = (op: string) => prof.find((p) => p.op === op);
    assert.equal(Number(kernel('denseRows (forward)')?.calls), 5, 'forward products of every layer');
    assert.equal(kernel('denseRows (forward)')?.kind, 'our kernel (forward)');
    assert.equal(Number(kernel('denseDots (backward)')?.calls), 2, 'weight gradients of both convs');
    assert.equal(kernel('denseDots (forward)'), undefined, 'no weight gradient in a forward');
    // the SGD step: one kernel call per parameter (5 layers x weight and bias), booked as the update
    assert.equal(Number(kernel('sgdUpdate (update)')?.calls), 10, 'the SGD update of every parameter');
    assert.equal(kernel('sgdUpdate (update)')?.kind, 'our kernel (update)');
    assert.equal(prof.filter((p) => p.kind === 'unattributed').length, 1);
    for (const p of prof) assert.ok(Number(p.ms_per_step) >= 0 && Number(p.share) >= 0, JSON.stringify(p));
    const share = prof.reduce((a, p) => a + Number(p.share), 0);
    assert.ok(Math.abs(share - 1) < 0.02, `shares sum to ${share}`);
    assert.match(r.stdout, /profile lenet5 \(masked\): top 5 of \d+ ops/);
    assert.match(r.stdout, /unattributed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const options = (o: Partial<StepOptions>): StepOptions => ({
  models: ['mlp'], dataset: 'mnist', sparsity: 0.9, formats: ['masked'], method: 'static', batch: 16, steps: 1, seed: 0,
  modelOptions: {}, sets: [], backend: 'auto', threads: 1, profile: false, top: 15, log: () => {}, ...o,
});

test('bench step: bad input fails with one line, exit 2, no stack trace', async () => {
  const r = runCli(['bench', 'step', '--model', 'nosuch', ...tiny]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim(), 'sparsebench: unknown model "nosuch" (known: mlp, lenet5, resnet56, vgg16, vit)');
  assert.equal(r.stdout, '');
  // the rest in this process: every point is validated before anything is measured, as a UserError (one line, exit 2)
  const cases: [Partial<StepOptions>, RegExp][] = [
    [{ dataset: 'nosuch' }, /^unknown dataset "nosuch"/],
    [{ formats: ['coo'] }, /^bench step: \/sparsity\/format: must be one of "masked", "csr" \(got "coo"\)$/],
    [{ formats: ['masked', 'coo'] }, /\/sparsity\/format: must be one of/],
    [{ method: 'nosuch' }, /^unknown method "nosuch"/],
    [{ models: ['mlp', 'nosuch'] }, /^unknown model "nosuch"/],
    [{ models: ['vgg16'], modelOptions: { hidden: [8] } }, /^--hidden: not an option of model vgg16$/],
    [{ modelOptions: { width: -1 } }, /\/model\/width: must be > 0/],
    [{ sparsity: 1.5 }, /\/sparsity\/target: must be < 1/],
    [{ steps: 0 }, /^--steps 0: expected a positive integer$/],
    [{ models: ['lenet5'], dataset: 'synthetic' }, /^model lenet5 needs image input/],
    [{ sets: ['method.nosuch=1'] }, /\/method\/nosuch: unknown field/],
  ];
  for (const [o, message] of cases) {
    await assert.rejects(benchStep(options(o)), (e: Error) => {
      assert.ok(e instanceof UserError, `${JSON.stringify(o)}: ${e.stack}`);
      assert.match(e.message, message);
      assert.equal(e.message.split('\n').length, 1);
      return true;
    });
  }
});

test('bench step: csr conv models pass the config validation; a geometry the kernels cannot run fails naming the layer', () => {
  assert.doesNotThrow(() => stepSpec(options({ models: ['lenet5'], modelOptions: { width: 0.5 }, formats: ['csr'] }), 'lenet5', 'csr'));
  const tiny4 = options({ models: ['lenet5'], dataset: 'synthetic', formats: ['csr'], sets: ['dataset.shape=4x4x1', 'dataset.classes=2'] });
  assert.throws(() => stepSpec(tiny4, 'lenet5', 'csr'), (e: Error) => e instanceof UserError && /csr cannot run model lenet5: conv2: a 5x5 kernel/.test(e.message));
});
