/**
 * The memory pre-flight: the estimate against the measured peak RSS of real runs (each in a fresh
 * process), and a run that cannot fit refused by validate and run with one line, before anything
 * is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadSweep } from '../harness/config.js';
import { estimatePeakBytes, estimateRun } from '../harness/memory.js';
import { runId } from '../harness/spec.js';
import { runCli } from './helpers.js';
import { tmpDir } from './sweep-util.js';

test('the estimate is within a factor 1.5 of the measured peak RSS (masked static, csr RigL)', () => {
  const dir = tmpDir('memory');
  const config = path.join(dir, 'm.json');
  fs.writeFileSync(config, JSON.stringify({
    name: 'memory', dataset: 'mnist', model: { name: 'mlp', hidden: [2048, 2048] }, method: 'static', training: { epochs: 2 },
    sparsity: { target: 0.98 }, grid: { method: ['static', 'rigl'], 'sparsity.format': ['masked', 'csr'] },
  }));
  const out = path.join(dir, 'out');
  const specs = loadSweep(config, { smoke: true }).specs.filter((s) => (s.method.name === 'static') === (s.sparsity.format === 'masked'));
  assert.equal(specs.length, 2);
  for (const s of specs) {
    // one run per process: peak RSS is a process's maximum
    const r = runCli(['run', config, '--smoke', '--out', out, '--jobs', '1', '--backend', 'wasm', '--set', `method=${s.method.name}`, '--set', `sparsity.format=${s.sparsity.format}`]);
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(fs.readFileSync(path.join(out, runId(s), 'result.json'), 'utf8')) as { peak_rss_mb: number };
    const ratio = estimateRun(s).bytes / 2 ** 20 / result.peak_rss_mb;
    assert.ok(ratio > 1 / 1.5 && ratio < 1.5, `${s.method.name} ${s.sparsity.format}: estimate / measured = ${ratio.toFixed(2)}`);
  }
});

test('csr layers (conv included) cost their active connections, masked ones rows x cols', () => {
  const conv = { name: 'conv', kind: 'conv' as const, rows: 512, cols: 512 * 9, positions: 16 };
  const input = { layers: [conv], active: 512 * 512 * 9 * 0.02, batch: 128, evalBatch: 1000, features: 3072, samples: 0,
    method: { sparse: true, alwaysSparse: true, startsDense: false } };
  const csr = estimatePeakBytes({ ...input, format: 'csr' });
  const masked = estimatePeakBytes({ ...input, format: 'masked' });
  assert.ok(csr.parts.weights < 0.05 * masked.parts.weights, `${csr.parts.weights} vs ${masked.parts.weights}`);
  assert.equal(csr.parts.weights, 6 * 4 * input.active + 4 * 513);
  // a method that builds the dense gradient (not always sparse) pays rows x cols once more
  const rigl = estimatePeakBytes({ ...input, format: 'csr', method: { sparse: true, alwaysSparse: false, startsDense: false } });
  assert.equal(rigl.parts.method, 4 * 512 * 512 * 9);
});

test('a run that cannot fit is refused by validate and run with the estimate and the limit, before anything is written', () => {
  const dir = tmpDir('memory');
  const config = path.join(dir, 'wide.json');
  // the example: a dense masked MLP at width 100 (LeNet-300-100 x 100: 324 M weights)
  fs.writeFileSync(config, JSON.stringify({ dataset: 'mnist', model: { name: 'mlp', width: 100 }, method: 'dense', training: { epochs: 1 } }));
  const v = runCli(['validate', config, '--backend', 'cpu', '--memory-limit', '8']);
  assert.equal(v.status, 2);
  assert.match(v.stderr, /^sparsebench: \S*wide\.json: run dense \S+ s=0 w=100 seed=0 \[[0-9a-f]{12}\] needs about \d+\.\d GB at its peak \(estimate\), more than the 8\.0 GB it may use \(--memory-limit 8\); use format csr.*\n$/);
  const small = runCli(['validate', config, '--backend', 'wasm', '--memory-limit', '1000']);
  assert.equal(small.status, 2);
  assert.match(small.stderr, /needs about \d+\.\d GB of tensors \(estimate\), more than the 4 GiB WebAssembly memory of the wasm backend/);
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'keep.txt'), 'precious');
  const r = runCli(['run', config, '--out', out, '--backend', 'wasm', '--jobs', '2']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /needs about .* GB/);
  assert.deepEqual(fs.readdirSync(out), ['keep.txt']);
  const ok = runCli(['validate', 'configs/quickstart.json']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /valid, 11 runs; peak memory up to about 0\.\d+ GB per run \(estimate; limit/);
});
