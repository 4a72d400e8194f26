import type { Argv } from 'yargs';
import { report } from '../../reports/index.js';
import { defineCommand, log } from './common.js';

export const reportCommand = defineCommand({
  command: 'report <inputs..>',
  describe: 'figures (SVG, PNG), tables (Markdown, LaTeX, CSV) and an offline report.html from run folders and bench CSVs',
  builder: (y: Argv) => y
    .positional('inputs', { type: 'string', array: true, demandOption: true, describe: 'sweep folders (runs/<name>) and/or bench CSV files' })
    .option('out', { type: 'string', default: '', describe: 'output folder (default <first input>/report)' })
    .example('$0 report runs/quickstart', 'figures and tables of the quickstart')
    .example('$0 report runs/mnist-lenet300 scaling.csv kernels.csv --out report', 'runs and benchmarks together'),
  handler: async (a) => {
    const s = await report({ inputs: a.inputs as string[], out: a.out, log });
    log(`${s.figures.length} figures, ${s.tables.length} tables, ${s.skipped.length} figures skipped; open ${s.html}`);
  },
});
