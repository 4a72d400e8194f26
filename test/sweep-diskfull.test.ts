/**
 * A full disk (ENOSPC) in the middle of a sweep, on a real small file system: a tmpfs mounted in
 * a private mount namespace (unshare -rm), filled up once the first run has finished. The sweep
 * stops at once with one line naming the path, leaves no temporary file and marks nothing failed;
 * the same command, once there is space again, finishes every run. Skipped with a notice where
 * unprivileged mount namespaces are not available.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cli, root } from './helpers.js';
import { gridConfig, tmpDir } from './sweep-util.js';

function namespacesWork(dir: string): boolean {
  const mnt = path.join(dir, 'probe');
  fs.mkdirSync(mnt);
  return spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o size=1m tmpfs '${mnt}'`], { encoding: 'utf8' }).status === 0;
}

for (const jobs of [1, 2]) {
  test(`a full disk stops the sweep with one line, nothing half-written or failed, and a rerun finishes it (--jobs ${jobs})`, (t) => {
    const dir = tmpDir('diskfull');
    if (!namespacesWork(dir)) {
      const notice = 'unshare -rm with a tmpfs mount is not available here: the full-disk test did not run';
      process.stderr.write(`NOTICE: ${notice}\n`);
      t.skip(notice);
      return;
    }
    const config = gridConfig(dir, 4, { training: { epochs: 3, batchSize: 8, lr: 0.05 } });
    const mnt = path.join(dir, 'disk');
    fs.mkdirSync(mnt);
    const out = path.join(mnt, 'out');
    const r = (name: string) => path.join(dir, name);
    const run = `'${process.execPath}' '${cli}' run '${config}' --out '${out}' --jobs ${jobs} --backend cpu`;
    const script = `
      mount -t tmpfs -o size=8m tmpfs '${mnt}'
      SPARSEBENCH_STEP_DELAY_MS=15 ${run} > '${r('run1.out')}' 2> '${r('run1.err')}' &
      pid=$!
      until ls '${out}'/*/result.json > /dev/null 2>&1; do sleep 0.05; done
      dd if=/dev/zero of='${mnt}/filler' bs=16k > /dev/null 2>&1
      wait $pid; echo $? > '${r('run1.rc')}'
      find '${out}' -type f > '${r('files1.txt')}'
      cat '${out}'/*/result.json > '${r('results1.json')}' 2> /dev/null
      rm '${mnt}/filler'
      ${run} > '${r('run2.out')}' 2> '${r('run2.err')}'; echo $? > '${r('run2.rc')}'
      cat '${out}'/*/result.json > '${r('results2.json')}'
    `;
    const s = spawnSync('unshare', ['-rm', 'sh', '-c', script], { cwd: root, encoding: 'utf8', timeout: 240_000 });
    assert.equal(s.status, 0, s.stderr);
    const read = (name: string) => fs.readFileSync(r(name), 'utf8');

    assert.equal(read('run1.rc').trim(), '1', read('run1.err'));
    const lines = read('run1.err').trim().split('\n');
    assert.equal(lines.length, 1, read('run1.err'));
    assert.match(lines[0], new RegExp(`^sparsebench: ${out}/\\S+: no space left on device; free some space and run the same command again`));
    const files = read('files1.txt').trim().split('\n');
    assert.deepEqual(files.filter((f) => /\.tmp$|lock\.stale/.test(f)), [], 'no temporary files left');
    assert.doesNotMatch(read('results1.json'), /"failed"/, 'no run marked failed');

    assert.equal(read('run2.rc').trim(), '0', read('run2.err') + read('run2.out'));
    assert.match(read('run2.out'), /finished: \d done, 0 diverged, 0 failed/);
    assert.equal((read('results2.json').match(/"status": "done"/g) ?? []).length, 4);
  });
}
