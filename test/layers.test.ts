/**
 * The layering of the source (issue 14, item 7): core/ (errors, rng, option declarations) is the
 * ground floor that every folder may import and that imports nothing of ours; methods/, models/
 * and reports/ never import harness/; and no two files import each other, directly or round a
 * loop (type-only imports count: they tie the files together just the same).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { root } from './helpers.js';

const FOLDERS = ['core', 'methods', 'models', 'harness', 'reports', 'bench'];

function sources(dir: string): string[] {
  return readdirSync(path.join(root, dir)).flatMap((f) => {
    const rel = path.join(dir, f);
    if (statSync(path.join(root, rel)).isDirectory()) return rel.endsWith(path.join('kernels', 'assembly')) ? [] : sources(rel);
    return f.endsWith('.ts') ? [rel] : [];
  });
}

/** Every file's imports of our own files (static, re-exports and dynamic), as repository paths. */
function importGraph(): Map<string, string[]> {
  const files = [...FOLDERS.flatMap(sources), 'index.ts'];
  const known = new Set(files);
  const spec = /(?:^|[\s;])(?:import|export)\s[^'";]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(path.join(root, file), 'utf8');
    const deps = [...text.matchAll(spec)]
      .map((m) => path.normalize(path.join(path.dirname(file), m[1] ?? m[2])).replace(/\.js$/, '.ts'))
      .filter((d) => known.has(d));
    graph.set(file, [...new Set(deps)]);
  }
  return graph;
}

/** One import loop of the graph, as the files round it, or null. */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const trail: string[] = [];
  const visit = (f: string): string[] | null => {
    state.set(f, 'open');
    trail.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') return [...trail.slice(trail.indexOf(d)), d];
      if (!state.has(d)) { const c = visit(d); if (c) return c; }
    }
    trail.pop();
    state.set(f, 'done');
    return null;
  };
  for (const f of graph.keys()) if (!state.has(f)) { const c = visit(f); if (c) return c; }
  return null;
}

test('no import cycles; core/ imports nothing of ours; methods/, models/ and reports/ never import harness/', () => {
  const graph = importGraph();
  assert.ok(graph.size > 50 && (graph.get('harness/train.ts') ?? []).length > 3, 'the graph was read');
  assert.equal(findCycle(graph)?.join(' -> ') ?? null, null);
  const top = (f: string) => f.split(path.sep)[0];
  for (const [file, deps] of graph) {
    for (const d of deps) {
      if (top(file) === 'core') assert.equal(top(d), 'core', `${file} imports ${d}: core/ is the ground floor`);
      if (['methods', 'models', 'reports'].includes(top(file))) assert.notEqual(top(d), 'harness', `${file} imports ${d} upward`);
    }
  }
});
