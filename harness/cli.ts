import yargs, { type Argv, type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from './errors.js';
import { packageVersion } from './provenance.js';
import { benchCommand } from './commands/bench.js';
import { collectCommand } from './commands/collect.js';
import { dataCommand } from './commands/data.js';
import { infoCommand } from './commands/info.js';
import { listCommand } from './commands/list.js';
import { runCommand } from './commands/run.js';
import { reportCommand } from './commands/report.js';
import { schemaCommand } from './commands/schema.js';
import { slurmCommand } from './commands/slurm.js';
import { statusCommand } from './commands/status.js';
import { validateCommand } from './commands/validate.js';

/** Every CLI command; each lives in harness/commands/. */
const commands = [runCommand, validateCommand, listCommand, infoCommand, collectCommand, statusCommand, slurmCommand, schemaCommand, benchCommand, reportCommand, dataCommand] as CommandModule<any, any>[];

export function buildCli(argv: string[]): Argv {
  let y = yargs(argv).scriptName('sparsebench').usage('$0 <command> [options]');
  for (const c of commands) y = y.command(c);
  return y
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UserError(msg);
    });
}

export async function main(argv = hideBin(process.argv)): Promise<void> {
  try {
    await buildCli(argv).parseAsync();
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`sparsebench: ${e.message.split('\n')[0]}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`sparsebench: internal error: ${(e as Error).message}\n`);
      if (process.env.SPARSEBENCH_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 1;
    }
  }
}
