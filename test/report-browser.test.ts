/**
 * report.html in a real browser: the system's headless Chromium opens the report of every figure
 * kind, and the test fails on any console error or uncaught exception, on a chart that drew no
 * marks, or on a chart left much narrower than the page allows. It saves a screenshot
 * (dist/test-artifacts/report.png). Where no Chromium is installed the test is skipped with a notice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { report } from '../reports/index.js';
import { writeSynthetic } from './fixtures/report/synth.js';
import { root } from './helpers.js';

const BROWSERS = [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter(Boolean) as string[];

function findBrowser(): string | null {
  for (const b of BROWSERS) if (spawnSync(b, ['--version'], { encoding: 'utf8' }).status === 0) return b;
  return null;
}

/** Runs first in the page: records console errors and uncaught exceptions. */
const RECORDER = `<script>
window.__problems = [];
const consoleError = console.error.bind(console);
console.error = (...a) => { window.__problems.push('console.error: ' + a.map(String).join(' ')); consoleError(...a); };
window.addEventListener('error', (e) => window.__problems.push('uncaught: ' + e.message));
window.addEventListener('unhandledrejection', (e) => window.__problems.push('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)));
</script>`;

/** Runs last: after the charts are drawn, writes what it sees into the DOM (read back with --dump-dom). */
const PROBE = `<script>
setTimeout(() => {
  const charts = [...document.querySelectorAll('.vis')].map((el) => {
    const svg = el.querySelector('svg.marks');
    return {
      id: el.id,
      marks: svg ? svg.querySelectorAll('.mark-symbol path, .mark-line path, .mark-rect path, .mark-area path').length : 0,
      natural: svg ? Number(svg.getAttribute('width')) : 0,
      shown: svg ? svg.getBoundingClientRect().width : 0,
      room: el.parentElement.clientWidth,
      text: svg ? '' : el.textContent,
    };
  });
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({ problems: window.__problems, charts });
  document.body.appendChild(pre);
}, 3000);
</script>`;

test('report.html in headless Chromium: no console error, every chart drawn and sized to the page', async (t) => {
  const browser = findBrowser();
  if (!browser) {
    const notice = 'no system Chromium found (apt-get install chromium, or set CHROMIUM): report.html was not checked in a browser';
    process.stderr.write(`NOTICE: ${notice}\n`);
    t.skip(notice);
    return;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsebench-browser-'));
  const inputs = writeSynthetic(path.join(tmp, 'in'));
  const summary = await report({ inputs: Object.values(inputs), out: path.join(tmp, 'out') });
  const html = fs.readFileSync(summary.html, 'utf8');
  const page = path.join(tmp, 'out', 'probe.html');
  const end = html.lastIndexOf('</body>'); // the inlined bundles hold the string too
  fs.writeFileSync(page, `${html.slice(0, end).replace('<head>', `<head>\n${RECORDER}`)}${PROBE}\n${html.slice(end)}`);

  const flags = ['--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--window-size=1400,2200', '--virtual-time-budget=20000'];
  const dom = spawnSync(browser, [...flags, '--dump-dom', `file://${page}`], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  assert.equal(dom.status, 0, dom.stderr);
  const probe = /<pre id="probe">([^<]*)<\/pre>/.exec(dom.stdout);
  assert.ok(probe, 'the probe ran (page loaded, scripts executed)');
  const seen = JSON.parse(probe[1].replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')) as {
    problems: string[]; charts: { id: string; marks: number; natural: number; shown: number; room: number; text: string }[];
  };
  assert.deepEqual(seen.problems, [], 'console errors or exceptions');
  assert.equal(seen.charts.length, summary.figures.length);
  for (const c of seen.charts) {
    assert.ok(c.marks > 0, `${c.id}: no marks drawn ${c.text}`);
    assert.ok(c.shown >= 0.9 * Math.min(c.room, 2 * c.natural), `${c.id}: ${c.shown}px wide of ${c.room}px available (drawn at ${c.natural}px)`);
  }

  const artifacts = path.join(root, 'dist', 'test-artifacts');
  fs.mkdirSync(artifacts, { recursive: true });
  const shot = path.join(artifacts, 'report.png');
  const s = spawnSync(browser, [...flags, `--screenshot=${shot}`, `file://${summary.html}`], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(s.status, 0, s.stderr);
  assert.ok(fs.statSync(shot).size > 50_000, 'a screenshot with content');
  fs.rmSync(tmp, { recursive: true, force: true });
});
