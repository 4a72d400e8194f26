import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../core/errors.js';

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const backendChoices: BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

const require = createRequire(import.meta.url);

// production mode: no debug checks, and no advice printed on first use of the cpu backend
tf.enableProdMode();

async function loadTensorflow(): Promise<boolean> {
  try {
    // optional dependency: present only where its native library installed
    await import('@tensorflow/tfjs-node' as string);
    return tf.findBackend('tensorflow') !== null || tf.engine().registryFactory['tensorflow'] !== undefined;
  } catch {
    return false;
  }
}

async function loadWasm(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const dir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
  wasm.setWasmPaths(dir);
}

/** Whether every kernel is registered for a backend. */
export function hasKernels(backend: string, kernels: string[]): boolean {
  return kernels.every((k) => tf.getKernel(k, backend) !== undefined);
}

/**
 * Selects the tfjs backend. auto: tensorflow (tfjs-node) when it loads, else wasm when it has
 * every kernel the model needs, else cpu.
 */
export async function selectBackend(choice: BackendChoice, kernels: string[] = []): Promise<string> {
  let name: string;
  if (choice === 'tensorflow' || choice === 'auto') {
    if (await loadTensorflow()) name = 'tensorflow';
    else if (choice === 'tensorflow') throw new UserError('--backend tensorflow: @tensorflow/tfjs-node is not installed or failed to load');
    else {
      await loadWasm();
      name = hasKernels('wasm', kernels) ? 'wasm' : 'cpu';
    }
  } else {
    if (choice === 'wasm') await loadWasm();
    name = choice;
  }
  if (tf.getBackend() !== name) {
    const ok = await tf.setBackend(name);
    if (!ok) throw new UserError(`--backend ${choice}: backend ${name} failed to initialise`);
  }
  if (choice === 'wasm' && !hasKernels('wasm', kernels)) {
    const missing = kernels.filter((k) => tf.getKernel(k, 'wasm') === undefined);
    throw new UserError(`--backend wasm: the model needs kernels wasm lacks (${missing.join(', ')}); use --backend auto or cpu`);
  }
  return name;
}
