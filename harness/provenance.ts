import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);

function versionOf(pkg: string): string | null {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Where and with what a run was made, stored next to its config. */
export function provenance(backend: string): Record<string, unknown> {
  return {
    sparsebench: packageVersion(),
    package_versions: {
      '@tensorflow/tfjs': versionOf('@tensorflow/tfjs'),
      '@tensorflow/tfjs-backend-wasm': versionOf('@tensorflow/tfjs-backend-wasm'),
      '@tensorflow/tfjs-node': versionOf('@tensorflow/tfjs-node'),
    },
    backend,
    node: process.version,
    host: os.hostname(),
    platform: `${os.platform()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.availableParallelism(),
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    started: new Date().toISOString(),
  };
}
