import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { backendChoices, type BackendChoice } from '../backend.js';

export const log = (line: string): void => { process.stdout.write(line + '\n'); };

export const backendOption = {
  backend: {
    choices: backendChoices,
    default: 'auto' as BackendChoice,
    describe: 'tfjs backend: auto = tensorflow if installed, else the fastest with every kernel the model needs',
  },
};

/** A yargs command whose handler's arguments are typed by its builder. */
export function defineCommand<T>(c: {
  command: string;
  describe: string;
  builder: (y: Argv) => Argv<T>;
  handler: (a: ArgumentsCamelCase<T>) => void | Promise<void>;
}): CommandModule<any, any> {
  return c as unknown as CommandModule<any, any>;
}
