import { createRequire } from 'node:module';
import type { Argv, CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { asDiskFull, UserError } from '../core/errors.js';
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

/**
 * yargs through its CommonJS build: that one wraps help text at word boundaries (wrap-ansi); the
 * ES-module build cuts words at the column limit.
 */
const yargs = createRequire(import.meta.url)('yargs') as typeof import('yargs').default;

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
    .wrap(Math.min(110, helpColumns()))
    .fail((msg, err) => {
      // yargs' own parse errors (YError) and errors thrown by option coercions are the user's
      if (err && !(err instanceof UserError) && err.name !== 'YError') throw err;
      throw err instanceof UserError ? err : new UserError(oneLine(msg ?? err?.message ?? 'invalid arguments'));
    });
}

/** The terminal's width, else $COLUMNS, else 110. */
function helpColumns(): number {
  return process.stdout.columns || Number(process.env.COLUMNS) || 110;
}

/**
 * A yargs message as one line: "Invalid values:\n  Argument: backend, Given: "gpu", Choices: ..."
 * becomes '--backend "gpu": must be one of "auto", ...'; other multi-line messages are joined.
 */
export function oneLine(msg: string): string {
  const choices = [...msg.matchAll(/Argument: (\S+), Given: (.*), Choices: (.*)/g)];
  if (choices.length) return choices.map(([, arg, given, allowed]) => `--${arg} ${given}: must be one of ${allowed}`).join('; ');
  return msg.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

/**
 * A reader that stops early (`sparsebench schema | head -1`) closes our stdout: the rest of the
 * output has nowhere to go, which is not an error.
 */
function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
}

export async function main(argv = hideBin(process.argv)): Promise<void> {
  exitQuietlyOnClosedPipe();
  try {
    await buildCli(argv).parseAsync();
  } catch (thrown) {
    const e = asDiskFull(thrown) ?? thrown;
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
