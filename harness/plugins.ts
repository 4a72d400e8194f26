/**
 * External method plugins: ES modules whose default export is a method (methods/types.ts), named
 * by a config's "plugins" (paths relative to the config file) or by --plugin PATH. A plugin is
 * checked field by field before it is registered (one line naming the file and the field), may not
 * shadow a built-in method, and its source hash becomes part of every run id of its method
 * (harness/spec.ts), so editing a plugin re-runs its cells instead of mixing two versions.
 *
 * The one decision a reader may question: workers (other processes) load the same files again,
 * by absolute path, before they train; the registry is per process.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { builtinMethods, methods } from '../methods/index.js';
import { checkMethodShape } from '../methods/define.js';
import type { Method } from '../methods/types.js';
import { loadSweep, readConfigFile, type Sweep } from './config.js';
import { UserError } from '../core/errors.js';

/** The plugin files a config names (resolved against the config file's folder), then the extra ones (against the working folder). */
export function pluginFiles(configFile: string | null | undefined, extra: string[] = []): string[] {
  const files: string[] = [];
  if (configFile) {
    const list = readConfigFile(configFile).plugins;
    if (list !== undefined && (!Array.isArray(list) || !list.every((p) => typeof p === 'string' && p !== ''))) {
      throw new UserError(`${configFile}: /plugins: must be a list of plugin file paths (got ${JSON.stringify(list)})`);
    }
    for (const p of (list ?? []) as string[]) files.push(path.resolve(path.dirname(configFile), p));
  }
  for (const p of extra) files.push(path.resolve(p));
  return [...new Set(files)];
}

/** A config's sweep with its plugins (the config's "plugins" and --plugin files) loaded first. */
export async function loadSweepWithPlugins(file: string, opts: { sets?: string[]; smoke?: boolean; plugin?: string[] } = {}): Promise<Sweep> {
  const plugins = pluginFiles(file, opts.plugin ?? []);
  await loadPlugins(plugins);
  return loadSweep(file, { sets: opts.sets, smoke: opts.smoke, plugins });
}

/** Imports, checks and registers every plugin file; loading the same file again is a no-op. */
export async function loadPlugins(files: string[]): Promise<void> {
  for (const file of files) {
    let source: Buffer;
    try { source = readFileSync(file); } catch (e) {
      throw new UserError(`${file}: cannot read plugin (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const hash = createHash('sha256').update(source).digest('hex').slice(0, 12);
    let mod: { default?: unknown };
    try {
      mod = await import(`${pathToFileURL(file).href}?source=${hash}`);
    } catch (e) {
      throw new UserError(`${file}: cannot load plugin: ${String((e as Error)?.message ?? e).split('\n')[0]}`);
    }
    const m = mod.default;
    const problem = m === undefined ? 'no default export (export default a method, e.g. defineMethod({ ... }))' : checkMethodShape(m);
    if (problem) throw new UserError(`${file}: plugin ${problem}`);
    const method = m as Method;
    if (Object.prototype.hasOwnProperty.call(builtinMethods, method.name)) {
      throw new UserError(`${file}: plugin field "name": "${method.name}" is a built-in method; give the plugin another name`);
    }
    const known = methods[method.name];
    if (known && known.source !== hash) throw new UserError(`${file}: plugin field "name": another plugin already registered "${method.name}"`);
    methods[method.name] = { ...method, source: hash };
  }
}
