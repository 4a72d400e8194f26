import os from 'node:os';
import type { Argv } from 'yargs';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../backend.js';
import { packageVersion } from '../provenance.js';
import { backendOption, log, defineCommand } from './common.js';

function builder(y: Argv) {
  return y.options(backendOption).example('$0 info', '').example('$0 info --backend cpu', '');
}

export const infoCommand = defineCommand({
  command: 'info',
  describe: 'backend, versions, cores, memory',
  builder,
  handler: async (a) => {
    const backend = await selectBackend(a.backend);
    log(`sparsebench ${packageVersion()}`);
    log(`backend: ${backend} (tfjs ${tf.version.tfjs})`);
    log(`node: ${process.version}`);
    log(`cpu: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores`);
    log(`memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB total, ${(os.freemem() / 2 ** 30).toFixed(1)} GiB free`);
  },
});
