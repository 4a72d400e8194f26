/**
 * Every example in README.md and in every command's --help runs as shown: each is extracted,
 * run from a scratch folder holding copies of configs/ and docs/bench/ and small generated CIFAR
 * and IDX files in data/, and must exit 0. To keep it short: examples of commands that have
 * --smoke (run, bench kernels, bench scaling) get it; a `run` without --out writes where the
 * real run would (runs/<sweep name>), so the status, collect and report examples after it find
 * their folders; a `run` without --jobs gets --jobs 1, and one without --shard runs only the
 * first run of its grid (--shard 1/n). `data fetch` needs the internet: those examples are
 * listed as not run (test/idx.test.ts and the CIFAR tests fetch from a local server).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadSweep } from '../harness/config.js';
import { writeCifarFiles } from '../harness/data/cifar.js';
import { IDX_LAYOUTS, writeIdxFiles } from '../harness/data/idx.js';
import { shardSpecs, parseShard } from '../harness/shard.js';
import { cli, root } from './helpers.js';
import { tmpDir } from './sweep-util.js';

/** `npx sparsebench …` command lines of README.md: shell blocks and inline code, comments cut. */
function readmeExamples(): string[] {
  const text = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const lines = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1].split('\n'));
  const inline = [...text.matchAll(/`(npx sparsebench [^`]+)`/g)].map((m) => m[1]);
  return [...lines, ...inline].map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('npx sparsebench ') && !/[<…]|\bDIR\b/.test(l.replace(/ > \S+$/, '')))
    .map((l) => l.slice('npx '.length));
}

const help = (args: string[]) => spawnSync(process.execPath, [cli, ...args, '--help'], { cwd: root, encoding: 'utf8', env: { ...process.env, COLUMNS: '400' } }).stdout;
const section = (text: string, title: string) => {
  const start = text.indexOf(`\n${title}:\n`);
  if (start < 0) return [];
  const body = text.slice(start + title.length + 3).split('\n\n')[0];
  // a long command wraps onto the next lines of its column
  const entries: string[] = [];
  for (const line of body.split('\n')) {
    const first = line.trim().split(/\s{2,}/)[0];
    if (first.startsWith('sparsebench ')) entries.push(first);
    // the command column starts at 2 spaces; deeper lines continue the description
    else if (entries.length && first && /^ {2}\S/.test(line)) entries[entries.length - 1] += ` ${first}`;
  }
  return entries;
};

/** The examples of every command's --help, subcommands included. */
function helpExamples(): string[] {
  const out: string[] = [];
  const visit = (cmd: string[]) => {
    const text = help(cmd);
    out.push(...section(text, 'Examples'));
    for (const sub of section(text, 'Commands')) {
      const words = sub.split(/\s+/).slice(1).filter((w) => !/^[<[]/.test(w));
      if (words.length > cmd.length && words.slice(0, cmd.length).join(' ') === cmd.join(' ')) visit(words);
    }
  };
  visit([]);
  return out;
}

test('every README and --help example runs as shown (with --smoke)', { timeout: 600_000 }, () => {
  const examples = [...new Set([...readmeExamples(), ...helpExamples()])];
  assert.ok(examples.length >= 25, `found ${examples.length} examples`);
  const work = tmpDir('examples');
  fs.cpSync(path.join(root, 'configs'), path.join(work, 'configs'), { recursive: true });
  fs.cpSync(path.join(root, 'docs', 'bench'), path.join(work, 'docs', 'bench'), { recursive: true });
  // the example plugin, in a folder where 'sparsebench' resolves as in a user's repository
  fs.cpSync(path.join(root, 'examples'), path.join(work, 'examples'), { recursive: true });
  fs.mkdirSync(path.join(work, 'node_modules'), { recursive: true });
  fs.symlinkSync(root, path.join(work, 'node_modules', 'sparsebench'), 'dir');
  const data = path.join(work, 'data');
  writeCifarFiles(data, 'cifar10', { train: 40, test: 20 });
  writeCifarFiles(data, 'cifar100', { train: 200, test: 100 });
  for (const layout of IDX_LAYOUTS) writeIdxFiles(data, layout, { train: 60, test: 30, gzip: true });

  // runs first, so that status, collect and report find what they read
  const isRun = (e: string) => e.startsWith('sparsebench run ');
  const ordered = [...examples.filter(isRun), ...examples.filter((e) => !isRun(e))];
  const failures: string[] = [];
  const notRun: string[] = [];
  for (const example of ordered) {
    let [command, redirect] = example.split(/\s+>\s+/);
    const args = command.split(/\s+/).slice(1);
    if (args[0] === 'data' && args[1] === 'fetch') { notRun.push(`${example} (downloads from the internet)`); continue; }
    const commandWords = args.slice(0, args[0] === 'bench' ? 2 : 1);
    if (!args.includes('--smoke') && help(commandWords).includes('--smoke')) args.push('--smoke');
    if (args[0] === 'run') {
      if (!args.includes('--jobs')) args.push('--jobs', '1');
      const value = (flag: string) => { const i = args.indexOf(flag); return i < 0 ? undefined : args[i + 1]; };
      const sets = args.flatMap((a, i) => (a === '--set' ? [args[i + 1]] : []));
      const sweep = loadSweep(path.join(work, args[1]), { sets, smoke: true });
      if (!value('--out')) args.push('--out', path.join('runs', sweep.name));
      const shard = value('--shard');
      const mine = shardSpecs(sweep.specs, shard ? parseShard(shard) : null).length;
      if (!shard && mine > 1) args.push('--shard', `1/${mine}`);
    }
    const started = Date.now();
    const r = spawnSync(process.execPath, [cli, ...args], { cwd: work, encoding: 'utf8', timeout: 300_000 });
    if (process.env.SPARSEBENCH_EXAMPLE_TIMES) process.stderr.write(`${((Date.now() - started) / 1000).toFixed(1)} s  ${args.join(' ')}\n`);
    if (redirect) fs.writeFileSync(path.join(work, redirect), r.stdout);
    if (r.status !== 0) failures.push(`${example}\n  as: sparsebench ${args.slice(0).join(' ')}\n  exit ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  }
  if (notRun.length) process.stderr.write(`NOTICE: examples not run here: ${notRun.join('; ')}\n`);
  assert.deepEqual(failures, [], `examples that fail:\n${failures.join('\n')}`);
});
