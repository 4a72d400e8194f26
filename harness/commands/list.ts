import type { Argv } from 'yargs';
import { methods } from '../../methods/index.js';
import { models } from '../../models/index.js';
import { datasets } from '../data/index.js';
import { describeOptions, type OptionSpecs } from '../../core/options.js';
import { groupOptions } from '../spec.js';
import { loadPlugins, pluginFiles } from '../plugins.js';
import { log, defineCommand, pluginOption } from './common.js';

type Entry = { name: string; summary: string; options: OptionSpecs };

export function listText(): string {
  const lines: string[] = [];
  const section = (title: string, entries: Entry[], tag: (name: string) => string = () => '') => {
    lines.push(`${title}:`);
    for (const e of entries) {
      lines.push(`  ${e.name}${tag(e.name)} — ${e.summary}`);
      lines.push(...describeOptions(e.options));
    }
    lines.push('');
  };
  section('methods', Object.values(methods), (n) => (methods[n].alwaysSparse ? ' [always sparse]' : methods[n].sparse ? '' : ' [dense]'));
  section('models', Object.values(models));
  section('datasets', Object.values(datasets));
  lines.push(`samplers (gse option "sampler"): ${methods.gse.options.sampler.enum!.join(', ')}`);
  lines.push(`formats (sparsity.format): ${groupOptions.sparsity.format.enum.join(', ')}`);
  lines.push('');
  section('config groups', Object.entries(groupOptions)
    .map(([name, options]) => ({ name, summary: `"${name}": { ... }`, options })));
  return lines.join('\n');
}

export const listCommand = defineCommand({
  command: 'list',
  describe: 'methods with their options and defaults, samplers, models, datasets, config groups',
  builder: (y: Argv) => y.options(pluginOption).example('$0 list', '').example('$0 list --plugin examples/plugins/sparse-momentum.js', 'with a plugin'),
  handler: async (a) => {
    await loadPlugins(pluginFiles(null, a.plugin));
    log(listText());
  },
});
