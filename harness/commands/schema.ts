import { writeFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { configSchema } from '../config.js';
import { defineCommand } from './common.js';

function builder(y: Argv) {
  return y.positional('file', { type: 'string', describe: 'write here instead of printing' }).example('$0 schema configs/schema.json', '');
}

export const schemaCommand = defineCommand({
  command: 'schema [file]',
  describe: 'print (or write) the config JSON Schema',
  builder,
  handler: (a) => {
    const text = JSON.stringify(configSchema(), null, 2) + '\n';
    if (a.file) writeFileSync(a.file, text); else process.stdout.write(text);
  },
});
