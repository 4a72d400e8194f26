import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readdirSync, readFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { cli, root, runCli } from './helpers.js';

const valid = { dataset: 'mnist', model: 'mlp', method: 'static', training: { epochs: 1 } };

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'sparsebench-cli-'));
}

/** Runs a config that must be rejected: exit 2, one line on stderr naming `expect`, output folder untouched. */
function rejects(config: string | object, expect: RegExp, extra: string[] = []): void {
  const dir = tmp();
  const file = path.join(dir, 'bad.json');
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  const out = path.join(dir, 'out');
  mkdirSync(out);
  writeFileSync(path.join(out, 'keep.txt'), 'precious');
  const r = runCli(['run', file, '--out', out, ...extra]);
  assert.equal(r.status, 2, `exit code for ${expect}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0], expect);
  assert.doesNotMatch(r.stderr, /\s+at\s+\S+:\d+/, 'no stack trace');
  assert.deepEqual(readdirSync(out), ['keep.txt']);
  assert.equal(readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'precious');
}

test('malformed JSON names the file', () => rejects('{"dataset": "mnist",', /bad\.json: invalid JSON/));
test('missing config file names the file', () => {
  const r = runCli(['run', '/nonexistent/x.json']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /\/nonexistent\/x\.json: cannot read config file \(ENOENT\)/);
});
test('unknown top-level field', () => rejects({ ...valid, epochs: 3 }, /\/epochs: unknown field/));
test('unknown nested field', () => rejects({ ...valid, training: { epoch: 3 } }, /\/training\/epoch: unknown field/));
test('unknown method', () => rejects({ ...valid, method: 'magic' }, /\/method: unknown method "magic" \(known: .*dense.*\)/));
test('unknown method in the grid', () => rejects({ ...valid, grid: { method: ['static', 'nope'] } }, /\/grid\/method\/1: unknown method "nope"/));
test('unknown model', () => rejects({ ...valid, model: 'resnet9000' }, /\/model: unknown model "resnet9000"/));
test('unknown dataset', () => rejects({ ...valid, dataset: 'imagenet22k' }, /\/dataset: unknown dataset "imagenet22k"/));
test('unknown model option', () => rejects({ ...valid, model: { name: 'mlp', depth: 3 } }, /\/model\/depth: unknown field/));
test('sparsity out of range', () => rejects({ ...valid, sparsity: { target: 1 } }, /\/sparsity\/target: must be < 1 \(got 1\)/));
test('negative sparsity', () => rejects({ ...valid, sparsity: { target: -0.1 } }, /\/sparsity\/target: must be >= 0 \(got -0.1\)/));
test('sparsity out of range in the grid', () => rejects({ ...valid, grid: { 'sparsity.target': [0.9, 1.5] } }, /\/grid\/sparsity\.target\/1: must be < 1 \(got 1.5\)/));
test('non-positive epochs', () => rejects({ ...valid, training: { epochs: 0 } }, /\/training\/epochs: must be >= 1 \(got 0\)/));
test('non-positive batch size', () => rejects({ ...valid, training: { batchSize: -5 } }, /\/training\/batchSize: must be >= 1 \(got -5\)/));
test('wrong type', () => rejects({ ...valid, training: { lr: 'fast' } }, /\/training\/lr: must be number \(got "fast"\)/));
test('bad --set value', () => rejects(valid, /\/sparsity\/target: must be < 1/, ['--set', 'sparsity.target=2']));
test('unknown CLI flag', () => rejects(valid, /Unknown argument/, ['--frobnicate']));
test('a conv geometry the csr kernels cannot run is rejected before any run, naming the layer', () => {
  // lenet5 on 4x4 images: conv2's 5x5 'valid' kernel meets a 2x2 map
  rejects({ ...valid, dataset: { name: 'synthetic', shape: '4x4x1', classes: 2 }, model: 'lenet5', sparsity: { target: 0.9, format: 'csr' } }, /\/sparsity\/format: csr cannot run model lenet5: conv2: a 5x5 kernel does not fit a 2x2 input without padding/);
});

test('validate expands the grid and dedups what a method ignores', () => {
  const dir = tmp();
  const file = path.join(dir, 'grid.json');
  writeFileSync(file, JSON.stringify({ ...valid, grid: { method: ['dense', 'static'], 'sparsity.target': [0.9, 0.98], seed: [0, 1] } }));
  const r = runCli(['validate', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /valid, 6 runs/);
  assert.match(r.stdout, /dense: 2/);
  assert.match(r.stdout, /static: 4/);
});

test('list shows methods with options, models and datasets', () => {
  const r = runCli(['list']);
  assert.equal(r.status, 0);
  for (const word of ['dense', 'static', 'mlp', 'lenet5', 'mnist', 'synthetic', 'samplers']) assert.match(r.stdout, new RegExp(word));
});

test('a smoke sweep writes run folders and results.csv with the documented columns', () => {
  const dir = tmp();
  const file = path.join(dir, 'smoke.json');
  writeFileSync(file, JSON.stringify({ ...valid, grid: { method: ['dense', 'static'] } }));
  const out = path.join(dir, 'out');
  const r = runCli(['run', file, '--smoke', '--out', out, '--backend', 'cpu']);
  assert.equal(r.status, 0, r.stderr);
  const csv = readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n');
  const header = csv[0].split(',');
  for (const col of ['run_id', 'status', 'method', 'model', 'dataset', 'sparsity', 'width', 'seed', 'test_accuracy', 'train_flops',
    'dense_train_flops', 'active_params', 'total_params', 'param_bytes', 'peak_rss_mb', 'wall_s', 'step_ms', 'update_ms', 'backend']) {
    assert.ok(header.includes(col), `column ${col}`);
  }
  assert.equal(csv.length, 3);
  const runs = readdirSync(out).filter((f) => f !== 'results.csv');
  assert.equal(runs.length, 2);
  for (const id of runs) {
    assert.deepEqual(readdirSync(path.join(out, id)).sort(), ['config.json', 'metrics.jsonl', 'result.json']);
    const m = readFileSync(path.join(out, id, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(Object.keys(m[0]).sort(), ['active_params', 'epoch', 'lr', 'step', 'test_accuracy', 'test_loss', 'train_accuracy', 'train_loss', 'wall_s']);
  }
  // a second invocation skips what is done
  const again = runCli(['run', file, '--smoke', '--out', out, '--backend', 'cpu']);
  assert.match(again.stdout, /2 of 2 runs already done/);
});

test('a top-level JSON array is called what it is, not invalid JSON', () => rejects('[1, 2]', /bad\.json: a config is a JSON object .*not an array/));
test('an unknown method names the file', () => rejects({ ...valid, method: 'magic' }, /^sparsebench: \S*bad\.json: \/method: unknown method "magic"/));
test('"lrDrops": [], the documented default, is accepted', () => {
  const dir = tmp();
  const file = path.join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ ...valid, training: { epochs: 1, lrDrops: [] } }));
  const r = runCli(['validate', file]);
  assert.equal(r.status, 0, r.stderr);
});
test('an lr drop after the last epoch says how to shorten the list', () => {
  rejects({ ...valid, training: { epochs: 5, lrDrops: [10, 15] } }, /\/training\/lrDrops: epoch 10 is not before the last epoch \(epochs 5\); .*--set training\.lrDrops=/);
});
test('a bad choice names the option, what was given and the allowed values', () => {
  rejects(valid, /^sparsebench: --backend "gpu": must be one of "auto", "tensorflow", "wasm", "cpu"$/, ['--backend', 'gpu']);
  const r = runCli(['bench', 'scaling', '--format', 'dense']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^sparsebench: --format "dense": must be one of "csr", "masked"\n$/);
});
test('a non-numeric --jobs is reported as typed', () => {
  rejects(valid, /^sparsebench: --jobs abc: expected a positive integer$/, ['--jobs', 'abc']);
  rejects(valid, /^sparsebench: --jobs 0: expected a positive integer$/, ['--jobs', '0']);
  rejects(valid, /^sparsebench: --checkpoint-minutes soon: expected a number >= 0$/, ['--checkpoint-minutes', 'soon']);
});

test('a reader that closes the pipe early (schema | head -1) ends the CLI quietly', async () => {
  for (const args of [['schema'], ['list']]) {
    const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the first write
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(stderr, '', `${args[0]}: nothing on stderr`);
    assert.equal(code, 0, args[0]);
  }
});

test('--help wraps at word boundaries on an 80-column terminal', () => {
  for (const command of ['run', 'status', 'report', 'data fetch']) {
    const args = [...command.split(' '), '--help'];
    const wide = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, COLUMNS: '200' } }).stdout;
    const narrow = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, COLUMNS: '80' } }).stdout;
    const words = new Set(wide.split(/\s+/));
    for (const line of narrow.split('\n')) {
      assert.ok(line.length <= 80, `${command}: line longer than 80: ${line}`);
      for (const w of line.split(/\s+/).filter(Boolean)) assert.ok(words.has(w), `${command}: "${w}" is a broken word in: ${line}`);
    }
  }
});

test('bench scaling with too few steps for an update says so instead of printing bare NaN', () => {
  const r = runCli(['bench', 'scaling', '--methods', 'gse', '--widths', '64', '--base-width', '64', '--steps', '3', '--backend', 'cpu']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /note: --steps 3 is not more than --delta 5: no prune-grow update runs, so gse get no update time/);
});

test('bench scaling writes each point\'s numbers from its run (parsed as CSV) with the memory estimate beside the measured peak', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sparsebench-scaling-csv-'));
  const out = path.join(dir, 'scaling.csv');
  const r = runCli(['bench', 'scaling', '--methods', 'gse', '--widths', '64', '--base-width', '64', '--steps', '6', '--delta', '3', '--backend', 'cpu', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const [header, line] = readFileSync(out, 'utf8').trim().split('\n');
  const row = Object.fromEntries(header.split(',').map((k, i) => [k, line.split(',')[i]]));
  assert.equal(row.status, 'done');
  assert.equal(Number(row.total_params), 784 * 64 + 64 * 64 + 64 * 10);
  assert.ok(Number(row.active_params) > 0 && Number(row.active_params) < 0.05 * Number(row.total_params), `active ${row.active_params}`);
  assert.ok(Number(row.peak_rss_mb) > 50 && Number(row.estimate_mb) > 50, `peak ${row.peak_rss_mb} MB, estimate ${row.estimate_mb} MB`);
  assert.ok(Number(row.update_ms) > 0 && Number(row.step_ms) > 0);
  assert.match(r.stdout, /peak RSS \d+\.\d\d MB \(estimate \d+ MB\)/);
});
