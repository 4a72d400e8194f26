/**
 * Kill and resume through the CLI, SIGINT and SIGTERM: a --smoke sweep of GSE and RigL in both
 * formats is interrupted in the middle of a run (the worker finishes its step, checkpoints and
 * exits 130 / 143 with one line), run again, and every run ends bit-identical to the same sweep
 * never interrupted (metrics, updates, result; timings aside).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sweepFromConfig } from '../harness/config.js';
import { runId } from '../harness/spec.js';
import { comparable as comparableRun, csvRows, hasFile, runCliAsync, startCli, tmpDir, waitFor } from './sweep-util.js';

const dir = tmpDir('signal');
const config = path.join(dir, 'signal.json');
writeFileSync(config, JSON.stringify({
  name: 'signals',
  seed: 1,
  dataset: { name: 'synthetic', features: 16, classes: 4, trainSamples: 64, testSamples: 32, seed: 3 },
  model: { name: 'mlp', hidden: [12] },
  method: 'gse',
  sparsity: { target: 0.7 },
  update: { delta: 1, end: 1, samplesPerClass: 4 },
  // 8 steps of 8 samples: a checkpoint after step 4, then updates before every later step
  training: { epochs: 2, batchSize: 8, lr: 0.05 },
  grid: { method: [{ name: 'gse', sampler: 'grabo' }, 'rigl'], 'sparsity.format': ['masked', 'csr'] },
}));
const ids = sweepFromConfig(JSON.parse(readFileSync(config, 'utf8')), config, true).specs.map(runId).sort();
const common = ['--smoke', '--backend', 'wasm', '--jobs', '1'];
const ref = path.join(dir, 'ref');

/** A run's metrics, result and prune-grow updates, timings aside. */
function comparable(out: string, id: string) {
  const updates = readFileSync(path.join(out, id, 'updates.jsonl'), 'utf8').trim().split('\n').map((l) => ({ ...JSON.parse(l), ms: 0 }));
  return { ...comparableRun(out, id), updates };
}

before(async () => {
  const r = await runCliAsync(['run', config, '--out', ref, ...common]);
  assert.equal(r.code, 0, r.stderr);
});

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} in the middle of a run: checkpoint, exit ${code} with one line; run again: every run as if never stopped`, async () => {
    const out = path.join(dir, signal);
    const p = startCli(['run', config, '--out', out, ...common], { SPARSEBENCH_STEP_DELAY_MS: '150' });
    await waitFor('a run in the middle', () => existsSync(out) && readdirSync(out).some((id) => hasFile(out, id, 'checkpoint.bin') && hasFile(out, id, 'lock')));
    process.kill(p.child.pid!, signal);
    const exit = await p.exit;
    assert.equal(exit.code, code, p.stderr());
    const lines = p.stderr().trim().split('\n');
    assert.equal(lines.length, 1, p.stderr());
    assert.match(lines[0], new RegExp(`^sparsebench: interrupted by ${signal}: [1-9]\\d* run\\(s\\) checkpointed`));
    const unfinished = ids.filter((id) => existsSync(path.join(out, id)) && !hasFile(out, id, 'result.json'));
    assert.ok(unfinished.length >= 1, 'stopped in the middle of a run');
    for (const id of unfinished) assert.ok(hasFile(out, id, 'checkpoint.bin') && !hasFile(out, id, 'lock'), `${id}: checkpointed, lock released`);

    const again = await runCliAsync(['run', config, '--out', out, ...common]);
    assert.equal(again.code, 0, again.stderr);
    for (const id of unfinished) assert.match(again.stdout, new RegExp(`\\[${id}\\] resumed from epoch \\d, step [1-9]\\d*`));
    assert.deepEqual(csvRows(out).map((r) => r.run_id).sort(), ids);
    for (const id of ids) assert.deepEqual(comparable(out, id), comparable(ref, id), `${id}: same metrics, updates and result as the uninterrupted sweep`);
  });
}
