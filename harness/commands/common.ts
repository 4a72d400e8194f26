import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { backendChoices, type BackendChoice } from '../backend.js';
import { UserError } from '../../core/errors.js';

export const log = (line: string): void => { process.stdout.write(line + '\n'); };

export const backendOption = {
  backend: {
    choices: backendChoices,
    default: 'auto' as BackendChoice,
    describe: 'tfjs backend: auto = tensorflow if installed, else the fastest with every kernel the model needs',
  },
};

/** --plugin PATH (repeatable): a method plugin file, as a config's "plugins" lists them. */
export const pluginOption = {
  plugin: { type: 'string', array: true, default: [] as string[], describe: 'a method plugin file (an ES module whose default export is a method; repeatable), besides the config\'s "plugins"' },
} as const;

/**
 * The options of `run` that say what a sweep runs and how it treats its runs: `run` takes them,
 * and `slurm` takes the same and writes them into the script's `run` line (sweepArguments), so a
 * generated script can do everything `run` can.
 */
export const sweepOptions = {
  smoke: { type: 'boolean', default: false, describe: 'every grid cell for a few steps on a small slice of the data' },
  ...pluginOption,
  set: { type: 'string', array: true, default: [] as string[], describe: 'override a field: path=value (JSON or string)' },
  'data-dir': { type: 'string', describe: 'folder holding dataset files (CIFAR binaries); required by configs with such datasets' },
  ...backendOption,
  'retry-failed': { type: 'boolean', default: false, describe: 'rerun runs that failed (an exception); diverged runs are results and are kept' },
  'fail-on-diverged': { type: 'boolean', default: false, describe: 'exit 1 when a run of the grid diverged (by default a diverged run is a finished result)' },
  wait: { type: 'boolean', default: false, describe: 'wait for runs locked by live workers elsewhere to finish (or their lock to go stale) instead of leaving them' },
  'lock-timeout': numberOption('lock-timeout', 'a lock held on another host goes stale after this many seconds without heartbeat', { default: 300, positive: true }),
  'checkpoint-minutes': numberOption('checkpoint-minutes', 'also checkpoint inside an epoch this often (and at every epoch end)', { default: 10, min: 0 }),
} as const;

type SweepArgs = {
  smoke: boolean; plugin: string[]; set: string[]; 'data-dir'?: string; backend: BackendChoice; 'retry-failed': boolean;
  'fail-on-diverged': boolean; wait: boolean; 'lock-timeout': number; 'checkpoint-minutes': number;
};

/** The `run` arguments that give a run the same sweep options as `a`: every value other than its default. */
export function sweepArguments(a: SweepArgs): string[] {
  const args: string[] = [];
  for (const [name, spec] of Object.entries(sweepOptions)) {
    const value = a[name as keyof SweepArgs];
    if (value === undefined || JSON.stringify(value) === JSON.stringify((spec as { default?: unknown }).default)) continue;
    if (Array.isArray(value)) args.push(...value.flatMap((v) => [`--${name}`, String(v)]));
    else if (typeof value === 'boolean') args.push(`--${name}`); // the boolean options default to false
    else args.push(`--${name}`, String(value));
  }
  return args;
}

/** A yargs command whose handler's arguments are typed by its builder. */
export function defineCommand<T>(c: {
  command: string;
  describe: string;
  builder: (y: Argv) => Argv<T>;
  handler: (a: ArgumentsCamelCase<T>) => void | Promise<void>;
}): CommandModule<any, any> {
  return c as unknown as CommandModule<any, any>;
}

/**
 * A numeric option whose bad value is reported as typed ("--jobs abc: expected a positive
 * integer"), not as NaN. Left untyped for yargs, so the parser keeps what is not a number as text.
 */
export function numberOption<D extends number | undefined>(flag: string, describe: string,
  o: { default?: D; defaultDescription?: string; integer?: boolean; min?: number; positive?: boolean; alias?: string }) {
  const what = `${o.positive ? 'a positive ' : 'a '}${o.integer ? 'integer' : 'number'}${o.min !== undefined ? ` >= ${o.min}` : ''}`;
  return {
    describe: `${describe} (${what})`,
    requiresArg: true,
    default: o.default as D,
    ...(o.defaultDescription ? { defaultDescription: o.defaultDescription } : {}),
    ...(o.alias ? { alias: o.alias } : {}),
    coerce: (v: unknown): number | D => {
      const given = Array.isArray(v) ? v[v.length - 1] : v;
      if (given === undefined) return o.default as D;
      const x = typeof given === 'number' ? given : typeof given === 'string' && given.trim() !== '' ? Number(given) : NaN;
      const ok = Number.isFinite(x) && (!o.integer || Number.isInteger(x)) && (!o.positive || x > 0) && (o.min === undefined || x >= o.min);
      if (!ok) throw new UserError(`--${flag} ${String(given)}: expected ${what}`);
      return x;
    },
  } as const;
}
