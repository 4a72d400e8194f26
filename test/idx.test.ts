/**
 * The standard MNIST (mnist-full) and Fashion-MNIST from IDX files: small files written here under
 * the official names (raw and gzipped), the one-line errors for a missing, truncated or malformed
 * file, and `data fetch` against a local server (nothing is downloaded from the internet).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { loadDataset } from '../harness/data/index.js';
import { fetchIdx } from '../harness/data/fetch.js';
import { FASHION_MNIST, IDX_FILES, MNIST_FULL, writeIdxFiles } from '../harness/data/idx.js';
import { UserError } from '../core/errors.js';
import { runId } from '../harness/spec.js';
import { cli, runCli, specOf } from './helpers.js';
import { tmpDir } from './sweep-util.js';

const oneLineError = (re: RegExp) => (e: unknown) => e instanceof UserError && !e.message.includes('\n') && re.test(e.message);

test('mnist-full and fashion-mnist load from raw or gzipped IDX files under their official names', () => {
  for (const [layout, gzip] of [[MNIST_FULL, false], [FASHION_MNIST, true]] as const) {
    const dir = tmpDir('idx');
    const folder = writeIdxFiles(dir, layout, { train: 30, test: 20, gzip });
    assert.deepEqual(fs.readdirSync(folder).sort(), IDX_FILES.map((f) => (gzip ? `${f}.gz` : f)).sort());
    for (const dataDir of [dir, folder]) {
      const ds = loadDataset(layout.name, {}, { dataDir, seed: 0 });
      assert.deepEqual(ds.inputShape, [28, 28, 1]);
      assert.equal(ds.classes, 10);
      assert.equal(ds.train.n, 30);
      assert.equal(ds.test.n, 20);
      assert.deepEqual([...ds.train.y.subarray(0, 12)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
      assert.ok(ds.train.x.every((v) => v >= 0 && v <= 1));
      assert.ok(ds.train.x.some((v) => v > 0.75));
    }
  }
});

test('a missing, truncated or malformed IDX file is one line naming the file', () => {
  const dir = tmpDir('idx');
  assert.throws(() => loadDataset('mnist-full', {}, { seed: 0 }), oneLineError(/needs --data-dir DIR holding mnist\/.*data fetch mnist/));
  assert.throws(() => loadDataset('mnist-full', {}, { dataDir: path.join(dir, 'nope'), seed: 0 }), oneLineError(/nope: no such directory/));
  const folder = writeIdxFiles(dir, MNIST_FULL, { train: 20, test: 10 });
  const file = (f: string) => path.join(folder, f);
  fs.rmSync(file('t10k-labels-idx1-ubyte'));
  assert.throws(() => loadDataset('mnist-full', {}, { dataDir: dir, seed: 0 }), oneLineError(/t10k-labels-idx1-ubyte\[\.gz\]: missing/));
  writeIdxFiles(dir, MNIST_FULL, { train: 20, test: 10 });
  const images = fs.readFileSync(file('train-images-idx3-ubyte'));
  fs.writeFileSync(file('train-images-idx3-ubyte'), images.subarray(0, images.length - 100));
  assert.throws(() => loadDataset('mnist-full', {}, { dataDir: dir, seed: 0 }), oneLineError(/train-images-idx3-ubyte: truncated: the header promises 20 x 28 x 28 = 15680 bytes of data, the file holds 15580/));
  fs.writeFileSync(file('train-images-idx3-ubyte'), Buffer.from('<html>not found</html>'));
  assert.throws(() => loadDataset('mnist-full', {}, { dataDir: dir, seed: 0 }), oneLineError(/train-images-idx3-ubyte: not an IDX file of unsigned bytes/));
  const gz = writeIdxFiles(tmpDir('idx'), FASHION_MNIST, { train: 20, test: 10, gzip: true });
  const labels = path.join(gz, 'train-labels-idx1-ubyte.gz');
  fs.writeFileSync(labels, fs.readFileSync(labels).subarray(0, 20));
  assert.throws(() => loadDataset('fashion-mnist', {}, { dataDir: path.dirname(gz), seed: 0 }), oneLineError(/train-labels-idx1-ubyte\.gz: not a complete gzip file/));
});

test('the run id tells the shipped digits from the standard MNIST; a smoke run trains on IDX files', () => {
  const base = { model: 'mlp', method: 'static', training: { epochs: 1 } };
  assert.notEqual(runId(specOf({ ...base, dataset: 'mnist' })), runId(specOf({ ...base, dataset: 'mnist-full' })));
  const dir = tmpDir('idx');
  writeIdxFiles(path.join(dir, 'data'), MNIST_FULL, { train: 60, test: 30, gzip: true });
  const config = path.join(dir, 'c.json');
  fs.writeFileSync(config, JSON.stringify({ ...base, dataset: 'mnist-full' }));
  const ok = runCli(['run', config, '--smoke', '--out', path.join(dir, 'out'), '--data-dir', path.join(dir, 'data'), '--jobs', '1', '--backend', 'cpu']);
  assert.equal(ok.status, 0, ok.stderr);
  const missing = runCli(['run', config, '--smoke', '--out', path.join(dir, 'out2'), '--jobs', '1', '--backend', 'cpu']);
  assert.equal(missing.status, 1);
  assert.match(missing.stdout, /dataset mnist-full needs --data-dir DIR/);
});

test('data fetch mnist: the four official .gz files, each checked against its MD5 before it takes its name', async () => {
  const src = writeIdxFiles(tmpDir('idx-src'), MNIST_FULL, { train: 20, test: 10, gzip: true });
  const bodies = new Map(IDX_FILES.map((f) => [`/mirror/${f}.gz`, fs.readFileSync(path.join(src, `${f}.gz`))]));
  const server = http.createServer((req, res) => {
    const body = bodies.get(req.url ?? '');
    if (!body) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mirror/`;
  try {
    // these test files are not the published ones: the official checksums reject them, and nothing stays
    const dir = tmpDir('idx-fetch');
    const bad = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      import('node:child_process').then(({ spawn }) => {
        const p = spawn(process.execPath, [cli, 'data', 'fetch', 'mnist', '--dir', dir, '--url', url]);
        let stdout = '', stderr = '';
        p.stdout.on('data', (d) => { stdout += d; });
        p.stderr.on('data', (d) => { stderr += d; });
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /^sparsebench: data fetch: train-images-idx3-ubyte\.gz has MD5 [0-9a-f]{32}, not the published f68b3c2dcbeaaa9fbdd348bbdeb94873 .*\n$/);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'mnist')), []);

    // with the files' own checksums (a layout for this mirror) the download completes
    const md5 = Object.fromEntries(IDX_FILES.map((f) => [f, createHash('md5').update(bodies.get(`/mirror/${f}.gz`)!).digest('hex')])) as typeof MNIST_FULL.md5;
    const target = await fetchIdx({ ...MNIST_FULL, md5 }, dir, undefined, { url });
    assert.deepEqual(fs.readdirSync(target).sort(), IDX_FILES.map((f) => `${f}.gz`).sort());
    assert.equal(loadDataset('mnist-full', {}, { dataDir: dir, seed: 0 }).train.n, 20);
  } finally {
    server.close();
  }
});
